package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/nemesis"
)

// faultRow is one row of the README's fault table: a kind and whether
// `chaos run` and `chaos sim` take it.
type faultRow struct {
	kind     string
	run, sim bool
}

// readFaultTable parses the fault table of the README, whose last two
// columns start with "yes" or "no" for chaos run and chaos sim.
func readFaultTable(t *testing.T) []faultRow {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read the README: %v", err)
	}
	_, table, ok := strings.Cut(string(b), "### Fault table\n")
	if !ok {
		t.Fatal("README has no fault table")
	}
	var rows []faultRow
	for _, line := range strings.Split(table, "\n")[1:] {
		if strings.TrimSpace(line) == "" && len(rows) > 0 {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 5 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
			continue
		}
		word := func(c string) bool {
			c = strings.TrimSpace(c)
			switch {
			case strings.HasPrefix(c, "yes"):
				return true
			case strings.HasPrefix(c, "no"):
				return false
			}
			t.Fatalf("fault table row %q: a world's column must start with yes or no, got %q", line, c)
			return false
		}
		rows = append(rows, faultRow{kind: strings.Trim(strings.TrimSpace(cells[0]), "`"), run: word(cells[3]), sim: word(cells[4])})
	}
	return rows
}

// simSetup are the flags a kind needs in chaos sim beyond the defaults
// (nemesis.Backend.Needs).
var simSetup = map[string][]string{string(nemesis.Reconfig): {"--workload", "list-append"}}

// TestFaultTable: every kind is in the README's fault table, the table's
// yes and no are what each backend declares (nemesis.Backend.Supported),
// and both commands accept or refuse each kind as the table says. A
// refusal is exit 254 naming the kind; an accepted kind gets past
// --nemesis to the next bad flag.
func TestFaultTable(t *testing.T) {
	rows := readFaultTable(t)
	var listed []string
	for _, r := range rows {
		listed = append(listed, r.kind)
	}
	for _, k := range nemesis.Kinds() {
		if !slices.Contains(listed, string(k)) {
			t.Errorf("kind %q is missing from the README's fault table", k)
		}
	}
	for _, r := range rows {
		t.Run(r.kind, func(t *testing.T) {
			k := nemesis.Kind(r.kind)
			if got := nemesis.Docker.Supported(k) == nil; got != r.run {
				t.Errorf("the fault table says chaos run %v for %s, the Docker backend declares %v", r.run, k, got)
			}
			if got := nemesis.Sim.Supported(k) == nil; got != r.sim {
				t.Errorf("the fault table says chaos sim %v for %s, the simulator declares %v", r.sim, k, got)
			}
			code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--nemesis", r.kind, "--clock-skew", "0s")
			switch {
			case code != exitBadArgs:
				t.Errorf("chaos run --nemesis %s --clock-skew 0s: exit %d, want %d", r.kind, code, exitBadArgs)
			case r.run && r.kind == string(nemesis.LoseUnsynced) && strings.Contains(stderr, "needs FUSE"):
				t.Logf("no FUSE here: lose-unsynced refused as documented")
			case r.run && !strings.Contains(stderr, "--clock-skew"):
				t.Errorf("chaos run --nemesis %s refused, the fault table says yes: %s", r.kind, stderr)
			case !r.run && !(strings.Contains(stderr, "--nemesis") && strings.Contains(stderr, r.kind)):
				t.Errorf("chaos run --nemesis %s not refused by name, the fault table says no: %s", r.kind, stderr)
			}
			code, stderr = runCLI(t, append([]string{"sim", "--nemesis", r.kind, "--ops", "0"}, simSetup[r.kind]...)...)
			switch {
			case code != exitBadArgs:
				t.Errorf("chaos sim --nemesis %s --ops 0: exit %d, want %d", r.kind, code, exitBadArgs)
			case r.sim && !strings.Contains(stderr, "--ops"):
				t.Errorf("chaos sim --nemesis %s refused, the fault table says yes: %s", r.kind, stderr)
			case !r.sim && !(strings.Contains(stderr, "--nemesis") && strings.Contains(stderr, r.kind)):
				t.Errorf("chaos sim --nemesis %s not refused by name, the fault table says no: %s", r.kind, stderr)
			}
		})
	}
}

// TestSimRunsEveryTableKind runs each kind the fault table gives chaos sim
// for two short seeds.
func TestSimRunsEveryTableKind(t *testing.T) {
	for _, r := range readFaultTable(t) {
		if !r.sim {
			continue
		}
		if code := run(append([]string{"chaos", "sim", "--nemesis", r.kind, "--seeds", "2", "--ops", "150", "--store", t.TempDir()}, simSetup[r.kind]...)); code != exitValid {
			t.Errorf("chaos sim --nemesis %s --seeds 2 --ops 150: exit %d, want %d", r.kind, code, exitValid)
		}
	}
}
