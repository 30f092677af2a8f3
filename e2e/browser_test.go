package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds Debian's Chromium.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI needs Chromium for the browser suite: install Debian's chromium package (make test does)")
	}
	t.Skip("Chromium not found: the browser suite needs Debian's chromium package (make test installs it)")
	return ""
}

// artifactsDir is where screenshots go: artifacts/e2e at the repo root.
func artifactsDir(t *testing.T) string {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "artifacts", "e2e", strings.ReplaceAll(t.Name(), "/", "_"))
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", dir)
	return dir
}

// browser is one headless Chromium with one tab.
type browser struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	shots int
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	dir := artifactsDir(t)
	// Headless Chromium now and then fails to start or never answers
	// its first command (a known Chromium launch hang, not ours): such a
	// launch is killed and tried once more. Anything after the launch
	// gets no second chance.
	for try := 1; ; try++ {
		ctx, err := launch(t, path, startTimeout)
		if err == nil {
			return &browser{t: t, ctx: ctx, dir: dir}
		}
		if try == 2 {
			t.Fatalf("start chromium: %v", err)
		}
		t.Logf("start chromium (try %d): %v; trying again", try, err)
	}
}

// launch starts one headless Chromium with one tab, bounded by
// limit. The start cannot run under a timeout context of its own
// (the browser lives as long as that context), so it is bounded from
// outside.
func launch(t *testing.T, path string, limit time.Duration) (context.Context, error) {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("window-size", "480,900"), // phone-ish width
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	stop := func() { cancel(); cancelAlloc() }
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			stop()
			return nil, err
		}
		t.Cleanup(stop)
		return ctx, nil
	case <-time.After(limit):
		stop()
		return nil, fmt.Errorf("no answer within %v", limit)
	}
}

// Every call into the browser is bounded, so a wedged browser or page
// fails its test with a screenshot instead of hanging the package until
// go test's own timeout.
const (
	startTimeout = 45 * time.Second
	stepTimeout  = 20 * time.Second
	shotTimeout  = 10 * time.Second
)

// run runs one action on the tab for at most d.
func run[T any](b *browser, d time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// do runs steps with a time limit, and on failure saves a screenshot.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failure")
		loc, _ := run(b, shotTimeout, chromedp.Location())
		b.t.Fatalf("browser at %s: %v", loc, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := run(b, stepTimeout, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.shot("failure")
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// shot saves a PNG of the whole page, numbered in visiting order.
func (b *browser) shot(name string) {
	b.shots++
	buf, err := run(b, shotTimeout, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.shots, name))
	if err := os.WriteFile(file, buf, 0o644); err != nil {
		b.t.Logf("save screenshot: %v", err)
	}
}

// authenticator adds one of Chromium's virtual authenticators: a USB
// security key with resident keys and user verification, touched
// automatically. It returns the authenticator's id.
func (b *browser) authenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	var id webauthn.AuthenticatorID
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportUsb,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			},
		})
		id = res.AuthenticatorID
		return err
	}))
	return id
}

// touch sets whether an authenticator answers (the user touches it).
func (b *browser) touch(id webauthn.AuthenticatorID, on bool) {
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, webauthn.SetAutomaticPresenceSimulation, webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: id, Enabled: on})
		return err
	}))
}

// unplug removes an authenticator.
func (b *browser) unplug(id webauthn.AuthenticatorID) {
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id})
		return err
	}))
}

// forget clears cookies: the next sign-in starts from nothing.
func (b *browser) forget() {
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
}

var amrRe = regexp.MustCompile(`"amr":\s*\[([^\]]*)\]`)

// amrOf reads the amr array from the relying party's claims page.
func amrOf(claims string) string {
	m := amrRe.FindStringSubmatch(claims)
	if m == nil {
		return ""
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(m[1], `"`, "")), "")
}

// A browser that never answers its first command fails the launch at
// its time limit instead of hanging the test (were it unbounded, this
// test would hang until go test's timeout).
func TestLaunchHangIsBounded(t *testing.T) {
	mute := filepath.Join(t.TempDir(), "mute-chromium")
	require.NoError(t, os.WriteFile(mute, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755))
	_, err := launch(t, mute, 2*time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no answer within 2s")
}
