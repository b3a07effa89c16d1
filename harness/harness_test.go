package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memkv"
)

func baseConfig(t *testing.T, b *fakeBackend) Config {
	t.Helper()
	return Config{
		Name:             "register-test",
		Workload:         judgedBy{Workload: workloads.NewRegister(workloads.RegisterOptions{OpsPerKey: 20}), c: fixedCheck(checker.Valid, nil)},
		Backend:          b,
		Concurrency:      4,
		Rate:             400,
		TimeLimit:        300 * time.Millisecond,
		Seed:             7,
		Store:            t.TempDir(),
		OpTimeout:        time.Second,
		FinalReadTimeout: 2 * time.Second,
		FlushInterval:    10 * time.Millisecond,
		ProgressInterval: time.Hour,
	}
}

// readHistory reads a run's history.jsonl and checks it is well formed:
// dense indexes, monotonic times, each client process alternating invoke
// and completion of the same f, and no process invoking after an info.
func readHistory(t *testing.T, dir string) []history.Op {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, results.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, err := history.ReadAll(f)
	if err != nil {
		t.Fatalf("history does not parse: %v", err)
	}
	checkWellFormed(t, ops)
	return ops
}

func checkWellFormed(t *testing.T, ops []history.Op) {
	t.Helper()
	open := map[history.Process]*history.Op{}
	retired := map[history.Process]bool{}
	var last int64
	for i := range ops {
		op := &ops[i]
		if op.Index != int64(i) {
			t.Fatalf("op %d has index %d", i, op.Index)
		}
		if op.Time < last {
			t.Fatalf("op %d: time %d goes back from %d", i, op.Time, last)
		}
		last = op.Time
		if op.Process.IsNemesis() {
			continue
		}
		if retired[op.Process] {
			t.Fatalf("op %d: process %d appears after its info", i, op.Process)
		}
		inv := open[op.Process]
		switch {
		case op.Type == history.Invoke && inv != nil:
			t.Fatalf("op %d: process %d invokes while op %d is open", i, op.Process, inv.Index)
		case op.Type == history.Invoke:
			open[op.Process] = op
		case inv == nil:
			t.Fatalf("op %d: completion without invocation", i)
		case inv.F != op.F:
			t.Fatalf("op %d: completion f %q for invocation f %q", i, op.F, inv.F)
		default:
			delete(open, op.Process)
			if op.Type == history.Info {
				retired[op.Process] = true
			}
		}
	}
	if len(open) > 0 {
		t.Fatalf("%d invocations never completed", len(open))
	}
}

