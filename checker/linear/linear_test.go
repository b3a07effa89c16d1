package linear

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// hist parses a compact history: one op per line, "process type f value"
// with the value in JSON, e.g. `0 invoke write ["x",1]`.
func hist(t testing.TB, src string) []history.Op {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(src), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, " ", 4)
		if len(parts) < 3 {
			t.Fatalf("bad test line %q", line)
		}
		val := "null"
		if len(parts) == 4 {
			val = parts[3]
		}
		proc := parts[0]
		if proc == "nemesis" {
			proc = `"nemesis"`
		}
		fmt.Fprintf(&b, `{"type":%q,"process":%s,"f":%q,"value":%s}`+"\n", parts[1], proc, parts[2], val)
	}
	ops, err := history.ReadAll(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("parse test history: %v", err)
	}
	return ops
}

func TestModels(t *testing.T) {
	cases := []struct {
		name  string
		model string
		want  checker.Validity
		h     string
	}{
		{"register empty", "register", checker.Valid, ``},
		{"register initial read nil", "register", checker.Valid, `
			0 invoke read ["x",null]
			0 ok read ["x",null]`},
		{"register write then read", "register", checker.Valid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",1]`},
		{"register read of a value never written", "register", checker.Invalid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",2]`},
		{"register stale read", "register", checker.Invalid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			1 invoke write ["x",2]
			1 ok write ["x",2]
			0 invoke read ["x",null]
			0 ok read ["x",1]`},
		{"register concurrent read sees the write", "register", checker.Valid, `
			0 invoke write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",1]
			0 ok write ["x",1]`},
		{"register concurrent read misses the write", "register", checker.Valid, `
			0 invoke write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",null]
			0 ok write ["x",1]`},
		{"register read before a later write sees it", "register", checker.Invalid, `
			1 invoke read ["x",null]
			1 ok read ["x",1]
			0 invoke write ["x",1]
			0 ok write ["x",1]`},
		{"register keys are independent", "register", checker.Valid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			1 invoke read ["y",null]
			1 ok read ["y",null]`},
		{"register unkeyed", "register", checker.Valid, `
			0 invoke write 3
			0 ok write 3
			1 invoke read null
			1 ok read 3`},
		{"register numbers 3 and 3.0 are equal", "register", checker.Valid, `
			0 invoke write ["x",3]
			0 ok write ["x",3]
			1 invoke read ["x",null]
			1 ok read ["x",3.0]`},
		{"register string values", "register", checker.Invalid, `
			0 invoke write ["x","1"]
			0 ok write ["x","1"]
			1 invoke read ["x",null]
			1 ok read ["x",1]`},
		// Jepsen semantics for fail and info.
		{"fail write never happened", "register", checker.Invalid, `
			0 invoke write ["x",1]
			0 fail write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",1]`},
		{"info write may happen later", "register", checker.Valid, `
			0 invoke write ["x",1]
			0 info write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",null]
			1 invoke read ["x",null]
			1 ok read ["x",1]`},
		{"info write may never happen", "register", checker.Valid, `
			0 invoke write ["x",1]
			0 info write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",null]`},
		{"info write happens at most once", "register", checker.Invalid, `
			0 invoke write ["x",1]
			0 info write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",null]`},
		{"info write cannot happen before its invocation", "register", checker.Invalid, `
			1 invoke read ["x",null]
			1 ok read ["x",1]
			0 invoke write ["x",1]
			0 info write ["x",1]`},
		{"info write with an unknown value uses the invocation's", "register", checker.Valid, `
			0 invoke write ["x",1]
			0 info write "timed-out"
			1 invoke read ["x",null]
			1 ok read ["x",1]`},
		{"invocation without completion is info", "register", checker.Valid, `
			0 invoke write ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",1]`},
		{"info read constrains nothing", "register", checker.Valid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			1 invoke read ["x",null]
			1 info read ["x",7]
			2 invoke read ["x",null]
			2 fail read ["x",null]`},
		{"nemesis ops are ignored", "register", checker.Valid, `
			nemesis info start null
			0 invoke write ["x",1]
			0 ok write ["x",1]
			nemesis info start ["n1"]`},
		{"cas succeeds", "cas-register", checker.Valid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			0 invoke cas ["x",[1,2]]
			0 ok cas ["x",[1,2]]
			1 invoke read ["x",null]
			1 ok read ["x",2]`},
		{"cas succeeds on the wrong value", "cas-register", checker.Invalid, `
			0 invoke write ["x",0]
			0 ok write ["x",0]
			0 invoke cas ["x",[1,2]]
			0 ok cas ["x",[1,2]]`},
		{"failed cas did not happen", "cas-register", checker.Valid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			0 invoke cas ["x",[1,2]]
			0 fail cas ["x",[1,2]]
			1 invoke read ["x",null]
			1 ok read ["x",1]`},
		{"failed cas cannot explain a read", "cas-register", checker.Invalid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			0 invoke cas ["x",[1,2]]
			0 fail cas ["x",[1,2]]
			1 invoke read ["x",null]
			1 ok read ["x",2]`},
		{"info cas may succeed", "cas-register", checker.Valid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			0 invoke cas ["x",[1,2]]
			0 info cas ["x",[1,2]]
			1 invoke read ["x",null]
			1 ok read ["x",1]
			1 invoke read ["x",null]
			1 ok read ["x",2]`},
		{"info cas succeeds at most once", "cas-register", checker.Invalid, `
			0 invoke write ["x",1]
			0 ok write ["x",1]
			0 invoke cas ["x",[1,2]]
			0 info cas ["x",[1,2]]
			1 invoke read ["x",null]
			1 ok read ["x",2]
			1 invoke read ["x",null]
			1 ok read ["x",1]`},
		{"unkeyed cas as in Knossos data", "cas-register", checker.Valid, `
			0 invoke write 3
			0 ok write 3
			1 invoke cas [3,4]
			1 ok cas [3,4]
			2 invoke read null
			2 ok read 4`},
		{"kv put append get", "kv", checker.Valid, `
			0 invoke put ["x","a"]
			0 ok put ["x","a"]
			0 invoke append ["x","b"]
			0 ok append ["x","b"]
			1 invoke get ["x",null]
			1 ok get ["x","ab"]`},
		{"kv wrong append order", "kv", checker.Invalid, `
			0 invoke put ["x","a"]
			0 ok put ["x","a"]
			0 invoke append ["x","b"]
			0 ok append ["x","b"]
			1 invoke get ["x",null]
			1 ok get ["x","ba"]`},
		{"kv unwritten key reads empty", "kv", checker.Valid, `
			1 invoke get ["x",null]
			1 ok get ["x",""]`},
		{"kv concurrent appends in either order", "kv", checker.Valid, `
			0 invoke append ["x","a"]
			1 invoke append ["x","b"]
			0 ok append ["x","a"]
			1 ok append ["x","b"]
			2 invoke get ["x",null]
			2 ok get ["x","ba"]`},
		{"kv get loses an append", "kv", checker.Invalid, `
			0 invoke append ["x","a"]
			0 ok append ["x","a"]
			1 invoke append ["x","b"]
			1 ok append ["x","b"]
			2 invoke get ["x",null]
			2 ok get ["x","b"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops := hist(t, tc.h)
			res, err := Check(tc.model, ops, Options{Timeout: 10 * time.Second})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if res.Valid != tc.want {
				t.Fatalf("valid = %v, want %v (%s)", res.Valid, tc.want, res.Summary)
			}
			if tc.want == checker.Invalid {
				if len(res.AnomalyTypes) != 1 || res.AnomalyTypes[0] != Anomaly || len(res.Anomalies[Anomaly]) == 0 {
					t.Fatalf("invalid result without a %s anomaly: %+v", Anomaly, res)
				}
				v := res.Anomalies[Anomaly][0].(Violation)
				if v.Explanation == "" || len(v.Op) == 0 {
					t.Fatalf("violation without explanation or op: %+v", v)
				}
			} else if len(res.AnomalyTypes) != 0 {
				t.Fatalf("anomalies on a %v result: %v", res.Valid, res.AnomalyTypes)
			}
		})
	}
}

func TestViolationNamesKeyAndOp(t *testing.T) {
	ops := hist(t, `
		0 invoke write ["x",1]
		0 ok write ["x",1]
		1 invoke write ["y",5]
		1 ok write ["y",5]
		0 invoke read ["x",null]
		0 ok read ["x",1]
		1 invoke read ["y",null]
		1 ok read ["y",6]`)
	dir := t.TempDir()
	res, err := Check("register", ops, Options{Timeout: 10 * time.Second, Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != checker.Invalid {
		t.Fatalf("valid = %v, want false", res.Valid)
	}
	vs := res.Anomalies[Anomaly]
	if len(vs) != 1 {
		t.Fatalf("want one violating key, got %d: %+v", len(vs), vs)
	}
	v := vs[0].(Violation)
	if v.Key != "y" || v.State != "5" || v.PrefixLength != 1 {
		t.Fatalf("violation = %+v, want key y, state 5 after a prefix of 1", v)
	}
	if len(v.Op) != 2 || v.Op[0].Index != 6 || v.Op[1].Index != 7 {
		t.Fatalf("violating op = %+v, want the read at indexes 6 and 7", v.Op)
	}
	if !strings.Contains(v.Explanation, "read -> 6") || !strings.Contains(v.Explanation, "lines 7-8") {
		t.Fatalf("explanation %q does not name the read and its lines", v.Explanation)
	}
	if len(res.Files) != 1 || res.Files[0] != v.File || v.File == "" {
		t.Fatalf("files = %v, violation file %q: want one page for key y", res.Files, v.File)
	}
	page, err := os.ReadFile(filepath.Join(dir, v.File))
	if err != nil {
		t.Fatal(err)
	}
	// The page embeds the ops as JSON: key y's write is there, key x's not.
	if !strings.Contains(string(page), `"Description":"write 5"`) || strings.Contains(string(page), `"Description":"write 1"`) {
		t.Fatalf("visualization should show key y only")
	}
}

func TestCheckErrors(t *testing.T) {
	cases := []struct {
		name, model, h string
		malformed      bool
	}{
		{"unknown model", "queue", `0 invoke read null`, false},
		{"cas on a plain register", "register", `
			0 invoke cas ["x",[1,2]]
			0 ok cas ["x",[1,2]]`, true},
		{"unknown f", "register", `
			0 invoke frob ["x",1]
			0 ok frob ["x",1]`, true},
		{"kv value not a tuple", "kv", `
			0 invoke put "a"
			0 ok put "a"`, true},
		{"kv value not a string", "kv", `
			0 invoke put ["x",1]
			0 ok put ["x",1]`, true},
		{"read completion not a tuple", "register", `
			0 invoke read ["x",null]
			0 ok read 3`, true},
		{"completion without invocation", "register", `0 ok read ["x",1]`, true},
		{"process busy", "register", `
			0 invoke read ["x",null]
			0 invoke read ["x",null]`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.model, hist(t, tc.h), Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, history.ErrMalformed); got != tc.malformed {
				t.Fatalf("errors.Is(%v, ErrMalformed) = %v, want %v", err, got, tc.malformed)
			}
		})
	}
}

// TestTimeoutIsUnknown builds a history whose refutation needs every subset
// of many concurrent indeterminate writes, and checks that a short timeout
// gives unknown promptly instead of hanging.
func TestTimeoutIsUnknown(t *testing.T) {
	var b strings.Builder
	const writers = 40
	for p := 0; p < writers; p++ {
		fmt.Fprintf(&b, "%d invoke write [\"x\",%d]\n", p, p)
	}
	for p := 0; p < writers; p++ {
		fmt.Fprintf(&b, "%d info write [\"x\",%d]\n", p, p)
	}
	// Reads that walk through every written value in turn, then return
	// one never written, force the search to try many orders.
	for p := 0; p < writers; p++ {
		fmt.Fprintf(&b, "%d invoke read [\"x\",null]\n%d ok read [\"x\",%d]\n", writers, writers, (p*7)%writers)
	}
	fmt.Fprintf(&b, "%d invoke read [\"x\",null]\n%d ok read [\"x\",-1]\n", writers, writers)
	ops := hist(t, b.String())
	start := time.Now()
	res, err := Check("register", ops, Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Fatalf("check took %s with a 200ms timeout", elapsed)
	}
	if res.Valid != checker.Unknown {
		t.Fatalf("valid = %v, want unknown (%s)", res.Valid, res.Summary)
	}
}

// TestPartitionEvents checks the model through porcupine's event API, which
// partitions with PartitionEvent: verdicts match the operation API's.
func TestPartitionEvents(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want bool
	}{
		{`
			0 invoke write ["x",1]
			1 invoke write ["y",2]
			0 ok write ["x",1]
			1 ok write ["y",2]
			0 invoke read ["y",null]
			0 ok read ["y",2]`, true},
		{`
			0 invoke write ["x",1]
			1 invoke write ["y",2]
			0 ok write ["x",1]
			1 ok write ["y",2]
			0 invoke read ["y",null]
			0 ok read ["y",1]`, false},
	} {
		ops := hist(t, tc.h)
		s, err := lookup("register")
		if err != nil {
			t.Fatal(err)
		}
		pairs, err := history.Pair(ops)
		if err != nil {
			t.Fatal(err)
		}
		pops, _, err := operations(s, ops, pairs)
		if err != nil {
			t.Fatal(err)
		}
		// Events in history order: a call at its invocation's position,
		// a return at its completion's.
		type at struct {
			pos int
			ev  porcupine.Event
		}
		var evs []at
		for id, op := range pops {
			evs = append(evs, at{int(op.Call), porcupine.Event{ClientId: op.ClientId, Kind: porcupine.CallEvent, Value: op.Input, Id: id}})
			evs = append(evs, at{int(min(op.Return, int64(len(ops)))), porcupine.Event{ClientId: op.ClientId, Kind: porcupine.ReturnEvent, Value: op.Output, Id: id}})
		}
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].pos < evs[j].pos })
		events := make([]porcupine.Event, len(evs))
		for i, e := range evs {
			events[i] = e.ev
		}
		pm := s.porcupineModel()
		if parts := pm.PartitionEvent(events); len(parts) != 2 {
			t.Fatalf("PartitionEvent made %d partitions, want 2 (keys x and y)", len(parts))
		}
		if got := porcupine.CheckEvents(pm, events); got != tc.want {
			t.Fatalf("CheckEvents = %v, want %v", got, tc.want)
		}
		if got := porcupine.CheckOperations(pm, pops); got != tc.want {
			t.Fatalf("CheckOperations = %v, want %v", got, tc.want)
		}
	}
}
