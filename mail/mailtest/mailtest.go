// Package mailtest runs a real SMTP server on the loopback interface for
// tests, and records the messages it receives.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// A Message is one message the server accepted.
type Message struct {
	From    string   // envelope sender (MAIL FROM)
	To      []string // envelope recipients (RCPT TO)
	Subject string   // decoded Subject header
	Body    string   // decoded body, "\n" line endings, trailing white space trimmed
	Raw     []byte   // the message as received after DATA
}

// Options configure a Server.
type Options struct {
	// TLS offers STARTTLS with a self-signed certificate for 127.0.0.1,
	// ::1 and localhost; see Server.RootCAs. AUTH is then offered only
	// after STARTTLS.
	TLS bool
	// ImplicitTLS speaks TLS from the first byte, as on port 465, with the
	// same certificate. It implies TLS.
	ImplicitTLS bool
	// Username and Password, when Username is set, make the server offer
	// AUTH PLAIN and refuse MAIL FROM until the client has logged in with
	// them.
	Username, Password string
}

// A Server is a running SMTP server.
type Server struct {
	Addr string // 127.0.0.1:port

	opts  Options
	roots *x509.CertPool

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{} // closed and replaced whenever msgs grows
	reject  int
}

const waitTimeout = 10 * time.Second

// Start starts a Server on 127.0.0.1 at a free port. It is stopped when
// the test and its subtests finish.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.ImplicitTLS {
		o.TLS = true
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	s := &Server{Addr: ln.Addr().String(), opts: o, changed: make(chan struct{})}
	log := &testLogger{t: t}

	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{srv: s}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = waitTimeout
	srv.WriteTimeout = waitTimeout
	srv.ErrorLog = log
	// Without TLS, AUTH has to work over plain text; with TLS, go-smtp
	// offers and accepts AUTH only once the connection is encrypted.
	srv.AllowInsecureAuth = !o.TLS
	if o.TLS {
		cert, roots, err := selfSigned()
		if err != nil {
			ln.Close()
			t.Fatalf("mailtest: %v", err)
		}
		s.roots = roots
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if o.ImplicitTLS {
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
	}

	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil {
			log.Printf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		// Serve may not have registered ln with srv yet; closing it here
		// makes sure Serve returns.
		ln.Close()
		<-served
		log.stop()
	})
	return s
}

// RootCAs returns a pool that trusts the server's certificate, or nil
// without TLS.
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// Messages returns a copy of the messages received so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneMessages(s.msgs)
}

// Wait waits until at least n messages have arrived and returns all of
// them. It fails the test after 10 seconds.
func (s *Server) Wait(t testing.TB, n int) []Message {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := cloneMessages(s.msgs)
			s.mu.Unlock()
			return msgs
		}
		got, changed := len(s.msgs), s.changed
		s.mu.Unlock()

		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("mailtest: got %d messages after %v, want %d", got, waitTimeout, n)
		}
	}
}

// Reject makes the server refuse the next message, after DATA, with the
// SMTP reply code (4xx: temporary, 5xx: permanent). It applies once.
func (s *Server) Reject(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = code
}

func (s *Server) takeReject() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := s.reject
	s.reject = 0
	return code
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

func cloneMessages(msgs []Message) []Message {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		m.To = slices.Clone(m.To)
		m.Raw = slices.Clone(m.Raw)
		out[i] = m
	}
	return out
}

// session is one SMTP connection; go-smtp starts a new one after STARTTLS.
type session struct {
	srv    *Server
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.srv.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.srv.opts.Username == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		o := ss.srv.opts
		if (identity != "" && identity != username) || username != o.Username || password != o.Password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.srv.opts.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from, ss.to = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if code := ss.srv.takeReject(); code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "rejected by mailtest"}
	}
	subject, body, err := decode(raw)
	if err != nil {
		// Refuse what the tests could not inspect, so that the sender sees
		// the problem.
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "mailtest: " + err.Error()}
	}
	ss.srv.add(Message{From: ss.from, To: slices.Clone(ss.to), Subject: subject, Body: body, Raw: raw})
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// decode returns the Subject and body of a single-part text message, undoing
// the MIME encodings a sender may use for non-ASCII text.
func decode(raw []byte) (subject, body string, err error) {
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", "", fmt.Errorf("read message: %w", err)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		return "", "", fmt.Errorf("decode subject: %w", err)
	}

	if ct := m.Header.Get("Content-Type"); ct != "" {
		mediaType, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return "", "", fmt.Errorf("content type: %w", err)
		}
		if mediaType != "text/plain" {
			return "", "", fmt.Errorf("content type %q, want text/plain", mediaType)
		}
		if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
			return "", "", fmt.Errorf("charset %q, want utf-8", cs)
		}
	}

	var r io.Reader = m.Body
	switch cte := strings.ToLower(strings.TrimSpace(m.Header.Get("Content-Transfer-Encoding"))); cte {
	case "", "7bit", "8bit", "binary":
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		// The decoder skips the line breaks.
		r = base64.NewDecoder(base64.StdEncoding, r)
	default:
		return "", "", fmt.Errorf("unknown transfer encoding %q", cte)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return "", "", fmt.Errorf("decode body: %w", err)
	}
	body = strings.ReplaceAll(string(b), "\r\n", "\n")
	return subject, strings.TrimRight(body, " \t\r\n"), nil
}

// selfSigned returns a certificate for the loopback names and a pool that
// trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailtest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, roots, nil
}

// testLogger passes go-smtp's errors to the test log until the server has
// stopped; logging after the test has finished would panic.
type testLogger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *testLogger) Printf(format string, v ...any) { l.log(fmt.Sprintf(format, v...)) }

func (l *testLogger) Println(v ...any) { l.log(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l *testLogger) log(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("mailtest: %s", msg)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}
