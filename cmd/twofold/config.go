package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/realclientip/realclientip-go"
	"gopkg.in/yaml.v3"

	"github.com/twofold-idp/twofold/federation"
	"github.com/twofold-idp/twofold/mail"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore"
)

// Config is the whole configuration. Every field can come from the YAML
// file (--config) and from the environment as TWOFOLD_ plus the field's
// YAML path in upper case joined by "_" (log.level → TWOFOLD_LOG_LEVEL).
// The environment wins over the file.
type Config struct {
	Issuer      string         `yaml:"issuer"`
	Listen      string         `yaml:"listen"`
	DatabaseURL string         `yaml:"database_url"`
	SecretsKey  string         `yaml:"secrets_key"`
	Log         LogConfig      `yaml:"log"`
	Password    PasswordConfig `yaml:"password"`
	Tokens      TokensConfig   `yaml:"tokens"`
	WebAuthn    WebAuthnConfig `yaml:"webauthn"`
	Throttle    ThrottleConfig `yaml:"throttle"`
	Email       EmailConfig    `yaml:"email"`
	SMS         SMSConfig      `yaml:"sms"`
	// Federation lists upstream OpenID Connect providers users may sign
	// in through (R03); YAML only.
	Federation []UpstreamConfig `yaml:"federation"`
	Debug      DebugConfig      `yaml:"debug"`
	// TrustedProxies are the reverse proxies in front of Twofold, as IP
	// addresses or CIDR ranges (in the environment, comma-separated):
	// from them the client's address is read from X-Forwarded-For.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// EmailConfig is the mail server that sends sign-in codes by email
// (R08). With no smtp_addr there are no email codes.
type EmailConfig struct {
	SMTPAddr string `yaml:"smtp_addr"` // host:port, as in smtp.example.com:587
	From     string `yaml:"from"`      // "Twofold <no-reply@example.com>"
	Username string `yaml:"username"`  // SMTP AUTH; empty for none
	Password string `yaml:"password"`
	// TLS is starttls (the default: required, never plain), tls
	// (implicit, port 465) or none (a mail server on loopback only).
	TLS string `yaml:"tls"`
}

// SMSConfig is the Twilio account that texts sign-in codes (R09). With
// no account_sid there are no codes by SMS; with one, they are still off
// until an admin allows them (policy methods --allow …,sms).
type SMSConfig struct {
	AccountSID string `yaml:"account_sid"`
	AuthToken  string `yaml:"auth_token"`
	From       string `yaml:"from"`     // the sending number, E.164
	BaseURL    string `yaml:"base_url"` // default https://api.twilio.com
	// DailyLimit caps the texts the whole server sends a day (SMS
	// pumping); AllowedPrefixes, when set, are the only number prefixes
	// codes go to ("+44", "+1").
	DailyLimit      int      `yaml:"daily_limit"`
	AllowedPrefixes []string `yaml:"allowed_prefixes"`
}

func (c SMSConfig) validate() []string {
	p := c.sms().Validate()
	if c.DailyLimit < 0 {
		p = append(p, fmt.Sprintf("daily_limit: %d must be 0 (the default, 1000) or more", c.DailyLimit))
	}
	for _, prefix := range c.AllowedPrefixes {
		if len(prefix) < 2 || prefix[0] != '+' || strings.Trim(prefix[1:], "0123456789") != "" {
			p = append(p, fmt.Sprintf("allowed_prefixes: %q must be + and digits, as in +44", prefix))
		}
	}
	return p
}

func (c SMSConfig) sms() sms.Config {
	return sms.Config{AccountSID: c.AccountSID, AuthToken: c.AuthToken, From: c.From, BaseURL: c.BaseURL}
}

// UpstreamConfig is one upstream provider (R03). Its redirect URI, to
// register there, is ISSUER/login/federated/callback.
type UpstreamConfig struct {
	ID           string `yaml:"id"`
	Name         string `yaml:"name"`
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// ClientSecretFile holds the secret instead (a mounted secret), so
	// the YAML file need not.
	ClientSecretFile string `yaml:"client_secret_file"`
	// Population gets the accounts first signed in through it.
	Population string `yaml:"population"`
	// LocalMFA asks users who have a second factor here for it after
	// the upstream (the bypass off). TrustMFA takes the upstream's "mfa".
	LocalMFA bool `yaml:"local_mfa"`
	TrustMFA bool `yaml:"trust_mfa"`
	// TrustEmail takes its email addresses as verified.
	TrustEmail bool `yaml:"trust_email"`
	// AllowedDomains limits the accounts a first sign-in makes to these
	// email domains.
	AllowedDomains []string `yaml:"allowed_domains"`
}

func (u UpstreamConfig) upstream() federation.Upstream {
	return federation.Upstream{ID: u.ID, Name: u.Name, Issuer: u.Issuer, ClientID: u.ClientID, ClientSecret: u.ClientSecret,
		Population: store.Population(u.Population), LocalMFA: u.LocalMFA, TrustMFA: u.TrustMFA, TrustEmail: u.TrustEmail, AllowedDomains: u.AllowedDomains}
}

// mail is the sender's configuration.
func (e EmailConfig) mail() mail.Config {
	return mail.Config{Addr: e.SMTPAddr, From: e.From, Username: e.Username, Password: e.Password, TLS: e.TLS}
}

// DebugConfig turns on diagnostics that must never face the internet.
type DebugConfig struct {
	// PprofListen serves Go's profiler (net/http/pprof) on its own
	// address, such as 127.0.0.1:6060; empty turns it off.
	PprofListen string `yaml:"pprof_listen"`
}

// ThrottleConfig sets brute-force limits beyond the per-account ones.
type ThrottleConfig struct {
	// PerAddress limits failed sign-ins per client address. Behind a
	// reverse proxy, list it in trusted_proxies (or every client has the
	// proxy's address) or turn this off.
	PerAddress bool `yaml:"per_address"`
}

// WebAuthnConfig sets security keys and passkeys. The relying party id is
// the issuer's host name (an IP-address issuer has no WebAuthn).
type WebAuthnConfig struct {
	// Passwordless shows "Sign in with a passkey" on the login page.
	Passwordless bool `yaml:"passwordless"`
}

// TokensConfig sets lifetimes, as Go durations ("60s", "15m", "720h").
type TokensConfig struct {
	AuthorizeCodeLifespan time.Duration `yaml:"authorize_code_lifespan"`
	AccessTokenLifespan   time.Duration `yaml:"access_token_lifespan"`
	IDTokenLifespan       time.Duration `yaml:"id_token_lifespan"`
	RefreshTokenLifespan  time.Duration `yaml:"refresh_token_lifespan"`
	SessionLifespan       time.Duration `yaml:"session_lifespan"`
	SessionIdle           time.Duration `yaml:"session_idle"`
	IDTokenAlg            string        `yaml:"id_token_alg"`
}

// LogConfig sets the structured log output.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// owaspArgon2 tells whether m KiB and t passes reach one of the
// equivalent minimums of OWASP's Password Storage Cheat Sheet
// (security.md S15): less memory needs more passes.
func owaspArgon2(m, t uint32) bool {
	for _, min := range []struct{ m, t uint32 }{{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5}} {
		if m >= min.m && t >= min.t {
			return true
		}
	}
	return false
}

// PasswordConfig sets the argon2id cost and the rules for a chosen
// password: its length and how hard it is to guess.
type PasswordConfig struct {
	Argon2MemoryKiB   uint32 `yaml:"argon2_memory_kib"`
	Argon2Iterations  uint32 `yaml:"argon2_iterations"`
	Argon2Parallelism uint8  `yaml:"argon2_parallelism"`
	MinLength         int    `yaml:"min_length"`
	BlockGuessable    bool   `yaml:"block_guessable"`
}

// DefaultConfig is what runs with no file and no environment: an SQLite
// file in the working directory and the issuer on localhost (WebAuthn
// needs a host name, not an IP, as RP ID). An issuer left unset follows
// the listen port: http://localhost:PORT.
func DefaultConfig() Config {
	return Config{
		Issuer:      "",
		Listen:      "127.0.0.1:8080",
		DatabaseURL: "sqlite:twofold.db",
		Log:         LogConfig{Level: "info", Format: "text"},
		Password: PasswordConfig{
			Argon2MemoryKiB: 19 * 1024, Argon2Iterations: 2, Argon2Parallelism: 1,
			MinLength: 12, BlockGuessable: true,
		},
		WebAuthn: WebAuthnConfig{Passwordless: true},
		Throttle: ThrottleConfig{PerAddress: true},
		Tokens: TokensConfig{
			AuthorizeCodeLifespan: time.Minute, AccessTokenLifespan: 15 * time.Minute,
			IDTokenLifespan: 15 * time.Minute, RefreshTokenLifespan: 30 * 24 * time.Hour,
			SessionLifespan: 12 * time.Hour, SessionIdle: 30 * time.Minute, IDTokenAlg: "RS256",
		},
	}
}

// EnvPrefix starts every configuration variable. TWOFOLD_TEST_ is kept
// for the test suite and is not configuration.
const EnvPrefix = "TWOFOLD_"

// ConfigError lists every problem found, one per line.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "invalid configuration:\n" + strings.Join(e.Problems, "\n")
}