func TestLifecycleOrderAndStore(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{})}
	cfg := baseConfig(t, b)
	cfg.Nemesis = partitions()
	var checked []history.Op
	checkWith(&cfg, fixedCheck(checker.Valid, &checked))
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"setup", "wait-healthy", "heal", "wait-healthy", "collect", "close"}
	var got []string
	faults := 0
	for _, c := range b.Calls() {
		switch c {
		case "partition":
			faults++
		case "partition-end":
		default:
			got = append(got, c)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lifecycle calls = %v, want %v (all calls %v)", got, want, b.Calls())
	}
	if faults < 2 {
		t.Fatalf("nemesis partitioned %d times in 300ms at a 30ms interval", faults)
	}
	if out.Valid != checker.Valid {
		t.Fatalf("valid = %v", out.Valid)
	}
	for _, f := range []string{results.TestFile, results.HistoryFile, results.ResultsFile, results.ReportFile} {
		if _, err := os.Stat(filepath.Join(out.Dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if rel, _ := filepath.Rel(cfg.Store, out.Dir); filepath.Dir(rel) != "register-test" {
		t.Fatalf("run dir %s not under store/register-test", out.Dir)
	}
	latest, err := results.Latest(cfg.Store)
	if err != nil || latest != out.Dir {
		t.Fatalf("latest = %q, %v; want %q", latest, err, out.Dir)
	}
	test, err := results.ReadTest(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if test.Status != results.StatusDone || test.Seed != 7 || test.End == nil || test.Parameters["workload"] != "register" {
		t.Fatalf("test.json = %+v", test)
	}
	sum, err := results.ReadSummary(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Valid != checker.Valid || sum.Results["fixed"].Summary == "" {
		t.Fatalf("results.json = %+v", sum)
	}
	ops := readHistory(t, out.Dir)
	if len(ops) != len(checked) {
		t.Fatalf("history file has %d ops, checker saw %d", len(ops), len(checked))
	}
	var nemOps, invokes int
	for _, op := range ops {
		if op.Process.IsNemesis() {
			nemOps++
		} else if op.Type == history.Invoke {
			invokes++
		}
	}
	if nemOps < 4 {
		t.Fatalf("only %d nemesis ops", nemOps)
	}
	// 300ms at 400/s is 120 slots; allow scheduling slack, but pacing must
	// have held the rate well below what memkv could take.
	if invokes < 60 || invokes > 200 {
		t.Fatalf("%d invocations, want about 120 + final reads", invokes)
	}
	// The last ops are the final reads: one ok read per key, in key order.
	reads := 0
	for i := len(ops) - 1; i >= 0 && ops[i].F == "read" && !ops[i].Process.IsNemesis(); i-- {
		reads++
	}
	if reads < 2 {
		t.Fatalf("history does not end with final reads")
	}
}

func TestInfoRetiresProcess(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{LoseRate: 0.3, Seed: 3})}
	cfg := baseConfig(t, b)
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ops := readHistory(t, out.Dir)
	infos := 0
	procs := map[history.Process]bool{}
	for _, op := range ops {
		procs[op.Process] = true
		if op.Type != history.Info {
			continue
		}
		infos++
		// The retired process's successor is process + concurrency.
		next := op.Process + history.Process(cfg.Concurrency)
		found := false
		for _, o := range ops[op.Index:] {
			if o.Process == next {
				found = true
				break
			}
		}
		if !found && op.F != "read" {
			// Only the last op of the workload phase may have no successor.
			if op.Time < ops[len(ops)-1].Time-int64(100*time.Millisecond) {
				t.Errorf("info op %d of process %d: process %d never appears", op.Index, op.Process, next)
			}
		}
	}
	if infos == 0 {
		t.Fatal("no info ops with a 30% lose rate")
	}
	if len(procs) <= cfg.Concurrency {
		t.Fatalf("%d processes, want more than %d after infos", len(procs), cfg.Concurrency)
	}
}

func TestHistoryStreamedDuringRun(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{})}
	cfg := baseConfig(t, b)
	var lines int
	var dir string
	b.onHealthy = func(n int) {
		if n != 2 {
			return
		}
		// The workload phase is over but the recorder is still open: what
		// is on disk now was streamed, not written at the end.
		dir, _ = results.Latest(cfg.Store)
		data, err := os.ReadFile(filepath.Join(dir, results.HistoryFile))
		if err != nil {
			t.Error(err)
			return
		}
		lines = strings.Count(string(data), "\n")
	}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if lines < 50 {
		t.Fatalf("only %d history lines on disk before the run ended", lines)
	}
}

func TestTeardownOnSetupFailure(t *testing.T) {
	tests := []struct {
		name string
		b    *fakeBackend
		want []string
	}{
		{"setup error", &fakeBackend{setupErr: errors.New("no docker")}, []string{"setup", "collect", "close"}},
		{"never healthy", &fakeBackend{healthyErr: errors.New("n3 down")}, []string{"setup", "wait-healthy", "collect", "close"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.b.sut = newMem(memkv.Options{})
			cfg := baseConfig(t, tt.b)
			out, err := Run(context.Background(), cfg)
			if err == nil || errors.Is(err, ErrInterrupted) {
				t.Fatalf("err = %v, want an internal error", err)
			}
			if got := tt.b.Calls(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("calls = %v, want %v", got, tt.want)
			}
			test, rerr := results.ReadTest(out.Dir)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if test.Status != results.StatusError || test.Error == "" {
				t.Fatalf("test.json status %q error %q", test.Status, test.Error)
			}
		})
	}
}

func TestTeardownOnCancel(t *testing.T) {
	t.Run("during the workload", func(t *testing.T) {
		b := &fakeBackend{sut: newMem(memkv.Options{})}
		cfg := baseConfig(t, b)
		cfg.TimeLimit = time.Minute
		cfg.Nemesis = partitions()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(150*time.Millisecond, cancel)
		start := time.Now()
		out, err := Run(ctx, cfg)
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("err = %v, want ErrInterrupted", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("cancel took %v to stop the run", time.Since(start))
		}
		calls := b.Calls()
		if calls[len(calls)-1] != "close" {
			t.Fatalf("calls = %v, want close last", calls)
		}
		readHistory(t, out.Dir)
		test, _ := results.ReadTest(out.Dir)
		if test.Status != results.StatusInterrupted {
			t.Fatalf("status %q", test.Status)
		}
	})
	t.Run("during setup", func(t *testing.T) {
		b := &fakeBackend{blockSetup: true}
		cfg := baseConfig(t, b)
		closedWithLiveCtx := false
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		b.onClose = func() { closedWithLiveCtx = true }
		_, err := Run(ctx, cfg)
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("err = %v, want ErrInterrupted", err)
		}
		if !closedWithLiveCtx {
			t.Fatal("Close not called")
		}
		// Close returns its ctx's error: nil proves teardown got a fresh
		// context rather than the cancelled one.
		if strings.Contains(err.Error(), "tear down") {
			t.Fatalf("teardown ran with a dead context: %v", err)
		}
	})
}

