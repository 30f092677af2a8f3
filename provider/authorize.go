package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

// handleAuthorize is the authorization endpoint (GET or form POST).
func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if ar, err, ok := p.refuseRequestObject(r); ok {
		p.authorizeError(w, r, ar, err)
		return
	}
	ar, err := p.newAuthorizeRequest(ctx, r)
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	if err := checkPKCE(ar); err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	form := ar.GetRequestForm()
	prompt := promptValues(form)
	sess, user, hasSession := p.currentSession(r)

	aged, err := maxAgePassed(form, sess.AuthTime, p.now())
	if err == nil {
		err = checkClaimsParam(form.Get("claims"))
	}
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	needLogin := !hasSession || slices.Contains(prompt, "login") || aged
	if needLogin {
		if slices.Contains(prompt, "none") {
			p.authorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("The user is not signed in, and prompt=none forbids asking."))
			return
		}
		p.startFlow(w, r, ar, store.FlowPassword, store.Session{}, store.User{})
		return
	}
	// Step-up (R23): the session has the password only, and this client
	// or request needs two factors. Ask for the second factor only (or
	// enrolment), never the password again.
	if p.stepUpNeeded(ctx, ar, sess, user) {
		if slices.Contains(prompt, "none") {
			p.authorizeError(w, r, ar, fosite.ErrInteractionRequired.WithHint("A second factor is required, and prompt=none forbids asking."))
			return
		}
		factors, err := p.confirmedFactors(ctx, user.ID)
		if err != nil {
			p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
		if len(factors) > 0 {
			p.startFlow(w, r, ar, store.FlowSecondFactor, sess, user)
			return
		}
		// No factor yet: enrolment needs a fresh password (a stolen
		// session cookie must not be able to add the thief's factor),
		// so this becomes a full sign-in as the same user.
		p.startFlow(w, r, ar, store.FlowPassword, store.Session{}, user)
		return
	}
	if p.consentNeeded(ctx, ar.GetClient().GetID(), user.ID, form) {
		if slices.Contains(prompt, "none") {
			p.authorizeError(w, r, ar, fosite.ErrConsentRequired.WithHint("The user has not consented, and prompt=none forbids asking."))
			return
		}
		p.startFlow(w, r, ar, store.FlowConsent, sess, user)
		return
	}
	p.finish(w, r, ar, sess, user, ar.GetRequestedAt())
}

// stepUpNeeded: the session lacks what the user's policy (a second
// step, a code by email included) or the client's registration or the
// request itself (two factors) demands.
func (p *Provider) stepUpNeeded(ctx context.Context, ar fosite.AuthorizeRequester, sess store.Session, user store.User) bool {
	if mfa.IsMFA(sess.AMR) {
		return false
	}
	c, _ := ar.GetClient().(*client)
	if (c != nil && c.RequireMFA) || wantsMFA(ar.GetRequestForm()) {
		return true
	}
	return mfa.RequiredNow(user, p.policies(ctx), p.now()) && !mfa.SecondStep(sess.AMR) && !p.bypasses(sess.Upstream)
}

// authorizeError answers a failed authorization request. An error the
// client may see goes to its redirect URI; when the client or redirect
// URI could not be trusted, the user gets a page and nobody is redirected
// (OIDC Core §3.1.2.6, RFC 6749 §4.1.2.1).
func (p *Provider) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	p.logger.InfoContext(r.Context(), "authorize refused", "error", rfc.ErrorField, "hint", rfc.HintField, "debug", rfc.DebugField)
	if ar == nil || !ar.IsRedirectURIValid() {
		p.errorPage(w, r, http.StatusBadRequest, "This sign-in request is not valid", describe(rfc), rfc.ErrorField)
		return
	}
	p.writeAuthorizeError(w, ar, rfc)
}

// writeAuthorizeError sends an error to the client's redirect URI with
// state and, as RFC 9207 §2 asks of a provider that advertises it, iss:
// fosite's writer has no iss, so the response is built here the same way.
func (p *Provider) writeAuthorizeError(w http.ResponseWriter, ar fosite.AuthorizeRequester, rfc *fosite.RFC6749Error) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	params := rfc.ToValues()
	params.Set("state", ar.GetState())
	params.Set("iss", p.cfg.Issuer)
	target := *ar.GetRedirectURI()
	target.Fragment = ""
	switch ar.GetResponseMode() {
	case fosite.ResponseModeFormPost:
		w.Header().Set("Content-Type", "text/html;charset=UTF-8")
		fosite.WriteAuthorizeFormPostResponse(target.String(), params, fosite.DefaultFormPostTemplate, w)
		return
	case fosite.ResponseModeFragment:
		w.Header().Set("Location", target.String()+"#"+params.Encode())
	default:
		for k, vs := range target.Query() {
			for _, v := range vs {
				params.Add(k, v)
			}
		}
		target.RawQuery = params.Encode()
		w.Header().Set("Location", target.String())
	}
	w.WriteHeader(http.StatusSeeOther)
}

