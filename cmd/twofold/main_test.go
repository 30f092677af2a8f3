package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// result is what one in-process run of the CLI produced.
type result struct {
	code           int
	stdout, stderr string
}

// cheapArgon is OWASP's cheapest argon2id minimum (7 MiB, the least
// memory per hash in tests); the defaults are tested in the accounts
// package.
var cheapArgon = []string{"TWOFOLD_PASSWORD_ARGON2_MEMORY_KIB=7168", "TWOFOLD_PASSWORD_ARGON2_ITERATIONS=5"}

// twofold runs the CLI with args, the given environment and stdin.
func twofold(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	return twofoldCtx(context.Background(), env, stdin, args...)
}

func twofoldCtx(ctx context.Context, env []string, stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	code := run(ctx, args, append(append([]string{}, cheapArgon...), env...), strings.NewReader(stdin), &out, &errOut)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// migratedDB returns the env of a fresh, migrated database of dialect.
func migratedDB(t *testing.T, dialect string) []string {
	t.Helper()
	env := []string{"TWOFOLD_DATABASE_URL=" + sqltest.URL(t, dialect)}
	r := twofold(t, env, "", "migrate", "up")
	require.Equal(t, 0, r.code, r.stderr)
	return env
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "twofold.db")
	writeFile := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	good := "TWOFOLD_DATABASE_URL=sqlite:" + dbPath
	tests := []struct {
		name   string
		env    []string
		config string // YAML file body, if any
		want   []string
	}{
		{name: "unknown yaml key", config: "issuer: http://localhost:8080\nlisten_addr: :9000\n", env: []string{good},
			want: []string{"field listen_addr not found"}},
		{name: "unknown nested yaml key", config: "log:\n  colour: true\n", env: []string{good},
			want: []string{"field colour not found"}},
		{name: "unknown env variable", env: []string{good, "TWOFOLD_LISTEN_ADDR=:9000"},
			want: []string{"TWOFOLD_LISTEN_ADDR: unknown configuration variable"}},
		{name: "malformed database url", env: []string{"TWOFOLD_DATABASE_URL=postgres://u:pw@bad host/db"},
			want: []string{"database_url: malformed PostgreSQL URL"}},
		{name: "database url of another kind", env: []string{"TWOFOLD_DATABASE_URL=mysql://localhost/db"},
			want: []string{"database_url: database URL must start with"}},
		{name: "pprof address", env: []string{good, "TWOFOLD_DEBUG_PPROF_LISTEN=6060"},
			want: []string{`debug.pprof_listen: "6060" must be host:port`}},
		{name: "pprof on the public address", env: []string{good, "TWOFOLD_LISTEN=127.0.0.1:9000", "TWOFOLD_DEBUG_PPROF_LISTEN=127.0.0.1:9000"},
			want: []string{`debug.pprof_listen: "127.0.0.1:9000" must differ from listen`}},
		{name: "pprof on every interface", env: []string{good, "TWOFOLD_DEBUG_PPROF_LISTEN=:6060"},
			want: []string{`debug.pprof_listen: ":6060" must be a loopback address`}},
		{name: "pprof on a public address", env: []string{good, "TWOFOLD_DEBUG_PPROF_LISTEN=192.0.2.7:6060"},
			want: []string{`debug.pprof_listen: "192.0.2.7:6060" must be a loopback address`}},
		{name: "trusted proxy that is not an address", env: []string{good, "TWOFOLD_TRUSTED_PROXIES=10.0.0.0/8, proxy.internal"},
			want: []string{`trusted_proxies: "proxy.internal" is not an IP address or a CIDR range`}},
		{name: "every problem at once", env: []string{
			"TWOFOLD_DATABASE_URL=sqlite:", "TWOFOLD_ISSUER=http://idp.example.com", "TWOFOLD_LISTEN=nope",
			"TWOFOLD_LOG_LEVEL=loud", "TWOFOLD_LOG_FORMAT=xml", "TWOFOLD_SECRETS_KEY=short",
			"TWOFOLD_PASSWORD_MIN_LENGTH=4", "TWOFOLD_PASSWORD_ARGON2_PARALLELISM=300",
		}, want: []string{
			"database_url: sqlite URL needs a file path", "issuer: \"http://idp.example.com\" must use https",
			"listen: \"nope\" must be host:port", "log.level:", "log.format:", "secrets_key:",
			"password.min_length:", "TWOFOLD_PASSWORD_ARGON2_PARALLELISM: \"300\" is not a whole number",
		}},
		{name: "email without a sender", env: []string{good, "TWOFOLD_EMAIL_SMTP_ADDR=smtp.example.com:587"},
			want: []string{"email.from: required"}},
		{name: "email in clear text off this machine", config: "email:\n  smtp_addr: smtp.example.com:25\n  from: no-reply@example.com\n  tls: none\n", env: []string{good},
			want: []string{`email.tls: "none" is allowed only for a loopback smtp_addr`}},
		{name: "federation entry incomplete", config: "federation:\n  - id: corp\n    issuer: ftp://sso.example.com\n    population: staff\n", env: []string{good},
			want: []string{"federation[0].name: must be set", `federation[0].issuer: "ftp://sso.example.com" must be an absolute https URL (http only on loopback)`,
				"federation[0].client_id: must be set", `federation[0].population: "staff" must be agent or contact`}},
		{name: "federation secret file missing", config: "federation:\n  - id: corp\n    name: Corp\n    issuer: https://sso.example.com\n    client_id: twofold\n    client_secret_file: /nonexistent/secret\n    population: agent\n", env: []string{good},
			want: []string{"federation[0].client_secret_file: open /nonexistent/secret: no such file or directory"}},
		{name: "federation in the environment", env: []string{good, "TWOFOLD_FEDERATION=corp"},
			want: []string{"TWOFOLD_FEDERATION: unknown configuration variable"}},
		{name: "issuer with query", env: []string{good, "TWOFOLD_ISSUER=https://idp.example.com?x=1"},
			want: []string{"issuer: \"https://idp.example.com?x=1\" must have no query"}},
		{name: "argon2 below OWASP", env: []string{good, "TWOFOLD_PASSWORD_ARGON2_MEMORY_KIB=19455", "TWOFOLD_PASSWORD_ARGON2_ITERATIONS=2"},
			want: []string{"password.argon2_iterations: 2 passes over 19455 KiB are below OWASP's minimum"}},
		{name: "argon2 cheap on both counts", env: []string{good, "TWOFOLD_PASSWORD_ARGON2_MEMORY_KIB=12288", "TWOFOLD_PASSWORD_ARGON2_ITERATIONS=2"},
			want: []string{"password.argon2_iterations: 2 passes over 12288 KiB are below OWASP's minimum"}},
		{name: "argon2 memory under any minimum", env: []string{good, "TWOFOLD_PASSWORD_ARGON2_MEMORY_KIB=4096", "TWOFOLD_PASSWORD_ARGON2_ITERATIONS=10"},
			want: []string{"password.argon2_memory_kib: 4096 must be from 7168"}},
		{name: "yaml of the wrong type", config: "password:\n  min_length: many\n", env: []string{good},
			want: []string{"config file: line 2: cannot unmarshal"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve"}
			if tc.config != "" {
				args = append(args, "--config", writeFile(strings.ReplaceAll(tc.name, " ", "_")+".yaml", tc.config))
			}
			r := twofold(t, tc.env, "", args...)
			assert.Equal(t, exitUsage, r.code, r.stderr)
			for _, w := range tc.want {
				assert.Contains(t, r.stderr, w)
			}
			// One problem per line: each expected message starts a line.
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			assert.Len(t, lines, len(tc.want)+1, "a header line, then one line per problem:\n%s", r.stderr)
			assert.Empty(t, r.stdout)
			_, err := os.Stat(dbPath)
			assert.ErrorIs(t, err, os.ErrNotExist, "an invalid configuration writes nothing")
		})
	}
}

