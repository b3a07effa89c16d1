package node

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
)

func TestPipelineRuns(t *testing.T) {
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
		want []int // Readies per write
	}{
		{"all plain", []replica.Ready{plain(1), plain(2), plain(3)}, []int{3}},
		{"truncate alone", []replica.Ready{plain(1), trunc(2), plain(3), plain(4)}, []int{1, 1, 2}},
		{"truncate first", []replica.Ready{trunc(1), plain(2)}, []int{1, 1}},
		{"snapshot ends a run", []replica.Ready{plain(1), snap(2), plain(3)}, []int{2, 1}},
	}
	for _, c := range cases {
		var pl Pipeline
		for _, rd := range c.rds {
			if pl.Push(rd) {
				t.Fatalf("%s: a Ready with a Persist was released at once", c.name)
			}
		}
		var got []int
		var next uint64 = 1
		for {
			w, ok := pl.Next()
			if !ok {
				break
			}
			if _, again := pl.Next(); again {
				t.Fatalf("%s: a second write began before the first was done", c.name)
			}
			if len(w.Entries) == 0 || w.Entries[0].Index != next {
				t.Fatalf("%s: write %+v out of order, want entry %d first", c.name, w, next)
			}
			rds := pl.Done()
			next += uint64(len(rds))
			got = append(got, len(rds))
		}
		if !reflect.DeepEqual(got, c.want) || pl.Busy() {
			t.Errorf("%s: writes %v, want %v (busy %v)", c.name, got, c.want, pl.Busy())
		}
	}
	var pl Pipeline
	for _, rd := range []replica.Ready{plain(1), plain(2), snap(3)} {
		pl.Push(rd)
	}
	p, _ := pl.Next()
	if string(p.State) != "\x02" || len(p.Entries) != 3 || p.Entries[2].Index != 3 || p.Snapshot == nil || p.Snapshot.Index != 3 || p.Truncate {
		t.Fatalf("merged %+v", p)
	}
}

func TestPipelineReleasesInOrder(t *testing.T) {
	var pl Pipeline
	msg := func(i int) replica.Ready { return replica.Ready{Results: []replica.Result{{Seq: uint64(i)}}} }
	if !pl.Push(msg(1)) {
		t.Fatal("a Ready with nothing to persist and nothing before it must be released at once")
	}
	pl.Push(replica.Ready{Persist: replica.Persist{State: []byte{1}}})
	if pl.Push(msg(2)) {
		t.Fatal("a Ready behind an unsynced write was released at once")
	}
	if _, ok := pl.Next(); !ok {
		t.Fatal("no write")
	}
	rds := pl.Done()
	if len(rds) != 2 || rds[1].Results[0].Seq != 2 {
		t.Fatalf("released %+v", rds)
	}
	if pl.Busy() {
		t.Fatal("busy after everything was released")
	}
}

// logStorage records the calls a Pipeline makes.
type logStorage struct {
	log      *[]string
	failSync bool
}

func (s logStorage) Write(p *replica.Persist) error {
	*s.log = append(*s.log, "write")
	return nil
}

func (s logStorage) Sync() error {
	*s.log = append(*s.log, "sync")
	if s.failSync {
		return errors.New("disk on fire")
	}
	return nil
}

func (s logStorage) Load() (*replica.Durable, error) { return &replica.Durable{}, nil }

func TestPipelineReleasesOnlyAfterSync(t *testing.T) {
	for _, fail := range []bool{false, true} {
		var log []string
		st := logStorage{&log, fail}
		var pl Pipeline
		pl.Push(replica.Ready{Persist: replica.Persist{State: []byte{1}}})
		pl.Push(replica.Ready{Persist: replica.Persist{Truncate: true}})
		for {
			started, err := pl.Start(st)
			if err != nil {
				t.Fatal(err)
			}
			if !started {
				break
			}
			if again, _ := pl.Start(st); again {
				t.Fatal("a second write started before the first was synced")
			}
			err = pl.Finish(st, func(*replica.Ready) bool { log = append(log, "release"); return true })
			if fail {
				if err == nil {
					t.Fatal("a failed sync was not reported")
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		want := "write sync release write sync release"
		if fail {
			want = "write sync"
		}
		if got := strings.Join(log, " "); got != want {
			t.Errorf("failSync=%v: %s, want %s", fail, got, want)
		}
	}
}
