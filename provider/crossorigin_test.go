package provider_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
)

// postWith posts form to u on b with extra headers and a content type.
func postWith(t *testing.T, b *providertest.Browser, u, contentType, body string, headers map[string]string) *http.Response {
	t.Helper()
	req := rawReq(t, u, contentType, body)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := b.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res
}

// TestCrossSiteFormsRefused (security.md §3.5): a hosted page's form that
// a browser says came from another site (Sec-Fetch-Site, else Origin)
// is refused before it is read, with its CSRF token right; a form sent
// as text/plain is refused too. The protocol endpoints relying parties
// post to from their own sites still answer them.
func TestCrossSiteFormsRefused(t *testing.T) {
	ctx := context.Background()
	e := newConsoleEnv(t, newMFAEnv(t, "sqlite"))
	authURL, _ := e.authURL()
	const form = "application/x-www-form-urlencoded"

	t.Run("sign-in", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			headers map[string]string
			status  int
		}{
			{"another site", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"a sibling subdomain", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
			{"an old browser's Origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
			{"this site", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
			{"typed by the user", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusSeeOther},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := providertest.NewBrowser(t)
				login, _ := b.Follow(b.Get(authURL), redirectURI)
				f := login.Hidden()
				f.Set("email", "ada@example.com")
				f.Set("password", password)
				res := postWith(t, b, e.URL+"/login", form, f.Encode(), tc.headers)
				assert.Equal(t, tc.status, res.StatusCode)
				if tc.status == http.StatusForbidden {
					assert.Zero(t, sessionCount(t, e.mfaEnv, b), "no session")
				}
			})
		}
		b := providertest.NewBrowser(t)
		login, _ := b.Follow(b.Get(authURL), redirectURI)
		f := login.Hidden()
		f.Set("email", "ada@example.com")
		f.Set("password", password)
		res := postWith(t, b, e.URL+"/login", "text/plain", strings.ReplaceAll(f.Encode(), "&", "\n"), nil)
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "text/plain: no form, no CSRF token")
		assert.Zero(t, sessionCount(t, e.mfaEnv, b))
	})

	t.Run("admin console", func(t *testing.T) {
		b, page := e.console(t)
		create := url.Values{"action": {"create-user"}, "email": {"eve@example.com"}, "population": {"agent"}, "csrf": {page.Hidden().Get("csrf")}}
		for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}} {
			res := postWith(t, b, e.URL+"/admin", form, create.Encode(), h)
			assert.Equal(t, http.StatusForbidden, res.StatusCode, "%v", h)
		}
		_, err := e.Store.GetUserByEmail(ctx, store.PopulationAgent, "eve@example.com")
		assert.ErrorIs(t, err, store.ErrNotFound, "nothing created")
		assert.Empty(t, e.events(t, "user.created"))
	})

	t.Run("protocol endpoints", func(t *testing.T) {
		b := providertest.NewBrowser(t)
		// A single-page app redeeming a code from its own origin.
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(e.rp.conf.ClientID)+":"+url.QueryEscape(e.rp.conf.ClientSecret)))
		res := postWith(t, b, e.URL+"/token", form, url.Values{"grant_type": {"authorization_code"}, "code": {"made-up"},
			"redirect_uri": {redirectURI}}.Encode(),
			map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example.com", "Authorization": basic})
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, "the token endpoint answers other sites (invalid_grant, not 403)")
		// An authorization request posted from a relying party's page.
		u, err := url.Parse(authURL)
		require.NoError(t, err)
		res = postWith(t, b, e.URL+"/authorize", form, u.RawQuery, map[string]string{"Sec-Fetch-Site": "cross-site"})
		assert.Equal(t, http.StatusSeeOther, res.StatusCode, "on to the sign-in")
	})
}
