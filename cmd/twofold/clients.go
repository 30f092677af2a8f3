package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/twofold-idp/twofold/admin"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/store"
)

// clientJSON is the public view of a client: never its secret or the
// secret's hash, only whether it has one.
type clientJSON struct {
	ID                      string    `json:"client_id"`
	Name                    string    `json:"name"`
	Public                  bool      `json:"public"`
	FirstParty              bool      `json:"first_party"`
	RequireMFA              bool      `json:"require_mfa"`
	PKCEOptional            bool      `json:"pkce_optional"`
	HasSecret               bool      `json:"has_secret"`
	RedirectURIs            []string  `json:"redirect_uris"`
	PostLogoutRedirectURIs  []string  `json:"post_logout_redirect_uris"`
	GrantTypes              []string  `json:"grant_types"`
	Scopes                  []string  `json:"scopes"`
	TokenEndpointAuthMethod string    `json:"token_endpoint_auth_method"`
	JWKS                    string    `json:"jwks,omitempty"`
	JWKSURI                 string    `json:"jwks_uri,omitempty"`
	IDTokenAlg              string    `json:"id_token_alg"`
	AccessTokenFormat       string    `json:"access_token_format"`
	CreatedAt               time.Time `json:"created_at"`
	UpdatedAt               time.Time `json:"updated_at"`
}

func clientToJSON(c store.Client) clientJSON {
	nonNil := func(s store.Strings) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return clientJSON{
		ID: c.ID, Name: c.Name, Public: c.Public, FirstParty: c.FirstParty, RequireMFA: c.RequireMFA,
		PKCEOptional: c.PKCEOptional, HasSecret: len(c.SecretHash) > 0, RedirectURIs: nonNil(c.RedirectURIs),
		PostLogoutRedirectURIs: nonNil(c.PostLogoutRedirectURIs), GrantTypes: nonNil(c.GrantTypes),
		Scopes: nonNil(c.Scopes), TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, JWKS: c.JWKS,
		JWKSURI: c.JWKSURI, IDTokenAlg: c.IDTokenAlg, AccessTokenFormat: c.AccessTokenFormat,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(),
	}
}

// credentialsJSON is what create and rotate-secret print: the only time
// the secret is ever shown.
type credentialsJSON struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
}

func (a *app) clientsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "clients", Short: "Manage OAuth 2.0 / OpenID Connect clients"}
	cmd.AddCommand(a.clientsCreateCmd(), a.clientsUpdateCmd(), a.clientsListCmd(), a.clientsShowCmd(), a.clientsDeleteCmd(), a.clientsRotateSecretCmd())
	return cmd
}

// withRegistry is withStore plus the client registry. The secrets key is
// loaded before the database is opened, so a missing key fails fast as a
// configuration error; it is never created here, only by serve --dev.
func (a *app) withRegistry(ctx context.Context, fn func(s store.Store, r *clients.Registry) error) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	key, err := secretsKey(cfg, false, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	s, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s, &clients.Registry{Store: s, Hasher: clients.NewSecretHasher(key)})
}

// clientNotFound turns the store's not-found into a message naming the id.
func clientNotFound(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no client %q", id)
	}
	return err
}

func (a *app) printCredentials(output string, id, secret string) error {
	if output == "json" {
		return writeJSON(a.stdout, credentialsJSON{ClientID: id, ClientSecret: secret})
	}
	fmt.Fprintf(a.stdout, "client_id: %s\n", id)
	if secret != "" {
		fmt.Fprintf(a.stdout, "client_secret: %s\n", secret)
	}
	return nil
}