// TestOWASPArgon2 (security.md S15): each of OWASP's equivalent
// minimums passes, and a KiB or a pass less fails.
func TestOWASPArgon2(t *testing.T) {
	for _, min := range []struct{ m, t uint32 }{{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5}} {
		assert.True(t, owaspArgon2(min.m, min.t), "m=%d t=%d", min.m, min.t)
		assert.True(t, owaspArgon2(min.m+1, min.t+1), "m=%d t=%d", min.m+1, min.t+1)
		assert.False(t, owaspArgon2(min.m-1, min.t), "m=%d t=%d", min.m-1, min.t)
		if min.t > 1 {
			assert.False(t, owaspArgon2(min.m, min.t-1), "m=%d t=%d", min.m, min.t-1)
		}
	}
}

func TestConfigFileAndEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twofold.yaml")
	require.NoError(t, os.WriteFile(path, []byte("issuer: https://idp.example.com\nlisten: 127.0.0.1:9000\nlog:\n  level: debug\npassword:\n  min_length: 14\nwebauthn:\n  passwordless: false\n"), 0o600))
	cfg, err := LoadConfig(path, []string{"TWOFOLD_LISTEN=127.0.0.1:9001", "TWOFOLD_TEST_DATABASE_URL=ignored", "HOME=/root"})
	require.NoError(t, err)
	assert.False(t, cfg.WebAuthn.Passwordless, "from the file")
	env, err := LoadConfig("", []string{"TWOFOLD_WEBAUTHN_PASSWORDLESS=false", "TWOFOLD_TOKENS_ACCESS_TOKEN_LIFESPAN=5m"})
	require.NoError(t, err)
	assert.False(t, env.WebAuthn.Passwordless, "from the environment")
	assert.Equal(t, 5*time.Minute, env.Tokens.AccessTokenLifespan)
	_, err = LoadConfig("", []string{"TWOFOLD_WEBAUTHN_PASSWORDLESS=maybe", "TWOFOLD_TOKENS_ACCESS_TOKEN_LIFESPAN=soon"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TWOFOLD_WEBAUTHN_PASSWORDLESS: \"maybe\" is not true or false")
	assert.Contains(t, err.Error(), "TWOFOLD_TOKENS_ACCESS_TOKEN_LIFESPAN: \"soon\" is not a duration")
	assert.Equal(t, "https://idp.example.com", cfg.Issuer, "from the file")
	assert.Equal(t, "127.0.0.1:9001", cfg.Listen, "the environment wins")
	assert.Equal(t, "debug", cfg.Log.Level)
	assert.Equal(t, 14, cfg.Password.MinLength)
	assert.Equal(t, uint32(19*1024), cfg.Password.Argon2MemoryKiB, "defaults stay")
	assert.Contains(t, EnvNames(), "TWOFOLD_PASSWORD_ARGON2_MEMORY_KIB")
}

