package provider

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"

	"github.com/twofold-idp/twofold/store"
)

type logoutPage struct {
	CSRF, Email                            string
	ClientID, PostLogoutRedirectURI, State string
}

// handleLogout is RP-initiated logout (OpenID Connect RP-Initiated Logout
// 1.0). A post_logout_redirect_uri is followed only when it exactly
// matches one the client registered; a bad id_token_hint or URI gets a
// page and redirects nowhere. Without a valid hint for the signed-in user
// the user is asked to confirm, so a third-party page cannot sign them out.
func (p *Provider) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "This sign-out request is not valid", "The request could not be read.", "invalid_request")
		return
	}
	q := r.Form
	hint, clientID, redirect, state := q.Get("id_token_hint"), q.Get("client_id"), q.Get("post_logout_redirect_uri"), q.Get("state")

	var hinted struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Aud any    `json:"aud"`
		Azp string `json:"azp"`
	}
	if hint != "" {
		payload, err := p.keys.Verify(ctx, hint)
		if err == nil {
			err = json.Unmarshal(payload, &hinted)
		}
		if err != nil || hinted.Iss != p.cfg.Issuer || hinted.Sub == "" {
			p.errorPage(w, r, http.StatusBadRequest, "This sign-out request is not valid", "The ID token hint was not issued by this provider.", "invalid_request")
			return
		}
		aud := audiences(hinted.Aud)
		if clientID != "" && !slices.Contains(aud, clientID) {
			p.errorPage(w, r, http.StatusBadRequest, "This sign-out request is not valid", "The client does not match the ID token hint.", "invalid_request")
			return
		}
		if clientID == "" {
			clientID = hinted.Azp
			if clientID == "" && len(aud) == 1 {
				clientID = aud[0]
			}
		}
	}
	if redirect != "" {
		c, err := p.store.GetClient(ctx, clientID)
		if clientID == "" || err != nil || !slices.Contains(c.PostLogoutRedirectURIs, redirect) {
			p.errorPage(w, r, http.StatusBadRequest, "This sign-out request is not valid", "The address to return to is not registered for this application.", "invalid_request")
			return
		}
	}

	sess, user, signedIn := p.currentSession(r)
	confirmed := r.Method == http.MethodPost && q.Get("confirm") == "yes" && signedIn &&
		p.checkCSRF("logout", sess.ID, q.Get("csrf"))
	hintMatches := hint != "" && signedIn && hinted.Sub == user.ID
	if signedIn && !confirmed && !hintMatches {
		page := logoutPage{CSRF: p.csrfToken("logout", sess.ID), Email: user.Email,
			ClientID: clientID, PostLogoutRedirectURI: redirect, State: state}
		if err := p.pages.Render(w, http.StatusOK, "logout.html", page); err != nil {
			p.logger.ErrorContext(ctx, "render logout", "err", err)
		}
		return
	}
	if signedIn {
		if err := p.store.DeleteSession(ctx, sess.ID); err != nil {
			p.errorPage(w, r, http.StatusInternalServerError, "Sign-out failed", "Please try again.", "server_error")
			return
		}
		p.audit(ctx, r, store.AuditEvent{Type: "logout", UserID: user.ID, ClientID: clientID})
	}
	p.clearCookie(w, sessionCookie)
	if redirect != "" {
		u, _ := url.Parse(redirect)
		if state != "" {
			v := u.Query()
			v.Set("state", state)
			u.RawQuery = v.Encode()
		}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	if err := p.pages.Render(w, http.StatusOK, "loggedout.html", nil); err != nil {
		p.logger.ErrorContext(ctx, "render logged out", "err", err)
	}
}

func audiences(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