func TestLeaveRunning(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{})}
	cfg := baseConfig(t, b)
	cfg.LeaveRunning = true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, c := range b.Calls() {
		if c == "close" {
			t.Fatal("Close called with LeaveRunning")
		}
	}
}

func TestVerdicts(t *testing.T) {
	for _, v := range []checker.Validity{checker.Valid, checker.Invalid, checker.Unknown} {
		t.Run(v.String(), func(t *testing.T) {
			b := &fakeBackend{sut: newMem(memkv.Options{})}
			cfg := baseConfig(t, b)
			cfg.TimeLimit = 50 * time.Millisecond
			checkWith(&cfg, fixedCheck(v, nil))
			out, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if out.Valid != v {
				t.Fatalf("valid = %v, want %v", out.Valid, v)
			}
			sum, _ := results.ReadSummary(out.Dir)
			if sum.Valid != v {
				t.Fatalf("results.json valid = %v, want %v", sum.Valid, v)
			}
		})
	}
	t.Run("checker error", func(t *testing.T) {
		b := &fakeBackend{sut: newMem(memkv.Options{})}
		cfg := baseConfig(t, b)
		cfg.TimeLimit = 50 * time.Millisecond
		checkWith(&cfg, fixedChecker{err: errors.New("boom")})
		_, err := Run(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("err = %v", err)
		}
		if c := b.Calls(); c[len(c)-1] != "close" {
			t.Fatalf("calls = %v", c)
		}
	})
}

func TestFinalReadsMustSucceed(t *testing.T) {
	sut := &flakySUT{inner: newMem(memkv.Options{})}
	b := &fakeBackend{sut: sut}
	cfg := baseConfig(t, b)
	cfg.FinalReadTimeout = 300 * time.Millisecond
	t.Run("never", func(t *testing.T) {
		b.onHealthy = func(n int) { sut.setBroken(n == 2) }
		out, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if out.Valid != checker.Unknown {
			t.Fatalf("valid = %v, want unknown when final reads never succeed", out.Valid)
		}
		if len(out.Summary.Notes) == 0 {
			t.Fatal("no note explains the unknown verdict")
		}
	})
	t.Run("after retries", func(t *testing.T) {
		b.healthyN = 0
		cfg.Store = t.TempDir()
		cfg.FinalReadTimeout = 5 * time.Second
		b.onHealthy = func(n int) {
			if n == 2 {
				sut.setBroken(true)
				time.AfterFunc(500*time.Millisecond, func() { sut.setBroken(false) })
			}
		}
		out, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if out.Valid != checker.Valid {
			t.Fatalf("valid = %v, notes %v", out.Valid, out.Summary.Notes)
		}
		checkCountsAddUp(t, out)
		ops := readHistory(t, out.Dir)
		fails := 0
		for _, op := range ops {
			if op.Type == history.Fail && op.F == "read" {
				fails++
			}
		}
		if fails == 0 {
			t.Fatal("no failed final read was recorded before the retries succeeded")
		}
	})
}