func TestConfigTrustedProxies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twofold.yaml")
	require.NoError(t, os.WriteFile(path, []byte("trusted_proxies:\n  - 10.0.0.0/8\n  - 2001:db8::1\n"), 0o600))
	cfg, err := LoadConfig(path, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"10.0.0.0/8", "2001:db8::1"}, cfg.TrustedProxies, "from the file")
	pc := providerConfig(cfg)
	require.Len(t, pc.TrustedProxies, 2)
	assert.Equal(t, "10.0.0.0/8", pc.TrustedProxies[0].String())
	assert.Equal(t, "2001:db8::1/128", pc.TrustedProxies[1].String())

	cfg, err = LoadConfig(path, []string{"TWOFOLD_TRUSTED_PROXIES= 192.0.2.10 ,,172.16.0.0/12"})
	require.NoError(t, err)
	assert.Equal(t, []string{"192.0.2.10", "172.16.0.0/12"}, cfg.TrustedProxies, "the environment wins, comma-separated")

	cfg, err = LoadConfig("", nil)
	require.NoError(t, err)
	assert.Empty(t, providerConfig(cfg).TrustedProxies, "no proxy is trusted by default")
}

func TestServeDev(t *testing.T) {
	t.Chdir(t.TempDir()) // --dev keeps its files in the working directory
	addr := freeAddr(t)
	env := []string{"TWOFOLD_LISTEN=" + addr}

	start := func(while func()) result {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan result, 1)
		go func() { done <- twofoldCtx(ctx, env, "", "serve", "--dev") }()
		waitHealthy(t, "http://"+addr, done)
		while()
		return func() result {
			cancel()
			select {
			case r := <-done:
				return r
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not stop")
			}
			return result{}
		}()
	}

	first := start(func() {})
	assert.Equal(t, 0, first.code, first.stderr)
	m := regexp.MustCompile(`email:\s+(\S+)\n\s+password:\s+(\S+)`).FindStringSubmatch(first.stdout)
	require.Len(t, m, 3, "the admin account is printed: %q", first.stdout)
	assert.Equal(t, devAdminEmail, m[1])
	assert.GreaterOrEqual(t, len(m[2]), 20)
	_, port, _ := net.SplitHostPort(addr)
	issuer := "http://localhost:" + port
	assert.Contains(t, first.stderr, "open="+issuer+"/demo", "a log line says which URL to open")
	for _, f := range []string{"twofold.db", "twofold.db.key"} {
		_, err := os.Stat(f)
		require.NoError(t, err, f)
	}

	// The printed password signs the admin in.
	cfg, err := LoadConfig("", append(cheapArgon, env...))
	require.NoError(t, err)
	s, err := openMigrated(context.Background(), cfg)
	require.NoError(t, err)
	u, err := cfg.accounts(s).Authenticate(context.Background(), "agent", m[1], m[2])
	require.NoError(t, err)
	assert.True(t, u.PasswordMustChange, "a one-time password")
	require.NoError(t, s.Close())

	// The demo relying party signs the admin in through the provider.
	second := start(func() {
		b := providertest.NewBrowser(t)
		login, _ := b.Follow(b.Get(issuer+"/demo"), "")
		form := login.Hidden()
		form.Set("email", m[1])
		form.Set("password", m[2])
		// The one-time password must be replaced first.
		next, _ := b.Follow(b.Post(issuer+"/login", form), "")
		require.Contains(t, next.Request.URL.Path, "/login/password", next.Body)
		form = next.Hidden()
		form.Set("password", "the admin's own password")
		form.Set("repeat", "the admin's own password")
		page := b.Finish(b.Post(issuer+"/login/password", form), issuer+"/demo/callback")
		res := b.Get(page)
		require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
		body := html.UnescapeString(res.Body)
		assert.Contains(t, body, `"amr": [
    "pwd"
  ]`)
		assert.Contains(t, body, `"sub": "`+u.ID+`"`, "the ID token's sub is the admin")
	})
	assert.Equal(t, 0, second.code, second.stderr)
	assert.NotContains(t, second.stdout, "password", "a restart prints no new password")

	r := twofold(t, env, "", "users", "list", "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var users []userJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &users))
	require.Len(t, users, 1)
	assert.Equal(t, devAdminEmail, users[0].Email)
	assert.Equal(t, "admin", users[0].Role)
}

