package admin_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/twofold-idp/twofold/admin"
	"github.com/twofold-idp/twofold/store"
)

// TestR10_ParseMethods: the console's checkboxes and the CLI's --allow
// read the same way; the default choice is kept as no list.
func TestR10_ParseMethods(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want store.Strings
		err  string
	}{
		{in: []string{"totp"}, want: store.Strings{"totp"}},
		{in: []string{" TOTP ", "sms", "totp"}, want: store.Strings{"totp", "sms"}},
		{in: []string{"webauthn", "email", "totp"}, want: nil}, // the defaults
		{in: []string{"totp", "webauthn", "email", "sms"}, want: store.Strings{"totp", "webauthn", "email", "sms"}},
		{in: nil, err: "at least one"},
		{in: []string{"totp", "carrier-pigeon"}, err: `"carrier-pigeon"`},
	} {
		got, err := admin.ParseMethods(tc.in)
		if tc.err != "" {
			if assert.Error(t, err, tc.in) {
				assert.Contains(t, err.Error(), tc.err)
			}
			continue
		}
		assert.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, strings.Join(tc.in, ","))
	}
}
