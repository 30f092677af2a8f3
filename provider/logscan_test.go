package provider_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/mail"
	"github.com/twofold-idp/twofold/mail/mailtest"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// logBuffer is a log the server writes from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// noisyAttrs are log attributes made of digits and hex that a 6-digit
// code could match by chance; none of them is a request's input.
var noisyAttrs = regexp.MustCompile(`\b(time|duration|request_id|remote|client|bytes)=\S+`)

// TestLogsHoldNoSecrets (security.md §3.9): with the server logging at
// debug level, as `serve --log-level debug` does, a run through sign-ins
// with right and wrong codes, tokens, refused token requests and a
// forgotten password leaves no password, code, secret or token in the
// log, and no query string.
func TestLogsHoldNoSecrets(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			var log logBuffer
			smtp := mailtest.Start(t, mailtest.Options{})
			sender, err := mail.New(mail.Config{Addr: smtp.Addr, From: "Twofold <no-reply@example.com>", TLS: mail.TLSNone})
			require.NoError(t, err)
			e := &emailEnv{mfaEnv: startMFAEnv(t, dialect, providertest.Options{Mailer: sender, Log: &log}), smtp: smtp}
			totpSecret := e.addTOTP(t, e.user.ID)
			recovery := e.addCodes(t, e.user.ID)
			secrets := append([]string{password, totpSecret, e.rp.conf.ClientSecret}, recovery...)
			codes := []string{} // six digits: matched as whole numbers

			// A sign-in with a wrong authenticator code, then the right one.
			b := providertest.NewBrowser(t)
			authURL, verifier := e.authURL()
			page := e.toSecondStep(t, b, authURL, "ada@example.com")
			good := e.code(t, totpSecret)
			bad := other(good)
			codes = append(codes, good, bad)
			require.Equal(t, http.StatusUnauthorized, e.submitCode(b, page, "totp", bad).StatusCode)
			cb := b.Finish(e.submitCode(b, page, "totp", good), redirectURI)
			code := mustQuery(t, cb).Get("code")
			tok, _ := e.rp.exchange(t, code, verifier)
			secrets = append(secrets, code, verifier, tok.AccessToken, tok.RefreshToken, tok.Extra("id_token").(string))

			// Refresh, userinfo, introspection, revocation.
			tok2, err := e.rp.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			require.NoError(t, err)
			secrets = append(secrets, tok2.AccessToken, tok2.RefreshToken)
			resp, body := do(t, newReq(t, "GET", e.URL+"/userinfo", nil, "Bearer "+tok2.AccessToken))
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Equal(t, true, introspect(t, e.Env, e.rp.conf.ClientID, e.rp.conf.ClientSecret, tok2.AccessToken)["active"])
			rev := newReq(t, "POST", e.URL+"/revoke", url.Values{"token": {tok2.RefreshToken}}, "")
			rev.SetBasicAuth(url.QueryEscape(e.rp.conf.ClientID), url.QueryEscape(e.rp.conf.ClientSecret))
			resp, body = do(t, rev)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)

			// Refused token requests: the code again (which revokes its tokens), a wrong verifier, a
			// wrong client secret, a made-up refresh token.
			_, err = e.rp.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			requireOAuthError(t, err, "invalid_grant")
			b2 := providertest.NewBrowser(t)
			authURL2, verifier2 := e.authURL()
			page = e.toSecondStep(t, b2, authURL2, "ada@example.com")
			code2 := mustQuery(t, b2.Finish(e.submitCode(b2, page, "recovery", recovery[0]), redirectURI)).Get("code")
			wrongVerifier := oauth2.GenerateVerifier()
			_, err = e.rp.conf.Exchange(ctx, code2, oauth2.VerifierOption(wrongVerifier))
			requireOAuthError(t, err, "invalid_grant")
			wrongSecret := e.rp.conf
			wrongSecret.ClientSecret = "a-guessed-client-secret-8f3k2j"
			_, err = wrongSecret.Exchange(ctx, code2, oauth2.VerifierOption(verifier2))
			requireOAuthError(t, err, "invalid_client")
			madeUp := "ory_rt_" + strings.Repeat("q7", 21) + ".sig"
			_, err = e.rp.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: madeUp}).Token()
			requireOAuthError(t, err, "invalid_grant")
			secrets = append(secrets, code2, verifier2, wrongVerifier, wrongSecret.ClientSecret, madeUp)

			// A wrong password, then a forgotten one: a wrong mailed code,
			// then the right one and a new password.
			b3 := providertest.NewBrowser(t)
			login, _ := b3.Follow(b3.Get(authURL), redirectURI)
			form := login.Hidden()
			form.Set("email", "ada@example.com")
			const wrongPassword = "not-the-password-q8w7e6"
			form.Set("password", wrongPassword)
			require.Equal(t, http.StatusUnauthorized, b3.Post(e.URL+"/login", form).StatusCode)
			fp := forgotPage(t, e, b3)
			require.Equal(t, http.StatusOK, forgotPost(b3, e, fp, url.Values{"action": {"send"}, "email": {"ada@example.com"}}).StatusCode)
			m := mailedCode.FindStringSubmatch(mailsAbout(t, smtp, "Your Twofold password reset code", 1)[0].Body)
			require.Len(t, m, 2)
			const newPassword = "a new remembered passphrase"
			reset := func(code string) int {
				return forgotPost(b3, e, fp, url.Values{"action": {"reset"}, "email": {"ada@example.com"},
					"code": {code}, "password": {newPassword}, "repeat": {newPassword}}).StatusCode
			}
			require.Equal(t, http.StatusBadRequest, reset(other(m[1])))
			require.Equal(t, http.StatusOK, reset(m[1]))
			secrets = append(secrets, wrongPassword, newPassword)
			codes = append(codes, m[1], other(m[1]))

			// The cookies of every browser.
			u, _ := url.Parse(e.URL)
			for _, br := range []*providertest.Browser{b, b2, b3} {
				for _, c := range br.Jar.Cookies(u) {
					secrets = append(secrets, c.Value)
				}
			}

			out := log.String()
			// The scan saw what it should: the refused requests' records
			// and every request's line.
			require.Contains(t, out, `msg="token request refused"`)
			require.Contains(t, out, `route="POST /login/2fa"`)
			require.Contains(t, out, `route="POST /password/forgot"`)
			for _, s := range secrets {
				require.GreaterOrEqual(t, len(s), 8, "a secret too short to scan for: %q", s)
				assert.Empty(t, linesMatching(out, regexp.MustCompile(regexp.QuoteMeta(s))), "secret %q in the log", s)
			}
			quiet := noisyAttrs.ReplaceAllString(out, "")
			for _, c := range codes {
				assert.Empty(t, linesMatching(quiet, regexp.MustCompile(`(^|\D)`+c+`(\D|$)`)), "code %s in the log", c)
			}
			assert.Empty(t, linesMatching(out, regexp.MustCompile(`[?&](code|state|token|password|flow)=`)), "a query string in the log")
		})
	}
}

// linesMatching returns the lines of log that re matches.
func linesMatching(log string, re *regexp.Regexp) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}