// refuseRequestObject answers a request that carries a request object
// (request or request_uri), which Twofold does not support
// (request_parameter_supported is false): the rest of the request is
// validated without it, so the client learns request_not_supported at its
// redirect URI, or the user sees a page when the client or redirect URI
// cannot be trusted.
func (p *Provider) refuseRequestObject(r *http.Request) (fosite.AuthorizeRequester, error, bool) {
	// As fosite reads the request: a multipart body too, else a request
	// object sent in one would reach fosite's own handling of it.
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return nil, nil, false // fosite reports it
	}
	object, uri := r.Form.Get("request"), r.Form.Get("request_uri")
	if object == "" && uri == "" {
		return nil, nil, false
	}
	form := url.Values{}
	for k, v := range r.Form {
		if k != "request" && k != "request_uri" {
			form[k] = v
		}
	}
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet
	r2.URL = &url.URL{Path: r.URL.Path, RawQuery: form.Encode()}
	r2.Body, r2.ContentLength, r2.Form, r2.PostForm = http.NoBody, 0, nil, nil
	r2.Header = r.Header.Clone()
	r2.Header.Del("Content-Type")
	ar, err := p.newAuthorizeRequest(r.Context(), r2)
	if err != nil && (ar == nil || !ar.IsRedirectURIValid()) {
		return ar, err, true // no trusted redirect URI: a page
	}
	// Other faults (the state, say, may live inside the object) matter
	// less than the object itself, which is the first thing to refuse.
	if uri != "" {
		return ar, fosite.ErrRequestURINotSupported.WithHint("Twofold does not support request_uri."), true
	}
	return ar, fosite.ErrRequestNotSupported.WithHint("Twofold does not support request objects."), true
}

// checkPKCE refuses a bad PKCE request before anyone signs in (fosite
// would refuse it only when issuing the code): S256 only, and mandatory
// for every client but a confidential one registered with PKCE optional
// (RFC 9700 §2.1.1: it keeps a stolen or injected code from being
// redeemed; security.md §3.6).
func checkPKCE(ar fosite.AuthorizeRequester) error {
	form := ar.GetRequestForm()
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method was sent without a code_challenge.")
	case challenge == "" && ar.GetClient().IsPublic():
		return fosite.ErrInvalidRequest.WithHint("PKCE is required for public clients: send code_challenge with code_challenge_method=S256.")
	case challenge == "" && !pkceOptional(ar.GetClient()):
		return fosite.ErrInvalidRequest.WithHint("PKCE is required: send code_challenge with code_challenge_method=S256.")
	case challenge == "":
		return nil
	case method != "S256":
		return fosite.ErrInvalidRequest.WithHint("Only the S256 PKCE method is supported.")
	case len(challenge) != 43:
		return fosite.ErrInvalidRequest.WithHint("code_challenge must be a base64url SHA-256 (43 characters).")
	}
	return nil
}

// pkceOptional says whether c is a confidential client registered to go
// without PKCE.
func pkceOptional(c fosite.Client) bool {
	cl, ok := c.(*client)
	return ok && !cl.Public && cl.PKCEOptional
}

func describe(e *fosite.RFC6749Error) string {
	msg := e.DescriptionField
	if e.HintField != "" {
		msg += " " + e.HintField
	}
	return msg
}

func (p *Provider) errorPage(w http.ResponseWriter, r *http.Request, status int, title, message, code string) {
	if err := p.pages.Render(w, status, "error.html", map[string]string{"Title": title, "Message": message, "Code": code}); err != nil {
		p.logger.ErrorContext(r.Context(), "render error page", "err", err)
	}
}

func promptValues(form url.Values) []string {
	return fosite.RemoveEmpty(strings.Split(form.Get("prompt"), " "))
}

// maxAgePassed reports whether max_age asks for a fresher sign-in than
// authTime. max_age=0 always forces one (OIDC Core §3.1.2.1). A max_age
// that is not a number of seconds is an error: fosite would read it as
// absent, and a client asking for a fresh sign-in must not get an old
// one by a typo.
func maxAgePassed(form url.Values, authTime, now time.Time) (bool, error) {
	v := form.Get("max_age")
	if v == "" {
		return false, nil
	}
	if len(v) > 19 || strings.ContainsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		return false, fosite.ErrInvalidRequest.WithHint("max_age must be a number of seconds.")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return false, fosite.ErrInvalidRequest.WithHint("max_age must be a number of seconds.")
	}
	const century = 100 * 365 * 24 * 3600 // no sign-in is older; keeps the Duration from overflowing
	return n == 0 || now.Sub(authTime) > time.Duration(min(n, century))*time.Second, nil
}

