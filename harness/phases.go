package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/harness/lifecycle"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/results"
)

// test is one run of Run: what its phases share.
type test struct {
	cfg     Config
	start   time.Time
	store   *results.Run
	log     *slog.Logger
	record  results.Test // test.json
	timings results.Timings
	out     *Outcome
	r       *runner

	cluster     *Cluster
	setupCalled bool // the backend may hold something to tear down
	collected   bool // node files are saved
	recClosed   bool
	ops         []history.Op // the history, once the recorder is closed
	notes       []string     // for results.json
	kills       *nemesis.KillReport
	finalOK     bool
	verdict     checker.Result
}

// Run executes one test. The error is non-nil for internal failures
// (a cluster that never became healthy, a store that cannot be written,
// a checker that crashed) and wraps ErrInterrupted when ctx ended first;
// otherwise the verdict is in the Outcome.
//
// A configuration that cannot start (see ErrConfig) returns before
// anything is created. From then on the phases run in order, each ending
// the test early with its error, and end always follows: it tears the
// cluster down and records the run's status, whichever phase stopped.
func Run(ctx context.Context, cfg Config) (out *Outcome, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	t, err := begin(cfg)
	if err != nil {
		return nil, err
	}
	defer func() { err = t.end(ctx, err) }()
	for _, phase := range []func(context.Context) error{t.openHistory, t.setup, t.run, t.heal, t.finalReads, t.check, t.storeResults} {
		if err := phase(ctx); err != nil {
			return t.out, err
		}
	}
	return t.out, nil
}

// begin creates the run's directory with a test.json saying it runs and
// points latest at it. Nothing exists to tear down yet when it fails.
func begin(cfg Config) (*test, error) {
	start := time.Now()
	store, err := results.Create(cfg.Store, cfg.Name, start)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	t := &test{
		cfg:   cfg,
		start: start,
		store: store,
		log:   slog.With("test", cfg.Name, "dir", store.Dir),
		record: results.Test{
			Name:       cfg.Name,
			Start:      start.UTC(),
			Status:     results.StatusRunning,
			Seed:       cfg.Seed,
			Parameters: cfg.parameters(),
			Versions:   results.BuildVersions(),
		},
		out: &Outcome{Valid: checker.Unknown, Dir: store.Dir},
	}
	t.record.Versions.Kvnode = cfg.KvnodeVersion
	if err := store.WriteJSON(results.TestFile, t.record); err != nil {
		return nil, err
	}
	// The run directory exists from here on: point latest at it so a
	// crashed or interrupted run is as easy to find as a finished one.
	if err := store.MarkLatest(); err != nil {
		return nil, err
	}
	return t, nil
}

// interrupted is the error of a phase that ctx ended.
func interrupted(ctx context.Context, phase string) error {
	return fmt.Errorf("%w during %s: %w", ErrInterrupted, phase, context.Cause(ctx))
}

// openHistory starts the recorder on the run's history file.
func (t *test) openHistory(context.Context) error {
	life, err := lifecycle.New(t.cfg.Workload.NewGenerator(t.cfg.Seed), t.cfg.Concurrency, lifecycle.Limits{
		Ops: t.cfg.OpLimit, Time: t.cfg.TimeLimit, FinalReads: t.cfg.FinalReadTimeout, Retry: finalRetry})
	if err != nil {
		return err
	}
	hf, err := t.store.CreateHistory()
	if err != nil {
		return err
	}
	t.r = &runner{cfg: t.cfg, life: life, runStart: t.start}
	t.r.rec = newRecorder(hf, t.start, t.cfg.FlushInterval, nil)
	return nil
}

// closeHistory stops the recorder and keeps the history it wrote; only
// the first call does anything.
func (t *test) closeHistory() error {
	if t.recClosed || t.r == nil {
		return nil
	}
	t.recClosed = true
	var err error
	t.ops, err = t.r.rec.close()
	return err
}

