package sim

import (
	"encoding/binary"
	"errors"

	"github.com/chaoskv/chaos/kvnode/kv"
	"github.com/chaoskv/chaos/kvnode/replica"
)

// fakeCore is a deliberately simple replication core for testing the
// simulator itself: node 1 is the permanent primary, applies requests as
// they arrive, persists them before answering and streams them to the
// backups. It is linearizable (only the primary answers, from its durable
// log) but not available while node 1 is down. With staleReads set, backups
// answer reads from their own, possibly old, state: a linearizability bug
// the checker must catch.
type fakeCore struct {
	cfg        replica.Config
	sm         replica.StateMachine
	staleReads bool
	applied    uint64
	snapIndex  uint64
	log        []replica.Request // entries snapIndex+1 .. applied, for the backups
	match      map[replica.NodeID]uint64
	ticks      int
	out        replica.Ready
}

type fakeMsg struct {
	from, to replica.NodeID
	first    uint64            // index of reqs[0]
	reqs     []replica.Request // primary -> backup
	snap     *replica.Snapshot // primary -> backup, when the log no longer reaches back
	ack      bool              // backup -> primary: applied is the backup's applied index
	applied  uint64
}

func (m *fakeMsg) Source() replica.NodeID { return m.from }
func (m *fakeMsg) Dest() replica.NodeID   { return m.to }

func encodeReq(r replica.Request) []byte {
	b := binary.AppendUvarint(nil, r.ClientID)
	b = binary.AppendUvarint(b, r.Seq)
	return append(b, r.Op...)
}

func decodeReq(b []byte) (replica.Request, error) {
	c, n := binary.Uvarint(b)
	if n <= 0 {
		return replica.Request{}, errors.New("fake: bad entry")
	}
	s, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return replica.Request{}, errors.New("fake: bad entry")
	}
	return replica.Request{ClientID: c, Seq: s, Op: b[n+m:]}, nil
}

func fakeFactory(staleReads bool) Factory {
	return func(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (replica.Replicator, error) {
		f := &fakeCore{cfg: cfg, sm: sm, staleReads: staleReads, match: map[replica.NodeID]uint64{}}
		if d.Snapshot != nil {
			if err := sm.Restore(d.Snapshot.Data); err != nil {
				return nil, err
			}
			f.applied, f.snapIndex = d.Snapshot.Index, d.Snapshot.Index
		}
		for _, e := range d.Entries {
			if e.Index != f.applied+1 {
				return nil, errors.New("fake: gap in durable log")
			}
			req, err := decodeReq(e.Data)
			if err != nil {
				return nil, err
			}
			f.applyOne(req, false)
		}
		return f, nil
	}
}

func (f *fakeCore) primary() bool { return f.cfg.ID == 1 }

func (f *fakeCore) applyOne(req replica.Request, emit bool) {
	f.applied++
	v := f.sm.Apply(f.applied, req)
	f.log = append(f.log, req)
	if emit {
		f.out.Persist.Entries = append(f.out.Persist.Entries, replica.Entry{Index: f.applied, Data: encodeReq(req)})
		f.out.Results = append(f.out.Results, replica.Result{ClientID: req.ClientID, Seq: req.Seq, Index: f.applied, Value: v})
		if f.cfg.SnapshotEvery > 0 && f.applied%f.cfg.SnapshotEvery == 0 {
			data, _ := f.sm.Snapshot()
			f.out.Persist.Snapshot = &replica.Snapshot{Index: f.applied, Data: data}
			f.snapIndex = f.applied
			if f.primary() {
				// Keep a tail for backups that lag a little.
				if keep := 16; len(f.log) > keep {
					f.log = append([]replica.Request(nil), f.log[len(f.log)-keep:]...)
				}
			} else {
				f.log = f.log[:0]
			}
		}
	}
}

func (f *fakeCore) Tick() {
	f.ticks++
	if !f.primary() || f.ticks%f.cfg.HeartbeatTicks != 0 {
		return
	}
	first := f.applied - uint64(len(f.log)) + 1
	for _, p := range f.cfg.Peers {
		if p == f.cfg.ID {
			continue
		}
		m := &fakeMsg{from: f.cfg.ID, to: p}
		switch next := f.match[p] + 1; {
		case next > f.applied:
		case next >= first:
			m.first = next
			m.reqs = append([]replica.Request(nil), f.log[next-first:]...)
		default:
			data, _ := f.sm.Snapshot()
			m.snap = &replica.Snapshot{Index: f.applied, Data: data}
		}
		f.out.Messages = append(f.out.Messages, m)
	}
}

func (f *fakeCore) Step(msg replica.Message) {
	m, ok := msg.(*fakeMsg)
	if !ok {
		return
	}
	if f.primary() {
		if m.ack && m.applied > f.match[m.from] {
			f.match[m.from] = m.applied
		}
		return
	}
	if m.snap != nil && m.snap.Index > f.applied {
		if err := f.sm.Restore(m.snap.Data); err == nil {
			f.applied, f.snapIndex, f.log = m.snap.Index, m.snap.Index, nil
			f.out.Persist.Snapshot = m.snap
		}
	}
	for i, req := range m.reqs {
		if m.first+uint64(i) == f.applied+1 {
			f.applyOne(req, true)
		}
	}
	f.out.Messages = append(f.out.Messages, &fakeMsg{from: f.cfg.ID, to: m.from, ack: true, applied: f.applied})
}

func (f *fakeCore) Propose(reqs ...replica.Request) error {
	if f.primary() {
		for _, r := range reqs {
			f.applyOne(r, true)
		}
		return nil
	}
	if f.staleReads {
		for _, r := range reqs {
			op, err := kv.DecodeOp(r.Op)
			if err != nil || op.Kind != kv.Get {
				return &replica.NotLeaderError{Leader: 1}
			}
			v, found := f.sm.(*watchedSM).StateMachine.(*kv.Store).Get(op.Key)
			f.out.Results = append(f.out.Results, replica.Result{ClientID: r.ClientID, Seq: r.Seq, Value: kv.Reply{Value: v, Found: found, Ok: true}.Encode()})
		}
		return nil
	}
	return &replica.NotLeaderError{Leader: 1}
}

func (f *fakeCore) Ready() replica.Ready {
	rd := f.out
	f.out = replica.Ready{}
	return rd
}

func (f *fakeCore) HasReady() bool { return !f.out.Empty() }

func (f *fakeCore) Status() replica.Status {
	role := "follower"
	if f.primary() {
		role = "leader"
	}
	return replica.Status{ID: f.cfg.ID, Role: role, Leader: 1, Commit: f.applied, Applied: f.applied,
		LogLen: int(f.applied - f.snapIndex), SnapshotIndex: f.snapIndex}
}

func newKV() replica.StateMachine { return kv.NewStore() }
