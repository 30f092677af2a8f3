package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter reads, besides the server's own CPU (procWatch), the CPU of
// the other work each operation costs on this machine: the database's
// processes (PostgreSQL's backends; SQLite runs inside the server) and
// this load generator. With all three per operation, a flow's ceiling on
// this machine is cores / (server + database + generator) per op, which
// says whether the server or the machine is the limit.
type cpuMeter struct {
	dbComm string // process name of the database server, "" for none
	self0  time.Duration
	db0    time.Duration
}

func (m *cpuMeter) begin() {
	m.self0 = selfCPU()
	if m.dbComm != "" {
		m.db0 = commCPU(m.dbComm)
	}
}

// end returns the generator's and the database's CPU since begin.
func (m *cpuMeter) end() (load, db time.Duration) {
	load = selfCPU() - m.self0
	if m.dbComm != "" {
		db = commCPU(m.dbComm) - m.db0
	}
	return load, db
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// commCPU sums the CPU time of every process named comm, live children
// included (a PostgreSQL backend started during the run counts from its
// start, one that exited is lost: the pools keep theirs open).
func commCPU(comm string) time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var total time.Duration
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/comm")
		if err != nil || strings.TrimSpace(string(b)) != comm {
			continue
		}
		p := procWatch{}
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		p.pid = pid
		if c, err := p.cpu(); err == nil {
			total += c
		}
	}
	return total
}

// cores is how many CPUs the machine offers this run.
func cores() int { return runtime.NumCPU() }
