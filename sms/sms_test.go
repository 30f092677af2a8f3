package sms_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twofold-idp/twofold/sms"
	"github.com/twofold-idp/twofold/sms/smstest"
)

const (
	from = "+15005550006"
	to   = "+4915112345678"
)

// config returns a Config that sends through srv.
func config(srv *smstest.Server) sms.Config {
	return sms.Config{AccountSID: srv.AccountSID, AuthToken: srv.AuthToken, From: from, BaseURL: srv.URL}
}

func newTwilio(t *testing.T, c sms.Config) *sms.Twilio {
	t.Helper()
	tw, err := sms.New(c, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tw
}

func TestSend(t *testing.T) {
	tests := []struct {
		name    string
		baseURL func(srv *smstest.Server) string
		body    string
	}{
		{"plain", func(srv *smstest.Server) string { return srv.URL }, "Your Twofold code is 123456."},
		// Characters that mean something in a form must arrive as sent.
		{"form syntax and non-ASCII", func(srv *smstest.Server) string { return srv.URL }, "Code 12 34+56 & more=yes; für Sie ✓\nline 2"},
		{"base URL with trailing slash", func(srv *smstest.Server) string { return srv.URL + "/" }, "code"},
		{"base URL on localhost", func(srv *smstest.Server) string { return strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) }, "code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smstest.Start(t)
			c := config(srv)
			c.BaseURL = tt.baseURL(srv)
			if err := newTwilio(t, c).Send(t.Context(), to, tt.body); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := srv.Wait(t, 1)
			want := smstest.Message{To: to, From: from, Body: tt.body}
			if len(msgs) != 1 || msgs[0] != want {
				t.Errorf("messages = %+v, want [%+v]", msgs, want)
			}
		})
	}
}

func TestSendWrongCredentials(t *testing.T) {
	srv := smstest.Start(t)
	c := config(srv)
	c.AuthToken = "0123456789abcdef0123456789abcdef"
	err := newTwilio(t, c).Send(t.Context(), to, "code")

	var gerr *sms.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("Send error = %v, want an *sms.Error", err)
	}
	if gerr.Status != 401 || gerr.Code != 20003 {
		t.Errorf("Status, Code = %d, %d, want 401, 20003", gerr.Status, gerr.Code)
	}
	if errors.Is(err, sms.ErrInvalidNumber) {
		t.Errorf("wrong credentials reported as an invalid number: %v", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server accepted %d messages, want 0", n)
	}
}

// TestSendRefuses covers input that Send must refuse without asking the
// gateway.
func TestSendRefuses(t *testing.T) {
	tests := []struct {
		name          string
		to, body      string
		invalidNumber bool
	}{
		{"empty number", "", "code", true},
		{"no plus", "15005550006", "code", true},
		{"national format", "0151 12345678", "code", true},
		{"leading zero", "+015005550006", "code", true},
		{"spaces", "+1 500 555 0006", "code", true},
		{"too long", "+1234567890123456", "code", true},
		{"empty body", to, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smstest.Start(t)
			err := newTwilio(t, config(srv)).Send(t.Context(), tt.to, tt.body)
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			if got := errors.Is(err, sms.ErrInvalidNumber); got != tt.invalidNumber {
				t.Errorf("errors.Is(%v, ErrInvalidNumber) = %v, want %v", err, got, tt.invalidNumber)
			}
			if n := srv.Requests(); n != 0 {
				t.Errorf("gateway got %d requests, want 0", n)
			}
		})
	}
}