// setup creates the cluster, arms the nemesis (refusing a fault the
// cluster cannot inject now, not at its first turn in the schedule) and
// waits until the cluster is healthy. Its duration is timings.setup.
func (t *test) setup(ctx context.Context) error {
	cfg := t.cfg
	t.log.Info("setting up the cluster")
	t.setupCalled = true
	cl, err := cfg.Backend.Setup(ctx, t.store.Dir)
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, "setup")
		}
		return fmt.Errorf("set up the cluster: %w", err)
	}
	if cl == nil || cl.SUT == nil {
		return errors.New("set up the cluster: the backend returned no way to reach it")
	}
	t.cluster = cl
	t.r.sut = cl.SUT
	if len(cfg.Nemesis.Kinds) > 0 {
		if cl.Target == nil {
			return errors.New("set up the cluster: the backend cannot inject faults, but fault kinds were asked for")
		}
		ncfg := cfg.Nemesis
		ncfg.Seed = cfg.Seed
		if ncfg.Leaders == nil {
			ncfg.Leaders = cl.Leaders
		}
		if t.r.nem, err = nemesis.New(cl.Target, ncfg, t.r.recordNemesis); err != nil {
			return fmt.Errorf("nemesis: %w", err)
		}
		if err := nemesis.Preflight(ctx, cl.Target, cfg.Nemesis.Kinds); err != nil {
			if ctx.Err() != nil {
				return interrupted(ctx, "setup")
			}
			return fmt.Errorf("set up the cluster: %w", err)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.HealthyTimeout)
	err = cfg.Backend.WaitHealthy(hctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, "setup")
		}
		return fmt.Errorf("cluster did not become healthy within %v: %w", cfg.HealthyTimeout, err)
	}
	t.timings.Setup = results.Seconds(time.Since(t.start))
	t.log.Info("cluster healthy", "took", time.Since(t.start).Round(time.Millisecond))
	return nil
}

// run drives the workload's clients and the nemesis until the time or op
// limit. When the first operation was invoked is timings.first-op.
func (t *test) run(ctx context.Context) error {
	t.log.Info("running the workload", "time-limit", t.cfg.TimeLimit, "concurrency", t.cfg.Concurrency, "rate", t.cfg.Rate)
	t.r.main(ctx)
	if f := t.r.firstOp.Load(); f > 0 {
		t.timings.FirstOp = results.Seconds(time.Duration(f))
	}
	if ctx.Err() != nil {
		return interrupted(ctx, "the workload")
	}
	if t.r.nemErr != nil {
		t.notes = append(t.notes, fmt.Sprintf("the nemesis stopped early: %v", t.r.nemErr))
	}
	kills, killNote := t.r.killReport()
	if killNote != "" {
		t.notes = append(t.notes, killNote)
	}
	t.kills = kills
	return nil
}

// heal ends every fault and waits for the cluster to recover; a cluster
// that does not is a note, not an error: the final reads tell whether it
// serves.
func (t *test) heal(ctx context.Context) error {
	t.log.Info("healing")
	if t.r.nem != nil {
		if err := t.r.nem.HealAll(ctx); err != nil {
			if ctx.Err() != nil {
				return interrupted(ctx, "healing")
			}
			return fmt.Errorf("heal the cluster: %w", err)
		}
		// A safety net: whatever network fault the nemesis lost track of
		// ends here too.
		if err := t.cluster.Target.Heal(ctx); err != nil {
			if ctx.Err() != nil {
				return interrupted(ctx, "healing")
			}
			return fmt.Errorf("heal the cluster: %w", err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, t.cfg.RecoveryTimeout)
	err := t.cfg.Backend.WaitHealthy(rctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, "recovery")
		}
		t.notes = append(t.notes, fmt.Sprintf("cluster not healthy %v after healing: %v", t.cfg.RecoveryTimeout, err))
		t.log.Warn("cluster not healthy after healing", "err", err)
	}
	return nil
}

// finalReads performs the workload's final reads, then closes the history
// (nothing is recorded after them) and saves the nodes' files.
func (t *test) finalReads(ctx context.Context) error {
	t.log.Info("final reads")
	t.finalOK = t.r.finalReads(ctx)
	if ctx.Err() != nil {
		return interrupted(ctx, "final reads")
	}
	if !t.finalOK {
		t.notes = append(t.notes, fmt.Sprintf("final reads did not all succeed within %v: the cluster did not recover, so the verdict cannot be valid", t.cfg.FinalReadTimeout))
	}
	if err := t.closeHistory(); err != nil {
		return err
	}
	if err := t.cfg.Backend.Collect(ctx, t.store.Path(results.NodesDir)); err != nil {
		t.log.Warn("collect node files", "err", err)
		t.notes = append(t.notes, fmt.Sprintf("node files not collected: %v", err))
	}
	t.collected = true
	return nil
}

