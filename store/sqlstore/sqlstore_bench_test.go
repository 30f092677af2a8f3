package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

func benchID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// benchStores runs fn on a fresh store of each dialect; PostgreSQL skips
// (never fails) when TWOFOLD_TEST_DATABASE_URL is unset, even under CI.
func benchStores(b *testing.B, fn func(b *testing.B, s *sqlstore.Store)) {
	for _, dialect := range sqltest.Dialects() {
		b.Run(dialect, func(b *testing.B) {
			if dialect == "postgres" && os.Getenv(sqltest.EnvPostgres) == "" {
				b.Skipf("%s not set: skipping PostgreSQL", sqltest.EnvPostgres)
			}
			fn(b, sqltest.Open(b, dialect))
		})
	}
}

// seed makes a user with a TOTP factor and a client, as the hot paths
// find them.
func seed(b *testing.B, s *sqlstore.Store) (store.User, store.Client, store.Factor) {
	ctx := context.Background()
	now := time.Now().UTC()
	u := store.User{ID: benchID(), Email: "ada@example.com", EmailKey: "ada@example.com", Population: store.PopulationAgent,
		Role: store.RoleAgent, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", CreatedAt: now, UpdatedAt: now}
	c := store.Client{ID: "tf_bench", Name: "bench", SecretHash: []byte("0123456789abcdef0123456789abcdef"),
		RedirectURIs: store.Strings{"http://127.0.0.1/cb"}, GrantTypes: store.Strings{"authorization_code", "refresh_token", "client_credentials"},
		Scopes: store.Strings{"openid", "profile", "email", "offline_access"}, TokenEndpointAuthMethod: "client_secret_basic",
		IDTokenAlg: "RS256", CreatedAt: now, UpdatedAt: now}
	f := store.Factor{ID: benchID(), UserID: u.ID, Kind: store.FactorTOTP, Name: "app", SecretEnc: []byte("sealed"), Confirmed: true, CreatedAt: now}
	for _, err := range []error{s.CreateUser(ctx, u), s.CreateClient(ctx, c), s.CreateFactor(ctx, f)} {
		if err != nil {
			b.Fatal(err)
		}
	}
	return u, c, f
}

// tokenRow is about what fosite stores per access token.
func tokenRow(clientID, subject string) store.OAuth2Request {
	now := time.Now().UTC()
	return store.OAuth2Request{Kind: store.KindAccessToken, Signature: benchID() + benchID(), RequestID: benchID(), ClientID: clientID,
		Subject: subject, Active: true, RequestedAt: now, ExpiresAt: now.Add(15 * time.Minute), Data: strings.Repeat("x", 600)}
}

// BenchmarkStore measures the queries on the token endpoint's and the
// sign-in's paths, each on its own.
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	benchStores(b, func(b *testing.B, s *sqlstore.Store) {
		u, c, f := seed(b, s)
		b.Run("GetClient", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.GetClient(ctx, c.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("GetUserByEmail", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.GetUserByEmail(ctx, store.PopulationAgent, u.EmailKey); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("ListFactors", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.ListFactors(ctx, u.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("CreateOAuth2Request", func(b *testing.B) {
			for b.Loop() {
				if err := s.CreateOAuth2Request(ctx, tokenRow(c.ID, u.ID)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("CreateOAuth2Request/parallel", func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.CreateOAuth2Request(ctx, tokenRow(c.ID, u.ID)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		row := tokenRow(c.ID, u.ID)
		if err := s.CreateOAuth2Request(ctx, row); err != nil {
			b.Fatal(err)
		}
		b.Run("GetOAuth2Request", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.GetOAuth2Request(ctx, row.Kind, row.Signature); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("AttemptAndReset", func(b *testing.B) {
			for b.Loop() {
				th, err := s.Attempt(ctx, "pwd:"+u.EmailKey, store.Limit{Max: 10, Lock: 15 * time.Minute}, time.Now())
				if err != nil || !th.Allowed {
					b.Fatal(err, th)
				}
				if err := s.ResetThrottle(ctx, "pwd:"+u.EmailKey); err != nil {
					b.Fatal(err)
				}
			}
		})
		step := time.Now().Unix() / 30
		b.Run("AttemptsAndSuccess", func(b *testing.B) {
			// A sign-in step's counts: the address and the account in
			// one call, then the success that clears them.
			tries := []store.Try{{Key: "ip:127.0.0.1", Limit: store.Limit{Max: 1 << 30, Lock: 15 * time.Minute, Window: time.Hour}},
				{Key: "mfa:user:" + u.ID, Limit: store.Limit{Max: 10, Lock: 15 * time.Minute, Cap: 100}}}
			for b.Loop() {
				ths, err := s.Attempts(ctx, time.Now(), tries...)
				if err != nil || len(ths) != 2 || !ths[1].Allowed {
					b.Fatal(err, ths)
				}
				if err := s.Success(ctx, tries[0].Key, tries[1].Key); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("AttemptTwiceAndSuccess", func(b *testing.B) {
			// The same counts as two Attempt calls, as before Attempts.
			for b.Loop() {
				for _, t := range []store.Try{{Key: "ip:127.0.0.2", Limit: store.Limit{Max: 1 << 30, Lock: 15 * time.Minute, Window: time.Hour}},
					{Key: "mfa:user:" + u.ID, Limit: store.Limit{Max: 10, Lock: 15 * time.Minute, Cap: 100}}} {
					if th, err := s.Attempt(ctx, t.Key, t.Limit, time.Now()); err != nil || !th.Allowed {
						b.Fatal(err, th)
					}
				}
				if err := s.Success(ctx, "ip:127.0.0.2", "mfa:user:"+u.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("LoginFlowUser", func(b *testing.B) {
			now := time.Now().UTC()
			fl := store.LoginFlow{ID: benchID(), State: store.FlowSecondFactor, UserID: u.ID, ClientID: c.ID,
				AuthorizeForm: "response_type=code&client_id=tf_bench&scope=openid", CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute)}
			if err := s.CreateLoginFlow(ctx, fl); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, _, err := s.LoginFlowUser(ctx, fl.ID, fl.State, true); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("UseTOTPStep", func(b *testing.B) {
			for b.Loop() {
				step++
				if err := s.UseTOTPStep(ctx, f.ID, step, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("CreateSessionAndLoginFlow", func(b *testing.B) {
			for b.Loop() {
				now := time.Now().UTC()
				fl := store.LoginFlow{ID: benchID(), State: store.FlowPassword, ClientID: c.ID,
					AuthorizeForm: "response_type=code&client_id=tf_bench&scope=openid", CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute)}
				if err := s.CreateLoginFlow(ctx, fl); err != nil {
					b.Fatal(err)
				}
				if _, err := s.GetLoginFlow(ctx, fl.ID); err != nil {
					b.Fatal(err)
				}
				if err := s.CreateSession(ctx, store.Session{ID: benchID(), UserID: u.ID, AMR: store.Strings{"pwd"}, ACR: "urn:twofold:acr:pwd",
					AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
