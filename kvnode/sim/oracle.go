package sim

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// Violation is a safety property broken at one step of a simulation. The
// oracles check, while the simulation runs rather than only on its history:
//   - a log index is chosen with one value only, ever, across every replica
//     and restart (each replica applies the same requests at it);
//   - the applied prefixes of the replicas agree (the same request at the
//     same index gives the same result everywhere; a replica never applies
//     an index below one it already applied; snapshots at the same index
//     hold the same state);
//   - a replica never promises, accepts or votes below what it promised
//     before, across restarts;
//   - nothing that acknowledges state leaves a node before that state is
//     durable: a node releases a Ready's Messages only after its disk
//     synced it, a message that vouches for a promise leaves only once the
//     promise is in the synced hard state, and the Early messages that
//     leave before the sync (a leader's proposals and heartbeats) include
//     nothing that acknowledges or vouches (replica.Inspector's
//     Acknowledges and Vouches). A commit index that an Early message
//     carries is held by the first oracle: a commit that counted the
//     leader's unsynced write would, after a crash that loses it, let a
//     second value be chosen at that index;
//   - answers rest on durable state. A core that is not a
//     replica.EarlyAnswerer has a Ready's Results released only after its
//     disk synced it. An early answerer's Results and confirmed Reads may
//     leave before its own writes are synced, but each must rest on state
//     synced on a majority: every log index up to a Result's Index, and up
//     to the index the node's state machine applied when it answers a
//     read, must have been synced (as an entry, or under a snapshot) on
//     the disks of a majority of the configuration that governs it, at
//     some moment no later than the answer. A leader that counted its own
//     unsynced copy towards a commit and answered is caught here, crash or
//     no crash.
//
// The promise and Early checks need the core to implement
// replica.Inspector; cores that do not are checked by the others only. In
// a sharded world the groups' oracles share a txnOracle, which checks
// two-phase commit on every step.
type Violation struct {
	Step  int64         // the simulation step (event) at which it was seen
	At    time.Duration // virtual time
	Group string        // the cluster's Label
	Node  replica.NodeID
	What  string
}

// violation returns err's Violation, or nil.
func violation(err error) *Violation {
	var v *Violation
	if errors.As(err, &v) {
		return v
	}
	return nil
}

func (v *Violation) Error() string {
	g := ""
	if v.Group != "" {
		g = v.Group + ", "
	}
	return fmt.Sprintf("safety violation at step %d (%v), %snode %d: %s", v.Step, v.At, g, v.Node, v.What)
}

// oracle holds what the checks remember about one group, across every
// replica and incarnation.
type oracle struct {
	c *Cluster
	// slots[index] lists what was applied at index, in order: a digest of
	// each request and of its result, and the node that applied it first.
	slots [][]applied
	// snaps[index] is the first snapshot taken at index.
	snaps map[uint64]snapSeen
	// vouched[i] is the highest promise node i's messages ever carried.
	vouched []uint64
	// promised[i] is node i's promise when last looked at, this
	// incarnation.
	promised []uint64
	decoded  []decodedState
	// txn, in a sharded world, is the two-phase-commit oracle every
	// group's oracle shares.
	txn *txnOracle
	// configs are the group's configurations seen so far, ascending by
	// the first log index each governs; the first is the initial one.
	configs []config
	// majority is the log index up to which every index was seen synced
	// on a majority of the configuration governing it. An answer needs
	// that at some moment, not still (see answersDurable), so it only
	// moves up, except back to the start of a configuration seen late.
	majority uint64
	// short caches advance's answer until a disk changes what it holds
	// synced or a configuration is seen; shortSync is advance's count of
	// the disks' changes then.
	short     shortOf
	shortSync uint64
}

// shortOf is the first index not synced on a majority: the index, how
// many members hold it, and the members; x == 0 when not known.
type shortOf struct {
	x    uint64
	held int
	ids  []replica.NodeID
}

// config is a group configuration and the first log index it governs.
type config struct {
	from uint64
	ids  []replica.NodeID
}

type applied struct {
	req, res uint64
	node     replica.NodeID
}

