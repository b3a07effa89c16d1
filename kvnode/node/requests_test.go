package node

import (
	"errors"
	"reflect"
	"testing"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// proposer is a core that only takes proposals, refusing them with err.
type proposer struct {
	replica.Replicator
	err  error
	took []replica.Request
}

func (p *proposer) Propose(reqs ...replica.Request) error {
	if p.err == nil {
		p.took = append(p.took, reqs...)
	}
	return p.err
}

// deferrer defers the results "pending" and answers from its table.
type deferrer map[waitKey]string

func (d deferrer) Deferred(v []byte) bool { return string(v) == "pending" }

func (d deferrer) Answer(client, seq uint64) ([]byte, bool) {
	v, ok := d[waitKey{client, seq}]
	if !ok {
		return nil, false
	}
	if v == "" {
		return nil, true // stale
	}
	return []byte(v), true
}

type answer struct {
	to     string
	id     uint64
	status wire.Status
	leader uint32
	value  string
}

func TestRequests(t *testing.T) {
	req := func(c, s uint64) replica.Request { return replica.Request{ClientID: c, Seq: s, Op: []byte("op")} }
	res := func(c, s uint64, v string) replica.Result {
		r := replica.Result{ClientID: c, Seq: s}
		if v != "" {
			r.Value = []byte(v)
		}
		return r
	}
	type step func(q *Requests[string], core *proposer, ans func(string, wire.Response))
	sm := deferrer{}
	add := func(id, c, s uint64, to string) step {
		return func(q *Requests[string], _ *proposer, _ func(string, wire.Response)) { q.Add(id, req(c, s), to) }
	}
	propose := func(err error) step {
		return func(q *Requests[string], core *proposer, ans func(string, wire.Response)) {
			core.err = err
			q.Propose(core, ans)
		}
	}
	release := func(rs ...replica.Result) step {
		return func(q *Requests[string], _ *proposer, ans func(string, wire.Response)) { q.Release(rs, sm, ans) }
	}
	decide := func(c, s uint64, v string) step {
		return func(*Requests[string], *proposer, func(string, wire.Response)) { sm[waitKey{c, s}] = v }
	}
	observe := func(leader replica.NodeID) step {
		return func(q *Requests[string], _ *proposer, ans func(string, wire.Response)) { q.Observe(1, leader, ans) }
	}
	cases := []struct {
		name  string
		steps []step
		want  []answer
	}{
		{"accepted then released", []step{add(7, 1, 1, "a"), propose(nil), release(res(1, 1, "v"))},
			[]answer{{"a", 7, wire.StatusOK, 0, "v"}}},
		{"result of another seq answers nobody", []step{add(7, 1, 2, "a"), propose(nil), release(res(1, 1, "v"))}, nil},
		{"a retry waits beside the first attempt", []step{add(7, 1, 1, "a"), add(8, 1, 1, "b"), propose(nil), release(res(1, 1, "v"))},
			[]answer{{"a", 7, wire.StatusOK, 0, "v"}, {"b", 8, wire.StatusOK, 0, "v"}}},
		{"stale request is unknown", []step{add(7, 1, 1, "a"), propose(nil), release(res(1, 1, ""))},
			[]answer{{"a", 7, wire.StatusUnknown, 0, ""}}},
		{"not leader is definite, with the hint", []step{add(7, 1, 1, "a"), add(8, 2, 1, "b"), propose(&replica.NotLeaderError{Leader: 3})},
			[]answer{{"a", 7, wire.StatusNotLeader, 3, ""}, {"b", 8, wire.StatusNotLeader, 3, ""}}},
		{"other refusal is unknown", []step{add(7, 1, 1, "a"), propose(errors.New("full"))},
			[]answer{{"a", 7, wire.StatusUnknown, 0, ""}}},
		{"leadership lost: waiting and batched are unknown, in key order", []step{add(7, 2, 1, "a"), add(8, 1, 5, "b"), propose(nil), add(9, 3, 1, "c"), observe(2), release(res(2, 1, "v"))},
			[]answer{{"b", 8, wire.StatusUnknown, 2, ""}, {"a", 7, wire.StatusUnknown, 2, ""}, {"c", 9, wire.StatusUnknown, 0, ""}}},
		{"still leading: nothing", []step{add(7, 1, 1, "a"), propose(nil), observe(1)}, nil},
		{"deferred: held until a later release finds the answer", []step{add(7, 1, 1, "a"), propose(nil), release(res(1, 1, "pending")),
			release(res(9, 1, "other")), decide(1, 1, "v"), release(res(9, 2, "vote"))},
			[]answer{{"a", 7, wire.StatusOK, 0, "v"}}},
		{"deferred and decided in one release", []step{add(7, 1, 1, "a"), propose(nil), decide(1, 1, "v"), release(res(1, 1, "pending"), res(9, 1, "vote"))},
			[]answer{{"a", 7, wire.StatusOK, 0, "v"}}},
		{"held answers go in key order", []step{add(7, 2, 1, "a"), add(8, 1, 1, "b"), propose(nil), release(res(2, 1, "pending"), res(1, 1, "pending")),
			decide(1, 1, "v"), decide(2, 1, "w"), release(res(9, 1, "vote"))},
			[]answer{{"b", 8, wire.StatusOK, 0, "v"}, {"a", 7, wire.StatusOK, 0, "w"}}},
		{"a retry's definite result answers the held attempt too", []step{add(7, 1, 1, "a"), propose(nil), release(res(1, 1, "pending")),
			add(8, 1, 1, "b"), propose(nil), release(res(1, 1, "v"))},
			[]answer{{"a", 7, wire.StatusOK, 0, "v"}, {"b", 8, wire.StatusOK, 0, "v"}}},
		{"a held request the client moved past is unknown", []step{add(7, 1, 1, "a"), propose(nil), release(res(1, 1, "pending")),
			decide(1, 1, ""), release(res(9, 1, "vote"))},
			[]answer{{"a", 7, wire.StatusUnknown, 0, ""}}},
		{"leadership lost: held requests are unknown", []step{add(7, 1, 1, "a"), propose(nil), release(res(1, 1, "pending")), observe(2)},
			[]answer{{"a", 7, wire.StatusUnknown, 2, ""}}},
		{"held without a release of anything: still waiting", []step{add(7, 1, 1, "a"), propose(nil), release(res(1, 1, "pending")), decide(1, 1, "v"), release()}, nil},
	}
	for _, c := range cases {
		clear(sm)
		var q Requests[string]
		core := &proposer{}
		var got []answer
		ans := func(to string, r wire.Response) {
			got = append(got, answer{to, r.ID, r.Status, r.Leader, string(r.Value)})
		}
		for _, s := range c.steps {
			s(&q, core, ans)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: answers\n got %+v\nwant %+v", c.name, got, c.want)
		}
		if q.Batched() != 0 {
			t.Errorf("%s: %d requests left in the batch", c.name, q.Batched())
		}
	}
}
