package dockerbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/internal/dockertest"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/docker"
	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/history"
	"github.com/chaoskv/chaos/nemesis"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
)

// toyDB adapts internal/toykv, a store with nothing in common with kvnode
// but the static image, to the backend: its own command line, environment,
// config file format, health check, sessions and clock endpoint.
type toyDB struct{ binary string }

func (db toyDB) Image() Image { return Image{Name: "toykv", Binary: db.binary} }

func (toyDB) ConfigFile(nodes []docker.Node) ([]byte, error) {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return json.Marshal(names)
}

func (toyDB) Node(n docker.Node) NodeSpec {
	return NodeSpec{Args: []string{"serve", "--data", docker.DataDir}, Env: []string{"TOYKV_NAME=" + n.Name}}
}

func (toyDB) Open(_ context.Context, nodes []docker.Node) (Conn, error) {
	return &toyConn{nodes: nodes, http: &http.Client{Timeout: 2 * time.Second}}, nil
}

type toyConn struct {
	nodes []docker.Node
	http  *http.Client
}

var (
	_ ClockSetter = (*toyConn)(nil)
	_ Collector   = (*toyConn)(nil)
)

func (c *toyConn) SUT() workloads.SUT { return c }
func (c *toyConn) Close() error       { return nil }

func (c *toyConn) OpenKV(context.Context) (workloads.KV, error) { return c, nil }

