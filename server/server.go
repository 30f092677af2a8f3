// Package server is Twofold's HTTP shell: the mux every area mounts its
// routes on, the middleware every request passes (request id, access log,
// security headers, metrics), the health endpoints, and graceful shutdown.
//
// Routes:
//
//	GET /healthz  the process is alive
//	GET /readyz   the database answers
//	GET /metrics  Prometheus metrics
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server holds the routes and the shared middleware.
type Server struct {
	logger *slog.Logger
	mux    *http.ServeMux
	hsts   bool
	// clientIP is Options.ClientIP.
	clientIP func(r *http.Request) string

	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// Options configure New.
type Options struct {
	Logger *slog.Logger
	// HTTPS turns on Strict-Transport-Security (the issuer is https).
	HTTPS bool
	// Ready reports whether the server can serve: the database answers.
	Ready func(ctx context.Context) error
	// ClientIP gives the access log the client's address, which behind
	// trusted proxies is not the TCP peer (logged as "remote"); nil
	// logs the peer only.
	ClientIP func(r *http.Request) string
}

// New builds a Server with /healthz, /readyz and /metrics mounted.
func New(o Options) *Server {
	s := &Server{
		logger:   o.Logger,
		mux:      http.NewServeMux(),
		hsts:     o.HTTPS,
		clientIP: o.ClientIP,
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twofold_http_requests_total",
			Help: "HTTP requests served, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "twofold_http_request_duration_seconds",
			Help:    "HTTP request latency, by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.registry.MustRegister(s.requests, s.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if o.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := o.Ready(ctx); err != nil {
				s.logger.WarnContext(r.Context(), "not ready", "err", err)
				http.Error(w, "not ready: database unreachable", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	s.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	return s
}

// Registry is where other packages register their own metrics.
func (s *Server) Registry() prometheus.Registerer { return s.registry }

// Handle mounts h at a net/http pattern; the pattern is the route label
// of the metrics and the access log.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt, ok := r.Context().Value(routeKey{}).(*string); ok {
			*rt = pattern
		}
		h.ServeHTTP(w, r)
	}))
}

// HandleFunc is Handle for a function.
func (s *Server) HandleFunc(pattern string, h http.HandlerFunc) { s.Handle(pattern, h) }

type routeKey struct{}

// validRequestID accepts a caller's X-Request-Id only when it is short and
// plain, so it cannot forge log lines.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ServeHTTP runs the middleware, then the mux.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if !validRequestID.MatchString(id) {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	route := "unmatched"
	ctx := context.WithValue(r.Context(), requestIDKey{}, id)
	ctx = context.WithValue(ctx, routeKey{}, &route)
	r = r.WithContext(ctx)

	h := w.Header()
	h.Set("X-Request-Id", id)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	if s.hsts {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}

	// One response-writer wrapper measures for both the metrics and the
	// access log (promhttp's own would add two more per request).
	m := httpsnoop.CaptureMetrics(s.mux, w, r)
	if route != "unmatched" { // unmatched paths and methods are unbounded label values
		method := methodLabel(r.Method)
		s.requests.WithLabelValues(route, method, strconv.Itoa(m.Code)).Inc()
		s.duration.WithLabelValues(route, method).Observe(m.Duration.Seconds())
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs,
		slog.String("method", r.Method), slog.String("route", route), slog.String("path", r.URL.Path),
		slog.Int("status", m.Code), slog.Int64("bytes", m.Written),
		slog.Duration("duration", m.Duration), slog.String("remote", r.RemoteAddr))
	if s.clientIP != nil {
		attrs = append(attrs, slog.String("client", s.clientIP(r)))
	}
	s.logger.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// methodLabel lower-cases a method for the metrics without allocating
// for the ones the routes take.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet:
		return "get"
	case http.MethodPost:
		return "post"
	case http.MethodHead:
		return "head"
	}
	return strings.ToLower(m)
}

// Serve serves h on ln until ctx is done, then shuts down gracefully:
// the listener closes at once and requests in flight get up to grace to
// finish.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, grace time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing requests in flight", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
