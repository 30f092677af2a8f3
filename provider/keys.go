package provider

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store"
)

// Signing algorithms Twofold offers. RS256 is the default (OIDC Core
// §15.1 requires it); ES256 is smaller and ~25× cheaper to sign.
const (
	RS256 = "RS256"
	ES256 = "ES256"
)

// Algs lists the supported algorithms, default first.
var Algs = []string{RS256, ES256}

// signingKey is one usable key.
type signingKey struct {
	kid       string
	alg       string
	private   crypto.Signer
	active    bool
	retiredAt *time.Time
}

// KID is the key's id.
func (k *signingKey) KID() string { return k.kid }

// KeySet holds the signing keys, read from the store and sealed there
// under the secrets key. The JWKS is serialised once per change, never
// per request. Replicas pick up a rotation within refreshEvery, or at once
// when they meet a kid they do not know.
type KeySet struct {
	store store.Store
	box   *secrets.Box
	// retain is how long a retired key keeps verifying: the longest
	// lifetime of anything it signed.
	retain time.Duration
	now    func() time.Time

	mu       sync.RWMutex
	keys     map[string]*signingKey
	active   map[string]*signingKey // by alg
	jwks     []byte
	loadedAt time.Time
}

const refreshEvery = time.Minute

// NewKeySet loads the keys, creating an active key for each algorithm that
// has none (first start).
func NewKeySet(ctx context.Context, s store.Store, box *secrets.Box, retain time.Duration, now func() time.Time) (*KeySet, error) {
	ks := &KeySet{store: s, box: box, retain: retain, now: now}
	if err := ks.load(ctx); err != nil {
		return nil, err
	}
	for _, alg := range Algs {
		if ks.activeKey(alg) == nil {
			if _, err := ks.Rotate(ctx, alg); err != nil {
				return nil, err
			}
		}
	}
	return ks, nil
}

// Rotate makes a new active key for alg and returns its id; the previous
// one is retired and stays in the JWKS until everything it signed has
// expired. An error with an id means the key was stored but this key set
// could not reload (it will at its next refresh).
func (ks *KeySet) Rotate(ctx context.Context, alg string) (kid string, err error) {
	priv, err := generateKey(alg)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode %s key: %w", alg, err)
	}
	kidBytes := make([]byte, 8)
	_, _ = rand.Read(kidBytes)
	kid = hex.EncodeToString(kidBytes)
	now := ks.now().UTC()
	err = ks.store.InTx(ctx, func(ctx context.Context) error {
		if err := ks.store.RetireSigningKeys(ctx, alg, now); err != nil {
			return err
		}
		return ks.store.CreateSigningKey(ctx, store.SigningKey{
			KID: kid, Alg: alg, PrivateKeyEnc: ks.box.Seal(der, "signing-key:"+kid), Active: true, CreatedAt: now,
		})
	})
	if err != nil {
		return "", fmt.Errorf("rotate %s key: %w", alg, err)
	}
	return kid, ks.load(ctx)
}

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case RS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

// load reads every key, drops retired keys past retention, and rebuilds
// the JWKS.
func (ks *KeySet) load(ctx context.Context) error {
	rows, err := ks.store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	now := ks.now()
	keys := map[string]*signingKey{}
	active := map[string]*signingKey{}
	var pub []jose.JSONWebKey
	for _, r := range rows {
		if !r.Active && r.RetiredAt != nil && now.Sub(*r.RetiredAt) > ks.retain {
			// Nothing it signed is still valid: forget it.
			_ = ks.store.DeleteSigningKey(ctx, r.KID)
			continue
		}
		der, err := ks.box.Open(r.PrivateKeyEnc, "signing-key:"+r.KID)
		if err != nil {
			return fmt.Errorf("open signing key %s: %w (is TWOFOLD_SECRETS_KEY the one this database was created with?)", r.KID, err)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return fmt.Errorf("parse signing key %s: %w", r.KID, err)
		}
		signer, ok := parsed.(crypto.Signer)
		if !ok {
			return fmt.Errorf("signing key %s is not a signer", r.KID)
		}
		k := &signingKey{kid: r.KID, alg: r.Alg, private: signer, active: r.Active, retiredAt: r.RetiredAt}
		keys[k.kid] = k
		if k.active && active[k.alg] == nil {
			active[k.alg] = k
		}
		pub = append(pub, jose.JSONWebKey{Key: signer.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: pub})
	if err != nil {
		return fmt.Errorf("encode JWKS: %w", err)
	}
	ks.mu.Lock()
	ks.keys, ks.active, ks.jwks, ks.loadedAt = keys, active, jwks, now
	ks.mu.Unlock()
	return nil
}

// refresh reloads the keys when the last load is older than refreshEvery.
func (ks *KeySet) refresh(ctx context.Context, force bool) {
	ks.mu.RLock()
	stale := force || ks.now().Sub(ks.loadedAt) > refreshEvery
	ks.mu.RUnlock()
	if stale {
		_ = ks.load(ctx) // on error keep serving the keys we have
	}
}

func (ks *KeySet) activeKey(alg string) *signingKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.active[alg]
}

// Active returns the active key of alg, reloading once if a replica
// rotated it away.
func (ks *KeySet) Active(ctx context.Context, alg string) (*signingKey, error) {
	ks.refresh(ctx, false)
	if k := ks.activeKey(alg); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("no active %s signing key", alg)
}

// Lookup returns a key by kid, reloading once when it is unknown.
func (ks *KeySet) Lookup(ctx context.Context, kid string) (*signingKey, bool) {
	for attempt := range 2 {
		ks.mu.RLock()
		k, ok := ks.keys[kid]
		ks.mu.RUnlock()
		if ok || attempt == 1 {
			return k, ok
		}
		ks.refresh(ctx, true)
	}
	return nil, false
}

// JWKS returns the serialised public key set.
func (ks *KeySet) JWKS(ctx context.Context) []byte {
	ks.refresh(ctx, false)
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.jwks
}

// PublicKeys returns the public keys as a go-jose v4 set, for verifying.
func (ks *KeySet) PublicKeys(ctx context.Context) jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(ks.JWKS(ctx), &set)
	return set
}

// ErrUnknownKey is a token signed by no key of ours.
var ErrUnknownKey = errors.New("token signed by an unknown key")

// Verify checks a compact JWS against our keys (any alg we offer, never
// none) and returns its payload. Expiry is the caller's business.
func (ks *KeySet) Verify(ctx context.Context, token string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must have exactly one signature")
	}
	h := jws.Signatures[0].Header
	k, ok := ks.Lookup(ctx, h.KeyID)
	if !ok || h.Algorithm != k.alg {
		return nil, ErrUnknownKey
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); isAccessTokenType(typ) {
		return nil, ErrWrongTokenType // an access token is no ID token
	}
	return jws.Verify(k.private.Public())
}
