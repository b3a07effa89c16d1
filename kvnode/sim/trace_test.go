package sim

import (
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/nemesis"
)

// mapOrderCore sends each Ready's messages in map iteration order: a
// deliberately nondeterministic core, as a core that ranges over a map of
// peers to send would be.
type mapOrderCore struct{ replica.Replicator }

func (m mapOrderCore) Ready() replica.Ready {
	rd := m.Replicator.Ready()
	byIndex := map[int]replica.Message{}
	for i, msg := range rd.Messages {
		byIndex[i] = msg
	}
	rd.Messages = rd.Messages[:0]
	for _, msg := range byIndex {
		rd.Messages = append(rd.Messages, msg)
	}
	return rd
}

func mapOrderFactory(t *testing.T) Factory {
	base, err := Lookup("paxos")
	if err != nil {
		t.Fatal(err)
	}
	return func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
		r, err := base(cfg, sm, d)
		return mapOrderCore{r}, err
	}
}

func TestCheckDeterminism(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want bool // a divergence
	}{
		{"paxos", Config{Seed: 3, Ops: 200, Nemesis: []nemesis.Kind{nemesis.Partition, nemesis.Kill, nemesis.ClockStrobe}}, false},
		{"fake core, one key", Config{Seed: 5, Ops: 200, Keys: 1, Factory: fakeFactory(false), Nemesis: []nemesis.Kind{nemesis.Loss, nemesis.Dup}}, false},
		{"list-append", Config{Seed: 2, Ops: 60, Workload: "list-append", Nemesis: []nemesis.Kind{nemesis.Partition}}, false},
		{"map-order core", Config{Seed: 3, Ops: 200, Factory: mapOrderFactory(t), Nemesis: []nemesis.Kind{nemesis.Partition}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, div, err := CheckDeterminism(tt.cfg, 4)
			if err != nil {
				t.Fatal(err)
			}
			if res == nil || len(res.History) == 0 {
				t.Fatal("no result of the first run")
			}
			if !tt.want {
				if div != nil {
					t.Fatalf("a deterministic run was reported as diverging:\n%s", div)
				}
				return
			}
			if div == nil {
				t.Fatal("two runs of a core that sends in map order were reported identical")
			}
			if len(div.First) == 0 || len(div.First) > 4 || len(div.Second) == 0 || div.First[0] == div.Second[0] {
				t.Fatalf("the divergence does not show the differing steps:\n%s", div)
			}
			if !strings.Contains(div.String(), "not deterministic") || !strings.HasPrefix(div.First[0], "#") {
				t.Fatalf("divergence text: %s", div)
			}
			t.Logf("%s", div)
		})
	}
}
