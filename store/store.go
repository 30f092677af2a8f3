// Package store defines Twofold's persistence contract: the entities every
// other package reads and writes, one Store interface, and the sentinel
// errors callers branch on. Implementations live in subpackages (sqlstore);
// storetest holds the conformance suite each implementation must pass.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations map driver errors onto these at the edge,
// so callers never inspect PostgreSQL or SQLite error codes.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrRetry is a transaction the database aborted for racing another
	// (a deadlock, a serialization failure): nothing of it was written,
	// and run again from the start it goes through. InTx does so itself.
	ErrRetry = errors.New("store: transaction aborted by a concurrent one")
)

// Population is the group of end users an account belongs to (R04).
type Population string

const (
	PopulationAgent   Population = "agent"
	PopulationContact Population = "contact"
)

// Valid reports whether p is a known population.
func (p Population) Valid() bool { return p == PopulationAgent || p == PopulationContact }

// Role is what an account may do. Admins and supervisors are agents.
type Role string

const (
	RoleAdmin      Role = "admin"
	RoleSupervisor Role = "supervisor"
	RoleAgent      Role = "agent"
	RoleContact    Role = "contact"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleSupervisor, RoleAgent, RoleContact:
		return true
	}
	return false
}

// User is an account that signs in on the hosted pages.
type User struct {
	ID string `db:"id"`
	// Email as the user typed it; EmailKey is its normalised form, unique
	// per population.
	Email      string     `db:"email"`
	EmailKey   string     `db:"email_key"`
	Population Population `db:"population"`
	Role       Role       `db:"role"`
	// PasswordHash is an argon2id PHC string.
	PasswordHash string `db:"password_hash"`
	// PasswordMustChange is set for generated one-time passwords.
	PasswordMustChange bool `db:"password_must_change"`
	// MFARequired is the per-user enforcement flag set by admins (R15).
	MFARequired bool      `db:"mfa_required"`
	Disabled    bool      `db:"disabled"`
	CreatedAt   time.Time `db:"created_at"`
	UpdatedAt   time.Time `db:"updated_at"`
}

// UserFilter narrows ListUsers. Zero values match everything.
type UserFilter struct {
	Population Population
	Limit      int
	Offset     int // users skipped first, for pages
}