// checkCountsAddUp checks results.json's counters: invoked = ok + fail +
// info for the workload phase, the final reads apart (and retried here,
// so more invoked than ok), and the availability agreeing with both.
func checkCountsAddUp(t *testing.T, out *Outcome) {
	t.Helper()
	sum, err := results.ReadSummary(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	st := sum.Stats
	n := func(v any) int64 {
		i, ok := v.(int64)
		if !ok {
			t.Fatalf("stat %v is a %T, not an integer", v, v)
		}
		return i
	}
	inv, ok, fail, info := n(st["invoked"]), n(st["ok"]), n(st["fail"]), n(st["info"])
	if inv == 0 || inv != ok+fail+info {
		t.Errorf("workload: invoked %d != ok %d + fail %d + info %d", inv, ok, fail, info)
	}
	fr, _ := st["final-reads"].(map[string]any)
	finv, fok, ffail, finfo := n(fr["invoked"]), n(fr["ok"]), n(fr["fail"]), n(fr["info"])
	if finv != fok+ffail+finfo || fok == 0 || finv <= fok {
		t.Errorf("final reads: invoked %d, ok %d, fail %d, info %d: want retries that add up", finv, fok, ffail, finfo)
	}
	av, _ := st["availability"].(map[string]any)
	fav, _ := av["final-reads"].(map[string]any)
	if n(av["invoked"]) != inv || n(av["ok"]) != ok || n(fav["invoked"]) != finv || n(fav["ok"]) != fok {
		t.Errorf("availability counts %v and final reads %v disagree with the counters %d/%d, %d/%d", av["invoked"], fav, inv, ok, finv, fok)
	}
	var clientOps int64
	for _, op := range readHistory(t, out.Dir) {
		if op.IsClient() && op.Type == history.Invoke {
			clientOps++
		}
	}
	if clientOps != inv+finv {
		t.Errorf("the history holds %d invocations; the counters say %d + %d final reads", clientOps, inv, finv)
	}
}

func TestRateWarning(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{})}
	cfg := baseConfig(t, b)
	cfg.Rate = 50 // kept by an in-memory store even on a heavily loaded machine
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range out.Summary.Notes {
		if strings.Contains(n, "--rate") {
			t.Errorf("a run that kept its rate got the note %q", n)
		}
	}
	cfg.Store = t.TempDir()
	cfg.Concurrency = 1
	cfg.Rate = 1e8 // one worker cannot invoke a hundred million ops a second
	out, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	warned := ""
	for _, n := range out.Summary.Notes {
		if strings.Contains(n, "below --rate") {
			warned = n
		}
	}
	if warned == "" {
		t.Fatalf("no rate warning in the notes %q (achieved %v)", out.Summary.Notes, out.Summary.Stats["achieved-rate"])
	}
	sum, err := results.ReadSummary(out.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sum.Notes, warned) {
		t.Errorf("results.json lacks the rate warning")
	}
	if page, _ := os.ReadFile(filepath.Join(out.Dir, results.ReportFile)); !strings.Contains(string(page), "below --rate") {
		t.Errorf("report.html lacks the rate warning")
	}
}

func TestOpLimit(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{})}
	cfg := baseConfig(t, b)
	cfg.Rate = 0
	cfg.TimeLimit = time.Minute
	cfg.OpLimit = 500
	out, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Summary.Stats["invoked"]; got != int64(500) {
		t.Fatalf("invoked = %v, want 500", got)
	}
}