type snapSeen struct {
	data []byte // a snapshot's data is never changed once taken
	node replica.NodeID
}

var digestSeed = maphash.MakeSeed()

// digest identifies a request or a result; collisions are negligible at
// 64 bits for the few thousand a run compares.
func digest(clientID, seq uint64, b []byte) uint64 {
	return maphash.Bytes(digestSeed, b) ^ (clientID*0x9e3779b97f4a7c15 + seq*0xc2b2ae3d27d4eb4f)
}

func newOracle(c *Cluster, n int) *oracle {
	initial := make([]replica.NodeID, c.cfg.Replicas)
	for i := range initial {
		initial[i] = replica.NodeID(i + 1)
	}
	return &oracle{c: c, snaps: map[uint64]snapSeen{}, vouched: make([]uint64, n), promised: make([]uint64, n), decoded: make([]decodedState, n),
		configs: []config{{from: 1, ids: initial}}}
}

func (o *oracle) violate(i int, format string, args ...any) {
	o.c.fail(&Violation{Step: *o.c.steps, At: o.c.Now(), Group: o.c.cfg.Label, Node: o.c.nodes[i].id, What: fmt.Sprintf(format, args...)})
}

// watchedSM is the state machine a core gets: it reports every application
// to the oracle.
type watchedSM struct {
	replica.StateMachine
	o    *oracle
	i    int    // node index
	last uint64 // the last index applied this incarnation (0 after a restore)
	k    int    // requests applied at last so far
}

func (w *watchedSM) Apply(index uint64, req replica.Request) []byte {
	res := w.StateMachine.Apply(index, req)
	w.o.applied(w, index, req, res)
	w.o.txnApplied(w.i, w.StateMachine)
	if c := w.o.c; c.trap != nil && c.trap.moment == momentDecide && c.cfg.MayDecide != nil && c.cfg.MayDecide(req.Op) {
		c.nodes[w.i].decided = true
	}
	return res
}

func (w *watchedSM) Snapshot() ([]byte, error) {
	b, err := w.StateMachine.Snapshot()
	if err == nil {
		w.o.snapshotted(w.i, w.StateMachine, b)
	}
	return b, err
}

func (w *watchedSM) Restore(data []byte) error {
	w.last, w.k = 0, 0
	return w.StateMachine.Restore(data)
}

func (o *oracle) applied(w *watchedSM, index uint64, req replica.Request, res []byte) {
	switch {
	case index < w.last:
		o.violate(w.i, "applied index %d after index %d", index, w.last)
		return
	case index == w.last:
		w.k++
	default:
		if w.last > 0 {
			if n := len(o.slot(w.last)); w.k+1 != n {
				o.violate(w.i, "replicas diverged: it applied %d requests at index %d, node %d applied %d", w.k+1, w.last, o.slots[w.last][n-1].node, n)
				return
			}
		}
		w.last, w.k = index, 0
	}
	a := applied{req: digest(req.ClientID, req.Seq, req.Op), res: digest(0, 0, res), node: o.c.nodes[w.i].id}
	seen := o.slot(index)
	if w.k < len(seen) {
		s := seen[w.k]
		switch {
		case s.req != a.req:
			o.violate(w.i, "index %d was chosen with two values: request %d there differs from the one node %d applied (client %d seq %d here)", index, w.k, s.node, req.ClientID, req.Seq)
		case s.res != a.res:
			o.violate(w.i, "replicas diverged: request %d at index %d (client %d seq %d) gave a different result than at node %d", w.k, index, req.ClientID, req.Seq, s.node)
		}
		return
	}
	if w.k > len(seen) {
		o.violate(w.i, "index %d: applied request %d of it without the ones before", index, w.k)
		return
	}
	if index > uint64(len(o.slots))+1<<20 {
		o.violate(w.i, "applied index %d, far beyond every index applied so far", index)
		return
	}
	for uint64(len(o.slots)) <= index {
		o.slots = append(o.slots, nil)
	}
	o.slots[index] = append(seen, a)
}

// slot returns what was applied at index so far.
func (o *oracle) slot(index uint64) []applied {
	if index < uint64(len(o.slots)) {
		return o.slots[index]
	}
	return nil
}

