package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/harness"
	"github.com/chaoskv/chaos/harness/dockerbackend/kvnodedb"
	"github.com/chaoskv/chaos/results"
	"github.com/chaoskv/chaos/workloads"
	"github.com/chaoskv/chaos/workloads/memtxn"
)

func TestRunTxnBadFlags(t *testing.T) {
	bin := os.Args[0]
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--workload", "list-append", "--consistency-models", "linearish"}, "--consistency-models"},
		{[]string{"--workload", "list-append", "--consistency-models", "serializable,"}, "--consistency-models"},
		{[]string{"--workload", "register", "--consistency-models", "serializable"}, "--consistency-models"},
		{[]string{"--workload", "list-append", "--replicas", "3"}, "one replica group"},
		{[]string{"--workload", "register", "--groups", "2"}, "--groups"},
		{[]string{"--workload", "bank", "--groups", "2", "--nodes", "3", "--replicas", "4"}, "--replicas"},
		{[]string{"--groups", "2", "--shards", "8"}, "--shards"},
		{[]string{"--shards", "16"}, "--shards"},
		{[]string{"--groups", "-1"}, "--groups"},
		{[]string{"--workload", "list-append", "--nemesis", "reconfig"}, "reconfig needs a sharded cluster"},
	}
	for _, tt := range tests {
		args := append([]string{"run", "--kvnode-binary", bin}, tt.args...)
		code, stderr := runCLI(t, args...)
		if code != exitBadArgs {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tt.args, code, exitBadArgs, stderr)
			continue
		}
		if !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: message %q does not say %q", tt.args, stderr, tt.want)
		}
	}
}

func TestRunTxnWorkloadsByVerdict(t *testing.T) {
	old := runBackend
	t.Cleanup(func() { runBackend = old })
	tests := []struct {
		workload string
		opts     memtxn.Options
		code     int
	}{
		{"list-append", memtxn.Options{LoseRate: 0.05, RefuseRate: 0.05}, exitValid},
		{"rw-register", memtxn.Options{LoseRate: 0.05}, exitValid},
		{"bank", memtxn.Options{RefuseRate: 0.05}, exitValid},
		{"list-append", memtxn.Options{StaleReadRate: 0.2}, exitInvalid},
		{"bank", memtxn.Options{TornRate: 0.1}, exitInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.workload, func(t *testing.T) {
			var shape kvnodedb.Options
			runBackend = func(_ context.Context, o kvnodedb.Options) (harness.Backend, func(), error) {
				shape = o
				return &memBackend{sut: func() workloads.SUT {
					s, err := memtxn.New(tt.opts)
					if err != nil {
						t.Fatal(err)
					}
					return s
				}}, func() {}, nil
			}
			store := t.TempDir()
			code, stderr := runCLI(t, "run", "--kvnode-binary", os.Args[0], "--workload", tt.workload, "--nemesis", "none",
				"--time-limit", "400ms", "--rate", "500", "--store", store, "--seed", "3")
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if shape.Replicas != shape.Nodes {
				t.Fatalf("transactional default shape %+v, want one group of every node", shape)
			}
			latest, err := results.Latest(store)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(latest, "history.jsonl")); err != nil {
				t.Fatalf("no history: %v", err)
			}
		})
	}
}
