package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofold-idp/twofold/conformance"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// nodeDir holds the Node relying party (package.json, the lockfile, rp.mjs).
const nodeDir = "node"

// TestOpenIDClient runs panva's certified openid-client against the
// provider on each database: discovery, code flow with PKCE, state and
// nonce, ID token validation (signature included), userinfo, refresh and
// RP-initiated logout; then, signed out, a prompt=none error response that
// openid-client must surface as the provider's error. The Go test is the
// browser.
//
// Without node or the installed packages the test skips, saying how to
// install them; with CI=true it fails instead (scripts/test.sh runs npm ci).
func TestOpenIDClient(t *testing.T) {
	node := requireNode(t)
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			s := startSite(t, dialect)
			var run *nodeRun
			flowOK := false
			codeFlow, errorResponse := conformance.NodePlan.Modules[0], conformance.NodePlan.Modules[1]
			t.Run(codeFlow.Name, func(t *testing.T) {
				m := s.begin(t, conformance.NodePlan, codeFlow)
				run = m.startNode(node)
				m.openIDClientCodeFlow(run)
				flowOK = !t.Failed()
			})
			t.Run(errorResponse.Name, func(t *testing.T) {
				m := s.begin(t, conformance.NodePlan, errorResponse)
				if !flowOK {
					m.Fatalf("%s failed, so this step could not run", codeFlow.Name)
				}
				m.b = run.browser // the browser that just signed out
				m.openIDClientErrorResponse(run)
			})
		})
	}
}

func requireNode(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs the Node relying party: %s", msg)
		}
		t.Skipf("skipping the openid-client relying party: %s", msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed (Node 20 or later)")
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "openid-client", "package.json")); err != nil {
		missing("openid-client is not installed: run `npm ci` in conformance/node (scripts/test.sh does)")
	}
	return node
}

// nodeLine is one JSON line the script prints.
type nodeLine struct {
	Step                   string         `json:"step"`
	AuthorizationURL       string         `json:"authorization_url"`
	State                  string         `json:"state"`
	Nonce                  string         `json:"nonce"`
	IDToken                string         `json:"id_token"`
	IDTokenClaims          map[string]any `json:"id_token_claims"`
	Userinfo               map[string]any `json:"userinfo"`
	RefreshedIDTokenClaims map[string]any `json:"refreshed_id_token_claims"`
	RefreshedUserinfoSub   string         `json:"refreshed_userinfo_sub"`
	RefreshTokenRotated    bool           `json:"refresh_token_rotated"`
	EndSessionURL          string         `json:"end_session_url"`
	LogoutState            string         `json:"logout_state"`
	SilentAuthorizationURL string         `json:"silent_authorization_url"`
	SilentState            string         `json:"silent_state"`
	// The silent step: what openid-client made of the error response.
	Name    string `json:"name"`
	Code    string `json:"code"`
	Error   string `json:"error"`
	Message string `json:"message"`
	Cause   string `json:"cause"`
}

// nodeRun is the running script: its stdin, its JSON lines, its stderr.
type nodeRun struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   *bufio.Scanner
	stderr  *bytes.Buffer
	exited  bool
	err     error
	c       *rpClient
	browser *providertest.Browser
	start   nodeLine // the authorize step
	done    nodeLine // the done step
}

func (m *mod) startNode(node string) *nodeRun {
	m.t.Helper()
	c := m.s.client1
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, node, "rp.mjs")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(),
		"NODE_EXTRA_CA_CERTS="+m.s.env.CAFile(m.t),
		"RP_ISSUER="+m.issuer,
		"RP_CLIENT_ID="+c.id,
		"RP_CLIENT_SECRET="+c.secret,
		"RP_REDIRECT_URI="+rpCallback,
		"RP_POST_LOGOUT_REDIRECT_URI="+rpLoggedOut,
	)
	r := &nodeRun{cmd: cmd, stderr: &bytes.Buffer{}, c: c, browser: m.b}
	cmd.Stderr = r.stderr
	var err error
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		cancel()
		m.Fatalf("node: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		m.Fatalf("node: %v", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		m.Fatalf("node: %v", err)
	}
	r.lines = bufio.NewScanner(stdout)
	r.lines.Buffer(make([]byte, 0, 64<<10), 4<<20)
	// The run outlives this subtest: the dialect's test ends it.
	m.s.cleanup(func() {
		r.stdin.Close()
		r.wait()
		cancel()
	})
	return r
}

func (r *nodeRun) wait() error {
	if !r.exited {
		r.exited = true
		r.err = r.cmd.Wait()
	}
	return r.err
}

// next reads the script's next JSON line, which must be step; when the
// script stopped instead, the module fails with its stderr.
func (m *mod) next(r *nodeRun, step string) nodeLine {
	m.t.Helper()
	if !r.lines.Scan() {
		r.stdin.Close()
		err := r.wait()
		m.Fatalf("openid-client stopped before step %q (node: %v)\n%s", step, err, strings.TrimSpace(r.stderr.String()))
	}
	var l nodeLine
	if err := json.Unmarshal(r.lines.Bytes(), &l); err != nil || l.Step != step {
		m.Fatalf("openid-client printed %q, want step %q\n%s", r.lines.Text(), step, strings.TrimSpace(r.stderr.String()))
	}
	return l
}