// started checks a replica that just (re)started: it must not promise less
// than its messages vouched for before.
func (o *oracle) started(i int) {
	insp, ok := o.c.nodes[i].rep.Core.(replica.Inspector)
	if !ok {
		return
	}
	p := insp.Promised()
	if p < o.vouched[i] {
		o.violate(i, "restarted promising %#x, below the %#x its messages vouched for before", p, o.vouched[i])
	}
	o.promised[i] = p
}

// readied checks a Ready just taken from node i's core.
func (o *oracle) readied(i int, rd *replica.Ready) {
	n := o.c.nodes[i]
	if s := rd.Persist.Snapshot; s != nil {
		if seen, ok := o.snaps[s.Index]; !ok {
			o.snaps[s.Index] = snapSeen{s.Data, n.id}
		} else if !bytes.Equal(seen.data, s.Data) {
			o.violate(i, "replicas diverged: its snapshot at index %d differs from node %d's", s.Index, seen.node)
		}
	}
	insp, ok := n.rep.Core.(replica.Inspector)
	if !ok {
		return
	}
	for _, m := range rd.Early {
		_, vouches := insp.Vouches(m)
		if vouches || insp.Acknowledges(m) {
			o.violate(i, "sends %T early, before the state it acknowledges is synced", m)
			return
		}
	}
	if p := insp.Promised(); p < o.promised[i] {
		o.violate(i, "its promise went down from %#x to %#x", o.promised[i], p)
	} else {
		o.promised[i] = p
	}
}

// releasing checks node i's Ready as its messages are about to leave.
func (o *oracle) releasing(i int, rd *replica.Ready) {
	n := o.c.nodes[i]
	results := len(rd.Results)
	if ea, ok := n.rep.Core.(replica.EarlyAnswerer); ok && ea.AnswersEarly() {
		results = 0 // held to a majority's disks instead of its own
		if !o.answersDurable(i, rd) {
			return
		}
	}
	if n.disk.unsynced() && (len(rd.Messages) > 0 || results > 0) {
		o.violate(i, "released a Ready (%d messages, %d results) while %d disk writes were not synced", len(rd.Messages), len(rd.Results), len(n.disk.pending))
		return
	}
	insp, ok := n.rep.Core.(replica.Inspector)
	if !ok {
		return
	}
	durable := uint64(0)
	have := false
	for _, m := range rd.Messages {
		v, ok := insp.Vouches(m)
		if !ok {
			continue
		}
		if v < o.vouched[i] {
			o.violate(i, "sent %T vouching for %#x after vouching for %#x", m, v, o.vouched[i])
			return
		}
		o.vouched[i] = v
		if !have {
			have = true
			var err error
			if durable, err = o.durablePromise(i, insp); err != nil {
				o.violate(i, "its synced hard state does not decode: %v", err)
				return
			}
		}
		if v > durable {
			o.violate(i, "sent %T vouching for %#x while its synced hard state promises only %#x", m, v, durable)
			return
		}
	}
}

// durablePromise decodes the promise in node i's synced hard state,
// remembering the answer until that state changes.
func (o *oracle) durablePromise(i int, insp replica.Inspector) (uint64, error) {
	st := o.c.nodes[i].disk.syncedState()
	if len(st) == 0 {
		return 0, nil
	}
	if c := &o.decoded[i]; c.state == &st[0] && c.len == len(st) {
		return c.promise, nil
	}
	p, err := insp.DurablePromise(st)
	if err == nil {
		o.decoded[i] = decodedState{&st[0], len(st), p}
	}
	return p, err
}

// decodedState caches a decoded hard state, keyed by the bytes it came
// from (the disk never changes stored bytes, it replaces them).
type decodedState struct {
	state   *byte
	len     int
	promise uint64
}