// LoadConfig reads the file at path (if any) over the defaults, then the
// environment over that, and validates the result.
func LoadConfig(path string, environ []string) (Config, error) {
	cfg := DefaultConfig()
	var problems []string
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, &ConfigError{Problems: []string{fmt.Sprintf("--config: %v", err)}}
		}
		problems = append(problems, decodeYAML(data, &cfg)...)
	}
	problems = append(problems, applyEnv(&cfg, environ)...)
	for i := range cfg.Federation {
		u := &cfg.Federation[i]
		if u.ClientSecretFile == "" {
			continue
		}
		if u.ClientSecret != "" {
			problems = append(problems, fmt.Sprintf("federation[%d].client_secret_file: give it or client_secret, not both", i))
			continue
		}
		b, err := os.ReadFile(u.ClientSecretFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("federation[%d].client_secret_file: %v", i, err))
			continue
		}
		u.ClientSecret = strings.TrimSpace(string(b))
	}
	if cfg.Issuer == "" {
		if _, port, err := net.SplitHostPort(cfg.Listen); err == nil {
			cfg.Issuer = "http://localhost:" + port
		}
	}
	problems = append(problems, cfg.Validate()...)
	if len(problems) > 0 {
		return cfg, &ConfigError{Problems: problems}
	}
	return cfg, nil
}

