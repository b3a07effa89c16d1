package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/kvnode/sim"
	"github.com/chaoskv/chaos/results"
)

// simStore stores simulated runs in the run store, beside chaos run's, so
// chaos serve lists them and their reports open the same way.
type simStore struct {
	root, name   string
	checkTimeout time.Duration
}

// save stores one simulated run: its record (every parameter the replay
// command needs, and the command itself), its history and its verdict go
// through results.Save, which draws the report chaos run draws. It
// returns the run's directory.
func (s *simStore) save(cfg sim.Config, res *sim.Result, replay string, start, end time.Time) (string, error) {
	params := results.Values{
		"backend":        "sim",
		"workload":       cfg.Workload,
		"nemesis":        cfg.Nemesis,
		"nodes":          cfg.Replicas,
		"replicas":       cfg.Replicas,
		"replication":    cfg.Protocol,
		"clients":        cfg.Clients,
		"keys":           cfg.Keys,
		"op-limit":       cfg.Ops,
		"snapshot-every": cfg.SnapshotEvery,
		"check-timeout":  s.checkTimeout.String(),
		"replay":         replay,
		"command":        strings.Join(os.Args, " "),
	}
	if sk := cfg.Schedule.ClockSkew; sk != 0 {
		params["clock-skew"] = sk.String()
	}
	if sp := cfg.Schedule.StrobePeriod; sp != 0 {
		params["strobe-period"] = sp.String()
	}
	if cfg.Schedule.MaxFaults > 0 {
		params["max-faults"] = cfg.Schedule.MaxFaults
	}
	if cfg.Schedule.FaultCap > 0 {
		params["fault-cap"] = cfg.Schedule.FaultCap.String()
	}
	// chaos check of the stored run rebuilds the checker from its record,
	// as it does for chaos run's runs.
	if res.Checker != nil {
		params["checker"] = res.Checker
	}
	end = end.UTC()
	t := results.Test{
		Name:       s.name,
		Start:      start.UTC(),
		End:        &end,
		Status:     results.StatusDone,
		Seed:       res.Seed,
		Parameters: params,
		Versions:   results.BuildVersions(),
	}
	sum := results.Summary{
		Valid:   res.Valid,
		Results: map[string]checker.Result{},
		Stats:   simStats(res),
	}
	// A run the simulator stopped at a safety violation was never checked:
	// its verdict is the simulator's alone.
	if res.Check.Checker != "" {
		sum.Results[res.Check.Checker] = res.Check
	}
	if len(res.Problems) > 0 {
		// What the simulator itself saw (a safety oracle firing, replicas
		// that diverged, final reads that never completed) is a verdict of
		// its own beside the history's.
		sum.Results["simulator"] = checker.Result{
			Checker:      "simulator",
			Valid:        checker.Invalid,
			AnomalyTypes: problemKinds(res),
			Anomalies:    map[string][]any{"problems": anySlice(res.Problems)},
			Summary:      strings.Join(res.Problems, "; "),
		}
	}
	run, err := results.Save(s.root, t, res.History, sum)
	if err != nil {
		return "", fmt.Errorf("store seed %d: %w", res.Seed, err)
	}
	return run.Dir, nil
}

// problemKinds are the failure kinds that come from the simulator's own
// problems rather than from the checker.
func problemKinds(res *sim.Result) []string {
	checked := res.Check.AnomalyTypes
	var out []string
	for _, k := range res.Failure() {
		if k != res.Check.Checker && !slices.Contains(checked, k) && k != res.Valid.String() {
			out = append(out, k)
		}
	}
	return out
}

func anySlice(xs []string) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// simStats are results.json's counters for a simulated run, named as
// chaos run names them where they mean the same.
func simStats(res *sim.Result) results.Values {
	var last int64
	nem := 0
	for i := range res.History {
		op := &res.History[i]
		last = max(last, op.Time)
		if op.Process == history.NemesisProcess {
			nem++
		}
	}
	st := results.Values{
		"ops":               len(res.History),
		"nemesis-ops":       nem,
		"invoked":           res.Ops,
		"ok":                res.Ok,
		"fail":              res.Fail,
		"info":              res.Info,
		"faults":            res.Faults,
		"history-span":      time.Duration(last).String(),
		"simulated-time":    res.Virtual.String(),
		"protocol-messages": res.Net.Sent,
	}
	if res.WorkloadEnd > 0 {
		st[results.WorkloadEndStat] = res.WorkloadEnd.Nanoseconds()
		st["availability"] = results.AnalyzeAvailability(res.History, res.WorkloadEnd.Nanoseconds())
	}
	return st
}
