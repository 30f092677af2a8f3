package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fstorage "github.com/ory/fosite/storage"

	"github.com/twofold-idp/twofold/store"
)

// fositeStore puts all of fosite's state in the store, so that any
// replica can redeem what another issued. Requests are kept as JSON with
// the client by id and the session serialised.
type fositeStore struct {
	store   store.Store
	now     func() time.Time
	clients clientCache
	// codeSignature is the HMAC strategy's: fosite keys the OpenID
	// Connect session by the raw authorization code, which must never be
	// stored; the row is kept under the code's signature instead.
	codeSignature func(ctx context.Context, code string) string
}

// held gathers what one request does to a code's rows. At the
// authorization endpoint it holds the rows fosite creates (the code,
// which also takes in its OpenID Connect session, and its PKCE
// challenge) so that they go to the store in one statement once the
// response is built; at the token
// endpoint it keeps the code's row as first read, for fosite reads it
// twice; the conditional update that marks the code used, in fosite's
// transaction, still decides between racing exchanges.
type held struct {
	mu      sync.Mutex
	creates []store.OAuth2Request
	code    *store.OAuth2Request
}

type heldKey struct{}

// holdWrites returns a context under which a code's rows are held.
func holdWrites(ctx context.Context) (context.Context, *held) {
	h := &held{}
	return context.WithValue(ctx, heldKey{}, h), h
}

func heldFrom(ctx context.Context) *held {
	h, _ := ctx.Value(heldKey{}).(*held)
	return h
}

// flush writes the rows h holds, all or none. A request that failed
// does not call it, and its rows are dropped.
func (s *fositeStore) flush(ctx context.Context, h *held) error {
	h.mu.Lock()
	creates := h.creates
	h.creates = nil
	h.mu.Unlock()
	return s.store.CreateOAuth2Requests(ctx, creates)
}

// getRow reads a row; an authorization code is read once per request
// that holds its writes.
func (s *fositeStore) getRow(ctx context.Context, kind, signature string) (store.OAuth2Request, error) {
	h := heldFrom(ctx)
	if h == nil || kind != store.KindAuthorizeCode {
		return s.store.GetOAuth2Request(ctx, kind, signature)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.code != nil && h.code.Signature == signature {
		return *h.code, nil
	}
	row, err := s.store.GetOAuth2Request(ctx, kind, signature)
	if err == nil {
		h.code = &row
	}
	return row, err
}

// heldKind reports the rows that live only between the authorization
// and the token endpoints.
func heldKind(kind string) bool {
	return kind == store.KindAuthorizeCode || kind == store.KindPKCE || kind == store.KindOIDC
}

var (
	_ fosite.ClientManager               = (*fositeStore)(nil)
	_ oauth2.CoreStorage                 = (*fositeStore)(nil)
	_ oauth2.TokenRevocationStorage      = (*fositeStore)(nil)
	_ openid.OpenIDConnectRequestStorage = (*fositeStore)(nil)
	_ pkce.PKCERequestStorage            = (*fositeStore)(nil)
	_ fstorage.Transactional             = (*fositeStore)(nil)
)

// keptForm lists the authorize parameters worth keeping with a code or
// token: fosite re-reads redirect_uri, nonce and the PKCE challenge, and
// the rest explains the grant. Secrets, codes and verifiers are dropped.
var keptForm = []string{"redirect_uri", "nonce", "code_challenge", "code_challenge_method",
	"response_type", "scope", "max_age", "prompt", "acr_values", "claims"}

type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope"`
	GrantedScope      []string        `json:"granted_scope"`
	RequestedAudience []string        `json:"requested_audience"`
	GrantedAudience   []string        `json:"granted_audience"`
	Form              url.Values      `json:"form"`
	Session           json.RawMessage `json:"session"`
	// OIDC marks a code's row that also holds its OpenID Connect
	// session (the session's form is merged into Form).
	OIDC bool `json:"oidc,omitempty"`
}

func (s *fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	if c, ok := s.clients.get(id); ok {
		return c, nil
	}
	c, err := s.store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	fc := newClient(c)
	s.clients.put(fc)
	return fc, nil
}

// clientAssertionJTI prefixes a client assertion's jti in the store's
// one-time ids (passkeySealing prefixes a ceremony's).
const clientAssertionJTI = "client-assertion:"

// ClientAssertionJWTValid refuses a private_key_jwt assertion id seen before.
func (s *fositeStore) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	// UseJTI records it; SetClientAssertionJWT (called after) is then a no-op.
	return nil
}