// decodeYAML refuses unknown keys; yaml.v3 reports each with its line.
func decodeYAML(data []byte, cfg *Config) []string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			out[i] = "config file: " + e
		}
		return out
	}
	return []string{"config file: " + err.Error()}
}

// envField is one configuration leaf and its variable name.
type envField struct {
	name  string
	value reflect.Value
}

func envFields(cfg *Config) []envField {
	var out []envField
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			name := prefix + strings.ToUpper(t.Field(i).Tag.Get("yaml"))
			if v.Field(i).Kind() == reflect.Struct {
				walk(name+"_", v.Field(i))
				continue
			}
			if f := v.Field(i); f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct {
				continue // lists of settings are YAML only
			}
			out = append(out, envField{name: name, value: v.Field(i)})
		}
	}
	walk(EnvPrefix, reflect.ValueOf(cfg).Elem())
	return out
}

// EnvNames lists every configuration variable, for help and docs.
func EnvNames() []string {
	var cfg Config
	var names []string
	for _, f := range envFields(&cfg) {
		names = append(names, f.name)
	}
	return names
}

// applyEnv sets fields from TWOFOLD_* variables. An unknown TWOFOLD_
// variable is refused: a typo must not silently fall back to a default.
func applyEnv(cfg *Config, environ []string) []string {
	fields := map[string]reflect.Value{}
	for _, f := range envFields(cfg) {
		fields[f.name] = f.value
	}
	var problems []string
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || strings.HasPrefix(name, EnvPrefix+"TEST_") {
			continue
		}
		v, ok := fields[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: unknown configuration variable", name))
			continue
		}
		switch {
		case v.Type() == reflect.TypeFor[time.Duration]():
			d, err := time.ParseDuration(val)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %q is not a duration such as 90s, 15m or 720h", name, val))
				continue
			}
			v.SetInt(int64(d))
			continue
		}
		switch v.Kind() {
		case reflect.String:
			v.SetString(val)
		case reflect.Slice:
			if v.Type().Elem().Kind() != reflect.String {
				panic(fmt.Sprintf("config: %s: only []string lists are read from the environment", name))
			}
			// Comma-separated.
			var list []string
			for item := range strings.SplitSeq(val, ",") {
				if item = strings.TrimSpace(item); item != "" {
					list = append(list, item)
				}
			}
			v.Set(reflect.ValueOf(list))
		case reflect.Bool:
			b, err := strconv.ParseBool(val)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %q is not true or false", name, val))
				continue
			}
			v.SetBool(b)
		case reflect.Int:
			n, err := strconv.Atoi(val)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %q is not a whole number", name, val))
				continue
			}
			v.SetInt(int64(n))
		case reflect.Uint8, reflect.Uint32:
			n, err := strconv.ParseUint(val, 10, v.Type().Bits())
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %q is not a whole number from 0 to %d", name, val, uint64(1)<<v.Type().Bits()-1))
				continue
			}
			v.SetUint(n)
		}
	}
	slices.Sort(problems)
	return problems
}

