package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/secrets"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore"
)

// Fixture is what setup creates and run reads: the bench's own clients
// and users, with the secrets it needs to sign in (kept 0600).
type Fixture struct {
	CreatedAt time.Time `json:"created_at"`
	// RedirectURI is registered for the RP clients; the tool stops at the
	// redirect and never calls it.
	RedirectURI string `json:"redirect_uri"`
	RP          Client `json:"rp"`       // first-party, ID tokens RS256
	RPES256     Client `json:"rp_es256"` // first-party, ID tokens ES256
	Service     Client `json:"service"`  // client_credentials only
	// ServiceJWTRS256 and ServiceJWTES256 are client_credentials clients
	// with JWT access tokens signed with RS256 and ES256.
	ServiceJWTRS256 Client `json:"service_jwt_rs256"`
	ServiceJWTES256 Client `json:"service_jwt_es256"`
	// Password is every bench user's password.
	Password string                `json:"password"`
	Users    []User                `json:"users"`      // password only
	TOTP     []User                `json:"totp_users"` // password + authenticator app
	Argon2   accounts.Argon2Params `json:"argon2"`
}

// Client is a registered client and its secret.
type Client struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
}

// User is one bench account.
type User struct {
	Email      string `json:"email"`
	TOTPSecret string `json:"totp_secret,omitempty"`
}

// argonFlags adds the argon2id parameters, defaulting to the server's.
func argonFlags(cmd *cobra.Command, p *accounts.Argon2Params) {
	*p = accounts.DefaultArgon2
	cmd.Flags().Uint32Var(&p.MemoryKiB, "argon2-memory-kib", p.MemoryKiB, "argon2id memory, as the server's password.argon2_memory_kib")
	cmd.Flags().Uint32Var(&p.Iterations, "argon2-iterations", p.Iterations, "argon2id passes, as the server's password.argon2_iterations")
	cmd.Flags().Uint8Var(&p.Parallelism, "argon2-parallelism", p.Parallelism, "argon2id lanes, as the server's password.argon2_parallelism")
}

type setupOptions struct {
	DatabaseURL string
	SecretsKey  string
	Users       int
	TOTPUsers   int
	Out         string
	Argon2      accounts.Argon2Params
	Tag         string
}

