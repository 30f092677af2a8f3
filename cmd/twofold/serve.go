package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/realclientip/realclientip-go"
	"github.com/spf13/cobra"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/demo"
	"github.com/twofold-idp/twofold/mail"
	"github.com/twofold-idp/twofold/provider"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/server"
	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore"
)

// devAdminEmail is the account serve --dev seeds on an empty database.
const devAdminEmail = "admin@example.com"

func (a *app) serveCmd() *cobra.Command {
	var dev bool
	cmd := &cobra.Command{
		Use:   "serve [--dev]",
		Short: "Run the provider",
		Long: `Run the provider.

With --dev: use an SQLite file in the working directory (unless a database
is configured), apply migrations, keep a generated secrets key beside it,
and on first start seed an admin account whose one-time password is
printed once.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			return a.serve(cmd.Context(), cfg, dev)
		},
	}
	cmd.Flags().BoolVar(&dev, "dev", false, "development mode: embedded SQLite, migrate, seed an admin")
	return cmd
}

func (a *app) serve(ctx context.Context, cfg Config, dev bool) error {
	logger, err := server.NewLogger(a.stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	key, err := secretsKey(cfg, dev, logger)
	if err != nil {
		return err
	}

	s, err := openStore(ctx, cfg, !dev)
	if err != nil {
		return err
	}
	defer s.Close()
	if dev {
		applied, err := s.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			logger.Info("applied migrations", "versions", applied)
		}
	}
	if err := s.CheckSchema(ctx); err != nil {
		return err
	}
	if dev {
		if err := a.seedAdmin(ctx, cfg, s); err != nil {
			return err
		}
	}

	if dev {
		if err := seedDemoClient(ctx, cfg, s); err != nil {
			return err
		}
	}
	prov, err := newProvider(ctx, cfg, s, key, logger)
	if err != nil {
		return err
	}

	issuer, _ := url.Parse(cfg.Issuer)
	srv := server.New(server.Options{Logger: logger, HTTPS: issuer.Scheme == "https", Ready: s.Ping, ClientIP: prov.ClientIP})
	prov.Mount(srv)
	srv.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Twofold identity provider\nissuer: %s\ndiscovery: %s/.well-known/openid-configuration\n", cfg.Issuer, cfg.Issuer)
		if dev {
			fmt.Fprintf(w, "demo relying party: %s/demo\n", cfg.Issuer)
		}
	})
	if dev {
		(&demo.Handler{Issuer: cfg.Issuer, Logger: logger}).Mount(srv)
	}
	go prov.CleanExpired(ctx, 10*time.Minute)

	if cfg.Debug.PprofListen != "" {
		if _, err := servePprof(ctx, cfg.Debug.PprofListen, logger); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	open := cfg.Issuer + "/"
	if dev {
		open = cfg.Issuer + "/demo"
	}
	logger.Info("twofold is serving", "version", versionString(), "listen", ln.Addr().String(),
		"database", s.Dialect(), "open", open)
	err = server.Serve(ctx, ln, srv, logger, 20*time.Second)
	// Mail answered for but not yet sent: a security notice, a reset code.
	drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	prov.Drain(drain)
	return err
}

// secretsKey returns the configured key; without one, the key kept in a
// file beside the SQLite database (created there when create is set, as
// serve --dev does).
func secretsKey(cfg Config, create bool, logger *slog.Logger) ([]byte, error) {
	if cfg.SecretsKey != "" {
		return secrets.ParseKey(cfg.SecretsKey)
	}
	path := "twofold-dev.key"
	if dialect, file, _ := sqlstore.ParseURL(cfg.DatabaseURL); dialect == "sqlite" {
		path = file + ".key"
	}
	if _, err := os.Stat(path); err != nil && !create {
		return nil, &ConfigError{Problems: []string{
			"secrets_key: must be set (TWOFOLD_SECRETS_KEY, 32 bytes in base64: openssl rand -base64 32), or run serve --dev once to generate " + path,
		}}
	}
	key, created, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, err
	}
	if created {
		abs, _ := filepath.Abs(path)
		logger.Warn("dev mode: generated a secrets key; keep this file with the database", "file", abs)
	}
	return key, nil
}

// seedAdmin creates the admin account on an empty database and prints its
// one-time password once. A database with any account is left alone.
func (a *app) seedAdmin(ctx context.Context, cfg Config, s store.Store) error {
	password := accounts.GeneratePassword()
	svc := cfg.accounts(s)
	created := false
	err := s.InTx(ctx, func(ctx context.Context) error {
		n, err := s.CountUsers(ctx)
		if err != nil || n > 0 {
			return err
		}
		u, err := svc.CreateUser(ctx, accounts.NewUser{
			Email: devAdminEmail, Population: store.PopulationAgent, Role: store.RoleAdmin,
			Password: password, MustChange: true,
		})
		if err != nil {
			return err
		}
		created = true
		return s.AppendAudit(ctx, store.AuditEvent{Time: time.Now(), Type: "user.created", UserID: u.ID, ActorID: "serve --dev", Detail: `{"seed":"admin"}`})
	})
	if err != nil && !errors.Is(err, accounts.ErrEmailTaken) {
		return fmt.Errorf("seed admin: %w", err)
	}
	if created {
		fmt.Fprintf(a.stdout, "\nTwofold dev admin account, shown once (change it at first sign-in):\n  email:    %s\n  password: %s\n\n", devAdminEmail, password)
	}
	return nil
}

// newProvider builds the OIDC provider from the configuration.
func newProvider(ctx context.Context, cfg Config, s store.Store, key []byte, logger *slog.Logger) (*provider.Provider, error) {
	o := provider.Options{
		Config: providerConfig(cfg),
		Store:  s, Accounts: cfg.accounts(s), SecretsKey: key,
		ClientSecrets: clients.NewSecretHasher(key), Logger: logger,
	}
	if cfg.SMS.AccountSID != "" {
		texter, err := sms.New(cfg.SMS.sms(), nil)
		if err != nil {
			return nil, err
		}
		o.Texter = texter
	}
	for _, u := range cfg.Federation {
		o.Upstreams = append(o.Upstreams, u.upstream())
	}
	if cfg.Email.SMTPAddr != "" {
		sender, err := mail.New(cfg.Email.mail())
		if err != nil {
			return nil, err
		}
		o.Mailer = sender
	}
	return provider.New(ctx, o)
}

func providerConfig(cfg Config) provider.Config {
	proxies, _ := realclientip.AddressesAndRangesToIPNets(cfg.TrustedProxies...) // checked by Validate
	return provider.Config{
		Issuer:                cfg.Issuer,
		AuthorizeCodeLifespan: cfg.Tokens.AuthorizeCodeLifespan,
		AccessTokenLifespan:   cfg.Tokens.AccessTokenLifespan,
		IDTokenLifespan:       cfg.Tokens.IDTokenLifespan,
		RefreshTokenLifespan:  cfg.Tokens.RefreshTokenLifespan,
		SessionLifespan:       cfg.Tokens.SessionLifespan,
		SessionIdle:           cfg.Tokens.SessionIdle,
		IDTokenAlg:            cfg.Tokens.IDTokenAlg,
		NoPasswordless:        !cfg.WebAuthn.Passwordless,
		NoAddressThrottle:     !cfg.Throttle.PerAddress,
		TrustedProxies:        proxies,
		SMSDailyLimit:         cfg.SMS.DailyLimit,
		SMSAllowedPrefixes:    cfg.SMS.AllowedPrefixes,
	}
}

// seedDemoClient registers the built-in demo relying party on first
// start: a public, first-party client (PKCE, no secret).
func seedDemoClient(ctx context.Context, cfg Config, s store.Store) error {
	if _, err := s.GetClient(ctx, demo.ClientID); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	spec, err := clients.Validate(clients.Spec{
		Name: "Twofold demo", Public: true, FirstParty: true,
		RedirectURIs:           []string{cfg.Issuer + "/demo/callback"},
		PostLogoutRedirectURIs: []string{cfg.Issuer + "/demo"},
		GrantTypes:             []string{"authorization_code"},
		Scopes:                 []string{"openid", "profile", "email"},
	})
	if err != nil {
		return fmt.Errorf("demo client: %w", err)
	}
	now := time.Now().UTC()
	err = s.CreateClient(ctx, store.Client{
		ID: demo.ClientID, Name: spec.Name, Public: true, FirstParty: true,
		RedirectURIs: spec.RedirectURIs, PostLogoutRedirectURIs: spec.PostLogoutRedirectURIs,
		GrantTypes: spec.GrantTypes, Scopes: spec.Scopes, TokenEndpointAuthMethod: spec.TokenEndpointAuthMethod,
		IDTokenAlg: spec.IDTokenAlg, CreatedAt: now, UpdatedAt: now,
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil // another replica seeded it
	}
	return err
}

// servePprof serves Go's profiler on its own listener, apart from the
// public mux, until ctx ends, and returns its address: profiles for
// BENCHMARKS.md come from a running server (go tool pprof
// http://ADDR/debug/pprof/profile). No write timeout: a profile or trace
// takes as long as asked.
func servePprof(ctx context.Context, addr string, logger *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("debug.pprof_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	logger.Warn("serving the Go profiler: keep this address private", "pprof_listen", ln.Addr().String())
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return ln.Addr().String(), nil
}