// currentSession returns the browser's SSO session and its user, if the
// cookie names a live session of an enabled user.
func (p *Provider) currentSession(r *http.Request) (store.Session, store.User, bool) {
	v := p.cookie(r, sessionCookie)
	if v == "" {
		return store.Session{}, store.User{}, false
	}
	ctx := r.Context()
	s, err := p.store.GetSession(ctx, sessionID(v))
	now := p.now()
	if err != nil || !now.Before(s.ExpiresAt) || now.Sub(s.LastSeen) > p.cfg.SessionIdle {
		return store.Session{}, store.User{}, false
	}
	u, err := p.store.GetUser(ctx, s.UserID)
	if err != nil || u.Disabled {
		return store.Session{}, store.User{}, false
	}
	// Record the use, at most once a minute (a write per request would
	// cost more than the idle timeout is worth).
	if now.Sub(s.LastSeen) > time.Minute {
		_ = p.store.TouchSession(ctx, s.ID, now)
	}
	return s, u, true
}

// consentNeeded: first-party clients never ask; third-party clients ask
// on prompt=consent, and unless the user already granted every scope.
func (p *Provider) consentNeeded(ctx context.Context, clientID, userID string, form url.Values) bool {
	c, err := p.client(ctx, clientID)
	if err != nil {
		return true
	}
	if c.FirstParty {
		return false
	}
	if slices.Contains(promptValues(form), "consent") {
		return true
	}
	granted, err := p.store.GetConsent(ctx, userID, clientID)
	if err != nil {
		return true
	}
	for _, s := range fosite.RemoveEmpty(strings.Split(form.Get("scope"), " ")) {
		if !slices.Contains(granted.Scopes, s) {
			return true
		}
	}
	return false
}

// startFlow stores the request and sends the browser to its first step.
func (p *Provider) startFlow(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, state string, sess store.Session, user store.User) {
	now := p.now().UTC()
	f := store.LoginFlow{
		ID: randomToken(), State: state, UserID: user.ID, SessionID: sess.ID,
		ClientID: ar.GetClient().GetID(), AuthorizeForm: ar.GetRequestForm().Encode(),
		Methods: sess.AMR, CreatedAt: now, ExpiresAt: now.Add(p.cfg.LoginFlowLifespan), Upstream: sess.Upstream,
	}
	if state != store.FlowPassword {
		at := sess.AuthTime
		f.AuthTime = &at
	}
	if err := p.store.CreateLoginFlow(r.Context(), f); err != nil {
		p.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	// The flow id travels in a cookie and in every form: a step must
	// present both, so a flow cannot be driven from another browser.
	p.setCookie(w, flowCookie, f.ID, p.cfg.LoginFlowLifespan)
	http.Redirect(w, r, flowPage(state)+"?flow="+url.QueryEscape(f.ID), http.StatusSeeOther)
}

// errFlow is any reason a step cannot run on a flow.
var errFlow = errors.New("this sign-in has expired or was already used")

// loadFlow returns the flow a step names, only if the browser's flow
// cookie names the same one, it has not expired, and it is in state.
func (p *Provider) loadFlow(r *http.Request, id, state string) (store.LoginFlow, error) {
	return p.boundFlow(r, id, state, func(ctx context.Context) (store.LoginFlow, error) {
		return p.store.GetLoginFlow(ctx, id)
	})
}

// boundFlow gets the flow id with get and applies loadFlow's checks.
func (p *Provider) boundFlow(r *http.Request, id, state string, get func(context.Context) (store.LoginFlow, error)) (store.LoginFlow, error) {
	if id == "" || id != p.cookie(r, flowCookie) {
		return store.LoginFlow{}, errFlow
	}
	f, err := get(r.Context())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.LoginFlow{}, fmt.Errorf("load login flow: %w", err) // the database failed: not the link
	}
	if err != nil || f.State != state || !p.now().Before(f.ExpiresAt) {
		return store.LoginFlow{}, errFlow
	}
	return f, nil
}

// resume parses the flow's stored request again with fosite, so every
// check of the original request runs once more before anything is issued.
func (p *Provider) resume(r *http.Request, f store.LoginFlow) (fosite.AuthorizeRequester, error) {
	form, err := url.ParseQuery(f.AuthorizeForm)
	if err != nil {
		return nil, err
	}
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet
	r2.URL = &url.URL{Path: "/authorize", RawQuery: form.Encode()}
	r2.Body = http.NoBody
	r2.ContentLength = 0
	r2.Form, r2.PostForm = nil, nil
	r2.Header = r.Header.Clone()
	r2.Header.Del("Content-Type")
	ar, err := p.newAuthorizeRequest(r.Context(), r2)
	if err == nil {
		// Checked again: the client's registration may have changed
		// (PKCE no longer optional) since the sign-in began.
		err = checkPKCE(ar)
	}
	return ar, err
}