func TestPacer(t *testing.T) {
	p := &pacer{interval: 10 * time.Millisecond}
	stop := time.Now().Add(time.Hour)
	start := time.Now()
	for range 20 {
		if !p.wait(context.Background(), stop) {
			t.Fatal("wait returned false before stop")
		}
	}
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Fatalf("20 slots at 10ms took %v", d)
	}
	if p.wait(context.Background(), time.Now()) {
		t.Fatal("a slot past stop was granted")
	}
	var nilPacer *pacer
	if !nilPacer.wait(context.Background(), stop) {
		t.Fatal("nil pacer refused")
	}
}

func TestBadConfig(t *testing.T) {
	b := &fakeBackend{}
	for name, mod := range map[string]func(*Config){
		"no workload":    func(c *Config) { c.Workload = nil },
		"no backend":     func(c *Config) { c.Backend = nil },
		"no check":       func(c *Config) { checkWith(c, nil) },
		"bad name":       func(c *Config) { c.Name = "a/b" },
		"negative rate":  func(c *Config) { c.Rate = -1 },
		"store in /proc": func(c *Config) { c.Store = "/proc/nope" },
	} {
		cfg := baseConfig(t, b)
		mod(&cfg)
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want an ErrConfig", name, err)
		}
	}
	if len(b.Calls()) != 0 {
		t.Fatalf("backend touched despite bad config: %v", b.Calls())
	}
}

func TestActiveFaults(t *testing.T) {
	tests := []struct {
		fs   []string
		want []string
	}{
		{nil, []string{}},
		{[]string{"start-partition"}, []string{"partition"}},
		{[]string{"start-partition", "stop-partition"}, []string{}},
		{[]string{"kill", "pause", "start-loss"}, []string{"kill", "loss", "pause"}},
		{[]string{"kill", "start", "pause", "resume"}, []string{}},
	}
	for _, tt := range tests {
		var a activeFaults
		for _, f := range tt.fs {
			a.apply(f)
		}
		if got := a.list(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("after %v: %v, want %v", tt.fs, got, tt.want)
		}
	}
}

func TestFaultsNeedATarget(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{})}
	cfg := baseConfig(t, b)
	cfg.Nemesis = partitions()
	cfg.Backend = noTarget{b}
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "cannot inject faults") {
		t.Fatalf("err = %v", err)
	}
	if c := b.Calls(); c[len(c)-1] != "close" {
		t.Fatalf("calls = %v", c)
	}
}

// noTarget is a backend that cannot inject faults.
type noTarget struct{ *fakeBackend }

func (n noTarget) Setup(ctx context.Context, dir string) (*Cluster, error) {
	cl, err := n.fakeBackend.Setup(ctx, dir)
	if cl != nil {
		cl.Target = nil
	}
	return cl, err
}

// latencyless is a target whose kernel lacks netem.
type latencyless struct{ *fakeTarget }

func (latencyless) Supports(_ context.Context, k nemesis.Kind) error {
	if k == nemesis.Latency {
		return errors.New("no netem qdisc")
	}
	return nil
}

type latencylessBackend struct{ *fakeBackend }

func (b latencylessBackend) Setup(ctx context.Context, dir string) (*Cluster, error) {
	cl, err := b.fakeBackend.Setup(ctx, dir)
	if cl != nil {
		cl.Target = latencyless{cl.Target.(*fakeTarget)}
	}
	return cl, err
}

func TestUnsupportedFaultRefusedBeforeTheWorkload(t *testing.T) {
	b := &fakeBackend{sut: newMem(memkv.Options{})}
	cfg := baseConfig(t, b)
	cfg.Backend = latencylessBackend{b}
	cfg.Nemesis = nemesis.Config{Kinds: []nemesis.Kind{nemesis.Partition, nemesis.Latency}}
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "no netem") {
		t.Fatalf("err = %v", err)
	}
	if got, want := b.Calls(), []string{"setup", "collect", "close"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	cfg.Store = t.TempDir()
	cfg.Nemesis.Kinds = []nemesis.Kind{nemesis.Partition}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("supported kinds refused: %v", err)
	}
}