// waitHealthy polls /healthz and /readyz until both answer 200.
func waitHealthy(t *testing.T, base string, done <-chan result) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case r := <-done:
			t.Fatalf("serve exited early with %d: %s", r.code, r.stderr)
		default:
		}
		if get(base+"/healthz") == 200 && get(base+"/readyz") == 200 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("server never became ready")
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServeRefusesBadDatabases(t *testing.T) {
	key := "TWOFOLD_SECRETS_KEY=" + secrets.GenerateKey()
	listen := "TWOFOLD_LISTEN=" + freeAddr(t)
	missing := filepath.Join(t.TempDir(), "missing.db")

	t.Run("no secrets key", func(t *testing.T) {
		r := twofold(t, []string{"TWOFOLD_DATABASE_URL=sqlite:" + missing, listen}, "", "serve")
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "secrets_key: must be set")
	})
	t.Run("sqlite file missing", func(t *testing.T) {
		r := twofold(t, []string{"TWOFOLD_DATABASE_URL=sqlite:" + missing, key, listen}, "", "serve")
		assert.Equal(t, exitFailed, r.code)
		assert.Contains(t, r.stderr, "run `twofold migrate up`")
		_, err := os.Stat(missing)
		assert.ErrorIs(t, err, os.ErrNotExist, "serve does not create a database")
	})
	t.Run("unreachable postgres", func(t *testing.T) {
		r := twofold(t, []string{"TWOFOLD_DATABASE_URL=postgres://twofold@127.0.0.1:1/twofold?sslmode=disable&connect_timeout=3", key, listen}, "", "serve")
		assert.Equal(t, exitFailed, r.code)
		assert.Contains(t, r.stderr, "connect to postgres database")
	})
	for _, dialect := range sqltest.Dialects() {
		t.Run("unmigrated "+dialect, func(t *testing.T) {
			url := sqltest.URL(t, dialect)
			sqltest.OpenURL(t, url, false) // the database exists, empty
			r := twofold(t, []string{"TWOFOLD_DATABASE_URL=" + url, key, listen}, "", "serve")
			assert.Equal(t, exitFailed, r.code)
			assert.Contains(t, r.stderr, "database schema is not up to date")
			assert.Contains(t, r.stderr, "run `twofold migrate up`")
		})
		t.Run("newer schema "+dialect, func(t *testing.T) {
			env := migratedDB(t, dialect)
			s := sqltest.OpenURL(t, strings.TrimPrefix(env[0], "TWOFOLD_DATABASE_URL="), false)
			_, err := s.DB().Exec(s.DB().Rebind("INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)"), 99999, true)
			require.NoError(t, err)
			r := twofold(t, append(env, key, listen), "", "serve")
			assert.Equal(t, exitFailed, r.code)
			assert.Contains(t, r.stderr, "newer than this binary")
			r = twofold(t, env, "", "migrate", "up")
			assert.Equal(t, exitFailed, r.code, "migrate up refuses too")
		})
	}
}

