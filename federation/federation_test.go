package federation

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/twofold-idp/twofold/store"
)

// TestR03_UpstreamValidate: each problem names its field; tokens from an
// upstream travel over TLS unless it is on this machine.
func TestR03_UpstreamValidate(t *testing.T) {
	good := Upstream{ID: "corp", Name: "Corp SSO", Issuer: "https://sso.example.com", ClientID: "twofold", Population: store.PopulationAgent}
	assert.Empty(t, good.Validate())
	for _, tc := range []struct {
		edit func(*Upstream)
		want string
	}{
		{func(u *Upstream) { u.ID = "" }, "id:"},
		{func(u *Upstream) { u.ID = "a/b" }, "id:"},
		{func(u *Upstream) { u.Name = "" }, "name:"},
		{func(u *Upstream) { u.Issuer = "http://sso.example.com" }, "issuer:"},
		{func(u *Upstream) { u.Issuer = "sso.example.com" }, "issuer:"},
		{func(u *Upstream) { u.ClientID = "" }, "client_id:"},
		{func(u *Upstream) { u.Population = "staff" }, "population:"},
	} {
		u := good
		tc.edit(&u)
		got := u.Validate()
		if assert.Len(t, got, 1, tc.want) {
			assert.Contains(t, got[0], tc.want)
		}
	}
	for _, issuer := range []string{"http://127.0.0.1:8080", "http://localhost:9000", "http://[::1]:1"} {
		u := good
		u.Issuer = issuer
		assert.Empty(t, u.Validate(), issuer)
	}
}

// TestR03_MayCreate: with allowed domains, only their addresses get an
// account at a first sign-in.
func TestR03_MayCreate(t *testing.T) {
	open := Upstream{}
	assert.True(t, open.MayCreate("anyone@example.net"))
	corp := Upstream{AllowedDomains: []string{"example.com"}}
	for email, want := range map[string]bool{
		"ada@example.com": true, "ada@EXAMPLE.com": true, "ada@example.com.evil.net": false,
		"ada@sub.example.com": false, "no-at-sign": false, "ada@example.net": false,
	} {
		assert.Equal(t, want, corp.MayCreate(email), email)
	}
}