// SetClientAssertionJWT records a used assertion id until it expires; a
// replay inside that window is refused (RFC 7523 §3 item 7).
func (s *fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	// Prefixed: the one-time ids of passkey ceremonies share the table.
	err := s.store.UseJTI(ctx, clientAssertionJTI+jti, exp, s.now())
	if errors.Is(err, store.ErrAlreadyExists) {
		// RFC 6749 has no jti_known code: a replayed assertion is a
		// failed client authentication.
		return fosite.ErrInvalidClient.WithHint("The client assertion was already used.")
	}
	return err
}

func (s *fositeStore) create(ctx context.Context, kind, signature string, r fosite.Requester, tt fosite.TokenType) error {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	form := url.Values{}
	for _, k := range keptForm {
		if v, ok := r.GetRequestForm()[k]; ok {
			form[k] = v
		}
	}
	data, err := json.Marshal(storedRequest{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
		Form: form, Session: sess,
	})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	exp := r.GetSession().GetExpiresAt(tt)
	if exp.IsZero() {
		exp = s.now().Add(10 * 365 * 24 * time.Hour) // no lifespan: kept until revoked
	}
	subject := ""
	if r.GetSession() != nil {
		subject = r.GetSession().GetSubject()
	}
	row := store.OAuth2Request{
		Kind: kind, Signature: signature, RequestID: r.GetID(), ClientID: r.GetClient().GetID(),
		Subject: subject, Active: true, RequestedAt: r.GetRequestedAt(), ExpiresAt: exp, Data: string(data),
	}
	if h := heldFrom(ctx); h != nil && heldKind(kind) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if kind == store.KindOIDC && h.mergeOIDC(signature, form) {
			return nil
		}
		h.creates = append(h.creates, row)
		return nil
	}
	return s.store.CreateOAuth2Request(ctx, row)
}

// mergeOIDC folds an OpenID Connect session into its code's held row:
// the two hold the same request and session and differ only in the
// authorize parameters kept, so one row serves both, and the exchange
// reads it once and deletes nothing for it. False when the code's row
// is not held.
func (h *held) mergeOIDC(signature string, form url.Values) bool {
	for i, r := range h.creates {
		if r.Kind != store.KindAuthorizeCode || r.Signature != signature {
			continue
		}
		var sr storedRequest
		if json.Unmarshal([]byte(r.Data), &sr) != nil {
			return false
		}
		if sr.Form == nil {
			sr.Form = url.Values{}
		}
		for k, v := range form {
			if _, ok := sr.Form[k]; !ok {
				sr.Form[k] = v
			}
		}
		sr.OIDC = true
		data, err := json.Marshal(sr)
		if err != nil {
			return false
		}
		h.creates[i].Data = string(data)
		return true
	}
	return false
}

// get loads a row and rebuilds the request into session. It returns the
// request with fosite.ErrInactiveToken (or ErrInvalidatedAuthorizeCode
// for codes) when the row is inactive, as fosite's reuse detection needs.
func (s *fositeStore) get(ctx context.Context, kind, signature string, session fosite.Session) (fosite.Requester, error) {
	row, err := s.getRow(ctx, kind, signature)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return s.request(ctx, kind, row, session)
}

// request rebuilds a stored row's request into session.
func (s *fositeStore) request(ctx context.Context, kind string, row store.OAuth2Request, session fosite.Session) (fosite.Requester, error) {
	var sr storedRequest
	if err := json.Unmarshal([]byte(row.Data), &sr); err != nil {
		return nil, fmt.Errorf("decode stored request: %w", err)
	}
	c, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, err
	}
	if session != nil {
		if err := json.Unmarshal(sr.Session, session); err != nil {
			return nil, fmt.Errorf("decode stored session: %w", err)
		}
	}
	req := &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: c,
		RequestedScope: sr.RequestedScope, GrantedScope: sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
		Form: sr.Form, Session: session,
	}
	if !row.Active {
		if kind == store.KindAuthorizeCode {
			return req, fosite.ErrInvalidatedAuthorizeCode
		}
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, store.KindAuthorizeCode, code, r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, store.KindAuthorizeCode, code, session)
}

// InvalidateAuthorizeCodeSession marks a code used with a conditional
// update: of two concurrent exchanges exactly one gets here first. A
// code whose row a sign-out removed meanwhile is no longer to be had.
func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	err := s.store.DeactivateOAuth2Request(ctx, store.KindAuthorizeCode, code)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
	}
	return err
}