func (a *app) clientsCreateCmd() *cobra.Command {
	var spec clients.Spec
	var jwks string
	cmd := &cobra.Command{
		Use:   "create --name NAME [--redirect-uri URI]... [flags]",
		Short: "Register a client; its secret is printed once and only its hash is kept",
		Args:  exactArgs(0),
	}
	output := outputFlag(cmd)
	f := cmd.Flags()
	registrationFlags(f, &spec, &jwks)
	f.BoolVar(&spec.Public, "public", false, "a client that cannot keep a secret (browser or native app)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		if strings.TrimSpace(spec.Name) == "" {
			return usageError{errors.New("--name is required")}
		}
		var err error
		if spec.JWKS, err = readArgOrFile(jwks); err != nil {
			return err
		}
		return a.withRegistry(cmd.Context(), func(s store.Store, r *clients.Registry) error {
			c, secret, err := adminOf(s).CreateClient(cmd.Context(), admin.CLI, r, spec)
			if err != nil {
				return err
			}
			if secret != "" && *output == "text" {
				fmt.Fprintln(a.stderr, "Store the client secret now: it is not shown again.")
			}
			return a.printCredentials(*output, c.ID, secret)
		})
	}
	return cmd
}

// registrationFlagNames are the flags registrationFlags defines.
var registrationFlagNames = []string{"name", "redirect-uri", "post-logout-redirect-uri", "grant-type", "scope",
	"token-endpoint-auth-method", "first-party", "require-mfa", "pkce-optional", "jwks", "jwks-uri", "id-token-alg", "access-token-format"}

// registrationFlags are the flags of a registration that create and
// update share (public is create's alone: it cannot change).
func registrationFlags(f *pflag.FlagSet, spec *clients.Spec, jwks *string) {
	f.StringVar(&spec.Name, "name", "", "display name, shown on the consent page (required)")
	f.StringArrayVar(&spec.RedirectURIs, "redirect-uri", nil, "redirect URI, matched exactly (repeatable; https, or http on localhost)")
	f.StringArrayVar(&spec.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil, "post-logout redirect URI (repeatable)")
	f.StringArrayVar(&spec.GrantTypes, "grant-type", nil, "authorization_code, refresh_token or client_credentials (repeatable; default authorization_code and refresh_token)")
	f.StringArrayVar(&spec.Scopes, "scope", nil, "openid, profile, email or offline_access (repeatable; default all four)")
	f.StringVar(&spec.TokenEndpointAuthMethod, "token-endpoint-auth-method", "", "client_secret_basic, client_secret_post, private_key_jwt or none (default client_secret_basic, none with --public)")
	f.BoolVar(&spec.FirstParty, "first-party", false, "skip the consent screen")
	f.BoolVar(&spec.RequireMFA, "require-mfa", false, "require a second factor for every sign-in to this client")
	f.BoolVar(&spec.PKCEOptional, "pkce-optional", false, "let this confidential client's code flow go without PKCE (an old app that cannot send code_challenge); every other client must use PKCE S256")
	f.StringVar(jwks, "jwks", "", "public JSON Web Key Set for private_key_jwt, as JSON or @file")
	f.StringVar(&spec.JWKSURI, "jwks-uri", "", "https URL of the JSON Web Key Set for private_key_jwt")
	f.StringVar(&spec.IDTokenAlg, "id-token-alg", "", "RS256 or ES256 (default RS256)")
	f.StringVar(&spec.AccessTokenFormat, "access-token-format", "", "opaque or jwt (default opaque); a JWT access token is signed with --id-token-alg")
}

