package provider_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/twofold-idp/twofold/mfa"
)

// FuzzKeyAssertion (security.md §3.10): a security key's answer to a
// sign-in, its clientDataJSON, authenticatorData and signature mutated,
// is checked as verifyKey checks it (go-webauthn under Twofold's relying
// party settings, mfa.NewWebAuthn). Property: no panic, and whatever is
// accepted passes an independent check: a sign-in's type, this
// ceremony's challenge, Twofold's origin and RP id hash, the user
// present, and an ES256 signature of the key over authenticatorData ‖
// SHA-256(clientDataJSON).
func FuzzKeyAssertion(f *testing.F) {
	const origin, rpID = "https://idp.example.com", "idp.example.com"
	wa, err := mfa.NewWebAuthn(origin, "Twofold")
	if err != nil {
		f.Fatal(err)
	}
	key := newSoftKey(f, origin, rpID)
	user := &mfa.WebAuthnUser{ID: "user-1", Email: "ada@example.com"}
	creation, regSession, err := wa.BeginRegistration(user)
	if err != nil {
		f.Fatal(err)
	}
	created, err := protocol.ParseCredentialCreationResponseBytes([]byte(key.create(f, keyPage{
		Challenge: creation.Response.Challenge.String(), UserID: b64.EncodeToString([]byte(user.ID))})))
	if err != nil {
		f.Fatal(err)
	}
	cred, err := wa.CreateCredential(user, *regSession, created)
	if err != nil {
		f.Fatal(err)
	}
	user.Credentials = append(user.Credentials, *cred)
	_, session, err := wa.BeginLogin(user)
	if err != nil {
		f.Fatal(err)
	}

	// Seeds: the key's real answer, then each part of it spoiled.
	var answer struct {
		Response struct {
			ClientDataJSON    string `json:"clientDataJSON"`
			AuthenticatorData string `json:"authenticatorData"`
			Signature         string `json:"signature"`
		} `json:"response"`
	}
	if err := json.Unmarshal([]byte(key.get(f, keyPage{Challenge: session.Challenge})), &answer); err != nil {
		f.Fatal(err)
	}
	cd, _ := b64.DecodeString(answer.Response.ClientDataJSON)
	ad, _ := b64.DecodeString(answer.Response.AuthenticatorData)
	sig, _ := b64.DecodeString(answer.Response.Signature)
	// The real answer passes, so the check below is reached.
	if parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(key.get(f, keyPage{Challenge: session.Challenge}))); err != nil {
		f.Fatal(err)
	} else if _, err := wa.ValidateLogin(user, *session, parsed); err != nil {
		f.Fatalf("the key's own answer: %v", err)
	}
	f.Add(cd, ad, sig)
	f.Add(bytes.Replace(cd, []byte("webauthn.get"), []byte("webauthn.create"), 1), ad, sig)
	f.Add(cd, append([]byte{}, ad[:37]...), sig)
	f.Add(cd, ad, sig[:len(sig)-1])
	f.Add([]byte(`{}`), []byte{}, []byte{})

	f.Fuzz(func(t *testing.T, cd, ad, sig []byte) {
		body, _ := json.Marshal(map[string]any{
			"id": b64.EncodeToString(key.id), "rawId": b64.EncodeToString(key.id), "type": "public-key",
			"response": map[string]string{"clientDataJSON": b64.EncodeToString(cd),
				"authenticatorData": b64.EncodeToString(ad), "signature": b64.EncodeToString(sig)},
		})
		parsed, err := protocol.ParseCredentialRequestResponseBytes(body)
		if err != nil {
			return
		}
		if _, err := wa.ValidateLogin(user, *session, parsed); err != nil {
			return
		}
		var c struct{ Type, Challenge, Origin string }
		if err := json.Unmarshal(cd, &c); err != nil || c.Type != "webauthn.get" || c.Challenge != session.Challenge || c.Origin != origin {
			t.Fatalf("accepted client data %q (err %v)", cd, err)
		}
		rp := sha256.Sum256([]byte(rpID))
		if len(ad) < 37 || !bytes.Equal(ad[:32], rp[:]) || ad[32]&0x01 == 0 {
			t.Fatalf("accepted authenticator data %x", ad)
		}
		sum := sha256.Sum256(cd)
		digest := sha256.Sum256(append(append([]byte{}, ad...), sum[:]...))
		if !ecdsa.VerifyASN1(&key.priv.PublicKey, digest[:], sig) {
			t.Fatalf("accepted a signature the key did not make: %x", sig)
		}
	})
}