// answersDurable checks the Results and Reads that node i, a
// replica.EarlyAnswerer, releases, maybe ahead of its own writes: each
// must rest on state synced on a majority. A Result rests on every index
// up to the one it was applied at, a confirmed read on every index its
// state machine has applied (the state it is answered from). Each such
// index must have been synced, as an entry or under a snapshot, on the
// disks of a majority of the configuration that governs it, at some
// moment no later than the answer: a protocol may drop a committed entry
// a majority holds (a VR replica that moves to a new view truncates its
// log to its commit number), so the check follows the majority as it
// grows, at every Ready an early answerer releases. It reports false
// after a violation.
func (o *oracle) answersDurable(i int, rd *replica.Ready) bool {
	st := o.c.nodes[i].rep.Core.Status()
	o.sawConfig(st.Members, st.MembersFrom)
	x, held, ids := o.advance()
	var top uint64
	for _, r := range rd.Results {
		top = max(top, r.Index)
	}
	if slices.ContainsFunc(rd.Reads, func(rs replica.ReadState) bool { return !rs.Lost }) {
		top = max(top, st.Applied)
	}
	if top >= x {
		o.violate(i, "answered clients from index %d while index %d is synced on the disks of only %d of its %d members %v", top, x, held, len(ids), ids)
		return false
	}
	return true
}

// advance moves majority up over every index synced on a majority of
// its configuration, and returns the first index that is not, with how
// many members hold it and the members.
func (o *oracle) advance() (uint64, int, []replica.NodeID) {
	// What the disks hold synced changes only by a sync or a crash: the
	// first adds to a disk's synced, the second too, or, when it drops
	// what a lying Sync claimed, to its lost or torn.
	var syncs uint64
	for _, n := range o.c.nodes {
		syncs += n.disk.synced + uint64(n.disk.lost+n.disk.torn)
	}
	if s := o.short; s.x != 0 && syncs == o.shortSync {
		return s.x, s.held, s.ids
	}
	defer func() { o.shortSync = syncs }()
	for {
		x := o.majority + 1
		ids := o.governing(x)
		held := 0
		for _, id := range ids {
			if j, ok := o.c.index(id); ok && syncedAt(&o.c.nodes[j].disk, x) {
				held++
			}
		}
		if 2*held <= len(ids) {
			o.short = shortOf{x, held, ids}
			return x, held, ids
		}
		o.majority = x
	}
}

// governing returns the configuration that governs log index x.
func (o *oracle) governing(x uint64) []replica.NodeID {
	k := sort.Search(len(o.configs), func(k int) bool { return o.configs[k].from > x })
	return o.configs[max(k-1, 0)].ids
}

// sawConfig records a configuration a core reports (replica.Status's
// Members, in force from index from). Indexes it governs that were
// judged against another configuration are judged again.
func (o *oracle) sawConfig(ids []replica.NodeID, from uint64) {
	if len(ids) == 0 || sameMembers(o.governing(from), ids) {
		return
	}
	from = max(from, 1)
	k := sort.Search(len(o.configs), func(k int) bool { return o.configs[k].from >= from })
	if k < len(o.configs) && o.configs[k].from == from {
		o.configs[k].ids = slices.Clone(ids)
	} else {
		o.configs = slices.Insert(o.configs, k, config{from, slices.Clone(ids)})
	}
	o.majority = min(o.majority, from-1)
	o.short = shortOf{}
}

// sameMembers reports whether a and b list the same members, in any
// order.
func sameMembers(a, b []replica.NodeID) bool {
	if len(a) != len(b) {
		return false
	}
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

// syncedAt reports whether index x is in d's synced image, as an entry or
// under a snapshot. Like syncedState, it counts what a lying Sync claimed
// (disk.believed), newest write first.
func syncedAt(d *disk, x uint64) bool {
	for k := len(d.believed) - 1; k >= 0; k-- {
		p := &d.believed[k]
		if s := p.Snapshot; s != nil && s.Index >= x {
			return true
		}
		for _, e := range p.Entries {
			if e.Index == x {
				return true
			}
		}
		if p.Truncate && p.TruncateAfter < x {
			return false
		}
	}
	im := &d.stable
	if im.snapshot != nil && im.snapshot.Index >= x {
		return true
	}
	j := sort.Search(len(im.entries), func(j int) bool { return im.entries[j].Index >= x })
	return j < len(im.entries) && im.entries[j].Index == x
}
