package accounts

import (
	"context"
	"testing"

	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// BenchmarkVerify is one password check at the default parameters
// (argon2id m=19 MiB, t=2, p=1): the bound of every sign-in.
func BenchmarkVerify(b *testing.B) {
	h := Hasher{Params: DefaultArgon2}
	phc, err := h.Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if ok, _, err := h.Verify("correct horse battery staple", phc); err != nil || !ok {
				b.Fatal("did not verify", err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if ok, _, err := h.Verify("correct horse battery staple", phc); err != nil || !ok {
					b.Error("did not verify", err)
					return
				}
			}
		})
	})
}

// BenchmarkAuthenticate is a sign-in's password check for each way it
// can fail, and for success, at the default parameters on SQLite. The
// failures should cost alike (security.md §3.1.6: an unknown address is
// checked against a dummy hash), so their times do not tell whether an
// account exists; compare the ns/op of the sub-benchmarks.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	s := sqltest.Open(b, "sqlite")
	svc := &Service{Store: s, Hasher: Hasher{Params: DefaultArgon2}, MinPasswordLen: 12}
	const pw = "correct horse battery staple"
	for _, email := range []string{"ada@example.com", "off@example.com"} {
		if _, err := svc.CreateUser(ctx, NewUser{Email: email, Population: store.PopulationAgent, Password: pw}); err != nil {
			b.Fatal(err)
		}
	}
	off, err := s.GetUserByEmail(ctx, store.PopulationAgent, "off@example.com")
	if err != nil {
		b.Fatal(err)
	}
	if err := s.SetUserDisabled(ctx, off.ID, true, off.CreatedAt); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, email, password string
		ok                    bool
	}{
		{"right password", "ada@example.com", pw, true},
		{"wrong password", "ada@example.com", "wrong horse battery staple", false},
		{"empty password", "ada@example.com", "", false},
		{"unknown address", "nobody@example.com", pw, false},
		{"malformed address", "not an address", pw, false},
		{"disabled account", "off@example.com", pw, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				_, err := svc.Authenticate(ctx, store.PopulationAgent, bc.email, bc.password)
				if (err == nil) != bc.ok {
					b.Fatalf("Authenticate: %v", err)
				}
			}
		})
	}
}