// do sends one request to n and returns its body; 404 is found == false.
func (c *toyConn) do(ctx context.Context, method string, n docker.Node, path string, q url.Values) (string, bool, error) {
	u := "http://" + netip.AddrPortFrom(n.IP, 8080).String() + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return "", false, workloads.Definite(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "", false, err
	case resp.StatusCode == http.StatusNotFound:
		return "", false, nil
	case resp.StatusCode != http.StatusOK:
		return "", false, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return string(b), true, nil
}

// owner places a key on one node by hash.
func (c *toyConn) owner(key string) docker.Node {
	h := fnv.New32a()
	h.Write([]byte(key))
	return c.nodes[h.Sum32()%uint32(len(c.nodes))]
}

func (c *toyConn) Get(ctx context.Context, key string) (string, bool, error) {
	return c.do(ctx, http.MethodGet, c.owner(key), "/kv", url.Values{"key": {key}})
}

func (c *toyConn) Put(ctx context.Context, key, value string) error {
	_, _, err := c.do(ctx, http.MethodPut, c.owner(key), "/kv", url.Values{"key": {key}, "value": {value}})
	return err
}

func (c *toyConn) CAS(ctx context.Context, key, old, new string) (bool, error) {
	v, _, err := c.do(ctx, http.MethodPost, c.owner(key), "/cas", url.Values{"key": {key}, "old": {old}, "new": {new}})
	return v == "true", err
}

func (c *toyConn) Healthy(ctx context.Context) error {
	for _, n := range c.nodes {
		if _, _, err := c.do(ctx, http.MethodGet, n, "/healthz", nil); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

func (c *toyConn) SetNodeClock(ctx context.Context, n docker.Node, offset time.Duration) error {
	_, _, err := c.do(ctx, http.MethodPost, n, "/clock-offset", url.Values{"offset": {offset.String()}})
	return err
}

// Collect saves each node's /status as status.json.
func (c *toyConn) Collect(ctx context.Context, nodes []docker.Node, dir string) error {
	var errs []error
	for _, n := range nodes {
		body, _, err := c.do(ctx, http.MethodGet, n, "/status", nil)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, n.Name, "status.json"), []byte(body), 0o644)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TestRunDockerAnotherStore runs a whole chaos test (register workload,
// kills, pauses and clock bumps) against toykv through the generic
// backend: the store's own command, environment and config file reach
// its nodes, the faults take effect, the clock goes through the adapter
// and is reset, the verdict is valid, and nothing is left running.
func TestRunDockerAnotherStore(t *testing.T) {
	if testing.Short() {
		t.Skip("Docker integration test; -short runs unit tests only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := dockertest.Connect(t)
	bin := filepath.Join(t.TempDir(), "toykv")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/chaoskv/chaos/harness/dockerbackend/internal/toykv")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build toykv: %v\n%s", err, out)
	}
	b, err := New(d, toyDB{binary: bin}, Options{Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	// Whatever fails, nothing labelled with the run survives the test.
	t.Cleanup(func() {
		dir, err := results.Latest(store)
		if err != nil {
			return
		}
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if err := b.Close(cctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if rep, err := d.Clean(cctx, RunID(dir), false); err != nil || rep.Containers+rep.Networks > 0 {
			t.Errorf("the run left %d containers and %d networks behind (clean: %v)", rep.Containers, rep.Networks, err)
		}
	})

	out, err := harness.Run(ctx, harness.Config{
		Name:     "toykv",
		Workload: workloads.NewRegister(workloads.RegisterOptions{}),
		Backend:  b,
		Nemesis: nemesis.Config{Kinds: []nemesis.Kind{nemesis.Kill, nemesis.Pause, nemesis.ClockBump},
			Interval: 1500 * time.Millisecond, KillPolicy: nemesis.KillAny, ClockSkew: 30 * time.Second},
		Concurrency:      8,
		Rate:             50,
		TimeLimit:        10 * time.Second,
		Seed:             3,
		Store:            store,
		OpTimeout:        2 * time.Second,
		ProgressInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Valid != checker.Valid {
		t.Fatalf("verdict %v: %+v", out.Valid, out.Summary)
	}
	f, err := os.Open(filepath.Join(out.Dir, results.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, err := history.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	took, oks := map[string]int{}, 0
	victims := map[string]bool{}
	for _, op := range ops {
		switch {
		case op.Process.IsNemesis() && op.Type == history.Info && op.Error == "":
			took[op.F]++
			if op.F == "start-clock-bump" {
				for _, v := range op.Value.(map[string]any)["nodes"].([]any) {
					victims[v.(string)] = true
				}
			}
		case op.Process.IsNemesis() && op.Type == history.Info:
			t.Errorf("nemesis %s failed: %s", op.F, op.Error)
		case op.Type == history.Ok:
			oks++
		}
	}
	t.Logf("nemesis %v, %d ok ops", took, oks)
	for _, f := range []string{"kill", "start", "pause", "resume", "start-clock-bump", "stop-clock-bump"} {
		if took[f] == 0 {
			t.Errorf("no %s took effect (nemesis ops %v)", f, took)
		}
	}
	if oks < 150 {
		t.Errorf("only %d ok ops", oks)
	}
	// Each bumped node logged its shift and, last, its reset; every node
	// kept its writes in its data directory.
	for node := range victims {
		sets := offsetsLogged(t, filepath.Join(out.Dir, results.NodesDir, node, "log"))
		if len(sets) < 2 || sets[0] == "0s" || sets[len(sets)-1] != "0s" {
			t.Errorf("%s set its clock to %v: want a shift, ending with a reset to 0s", node, sets)
		}
	}
	if len(victims) == 0 {
		t.Error("no node's clock was bumped")
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if _, err := os.Stat(filepath.Join(out.Dir, results.NodesDir, n, "data", "state.json")); err != nil {
			t.Errorf("node %s kept no state in its data directory: %v", n, err)
		}
		// The adapter's final state, collected beside the node's log: the
		// clock is back at 0 and the node is the one its name says.
		var st struct {
			Name        string        `json:"name"`
			ClockOffset time.Duration `json:"clock_offset"`
		}
		b, err := os.ReadFile(filepath.Join(out.Dir, results.NodesDir, n, "status.json"))
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil || st.Name != n || st.ClockOffset != 0 {
			t.Errorf("final status of %s: %+v, %v", n, st, err)
		}
	}
}

// offsetsLogged returns the clock offsets a toykv node logged, in order.
func offsetsLogged(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sets []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `msg="clock offset set"`) {
			continue
		}
		if _, v, ok := strings.Cut(line, " offset="); ok {
			sets = append(sets, strings.Fields(v)[0])
		}
	}
	return sets
}