func TestSendGatewayError(t *testing.T) {
	tests := []struct {
		name          string
		status, code  int
		message       string
		wantMessage   string
		invalidNumber bool
	}{
		{
			name: "invalid number", status: 400, code: 21211,
			message:       "The 'To' number +4915112345678 is not a valid phone number.",
			wantMessage:   "The 'To' number +4915112345678 is not a valid phone number.",
			invalidNumber: true,
		},
		{
			name: "not a mobile number", status: 400, code: 21614,
			message:       "'To' number is not a valid mobile number",
			wantMessage:   "'To' number is not a valid mobile number",
			invalidNumber: true,
		},
		{
			name: "rate limited", status: 429, code: 20429,
			message: "Too Many Requests", wantMessage: "Too Many Requests",
		},
		{
			name: "outage", status: 503, code: 0,
			message: "Service is unavailable", wantMessage: "Service is unavailable",
		},
		{
			// Without a message, the HTTP status text stands in.
			name: "outage without message", status: 502, code: 0,
			message: "", wantMessage: "Bad Gateway",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smstest.Start(t)
			tw := newTwilio(t, config(srv))
			srv.Fail(tt.status, tt.code, tt.message)

			err := tw.Send(t.Context(), to, "code")
			var gerr *sms.Error
			if !errors.As(err, &gerr) {
				t.Fatalf("Send error = %v, want an *sms.Error", err)
			}
			want := sms.Error{Status: tt.status, Code: tt.code, Message: tt.wantMessage}
			if *gerr != want {
				t.Errorf("error = %+v, want %+v", *gerr, want)
			}
			if got := errors.Is(err, sms.ErrInvalidNumber); got != tt.invalidNumber {
				t.Errorf("errors.Is(err, ErrInvalidNumber) = %v, want %v", got, tt.invalidNumber)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.status)) {
				t.Errorf("error %q does not name the HTTP status", err)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server accepted %d messages, want 0", n)
			}

			// The failure applies once; the next message goes through.
			if err := tw.Send(t.Context(), to, "again"); err != nil {
				t.Fatalf("second Send: %v", err)
			}
			if msgs := srv.Wait(t, 1); msgs[0].Body != "again" {
				t.Errorf("second message body = %q, want %q", msgs[0].Body, "again")
			}
		})
	}
}

// TestSendNotTwilio covers a success status without the message resource
// that Twilio sends, as from a wrong base URL.
func TestSendNotTwilio(t *testing.T) {
	srv := smstest.Start(t)
	srv.Fail(200, 0, "welcome")
	err := newTwilio(t, config(srv)).Send(t.Context(), to, "code")
	if err == nil {
		t.Fatal("Send succeeded, want an error")
	}
	var gerr *sms.Error
	if errors.As(err, &gerr) {
		t.Errorf("Send error = %v, want no *sms.Error: the gateway did not refuse", err)
	}
	if !strings.Contains(err.Error(), "200") {
		t.Errorf("Send error %q does not name the HTTP status", err)
	}
}

// blackHole returns the base URL of a listener that never accepts: the
// kernel completes the TCP handshake and takes the request, but no answer
// ever comes, as from a hung gateway.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return "http://" + ln.Addr().String()
}

func TestSendContext(t *testing.T) {
	t.Run("cancelled before", func(t *testing.T) {
		srv := smstest.Start(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := newTwilio(t, config(srv)).Send(ctx, to, "code")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Send error = %v, want context.Canceled", err)
		}
		if n := srv.Requests(); n != 0 {
			t.Errorf("gateway got %d requests, want 0", n)
		}
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		srv := smstest.Start(t)
		c := config(srv)
		c.BaseURL = blackHole(t)
		c.Timeout = time.Minute
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()

		start := time.Now()
		err := newTwilio(t, c).Send(ctx, to, "code")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Send error = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Send returned after %v, want soon after the context's 100ms", d)
		}
	})

	t.Run("config timeout", func(t *testing.T) {
		srv := smstest.Start(t)
		c := config(srv)
		c.BaseURL = blackHole(t)
		c.Timeout = 100 * time.Millisecond

		start := time.Now()
		err := newTwilio(t, c).Send(t.Context(), to, "code")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Send error = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Send returned after %v, want soon after the 100ms timeout", d)
		}
	})
}

