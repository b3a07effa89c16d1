package harness

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

func (r *runner) completed() int64 {
	phase, _ := r.tally()
	return phase.Completed()
}

// progress shows the workload's progress until stop is closed: a status
// line rewritten in place on a terminal, periodic log lines otherwise.
func (r *runner) progress(stop <-chan struct{}) {
	if r.cfg.Progress == nil && r.cfg.Terminal {
		return
	}
	tick := time.NewTicker(r.cfg.ProgressInterval)
	defer tick.Stop()
	lastN, lastT := int64(0), r.start
	for {
		select {
		case <-stop:
			if r.cfg.Terminal {
				r.statusLine(lastN, lastT)
				fmt.Fprintln(r.cfg.Progress)
			}
			return
		case <-tick.C:
			if r.cfg.Terminal {
				lastN, lastT = r.statusLine(lastN, lastT)
			} else {
				lastN, lastT = r.logLine(lastN, lastT)
			}
		}
	}
}

func (r *runner) faults() string {
	if a := r.active.list(); len(a) > 0 {
		return strings.Join(a, ",")
	}
	return "none"
}

func (r *runner) rate(lastN int64, lastT time.Time) (float64, int64, time.Time) {
	now := time.Now()
	n := r.completed()
	d := now.Sub(lastT).Seconds()
	var rate float64
	if d > 0 {
		rate = float64(n-lastN) / d
	}
	return rate, n, now
}

// statusLine rewrites the terminal's current line.
func (r *runner) statusLine(lastN int64, lastT time.Time) (int64, time.Time) {
	rate, n, now := r.rate(lastN, lastT)
	elapsed := now.Sub(r.start).Truncate(time.Second)
	phase, _ := r.tally()
	fmt.Fprintf(r.cfg.Progress, "\r\x1b[K%v/%v  %.0f ops/s  ok %d  fail %d  info %d  faults: %s",
		elapsed, r.cfg.TimeLimit, rate, phase.Ok, phase.Fail, phase.Info, r.faults())
	return n, now
}

// logLine writes one progress line through slog.
func (r *runner) logLine(lastN int64, lastT time.Time) (int64, time.Time) {
	rate, n, now := r.rate(lastN, lastT)
	phase, _ := r.tally()
	slog.Info("progress",
		"elapsed", now.Sub(r.start).Truncate(time.Second), "limit", r.cfg.TimeLimit,
		"ops/s", fmt.Sprintf("%.1f", rate),
		"ok", phase.Ok, "fail", phase.Fail, "info", phase.Info,
		"faults", r.faults())
	return n, now
}
