package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/provider/providertest"
	"github.com/twofold-idp/twofold/store"
	"github.com/twofold-idp/twofold/store/sqlstore"
	"github.com/twofold-idp/twofold/store/sqlstore/sqltest"
)

// TestMain lets the test binary be the bare server, as the real binary
// is when run re-executes itself for the HTTP bound.
func TestMain(m *testing.M) {
	if os.Getenv(bareEnv) != "" {
		os.Exit(serveBare())
	}
	os.Exit(m.Run())
}

// benchArgon is providertest's argon2id cost (m=8 MiB, t=1, p=1): the
// bench's users are hashed with it, so no sign-in rehashes.
var benchArgon = accounts.Argon2Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}

// benchEnv starts a provider on SQLite and creates the bench's clients,
// 4 users and totpUsers TOTP users with setup, in the fixture it returns.
func benchEnv(t *testing.T, totpUsers int) (env *providertest.Env, dir, fixture string, fx *Fixture) {
	t.Helper()
	env = providertest.Start(t, "sqlite", providertest.Options{})
	dir = t.TempDir()
	fixture = filepath.Join(dir, "bench.json")
	fx, err := setup(context.Background(), setupOptions{DatabaseURL: env.DBURL, SecretsKey: base64.StdEncoding.EncodeToString(env.Key),
		Users: 4, TOTPUsers: totpUsers, Out: fixture, Argon2: benchArgon})
	require.NoError(t, err)
	return env, dir, fixture, fx
}

// TestRunEveryFlow starts a provider on SQLite, creates the bench's users
// and clients with setup, and runs every flow with 2 virtual users for a
// short while: no errors, and operations counted. No timing is asserted.
func TestRunEveryFlow(t *testing.T) {
	env, dir, fixture, fx := benchEnv(t, 300)
	require.Len(t, fx.TOTP, 300)
	argon, ctx := benchArgon, context.Background()
	var err error

	var out bytes.Buffer
	jsonOut := filepath.Join(dir, "report.json")
	err = runBench(ctx, &out, runOptions{
		URL: env.URL, Fixture: fixture, Flows: []string{"all"}, Concurrency: []int{2}, Reps: 1,
		Duration: 600 * time.Millisecond, ServerPID: os.Getpid(), DatabaseURL: env.DBURL,
		BoundsDuration: 100 * time.Millisecond, JSON: jsonOut, Argon2: argon,
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)

	b, err := os.ReadFile(jsonOut)
	require.NoError(t, err)
	var rep report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Rows, len(allFlows()))
	bounds := map[string]float64{}
	for _, r := range rep.Rows {
		assert.Zero(t, r.Errors, "%s: %v", r.Flow, r.FirstErrors)
		assert.Positive(t, r.Ops, "%s counted no operations", r.Flow)
		assert.Positive(t, r.Bound, "%s has a bound", r.Flow)
		bounds[r.Flow] = r.Bound
	}
	assert.Positive(t, rep.Machine.Argon2)
	lb := rep.LevelCPU[2]
	assert.Positive(t, lb.Argon2, "the level's CPU bounds are recorded")
	for _, r := range rep.Rows {
		assert.Positive(t, r.Ceiling, "%s: the machine ceiling needs the server's CPU per op", r.Flow)
	}
	// A JWT is bounded by its signature as well as by what bounds an
	// opaque token.
	for flow, sign := range map[string]float64{"client_credentials_jwt_rs256": lb.RS256, "client_credentials_jwt_es256": lb.ES256} {
		assert.Equal(t, min(sign, bounds["client_credentials"]), bounds[flow], flow)
	}
	assert.NotContains(t, out.String(), "not measured")
	// Both sign-ins ran at this level: their gap is reported rep by rep.
	require.Len(t, rep.Gaps, 1)
	assert.Equal(t, "login_totp", rep.Gaps[0].Flow)
	assert.Len(t, rep.Gaps[0].Pairs, 1)
	assert.Contains(t, out.String(), "login_totp against login at 2 VUs, rep by rep")

	// A second run straight after must not replay a TOTP step: the steps
	// used are kept beside the fixture. Its warm-up signs in too (with
	// steps of its own) but is not counted.
	successes := func() int {
		events, err := env.Store.ListAudit(ctx, store.AuditFilter{})
		require.NoError(t, err)
		n := 0
		for _, e := range events {
			if e.Type == "factor.success" {
				n++
			}
		}
		return n
	}
	before := successes()
	out.Reset()
	err = runBench(ctx, &out, runOptions{
		URL: env.URL, Fixture: fixture, Flows: []string{"login_totp"}, Concurrency: []int{2}, Reps: 1,
		Count: 4, Duration: 600 * time.Millisecond, Warmup: 300 * time.Millisecond, DatabaseURL: env.DBURL,
		NoBounds: true, Argon2: argon, JSON: jsonOut,
	})
	t.Log("\n" + out.String())
	require.NoError(t, err)
	b, err = os.ReadFile(jsonOut)
	require.NoError(t, err)
	rep = report{}
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Rows, 1)
	assert.Zero(t, rep.Rows[0].Errors, "%v", rep.Rows[0].FirstErrors)
	assert.EqualValues(t, 4, rep.Rows[0].Ops, "only the repetition's sign-ins are counted")
	assert.Greater(t, successes()-before, 4, "the warm-up signed in too")
}

