package main

import "testing"

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
		{"--ops", "many"},
		{"extra"},
	} {
		if code := run(append([]string{"chaos", "sim"}, args...)); code != exitBadArgs {
			t.Errorf("chaos sim %q: exit %d, want %d", args, code, exitBadArgs)
		}
	}
}
