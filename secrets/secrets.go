// Package secrets seals data at rest (TOTP secrets, signing keys) with
// AES-256-GCM under the key from TWOFOLD_SECRETS_KEY. A sealed value is
// version byte | nonce | ciphertext+tag; the associated data binds each
// value to where it is stored (for example "totp:"+factorID), so a sealed
// secret copied into another row does not open.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the length of the secrets key in bytes.
const KeySize = 32

const version byte = 1

// ErrOpen means a sealed value could not be opened: wrong key, wrong
// associated data, or tampering.
var ErrOpen = errors.New("secrets: cannot open sealed value")

// Box seals and opens values.
type Box struct {
	aead cipher.AEAD
}

// New makes a Box from a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext bound to ad.
func (b *Box) Seal(plaintext []byte, ad string) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, plaintext, []byte(ad))
}

// Open decrypts a value made by Seal with the same ad.
func (b *Box) Open(sealed []byte, ad string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(ad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// ParseKey decodes a key given as standard or URL-safe base64 (with or
// without padding) or as 64 hex characters.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := decodeHex(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("must decode to %d bytes, got %d", KeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("must be %d bytes in base64 or hex (generate one with: openssl rand -base64 32)", KeySize)
}

func decodeHex(s string) ([]byte, error) { return hex.DecodeString(s) }

// GenerateKey returns a new random key, base64-encoded.
func GenerateKey() string {
	k := make([]byte, KeySize)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// LoadOrCreateKeyFile reads a base64 key from path, or creates the file
// (mode 0600) with a new key when it does not exist. Used by dev mode.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(data))
		if err != nil {
			return nil, false, fmt.Errorf("secrets key file %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read secrets key file: %w", err)
	}
	enc := GenerateKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create secrets key file: %w", err)
	}
	if _, err := f.WriteString(enc + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write secrets key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write secrets key file: %w", err)
	}
	k, err := ParseKey(enc)
	return k, true, err
}