// Store is the one persistence interface of Twofold. Methods that take a
// context run inside the transaction started by InTx when the context
// carries one.
type Store interface {
	// InTx runs fn in a transaction: every store call made with the
	// context passed to fn joins it; an error from fn rolls everything back.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// BeginTx, CommitTx and RollbackTx are InTx in three calls, for
	// callers (fosite) that drive transactions themselves. A context
	// that already carries a transaction joins it: only the outermost
	// BeginTx commits or rolls back.
	BeginTx(ctx context.Context) (context.Context, error)
	CommitTx(ctx context.Context) error
	RollbackTx(ctx context.Context) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error

	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByEmail looks a user up by the normalised email key. With
	// an empty population it finds the agent, else the contact, in one
	// query.
	GetUserByEmail(ctx context.Context, p Population, emailKey string) (User, error)
	ListUsers(ctx context.Context, f UserFilter) ([]User, error)
	// GetFederatedUser finds the user an upstream provider's subject
	// signs in as (R03); ErrNotFound when none is linked.
	GetFederatedUser(ctx context.Context, upstream, subject string) (User, error)
	// CreateFederatedUser creates u linked to the upstream's subject, both
	// or neither; ErrAlreadyExists when the email or the link is taken.
	CreateFederatedUser(ctx context.Context, u User, upstream, subject string) error
	// FederatedUpstreams lists the upstreams a user signs in through
	// (none for a local account).
	FederatedUpstreams(ctx context.Context, userID string) ([]string, error)
	CountUsers(ctx context.Context) (int, error)
	// UpdateUserPassword replaces the hash; mustChange marks it one-time.
	UpdateUserPassword(ctx context.Context, id, hash string, mustChange bool, at time.Time) error
	// LockUser holds off, until the caller's transaction ends, a sign-out
	// of user id (SignOutUser and the bulk ones wait), so that what the
	// transaction creates for the user (a session) is removed by it.
	// Outside a transaction it does nothing useful.
	LockUser(ctx context.Context, id string) error
	// ChangeUserPassword replaces the hash (mustChange marks it
	// one-time) only while it is still from, in one statement:
	// ErrConflict if it changed meanwhile (a reset) or the user is gone.
	// A user's own change, or a sign-in's rehash, cannot undo an admin's
	// concurrent reset.
	ChangeUserPassword(ctx context.Context, id, from, hash string, mustChange bool, at time.Time) error
	SetUserDisabled(ctx context.Context, id string, disabled bool, at time.Time) error
	SetUserMFARequired(ctx context.Context, id string, required bool, at time.Time) error
	// ListMFAPolicies returns the populations' policies (R15, R17); a
	// population without a row has none.
	ListMFAPolicies(ctx context.Context) ([]MFAPolicy, error)
	// SetMFARequirement sets whether a population requires a second
	// factor, and until when its setup may be put off, leaving the
	// population's methods as they are (each statement writes only its
	// own columns, so two admins' changes cannot undo each other).
	SetMFARequirement(ctx context.Context, pop Population, required bool, graceUntil *time.Time, at time.Time) error
	// SetMFAMethods sets the kinds of factor a population may set up
	// (nil: every kind), leaving its requirement as it is.
	SetMFAMethods(ctx context.Context, pop Population, methods Strings, at time.Time) error
	// SignOutWithoutFactors ends the sessions, sign-ins in progress and
	// ceremonies, and revokes the codes and tokens, of a population's
	// users who have no confirmed second factor
	// (R16: a policy switched on); it returns how many sessions and token
	// rows went.
	SignOutWithoutFactors(ctx context.Context, pop Population) (sessions, tokens int64, err error)

	AppendAudit(ctx context.Context, e AuditEvent) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	CreateClient(ctx context.Context, c Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	DeleteClient(ctx context.Context, id string) error
	// DeleteClientTokens removes every code and token row of a client
	// (its users' and its own) and returns how many went.
	DeleteClientTokens(ctx context.Context, id string) (int64, error)
	// UpdateClient replaces a registration (not its id, secret, public
	// flag or creation time) if its updated_at is still since: else
	// ErrConflict (a concurrent update), or ErrNotFound for an unknown id.
	UpdateClient(ctx context.Context, c Client, since time.Time) error
	UpdateClientSecret(ctx context.Context, id string, hash []byte, at time.Time) error

	// OAuth 2.0 state, keyed by (kind, signature).
	CreateOAuth2Request(ctx context.Context, r OAuth2Request) error
	// CreateOAuth2Requests writes several rows in one statement, all or
	// none (an authorization code with its PKCE and OpenID Connect rows).
	CreateOAuth2Requests(ctx context.Context, rows []OAuth2Request) error
	GetOAuth2Request(ctx context.Context, kind, signature string) (OAuth2Request, error)
	// DeactivateOAuth2Request marks one active row inactive; a row that
	// is already inactive is ErrConflict, so of two racing uses one wins.
	DeactivateOAuth2Request(ctx context.Context, kind, signature string) error
	DeleteOAuth2Request(ctx context.Context, kind, signature string) error
	// TakeOAuth2Request returns and deletes a row in one statement: of
	// two racing takers one gets it, the other ErrNotFound.
	TakeOAuth2Request(ctx context.Context, kind, signature string) (OAuth2Request, error)
	// DeactivateOAuth2Requests and DeleteOAuth2Requests act on every row
	// of one kind sharing a request id (a token family).
	DeactivateOAuth2Requests(ctx context.Context, kind, requestID string) error
	DeleteOAuth2Requests(ctx context.Context, kind, requestID string) error
	// DeleteSubjectTokens removes every access and refresh token (and
	// pending code) issued for a user: sign-out everywhere.
	DeleteSubjectTokens(ctx context.Context, subject string) error
	// DeleteExpired removes OAuth 2.0 rows, login flows, sessions, JWT
	// assertions, ceremonies and one-time codes that expired before t;
	// it returns how many.
	DeleteExpired(ctx context.Context, t time.Time) (int64, error)

	// UseJTI records a one-time id until exp (a client assertion's jti,
	// a passkey ceremony's id); an id already recorded and not expired is
	// ErrAlreadyExists.
	UseJTI(ctx context.Context, jti string, exp, now time.Time) error

	CreateSigningKey(ctx context.Context, k SigningKey) error
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RetireSigningKeys marks the active keys of alg retired at t.
	RetireSigningKeys(ctx context.Context, alg string, t time.Time) error
	// DeleteSigningKey removes a key that no longer verifies anything.
	DeleteSigningKey(ctx context.Context, kid string) error

	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	DeleteSession(ctx context.Context, id string) error
	// TouchSession records that a session was used at t.
	TouchSession(ctx context.Context, id string, t time.Time) error
	DeleteUserSessions(ctx context.Context, userID string) error
	// SignOutUser ends a user's sessions, sign-ins in progress and
	// WebAuthn ceremonies, and removes their codes and tokens.
	SignOutUser(ctx context.Context, userID string) error
	// SignOutAll ends every user's sessions, sign-ins in progress and
	// WebAuthn ceremonies, and removes every user's codes and tokens, but
	// those of except ("" for none); tokens a client got for itself stay.
	// It returns how many sessions and token rows went.
	SignOutAll(ctx context.Context, except string) (sessions, tokens int64, err error)

	CreateLoginFlow(ctx context.Context, f LoginFlow) error
	GetLoginFlow(ctx context.Context, id string) (LoginFlow, error)
	// UpdateLoginFlow writes f only if the stored flow is still in state
	// from; otherwise ErrConflict (a replayed or concurrent step).
	UpdateLoginFlow(ctx context.Context, f LoginFlow, from string) error
	// AttemptLoginFlow counts one attempt in the flow (its Failures) and
	// returns the flow, in one statement, only while it is in state;
	// otherwise ErrNotFound. Parallel attempts are each counted.
	AttemptLoginFlow(ctx context.Context, id, state string) (LoginFlow, error)
	// LoginFlowUser returns the flow id, only while it is in state, and
	// its user, in one round trip where the database allows; with
	// attempt it counts one attempt as AttemptLoginFlow does.
	// ErrNotFound when either is missing.
	LoginFlowUser(ctx context.Context, id, state string, attempt bool) (LoginFlow, User, error)
	DeleteLoginFlow(ctx context.Context, id string) error

	GetConsent(ctx context.Context, userID, clientID string) (Consent, error)
	SaveConsent(ctx context.Context, c Consent) error

	CreateFactor(ctx context.Context, f Factor) error
	GetFactor(ctx context.Context, id string) (Factor, error)
	// ListFactors returns a user's factors, oldest first.
	ListFactors(ctx context.Context, userID string) ([]Factor, error)
	// ListFactorsAndCodes is ListFactors with the count of unused
	// recovery codes: what a sign-in can offer, in one query.
	ListFactorsAndCodes(ctx context.Context, userID string) ([]Factor, int, error)
	ConfirmFactor(ctx context.Context, id string, at time.Time) error
	// DeleteFactor removes one of a user's factors.
	DeleteFactor(ctx context.Context, userID, id string) error
	// DeleteFactors removes every factor of a user, pending ones
	// included, and returns how many went.
	DeleteFactors(ctx context.Context, userID string) (int64, error)
	// DeleteUnconfirmedFactors drops a user's abandoned enrolments.
	DeleteUnconfirmedFactors(ctx context.Context, userID string) error
	// TouchFactor records that a factor was used at at (one without a
	// counter of its own: email codes).
	TouchFactor(ctx context.Context, id string, at time.Time) error
	// UseTOTPStep records step as the factor's last accepted one, only
	// if it is later than the recorded one; otherwise ErrConflict (a
	// replayed code), decided by the database.
	UseTOTPStep(ctx context.Context, id string, step int64, at time.Time) error

	// GetFactorByCredential finds a WebAuthn factor by credential id.
	GetFactorByCredential(ctx context.Context, credentialID []byte) (Factor, error)
	// UpdateWebAuthnCredential stores a credential after use; the
	// update happens only if signCount moved forward (or the
	// authenticator keeps no counter), else ErrConflict.
	UpdateWebAuthnCredential(ctx context.Context, id, credential string, signCount int64, at time.Time) error
	CreateWebAuthnSession(ctx context.Context, s WebAuthnSession) error
	// TakeWebAuthnSession returns and deletes a ceremony in one
	// statement: a challenge can be answered once.
	TakeWebAuthnSession(ctx context.Context, id string) (WebAuthnSession, error)

	// ReplaceRecoveryCodes voids a user's codes and stores new hashes;
	// mailed marks a set an admin sent by email (R20).
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte, mailed bool, at time.Time) error
	// UseRecoveryCode marks one unused code used and tells whether its
	// set was mailed; ErrNotFound when there is no such unused code. Of
	// concurrent uses exactly one succeeds.
	UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) (mailed bool, err error)
	// CountRecoveryCodes returns how many unused codes remain.
	CountRecoveryCodes(ctx context.Context, userID string) (int, error)
	// RecoveryCodesMailed tells whether the user's current set of codes
	// is one an admin mailed (R20).
	RecoveryCodesMailed(ctx context.Context, userID string) (bool, error)
	DeleteRecoveryCodes(ctx context.Context, userID string) error

	// GetOneTimeCode returns the code stored for a user and purpose,
	// expired or not; ErrNotFound when there is none.
	GetOneTimeCode(ctx context.Context, userID, purpose string) (OneTimeCode, error)
	// PutOneTimeCode stores c, replacing the code of its user and
	// purpose only if that one's Sends is still prevSends (0: no code
	// stored); otherwise ErrConflict, so of two racing sends one wins.
	PutOneTimeCode(ctx context.Context, c OneTimeCode, prevSends int) error
	// UseOneTimeCode deletes the code of a user and purpose if its hash
	// is hash and it has not expired at now; ErrNotFound otherwise. Of
	// concurrent uses exactly one succeeds.
	UseOneTimeCode(ctx context.Context, userID, purpose string, hash []byte, now time.Time) error
	// DeleteOneTimeCode removes the code of a user and purpose, if any.
	DeleteOneTimeCode(ctx context.Context, userID, purpose string) error

	// Attempt reserves one attempt under key before a secret is checked:
	// past lim.Max counted attempts the key locks for lim.Lock and the
	// attempt is refused; past lim.Cap allowed attempts (across locks)
	// it stays refused until reset (Throttle.Capped). The count is
	// atomic, so parallel requests cannot exceed it. ResetThrottle
	// clears keys, their cap count included.
	// Success records a success: one attempt taken back from shared (a
	// key many accounts count against, the client's address; "" for
	// none) and keys cleared, in one statement where the database allows.
	Attempt(ctx context.Context, key string, lim Limit, now time.Time) (Throttle, error)
	// Attempts makes each try as Attempt would, in turn, and stops after
	// the first refused: it returns one Throttle per try made, so a
	// refused try leaves the ones after it uncounted. Keys must differ.
	Attempts(ctx context.Context, now time.Time, tries ...Try) ([]Throttle, error)
	ResetThrottle(ctx context.Context, keys ...string) error
	Success(ctx context.Context, shared string, keys ...string) error
}

// AuditEvent is one security-relevant event (R24).
type AuditEvent struct {
	ID        int64     `db:"id"`
	Time      time.Time `db:"at"`
	Type      string    `db:"type"`
	UserID    string    `db:"user_id"`
	ActorID   string    `db:"actor_id"`
	ClientID  string    `db:"client_id"`
	IP        string    `db:"ip"`
	UserAgent string    `db:"user_agent"`
	// Detail is a short JSON object with event-specific fields.
	Detail string `db:"detail"`
}

// AuditFilter narrows ListAudit; newest events come first.
type AuditFilter struct {
	UserID string
	// Type is one event type ("login.failure"), or with a final dot the
	// types that start with it ("client.").
	Type   string
	Limit  int
	Offset int // events skipped first, for pages
}
