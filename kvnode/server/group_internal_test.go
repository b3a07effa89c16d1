package server

import (
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

func TestRuns(t *testing.T) {
	e := func(i uint64) []replica.Entry { return []replica.Entry{{Index: i}} }
	plain := func(i uint64) replica.Ready {
		return replica.Ready{Persist: replica.Persist{State: []byte{byte(i)}, Entries: e(i)}}
	}
	trunc := func(i uint64) replica.Ready {
		return replica.Ready{Persist: replica.Persist{State: []byte{byte(i)}, Truncate: true, TruncateAfter: i - 1, Entries: e(i)}}
	}
	snap := func(i uint64) replica.Ready {
		return replica.Ready{Persist: replica.Persist{Entries: e(i), Snapshot: &replica.Snapshot{Index: i}}}
	}
	cases := []struct {
		name string
		rds  []replica.Ready
		want [][2]int
	}{
		{"all plain", []replica.Ready{plain(1), plain(2), plain(3)}, [][2]int{{0, 3}}},
		{"truncate alone", []replica.Ready{plain(1), trunc(2), plain(3), plain(4)}, [][2]int{{0, 1}, {1, 2}, {2, 4}}},
		{"truncate first", []replica.Ready{trunc(1), plain(2)}, [][2]int{{0, 1}, {1, 2}}},
		{"snapshot ends a run", []replica.Ready{plain(1), snap(2), plain(3)}, [][2]int{{0, 2}, {2, 3}}},
	}
	for _, c := range cases {
		var got [][2]int
		for start := 0; start < len(c.rds); {
			end := runEnd(c.rds, start)
			got = append(got, [2]int{start, end})
			start = end
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: runs %v, want %v", c.name, got, c.want)
		}
	}
	var p replica.Persist
	mergePersist(&p, []replica.Ready{plain(1), plain(2), snap(3)})
	if string(p.State) != "\x02" || len(p.Entries) != 3 || p.Entries[2].Index != 3 || p.Snapshot == nil || p.Snapshot.Index != 3 || p.Truncate {
		t.Fatalf("merged %+v", p)
	}
}
