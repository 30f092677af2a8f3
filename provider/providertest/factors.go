package providertest

import (
	"context"
	"testing"
	"time"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store"
)

// AddTOTP gives a user a confirmed authenticator app, as enrolment would,
// and returns its secret.
func (e *Env) AddTOTP(t testing.TB, userID string) string {
	t.Helper()
	en, err := mfa.NewTOTP("test", "user")
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.New(e.Key)
	if err != nil {
		t.Fatal(err)
	}
	id := accounts.NewID()
	err = e.Store.CreateFactor(context.Background(), store.Factor{ID: id, UserID: userID, Kind: store.FactorTOTP,
		Name: "Authenticator app", SecretEnc: box.Seal([]byte(en.Secret), "totp:"+id), Confirmed: true, CreatedAt: e.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return en.Secret
}

// AddRecoveryCodes gives a user a fresh set of recovery codes.
func (e *Env) AddRecoveryCodes(t testing.TB, userID string) []string {
	t.Helper()
	return e.addRecoveryCodes(t, userID, false)
}

// AddMailedRecoveryCodes gives a user a fresh set as an admin's mail
// would (R20).
func (e *Env) AddMailedRecoveryCodes(t testing.TB, userID string) []string {
	t.Helper()
	return e.addRecoveryCodes(t, userID, true)
}

func (e *Env) addRecoveryCodes(t testing.TB, userID string, mailed bool) []string {
	t.Helper()
	codes := mfa.NewRecoveryCodes()
	h := mfa.NewRecoveryHasher(e.Key)
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		hashes[i], _ = h.Hash(c)
	}
	if err := e.Store.ReplaceRecoveryCodes(context.Background(), userID, hashes, mailed, time.Now()); err != nil {
		t.Fatal(err)
	}
	return codes
}
