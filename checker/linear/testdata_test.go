package linear

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// The porcupine test data lives outside the module and is read in place.
const testdata = "../../../shared/testdata"

type manifestCase struct {
	Expected any `json:"expected_linearizable"` // true, false or "skip"
}

func readManifest(t *testing.T, dir string) map[string]manifestCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "MANIFEST.json"))
	if err != nil {
		t.Skipf("test data not available: %v", err)
	}
	var m struct {
		Cases map[string]manifestCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s/MANIFEST.json: %v", dir, err)
	}
	if len(m.Cases) == 0 {
		t.Fatalf("%s/MANIFEST.json lists no cases", dir)
	}
	return m.Cases
}

// readHistory reads a test file as `chaos check` does: the etcd logs are
// Jepsen text logs, the kv files EDN maps with :key and :value.
func readHistory(path string) ([]history.Op, error) { return history.ReadFile(path, "") }

// shortSubset is the part of the porcupine data checked under -short.
var shortSubset = map[string]bool{
	"etcd_000.log": true, "etcd_001.log": true, "etcd_002.log": true, "etcd_007.log": true,
	"etcd_040.log": true, "etcd_099.log": true, "etcd_100.log": true,
	"c01-ok.txt": true, "c01-bad.txt": true, "c10-ok.txt": true, "c10-bad.txt": true,
}

func checkManifest(t *testing.T, dir, model string, read func(string) ([]history.Op, error)) {
	cases := readManifest(t, dir)
	names := make([]string, 0, len(cases))
	for name := range cases {
		names = append(names, name)
	}
	sort.Strings(names)
	start := time.Now()
	checked := 0
	for _, name := range names {
		want := cases[name].Expected
		if want == "skip" {
			continue
		}
		if testing.Short() && !shortSubset[name] {
			continue
		}
		checked++
		t.Run(name, func(t *testing.T) {
			ops, err := read(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Check(model, ops, Options{Timeout: 60 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			wantV := checker.Invalid
			if want == true {
				wantV = checker.Valid
			}
			if res.Valid != wantV {
				t.Fatalf("valid = %v, want %v per MANIFEST.json (%s)", res.Valid, wantV, res.Summary)
			}
		})
	}
	t.Logf("%d cases of %s checked in %s", checked, dir, time.Since(start).Round(time.Millisecond))
}

func TestPorcupineEtcd(t *testing.T) {
	checkManifest(t, filepath.Join(testdata, "porcupine-etcd"), "cas-register", readHistory)
}

func TestPorcupineKV(t *testing.T) {
	checkManifest(t, filepath.Join(testdata, "porcupine-kv"), "kv", readHistory)
}