func (m *mod) send(r *nodeRun, line string) {
	m.t.Helper()
	if _, err := io.WriteString(r.stdin, line+"\n"); err != nil {
		m.Fatalf("write to node: %v\n%s", err, strings.TrimSpace(r.stderr.String()))
	}
}

// openIDClientCodeFlow: discovery, the code flow with PKCE, state and
// nonce, ID token validation, userinfo, refresh, RP-initiated logout.
func (m *mod) openIDClientCodeFlow(r *nodeRun) {
	m.t.Helper()
	c := r.c

	// 1. The authorization request openid-client built.
	start := m.next(r, "authorize")
	r.start = start
	au, err := url.Parse(start.AuthorizationURL)
	if err != nil {
		m.Fatalf("authorization URL %q: %v", start.AuthorizationURL, err)
	}
	q := au.Query()
	m.check(strings.HasPrefix(start.AuthorizationURL, m.discString("authorization_endpoint")+"?"), "authorization URL %s is not at the authorization endpoint", start.AuthorizationURL)
	m.check(q.Get("client_id") == c.id && q.Get("response_type") == "code" && q.Get("code_challenge_method") == "S256" &&
		q.Get("code_challenge") != "" && q.Get("state") == start.State && q.Get("nonce") == start.Nonce,
		"unexpected authorization request: %v", q)

	// 2. The browser signs in; openid-client gets the callback.
	m.send(r, m.b.SignIn(start.AuthorizationURL, m.email, password, rpCallback))

	// 3. What openid-client got.
	done := m.next(r, "done")
	r.done = done
	m.check(done.IDTokenClaims["sub"] == m.user.ID, "ID token sub %v, want the user's id %s", done.IDTokenClaims["sub"], m.user.ID)
	m.check(done.IDTokenClaims["iss"] == m.issuer, "ID token iss %v", done.IDTokenClaims["iss"])
	nonce := start.Nonce
	m.checkIDToken(c, done.IDToken, idTokenExpect{nonce: &nonce})
	m.check(done.Userinfo["sub"] == m.user.ID, "userinfo sub %v", done.Userinfo["sub"])
	m.check(done.Userinfo["email"] == m.email, "userinfo email %v, want %s", done.Userinfo["email"], m.email)
	m.check(done.RefreshTokenRotated, "the refresh token was not rotated")
	m.check(done.RefreshedUserinfoSub == m.user.ID, "userinfo with the refreshed access token: sub %q", done.RefreshedUserinfoSub)
	if done.RefreshedIDTokenClaims != nil {
		m.check(done.RefreshedIDTokenClaims["sub"] == m.user.ID, "refreshed ID token sub %v", done.RefreshedIDTokenClaims["sub"])
	}

	// 4. RP-initiated logout with the URL openid-client built: back to
	// the client with its state.
	eu, err := url.Parse(done.EndSessionURL)
	if err != nil {
		m.Fatalf("end session URL %q: %v", done.EndSessionURL, err)
	}
	m.check(strings.HasPrefix(done.EndSessionURL, m.discString("end_session_endpoint")+"?"), "end session URL %s is not at end_session_endpoint", done.EndSessionURL)
	lq := eu.Query()
	m.check(lq.Get("id_token_hint") != "" && lq.Get("post_logout_redirect_uri") == rpLoggedOut && lq.Get("state") == done.LogoutState,
		"unexpected logout request: %v", lq)
	res := m.b.Get(done.EndSessionURL)
	m.check(res.StatusCode == http.StatusSeeOther && res.Location() == rpLoggedOut+"?state="+url.QueryEscape(done.LogoutState),
		"logout: HTTP %d to %q, want a redirect to %s with state", res.StatusCode, res.Location(), rpLoggedOut)
}

// openIDClientErrorResponse: after sign-out, prompt=none comes back as an
// error, and openid-client must surface it as the provider's error. It
// refuses an authorization response without iss when the provider
// advertises authorization_response_iss_parameter_supported (RFC 9207 §2:
// "In authorization responses to the client, including error responses,
// an authorization server supporting this specification MUST ... include
// the iss parameter").
func (m *mod) openIDClientErrorResponse(r *nodeRun) {
	m.t.Helper()
	u := r.done.SilentAuthorizationURL
	m.check(strings.Contains(u, "prompt=none"), "the silent authorization URL %s has no prompt=none", u)
	page, cb := m.followAll(m.b.Get(u))
	if cb == "" || !atClient(cb) {
		m.Fatalf("prompt=none after logout did not return to the client: %s (HTTP %d) %s", page.Request.URL.Path, page.StatusCode, cb)
	}
	m.expectErrorRedirect(cb, r.done.SilentState, "login_required", "interaction_required")
	m.send(r, cb)
	out := m.next(r, "silent")
	r.stdin.Close()
	if err := r.wait(); err != nil {
		m.Errorf("openid-client exited with %v\n%s", err, strings.TrimSpace(r.stderr.String()))
	}
	m.check(out.Name == "AuthorizationResponseError" && (out.Error == "login_required" || out.Error == "interaction_required"),
		"openid-client did not surface the provider's error: %s %s: %s (%s); the callback carried error=%s and iss=%q",
		out.Name, out.Code, out.Message, out.Cause, m.callbackQuery(cb).Get("error"), m.callbackQuery(cb).Get("iss"))
}
