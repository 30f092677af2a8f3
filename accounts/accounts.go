// Package accounts manages end-user accounts: validation of emails and
// passwords, argon2id hashing with rehash on login, and creation through
// the store. It speaks store types and knows nothing of HTTP.
package accounts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twofold-idp/twofold/store"
	"golang.org/x/text/unicode/norm"
)

// Limits on input. 254 is the longest address that fits SMTP's path limit.
const (
	MaxEmailLength    = 254
	MaxPasswordLength = 1024
)

// Errors callers show to people; each says what is wrong.
var (
	ErrInvalidEmail       = errors.New("invalid email address")
	ErrPasswordTooShort   = errors.New("password is too short")
	ErrPasswordTooLong    = errors.New("password is too long")
	ErrEmailTaken         = errors.New("an account with this email already exists in this population")
	ErrInvalidPopulation  = errors.New(`population must be "agent" or "contact"`)
	ErrInvalidRole        = errors.New(`role must be "admin", "supervisor", "agent" or "contact"`)
	ErrRoleNotInPopulaton = errors.New(`contacts have the role "contact"; agents have "admin", "supervisor" or "agent"`)
	ErrBadCredentials     = errors.New("wrong email or password")
)

// Service creates and authenticates accounts.
type Service struct {
	Store          store.Store
	Hasher         Hasher
	MinPasswordLen int
	// BlockGuessable refuses a chosen password that a guesser tries
	// early (guessable); false checks only the length.
	BlockGuessable bool
	Now            func() time.Time

	dummyOnce sync.Once
	dummy     string
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// NormalizeEmail returns the key an address is unique by: trimmed and
// lower-cased. It refuses what is not a single bare address.
func NormalizeEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", fmt.Errorf("%w: it is empty", ErrInvalidEmail)
	}
	if len(email) > MaxEmailLength {
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidEmail, MaxEmailLength)
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "", fmt.Errorf("%w: %q is not of the form name@example.com", ErrInvalidEmail, email)
	}
	return strings.ToLower(email), nil
}

// CheckPassword enforces the length rules (counted in characters, after
// normalising) and, with BlockGuessable, refuses a password a guesser
// would try early: a common one, a pattern, or the account's own address
// (NIST SP 800-63B §5.1.1.2's blocklist, security.md S14; no rules of
// composition). email is the account's address, or what was typed.
func (s *Service) CheckPassword(password, email string) error {
	if len(password) > MaxPasswordLength {
		return fmt.Errorf("%w: at most %d bytes", ErrPasswordTooLong, MaxPasswordLength)
	}
	// Counted as typed (NFC): NFKC would count "ﷺ" as 18.
	if n := utf8.RuneCountInString(norm.NFC.String(password)); n < s.MinPasswordLen {
		return fmt.Errorf("%w: use at least %d characters", ErrPasswordTooShort, s.MinPasswordLen)
	}
	if s.BlockGuessable && guessable(password, email) {
		return fmt.Errorf("%w: it is a common password, a pattern or close to your address; a few unrelated words make a strong one", ErrPasswordGuessable)
	}
	return nil
}

// NewUser holds what CreateUser needs.
type NewUser struct {
	Email      string
	Population store.Population
	Role       store.Role
	Password   string
	// MustChange marks a generated one-time password.
	MustChange bool
}

// CreateUser validates n, hashes the password and stores the account.
// On any error nothing is written.
func (s *Service) CreateUser(ctx context.Context, n NewUser) (store.User, error) {
	u, err := s.NewAccount(n)
	if err != nil {
		return store.User{}, err
	}
	if err := s.Insert(ctx, u); err != nil {
		return store.User{}, err
	}
	return u, nil
}

