package mail_test

import (
	"context"
	"errors"
	"net"
	netmail "net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofold-idp/twofold/mail"
	"github.com/twofold-idp/twofold/mail/mailtest"
)

const (
	from     = "Twofold <no-reply@example.com>"
	fromAddr = "no-reply@example.com"
)

func newSender(t *testing.T, c mail.Config) *mail.Sender {
	t.Helper()
	s, err := mail.New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// checkMessage checks what the server received against what was sent.
func checkMessage(t *testing.T, got mailtest.Message, to, subject, body string) {
	t.Helper()
	if got.From != fromAddr {
		t.Errorf("envelope from = %q, want %q", got.From, fromAddr)
	}
	if !slices.Equal(got.To, []string{to}) {
		t.Errorf("envelope to = %q, want [%q]", got.To, to)
	}
	if got.Subject != subject {
		t.Errorf("subject = %q, want %q", got.Subject, subject)
	}
	if got.Body != body {
		t.Errorf("body = %q, want %q", got.Body, body)
	}

	m, err := netmail.ReadMessage(strings.NewReader(string(got.Raw)))
	if err != nil {
		t.Fatalf("parse raw message: %v", err)
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date header: %v", err)
	}
	if id := m.Header.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") {
		t.Errorf("Message-ID = %q, want <...>", id)
	}
	if a, err := netmail.ParseAddress(m.Header.Get("From")); err != nil || a.Name != "Twofold" || a.Address != fromAddr {
		t.Errorf("From header = %q (%v), want %q", m.Header.Get("From"), err, from)
	}
	if a, err := netmail.ParseAddress(m.Header.Get("To")); err != nil || a.Address != to {
		t.Errorf("To header = %q (%v), want %q", m.Header.Get("To"), err, to)
	}
	if ua := m.Header.Get("User-Agent") + m.Header.Get("X-Mailer"); ua != "" {
		t.Errorf("User-Agent/X-Mailer = %q, want none", ua)
	}
	if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(strings.ToLower(ct), "utf-8") {
		t.Errorf("Content-Type = %q, want text/plain UTF-8", ct)
	}
}

func TestSend(t *testing.T) {
	// Non-ASCII text and a line longer than 76 characters make go-mail
	// encode both the subject and the body.
	const (
		subject = "Ihr Anmeldecode für Twofold – 123456"
		body    = "Ihr Code lautet 123456.\n\nEr ist zehn Minuten gültig. Wenn Sie ihn nicht angefordert haben, können Sie diese Nachricht ignorieren."
	)
	tests := []struct {
		name string
		opts mailtest.Options
		tls  string
		auth bool
	}{
		{"starttls with auth", mailtest.Options{TLS: true, Username: "twofold", Password: "s3cret"}, "", true},
		{"starttls explicit, no auth", mailtest.Options{TLS: true}, mail.TLSStartTLS, false},
		{"implicit tls with auth", mailtest.Options{ImplicitTLS: true, Username: "twofold", Password: "s3cret"}, mail.TLSImplicit, true},
		{"plain on loopback", mailtest.Options{}, mail.TLSNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.Start(t, tt.opts)
			c := mail.Config{Addr: srv.Addr, From: from, TLS: tt.tls, RootCAs: srv.RootCAs()}
			if tt.auth {
				c.Username, c.Password = tt.opts.Username, tt.opts.Password
			}
			s := newSender(t, c)

			if err := s.Send(t.Context(), "alice@example.com", subject, body); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := srv.Wait(t, 1)
			if len(msgs) != 1 {
				t.Fatalf("got %d messages, want 1", len(msgs))
			}
			checkMessage(t, msgs[0], "alice@example.com", subject, body)
		})
	}
}

func TestSendConcurrent(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{TLS: true})
	s := newSender(t, mail.Config{Addr: srv.Addr, From: from, RootCAs: srv.RootCAs()})

	const n = 5
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			to := "user" + strconv.Itoa(i) + "@example.com"
			if err := s.Send(t.Context(), to, "code", "body"); err != nil {
				t.Errorf("Send to %s: %v", to, err)
			}
		})
	}
	wg.Wait()
	if got := len(srv.Wait(t, n)); got != n {
		t.Errorf("got %d messages, want %d", got, n)
	}
}