// check judges the history with the workload's checker and makes the
// outcome: its verdict, unknown at best when the final reads failed.
func (t *test) check(ctx context.Context) error {
	t.log.Info("checking", "ops", len(t.ops))
	chk := t.cfg.Workload.Checker()
	res, err := checker.Check(chk, t.ops, checker.Options{Timeout: t.cfg.CheckTimeout, Directory: t.store.Dir})
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, "checking")
		}
		return fmt.Errorf("check the history with %s: %w", chk.Name(), err)
	}
	if w := results.RateWarning(t.cfg.Rate, t.r.invoked(), t.r.end.Sub(t.r.start).Seconds()); w != "" {
		t.notes = append(t.notes, w)
		t.log.Warn(w)
	}
	valid := res.Valid
	if !t.finalOK {
		valid = checker.Merge(valid, checker.Unknown)
	}
	name := res.Checker
	if name == "" {
		name = chk.Name()
	}
	t.out.Valid = valid
	t.out.Summary = results.Summary{
		Valid:   valid,
		Results: map[string]checker.Result{name: res},
		Stats:   t.r.stats(t.ops),
		Notes:   t.notes,
	}
	if t.kills != nil {
		t.out.Summary.Stats["kills"] = *t.kills
	}
	return nil
}

// storeResults writes results.json and the report.
func (t *test) storeResults(context.Context) error {
	if err := t.store.WriteJSON(results.ResultsFile, t.out.Summary); err != nil {
		return err
	}
	t.record.Status = results.StatusDone
	return t.store.WriteReport(t.record, t.out.Summary, reportFiles(t.store.Dir))
}

// end runs after the phases on every path, with err the phase's error (or
// nil): it tears the cluster down, closes the history and records the
// run's end, status and timings in test.json. It returns err, or the first
// error of its own when err is nil.
func (t *test) end(ctx context.Context, err error) error {
	if terr := t.teardown(ctx); terr != nil && err == nil {
		err = terr
	}
	if cerr := t.closeHistory(); cerr != nil && err == nil {
		err = cerr
	}
	end := time.Now().UTC()
	t.record.End = &end
	if t.timings != (results.Timings{}) {
		t.record.Timings = &t.timings
		t.log.Info("timings", "setup-s", t.timings.Setup, "first-op-s", t.timings.FirstOp, "teardown-s", t.timings.Teardown)
	}
	switch {
	case errors.Is(err, ErrInterrupted):
		t.record.Status = results.StatusInterrupted
		t.record.Error = err.Error()
	case err != nil:
		t.record.Status = results.StatusError
		t.record.Error = err.Error()
	default:
		t.record.Status = results.StatusDone
	}
	if werr := t.store.WriteJSON(results.TestFile, t.record); werr != nil && err == nil {
		err = werr
	}
	// Redraw the report with the run's end and timings, and give a run
	// that stopped before its check a report too.
	if rerr := results.Rebuild(t.store.Dir); rerr != nil {
		t.log.Warn("write the report", "err", rerr)
	}
	return err
}

// teardown saves the nodes' files if the phases did not, and removes the
// cluster unless told to leave it running, once setup was attempted. It
// has its own deadline, since ctx may already be cancelled by a signal.
// Its duration is timings.teardown.
func (t *test) teardown(ctx context.Context) error {
	if !t.setupCalled {
		return nil
	}
	start := time.Now()
	defer func() { t.timings.Teardown = results.Seconds(time.Since(start)) }()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.TeardownTimeout)
	defer cancel()
	if !t.collected {
		if err := t.cfg.Backend.Collect(tctx, t.store.Path(results.NodesDir)); err != nil {
			t.log.Warn("collect node files", "err", err)
		}
	}
	if t.cfg.LeaveRunning {
		t.log.Info("leaving the cluster running (--leave-running)")
		return nil
	}
	if err := t.cfg.Backend.Close(tctx); err != nil {
		t.log.Error("tear down the cluster; `chaos clean` removes what is left", "err", err)
		return fmt.Errorf("tear down: %w", err)
	}
	return nil
}
