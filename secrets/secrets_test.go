package secrets

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSealOpen(t *testing.T) {
	key, err := ParseKey(GenerateKey())
	require.NoError(t, err)
	box, err := New(key)
	require.NoError(t, err)

	sealed := box.Seal([]byte("JBSWY3DPEHPK3PXP"), "totp:f1")
	assert.False(t, bytes.Contains(sealed, []byte("JBSWY3DPEHPK3PXP")), "no plaintext at rest")
	pt, err := box.Open(sealed, "totp:f1")
	require.NoError(t, err)
	assert.Equal(t, "JBSWY3DPEHPK3PXP", string(pt))

	other, _ := New(bytes.Repeat([]byte{7}, KeySize))
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name   string
		box    *Box
		sealed []byte
		ad     string
	}{
		{"other row", box, sealed, "totp:f2"},
		{"other key", other, sealed, "totp:f1"},
		{"tampered", box, tampered, "totp:f1"},
		{"truncated", box, sealed[:10], "totp:f1"},
		{"empty", box, nil, "totp:f1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.box.Open(tc.sealed, tc.ad)
			require.ErrorIs(t, err, ErrOpen)
		})
	}
}

func TestParseKey(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, KeySize)
	for _, s := range []string{hex.EncodeToString(raw), "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s"} {
		k, err := ParseKey(s)
		require.NoError(t, err, s)
		assert.Equal(t, raw, k)
	}
	for _, s := range []string{"", "short", "q6urq6ur", "not base64 at all!!"} {
		_, err := ParseKey(s)
		assert.Error(t, err, s)
	}
	_, err := New(raw[:16])
	assert.Error(t, err)
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twofold.db.key")
	k1, created, err := LoadOrCreateKeyFile(path)
	require.NoError(t, err)
	assert.True(t, created)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	k2, created, err := LoadOrCreateKeyFile(path)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, k1, k2, "the key survives a restart")

	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o600))
	_, _, err = LoadOrCreateKeyFile(path)
	assert.Error(t, err)
}
