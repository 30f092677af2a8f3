package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/twofold-idp/twofold/mfa"
	"github.com/twofold-idp/twofold/store"
)

// handleToken is the token endpoint: authorization_code (+PKCE),
// refresh_token (rotated; reuse revokes the family) and
// client_credentials. The password grant is not composed.
func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err == nil {
		if gt := r.PostForm.Get("grant_type"); gt != "" && !slices.Contains(grantTypes, gt) {
			p.accessError(w, r, nil, fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", gt))
			return
		}
	}
	var (
		ctx  context.Context
		ar   fosite.AccessRequester
		resp fosite.AccessResponder
		err  error
	)
	// A refresh whose transaction the database aborted for racing
	// another (a revocation of the same tokens) wrote nothing, and is
	// run again: it is no server error. Only a refresh by a client that
	// authenticates with its secret: what comes before fosite's
	// transaction is then reads. A code exchange takes its PKCE row and
	// a private_key_jwt client spends its assertion first, for good; and
	// a code exchange cannot deadlock with a sign-out, which takes the
	// user's lock first as the exchange does (DeactivateOAuth2Request).
	rerun := retryable(r)
	for attempt := 1; ; attempt++ {
		ctx, _ = holdWrites(r.Context()) // the code's row is read once per request (held)
		ar, resp, err = p.exchange(ctx, r)
		if err == nil || !rerun || attempt == exchangeAttempts || !errors.Is(err, store.ErrRetry) {
			break
		}
	}
	if err != nil {
		p.accessError(w, r, ar, err)
		return
	}
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// exchangeAttempts bounds handleToken's runs of one request.
const exchangeAttempts = 3

// retryable says whether a token or revocation request may be run again
// after a storage failure: not when it spends a client assertion.
func retryable(r *http.Request) bool {
	if r.PostForm.Get("client_assertion") != "" {
		return false
	}
	gt := r.PostForm.Get("grant_type")
	return gt == "" || gt == "refresh_token" // "": a revocation
}

// exchange runs one token request through fosite.
func (p *Provider) exchange(ctx context.Context, r *http.Request) (fosite.AccessRequester, fosite.AccessResponder, error) {
	s := newSession()
	ar, err := p.oauth.NewAccessRequest(ctx, r, s)
	if err != nil {
		return ar, nil, err
	}
	if ar.GetGrantTypes().ExactOne("refresh_token") {
		// A disabled account's tokens stop at once, refresh included.
		u, err := p.store.GetUser(ctx, s.Subject)
		if err != nil || u.Disabled {
			return ar, nil, fosite.ErrInvalidGrant.WithHint("The user of this refresh token cannot sign in any more.")
		}
		// A grant won with the password alone ends once a second factor
		// is required of its user (their flag, or their population's
		// policy past its grace date: R16, R17); they sign in again and
		// set one up.
		if mfa.RequiredNow(u, p.policies(ctx), p.now()) && !mfa.SecondStep(s.IDTokenClaims().AuthenticationMethodsReferences) && !p.bypasses(s.Upstream) {
			return ar, nil, fosite.ErrInvalidGrant.WithHint("Two-step verification is now required of this user: they must sign in again.")
		}
	}
	if ar.GetGrantTypes().ExactOne("authorization_code") {
		// A code whose sign-in has ended (a sign-out, an admin's reset,
		// the user's logout) is spent for nothing: a sign-out that came
		// between the session and the code's row could not remove the
		// row, written after it.
		if sid, _ := s.IDTokenClaims().Extra["sid"].(string); sid != "" {
			if _, err := p.store.GetSession(ctx, sid); errors.Is(err, store.ErrNotFound) {
				return ar, nil, fosite.ErrInvalidGrant.WithHint("The sign-in this code came from has ended.")
			} else if err != nil {
				return ar, nil, fosite.ErrServerError.WithWrap(err)
			}
		}
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// A client acting for itself: its own scopes, never OIDC ones.
		for _, scope := range ar.GetRequestedScopes() {
			if scope == "openid" || scope == "offline_access" {
				return ar, nil, fosite.ErrInvalidScope.WithHintf("Scope %q is for end users, not client_credentials.", scope)
			}
			ar.GrantScope(scope)
		}
		s.Subject = ar.GetClient().GetID()
		ar.SetID(newRequestID())
	}
	resp, err := p.oauth.NewAccessResponse(ctx, ar)
	return ar, resp, err
}

// newRequestID names a new token family. fosite's are random (UUIDv4);
// these are time-ordered (UUIDv7), so that on a table of millions of
// tokens each new row lands at the end of the request_id index instead
// of on a random page of it (issue 7's growth run). Only requests that
// start a family get one: a code's tokens and a refresh keep the id
// fosite carries over from the family's first request.
func newRequestID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// grantTypes are the grants composed into fosite.
var grantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}

