// Package mail sends plain-text messages, such as login codes, over SMTP.
package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/netip"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// TLS modes for Config.TLS.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS; refused if the server does not offer it
	TLSImplicit = "tls"      // TLS from the first byte (submissions, port 465)
	TLSNone     = "none"     // no encryption; only for a server on the loopback interface
)

const defaultTimeout = 10 * time.Second

// Config describes the SMTP server and the sender.
type Config struct {
	Addr     string // host:port of the SMTP server (submission, e.g. smtp.example.com:587)
	From     string // the From address, "Twofold <no-reply@example.com>" or a bare address
	Username string // SMTP AUTH user; empty: no AUTH
	Password string

	// TLS is one of TLSStartTLS (also the default when empty), TLSImplicit
	// or TLSNone. TLSNone is accepted only for a loopback Addr, so that a
	// misconfiguration never puts mail, or credentials, on the network in
	// clear text.
	TLS string

	Timeout time.Duration  // limit for dialling and the whole exchange; 0 means 10s
	RootCAs *x509.CertPool // roots that verify the server's certificate; nil means the system's
}

// Validate returns every problem with c, each as "field: message" where
// field is one of smtp_addr, from, username, password or tls, so that the
// caller can prefix its own section name. It returns nil for a good Config.
func (c Config) Validate() []string {
	var problems []string
	add := func(field, format string, args ...any) {
		problems = append(problems, field+": "+fmt.Sprintf(format, args...))
	}

	host, addrOK := "", false
	if c.Addr == "" {
		add("smtp_addr", "required")
	} else if h, port, err := net.SplitHostPort(c.Addr); err != nil {
		add("smtp_addr", "%q is not host:port", c.Addr)
	} else if h == "" {
		add("smtp_addr", "%q has no host", c.Addr)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		add("smtp_addr", "%q has no valid port number", c.Addr)
	} else {
		host, addrOK = h, true
	}

	if c.From == "" {
		add("from", "required")
	} else if _, err := netmail.ParseAddress(c.From); err != nil {
		add("from", "%q is not a valid address: %v", c.From, err)
	}

	switch c.TLS {
	case "", TLSStartTLS, TLSImplicit:
	case TLSNone:
		// The host is checked only when it could be parsed, so that a bad
		// address is reported once, under smtp_addr.
		if addrOK && !isLoopback(host) {
			add("tls", "%q is allowed only for a loopback smtp_addr (localhost, 127.0.0.1, ::1), not %q", TLSNone, host)
		}
		if c.Username != "" {
			add("username", "not allowed with tls %q: the credentials would be sent in clear text", TLSNone)
		}
	default:
		add("tls", "%q is not one of %q, %q, %q", c.TLS, TLSStartTLS, TLSImplicit, TLSNone)
	}

	if c.Password != "" && c.Username == "" {
		add("password", "set without a username")
	}
	return problems
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// A Sender sends messages through one SMTP server. It is safe for
// concurrent use.
type Sender struct {
	cfg     Config
	host    string
	port    int
	from    *netmail.Address
	tls     *tls.Config
	timeout time.Duration
}

// New returns a Sender for c, or an error listing every problem that
// c.Validate finds. It does not contact the server.
func New(c Config) (*Sender, error) {
	if problems := c.Validate(); len(problems) > 0 {
		return nil, fmt.Errorf("mail: invalid config: %s", strings.Join(problems, "; "))
	}
	// Validate has checked all of these.
	host, portStr, _ := net.SplitHostPort(c.Addr)
	port, _ := strconv.Atoi(portStr)
	from, _ := netmail.ParseAddress(c.From)

	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &Sender{
		cfg:  c,
		host: host,
		port: port,
		from: from,
		tls: &tls.Config{
			ServerName: host,
			RootCAs:    c.RootCAs,
			MinVersion: tls.VersionTLS12,
		},
		timeout: timeout,
	}, nil
}

// Send sends one text/plain UTF-8 message to a single recipient. It dials
// the server for every message: login codes are rare, and a fresh
// connection never has to be kept alive or recovered.
//
// Send gives up when ctx is done or the Sender's timeout has passed,
// whichever comes first, and then returns an error that wraps ctx's error.
func (s *Sender) Send(ctx context.Context, to, subject, body string) error {
	// The recipient and subject usually come from users; a line break would
	// let them add headers (Bcc) to the message.
	if strings.ContainsAny(to, "\r\n") {
		return errors.New("send mail: recipient contains a line break")
	}
	if strings.ContainsAny(subject, "\r\n") {
		return errors.New("send mail: subject contains a line break")
	}
	rcpt, err := netmail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("send mail: recipient %q is not a single valid address: %w", to, err)
	}

	// No User-Agent: it would only advertise the library and its version.
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	m.FromMailAddress(s.from)
	m.ToMailAddress(rcpt)
	m.Subject(subject)
	m.SetBodyString(gomail.TypeTextPlain, body)

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	c, err := gomail.NewClient(s.host, s.options(ctx)...)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		// A cancelled or expired ctx surfaces from go-mail as whatever
		// network error the closed connection caused; report the cause.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("send mail: %w (%v)", ctxErr, err)
		}
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}

// options returns the go-mail client options for one exchange bounded by ctx.
func (s *Sender) options(ctx context.Context) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		// go-mail's per-command deadline is only a backstop: ctx expires
		// first, ends the exchange and lets Send report why.
		gomail.WithTimeout(s.timeout + time.Second),
		gomail.WithTLSConfig(s.tls),
		gomail.WithDialContextFunc(s.dialer(ctx)),
	}
	switch s.cfg.TLS {
	case TLSStartTLS:
		// Mandatory: fail rather than fall back to plain text when the
		// server (or someone in between) does not offer STARTTLS.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		// PLAIN, else LOGIN (offered alone by some providers), else the
		// strongest mechanism go-mail finds. go-mail's PLAIN and LOGIN refuse
		// to send credentials over a connection that is not TLS.
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(s.cfg.Username),
			gomail.WithPassword(s.cfg.Password),
		)
	}
	return opts
}

// dialer returns the function go-mail uses to connect. go-mail watches its
// context only while dialling; closing the connection when ctx is done also
// cuts short a server that stalls later in the exchange.
func (s *Sender) dialer(ctx context.Context) gomail.DialContextFunc {
	return func(dialCtx context.Context, network, _ string) (net.Conn, error) {
		d := &net.Dialer{}
		var conn net.Conn
		var err error
		if s.cfg.TLS == TLSImplicit {
			// go-mail does its own TLS dial only without a custom dialer.
			// Returning a *tls.Conn lets it see that the connection is
			// encrypted, which its PLAIN and LOGIN auth require.
			td := &tls.Dialer{NetDialer: d, Config: s.tls}
			conn, err = td.DialContext(dialCtx, network, s.cfg.Addr)
		} else {
			conn, err = d.DialContext(dialCtx, network, s.cfg.Addr)
		}
		if err != nil {
			return nil, err
		}
		// Send cancels ctx when it returns, so this always runs; closing a
		// connection that go-mail has already closed is harmless.
		context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}
}
