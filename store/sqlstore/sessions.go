package sqlstore

import (
	"context"
	"time"

	"github.com/twofold-idp/twofold/store"
)

// CreateSigningKey stores a new key.
func (s *Store) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	_, err := s.exec(ctx, `INSERT INTO signing_keys (kid, alg, private_key_enc, active, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.KID, k.Alg, k.PrivateKeyEnc, k.Active, k.CreatedAt.UTC(), utcPtr(k.RetiredAt))
	return wrap(err, "create signing key")
}

// ListSigningKeys returns every key, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	ks := []store.SigningKey{}
	err := s.sel(ctx, &ks, `SELECT kid, alg, private_key_enc, active, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, kid`)
	return ks, wrap(err, "list signing keys")
}

// RetireSigningKeys marks the active keys of alg retired.
func (s *Store) RetireSigningKeys(ctx context.Context, alg string, t time.Time) error {
	_, err := s.exec(ctx, `UPDATE signing_keys SET active = ?, retired_at = ? WHERE alg = ? AND active = ?`, false, t.UTC(), alg, true)
	return wrap(err, "retire signing keys")
}

// DeleteSigningKey removes a key.
func (s *Store) DeleteSigningKey(ctx context.Context, kid string) error {
	_, err := s.exec(ctx, `DELETE FROM signing_keys WHERE kid = ?`, kid)
	return wrap(err, "delete signing key")
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// CreateSession stores an SSO session.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	if se.LastSeen.IsZero() {
		se.LastSeen = se.CreatedAt
	}
	_, err := s.exec(ctx, `INSERT INTO sso_sessions (id, user_id, amr, acr, auth_time, created_at, last_seen, expires_at, upstream) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		se.ID, se.UserID, se.AMR, se.ACR, se.AuthTime.UTC(), se.CreatedAt.UTC(), se.LastSeen.UTC(), se.ExpiresAt.UTC(), se.Upstream)
	return wrap(err, "create session")
}

// GetSession finds a session by id (expired ones too: callers check).
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	var se store.Session
	err := s.get(ctx, &se, `SELECT id, user_id, amr, acr, auth_time, created_at, last_seen, expires_at, upstream FROM sso_sessions WHERE id = ?`, id)
	return se, wrap(err, "get session")
}

// TouchSession records a use of the session.
func (s *Store) TouchSession(ctx context.Context, id string, t time.Time) error {
	_, err := s.exec(ctx, `UPDATE sso_sessions SET last_seen = ? WHERE id = ?`, t.UTC(), id)
	return wrap(err, "touch session")
}

// DeleteSession ends one session; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM sso_sessions WHERE id = ?`, id)
	return wrap(err, "delete session")
}

// DeleteUserSessions ends every session of a user.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, `DELETE FROM sso_sessions WHERE user_id = ?`, userID)
	return wrap(err, "delete user sessions")
}

// SignOutUser ends one user's sessions, sign-ins in progress and
// ceremonies, and removes their codes and tokens.
func (s *Store) SignOutUser(ctx context.Context, userID string) error {
	_, _, err := s.signOut(ctx, `SELECT id FROM users WHERE id = ?`, userID)
	return err
}

// SignOutAll signs out every user but except.
func (s *Store) SignOutAll(ctx context.Context, except string) (sessions, tokens int64, err error) {
	return s.signOut(ctx, `SELECT id FROM users WHERE id <> ?`, except)
}

// SignOutWithoutFactors signs out a population's users without a
// confirmed factor.
func (s *Store) SignOutWithoutFactors(ctx context.Context, pop store.Population) (sessions, tokens int64, err error) {
	return s.signOut(ctx, `SELECT id FROM users WHERE population = ? AND NOT EXISTS
		(SELECT 1 FROM mfa_factors WHERE mfa_factors.user_id = users.id AND mfa_factors.confirmed)`, pop)
}

// signOut ends the sessions, sign-ins in progress and WebAuthn ceremonies,
// and removes the codes and tokens, of the users that the query users
// (with arg) selects, in one transaction. A token row's subject is a
// user's id or, for client_credentials, the client's: only users' rows
// go. A sign-in still at its password step has no user yet and stays.
//
// On PostgreSQL it first locks the users' rows, in id order (two
// sign-outs cannot deadlock): a code exchange, refresh or sign-in that is
// issuing their tokens or session holds a share lock on its user, so the
// sign-out waits for it and then removes what it made, which a DELETE
// begun while it ran would not see. Only those users wait, not the
// others' sign-ins. SQLite runs one writer at a time.
func (s *Store) signOut(ctx context.Context, users string, arg any) (sessions, tokens int64, err error) {
	err = s.InTx(ctx, func(ctx context.Context) error {
		var err error
		if s.dialect == "postgres" {
			if _, err = s.exec(ctx, users+` ORDER BY id FOR UPDATE`, arg); err != nil {
				return wrap(err, "sign out: lock users")
			}
		}
		if sessions, err = count(s.exec(ctx, `DELETE FROM sso_sessions WHERE user_id IN (`+users+`)`, arg)); err != nil {
			return wrap(err, "sign out: sessions")
		}
		for _, table := range []string{"login_flows", "webauthn_sessions"} {
			if _, err := s.exec(ctx, `DELETE FROM `+table+` WHERE user_id IN (`+users+`)`, arg); err != nil {
				return wrap(err, "sign out: "+table)
			}
		}
		tokens, err = count(s.exec(ctx, `DELETE FROM oauth2_requests WHERE subject IN (`+users+`)`, arg))
		return wrap(err, "sign out: tokens")
	})
	return sessions, tokens, err
}