// accessError writes a token endpoint error. A code or refresh token that
// lost a race to a concurrent request is invalid_grant, not a 500.
func (p *Provider) accessError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, fosite.ErrSerializationFailure) ||
		errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		err = fosite.ErrInvalidGrant.WithHint("The authorization code or refresh token was already used.").WithWrap(err)
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	level := "info"
	if rfc.CodeField >= 500 {
		level = "error"
	}
	p.logger.InfoContext(r.Context(), "token request refused", "level", level, "error", rfc.ErrorField, "hint", rfc.HintField, "debug", rfc.DebugField, "cause", errString(rfc.Unwrap()))
	p.oauth.WriteAccessError(r.Context(), w, ar, err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// handleUserinfo returns the claims of the user an access token was
// issued for (OIDC Core §5.3), via GET or POST with a bearer header, or
// POST with access_token in the body.
func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token := fosite.AccessTokenFromRequest(r)
	if token == "" {
		bearerError(w, http.StatusUnauthorized, "", "")
		return
	}
	s := newSession()
	tt, ar, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, s)
	if err != nil || tt != fosite.AccessToken {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is not active.")
		return
	}
	if !ar.GetGrantedScopes().Has("openid") || s.Subject == "" {
		bearerError(w, http.StatusForbidden, "insufficient_scope", "The access token was not granted the openid scope.")
		return
	}
	user, err := p.store.GetUser(ctx, s.Subject)
	if err != nil || user.Disabled {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is not active.")
		return
	}
	claims := map[string]any{"sub": user.ID}
	granted := ar.GetGrantedScopes()
	var names []string
	if granted.Has("email") {
		names = append(names, "email", "email_verified")
	}
	if granted.Has("profile") {
		names = append(names, "preferred_username", "updated_at")
	}
	names = append(names, s.UserinfoClaims...)
	for k, v := range p.userClaims(user, names) {
		claims[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(claims)
}

// userClaims returns the named standard claims the user has. Email
// addresses are not verified by Twofold yet, so email_verified is false:
// a claim is never stronger than what happened.
func (p *Provider) userClaims(u store.User, names []string) map[string]any {
	out := map[string]any{}
	for _, n := range names {
		switch n {
		case "email":
			out[n] = u.Email
		case "email_verified":
			out[n] = false
		case "preferred_username":
			out[n] = u.Email
		case "updated_at":
			out[n] = u.UpdatedAt.Unix()
		}
	}
	return out
}

func bearerError(w http.ResponseWriter, status int, code, desc string) {
	v := `Bearer realm="twofold"`
	if code != "" {
		v += `, error="` + code + `", error_description="` + desc + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// handleRevoke is RFC 7009 token revocation.
//
// Revoking is idempotent, so a revocation a storage error cut short
// (fosite's temporarily_unavailable: a statement the database aborted
// for racing a refresh or a sign-out of the same tokens) is run again,
// unless the client authenticated with an assertion, spent by the first.
func (p *Provider) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var err error
	for attempt := 1; attempt <= exchangeAttempts; attempt++ {
		err = p.oauth.NewRevocationRequest(r.Context(), r)
		if !errors.Is(err, fosite.ErrTemporarilyUnavailable) || !retryable(r) {
			break
		}
	}
	p.oauth.WriteRevocationResponse(r.Context(), w, err)
}

// handleIntrospect is RFC 7662 introspection, for authenticated clients.
func (p *Provider) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s := newSession()
	ir, err := p.oauth.NewIntrospectionRequest(ctx, r, s)
	if err != nil {
		p.oauth.WriteIntrospectionError(ctx, w, err)
		return
	}
	p.oauth.WriteIntrospectionResponse(ctx, w, ir)
}
