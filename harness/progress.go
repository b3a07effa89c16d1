package harness

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

func (r *runner) completed() int64 {
	return r.cnt.ok.Load() + r.cnt.fail.Load() + r.cnt.info.Load()
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
	fmt.Fprintf(r.cfg.Progress, "\r\x1b[K%v/%v  %.0f ops/s  ok %d  fail %d  info %d  faults: %s",
		elapsed, r.cfg.TimeLimit, rate, r.cnt.ok.Load(), r.cnt.fail.Load(), r.cnt.info.Load(), r.faults())
	return n, now
}

// logLine writes one progress line through slog.
func (r *runner) logLine(lastN int64, lastT time.Time) (int64, time.Time) {
	rate, n, now := r.rate(lastN, lastT)
	slog.Info("progress",
		"elapsed", now.Sub(r.start).Truncate(time.Second), "limit", r.cfg.TimeLimit,
		"ops/s", fmt.Sprintf("%.1f", rate),
		"ok", r.cnt.ok.Load(), "fail", r.cnt.fail.Load(), "info", r.cnt.info.Load(),
		"faults", r.faults())
	return n, now
}
