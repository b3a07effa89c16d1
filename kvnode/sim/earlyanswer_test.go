package sim

import (
	"slices"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// countsItself is a leader that counts its own copy of what it proposes
// before that copy is durable, and answers early: the acknowledgement it
// sends itself goes straight back to the core instead of through the
// runtime after the write, and its entries, while it leads, reach the disk one Ready late.
// Nothing it sends acknowledges early, so only the check of its answers
// against the disks catches it.
type countsItself struct {
	inspected
	held []replica.Entry
}

func (c *countsItself) Ready() replica.Ready {
	rd := c.Replicator.Ready()
	if st := c.Replicator.Status(); st.Leader == st.ID {
		rd.Persist.Entries, c.held = c.held, slices.Clone(rd.Persist.Entries)
	} else if len(c.held) > 0 {
		rd.Persist.Entries, c.held = append(c.held, rd.Persist.Entries...), nil
	}
	late := rd.Messages[:0:0]
	for _, m := range rd.Messages {
		if m.Dest() == m.Source() {
			c.Replicator.Step(m)
		} else {
			late = append(late, m)
		}
	}
	rd.Messages = late
	return rd
}

func (*countsItself) AnswersEarly() bool { return true }

var _ replica.EarlyAnswerer = (*countsItself)(nil)

func TestEarlyAnswersRestOnAMajority(t *testing.T) {
	cases := []oracleCase{
		{"real node and core", "", func(*testing.T, string) func(*ClusterConfig) { return nil }},
		{"leader counts its own unsynced copy and answers early", "synced on the disks of only 1 of its 3 members", func(t *testing.T, proto string) func(*ClusterConfig) {
			return wrapFactory(t, proto, func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable, base Factory) (replica.Replicator, error) {
				r, err := base(cfg, sm, d)
				if err != nil {
					return nil, err
				}
				if ea, ok := r.(replica.EarlyAnswerer); !ok || !ea.AnswersEarly() {
					t.Fatalf("%s's core does not answer early", proto)
				}
				return &countsItself{inspected: inspected{r, r.(replica.Inspector)}}, nil
			})
		}},
	}
	runOracleCases(t, cases)
}

func TestSyncedAt(t *testing.T) {
	entries := func(idx ...uint64) []replica.Entry {
		var es []replica.Entry
		for _, i := range idx {
			es = append(es, replica.Entry{Index: i, Data: []byte{byte(i)}})
		}
		return es
	}
	cases := []struct {
		name     string
		stable   []replica.Persist // synced
		believed []replica.Persist // a lying Sync's
		pending  []replica.Persist // not synced
		x        uint64
		want     bool
	}{
		{"empty disk", nil, nil, nil, 1, false},
		{"synced entry", []replica.Persist{{Entries: entries(1, 2, 3)}}, nil, nil, 2, true},
		{"beyond the synced log", []replica.Persist{{Entries: entries(1, 2)}}, nil, nil, 3, false},
		{"pending only", []replica.Persist{{Entries: entries(1)}}, nil, []replica.Persist{{Entries: entries(2)}}, 2, false},
		{"under a synced snapshot", []replica.Persist{{Entries: entries(4)}, {Snapshot: &replica.Snapshot{Index: 3}}}, nil, nil, 2, true},
		{"truncated away", []replica.Persist{{Entries: entries(1, 2, 3)}, {Truncate: true, TruncateAfter: 1}}, nil, nil, 2, false},
		{"believed entry", nil, []replica.Persist{{Entries: entries(1)}}, nil, 1, true},
		{"believed snapshot", nil, []replica.Persist{{Snapshot: &replica.Snapshot{Index: 5}}}, nil, 5, true},
		{"believed truncation", []replica.Persist{{Entries: entries(1, 2)}}, []replica.Persist{{Truncate: true, TruncateAfter: 1}}, nil, 2, false},
		{"rewritten after a believed truncation", []replica.Persist{{Entries: entries(1, 2)}}, []replica.Persist{{Truncate: true, TruncateAfter: 1, Entries: entries(2)}}, nil, 2, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d disk
			for i := range tc.stable {
				d.stable.apply(&tc.stable[i], -1)
			}
			d.believed, d.pending = tc.believed, tc.pending
			if got := syncedAt(&d, tc.x); got != tc.want {
				t.Fatalf("syncedAt(%d) = %v, want %v", tc.x, got, tc.want)
			}
		})
	}
}

func TestOracleConfigs(t *testing.T) {
	ids := func(n ...replica.NodeID) []replica.NodeID { return n }
	type seen struct {
		ids  []replica.NodeID
		from uint64
	}
	cases := []struct {
		name     string
		seen     []seen
		majority uint64 // before the configurations are seen
		at       uint64
		want     []replica.NodeID
		wantMaj  uint64
	}{
		{"initial", nil, 9, 5, ids(1, 2, 3), 9},
		{"the initial one again, reordered", []seen{{ids(3, 1, 2), 1}}, 9, 5, ids(1, 2, 3), 9},
		{"a later one", []seen{{ids(1, 2, 4), 20}}, 9, 25, ids(1, 2, 4), 9},
		{"below a later one", []seen{{ids(1, 2, 4), 20}}, 9, 19, ids(1, 2, 3), 9},
		{"seen late: judged again", []seen{{ids(1, 2, 4), 6}}, 9, 6, ids(1, 2, 4), 5},
		{"seen out of order", []seen{{ids(1, 4, 5), 30}, {ids(1, 2, 4), 20}}, 9, 25, ids(1, 2, 4), 9},
		{"a core without membership", []seen{{nil, 0}}, 9, 5, ids(1, 2, 3), 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOracle(&Cluster{cfg: ClusterConfig{Replicas: 3}}, 3)
			o.majority = tc.majority
			for _, s := range tc.seen {
				o.sawConfig(s.ids, s.from)
			}
			if got := o.governing(tc.at); !sameMembers(got, tc.want) {
				t.Errorf("governing(%d) = %v, want %v", tc.at, got, tc.want)
			}
			if o.majority != tc.wantMaj {
				t.Errorf("majority = %d, want %d", o.majority, tc.wantMaj)
			}
		})
	}
}