// TestErrorsOmitToken collects errors from every way a Send can fail and
// checks that none of them shows the auth token.
func TestErrorsOmitToken(t *testing.T) {
	srv := smstest.Start(t)
	good := config(srv)
	tw := newTwilio(t, good)
	const wrongToken = "fedcba9876543210fedcba9876543210"

	// The listener is closed at once, so that connecting fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name string
		send func() error
	}{
		{"wrong token", func() error {
			c := good
			c.AuthToken = wrongToken
			return newTwilio(t, c).Send(t.Context(), to, "code")
		}},
		{"wrong account", func() error {
			c := good
			c.AccountSID = "AC" + strings.Repeat("0", 32)
			return newTwilio(t, c).Send(t.Context(), to, "code")
		}},
		{"gateway echoes the token", func() error {
			srv.Fail(500, 0, "internal error for "+good.AuthToken)
			return tw.Send(t.Context(), to, "code")
		}},
		{"invalid number", func() error { return tw.Send(t.Context(), "+0", "code") }},
		{"gateway refuses number", func() error {
			srv.Fail(400, 21211, "The 'To' number is not a valid phone number.")
			return tw.Send(t.Context(), to, "code")
		}},
		{"connection refused", func() error {
			c := good
			c.BaseURL = closedURL
			return newTwilio(t, c).Send(t.Context(), to, "code")
		}},
		{"invalid config", func() error {
			c := good
			c.AccountSID = good.AuthToken // pasted into the wrong field
			c.BaseURL = "https://user:" + good.AuthToken + "@api.twilio.com"
			_, err := sms.New(c, nil)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.send()
			if err == nil {
				t.Fatal("no error")
			}
			var gerr *sms.Error
			msgs := []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
			if errors.As(err, &gerr) {
				msgs = append(msgs, gerr.Message)
			}
			for _, msg := range msgs {
				if strings.Contains(msg, good.AuthToken) || strings.Contains(msg, wrongToken) {
					t.Errorf("error shows the auth token: %s", msg)
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	_, err := sms.New(sms.Config{From: "0151"}, nil)
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, field := range []string{"account_sid", "auth_token", "from"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("New error %q does not name %s", err, field)
		}
	}
}

func TestValidate(t *testing.T) {
	good := sms.Config{
		AccountSID: "AC0123456789abcdef0123456789abcdef",
		AuthToken:  "0123456789abcdef0123456789abcdef",
		From:       "+15005550006",
	}
	tests := []struct {
		name   string
		modify func(c *sms.Config)
		want   []string // the fields with a problem, in order
	}{
		{"good, default base URL", func(c *sms.Config) {}, nil},
		{"good, https base URL with port and path", func(c *sms.Config) { c.BaseURL = "https://twilio-proxy.example.com:8443/api/" }, nil},
		{"good, http on 127.0.0.1", func(c *sms.Config) { c.BaseURL = "http://127.0.0.1:8080" }, nil},
		{"good, http on 127.0.0.2", func(c *sms.Config) { c.BaseURL = "http://127.0.0.2" }, nil},
		{"good, http on ::1", func(c *sms.Config) { c.BaseURL = "http://[::1]:8080" }, nil},
		{"good, http on localhost", func(c *sms.Config) { c.BaseURL = "http://LocalHost:8080" }, nil},
		{"good, timeout", func(c *sms.Config) { c.Timeout = time.Second }, nil},

		{"empty", func(c *sms.Config) { *c = sms.Config{} }, []string{"account_sid", "auth_token", "from"}},
		{"account sid without AC", func(c *sms.Config) { c.AccountSID = "0123456789abcdef0123456789abcdef" }, []string{"account_sid"}},
		{"account sid API key", func(c *sms.Config) { c.AccountSID = "SK0123456789abcdef0123456789abcdef" }, []string{"account_sid"}},
		{"account sid upper-case hex", func(c *sms.Config) { c.AccountSID = "AC0123456789ABCDEF0123456789ABCDEF" }, []string{"account_sid"}},
		{"account sid short", func(c *sms.Config) { c.AccountSID = "AC0123456789abcdef0123456789abcde" }, []string{"account_sid"}},
		{"account sid long", func(c *sms.Config) { c.AccountSID = "AC0123456789abcdef0123456789abcdef0" }, []string{"account_sid"}},
		{"from national", func(c *sms.Config) { c.From = "5005550006" }, []string{"from"}},
		{"from alphanumeric", func(c *sms.Config) { c.From = "Twofold" }, []string{"from"}},
		{"base url http remote", func(c *sms.Config) { c.BaseURL = "http://api.twilio.com" }, []string{"base_url"}},
		{"base url http private address", func(c *sms.Config) { c.BaseURL = "http://10.0.0.1" }, []string{"base_url"}},
		{"base url http localhost lookalike", func(c *sms.Config) { c.BaseURL = "http://localhost.example.com" }, []string{"base_url"}},
		{"base url relative", func(c *sms.Config) { c.BaseURL = "api.twilio.com" }, []string{"base_url"}},
		{"base url no host", func(c *sms.Config) { c.BaseURL = "https:///2010-04-01" }, []string{"base_url"}},
		{"base url other scheme", func(c *sms.Config) { c.BaseURL = "ftp://api.twilio.com" }, []string{"base_url"}},
		{"base url credentials", func(c *sms.Config) { c.BaseURL = "https://AC1:secret@api.twilio.com" }, []string{"base_url"}},
		{"base url query", func(c *sms.Config) { c.BaseURL = "https://api.twilio.com?x=1" }, []string{"base_url"}},
		{"base url unparsable", func(c *sms.Config) { c.BaseURL = "https://api.twilio.com:port" }, []string{"base_url"}},
		{"all bad", func(c *sms.Config) { *c = sms.Config{AccountSID: "x", From: "x", BaseURL: "x"} }, []string{"account_sid", "auth_token", "from", "base_url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.modify(&c)
			problems := c.Validate()
			if tt.want == nil {
				if problems != nil {
					t.Errorf("Validate = %q, want nil", problems)
				}
				return
			}
			if len(problems) != len(tt.want) {
				t.Fatalf("Validate = %q, want problems with %q", problems, tt.want)
			}
			for i, p := range problems {
				if field, msg, ok := strings.Cut(p, ": "); !ok || field != tt.want[i] || msg == "" {
					t.Errorf("problem %d = %q, want %q: <message>", i, p, tt.want[i])
				}
				if strings.Contains(p, "secret") {
					t.Errorf("problem %q shows a password", p)
				}
			}
		})
	}
}

func TestValidE164(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"+15005550006", true},
		{"+4915112345678", true},
		{"+12345678", true},        // 8 digits, the fewest
		{"+123456789012345", true}, // 15 digits, the most
		{"", false},
		{"+", false},
		{"+1234567", false},          // 7 digits
		{"+1234567890123456", false}, // 16 digits
		{"15005550006", false},
		{"+015005550006", false},
		{"++15005550006", false},
		{"+1 5005550006", false},
		{"+1-500-555-0006", false},
		{"+1500555000a", false},
		{"+1500555000٦", false}, // Arabic-Indic digit six
		{" +15005550006", false},
		{"+15005550006\n", false},
	}
	for _, tt := range tests {
		if got := sms.ValidE164(tt.s); got != tt.want {
			t.Errorf("ValidE164(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"+15005550067", "+•••••••••67"},
		{"+4915112345678", "+•••••••••••78"},
		{"+12345678", "+••••••78"},
		{"+123456789012345", "+•••••••••••••45"},
		{"", ""},
		{"15005550067", ""},
		{"+1 500 555 0067", ""},
	}
	for _, tt := range tests {
		if got := sms.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