func (a *app) clientsUpdateCmd() *cobra.Command {
	var set clients.Spec
	var jwks string
	var revoke bool
	cmd := &cobra.Command{
		Use:   "update CLIENT_ID [flags]",
		Short: "Change a client's registration: only the flags given change, and a repeatable flag replaces the whole list",
		Long: `Change a client's registration. Only the flags given change; a repeatable
flag (--redirect-uri, --scope…) replaces the whole list, and given once as ""
empties it (scopes and grant types then go back to their defaults). The
client id and secret stay, and so does how the client authenticates, except
a switch between client_secret_basic and client_secret_post. Tokens already
issued keep what they were granted until they expire, unless
--revoke-tokens removes every code and token the client holds (its users
sign in again; a JWT access token already handed out stays valid offline
until it expires). Running servers see the change within 5 seconds (their
client cache).`,
		Args: exactArgs(1),
	}
	output := outputFlag(cmd)
	f := cmd.Flags()
	registrationFlags(f, &set, &jwks)
	f.BoolVar(&revoke, "revoke-tokens", false, "also revoke every code, access and refresh token the client holds (alone: only that)")
	for name, usage := range map[string]string{
		"name":                       "display name, shown on the consent page",
		"redirect-uri":               `redirect URI, matched exactly (repeatable; replaces the list)`,
		"post-logout-redirect-uri":   `post-logout redirect URI (repeatable; replaces the list, "" empties it)`,
		"grant-type":                 `authorization_code, refresh_token or client_credentials (repeatable; replaces the list, "" restores the default)`,
		"scope":                      `openid, profile, email or offline_access (repeatable; replaces the list, "" restores the default)`,
		"token-endpoint-auth-method": "client_secret_basic or client_secret_post, for a client with a secret (no other change of method)",
		"id-token-alg":               "RS256 or ES256",
		"access-token-format":        "opaque or jwt; a JWT access token is signed with the client's ID token algorithm",
		"jwks":                       "public JSON Web Key Set for private_key_jwt, as JSON or @file (replaces --jwks-uri)",
		"jwks-uri":                   "https URL of the JSON Web Key Set for private_key_jwt (replaces --jwks)",
	} {
		f.Lookup(name).Usage = usage
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		var given []string
		for _, name := range registrationFlagNames {
			if f.Changed(name) {
				given = append(given, name)
			}
		}
		if len(given) == 0 && !revoke {
			return usageError{errors.New("nothing to change: give at least one flag (see --help)")}
		}
		jwksSet, err := readArgOrFile(jwks)
		if err != nil {
			return err
		}
		// list is a repeatable flag's new value: "" alone empties it.
		list := func(v []string) []string {
			if len(v) == 1 && v[0] == "" {
				return nil
			}
			return v
		}
		edit := func(s *clients.Spec) {
			for _, name := range given {
				switch name {
				case "name":
					s.Name = set.Name
				case "redirect-uri":
					s.RedirectURIs = list(set.RedirectURIs)
				case "post-logout-redirect-uri":
					s.PostLogoutRedirectURIs = list(set.PostLogoutRedirectURIs)
				case "grant-type":
					s.GrantTypes = list(set.GrantTypes)
				case "scope":
					s.Scopes = list(set.Scopes)
				case "token-endpoint-auth-method":
					s.TokenEndpointAuthMethod = set.TokenEndpointAuthMethod
				case "first-party":
					s.FirstParty = set.FirstParty
				case "require-mfa":
					s.RequireMFA = set.RequireMFA
				case "pkce-optional":
					s.PKCEOptional = set.PKCEOptional
				case "id-token-alg":
					s.IDTokenAlg = set.IDTokenAlg
				case "access-token-format":
					s.AccessTokenFormat = set.AccessTokenFormat
				}
			}
			// A key set given one way replaces the other way; both at
			// once is refused by validation.
			if f.Changed("jwks") {
				s.JWKS, s.JWKSURI = jwksSet, ""
			}
			if f.Changed("jwks-uri") {
				s.JWKSURI = set.JWKSURI
				if !f.Changed("jwks") {
					s.JWKS = ""
				}
			}
		}
		return a.withRegistry(cmd.Context(), func(s store.Store, r *clients.Registry) error {
			// With no registration flag, edit changes nothing: the
			// update only finds the client.
			c, changes, revoked, err := adminOf(s).UpdateClient(cmd.Context(), admin.CLI, r, args[0],
				admin.ClientUpdate{Edit: edit, RevokeTokens: revoke})
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("client %q was changed meanwhile: run the update again", args[0])
			}
			if err != nil {
				return clientNotFound(args[0], err)
			}
			if *output == "json" {
				return writeJSON(a.stdout, clientToJSON(c))
			}
			switch {
			case len(changes) > 0:
				fields := slices.Sorted(maps.Keys(changes))
				fmt.Fprintf(a.stdout, "updated client %s (%s)\n", c.ID, strings.Join(fields, ", "))
			case len(given) > 0:
				fmt.Fprintf(a.stdout, "client %s already has these values: nothing changed\n", c.ID)
			}
			if revoke {
				fmt.Fprintf(a.stdout, "revoked %d code and token row(s) of client %s\n", revoked, c.ID)
			}
			return nil
		})
	}
	return cmd
}