// Validate returns every problem, each naming its field.
func (c Config) Validate() []string {
	var p []string
	add := func(field, format string, args ...any) {
		p = append(p, field+": "+fmt.Sprintf(format, args...))
	}

	if u, err := url.Parse(c.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		add("issuer", "%q must be an absolute https URL (http only for localhost)", c.Issuer)
	} else {
		if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			add("issuer", "%q must use https (http is allowed only for localhost and 127.0.0.1)", c.Issuer)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			add("issuer", "%q must have no query, fragment or user info (OpenID Connect Discovery §2)", c.Issuer)
		}
		if strings.HasSuffix(u.Path, "/") {
			add("issuer", "%q must not end with a slash", c.Issuer)
		}
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen", "%q must be host:port, as in 127.0.0.1:8080 or :8080", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		add("listen", "port %q must be a number from 0 to 65535", port)
	}
	if c.Debug.PprofListen != "" {
		if host, _, err := net.SplitHostPort(c.Debug.PprofListen); err != nil {
			add("debug.pprof_listen", "%q must be host:port, as in 127.0.0.1:6060", c.Debug.PprofListen)
		} else if c.Debug.PprofListen == c.Listen {
			add("debug.pprof_listen", "%q must differ from listen", c.Debug.PprofListen)
		} else if !isLoopbackHost(host) {
			// The profiler has no authentication and shows the command
			// line, goroutines and heap: it is for this machine only.
			add("debug.pprof_listen", "%q must be a loopback address (127.0.0.1, ::1 or localhost): the profiler has no authentication", c.Debug.PprofListen)
		}
	}
	for _, proxy := range c.TrustedProxies {
		if _, err := realclientip.AddressesAndRangesToIPNets(proxy); err != nil {
			add("trusted_proxies", "%q is not an IP address or a CIDR range such as 10.0.0.0/8", proxy)
		}
	}
	if c.Email != (EmailConfig{}) {
		for _, problem := range c.Email.mail().Validate() {
			p = append(p, "email."+problem)
		}
	}
	if c.SMS.AccountSID != "" || c.SMS.AuthToken != "" || c.SMS.From != "" || c.SMS.BaseURL != "" {
		for _, problem := range c.SMS.validate() {
			p = append(p, "sms."+problem)
		}
	}
	seen := map[string]bool{}
	for i, u := range c.Federation {
		for _, problem := range u.upstream().Validate() {
			p = append(p, fmt.Sprintf("federation[%d].%s", i, problem))
		}
		if seen[u.ID] {
			add(fmt.Sprintf("federation[%d].id", i), "%q is listed twice", u.ID)
		}
		seen[u.ID] = true
	}
	if c.DatabaseURL == "" {
		add("database_url", "must be set, as in sqlite:twofold.db or postgres://user@host/db")
	} else if _, _, err := sqlstore.ParseURL(c.DatabaseURL); err != nil {
		add("database_url", "%v", err)
	}
	if c.SecretsKey != "" {
		if _, err := secrets.ParseKey(c.SecretsKey); err != nil {
			add("secrets_key", "%v", err)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		add("log.level", "%q must be one of debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		add("log.format", "%q must be text or json", c.Log.Format)
	}
	pw := c.Password
	if pw.Argon2MemoryKiB < 7168 || pw.Argon2MemoryKiB > 4*1024*1024 {
		add("password.argon2_memory_kib", "%d must be from 7168 (7 MiB) to 4194304 (4 GiB)", pw.Argon2MemoryKiB)
	}
	if pw.Argon2Iterations < 1 || pw.Argon2Iterations > 100 {
		add("password.argon2_iterations", "%d must be from 1 to 100", pw.Argon2Iterations)
	} else if pw.Argon2MemoryKiB >= 7168 && !owaspArgon2(pw.Argon2MemoryKiB, pw.Argon2Iterations) {
		add("password.argon2_iterations", "%d passes over %d KiB are below OWASP's minimum for argon2id: 1 over 47104, 2 over 19456, 3 over 12288, 4 over 9216 or 5 over 7168", pw.Argon2Iterations, pw.Argon2MemoryKiB)
	}
	if pw.Argon2Parallelism < 1 || pw.Argon2Parallelism > 64 {
		add("password.argon2_parallelism", "%d must be from 1 to 64", pw.Argon2Parallelism)
	}
	if pw.MinLength < 8 || pw.MinLength > 128 {
		add("password.min_length", "%d must be from 8 to 128 (NIST SP 800-63B asks for at least 8)", pw.MinLength)
	}
	t := c.Tokens
	for _, d := range []struct {
		field    string
		v        time.Duration
		min, max time.Duration
	}{
		{"tokens.authorize_code_lifespan", t.AuthorizeCodeLifespan, time.Second, 10 * time.Minute},
		{"tokens.access_token_lifespan", t.AccessTokenLifespan, time.Second, 24 * time.Hour},
		{"tokens.id_token_lifespan", t.IDTokenLifespan, time.Second, 24 * time.Hour},
		{"tokens.refresh_token_lifespan", t.RefreshTokenLifespan, time.Minute, 365 * 24 * time.Hour},
		{"tokens.session_lifespan", t.SessionLifespan, time.Minute, 30 * 24 * time.Hour},
		{"tokens.session_idle", t.SessionIdle, time.Minute, 30 * 24 * time.Hour},
	} {
		if d.v < d.min || d.v > d.max {
			add(d.field, "%s must be from %s to %s", d.v, d.min, d.max)
		}
	}
	if t.IDTokenAlg != "RS256" && t.IDTokenAlg != "ES256" {
		add("tokens.id_token_alg", "%q must be RS256 or ES256", t.IDTokenAlg)
	}
	return p
}

// isLoopbackHost reports whether h names this machine only: localhost or
// a loopback IP. An empty host (all interfaces) is not.
func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