// TestSendFails covers exchanges that must fail, and must not deliver.
func TestSendFails(t *testing.T) {
	tests := []struct {
		name    string
		opts    mailtest.Options
		config  func(c *mail.Config, srv *mailtest.Server)
		wantErr string
	}{
		{
			name: "wrong password",
			opts: mailtest.Options{TLS: true, Username: "twofold", Password: "s3cret"},
			config: func(c *mail.Config, srv *mailtest.Server) {
				c.Username, c.Password, c.RootCAs = "twofold", "wrong", srv.RootCAs()
			},
			wantErr: "535",
		},
		{
			name: "wrong password, implicit tls",
			opts: mailtest.Options{ImplicitTLS: true, Username: "twofold", Password: "s3cret"},
			config: func(c *mail.Config, srv *mailtest.Server) {
				c.TLS, c.Username, c.Password, c.RootCAs = mail.TLSImplicit, "twofold", "wrong", srv.RootCAs()
			},
			wantErr: "535",
		},
		{
			// The server requires AUTH; sending without it must not pass.
			name: "no credentials",
			opts: mailtest.Options{TLS: true, Username: "twofold", Password: "s3cret"},
			config: func(c *mail.Config, srv *mailtest.Server) {
				c.RootCAs = srv.RootCAs()
			},
			wantErr: "authenticate",
		},
		{
			// Never fall back to plain text.
			name:    "starttls not offered",
			opts:    mailtest.Options{},
			config:  func(c *mail.Config, srv *mailtest.Server) {},
			wantErr: "STARTTLS",
		},
		{
			name:    "starttls not offered, with auth",
			opts:    mailtest.Options{Username: "twofold", Password: "s3cret"},
			config:  func(c *mail.Config, srv *mailtest.Server) { c.Username, c.Password = "twofold", "s3cret" },
			wantErr: "STARTTLS",
		},
		{
			// RootCAs nil: the system's roots do not trust the test certificate.
			name:    "untrusted certificate",
			opts:    mailtest.Options{TLS: true},
			config:  func(c *mail.Config, srv *mailtest.Server) {},
			wantErr: "certificate",
		},
		{
			name:    "untrusted certificate, implicit tls",
			opts:    mailtest.Options{ImplicitTLS: true},
			config:  func(c *mail.Config, srv *mailtest.Server) { c.TLS = mail.TLSImplicit },
			wantErr: "certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.Start(t, tt.opts)
			c := mail.Config{Addr: srv.Addr, From: from, Timeout: 5 * time.Second}
			tt.config(&c, srv)
			s := newSender(t, c)

			err := s.Send(t.Context(), "alice@example.com", "code", "body")
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "send mail: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Send error = %q, want \"send mail: ...%s...\"", err, tt.wantErr)
			}
			if msgs := srv.Messages(); len(msgs) != 0 {
				t.Errorf("server received %d messages, want none", len(msgs))
			}
		})
	}
}

func TestSendRejected(t *testing.T) {
	for _, code := range []int{451, 554} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			srv := mailtest.Start(t, mailtest.Options{TLS: true})
			s := newSender(t, mail.Config{Addr: srv.Addr, From: from, RootCAs: srv.RootCAs()})

			srv.Reject(code)
			err := s.Send(t.Context(), "alice@example.com", "first", "body")
			if err == nil || !strings.Contains(err.Error(), strconv.Itoa(code)) {
				t.Fatalf("Send error = %v, want one with %d", err, code)
			}
			if msgs := srv.Messages(); len(msgs) != 0 {
				t.Fatalf("server kept %d rejected messages", len(msgs))
			}

			// Reject applies once: the next message goes through.
			if err := s.Send(t.Context(), "alice@example.com", "second", "body"); err != nil {
				t.Fatalf("Send after rejection: %v", err)
			}
			if msgs := srv.Wait(t, 1); len(msgs) != 1 || msgs[0].Subject != "second" {
				t.Errorf("messages = %+v, want only \"second\"", msgs)
			}
		})
	}
}

// listen returns the address of a server that accepts connections and never
// answers, and a report of whether anyone connected.
func listen(t *testing.T) (addr string, dialed *atomic.Bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dialed = new(atomic.Bool)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Store(true)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), dialed
}

func TestSendRefusesBadInput(t *testing.T) {
	tests := []struct {
		name, to, subject, wantErr string
	}{
		{"bcc injection in to", "a@b.c\r\nBcc: x@y.z", "code", "line break"},
		{"bare LF in to", "a@b.c\nBcc: x@y.z", "code", "line break"},
		{"bare CR in to", "a@b.c\rBcc: x@y.z", "code", "line break"},
		{"LF in subject", "a@b.c", "code\nBcc: x@y.z", "line break"},
		{"CRLF in subject", "a@b.c", "code\r\nBcc: x@y.z", "line break"},
		{"two recipients", "a@b.c, x@y.z", "code", "single valid address"},
		{"not an address", "alice", "code", "single valid address"},
		{"empty recipient", "", "code", "single valid address"},
	}
	addr, dialed := listen(t)
	// A dial would hang until this timeout; the checks must come first.
	s := newSender(t, mail.Config{Addr: addr, From: from, TLS: mail.TLSNone, Timeout: 5 * time.Second})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Send(t.Context(), tt.to, tt.subject, "body")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Send error = %v, want one about %q", err, tt.wantErr)
			}
		})
	}
	if dialed.Load() {
		t.Error("Send dialled the server for a refused message")
	}
}