// TestWarmupErrorsFailTheRun: errors met while warming up are reported
// and fail the run, though its operations are not counted. With a wrong
// password every sign-in fails; the repetition is bounded to 2, so more
// errors than that came from the warm-up.
func TestWarmupErrorsFailTheRun(t *testing.T) {
	env, dir, fixture, fx := benchEnv(t, 1)
	argon, ctx := benchArgon, context.Background()
	fx.Password = "not the password"
	b, err := json.Marshal(fx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(fixture, b, 0o600))

	jsonOut := filepath.Join(dir, "run.json")
	var out bytes.Buffer
	err = runBench(ctx, &out, runOptions{
		URL: env.URL, Fixture: fixture, Flows: []string{"login"}, Concurrency: []int{2}, Reps: 1,
		Count: 2, Warmup: 300 * time.Millisecond, DatabaseURL: env.DBURL, NoBounds: true, Argon2: argon, JSON: jsonOut,
	})
	t.Log("\n" + out.String())
	require.Error(t, err, "a run with errors fails")
	b, err = os.ReadFile(jsonOut)
	require.NoError(t, err)
	var rep report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Rows, 1)
	assert.Greater(t, rep.Rows[0].Errors, int64(2), "the warm-up's errors are kept")
	assert.LessOrEqual(t, rep.Rows[0].Ops, int64(2))
}

func TestPairedGap(t *testing.T) {
	rows := func(totp, pwd []float64) []row {
		return []row{{Flow: "login", Concurrency: 8, OpsPerSec: pwd}, {Flow: "discovery"}, {Flow: "login_totp", Concurrency: 8, OpsPerSec: totp}}
	}
	for _, tc := range []struct {
		name   string
		level  []row
		ok     bool
		pairs  []float64
		median float64
	}{
		{"rep by rep", rows([]float64{45, 60, 50}, []float64{50, 50, 50}), true, []float64{-10, 20, 0}, 0},
		{"even count", rows([]float64{48, 47}, []float64{50, 50}), true, []float64{-4, -6}, -5},
		{"a base rep of zero: no gap (pairs would shift)", rows([]float64{45, 60}, []float64{50, 0}), false, nil, 0},
		{"only zeros", rows([]float64{45}, []float64{0}), false, nil, 0},
		{"one flow missing", []row{{Flow: "login", OpsPerSec: []float64{1}}}, false, nil, 0},
		{"unequal reps", rows([]float64{45}, []float64{50, 50}), false, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, ok := pairedGap(tc.level, "login_totp", "login")
			require.Equal(t, tc.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, 8, g.Concurrency)
			assert.InDeltaSlice(t, tc.pairs, g.Pairs, 1e-9)
			assert.InDelta(t, tc.median, g.Median, 1e-9)
		})
	}
}

func TestTurn(t *testing.T) {
	var order [][]int
	for rep := range 4 {
		var o []int
		for k := range 3 {
			o = append(o, turn(rep, k, 3))
		}
		order = append(order, o)
	}
	assert.Equal(t, [][]int{{0, 1, 2}, {2, 1, 0}, {0, 1, 2}, {2, 1, 0}}, order)
}

// TestGrowAndClean seeds a small growth run on each database, marks part
// of it expired, and checks that the clean-up deletes exactly those rows.
func TestGrowAndClean(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range sqltest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			url := sqltest.URL(t, dialect)
			s, err := sqlstore.Open(ctx, url)
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Migrate(ctx)
			require.NoError(t, err)

			var out bytes.Buffer
			require.NoError(t, grow(ctx, &out, url, 20, 50, "twofold-bench-growth"))
			assert.Contains(t, out.String(), "now 20 users, 50 oauth2_requests rows")
			out.Reset()
			require.NoError(t, clean(ctx, &out, url, "twofold-bench-growth", 30))
			assert.Contains(t, out.String(), "marked 30 rows expired")
			assert.Contains(t, out.String(), "clean-up deleted 30 expired rows")
			var left int
			require.NoError(t, s.DB().GetContext(ctx, &left, "SELECT count(*) FROM oauth2_requests"))
			assert.Equal(t, 20, left)
		})
	}
}
