package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestServer(t *testing.T, https bool, ready func(context.Context) error) (*Server, *syncBuffer) {
	var logs syncBuffer
	logger, err := NewLogger(&logs, "info", "json")
	require.NoError(t, err)
	s := New(Options{Logger: logger, HTTPS: https, Ready: ready})
	s.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "handler says hello")
		io.WriteString(w, "hello")
	})
	return s, &logs
}

func do(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestSecurityHeaders(t *testing.T) {
	for _, https := range []bool{false, true} {
		s, _ := newTestServer(t, https, nil)
		for _, path := range []string{"/hello", "/healthz", "/nowhere"} {
			w := do(s, "GET", path, nil)
			h := w.Header()
			assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), path)
			assert.Contains(t, h.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
			assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
			if https {
				assert.Contains(t, h.Get("Strict-Transport-Security"), "max-age=", path)
			} else {
				assert.Empty(t, h.Get("Strict-Transport-Security"), "no HSTS over http")
			}
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var down bool
	s, logs := newTestServer(t, false, func(context.Context) error {
		if down {
			return errors.New("connection refused")
		}
		return nil
	})
	assert.Equal(t, 200, do(s, "GET", "/healthz", nil).Code)
	assert.Equal(t, 200, do(s, "GET", "/readyz", nil).Code)
	down = true
	w := do(s, "GET", "/readyz", nil)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.NotContains(t, w.Body.String(), "connection refused", "causes go to the log, not the client")
	assert.Contains(t, logs.String(), "connection refused")
	assert.Equal(t, 200, do(s, "GET", "/healthz", nil).Code, "alive while the database is down")
	assert.Equal(t, http.StatusMethodNotAllowed, do(s, "POST", "/healthz", nil).Code)
}

func TestRequestIDOnEveryLogLine(t *testing.T) {
	s, logs := newTestServer(t, false, nil)
	w := do(s, "GET", "/hello", http.Header{"X-Request-Id": {"abc-123"}})
	assert.Equal(t, "abc-123", w.Header().Get("X-Request-Id"), "a plain caller id is kept")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 2, "the handler's line and the access line")
	for _, l := range lines {
		assert.Contains(t, l, `"request_id":"abc-123"`)
	}
	assert.Contains(t, lines[1], `"route":"GET /hello"`)
	assert.Contains(t, lines[1], `"status":200`)

	w = do(s, "GET", "/hello", http.Header{"X-Request-Id": {"evil\nline injected"}})
	id := w.Header().Get("X-Request-Id")
	assert.Regexp(t, `^[0-9a-f]{24}$`, id, "an unsafe caller id is replaced")
	assert.NotContains(t, logs.String(), "injected")
}

// TestClientOnAccessLog: behind a trusted proxy the access log carries
// the client's address (from Options.ClientIP) beside the TCP peer.
func TestClientOnAccessLog(t *testing.T) {
	var logs syncBuffer
	logger, err := NewLogger(&logs, "info", "json")
	require.NoError(t, err)
	s := New(Options{Logger: logger, ClientIP: func(r *http.Request) string { return "203.0.113.9" }})
	s.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {})
	do(s, "GET", "/hello", nil)
	assert.Contains(t, logs.String(), `"remote":"192.0.2.1:1234"`, "the TCP peer (httptest's)")
	assert.Contains(t, logs.String(), `"client":"203.0.113.9"`)

	plain, plainLogs := newTestServer(t, false, nil)
	do(plain, "GET", "/hello", nil)
	assert.NotContains(t, plainLogs.String(), `"client"`, "without ClientIP, the peer only")
}

func TestMetricsByRoute(t *testing.T) {
	s, _ := newTestServer(t, false, nil)
	for range 3 {
		do(s, "GET", "/hello", nil)
	}
	do(s, "GET", "/nowhere", nil)
	body := do(s, "GET", "/metrics", nil).Body.String()
	assert.Contains(t, body, `twofold_http_requests_total{code="200",method="get",route="GET /hello"} 3`)
	assert.Contains(t, body, `twofold_http_request_duration_seconds_count{method="get",route="GET /hello"} 3`)
	assert.NotContains(t, body, "/nowhere", "unmatched paths add no series")
	assert.Contains(t, body, "go_goroutines")
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	s, _ := newTestServer(t, false, nil)
	s.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, s, slog.New(slog.DiscardHandler), 10*time.Second) }()

	type reply struct {
		body string
		err  error
	}
	got := make(chan reply, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- reply{string(b), err}
	}()
	<-started
	cancel() // SIGTERM arrives while the request is in flight
	// New connections are refused once shutdown has begun.
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 5*time.Second, 10*time.Millisecond)
	close(release)
	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, "finished", r.body, "the request in flight completes")
	require.NoError(t, <-served)
}

func TestNewLoggerRejectsUnknown(t *testing.T) {
	_, err := NewLogger(io.Discard, "loud", "text")
	assert.Error(t, err)
	_, err = NewLogger(io.Discard, "info", "xml")
	assert.Error(t, err)
}
