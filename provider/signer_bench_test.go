package provider

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// BenchmarkIDTokenSign signs an ID token with the claims Twofold puts in
// one, through the provider's signer (the active key of the algorithm,
// its kid stamped, go-jose underneath), for each algorithm.
func BenchmarkIDTokenSign(b *testing.B) {
	ctx := context.Background()
	key, err := secrets.ParseKey(secrets.GenerateKey())
	if err != nil {
		b.Fatal(err)
	}
	box, err := secrets.New(key)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := NewKeySet(ctx, sqltest.Open(b, "sqlite"), box, time.Hour, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	claims := (&jwt.IDTokenClaims{
		JTI: "0f6b2d1c-1111-4a4a-9d9d-222233334444", Issuer: "https://id.example.com", Subject: "5f2b7c0e9a8d4e3f1a2b3c4d5e6f7a8b",
		Audience: []string{"tf_3kq9x0a1b2c3d4e5"}, Nonce: "n-0S6_WzA2Mj", ExpiresAt: now.Add(15 * time.Minute), IssuedAt: now,
		AuthTime: now, AccessTokenHash: "77QmUPtjPfzWtF2AnpK9RQ",
		AuthenticationContextClassReference: "urn:twofold:acr:mfa", AuthenticationMethodsReferences: []string{"pwd", "otp", "mfa"},
		Extra: map[string]any{"sid": "9c1d3f0e8b7a6c5d4e3f2a1b0c9d8e7f", "azp": "tf_3kq9x0a1b2c3d4e5"},
	}).ToMapClaims()
	for _, alg := range Algs {
		b.Run(alg, func(b *testing.B) {
			s := &tokenSigner{keys: keys, defaultAlg: alg}
			for b.Loop() {
				c := jwt.MapClaims{}
				for k, v := range claims {
					c[k] = v
				}
				if _, _, err := s.Generate(ctx, c, &jwt.Headers{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/parallel", func(b *testing.B) {
			s := &tokenSigner{keys: keys, defaultAlg: alg}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c := jwt.MapClaims{}
					for k, v := range claims {
						c[k] = v
					}
					if _, _, err := s.Generate(ctx, c, &jwt.Headers{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSignBound is the bare signature the ID token pays for:
// crypto/rsa PKCS#1 v1.5 over SHA-256 with a 2048-bit key, and crypto/ecdsa
// P-256. BenchmarkIDTokenSign over this is the issuance's share of the
// signing bound (issue 7: RS256 ID tokens at ≥ 0.8 of it).
func BenchmarkSignBound(b *testing.B) {
	digest := sha256.Sum256(make([]byte, 700)) // an ID token's signing input is about this long
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	sign := map[string]func() error{
		RS256: func() error { _, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, digest[:]); return err },
		ES256: func() error { _, err := ecdsa.SignASN1(rand.Reader, ecKey, digest[:]); return err },
	}
	for _, alg := range Algs {
		b.Run(alg, func(b *testing.B) {
			for b.Loop() {
				if err := sign[alg](); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := sign[alg](); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
