package provider

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/twofold-idp/twofold/admin"
	"github.com/twofold-idp/twofold/clients"
	"github.com/twofold-idp/twofold/store"
)

// A client's page in the admin console (R04): its registration as a
// form, its secret and its deletion. Key sets (private_key_jwt) stay with
// `twofold clients update`: a JSON key set is not typed into a form.

var (
	consoleGrants = []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken, clients.GrantClientCredentials}
	consoleAlgs   = []string{"RS256", "ES256"}
)

type consoleClientView struct {
	consoleBase
	Client store.Client
	// Seen is the client's UpdatedAt when the page was made: the form
	// sends it back, and a client changed since refuses the edit.
	Seen                         string
	Spec                         clients.Spec // as stored, or as the refused form had it
	RedirectURIs, PostLogoutURIs string       // one per line
	Grants, Scopes               map[string]bool
	AllGrants, AllScopes, Algs   []string
	SecretAuth                   bool // a secret client: basic or post can be chosen
}

// handleConsoleClient shows one client's settings.
func (p *Provider) handleConsoleClient(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.consoleAdmin(w, r)
	if !ok {
		return
	}
	c, ok := p.consoleClient(w, r)
	if !ok {
		return
	}
	p.renderConsoleClient(w, r, http.StatusOK, p.consoleBase(r, sess, user), c, clients.SpecOf(c))
}

// consoleClient loads the client the path names, or writes the answer.
func (p *Provider) consoleClient(w http.ResponseWriter, r *http.Request) (store.Client, bool) {
	c, err := p.store.GetClient(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		p.errorPage(w, r, http.StatusNotFound, "No such client", "It may have been deleted.", "")
		return c, false
	}
	if err != nil {
		p.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again.", "server_error")
		return c, false
	}
	return c, true
}

func (p *Provider) renderConsoleClient(w http.ResponseWriter, r *http.Request, status int, base consoleBase, c store.Client, spec clients.Spec) {
	v := consoleClientView{consoleBase: base, Client: c, Seen: c.UpdatedAt.UTC().Format(time.RFC3339Nano), Spec: spec,
		RedirectURIs: strings.Join(spec.RedirectURIs, "\n"), PostLogoutURIs: strings.Join(spec.PostLogoutRedirectURIs, "\n"),
		Grants: map[string]bool{}, Scopes: map[string]bool{},
		AllGrants: consoleGrants, AllScopes: clients.SupportedScopes(), Algs: consoleAlgs,
		SecretAuth: secretAuth(c.TokenEndpointAuthMethod)}
	for _, g := range spec.GrantTypes {
		v.Grants[g] = true
	}
	for _, s := range spec.Scopes {
		v.Scopes[s] = true
	}
	p.render(w, r, status, "admin_client.html", v)
}

func secretAuth(method string) bool {
	return method == clients.AuthClientSecretBasic || method == clients.AuthClientSecretPost
}

// handleConsoleClientSubmit saves a client's settings, and revokes its
// tokens when asked; an invalid or stale form changes nothing.
func (p *Provider) handleConsoleClientSubmit(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.consoleForm(w, r)
	if !ok {
		return
	}
	c, ok := p.consoleClient(w, r)
	if !ok {
		return
	}
	form := r.PostForm
	if form.Get("action") != "update" {
		p.errorPage(w, r, http.StatusBadRequest, "Unknown change", "Reload the page and try again.", "")
		return
	}
	seen, err := time.Parse(time.RFC3339Nano, form.Get("seen"))
	if err != nil || seen.IsZero() { // zero would skip the staleness check
		p.errorPage(w, r, http.StatusBadRequest, "This form has expired", "Reload the page and try again.", "")
		return
	}
	edit := func(s *clients.Spec) {
		s.Name = strings.TrimSpace(form.Get("name"))
		s.RedirectURIs = strings.Fields(form.Get("redirect_uris"))
		s.PostLogoutRedirectURIs = strings.Fields(form.Get("post_logout_redirect_uris"))
		s.GrantTypes = ticked(s.GrantTypes, consoleGrants, form["grant_type"])
		s.Scopes = ticked(s.Scopes, clients.SupportedScopes(), form["scope"])
		s.FirstParty, s.RequireMFA = form.Get("first_party") == "yes", form.Get("require_mfa") == "yes"
		s.PKCEOptional = form.Get("pkce_optional") == "yes"
		s.IDTokenAlg, s.AccessTokenFormat = form.Get("id_token_alg"), form.Get("access_token_format")
		if secretAuth(s.TokenEndpointAuthMethod) {
			s.TokenEndpointAuthMethod = form.Get("token_endpoint_auth_method")
		}
	}
	refuse := func(status int, msg string, c store.Client, spec clients.Spec) {
		base := p.consoleBase(r, sess, user)
		base.Error = msg
		p.renderConsoleClient(w, r, status, base, c, spec)
	}
	// What the form asked for, shown again if it is refused.
	asked := clients.SpecOf(c)
	edit(&asked)
	switch {
	case len(asked.GrantTypes) == 0:
		refuse(http.StatusBadRequest, "Choose at least one grant type.", c, asked)
		return
	case len(asked.Scopes) == 0:
		refuse(http.StatusBadRequest, "Choose at least one scope.", c, asked)
		return
	}
	got, changes, _, err := p.adminService().UpdateClient(r.Context(), p.actor(r, user), p.registry, c.ID,
		admin.ClientUpdate{Edit: edit, Seen: seen, RevokeTokens: form.Get("revoke_tokens") == "yes"})
	var invalid *clients.ValidationError
	switch {
	case errors.As(err, &invalid):
		refuse(http.StatusBadRequest, "The client was not changed: "+strings.TrimPrefix(invalid.Error(), "invalid client: ")+".", c, asked)
		return
	case errors.Is(err, clients.ErrAuthChange):
		refuse(http.StatusBadRequest, "How a client authenticates can only switch between client_secret_basic and client_secret_post; register a new client for another way.", c, asked)
		return
	case errors.Is(err, store.ErrConflict):
		now, ok := p.consoleClient(w, r)
		if ok {
			refuse(http.StatusConflict, "The client was changed after this page was opened, so nothing was saved. Here are its settings now: make your change again.", now, clients.SpecOf(now))
		}
		return
	case errors.Is(err, store.ErrNotFound):
		p.errorPage(w, r, http.StatusNotFound, "No such client", "It may have been deleted.", "")
		return
	case err != nil:
		p.consoleFailed(w, r, "update client", err)
		return
	}
	p.fstore.clients.forget(got.ID)
	notice := "client-unchanged"
	switch {
	case form.Get("revoke_tokens") == "yes":
		notice = "client-revoked"
	case len(changes) > 0:
		notice = "client-updated"
	}
	p.consoleDone(w, r, consolePath+"/clients/"+url.PathEscape(got.ID), notice)
}

// ticked is the list of values in all that the form ticked: those
// already in current keep their order (an unchanged list reads as no
// change), new ones follow in all's order.
func ticked(current, all, form []string) []string {
	var out []string
	for _, v := range current {
		if slices.Contains(all, v) && slices.Contains(form, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, v := range all {
		if slices.Contains(form, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
