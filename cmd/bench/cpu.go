package main

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// userHZ is the unit of Linux's /proc CPU times (USER_HZ, 100 on every
// architecture Go supports).
const userHZ = 100

// cpuSample is the CPU time every process on the host has used so far,
// the host's total and idle time, and its context switches, from /proc.
type cpuSample struct {
	procs       map[int]procTime
	total, idle uint64 // ticks
	switches    uint64
}

type procTime struct {
	name  string
	ticks uint64 // user + system
}

// CPUUse is what a load cost the host: the processes that used at least
// 1% of its time, by name (the cluster's services, Docker's proxy, this
// program), and its idle time, in CPU-seconds; and the host's context
// switches (/proc/stat's ctxt: every thread's, kernel threads included).
type CPUUse struct {
	HostSeconds     float64            `json:"host_seconds"`
	IdleSeconds     float64            `json:"idle_seconds"`
	ByProcess       map[string]float64 `json:"by_process"`
	ContextSwitches uint64             `json:"context_switches"`
}

// sampleCPU reads /proc; ok is false where there is none.
func sampleCPU() (s cpuSample, ok bool) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, false
	}
	line, rest, _ := bytes.Cut(stat, []byte("\n"))
	for l := range bytes.Lines(rest) {
		if v, ok := bytes.CutPrefix(l, []byte("ctxt ")); ok {
			s.switches, _ = strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return s, false
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		s.total += n
		if i == 3 || i == 4 { // idle, iowait
			s.idle += n
		}
	}
	s.procs = map[int]procTime{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // the process ended
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open {
			continue
		}
		rest := strings.Fields(string(b[close+1:]))
		if len(rest) < 13 {
			continue
		}
		utime, _ := strconv.ParseUint(rest[11], 10, 64)
		stime, _ := strconv.ParseUint(rest[12], 10, 64)
		pid, _ := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
		s.procs[pid] = procTime{name: string(b[open+1 : close]), ticks: utime + stime}
	}
	return s, true
}

// since is the use between an earlier sample a and s, counting the
// processes alive at both.
func (s cpuSample) since(a cpuSample) CPUUse {
	u := CPUUse{
		HostSeconds: float64(s.total-a.total) / userHZ,
		IdleSeconds: float64(s.idle-a.idle) / userHZ,
		ByProcess:   map[string]float64{},
	}
	if s.switches >= a.switches {
		u.ContextSwitches = s.switches - a.switches
	}
	for pid, p := range s.procs {
		if q, ok := a.procs[pid]; ok && q.name == p.name && p.ticks > q.ticks {
			u.ByProcess[p.name] += float64(p.ticks-q.ticks) / userHZ
		}
	}
	for name, v := range u.ByProcess {
		if v < u.HostSeconds/100 {
			delete(u.ByProcess, name)
		}
	}
	return u
}

// String lists the processes, most first.
func (u CPUUse) String() string {
	return u.list("CPU-seconds", 1, 1)
}

// PerRequest is the same use divided by the requests answered: the CPU
// budget of one request, in microseconds, so that loads of different
// rates compare (the host's share is what the load had, idle included).
func (u CPUUse) PerRequest(requests int64) string {
	if requests <= 0 {
		return "no request answered"
	}
	return u.list("CPU per request, µs,", 1e6/float64(requests), 0) +
		fmt.Sprintf("; %.1f context switches", float64(u.ContextSwitches)/float64(requests))
}

// list prints the host's, each process's and the idle CPU-seconds, times
// scale, with prec decimals, most first.
func (u CPUUse) list(head string, scale float64, prec int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s of the host's %.*f:", head, prec, u.HostSeconds*scale)
	for _, n := range u.names() {
		fmt.Fprintf(&sb, " %s %.*f,", n, prec, u.ByProcess[n]*scale)
	}
	fmt.Fprintf(&sb, " idle %.*f", prec, u.IdleSeconds*scale)
	return sb.String()
}

// names are the processes, most CPU first.
func (u CPUUse) names() []string {
	names := make([]string, 0, len(u.ByProcess))
	for n := range u.ByProcess {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(u.ByProcess[b], u.ByProcess[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return names
}
