package provider_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"html"
	"regexp"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// softKey is a software FIDO2 authenticator for tests that must craft
// what a browser would refuse to send: wrong origins, wrong RP ids,
// replays and counter regressions. It makes real ES256 signatures over
// real authenticator data; the browser suite (e2e) uses Chromium's own
// virtual authenticator instead.
type softKey struct {
	priv       *ecdsa.PrivateKey
	id         []byte
	userHandle []byte
	count      uint32
	origin     string
	rpID       string
	uv         bool // user verification (PIN or biometric)
	be         bool // backup eligible (a synced passkey)

	// Faults for the negative tests (security.md S32–S34); the zero
	// values make a well-behaved key.
	typ       string // the clientData type instead of the ceremony's
	challenge string // a challenge instead of the page's
	topOrigin string // a cross-origin call from this top-level origin
	noUP      bool   // the user-present flag unset
	bs        bool   // backed up (the backup-state flag)
	alg       int    // the COSE algorithm the public key claims, if not ES256
	badSig    bool   // a signature over other data
	handle    []byte // the user handle instead of the registered one
}

func newSoftKey(t testing.TB, origin, rpID string) *softKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softKey{priv: priv, id: id, origin: origin, rpID: rpID, uv: true, count: 1}
}

var b64 = base64.RawURLEncoding

func (k *softKey) flags(attested bool) byte {
	var f byte
	if !k.noUP {
		f |= 0x01
	}
	if k.uv {
		f |= 0x04
	}
	if k.be {
		f |= 0x08
	}
	if k.bs {
		f |= 0x10
	}
	if attested {
		f |= 0x40
	}
	return f
}

func (k *softKey) authData(attested bool) []byte {
	rp := sha256.Sum256([]byte(k.rpID))
	out := append(rp[:], k.flags(attested))
	out = binary.BigEndian.AppendUint32(out, k.count)
	if attested {
		out = append(out, make([]byte, 16)...) // AAGUID
		out = binary.BigEndian.AppendUint16(out, uint16(len(k.id)))
		out = append(out, k.id...)
		point, _ := k.priv.PublicKey.Bytes() // 0x04 || X || Y
		alg := -7
		if k.alg != 0 {
			alg = k.alg
		}
		cose, _ := cbor.Marshal(map[int]any{1: 2, 3: alg, -1: 1, -2: point[1:33], -3: point[33:65]})
		out = append(out, cose...)
	}
	return out
}

func (k *softKey) clientData(typ, challenge string) []byte {
	if k.typ != "" {
		typ = k.typ
	}
	if k.challenge != "" {
		challenge = k.challenge
	}
	cd := map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false}
	if k.topOrigin != "" {
		cd["crossOrigin"], cd["topOrigin"] = true, k.topOrigin
	}
	b, _ := json.Marshal(cd)
	return b
}

// options reads the challenge (and user handle) from a page's
// data-options attribute.
type keyPage struct {
	Ceremony  string
	Challenge string
	UserID    string
}

var dataOptions = regexp.MustCompile(`data-options="([^"]+)"`)
var ceremonyInput = regexp.MustCompile(`name="ceremony" value="([^"]+)"`)

func parseKeyPage(t *testing.T, body string) keyPage {
	t.Helper()
	m := dataOptions.FindStringSubmatch(body)
	require.Len(t, m, 2, "no WebAuthn options on the page")
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	require.NoError(t, json.Unmarshal([]byte(html.UnescapeString(m[1])), &o))
	c := ceremonyInput.FindStringSubmatch(body)
	require.Len(t, c, 2)
	return keyPage{Ceremony: c[1], Challenge: o.PublicKey.Challenge, UserID: o.PublicKey.User.ID}
}

// create answers a registration (attestation format "none").
func (k *softKey) create(t testing.TB, p keyPage) string {
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(true)})
	require.NoError(t, err)
	if uh, err := b64.DecodeString(p.UserID); err == nil {
		k.userHandle = uh
	}
	out, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(k.clientData("webauthn.create", p.Challenge)),
			"attestationObject": b64.EncodeToString(att),
			"transports":        []string{"usb"},
		},
	})
	return string(out)
}

// get answers an assertion, counting up like a real key.
func (k *softKey) get(t testing.TB, p keyPage) string {
	k.count++
	auth := k.authData(false)
	cd := k.clientData("webauthn.get", p.Challenge)
	sum := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, auth...), sum[:]...))
	if k.badSig {
		digest = sha256.Sum256(append(digest[:], 0))
	}
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	require.NoError(t, err)
	resp := map[string]any{
		"clientDataJSON":    b64.EncodeToString(cd),
		"authenticatorData": b64.EncodeToString(auth),
		"signature":         b64.EncodeToString(sig),
	}
	if k.handle != nil {
		resp["userHandle"] = b64.EncodeToString(k.handle)
	} else if k.userHandle != nil {
		resp["userHandle"] = b64.EncodeToString(k.userHandle)
	}
	out, _ := json.Marshal(map[string]any{"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id),
		"type": "public-key", "response": resp})
	return string(out)
}
