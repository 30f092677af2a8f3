package provider_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// dbLink stands between the provider and PostgreSQL and can cut them
// apart the way a database restart does (pg_ctl restart -m fast): every
// open connection gets PostgreSQL's FATAL 57P01 and is closed, and new
// ones are turned away until the database is back. The database itself is the real one, shared with
// the other tests, which a real restart would disturb.
type dbLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newDBLink(t *testing.T, target string) *dbLink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &dbLink{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); l.cut() })
	go l.serve()
	return l
}

func (l *dbLink) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		if l.down { // checked with the registration, so stop misses none
			l.mu.Unlock()
			c.Close() // "the database system is starting up"
			up.Close()
			continue
		}
		l.conns[c], l.conns[up] = true, false // true: the provider's side
		l.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// adminShutdown is the message PostgreSQL sends each client as a fast
// shutdown ends its connection: an ErrorResponse, FATAL, 57P01.
var adminShutdown = func() []byte {
	fields := "SFATAL\x00VFATAL\x00C57P01\x00Mterminating connection due to administrator command\x00\x00"
	n := 4 + len(fields)
	return append([]byte{'E', byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, fields...)
}()

// cut ends every open connection as a fast shutdown does: the provider's
// side reads 57P01, then the connection closes.
func (l *dbLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, provider := range l.conns {
		if provider {
			_, _ = c.Write(adminShutdown)
		}
		c.Close()
		delete(l.conns, c)
	}
}

// stop is the database going down; start is it coming back.
func (l *dbLink) stop() {
	l.mu.Lock()
	l.down = true
	l.mu.Unlock()
	l.cut()
}

func (l *dbLink) start() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

// TestDatabaseRestartMidLogin is security.md §3.11's restart: the
// database goes down between the password and the TOTP step, between the
// TOTP step and consent, and during the code's exchange. Each step fails
// closed while it is down (an error, no code, no session, no token), the
// pool reconnects when it is back, and the same step then goes on: the
// sign-in resumes, its TOTP code and its authorization code each used
// once, and the tokens say what happened.
func TestDatabaseRestartMidLogin(t *testing.T) {
	pg, err := url.Parse(sqltest.PostgresURL(t))
	require.NoError(t, err)
	link := newDBLink(t, pg.Host)
	pg.Host = link.ln.Addr().String()
	e := startMFAEnv(t, "postgres", providertest.Options{DatabaseURL: pg.String()})
	secret := e.addTOTP(t, e.user.ID)
	ctx := context.Background()

	// back waits for the pool to reconnect: a sign-in can start again.
	back := func() {
		t.Helper()
		link.start()
		authURL, _ := e.authURL()
		require.Eventually(t, func() bool {
			p := providertest.NewBrowser(t).Get(authURL)
			return p.StatusCode == http.StatusSeeOther && strings.Contains(p.Location(), "/login?flow=")
		}, 10*time.Second, 100*time.Millisecond, "the pool did not reconnect")
	}
	failedClosed := func(p providertest.Page, what string) {
		t.Helper()
		assert.Equal(t, http.StatusServiceUnavailable, p.StatusCode, "%s: %s", what, p.Body)
		assert.Contains(t, p.Body, "Wait a moment, then try again.", "%s: not an expired link", what)
		assert.Empty(t, p.Header.Get("Location"), "%s: nobody is redirected", what)
	}

	t.Run("between password and TOTP", func(t *testing.T) {
		b := providertest.NewBrowser(t)
		authURL, verifier := e.authURL()
		page := e.toSecondStep(t, b, authURL, "ada@example.com")
		// The clock stays in this code's step (e.code would move it a
		// step on, and the wait for the pool could take it past the
		// ±1 window); it moves on once the subtest is done.
		code, err := mfa.TOTPCode(secret, e.clock.Now())
		require.NoError(t, err)
		defer e.clock.Advance(30 * time.Second)
		link.stop()
		failedClosed(e.submitCode(b, page, "totp", code), "TOTP while down")
		assert.Zero(t, sessionCount(t, e, b), "no session")
		back()
		// Nothing was written while it was down: the same code, once.
		p := e.submitCode(b, page, "totp", code)
		require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
		c := e.tokensFrom(t, p.Location(), verifier)
		assert.Contains(t, c.Amr, "otp")
		assert.Contains(t, c.Amr, "mfa")
		// The code is spent.
		b2 := providertest.NewBrowser(t)
		authURL, _ = e.authURL()
		page = e.toSecondStep(t, b2, authURL, "ada@example.com")
		assert.Equal(t, http.StatusUnauthorized, e.submitCode(b2, page, "totp", code).StatusCode)
	})

	t.Run("between TOTP and consent", func(t *testing.T) {
		third := newRP(t, e.Env, clients.Spec{}) // third party: asks for consent
		b := providertest.NewBrowser(t)
		verifier := oauth2.GenerateVerifier()
		authURL := third.conf.AuthCodeURL("st-consent-1", oauth2.S256ChallengeOption(verifier), oidcNonce("n-consent-1"))
		page := e.toSecondStep(t, b, authURL, "ada@example.com")
		p, done := b.Follow(e.submitCode(b, page, "totp", e.code(t, secret)), redirectURI)
		require.Empty(t, done)
		require.Contains(t, p.Request.URL.Path, "/consent", p.Body)
		form := p.Hidden()
		form.Set("decision", "allow")
		link.stop()
		failedClosed(b.Post(e.URL+"/consent", form), "consent while down")
		back()
		p = b.Post(e.URL+"/consent", form)
		require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
		q := mustQuery(t, p.Location())
		require.NotEmpty(t, q.Get("code"), p.Location())
		_, idt := third.exchange(t, q.Get("code"), verifier)
		assert.Contains(t, claimsOf(t, idt).Amr, "mfa")
		// The consent answer was used: posting it again issues nothing.
		again := b.Post(e.URL+"/consent", form)
		assert.Equal(t, http.StatusBadRequest, again.StatusCode, again.Body)
		assert.Empty(t, again.Header.Get("Location"))
	})

	t.Run("during the code's exchange", func(t *testing.T) {
		b := providertest.NewBrowser(t)
		authURL, verifier := e.authURL()
		page := e.toSecondStep(t, b, authURL, "ada@example.com")
		p := e.submitCode(b, page, "totp", e.code(t, secret))
		require.Equal(t, http.StatusSeeOther, p.StatusCode, p.Body)
		code := mustQuery(t, p.Location()).Get("code")
		require.NotEmpty(t, code)
		link.stop()
		_, err := e.rp.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		var re *oauth2.RetrieveError
		require.True(t, errors.As(err, &re), "%v", err)
		assert.GreaterOrEqual(t, re.Response.StatusCode, 500)
		assert.Equal(t, "server_error", re.ErrorCode)
		back()
		c := e.tokensFrom(t, p.Location(), verifier)
		assert.Contains(t, c.Amr, "mfa")
		_, err = e.rp.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		require.True(t, errors.As(err, &re), "%v", err)
		assert.Equal(t, "invalid_grant", re.ErrorCode, "a code is exchanged once")
	})

	t.Run("the pool after a restart", func(t *testing.T) {
		// Many sign-ins at once leave many idle connections, all dead
		// after the restart. None of them fails a sign-in afterwards:
		// lib/pq reports a FATAL or a closed connection as
		// driver.ErrBadConn, and database/sql then takes another, and at
		// the third try a new one.
		authURL, _ := e.authURL()
		starts := func() (ok int) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for range 24 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := providertest.NewBrowser(t).Get(authURL)
					mu.Lock()
					defer mu.Unlock()
					if p.StatusCode == http.StatusSeeOther && strings.Contains(p.Location(), "/login?flow=") {
						ok++
					}
				}()
			}
			wg.Wait()
			return ok
		}
		require.Equal(t, 24, starts())
		link.stop()
		p := providertest.NewBrowser(t).Get(authURL)
		assert.Equal(t, "server_error", mustQuery(t, p.Location()).Get("error"), "down: the client is told")
		link.start()
		for i := range 24 {
			p := providertest.NewBrowser(t).Get(authURL)
			require.Contains(t, p.Location(), "/login?flow=", "sign-in %d after the restart met a dead connection", i)
		}
	})
}