func TestMigrate(t *testing.T) {
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			env := []string{"TWOFOLD_DATABASE_URL=" + sqltest.URL(t, dialect)}
			r := twofold(t, env, "", "migrate", "up")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, "applied migration 00001")
			r = twofold(t, env, "", "migrate", "up")
			assert.Contains(t, r.stdout, "database is up to date")
			r = twofold(t, env, "", "migrate", "status")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Regexp(t, `00001\s+applied\s+00001_init.sql`, r.stdout)
		})
	}
}

func TestVersion(t *testing.T) {
	r := twofold(t, nil, "", "version")
	require.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "twofold "), r.stdout)
	r = twofold(t, nil, "", "version", "extra")
	assert.Equal(t, exitUsage, r.code)
	r = twofold(t, nil, "", "users", "list", "--no-such-flag")
	assert.Equal(t, exitUsage, r.code)
}

func ExampleEnvNames() {
	for _, n := range EnvNames()[:4] {
		fmt.Println(n)
	}
	// Output:
	// TWOFOLD_ISSUER
	// TWOFOLD_LISTEN
	// TWOFOLD_DATABASE_URL
	// TWOFOLD_SECRETS_KEY
}

// TestPprofListener: the profiler answers on its own address, and stops
// with the server.
func TestPprofListener(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := servePprof(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	require.Eventually(t, func() bool {
		_, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
		return err != nil
	}, 5*time.Second, 20*time.Millisecond, "the listener closes with the server")
}

// createUser makes an account with the CLI and returns it as stored.
func createUser(t *testing.T, env []string, s store.Store, email, population string) store.User {
	t.Helper()
	r := twofold(t, env, "correct horse battery", "users", "create", "--password-stdin", "--output", "json",
		"--email", email, "--population", population)
	require.Equal(t, 0, r.code, r.stderr)
	var u userJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &u))
	got, err := s.GetUser(context.Background(), u.ID)
	require.NoError(t, err)
	return got
}

// showClient is `clients show ID --output json`.
func showClient(t *testing.T, env []string, id string) clientJSON {
	t.Helper()
	r := twofold(t, env, "", "clients", "show", id, "--output", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var c clientJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &c))
	return c
}

// TestFederationSecretFile: an upstream's secret can come from a file of
// its own (a mounted secret), trimmed.
func TestFederationSecretFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "corp-secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	path := filepath.Join(dir, "twofold.yaml")
	require.NoError(t, os.WriteFile(path, []byte("federation:\n  - id: corp\n    name: Corp\n    issuer: https://sso.example.com\n"+
		"    client_id: twofold\n    client_secret_file: "+secret+"\n    population: agent\n"), 0o600))
	cfg, err := LoadConfig(path, []string{"TWOFOLD_DATABASE_URL=sqlite:" + filepath.Join(dir, "t.db")})
	require.NoError(t, err)
	require.Len(t, cfg.Federation, 1)
	assert.Equal(t, "s3cret", cfg.Federation[0].upstream().ClientSecret)
}
