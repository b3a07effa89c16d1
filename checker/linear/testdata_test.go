package linear

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

// readEtcdLog converts a Jepsen etcd log ("INFO  jepsen.util - 0\t:invoke\t
// :read\tnil") into history ops of an unkeyed cas-register.
func readEtcdLog(path string) ([]history.Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []history.Op
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		_, rest, ok := strings.Cut(text, "jepsen.util - ")
		if !ok {
			if strings.TrimSpace(text) == "" {
				continue
			}
			return nil, fmt.Errorf("%s:%d: not a jepsen.util line", path, line)
		}
		fields := strings.Fields(rest)
		if len(fields) < 4 {
			return nil, fmt.Errorf("%s:%d: want process, type, f and value", path, line)
		}
		proc, err := strconv.Atoi(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: process: %w", path, line, err)
		}
		typ, err := history.ParseType(strings.TrimPrefix(fields[1], ":"))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		value, err := history.ParseEDN([]byte(strings.Join(fields[3:], " ")))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: value: %w", path, line, err)
		}
		ops = append(ops, history.Op{
			Index: int64(len(ops)), Type: typ, Process: history.Process(proc),
			F: strings.TrimPrefix(fields[2], ":"), Value: value,
		})
	}
	return ops, sc.Err()
}

// readKVLog converts porcupine's kv data (one EDN map per line with :key
// and :value) into history ops with value [key, value].
func readKVLog(path string) ([]history.Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []history.Op
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		v, err := history.ParseEDN(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s:%d: not a map", path, line)
		}
		proc, ok := m["process"].(int64)
		if !ok {
			return nil, fmt.Errorf("%s:%d: no integer :process", path, line)
		}
		ts, _ := m["type"].(string)
		typ, err := history.ParseType(ts)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		f, _ := m["f"].(string)
		ops = append(ops, history.Op{
			Index: int64(len(ops)), Type: typ, Process: history.Process(proc),
			F: f, Value: []any{m["key"], m["value"]},
		})
	}
	return ops, sc.Err()
}

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
	checkManifest(t, filepath.Join(testdata, "porcupine-etcd"), "cas-register", readEtcdLog)
}

func TestPorcupineKV(t *testing.T) {
	checkManifest(t, filepath.Join(testdata, "porcupine-kv"), "kv", readKVLog)
}