// readArgOrFile returns v, or the contents of the file it names as @path.
func readArgOrFile(v string) (string, error) {
	path, ok := strings.CutPrefix(v, "@")
	if !ok {
		return v, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read --jwks file: %w", err)
	}
	return string(b), nil
}

func (a *app) clientsListCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List clients", Args: exactArgs(0)}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			cs, err := s.ListClients(cmd.Context())
			if err != nil {
				return err
			}
			if *output == "json" {
				out := make([]clientJSON, len(cs))
				for i, c := range cs {
					out[i] = clientToJSON(c)
				}
				return writeJSON(a.stdout, out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLIENT ID\tNAME\tAUTH METHOD\tGRANT TYPES\tCREATED")
			for _, c := range cs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, c.TokenEndpointAuthMethod,
					strings.Join(c.GrantTypes, ","), c.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		})
	}
	return cmd
}

func (a *app) clientsShowCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "show CLIENT_ID", Short: "Show one client (never its secret)", Args: exactArgs(1)}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			c, err := s.GetClient(cmd.Context(), args[0])
			if err != nil {
				return clientNotFound(args[0], err)
			}
			j := clientToJSON(c)
			if *output == "json" {
				return writeJSON(a.stdout, j)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
			row("client_id", j.ID)
			row("name", j.Name)
			row("public", j.Public)
			row("first party", j.FirstParty)
			row("require mfa", j.RequireMFA)
			row("pkce optional", j.PKCEOptional)
			row("has secret", j.HasSecret)
			row("token endpoint auth", j.TokenEndpointAuthMethod)
			row("grant types", strings.Join(j.GrantTypes, " "))
			row("scopes", strings.Join(j.Scopes, " "))
			row("redirect uris", strings.Join(j.RedirectURIs, " "))
			row("post-logout uris", strings.Join(j.PostLogoutRedirectURIs, " "))
			if j.JWKSURI != "" {
				row("jwks uri", j.JWKSURI)
			}
			if j.JWKS != "" {
				row("jwks", "(inline key set, see --output json)")
			}
			row("id token alg", j.IDTokenAlg)
			row("access token format", j.AccessTokenFormat)
			row("created", j.CreatedAt.Format(time.RFC3339))
			row("updated", j.UpdatedAt.Format(time.RFC3339))
			return tw.Flush()
		})
	}
	return cmd
}

func (a *app) clientsDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "delete CLIENT_ID", Short: "Delete a client and every token issued to it", Args: exactArgs(1)}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return a.withStore(cmd.Context(), func(_ Config, s store.Store) error {
			if err := adminOf(s).DeleteClient(cmd.Context(), admin.CLI, args[0]); err != nil {
				return clientNotFound(args[0], err)
			}
			fmt.Fprintf(a.stdout, "deleted client %s\n", args[0])
			return nil
		})
	}
	return cmd
}

func (a *app) clientsRotateSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID",
		Short: "Replace a client's secret; the old one stops working at once and the new one is printed once",
		Args:  exactArgs(1),
	}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return a.withRegistry(cmd.Context(), func(s store.Store, r *clients.Registry) error {
			secret, err := adminOf(s).RotateClientSecret(cmd.Context(), admin.CLI, r, args[0])
			if err != nil {
				return clientNotFound(args[0], err)
			}
			if *output == "text" {
				fmt.Fprintln(a.stderr, "Store the client secret now: it is not shown again.")
			}
			return a.printCredentials(*output, args[0], secret)
		})
	}
	return cmd
}
