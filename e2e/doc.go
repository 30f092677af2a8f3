// Package e2e walks the hosted pages in a real browser: Debian's Chromium
// driven by chromedp, with Chromium's virtual WebAuthn authenticator for
// security keys and passkeys. Every page a test visits is saved as a
// screenshot under artifacts/e2e/<test>/ at the repository root; the
// test log prints the folder.
//
// Chromium is installed by `make test` when missing. Without it the
// tests skip, except with CI=true, where a missing browser fails the run.
package e2e
