package accounts

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/alexedwards/argon2id"
)

// Argon2Params are the argon2id cost parameters (RFC 9106). The defaults
// follow OWASP's first recommendation: m=19 MiB, t=2, p=1.
type Argon2Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// DefaultArgon2 is OWASP's m=19 MiB, t=2, p=1.
var DefaultArgon2 = Argon2Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

func (p Argon2Params) lib() *argon2id.Params {
	return &argon2id.Params{Memory: p.MemoryKiB, Iterations: p.Iterations, Parallelism: p.Parallelism, SaltLength: 16, KeyLength: 32}
}

// Hasher makes and checks argon2id PHC strings.
type Hasher struct {
	Params Argon2Params
}

// hashSlots caps concurrent argon2id runs at one per core. Each run holds
// its memory cost (19 MiB by default) and a core: running more at once
// only adds memory and time slicing, so 200 concurrent sign-ins queue
// here instead of taking gigabytes. It is process-wide because memory is.
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// slot waits for a free hashing slot and returns its release.
func slot() (release func()) {
	hashSlots <- struct{}{}
	return func() { <-hashSlots }
}

// Hash returns the PHC string of password under the current parameters.
func (h Hasher) Hash(password string) (string, error) {
	release := slot()
	s, err := argon2id.CreateHash(normalize(password), h.Params.lib())
	release()
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return s, nil
}

// Verify checks password against a PHC string in constant time and tells
// whether the hash should be replaced (other parameters, or made before
// normalising).
//
// The password is normalised (NFKC) first; a hash made from it as typed,
// before Twofold normalised, is tried next and then wants replacing.
func (h Hasher) Verify(password, phc string) (ok, rehash bool, err error) {
	match, params, err := h.check(normalize(password), phc)
	if err == nil && !match && normalize(password) != password {
		match, params, err = h.check(password, phc)
		rehash = match
	}
	if err != nil {
		return false, false, fmt.Errorf("check password hash: %w", err)
	}
	if !match {
		return false, false, nil
	}
	want := h.Params.lib()
	rehash = rehash || params.Memory != want.Memory || params.Iterations != want.Iterations ||
		params.Parallelism != want.Parallelism || params.KeyLength != want.KeyLength
	return true, rehash, nil
}

// check is one argon2id comparison, in a hashing slot.
func (h Hasher) check(password, phc string) (bool, *argon2id.Params, error) {
	release := slot()
	defer release()
	return argon2id.CheckHash(password, phc)
}

// dummyHash is verified against when no account matches, so an unknown
// email costs the same work as a wrong password (no enumeration by timing).
func (h Hasher) dummyHash() string {
	s, err := h.Hash("twofold-dummy-password")
	if err != nil {
		panic(errors.New("accounts: cannot hash the dummy password: " + err.Error()))
	}
	return s
}