func TestSendContext(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // Config.Timeout
		ctx     func(t *testing.T) context.Context
		want    error
	}{
		{
			name:    "cancelled before Send",
			timeout: time.Minute,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			want: context.Canceled,
		},
		{
			// The server has accepted the connection but never greets.
			name:    "cancelled during the exchange",
			timeout: time.Minute,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx
			},
			want: context.Canceled,
		},
		{
			name:    "timeout",
			timeout: 200 * time.Millisecond,
			ctx:     func(t *testing.T) context.Context { return t.Context() },
			want:    context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := listen(t)
			s := newSender(t, mail.Config{Addr: addr, From: from, TLS: mail.TLSNone, Timeout: tt.timeout})

			start := time.Now()
			err := s.Send(tt.ctx(t), "alice@example.com", "code", "body")
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Send took %v", elapsed)
			}
			if err == nil || !strings.HasPrefix(err.Error(), "send mail: ") {
				t.Fatalf("Send error = %v, want \"send mail: ...\"", err)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Send error = %v, want one wrapping %v", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := mail.Config{Addr: "smtp.example.com:587", From: from, Username: "u", Password: "p"}
	tests := []struct {
		name   string
		change func(c *mail.Config)
		want   []string // fields named in the problems, in order
	}{
		{"good starttls", func(c *mail.Config) {}, nil},
		{"good starttls explicit", func(c *mail.Config) { c.TLS = mail.TLSStartTLS }, nil},
		{"good implicit tls", func(c *mail.Config) { c.TLS, c.Addr = mail.TLSImplicit, "smtp.example.com:465" }, nil},
		{"good bare from", func(c *mail.Config) { c.From = "no-reply@example.com" }, nil},
		{"good without auth", func(c *mail.Config) { c.Username, c.Password = "", "" }, nil},
		{"good username without password", func(c *mail.Config) { c.Password = "" }, nil},
		{"good none on 127.0.0.1", func(c *mail.Config) { *c = mail.Config{Addr: "127.0.0.1:25", From: from, TLS: mail.TLSNone} }, nil},
		{"good none on localhost", func(c *mail.Config) { *c = mail.Config{Addr: "localhost:1025", From: from, TLS: mail.TLSNone} }, nil},
		{"good none on ::1", func(c *mail.Config) { *c = mail.Config{Addr: "[::1]:25", From: from, TLS: mail.TLSNone} }, nil},

		{"addr missing", func(c *mail.Config) { c.Addr = "" }, []string{"smtp_addr"}},
		{"addr without port", func(c *mail.Config) { c.Addr = "smtp.example.com" }, []string{"smtp_addr"}},
		{"addr without host", func(c *mail.Config) { c.Addr = ":587" }, []string{"smtp_addr"}},
		{"addr named port", func(c *mail.Config) { c.Addr = "smtp.example.com:submission" }, []string{"smtp_addr"}},
		{"addr port 0", func(c *mail.Config) { c.Addr = "smtp.example.com:0" }, []string{"smtp_addr"}},
		{"addr port too big", func(c *mail.Config) { c.Addr = "smtp.example.com:65536" }, []string{"smtp_addr"}},
		{"from missing", func(c *mail.Config) { c.From = "" }, []string{"from"}},
		{"from not an address", func(c *mail.Config) { c.From = "Twofold" }, []string{"from"}},
		{"from two addresses", func(c *mail.Config) { c.From = "a@example.com, b@example.com" }, []string{"from"}},
		{"tls unknown", func(c *mail.Config) { c.TLS = "ssl" }, []string{"tls"}},
		{"tls none on a remote host", func(c *mail.Config) { c.TLS, c.Username, c.Password = mail.TLSNone, "", "" }, []string{"tls"}},
		{"tls none on a remote IP", func(c *mail.Config) {
			*c = mail.Config{Addr: "192.0.2.1:25", From: from, TLS: mail.TLSNone}
		}, []string{"tls"}},
		{"tls none with username", func(c *mail.Config) { c.Addr, c.TLS = "localhost:25", mail.TLSNone }, []string{"username"}},
		{"password without username", func(c *mail.Config) { c.Username = "" }, []string{"password"}},
		{"everything wrong", func(c *mail.Config) {
			*c = mail.Config{Addr: "nowhere", From: "nobody", TLS: "insecure", Password: "p"}
		}, []string{"smtp_addr", "from", "tls", "password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			problems := c.Validate()

			var fields []string
			for _, p := range problems {
				field, msg, ok := strings.Cut(p, ": ")
				if !ok || msg == "" {
					t.Errorf("problem %q is not \"field: message\"", p)
				}
				fields = append(fields, field)
			}
			if !slices.Equal(fields, tt.want) {
				t.Errorf("Validate() = %q, want problems for %q", problems, tt.want)
			}

			s, err := mail.New(c)
			if tt.want == nil {
				if err != nil || s == nil {
					t.Errorf("New() = %v, %v; want a Sender", s, err)
				}
				return
			}
			if err == nil || s != nil {
				t.Fatalf("New() = %v, %v; want an error", s, err)
			}
			for _, p := range problems {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("New error %q does not mention %q", err, p)
				}
			}
		})
	}
}
