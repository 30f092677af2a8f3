// Package mfa holds the second factors and the policy that decides when
// one is needed: TOTP (RFC 6238) and recovery codes, each a set of pure,
// separately tested functions; the handlers that use them live in
// provider. Secrets never leave this package in clear except to be shown
// once to their owner.
package mfa
