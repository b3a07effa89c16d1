package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chaoskv/chaos/history"
)

func TestSimBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"--nemesis", "foo"},
		{"--nemesis", ""},
		{"--seeds", "0"},
		{"--ops", "0"},
		{"--replicas", "0"},
		{"--replicas", "65"},
		{"--replication", "nope"},
		{"--workload", "bank"},
		{"--history", "/tmp/x.jsonl"},
		{"--check-timeout", "0s"},
		{"--snapshot-every", "0"},
		{"--ops", "many"},
		{"extra"},
	} {
		if code := run(append([]string{"chaos", "sim"}, args...)); code != exitBadArgs {
			t.Errorf("chaos sim %q: exit %d, want %d", args, code, exitBadArgs)
		}
	}
}

func TestSimRunsAndReplays(t *testing.T) {
	if code := run([]string{"chaos", "sim", "--seeds", "4", "--ops", "200", "--nemesis", "all"}); code != exitValid {
		t.Fatalf("chaos sim on 4 seeds: exit %d, want %d", code, exitValid)
	}
	dir := t.TempDir()
	var hist [2][]byte
	for i := range hist {
		path := filepath.Join(dir, fmt.Sprintf("h%d.jsonl", i))
		if code := run([]string{"chaos", "sim", "--nemesis", "partition,kill", "--ops", "200", "--seed", "3", "--history", path}); code != exitValid {
			t.Fatalf("chaos sim --seed 3: exit %d", code)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		hist[i] = b
	}
	if !bytes.Equal(hist[0], hist[1]) {
		t.Fatal("replaying seed 3 wrote a different history")
	}
	ops, err := history.ReadAll(bytes.NewReader(hist[0]))
	if err != nil {
		t.Fatalf("the written history does not parse: %v", err)
	}
	if len(ops) < 400 {
		t.Fatalf("history has %d ops, want at least 400", len(ops))
	}
}