func setupCmd(stdout io.Writer) *cobra.Command {
	var o setupOptions
	cmd := &cobra.Command{
		Use:   "setup --database-url URL --out bench.json",
		Short: "Create the bench's clients and users (TOTP enrolled) in the server's database",
		Long: `Create the bench's own clients and users directly in the server's database
(the same store calls as 'twofold users create' and 'twofold clients create').

Every bench user gets the same random password, hashed once with the server's
argon2id parameters (a per-user hash costs the same to verify; hashing 1,000
of them would take a minute). TOTP users get a confirmed authenticator app,
its secret sealed with the secrets key as enrolment stores it.

The secrets key comes from --secrets-key, TWOFOLD_SECRETS_KEY, or for SQLite
the PATH.key file 'twofold serve --dev' keeps beside the database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := setup(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created clients %s (RS256), %s (ES256), %s (client_credentials), %s and %s (client_credentials, JWT RS256 and ES256); %d password users, %d TOTP users; fixture %s\n",
				f.RP.ID, f.RPES256.ID, f.Service.ID, f.ServiceJWTRS256.ID, f.ServiceJWTES256.ID, len(f.Users), len(f.TOTP), o.Out)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.DatabaseURL, "database-url", envOr("TWOFOLD_DATABASE_URL", "sqlite:twofold.db"), "the server's database (TWOFOLD_DATABASE_URL)")
	fl.StringVar(&o.SecretsKey, "secrets-key", os.Getenv("TWOFOLD_SECRETS_KEY"), "the server's secrets key (TWOFOLD_SECRETS_KEY); default for SQLite: PATH.key")
	fl.IntVar(&o.Users, "users", 200, "password-only users")
	fl.IntVar(&o.TOTPUsers, "totp-users", 1000, "users with an authenticator app (each signs in at most once per 30 s step)")
	fl.StringVar(&o.Out, "out", "bench.json", "fixture file to write (mode 0600)")
	argonFlags(cmd, &o.Argon2)
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// loadKey finds the secrets key as the server does.
func loadKey(databaseURL, key string) ([]byte, error) {
	if key != "" {
		return secrets.ParseKey(key)
	}
	dialect, path, err := sqlstore.ParseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	if dialect != "sqlite" {
		return nil, errors.New("--secrets-key (or TWOFOLD_SECRETS_KEY) is needed for PostgreSQL")
	}
	b, err := os.ReadFile(path + ".key")
	if err != nil {
		return nil, fmt.Errorf("no --secrets-key and no key file: %w", err)
	}
	return secrets.ParseKey(string(b))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newTOTPSecret is a 160-bit base32 secret, as mfa.NewTOTP makes (without
// the QR code image it also renders).
func newTOTPSecret() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

func setup(ctx context.Context, o setupOptions) (*Fixture, error) {
	key, err := loadKey(o.DatabaseURL, o.SecretsKey)
	if err != nil {
		return nil, err
	}
	box, err := secrets.New(key)
	if err != nil {
		return nil, err
	}
	s, err := openMigrated(ctx, o.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if o.Tag == "" {
		o.Tag = randomHex(4)
	}
	f := &Fixture{CreatedAt: time.Now().UTC(), RedirectURI: "http://127.0.0.1:9/bench/callback", Argon2: o.Argon2}
	reg := &clients.Registry{Store: s, Hasher: clients.NewSecretHasher(key)}
	mk := func(spec clients.Spec) (Client, error) {
		c, secret, err := reg.Create(ctx, spec)
		return Client{ID: c.ID, Secret: secret}, err
	}
	rp := clients.Spec{Name: "twofold-bench RP " + o.Tag, FirstParty: true, RedirectURIs: []string{f.RedirectURI}}
	if f.RP, err = mk(rp); err != nil {
		return nil, err
	}
	rp.Name, rp.IDTokenAlg = "twofold-bench RP ES256 "+o.Tag, "ES256"
	if f.RPES256, err = mk(rp); err != nil {
		return nil, err
	}
	svc := clients.Spec{Name: "twofold-bench service " + o.Tag, GrantTypes: []string{clients.GrantClientCredentials}}
	if f.Service, err = mk(svc); err != nil {
		return nil, err
	}
	svc.AccessTokenFormat = store.AccessTokenJWT
	svc.Name, svc.IDTokenAlg = "twofold-bench service JWT RS256 "+o.Tag, "RS256"
	if f.ServiceJWTRS256, err = mk(svc); err != nil {
		return nil, err
	}
	svc.Name, svc.IDTokenAlg = "twofold-bench service JWT ES256 "+o.Tag, "ES256"
	if f.ServiceJWTES256, err = mk(svc); err != nil {
		return nil, err
	}

	f.Password = accounts.GeneratePassword()
	hash, err := accounts.Hasher{Params: o.Argon2}.Hash(f.Password)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	total := o.Users + o.TOTPUsers
	const batch = 500
	for start := 0; start < total; start += batch {
		err := s.InTx(ctx, func(ctx context.Context) error {
			for i := start; i < min(start+batch, total); i++ {
				email := fmt.Sprintf("bench-%s-%06d@example.com", o.Tag, i)
				u := store.User{ID: accounts.NewID(), Email: email, EmailKey: email, Population: store.PopulationAgent,
					Role: store.RoleAgent, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
				if err := s.CreateUser(ctx, u); err != nil {
					return err
				}
				if i < o.Users {
					f.Users = append(f.Users, User{Email: email})
					continue
				}
				secret, id := newTOTPSecret(), accounts.NewID()
				if err := s.CreateFactor(ctx, store.Factor{ID: id, UserID: u.ID, Kind: store.FactorTOTP, Name: "Authenticator app",
					SecretEnc: box.Seal([]byte(secret), "totp:"+id), Confirmed: true, CreatedAt: now}); err != nil {
					return err
				}
				f.TOTP = append(f.TOTP, User{Email: email, TOTPSecret: secret})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("create users: %w", err)
		}
	}
	if o.Out != "" {
		b, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(o.Out, b, 0o600); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func readFixture(path string) (*Fixture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fixture: %w (run twofold-bench setup first)", err)
	}
	var f Fixture
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("fixture %s: %w", path, err)
	}
	return &f, nil
}

// openMigrated opens the server's database and checks that its schema is
// the one this tool was built with: setup, grow and clean write to it.
func openMigrated(ctx context.Context, databaseURL string) (*sqlstore.Store, error) {
	s, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	if err := s.CheckSchema(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("%w (start the server once, or run twofold migrate up)", err)
	}
	return s, nil
}