const flowColumns = `id, state, user_id, session_id, client_id, authorize_form, methods, failures, auth_time, created_at, expires_at, upstream`

// CreateLoginFlow stores a new flow.
func (s *Store) CreateLoginFlow(ctx context.Context, f store.LoginFlow) error {
	_, err := s.exec(ctx, `INSERT INTO login_flows (`+flowColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.State, f.UserID, f.SessionID, f.ClientID, f.AuthorizeForm, f.Methods, f.Failures, utcPtr(f.AuthTime), f.CreatedAt.UTC(), f.ExpiresAt.UTC(), f.Upstream)
	return wrap(err, "create login flow")
}

// GetLoginFlow finds a flow by id.
func (s *Store) GetLoginFlow(ctx context.Context, id string) (store.LoginFlow, error) {
	var f store.LoginFlow
	err := s.get(ctx, &f, `SELECT `+flowColumns+` FROM login_flows WHERE id = ?`, id)
	return f, wrap(err, "get login flow")
}

// UpdateLoginFlow is a compare-and-set on the flow's state.
func (s *Store) UpdateLoginFlow(ctx context.Context, f store.LoginFlow, from string) error {
	res, err := s.exec(ctx, `UPDATE login_flows SET state = ?, user_id = ?, session_id = ?, methods = ?, failures = ?, auth_time = ?, upstream = ?
		WHERE id = ? AND state = ?`, f.State, f.UserID, f.SessionID, f.Methods, f.Failures, utcPtr(f.AuthTime), f.Upstream, f.ID, from)
	if err == nil {
		err = one(res)
	}
	if err == store.ErrNotFound {
		if _, gerr := s.GetLoginFlow(ctx, f.ID); gerr == nil {
			err = store.ErrConflict
		}
	}
	return wrap(err, "update login flow")
}

// AttemptLoginFlow counts an attempt with the flow's load: one statement
// where a separate throttle key cost a second.
func (s *Store) AttemptLoginFlow(ctx context.Context, id, state string) (store.LoginFlow, error) {
	var f store.LoginFlow
	err := s.get(ctx, &f, `UPDATE login_flows SET failures = failures + 1 WHERE id = ? AND state = ? RETURNING `+flowColumns, id, state)
	return f, wrap(err, "attempt login flow")
}

// LoginFlowUser loads a flow step's flow and user in one query. On
// PostgreSQL a counted attempt is a data-modifying CTE of the same
// statement; SQLite cannot, and is local: two statements. On both, an
// attempt is counted even when the flow's user is gone.
func (s *Store) LoginFlowUser(ctx context.Context, id, state string, attempt bool) (store.LoginFlow, store.User, error) {
	if attempt && s.dialect != "postgres" {
		f, err := s.AttemptLoginFlow(ctx, id, state)
		if err != nil {
			return f, store.User{}, err
		}
		u, err := s.GetUser(ctx, f.UserID)
		return f, u, err
	}
	from := `login_flows f`
	where := ` WHERE f.id = ? AND f.state = ?`
	if attempt {
		from = `f`
		where = ``
	}
	query := `SELECT ` + aliased("f", flowColumns) + `, ` + aliased("u", userColumns) + `
		FROM ` + from + ` JOIN users u ON u.id = f.user_id` + where
	if attempt {
		query = `WITH f AS (UPDATE login_flows SET failures = failures + 1 WHERE id = ? AND state = ? RETURNING ` + flowColumns + `) ` + query
	}
	var row struct {
		F store.LoginFlow `db:"f"`
		U store.User      `db:"u"`
	}
	err := s.get(ctx, &row, query, id, state)
	return row.F, row.U, wrap(err, "load login flow and user")
}

// DeleteLoginFlow removes a flow.
func (s *Store) DeleteLoginFlow(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM login_flows WHERE id = ?`, id)
	return wrap(err, "delete login flow")
}

// GetConsent returns what a user granted a client.
func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (store.Consent, error) {
	var c store.Consent
	err := s.get(ctx, &c, `SELECT user_id, client_id, scopes, granted_at FROM consents WHERE user_id = ? AND client_id = ?`, userID, clientID)
	return c, wrap(err, "get consent")
}

// SaveConsent inserts or replaces a consent.
func (s *Store) SaveConsent(ctx context.Context, c store.Consent) error {
	_, err := s.exec(ctx, `INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at`,
		c.UserID, c.ClientID, c.Scopes, c.GrantedAt.UTC())
	return wrap(err, "save consent")
}
