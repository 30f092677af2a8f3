package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/store/sqlstore"
)

// cpuRate runs fn on every core (GOMAXPROCS workers) for d and returns
// calls per second across them: the machine's ceiling for that work. A
// first run of d/2 is not counted: the server it is compared with works
// in a steady state, and argon2id's first calls in a process are slow
// (its 19 MiB buffers come fresh from the kernel until the heap has
// grown): 31/s measured over 0.3 s, 76/s over 1 s, 83/s over 3 s.
func cpuRate(d time.Duration, fn func() error) (float64, error) {
	if _, err := countRate(d/2, fn); err != nil {
		return 0, err
	}
	return countRate(d, fn)
}

// countRate is one timed run of cpuRate.
func countRate(d time.Duration, fn func() error) (float64, error) {
	workers := runtime.GOMAXPROCS(0)
	var n atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := fn(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// idTokenPayload is about the size of a Twofold ID token's signing input.
var idTokenPayload = []byte(strings.Repeat("x", 600))

func rs256Rate(d time.Duration) (float64, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return 0, err
	}
	return cpuRate(d, func() error {
		h := sha256.Sum256(idTokenPayload)
		_, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
		return err
	})
}

func es256Rate(d time.Duration) (float64, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, err
	}
	return cpuRate(d, func() error {
		h := sha256.Sum256(idTokenPayload)
		_, err := ecdsa.SignASN1(rand.Reader, k, h[:])
		return err
	})
}

// argon2Rate is argon2id verifications/s with the server's parameters,
// through the server's own Hasher.
func argon2Rate(d time.Duration, p accounts.Argon2Params) (float64, error) {
	h := accounts.Hasher{Params: p}
	phc, err := h.Hash("bench password 1234")
	if err != nil {
		return 0, err
	}
	return cpuRate(d, func() error {
		ok, _, err := h.Verify("bench password 1234", phc)
		if err == nil && !ok {
			err = fmt.Errorf("argon2id: the password did not verify")
		}
		return err
	})
}

// bareBody is the bare handler's answer: static JSON of discovery's size.
var bareBody = []byte(`{"issuer":"http://localhost:8080","padding":"` + strings.Repeat("x", 1800) + `"}`)

// bareEnv makes this binary (or the test binary) the bare server only:
// it listens on loopback, prints its address and serves until its
// standard input closes, i.e. until the parent is done with it or dies.
const bareEnv = "TWOFOLD_BENCH_BARE_SERVER"

// serveBare is the child's whole life when bareEnv is set.
func serveBare() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare server:", err)
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(bareBody)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// bareServer starts the bare handler in a process of its own, as the
// server under test is: a handler inside the generator's process would
// share its scheduler and skip the cross-process wake-ups every real
// request pays, which at low concurrency is most of a round trip.
func bareServer(ctx context.Context) (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), bareEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("bare server: %w", err)
	}
	stop := func() { _ = stdin.Close(); _ = cmd.Wait() }
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("bare server: no address: %w", err)
	}
	return "http://" + strings.TrimSpace(addr), stop, nil
}

func bareHTTPRate(ctx context.Context, vus int, d time.Duration) (float64, error) {
	base, stop, err := bareServer(ctx)
	if err != nil {
		return 0, err
	}
	defer stop()
	t := newTarget(base, &Fixture{}, vus)
	res := drive(ctx, vus, limits{Duration: d}, nil, nil, func(ctx context.Context, _ int) error {
		_, err := t.get(ctx, "/", http.StatusOK)
		return err
	})
	if res.Errors > 0 {
		return 0, fmt.Errorf("bare handler: %d errors: %v", res.Errors, res.FirstErrs)
	}
	return res.OpsPerSec(), nil
}

// insertRate is committed single-row INSERTs/s (one statement, autocommit)
// with vus concurrent writers, on a scratch table of the given database
// opened the way the server opens it (SQLite: WAL, synchronous=NORMAL,
// busy_timeout; PostgreSQL: synchronous_commit as configured).
func insertRate(ctx context.Context, databaseURL string, vus int, d time.Duration) (float64, error) {
	s, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	db := s.DB()
	table := "twofold_bench_insert_" + randomHex(4)
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (id TEXT PRIMARY KEY, at TIMESTAMP NOT NULL, data TEXT NOT NULL)`); err != nil {
		return 0, err
	}
	defer func() { _, _ = db.ExecContext(context.Background(), `DROP TABLE `+table) }()
	q := db.Rebind(`INSERT INTO ` + table + ` (id, at, data) VALUES (?, ?, ?)`)
	data := strings.Repeat("d", 600) // about a stored token request
	res := drive(ctx, vus, limits{Duration: d}, nil, nil, func(ctx context.Context, _ int) error {
		_, err := db.ExecContext(ctx, q, randomHex(16), time.Now().UTC(), data)
		return err
	})
	if res.Errors > 0 {
		return 0, fmt.Errorf("inserts: %d errors: %v", res.Errors, res.FirstErrs)
	}
	return res.OpsPerSec(), nil
}

// scratchSQLite is a fresh SQLite file beside dir's files (same disk).
func scratchSQLite(dir string) (string, func(), error) {
	d, err := os.MkdirTemp(dir, "twofold-bench-")
	if err != nil {
		return "", nil, err
	}
	return "sqlite:" + filepath.Join(d, "insert.db"), func() { _ = os.RemoveAll(d) }, nil
}

// machineBounds are the CPU bounds, measured once per run.
type machineBounds struct {
	RS256, ES256, Argon2 float64
}

func measureCPUBounds(d time.Duration, p accounts.Argon2Params) (machineBounds, error) {
	var b machineBounds
	var err error
	if b.RS256, err = rs256Rate(d); err != nil {
		return b, err
	}
	if b.ES256, err = es256Rate(d); err != nil {
		return b, err
	}
	if b.Argon2, err = argon2Rate(d, p); err != nil {
		return b, err
	}
	return b, nil
}

// concBounds are the bounds that depend on concurrency.
type concBounds struct {
	HTTP           float64
	SQLiteInsert   float64
	PostgresInsert float64 // 0 without --postgres-url
}
