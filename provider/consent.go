package provider

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/twofold-idp/twofold/store"
)

type consentPage struct {
	Flow, CSRF, ClientName string
	Scopes                 []string
}

// scopeText says in words what each scope lets a client do.
var scopeText = map[string]string{
	"openid":         "Know who you are",
	"profile":        "See your basic profile",
	"email":          "See your email address",
	"offline_access": "Stay connected when you are not using it",
}

func (p *Provider) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	f, err := p.loadFlow(r, r.URL.Query().Get("flow"), store.FlowConsent)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	form, _ := url.ParseQuery(f.AuthorizeForm)
	page := consentPage{Flow: f.ID, CSRF: p.csrfToken("consent", f.ID)}
	if c, err := p.client(r.Context(), f.ClientID); err == nil {
		page.ClientName = c.Name
	}
	for _, s := range fosite.RemoveEmpty(strings.Split(form.Get("scope"), " ")) {
		if t, ok := scopeText[s]; ok {
			page.Scopes = append(page.Scopes, t)
		}
	}
	if err := p.pages.Render(w, http.StatusOK, "consent.html", page); err != nil {
		p.logger.ErrorContext(r.Context(), "render consent", "err", err)
	}
}

func (p *Provider) handleConsentSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, http.StatusBadRequest, "This request is not valid", "The form could not be read.", "")
		return
	}
	id := r.PostForm.Get("flow")
	if !p.checkCSRF("consent", id, r.PostForm.Get("csrf")) {
		p.errorPage(w, r, http.StatusForbidden, "This form has expired", "Reload the page and try again.", "csrf")
		return
	}
	f, err := p.loadFlow(r, id, store.FlowConsent)
	if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	// The SSO session must still be the one the flow was bound to.
	sess, user, ok := p.currentSession(r)
	if !ok || sess.ID != f.SessionID || user.ID != f.UserID {
		p.errorPage(w, r, http.StatusBadRequest, "This sign-in link has expired", "Start again from the application you were signing in to.", "")
		return
	}
	ar, err := p.resume(r, f)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	from := f.State
	f.State = store.FlowDone
	if err := p.store.UpdateLoginFlow(ctx, f, from); errors.Is(err, store.ErrConflict) {
		p.errorPage(w, r, http.StatusConflict, "This sign-in link has expired", "Start again from the application you were signing in to.", "")
		return
	} else if err != nil {
		p.flowFailed(w, r, err)
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		_ = p.store.DeleteLoginFlow(ctx, f.ID)
		p.clearCookie(w, flowCookie)
		p.audit(ctx, r, store.AuditEvent{Type: "consent.denied", UserID: user.ID, ClientID: f.ClientID})
		p.writeAuthorizeError(w, ar, fosite.ErrorToRFC6749Error(fosite.ErrAccessDenied.WithHint("The user denied the request.")))
		return
	}
	err = p.store.SaveConsent(ctx, store.Consent{UserID: user.ID, ClientID: f.ClientID,
		Scopes: store.Strings(ar.GetRequestedScopes()), GrantedAt: p.now()})
	if err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	p.audit(ctx, r, store.AuditEvent{Type: "consent.granted", UserID: user.ID, ClientID: f.ClientID})
	_ = p.store.DeleteLoginFlow(ctx, f.ID)
	p.finish(w, r, ar, sess, user, f.CreatedAt)
}
