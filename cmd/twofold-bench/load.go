package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errDone ends one virtual user's loop without counting an error: its
// pool of prepared tokens is used up, or no TOTP step is free before the
// deadline.
var errDone = errors.New("done")

// limits bound one measurement: whichever comes first.
type limits struct {
	Duration time.Duration // 0: no time bound
	Count    int64         // 0: no count bound
}

// result is one repetition of one flow at one concurrency.
type result struct {
	Ops       int64
	Errors    int64
	FirstErrs []string
	Elapsed   time.Duration
	Latencies []time.Duration // sorted
	// Server figures, when a --server-pid is given.
	CPUTime time.Duration
	PeakRSS int64 // bytes
	HasProc bool
	// The generator's own CPU and the database processes' (cpuMeter).
	LoadCPU, DBCPU time.Duration
}

func (r *result) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

func (r *result) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.Latencies)-1))
	return r.Latencies[i]
}

// CPUPerOp is the server's CPU time (user+system) per operation.
func (r *result) CPUPerOp() time.Duration { return r.perOp(r.CPUTime) }

func (r *result) perOp(d time.Duration) time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return d / time.Duration(r.Ops)
}

// drive runs vus virtual users, each calling op in a loop until the
// limits are reached, and times each call. An operation in flight when
// the time runs out is finished and counted (never cancelled: that would
// be a client-made error), and the elapsed time includes it.
func drive(ctx context.Context, vus int, lim limits, proc *procWatch, meter *cpuMeter, op func(ctx context.Context, vu int) error) *result {
	res := &result{}
	var claimed atomic.Int64
	var mu sync.Mutex
	lat := make([][]time.Duration, vus)
	var deadline time.Time
	start := time.Now()
	if lim.Duration > 0 {
		deadline = start.Add(lim.Duration)
	}
	if proc != nil {
		proc.begin()
	}
	if meter != nil {
		meter.begin()
	}
	var wg sync.WaitGroup
	for vu := range vus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					return
				}
				if lim.Count > 0 && claimed.Add(1) > lim.Count {
					return
				}
				vctx := context.WithValue(ctx, deadlineKey{}, deadline)
				t0 := time.Now()
				err := op(vctx, vu)
				d := time.Since(t0)
				if errors.Is(err, errDone) {
					return
				}
				if err != nil {
					mu.Lock()
					res.Errors++
					if len(res.FirstErrs) < 5 {
						res.FirstErrs = append(res.FirstErrs, err.Error())
					}
					mu.Unlock()
					continue
				}
				lat[vu] = append(lat[vu], d)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if meter != nil {
		res.LoadCPU, res.DBCPU = meter.end()
	}
	if proc != nil {
		res.CPUTime, res.PeakRSS, res.HasProc = proc.end()
	}
	for _, l := range lat {
		res.Latencies = append(res.Latencies, l...)
	}
	slices.Sort(res.Latencies)
	res.Ops = int64(len(res.Latencies))
	return res
}

type deadlineKey struct{}

// deadlineOf is the time bound of the current measurement (zero: none).
func deadlineOf(ctx context.Context) time.Time {
	t, _ := ctx.Value(deadlineKey{}).(time.Time)
	return t
}

// procWatch reads a local server's CPU time and resident memory from /proc.
type procWatch struct {
	pid      int
	cpu0     time.Duration
	stop     chan struct{}
	done     chan struct{}
	peak     atomic.Int64
	resetHWM bool
}

func newProcWatch(pid int) (*procWatch, error) {
	p := &procWatch{pid: pid}
	if _, err := p.cpu(); err != nil {
		return nil, fmt.Errorf("--server-pid %d: %w", pid, err)
	}
	return p, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func (p *procWatch) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parens.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// status reads a kB field of /proc/PID/status, in bytes.
func (p *procWatch) status(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n * 1024
		}
	}
	return 0
}

// begin resets the kernel's peak-RSS mark when allowed (clear_refs 5),
// and samples VmRSS every 20 ms as well.
func (p *procWatch) begin() {
	p.cpu0, _ = p.cpu()
	p.resetHWM = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid), []byte("5"), 0) == nil
	p.peak.Store(p.status("VmRSS"))
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				if v := p.status("VmRSS"); v > p.peak.Load() {
					p.peak.Store(v)
				}
			}
		}
	}()
}

func (p *procWatch) end() (time.Duration, int64, bool) {
	close(p.stop)
	<-p.done
	c, err := p.cpu()
	if err != nil {
		return 0, 0, false
	}
	peak := p.peak.Load()
	if p.resetHWM {
		peak = max(peak, p.status("VmHWM"))
	}
	return c - p.cpu0, peak, true
}