// finish completes an authorization request for a signed-in user. Claims
// about the authentication come from the SSO session only.
func (p *Provider) finish(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, sess store.Session, user store.User, requestedAt time.Time) {
	ctx := r.Context()
	c := ar.GetClient().(*client)
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s) // fosite already refused scopes the client may not ask for
	}
	if !ar.GetRequestedScopes().Has("openid") {
		p.authorizeError(w, r, ar, fosite.ErrInvalidScope.WithHint("Twofold is an OpenID Connect provider: the openid scope is required."))
		return
	}
	// An essential acr the session does not meet fails the request
	// (OIDC Core §5.5.1.1): never a token that claims less than required.
	if want := essentialACR(ar.GetRequestForm().Get("claims")); len(want) > 0 && !slices.Contains(want, sess.ACR) {
		p.authorizeError(w, r, ar, errUnmet.WithHintf("The sign-in met %s, not the essential acr requested.", sess.ACR))
		return
	}
	s := newSession()
	s.Subject = user.ID
	s.Username = user.Email
	s.Claims.Subject = user.ID
	s.Claims.Issuer = p.cfg.Issuer
	s.Claims.AuthTime = sess.AuthTime.UTC()
	s.Claims.RequestedAt = requestedAt.UTC()
	s.Claims.AuthenticationMethodsReferences = sess.AMR
	s.Claims.AuthenticationContextClassReference = sess.ACR
	s.Claims.Extra = map[string]any{"sid": sess.ID, "azp": c.ID}
	s.Headers.Extra = map[string]any{algHeader: c.IDTokenAlg}
	s.Upstream = sess.Upstream
	idClaims, userinfoClaims := requestedClaims(ar.GetRequestForm().Get("claims"))
	for k, v := range p.userClaims(user, idClaims) {
		s.Claims.Extra[k] = v
	}
	s.UserinfoClaims = userinfoClaims

	ar.SetID(newRequestID())
	// The rows fosite creates (the code with its OpenID Connect session,
	// the PKCE challenge) go to the store in one statement once the
	// response is built.
	ctx, h := holdWrites(ctx)
	resp, err := p.oauth.NewAuthorizeResponse(ctx, ar, s)
	if err == nil {
		err = p.fstore.flush(ctx, h)
	}
	if err != nil {
		p.authorizeError(w, r, ar, err)
		return
	}
	resp.AddParameter("iss", p.cfg.Issuer) // RFC 9207: defeats mix-up attacks
	p.clearCookie(w, flowCookie)
	p.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// checkClaimsParam refuses a claims parameter that is not what OIDC Core
// §5.5 describes: a JSON object whose id_token and userinfo members are
// objects of claims, each null or an object. Read as absent instead, a
// malformed request for an essential acr would drop its demand for two
// factors.
func checkClaimsParam(param string) error {
	if param == "" {
		return nil
	}
	bad := fosite.ErrInvalidRequest.WithHint("The claims parameter must be a JSON object of id_token and userinfo requests (OIDC Core 5.5).")
	var top map[string]json.RawMessage
	if json.Unmarshal([]byte(param), &top) != nil || top == nil {
		return bad
	}
	for _, member := range []string{"id_token", "userinfo"} {
		raw, ok := top[member]
		if !ok || string(raw) == "null" {
			continue
		}
		var claims map[string]json.RawMessage
		if json.Unmarshal(raw, &claims) != nil {
			return bad
		}
		for _, c := range claims {
			var req map[string]json.RawMessage
			if string(c) != "null" && json.Unmarshal(c, &req) != nil {
				return bad
			}
			if e, ok := req["essential"]; ok && string(e) != "true" && string(e) != "false" {
				return bad
			}
		}
	}
	return nil
}

// requestedClaims reads the claims request parameter (OIDC Core §5.5):
// the names asked for in the ID token and at userinfo. Values and
// essential flags do not change what Twofold returns: each claim is
// released only when the user has it.
func requestedClaims(param string) (idToken, userinfo []string) {
	if param == "" {
		return nil, nil
	}
	var req struct {
		IDToken  map[string]json.RawMessage `json:"id_token"`
		Userinfo map[string]json.RawMessage `json:"userinfo"`
	}
	if json.Unmarshal([]byte(param), &req) != nil {
		return nil, nil
	}
	for k := range req.IDToken {
		idToken = append(idToken, k)
	}
	for k := range req.Userinfo {
		userinfo = append(userinfo, k)
	}
	slices.Sort(idToken)
	slices.Sort(userinfo)
	return idToken, userinfo
}
