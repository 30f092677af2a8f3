package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twofold-idp/twofold/accounts"
	"github.com/twofold-idp/twofold/store/sqlstore"
)

type runOptions struct {
	URL            string
	Fixture        string
	Flows          []string
	Concurrency    []int
	Reps           int
	Duration       time.Duration
	Warmup         time.Duration
	Count          int64
	ServerPID      int
	DatabaseURL    string
	PostgresURL    string
	BoundsDuration time.Duration
	NoBounds       bool
	CPUProfile     string
	JSON           string
	Argon2         accounts.Argon2Params
}

func runCmd(stdout io.Writer) *cobra.Command {
	var o runOptions
	var conc, flows string
	cmd := &cobra.Command{
		Use:   "run --url URL --fixture bench.json [--server-pid PID]",
		Short: "Drive a running server through every flow and print each as a ratio of this machine's bound",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Concurrency, err = parseInts(conc); err != nil {
				return fmt.Errorf("--concurrency: %w", err)
			}
			o.Flows = strings.Split(flows, ",")
			return runBench(cmd.Context(), stdout, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.URL, "url", "http://localhost:8080", "the server's issuer URL")
	fl.StringVar(&o.Fixture, "fixture", "bench.json", "the file setup wrote")
	fl.StringVar(&flows, "flows", "all", "comma-separated flows: "+strings.Join(flowNames(), ","))
	fl.StringVar(&conc, "concurrency", "1,8,32,64", "virtual users, comma-separated levels")
	fl.IntVar(&o.Reps, "reps", 4, "repetitions per flow and level (median, min–max); even, so that each order of the flows runs as often")
	fl.DurationVar(&o.Duration, "duration", 3*time.Second, "time bound of each repetition (0: none)")
	fl.DurationVar(&o.Warmup, "warmup", time.Second, "before each level, each flow runs this long uncounted (its errors still fail the run)")
	fl.Int64Var(&o.Count, "count", 0, "operation bound of each repetition (0: none)")
	fl.IntVar(&o.ServerPID, "server-pid", 0, "pid of a local server: CPU per operation and peak RSS from /proc")
	fl.StringVar(&o.DatabaseURL, "database-url", envOr("TWOFOLD_DATABASE_URL", "sqlite:twofold.db"), "the server's database: its insert bound (scratch table or file beside it)")
	fl.StringVar(&o.PostgresURL, "postgres-url", "", "also measure PostgreSQL inserts here when the server runs on SQLite")
	fl.DurationVar(&o.BoundsDuration, "bounds-duration", time.Second, "time for each bound measurement")
	fl.BoolVar(&o.NoBounds, "no-bounds", false, "skip the machine bounds")
	fl.StringVar(&o.CPUProfile, "cpuprofile", "", "write the load generator's CPU profile here")
	fl.StringVar(&o.JSON, "json", "", "also write every figure as JSON here")
	argonFlags(cmd, &o.Argon2)
	return cmd
}

func flowNames() []string {
	var n []string
	for _, f := range allFlows() {
		n = append(n, f.name)
	}
	return n
}

func parseInts(s string) ([]int, error) {
	var out []int
	for p := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// row is one flow at one concurrency over its repetitions.
type row struct {
	Flow        string    `json:"flow"`
	What        string    `json:"what"`
	Concurrency int       `json:"concurrency"`
	OpsPerSec   []float64 `json:"ops_per_sec"` // per repetition
	Ops         int64     `json:"ops"`
	Errors      int64     `json:"errors"`
	FirstErrors []string  `json:"first_errors,omitempty"`
	P50ms       float64   `json:"p50_ms"`
	P90ms       float64   `json:"p90_ms"`
	P99ms       float64   `json:"p99_ms"`
	CPUmsPerOp  float64   `json:"server_cpu_ms_per_op,omitempty"`
	DBmsPerOp   float64   `json:"database_cpu_ms_per_op,omitempty"`
	LoadmsPerOp float64   `json:"generator_cpu_ms_per_op"`
	// Ceiling is cores / (server + database + generator CPU per op): what
	// this machine could do if that work were all there was.
	Ceiling    float64 `json:"machine_ceiling_per_sec,omitempty"`
	PeakRSSMiB float64 `json:"server_peak_rss_mib,omitempty"`
	BoundName  string  `json:"bound"`
	Bound      float64 `json:"bound_per_sec"`
	Ratio      float64 `json:"ratio"`
	TOTPStalls int64   `json:"totp_step_waits,omitempty"`
}

type report struct {
	When     time.Time     `json:"when"`
	URL      string        `json:"url"`
	Database string        `json:"database"`
	Machine  machineBounds `json:"cpu_bounds"`
	// LevelCPU are the CPU bounds measured around each concurrency level
	// (the mean of before and after), which the ratios use.
	LevelCPU map[int]machineBounds `json:"cpu_bounds_by_level"`
	// Gaps compare the TOTP sign-in with the password one, rep by rep.
	Gaps      []gap                 `json:"gaps,omitempty"`
	ConcBound map[int]concBounds    `json:"concurrency_bounds"`
	Argon2    accounts.Argon2Params `json:"argon2"`
	Rows      []row                 `json:"rows"`
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runBench(ctx context.Context, out io.Writer, o runOptions) error {
	fx, err := readFixture(o.Fixture)
	if err != nil {
		return err
	}
	if o.Fixture != "" && fx.Argon2 != (accounts.Argon2Params{}) && fx.Argon2 != o.Argon2 {
		fmt.Fprintf(out, "note: the fixture's users were hashed with %+v, the bound uses %+v\n", fx.Argon2, o.Argon2)
	}
	var selected []flow
	for _, f := range allFlows() {
		if slices.Contains(o.Flows, "all") || slices.Contains(o.Flows, f.name) {
			selected = append(selected, f)
		}
	}
	for _, name := range o.Flows {
		if name != "all" && !slices.Contains(flowNames(), name) {
			return fmt.Errorf("--flows: unknown flow %q (have %s)", name, strings.Join(flowNames(), ", "))
		}
	}
	if o.Reps < 1 {
		return fmt.Errorf("--reps must be at least 1")
	}
	if o.Duration == 0 && o.Count == 0 {
		return fmt.Errorf("set --duration or --count: a run must be bounded")
	}
	var proc *procWatch
	if o.ServerPID > 0 {
		if proc, err = newProcWatch(o.ServerPID); err != nil {
			return err
		}
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	dialect, dsn, err := sqlstore.ParseURL(o.DatabaseURL)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	pgURL := o.PostgresURL
	sqliteDir := "."
	if dialect == "postgres" {
		pgURL = o.DatabaseURL
	} else {
		sqliteDir = filepath.Dir(dsn)
	}

	rep := &report{When: time.Now().UTC(), URL: o.URL, Database: dialect, ConcBound: map[int]concBounds{},
		LevelCPU: map[int]machineBounds{}, Argon2: o.Argon2}
	var meter *cpuMeter
	if proc != nil {
		meter = &cpuMeter{}
		if dialect == "postgres" {
			meter.dbComm = "postgres"
		}
	}
	fmt.Fprintf(out, "twofold-bench: %s (%s), flows %s, concurrency %v, %d reps of %s", o.URL, dialect, strings.Join(o.Flows, ","), o.Concurrency, o.Reps, o.Duration)
	if o.Count > 0 {
		fmt.Fprintf(out, " or %d ops", o.Count)
	}
	fmt.Fprintln(out)

	if !o.NoBounds {
		fmt.Fprintf(out, "measuring CPU bounds (%s each, %d workers)...\n", o.BoundsDuration, maxProcs())
		if rep.Machine, err = measureCPUBounds(o.BoundsDuration, o.Argon2); err != nil {
			return fmt.Errorf("bounds: %w", err)
		}
		fmt.Fprintf(out, "bounds: RS256-2048 sign %.0f/s, ES256 sign %.0f/s, argon2id m=%d KiB t=%d p=%d verify %.1f/s\n",
			rep.Machine.RS256, rep.Machine.ES256, o.Argon2.MemoryKiB, o.Argon2.Iterations, o.Argon2.Parallelism, rep.Machine.Argon2)
	}

	t := newTarget(o.URL, fx, slices.Max(o.Concurrency))
	steps := stepsFile(o.Fixture)
	t.loadSteps(steps)
	defer func() { _ = t.saveSteps(steps) }()
	if _, err := t.get(ctx, "/.well-known/openid-configuration", 200); err != nil {
		return fmt.Errorf("the server does not answer: %w", err)
	}

	fmt.Fprintln(out)
	fmt.Fprintln(out, "| flow | VUs | ops/s median (min–max) | p50 ms | p90 ms | p99 ms | errors | server CPU ms/op | database CPU ms/op | generator CPU ms/op | machine ceiling /s | server peak RSS MiB | bound | bound /s | ratio |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
	failed := false
	for _, c := range o.Concurrency {
		var cb concBounds
		if !o.NoBounds {
			if cb.HTTP, err = bareHTTPRate(ctx, c, o.BoundsDuration); err != nil {
				return err
			}
			url, cleanup, err := scratchSQLite(sqliteDir)
			if err != nil {
				return err
			}
			cb.SQLiteInsert, err = insertRate(ctx, url, c, o.BoundsDuration)
			cleanup()
			if err != nil {
				return fmt.Errorf("sqlite insert bound: %w", err)
			}
			if pgURL != "" {
				if cb.PostgresInsert, err = insertRate(ctx, pgURL, c, o.BoundsDuration); err != nil {
					return fmt.Errorf("postgres insert bound: %w", err)
				}
			}
			rep.ConcBound[c] = cb
		}
		// CPU bounds drift with what else the machine does: measure them
		// again after this level's flows and use the mean. The flows take
		// turns, repetition by repetition, so the drift falls on each alike
		// and two flows of one level can be compared rep by rep (use an
		// even --reps: each order then runs as often as the other).
		level := make([]row, len(selected))
		acc := make([]levelAcc, len(selected))
		lim := limits{Duration: o.Duration, Count: o.Count}
		for i, f := range selected {
			level[i] = row{Flow: f.name, What: f.what, Concurrency: c, BoundName: f.bound}
		}
		// The level's first repetition ran up to half as fast as the
		// rest (a server idle during the bounds: its pool's connections
		// and their prepared statements, its heap): warm every flow up
		// first, uncounted.
		if o.Warmup > 0 {
			for i, f := range selected {
				op, err := f.prepare(ctx, t, c, limits{Duration: o.Warmup})
				if err != nil {
					return fmt.Errorf("%s: prepare: %w", f.name, err)
				}
				res := drive(ctx, c, limits{Duration: o.Warmup}, nil, nil, op)
				level[i].Errors += res.Errors
				level[i].FirstErrors = append(level[i].FirstErrors, res.FirstErrs...)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		for rep := range o.Reps {
			for k := range selected {
				i := turn(rep, k, len(selected))
				f := selected[i]
				r, a := &level[i], &acc[i]
				stalls0 := t.stalls.Load()
				op, err := f.prepare(ctx, t, c, lim)
				if err != nil {
					return fmt.Errorf("%s: prepare: %w", f.name, err)
				}
				res := drive(ctx, c, lim, proc, meter, op)
				r.TOTPStalls += t.stalls.Load() - stalls0
				r.OpsPerSec = append(r.OpsPerSec, res.OpsPerSec())
				r.Ops += res.Ops
				r.Errors += res.Errors
				r.FirstErrors = append(r.FirstErrors, res.FirstErrs...)
				a.lat = append(a.lat, res.Latencies...)
				a.load = append(a.load, ms(res.perOp(res.LoadCPU)))
				if meter != nil && meter.dbComm != "" {
					a.db = append(a.db, ms(res.perOp(res.DBCPU)))
				}
				if res.HasProc {
					a.cpu = append(a.cpu, ms(res.CPUPerOp()))
					r.PeakRSSMiB = max(r.PeakRSSMiB, float64(res.PeakRSS)/(1<<20))
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		for i := range level {
			r, a := &level[i], &acc[i]
			slices.Sort(a.lat)
			q := func(p float64) float64 {
				if len(a.lat) == 0 {
					return 0
				}
				return ms(a.lat[int(p*float64(len(a.lat)-1))])
			}
			r.P50ms, r.P90ms, r.P99ms = q(0.50), q(0.90), q(0.99)
			r.CPUmsPerOp, r.DBmsPerOp, r.LoadmsPerOp = median(a.cpu), median(a.db), median(a.load)
			if r.CPUmsPerOp > 0 {
				r.Ceiling = float64(cores()) * 1000 / (r.CPUmsPerOp + r.DBmsPerOp + r.LoadmsPerOp)
			}
			if r.Errors > 0 {
				failed = true
			}
		}
		lb := rep.Machine
		if !o.NoBounds {
			after, err := measureCPUBounds(o.BoundsDuration, o.Argon2)
			if err != nil {
				return fmt.Errorf("bounds: %w", err)
			}
			lb = machineBounds{RS256: (lb.RS256 + after.RS256) / 2, ES256: (lb.ES256 + after.ES256) / 2, Argon2: (lb.Argon2 + after.Argon2) / 2}
			rep.LevelCPU[c] = lb
			// The next level starts from these.
			rep.Machine = after
		}
		for _, r := range level {
			r.Bound = boundFor(r.BoundName, dialect, lb, cb)
			if r.Bound > 0 {
				r.Ratio = median(r.OpsPerSec) / r.Bound
			}
			rep.Rows = append(rep.Rows, r)
			printRow(out, r)
			for _, e := range r.FirstErrors[:min(3, len(r.FirstErrors))] {
				fmt.Fprintf(out, "|   ↳ error | | %s |\n", strings.ReplaceAll(e, "|", "/"))
			}
		}
		if g, ok := pairedGap(level, "login_totp", "login"); ok {
			rep.Gaps = append(rep.Gaps, g)
		}
	}
	for _, g := range rep.Gaps {
		fmt.Fprintf(out, "\n%s against %s at %d VUs, rep by rep: median %+.1f %% (%s)", g.Flow, g.Base, g.Concurrency, g.Median, g.fmtPairs())
	}
	if len(rep.Gaps) > 0 {
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out)
	if !o.NoBounds {
		fmt.Fprintln(out, "| VUs | RS256 sign/s | ES256 sign/s | argon2id verify/s | bare net/http GET /s | SQLite inserts/s | PostgreSQL inserts/s |")
		fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|")
		for _, c := range o.Concurrency {
			cb := rep.ConcBound[c]
			pg := "—"
			if cb.PostgresInsert > 0 {
				pg = fmt.Sprintf("%.0f", cb.PostgresInsert)
			}
			lb := rep.LevelCPU[c]
			fmt.Fprintf(out, "| %d | %.0f | %.0f | %.1f | %.0f | %.0f | %s |\n", c, lb.RS256, lb.ES256, lb.Argon2, cb.HTTP, cb.SQLiteInsert, pg)
		}
		fmt.Fprintln(out)
		fmt.Fprintln(out, "CPU bounds per level: the mean of one measurement before and one after the level's flows.")
		fmt.Fprintln(out, "bounds: http = bare net/http handler, static JSON, this load generator; insert = committed single-row INSERTs of the server's database at the same concurrency;")
		fmt.Fprintln(out, "client_credentials is bounded by min(http, insert), its JWT variants by min(signature, insert, http); refresh by the ID token signature; logins by one argon2id verification each.")
	}
	if o.JSON != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.JSON, b, 0o644); err != nil {
			return err
		}
	}
	if failed {
		return errFailed
	}
	return nil
}

// turn is the flow that runs k-th in repetition rep of n flows: every
// other repetition runs them in reverse order (A B, B A, …), because a
// flow inherits the state of the one before it (a heap grown by sign-ins,
// say), and this spreads that over every flow.
func turn(rep, k, n int) int {
	if rep%2 == 1 {
		return n - 1 - k
	}
	return k
}

// levelAcc gathers one flow's measurements over a level's repetitions.
type levelAcc struct {
	lat           []time.Duration
	cpu, db, load []float64
}

// gap is how much slower (negative) or faster one flow ran than another
// of the same level, in per cent, for each repetition: the two ran one
// after the other, so the machine's drift between repetitions cancels.
type gap struct {
	Flow        string    `json:"flow"`
	Base        string    `json:"base"`
	Concurrency int       `json:"concurrency"`
	Pairs       []float64 `json:"per_rep_percent"`
	Median      float64   `json:"median_percent"`
}

func (g gap) fmtPairs() string {
	s := make([]string, len(g.Pairs))
	for i, p := range g.Pairs {
		s[i] = fmt.Sprintf("%+.1f", p)
	}
	return strings.Join(s, ", ")
}

// pairedGap compares flow with base when both ran at this level.
func pairedGap(level []row, flow, base string) (gap, bool) {
	i := slices.IndexFunc(level, func(r row) bool { return r.Flow == flow })
	j := slices.IndexFunc(level, func(r row) bool { return r.Flow == base })
	if i < 0 || j < 0 || len(level[i].OpsPerSec) != len(level[j].OpsPerSec) {
		return gap{}, false
	}
	g := gap{Flow: flow, Base: base, Concurrency: level[i].Concurrency}
	for k, v := range level[i].OpsPerSec {
		b := level[j].OpsPerSec[k]
		if b <= 0 {
			return gap{}, false // a repetition that did nothing: no pair k
		}
		g.Pairs = append(g.Pairs, 100*(v/b-1))
	}
	if len(g.Pairs) == 0 {
		return gap{}, false
	}
	g.Median = median(g.Pairs)
	return g, true
}

func boundFor(name, dialect string, m machineBounds, c concBounds) float64 {
	insert := c.SQLiteInsert
	if dialect == "postgres" {
		insert = c.PostgresInsert
	}
	switch name {
	case boundHTTP:
		return c.HTTP
	case boundArgon2:
		return m.Argon2
	case boundInsert:
		return insert
	case boundInsertCC:
		return insertHTTP(insert, c.HTTP)
	case boundCCRS256:
		return min(m.RS256, insertHTTP(insert, c.HTTP))
	case boundCCES256:
		return min(m.ES256, insertHTTP(insert, c.HTTP))
	case boundRS256:
		return m.RS256
	case boundES256:
		return m.ES256
	}
	return 0
}

// insertHTTP is min(insert, http), or http when no insert bound was
// measured.
func insertHTTP(insert, httpRate float64) float64 {
	if insert == 0 {
		return httpRate
	}
	return min(insert, httpRate)
}

func printRow(out io.Writer, r row) {
	cpu, dbc, ceil, rss, bound, ratio := "—", "—", "—", "—", "—", "—"
	if r.CPUmsPerOp > 0 {
		cpu = fmt.Sprintf("%.3f", r.CPUmsPerOp)
		ceil = num(r.Ceiling)
	}
	if r.DBmsPerOp > 0 {
		dbc = fmt.Sprintf("%.3f", r.DBmsPerOp)
	}
	if r.PeakRSSMiB > 0 {
		rss = fmt.Sprintf("%.0f", r.PeakRSSMiB)
	}
	if r.Bound > 0 {
		bound, ratio = fmt.Sprintf("%.0f", r.Bound), fmt.Sprintf("%.2f", r.Ratio)
	}
	lo, hi := slices.Min(r.OpsPerSec), slices.Max(r.OpsPerSec)
	name := r.Flow
	if r.TOTPStalls > 0 {
		name += fmt.Sprintf(" (%d waits for a TOTP step)", r.TOTPStalls)
	}
	fmt.Fprintf(out, "| %s | %d | %s (%s–%s) | %.2f | %.2f | %.2f | %d | %s | %s | %.3f | %s | %s | %s | %s | %s |\n",
		name, r.Concurrency, num(median(r.OpsPerSec)), num(lo), num(hi), r.P50ms, r.P90ms, r.P99ms, r.Errors, cpu, dbc, r.LoadmsPerOp, ceil, rss, r.BoundName, bound, ratio)
}

// num prints a rate with sensible precision.
func num(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