func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, store.KindAccessToken, sig, r, fosite.AccessToken)
}

func (s *fositeStore) GetAccessTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, store.KindAccessToken, sig, session)
}

func (s *fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.store.DeleteOAuth2Request(ctx, store.KindAccessToken, sig)
}

func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, r fosite.Requester) error {
	return s.create(ctx, store.KindRefreshToken, sig, r, fosite.RefreshToken)
}

func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	return s.get(ctx, store.KindRefreshToken, sig, session)
}

func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.store.DeleteOAuth2Request(ctx, store.KindRefreshToken, sig)
}

// RotateRefreshToken retires the presented refresh token and the access
// tokens of its family. The refresh token is deactivated conditionally,
// so two concurrent refreshes with one token cannot both succeed; one
// whose row a concurrent request revoked with its family (fosite's
// reuse detection) meanwhile lost the race too, not the server.
func (s *fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	if err := s.store.DeactivateOAuth2Request(ctx, store.KindRefreshToken, sig); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %w", fosite.ErrSerializationFailure, err)
		}
		return err
	}
	return s.store.DeleteOAuth2Requests(ctx, store.KindAccessToken, requestID)
}

// RevokeRefreshToken deactivates the whole family: a used token presented
// again then finds every sibling inactive too.
func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.store.DeactivateOAuth2Requests(ctx, store.KindRefreshToken, requestID)
}

func (s *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.store.DeleteOAuth2Requests(ctx, store.KindAccessToken, requestID)
}

// The OpenID Connect session arrives keyed by the raw code; it is
// stored under the code's signature, like the code and PKCE rows.
func (s *fositeStore) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, store.KindOIDC, s.codeSignature(ctx, code), r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	sig := s.codeSignature(ctx, code)
	// Usually the code's own row holds the session (mergeOIDC); at the
	// exchange that row has been read already.
	row, err := s.getRow(ctx, store.KindAuthorizeCode, sig)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err // not "no session": that would issue no ID token
	}
	if err == nil && carriesOIDC(row) {
		row.Active = true // used by now: the exchange that used it asks
		return s.request(ctx, store.KindOIDC, row, r.GetSession())
	}
	req, err := s.get(ctx, store.KindOIDC, sig, r.GetSession())
	if errors.Is(err, fosite.ErrNotFound) {
		// Earlier builds kept the session under the raw code: a code one
		// of them issued just before an upgrade is found there, and that
		// row goes at once. (A code lives a minute: drop this later.)
		if req, err = s.get(ctx, store.KindOIDC, code, r.GetSession()); err == nil {
			err = s.store.DeleteOAuth2Request(ctx, store.KindOIDC, code)
		}
	}
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	}
	return req, err
}

// DeleteOpenIDConnectSession deletes a session row of its own; one that
// its code's row holds stays with that (used) row until it expires.
func (s *fositeStore) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	sig := s.codeSignature(ctx, code)
	if row, err := s.getRow(ctx, store.KindAuthorizeCode, sig); err == nil && carriesOIDC(row) {
		return nil
	}
	return s.store.DeleteOAuth2Request(ctx, store.KindOIDC, sig)
}

// carriesOIDC reports whether a code's row holds its OpenID Connect
// session too.
func carriesOIDC(row store.OAuth2Request) bool {
	var sr struct {
		OIDC bool `json:"oidc"`
	}
	return json.Unmarshal([]byte(row.Data), &sr) == nil && sr.OIDC
}

func (s *fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.create(ctx, store.KindPKCE, sig, r, fosite.AuthorizeCode)
}

// GetPKCERequestSession takes the challenge's row: fosite reads it and
// then deletes it before checking the code_verifier, so that one code
// gets one verifier check; taking it in one statement keeps that true
// for concurrent attempts too.
func (s *fositeStore) GetPKCERequestSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	row, err := s.store.TakeOAuth2Request(ctx, store.KindPKCE, sig)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return s.request(ctx, store.KindPKCE, row, session)
}

// DeletePKCERequestSession has nothing left to do: the read took the row.
func (s *fositeStore) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return nil
}

func (s *fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	return s.store.BeginTx(ctx)
}
func (s *fositeStore) Commit(ctx context.Context) error   { return s.store.CommitTx(ctx) }
func (s *fositeStore) Rollback(ctx context.Context) error { return s.store.RollbackTx(ctx) }