// NewAccount validates n and hashes its password, writing nothing: the
// slow half of CreateUser, for a caller that stores the account inside a
// transaction (where a hash would hold SQLite's write lock ≈ 20 ms).
func (s *Service) NewAccount(n NewUser) (store.User, error) {
	key, err := NormalizeEmail(n.Email)
	if err != nil {
		return store.User{}, err
	}
	if !n.Population.Valid() {
		return store.User{}, ErrInvalidPopulation
	}
	if n.Role == "" {
		n.Role = store.RoleAgent
		if n.Population == store.PopulationContact {
			n.Role = store.RoleContact
		}
	}
	if !n.Role.Valid() {
		return store.User{}, ErrInvalidRole
	}
	if (n.Population == store.PopulationContact) != (n.Role == store.RoleContact) {
		return store.User{}, ErrRoleNotInPopulaton
	}
	if err := s.CheckPassword(n.Password, n.Email); err != nil {
		return store.User{}, err
	}
	hash, err := s.Hasher.Hash(n.Password)
	if err != nil {
		return store.User{}, err
	}
	now := s.now().UTC()
	u := store.User{
		ID: NewID(), Email: strings.TrimSpace(n.Email), EmailKey: key,
		Population: n.Population, Role: n.Role, PasswordHash: hash,
		PasswordMustChange: n.MustChange, CreatedAt: now, UpdatedAt: now,
	}
	return u, nil
}

// ReplacePassword stores u's new password hash (mustChange: a one-time
// one) for a password that was forgotten, in one transaction: whoever
// had the old one is signed out everywhere (sessions, sign-ins in
// progress, tokens), and the password's lock is cleared. Joined to a
// caller's transaction, with its audit event.
func (s *Service) ReplacePassword(ctx context.Context, u store.User, hash string, mustChange bool) error {
	return s.Store.InTx(ctx, func(ctx context.Context) error {
		if err := s.Store.UpdateUserPassword(ctx, u.ID, hash, mustChange, s.now()); err != nil {
			return err
		}
		if err := s.Store.ResetThrottle(ctx, store.PasswordCounter(u.EmailKey)); err != nil {
			return err
		}
		return s.Store.SignOutUser(ctx, u.ID)
	})
}

// Insert stores an account NewAccount made; an address its population
// already has is ErrEmailTaken.
func (s *Service) Insert(ctx context.Context, u store.User) error {
	if err := s.Store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return ErrEmailTaken
		}
		return err
	}
	return nil
}

// Authenticate checks an email and password. Unknown email, wrong password
// and disabled account all return ErrBadCredentials after the same hashing
// work. A correct password stored under old parameters is rehashed. An
// empty population means the agent with that email, else the contact.
func (s *Service) Authenticate(ctx context.Context, p store.Population, email, password string) (store.User, error) {
	s.dummyOnce.Do(func() { s.dummy = s.Hasher.dummyHash() })
	key, keyErr := NormalizeEmail(email)
	var u store.User
	var err error
	if keyErr == nil {
		u, err = s.Store.GetUserByEmail(ctx, p, key)
	}
	if keyErr != nil || errors.Is(err, store.ErrNotFound) || len(password) > MaxPasswordLength {
		_, _, _ = s.Hasher.Verify(password, s.dummy)
		return store.User{}, ErrBadCredentials
	}
	if err != nil {
		return store.User{}, err
	}
	ok, rehash, err := s.Hasher.Verify(password, u.PasswordHash)
	if err != nil {
		return store.User{}, err
	}
	if !ok || u.Disabled {
		return store.User{}, ErrBadCredentials
	}
	if rehash {
		// Only from the hash just checked: an admin's reset committed
		// meanwhile stays (the sign-in goes on with the old hash's user).
		if h, err := s.Hasher.Hash(password); err == nil {
			switch err := s.Store.ChangeUserPassword(ctx, u.ID, u.PasswordHash, h, u.PasswordMustChange, s.now()); {
			case err == nil:
				u.PasswordHash = h
			case !errors.Is(err, store.ErrConflict):
				return store.User{}, fmt.Errorf("upgrade password hash: %w", err)
			}
		}
	}
	return u, nil
}

// NewID returns a random 128-bit identifier as 32 hex characters; user ids
// are opaque and stable, fit to be an OIDC subject.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// passwordAlphabet has 32 characters, none easily confused (no 0/O, 1/l/I),
// so each character carries 5 bits and byte%32 has no bias.
const passwordAlphabet = "abcdefghjkmnpqrstuvwxyz23456789A"

// GeneratePassword returns a random 20-character password (100 bits), for
// one-time passwords that an admin hands over.
func GeneratePassword() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i, c := range b {
		b[i] = passwordAlphabet[c%32]
	}
	return string(b)
}
