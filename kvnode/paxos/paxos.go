// Package paxos is a Multi-Paxos replication core: a deterministic state
// machine that implements replica.Replicator.
//
// One stable leader runs phase 1 once for every slot above what it knows to
// be chosen, adopts the highest-ballot value per slot, fills holes with
// no-ops, and from then on runs only phase 2, pipelined up to MaxInflight
// slots with up to MaxBatch requests per slot. Followers learn the commit
// index from Accept and Heartbeat messages; a follower treats its own
// accepted value as chosen only when it accepted it in the ballot of the
// leader that reports the commit, and otherwise asks the leader for the
// chosen value (Learn), or for a snapshot when the leader has compacted it.
//
// Durable state: Persist.State holds the promised ballot and a commit index;
// each accepted or learned slot is one Entry (ballot, chosen flag, value);
// snapshots are taken every SnapshotEvery applied slots and replace the
// entries they cover. The commit index in State lags one Ready behind, so
// every value it vouches for was written by an earlier Ready; a runtime
// must therefore persist Readies in the order it got them (merging
// consecutive ones into one write is fine). A new commit index rides on a
// write that happens anyway (entries, a snapshot, a new promise), never
// costing a write of its own: it only spares a restarted replica learning
// those slots again, so one that lags further is merely slower.
//
// A leader's write overlaps its followers': its Accepts, retransmissions
// and heartbeats go in Ready.Early, before its own write of the values
// they carry. It counts its own acceptance only from the Accepted it sends
// itself among the Ready's Messages, which comes back once that write is
// durable; so a slot is chosen, and the commit index that every Accept and
// Heartbeat carries moves over it, only when a majority holds it durably.
// Were the leader to count itself at once, it could report a commit that
// rests on its unsynced write to a follower, which would apply it; a crash
// that loses the write could then leave the slot to a new leader's phase
// 1 without that value, and a second value chosen there. An Accept that
// leaves before the leader's own write is just a proposal: if the leader
// crashes and loses the slot, it never leads that ballot again (a
// candidate bids above every round it saw, its promise included), so no
// other value is proposed at that slot in that ballot, and phase 1 of the
// next ballot carries the value as any accepted one. Everything that
// acknowledges (Promise, Accepted, Nack, HeartbeatReply) and everything
// that hands over state (Learn, InstallSnapshot) waits for durability, as
// does a candidate's Prepare, since it counts its own promise at once.
//
// Reads by read index (replica.ReadIndexer): a leader fixes a read's index
// at the larger of its commit index and the last slot its phase 1 covered
// (the read floor), confirms with one heartbeat round that a majority still
// holds no promise above its ballot, and reports the read once it has
// applied that index. Why this is linearizable: a write acknowledged before
// the read arrived was chosen in some ballot b'. If b' is below the
// leader's ballot b, phase 1 carried the slot to the leader, so it is at or
// below the floor. If b' is b, the leader chose it and its commit index
// covers it (a write is acknowledged only once applied, so every slot below
// it is chosen too). If b' is above b, a majority promised b' before the
// read arrived; the round began later and needs replies, tied to b and to
// the round's ID, from a majority, one of which would have had to reply
// after promising b', which a replica never does. Hence no newer ballot had
// chosen anything, and the round's success also proves that none had when
// it started.
package paxos

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// Roles reported by Status.
const (
	RoleFollower  = "follower"
	RoleCandidate = "candidate"
	RoleLeader    = "leader"
)

// Limits on the work done per message or tick.
const (
	// learnChunk bounds the chosen slots carried by one Learn message.
	learnChunk = 256
	// retransmitSlots bounds the unchosen slots re-sent per heartbeat.
	retransmitSlots = 256
	// maxWindow is how far beyond its commit index a replica accepts a
	// slot; it bounds memory against a corrupt or hostile slot number.
	maxWindow = 1 << 16
	// maxPeers is the group size the acknowledgement bitmasks can hold.
	maxPeers = 64
)

// DefaultConfig returns the suggested configuration for node id of the
// group peers: ElectionTicks 10, HeartbeatTicks 2, MaxBatch 64, MaxInflight
// 16, SnapshotEvery 10000, Seed 1.
func DefaultConfig(id replica.NodeID, peers []replica.NodeID) replica.Config {
	return replica.Config{
		ID:             id,
		Peers:          slices.Clone(peers),
		ElectionTicks:  10,
		HeartbeatTicks: 2,
		Seed:           1,
		SnapshotEvery:  10000,
		MaxBatch:       64,
		MaxInflight:    16,
	}
}

// slot is one log position.
type slot struct {
	ballot Ballot // accepted in this ballot; zero if only learned as chosen
	value  Value
	chosen bool   // value is known to be the chosen one
	dirty  bool   // must be persisted in the next Ready
	acks   uint64 // leader: peers (by index) that accepted in its ballot
	sentAt uint64 // leader: tick of the last Accept sent for it
}

type role uint8

const (
	follower role = iota
	candidate
	leader
)

// Node is one Multi-Paxos replica. It is not safe for concurrent use.
type Node struct {
	cfg         replica.Config
	sm          replica.StateMachine
	id          replica.NodeID
	peers       []replica.NodeID // every member, sorted, including id
	self        int              // index of id in peers
	quorum      int
	maxBatch    int
	maxInflight uint64
	rng         *rand.Rand

	role     role
	promised Ballot // the highest ballot promised; durable
	maxRound uint64 // the highest round seen anywhere
	leader   replica.NodeID
	now      uint64 // ticks since start

	// The log holds slots first, first+1, ...; first is snapIndex+1.
	log       []*slot
	first     uint64
	commit    uint64 // every slot up to here is chosen and known locally
	applied   uint64
	snapIndex uint64
	snap      *replica.Snapshot // the latest snapshot, for lagging peers

	electionElapsed  int
	electionTimeout  int
	heartbeatElapsed int
	quorumElapsed    int

	// Candidate state.
	promises uint64 // peers (by index) that promised
	p1From   uint64
	p1       map[uint64]PromiseEntry // best report per slot
	p1Max    uint64

	// Leader state.
	next     uint64 // the next free slot
	queue    []replica.Request
	progress []peerProgress
	// readFloor is the last slot phase 1 covered: every value chosen in
	// an earlier ballot is at or below it, so no read is served below it.
	readFloor uint64
	reads     replica.ReadRounds

	// Outputs since the last Ready.
	early      []replica.Message // acknowledge nothing: see Ready.Early
	msgs       []replica.Message
	results    []replica.Result
	dirty      []uint64
	stateDirty bool
	pendSnap   *replica.Snapshot
	// The State commit claim lags one Ready behind, so that every chosen
	// value it covers was persisted by an earlier Ready.
	readyCommit uint64
	claimed     uint64
}

type peerProgress struct {
	commit     uint64 // the peer's reported contiguous chosen slot
	active     bool   // heard from since the last quorum check
	snapSent   bool   // a snapshot was sent at tick snapSentAt
	snapSentAt uint64
}

var (
	_ replica.Replicator  = (*Node)(nil)
	_ replica.ReadIndexer = (*Node)(nil)
)

// New returns a replica that restarts from d, or starts fresh when d is
// nil or empty. sm must be in its initial state; New restores it from the
// durable snapshot and re-applies the slots d shows to be chosen.
func New(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("paxos: %w", err)
	}
	if len(cfg.Peers) > maxPeers {
		return nil, fmt.Errorf("paxos: %d peers, at most %d supported", len(cfg.Peers), maxPeers)
	}
	if sm == nil {
		return nil, fmt.Errorf("paxos: nil state machine")
	}
	n := &Node{
		cfg:         cfg,
		sm:          sm,
		id:          cfg.ID,
		peers:       slices.Clone(cfg.Peers),
		quorum:      len(cfg.Peers)/2 + 1,
		maxBatch:    max(cfg.MaxBatch, 1),
		maxInflight: uint64(max(cfg.MaxInflight, 1)),
		// Mixing the ID in gives every replica its own timeout sequence
		// even when the whole group shares one seed.
		rng:   rand.New(rand.NewSource(cfg.Seed*1_000_003 + int64(cfg.ID))),
		first: 1,
	}
	slices.Sort(n.peers)
	n.self = slices.Index(n.peers, n.id)
	n.progress = make([]peerProgress, len(n.peers))
	if d != nil {
		if err := n.restore(d); err != nil {
			return nil, err
		}
	}
	n.resetElectionTimer()
	return n, nil
}

func (n *Node) restore(d *replica.Durable) error {
	var claim uint64
	if d.State != nil {
		h, err := decodeState(d.State)
		if err != nil {
			return fmt.Errorf("paxos: restart: %w", err)
		}
		n.promised, n.maxRound, claim = h.promised, h.promised.Round, h.commit
	}
	if d.Snapshot != nil {
		if err := n.sm.Restore(d.Snapshot.Data); err != nil {
			return fmt.Errorf("paxos: restart: restore snapshot %d: %w", d.Snapshot.Index, err)
		}
		s := *d.Snapshot
		n.snap = &s
		n.snapIndex, n.applied, n.commit, n.first = s.Index, s.Index, s.Index, s.Index+1
	}
	for _, e := range d.Entries {
		if e.Index <= n.snapIndex {
			continue
		}
		b, chosen, v, err := decodeEntry(e.Data)
		if err != nil {
			return fmt.Errorf("paxos: restart: entry %d: %w", e.Index, err)
		}
		s := n.slotAt(e.Index, true)
		if s == nil {
			return fmt.Errorf("paxos: restart: entry %d far beyond entry %d", e.Index, n.lastSlot())
		}
		s.ballot, s.value, s.chosen = b, v, chosen
		n.maxRound = max(n.maxRound, b.Round)
	}
	// Slots up to the claimed commit had their chosen values durable when
	// the claim was written; beyond it only explicitly chosen entries count.
	for s := n.commit + 1; ; s++ {
		e := n.slotAt(s, false)
		if e == nil || (s > claim && !e.chosen) {
			break
		}
		e.chosen = true
		n.commit = s
	}
	n.readyCommit, n.claimed = n.commit, claim
	n.apply()
	return nil
}

// slotAt returns slot s, creating it when create is set; nil when s is
// compacted, out of range, or absent and not created.
func (n *Node) slotAt(s uint64, create bool) *slot {
	if s < n.first {
		return nil
	}
	i := s - n.first
	if i < uint64(len(n.log)) {
		if n.log[i] == nil && create {
			n.log[i] = &slot{}
		}
		return n.log[i]
	}
	// Slots are created at most a window beyond what the log already
	// holds, which bounds memory against a corrupt slot number.
	if !create || s > max(n.commit, n.lastSlot())+maxWindow {
		return nil
	}
	for uint64(len(n.log)) <= i {
		n.log = append(n.log, nil)
	}
	n.log[i] = &slot{}
	return n.log[i]
}

// lastSlot is the highest slot the log covers, or snapIndex when empty.
func (n *Node) lastSlot() uint64 { return n.first + uint64(len(n.log)) - 1 }

func (n *Node) markDirty(s uint64, e *slot) {
	if !e.dirty {
		e.dirty = true
		n.dirty = append(n.dirty, s)
	}
}

func (n *Node) peerIndex(id replica.NodeID) int {
	i, ok := slices.BinarySearch(n.peers, id)
	if !ok {
		return -1
	}
	return i
}

func (n *Node) resetElectionTimer() {
	n.electionElapsed = 0
	n.electionTimeout = n.cfg.ElectionTicks + n.rng.Intn(n.cfg.ElectionTicks)
}

func (n *Node) send(m replica.Message) { n.msgs = append(n.msgs, m) }

// sendEarly sends a message that may leave before this Ready's Persist is
// durable: a leader's Accept or Heartbeat.
func (n *Node) sendEarly(m replica.Message) { n.early = append(n.early, m) }

// acceptOwn has the leader accept slot s for itself once the write of its
// value is durable: the Accepted it sends itself is released, like any
// other, only after that write is synced.
func (n *Node) acceptOwn(s uint64) {
	n.send(&Accepted{Header: Header{From: n.id, To: n.id}, Ballot: n.promised, Slot: s, Commit: n.commit})
}

// observe notes a ballot seen anywhere, so the next bid is above it.
func (n *Node) observe(b Ballot) { n.maxRound = max(n.maxRound, b.Round) }

// Tick advances the logical clock by one tick.
func (n *Node) Tick() {
	n.now++
	if n.role == leader {
		n.heartbeatElapsed++
		if n.heartbeatElapsed >= n.cfg.HeartbeatTicks {
			n.heartbeatElapsed = 0
			n.broadcastHeartbeat()
			n.retransmit()
		}
		// A leader cut off from a majority steps down, so that clients
		// are redirected instead of waiting on a leader that cannot commit.
		n.quorumElapsed++
		if n.quorumElapsed >= n.cfg.ElectionTicks {
			n.quorumElapsed = 0
			heard := 1
			for i := range n.progress {
				if i != n.self && n.progress[i].active {
					heard++
				}
				n.progress[i].active = false
			}
			if heard < n.quorum {
				n.becomeFollower(0)
			}
		}
		return
	}
	n.electionElapsed++
	if n.electionElapsed >= n.electionTimeout {
		n.startElection()
	}
}

func (n *Node) startElection() {
	round := max(n.promised.Round, n.maxRound)
	if round == math.MaxUint64 {
		// No ballot is left above the promise; only a corrupt or hostile
		// peer gets here, and staying a follower keeps the promise intact.
		n.resetElectionTimer()
		return
	}
	b := Ballot{Round: round + 1, Node: n.id}
	n.observe(b)
	n.promised = b
	n.stateDirty = true
	n.role = candidate
	n.leader = 0
	n.resetElectionTimer()
	n.promises = 1 << n.self
	n.p1From = n.commit + 1
	n.p1 = make(map[uint64]PromiseEntry)
	n.p1Max = n.commit
	for s := n.p1From; s <= n.lastSlot(); s++ {
		if e := n.slotAt(s, false); e != nil {
			n.mergePromised(PromiseEntry{Slot: s, Ballot: e.ballot, Chosen: e.chosen, Value: e.value})
		}
	}
	for _, p := range n.peers {
		if p != n.id {
			n.send(&Prepare{Header: Header{From: n.id, To: p}, Ballot: b, FromSlot: n.p1From})
		}
	}
	if bits.OnesCount64(n.promises) >= n.quorum {
		n.becomeLeader()
	}
}

// mergePromised keeps, per slot, a value known chosen, else the value of
// the highest accepted ballot.
func (n *Node) mergePromised(e PromiseEntry) {
	if e.Slot <= n.commit {
		return
	}
	cur, ok := n.p1[e.Slot]
	switch {
	case !ok, e.Chosen && !cur.Chosen, !cur.Chosen && cur.Ballot.Less(e.Ballot):
		n.p1[e.Slot] = e
	}
	n.p1Max = max(n.p1Max, e.Slot)
}

func (n *Node) becomeFollower(leaderHint replica.NodeID) {
	n.reads.Abort()
	n.role = follower
	n.leader = leaderHint
	n.queue = nil
	n.p1 = nil
	n.resetElectionTimer()
}

func (n *Node) becomeLeader() {
	n.role = leader
	n.leader = n.id
	b := n.promised
	n.heartbeatElapsed = 0
	n.quorumElapsed = 0
	for i := range n.progress {
		n.progress[i] = peerProgress{active: true}
	}
	last := max(n.p1Max, n.commit)
	for s := n.commit + 1; s <= last; s++ {
		e := n.slotAt(s, true)
		if e == nil {
			break
		}
		if !e.chosen {
			if p, ok := n.p1[s]; ok {
				e.value, e.chosen = p.Value, p.Chosen
			} else {
				e.value = Value{}
			}
		}
		e.ballot = b
		e.acks = 0
		n.markDirty(s, e)
		n.sendAccepts(s, e)
	}
	n.p1 = nil
	n.next = last + 1
	n.readFloor = last
	n.broadcastHeartbeat()
	n.advance()
}

// sendAccepts proposes e's value for slot s to every peer, and to the
// leader itself once its own write is durable.
func (n *Node) sendAccepts(s uint64, e *slot) {
	e.sentAt = n.now
	for _, p := range n.peers {
		if p != n.id {
			n.sendEarly(&Accept{Header: Header{From: n.id, To: p}, Ballot: n.promised, Slot: s, Value: e.value, Commit: n.commit})
		}
	}
	n.acceptOwn(s)
}

func (n *Node) broadcastHeartbeat() {
	// A read round in flight rides on every heartbeat until it completes,
	// so a lost heartbeat or reply only delays it.
	read := n.reads.InFlight()
	for _, p := range n.peers {
		if p != n.id {
			n.sendEarly(&Heartbeat{Header: Header{From: n.id, To: p}, Ballot: n.promised, Commit: n.commit, Read: read})
		}
	}
}

// ReadIndex starts a linearizable read (see the package documentation).
// A replica that is not the leader returns *replica.NotLeaderError.
func (n *Node) ReadIndex(id uint64) error {
	if n.role != leader {
		return &replica.NotLeaderError{Leader: n.leader}
	}
	n.reads.Add(id, max(n.commit, n.readFloor))
	return nil
}

// startReadRound sends the heartbeats of a new read round for every read
// that waits; in a group of one the round is confirmed at once. Ready
// calls it, so that the reads of one Ready share a round.
func (n *Node) startReadRound() {
	if n.reads.Start(n.self) == 0 {
		return
	}
	n.broadcastHeartbeat()
	n.readAck(n.self)
}

// readAck counts member i's acknowledgement of the read round in flight.
func (n *Node) readAck(i int) {
	n.reads.Ack(n.reads.InFlight(), i, n.quorum)
	n.reads.Release(n.applied)
}

// retransmit re-sends Accepts that have waited at least a heartbeat
// interval, to the peers that have not acknowledged them.
func (n *Node) retransmit() {
	limit := min(n.next-1, n.commit+retransmitSlots)
	for s := n.commit + 1; s <= limit; s++ {
		e := n.slotAt(s, false)
		if e == nil || e.chosen || n.now-e.sentAt < uint64(n.cfg.HeartbeatTicks) {
			continue
		}
		e.sentAt = n.now
		for i, p := range n.peers {
			if i == n.self || e.acks&(1<<i) != 0 || n.progress[i].commit >= s {
				continue
			}
			n.sendEarly(&Accept{Header: Header{From: n.id, To: p}, Ballot: n.promised, Slot: s, Value: e.value, Commit: n.commit})
		}
	}
}

// Propose submits client requests. A leader orders them (a candidate
// queues them until it wins); a follower returns *replica.NotLeaderError.
func (n *Node) Propose(reqs ...replica.Request) error {
	if n.role == follower {
		return &replica.NotLeaderError{Leader: n.leader}
	}
	// A candidate may never win; it holds at most one full pipeline of
	// requests rather than everything its clients retry meanwhile.
	if n.role == candidate && len(n.queue)+len(reqs) > n.maxBatch*int(n.maxInflight) {
		return &replica.NotLeaderError{}
	}
	n.queue = append(n.queue, reqs...)
	if n.role == leader {
		n.advance()
	}
	return nil
}

// flush turns queued requests into new slots while the pipeline has room.
func (n *Node) flush() {
	n.next = max(n.next, n.commit+1)
	for len(n.queue) > 0 && n.next-1-n.commit < n.maxInflight {
		s := n.next
		e := n.slotAt(s, true)
		if e == nil {
			return
		}
		n.next++
		if e.chosen {
			// Never overwrite a value learned as chosen.
			continue
		}
		k := min(len(n.queue), n.maxBatch)
		v := Value{Reqs: n.queue[:k:k]}
		if k == len(n.queue) {
			n.queue = nil
		} else {
			n.queue = n.queue[k:]
		}
		*e = slot{ballot: n.promised, value: v}
		n.markDirty(s, e)
		n.sendAccepts(s, e)
	}
}

func (n *Node) checkChosen(s uint64) {
	e := n.slotAt(s, false)
	if e != nil && !e.chosen && bits.OnesCount64(e.acks) >= n.quorum {
		e.chosen = true
	}
}

// advance moves the commit index over chosen slots, applies them, and
// lets a leader fill the freed pipeline. What it proposes is not chosen
// before its own write is durable, even in a group of one.
func (n *Node) advance() {
	for {
		e := n.slotAt(n.commit+1, false)
		if e == nil || !e.chosen {
			break
		}
		n.commit++
	}
	n.apply()
	if n.role != leader {
		return
	}
	n.reads.Release(n.applied)
	n.flush()
}

func (n *Node) apply() {
	for n.applied < n.commit {
		s := n.applied + 1
		e := n.slotAt(s, false)
		if e == nil {
			return
		}
		for _, r := range e.value.Reqs {
			out := n.sm.Apply(s, r)
			n.results = append(n.results, replica.Result{ClientID: r.ClientID, Seq: r.Seq, Index: s, Value: out})
		}
		n.applied = s
	}
	if n.cfg.SnapshotEvery > 0 && n.applied-n.snapIndex >= n.cfg.SnapshotEvery {
		data, err := n.sm.Snapshot()
		if err != nil {
			// Keep the log; the next applied slot tries again.
			return
		}
		s := &replica.Snapshot{Index: n.applied, Data: data}
		n.compact(s)
	}
}

// compact makes s the latest snapshot and drops the slots it covers.
func (n *Node) compact(s *replica.Snapshot) {
	drop := min(s.Index-n.snapIndex, uint64(len(n.log)))
	if s.Index >= n.lastSlot() {
		n.log = nil
	} else {
		n.log = slices.Clone(n.log[drop:])
	}
	n.snap, n.pendSnap = s, s
	n.snapIndex = s.Index
	n.first = s.Index + 1
}

func (n *Node) installSnapshot(s replica.Snapshot) {
	if s.Index <= n.commit {
		return
	}
	if err := n.sm.Restore(s.Data); err != nil {
		// A snapshot we cannot restore is ignored; the sender retries.
		return
	}
	n.compact(&s)
	n.commit, n.applied = s.Index, s.Index
	if n.role == leader && n.next <= s.Index {
		n.next = s.Index + 1
	}
	n.advance()
}

// Step handles one message from a peer, or the leader's own Accepted
// handed back once durable; stale, misaddressed and ill-formed messages
// are ignored.
func (n *Node) Step(m replica.Message) {
	if isNil(m) || m.Dest() != n.id || n.peerIndex(m.Source()) < 0 {
		return
	}
	if _, own := m.(*Accepted); m.Source() == n.id && !own {
		return
	}
	switch m := m.(type) {
	case *Prepare:
		n.onPrepare(m)
	case *Promise:
		n.onPromise(m)
	case *Nack:
		n.onNack(m)
	case *Accept:
		n.onAccept(m)
	case *Accepted:
		n.onAccepted(m)
	case *Heartbeat:
		n.onHeartbeat(m)
	case *HeartbeatReply:
		n.onHeartbeatReply(m)
	case *Learn:
		n.onLearn(m)
	case *InstallSnapshot:
		n.onInstallSnapshot(m)
	}
}

// isNil reports whether m is nil or a nil pointer of one of the message
// types, whose methods would panic.
func isNil(m replica.Message) bool {
	switch m := m.(type) {
	case nil:
		return true
	case *Prepare:
		return m == nil
	case *Promise:
		return m == nil
	case *Nack:
		return m == nil
	case *Accept:
		return m == nil
	case *Accepted:
		return m == nil
	case *Heartbeat:
		return m == nil
	case *HeartbeatReply:
		return m == nil
	case *Learn:
		return m == nil
	case *InstallSnapshot:
		return m == nil
	}
	return false
}

func (n *Node) onPrepare(m *Prepare) {
	if m.Ballot.Node != m.From {
		return
	}
	n.observe(m.Ballot)
	if m.Ballot.Less(n.promised) {
		n.send(&Nack{Header: Header{From: n.id, To: m.From}, Ballot: m.Ballot, Promised: n.promised})
		return
	}
	// A replica that hears from a live leader ignores other candidates,
	// so a rejoining replica cannot depose a working leader.
	if m.Ballot != n.promised {
		if n.role == leader || (n.role == follower && n.leader != 0 && n.leader != m.From && n.electionElapsed < n.cfg.ElectionTicks) {
			return
		}
		n.promised = m.Ballot
		n.stateDirty = true
		if n.role != follower {
			n.becomeFollower(0)
		} else {
			n.resetElectionTimer()
		}
		n.leader = 0
	}
	p := &Promise{Header: Header{From: n.id, To: m.From}, Ballot: m.Ballot, FromSlot: m.FromSlot, Commit: n.commit}
	if m.FromSlot <= n.snapIndex && n.snap != nil {
		p.Snapshot = n.snap
	}
	for s := max(m.FromSlot, n.first); s <= n.lastSlot(); s++ {
		if e := n.slotAt(s, false); e != nil {
			p.Entries = append(p.Entries, PromiseEntry{Slot: s, Ballot: e.ballot, Chosen: e.chosen, Value: e.value})
		}
	}
	n.send(p)
}

func (n *Node) onPromise(m *Promise) {
	if n.role != candidate || m.Ballot != n.promised {
		return
	}
	i := n.peerIndex(m.From)
	if n.promises&(1<<i) != 0 {
		return
	}
	if m.Snapshot != nil && m.Snapshot.Index > n.commit {
		n.installSnapshot(*m.Snapshot)
		if n.role != candidate {
			return
		}
	}
	n.promises |= 1 << i
	for _, e := range m.Entries {
		if e.Slot > n.commit && e.Slot <= n.commit+maxWindow {
			n.mergePromised(e)
		}
	}
	if bits.OnesCount64(n.promises) >= n.quorum {
		n.becomeLeader()
	}
}

func (n *Node) onNack(m *Nack) {
	n.observe(m.Promised)
	if n.role == follower || m.Ballot != n.promised || !n.promised.Less(m.Promised) {
		return
	}
	n.becomeFollower(m.Promised.Node)
}

// follow handles the ballot of a leader's message. It returns false, after
// refusing with a Nack, when the ballot is below the promise.
func (n *Node) follow(from replica.NodeID, b Ballot) bool {
	if b.Node != from {
		return false
	}
	n.observe(b)
	if b.Less(n.promised) {
		n.send(&Nack{Header: Header{From: n.id, To: from}, Ballot: b, Promised: n.promised})
		return false
	}
	if n.promised != b {
		n.promised = b
		n.stateDirty = true
	}
	if n.role != follower {
		n.becomeFollower(from)
	}
	n.leader = from
	n.electionElapsed = 0
	return true
}

// learnCommit marks as chosen every slot up to c that this replica
// accepted in ballot b, the ballot of the leader reporting c. A leader
// proposes one value per slot per ballot, so such a value is the chosen
// one; a value accepted in another ballot may not be, and must be learned.
func (n *Node) learnCommit(b Ballot, c uint64) {
	last := min(c, n.lastSlot())
	for s := n.commit + 1; s <= last; s++ {
		e := n.slotAt(s, false)
		if e != nil && !e.chosen && e.ballot == b {
			e.chosen = true
		}
	}
	n.advance()
}

func (n *Node) onAccept(m *Accept) {
	if !n.follow(m.From, m.Ballot) {
		return
	}
	if m.Slot > n.commit+maxWindow {
		return
	}
	// A retransmitted Accept of a slot already accepted in this ballot is
	// durable or about to be; writing it again would only cost a sync.
	if e := n.slotAt(m.Slot, true); e != nil && !e.chosen && e.ballot != m.Ballot {
		e.ballot, e.value = m.Ballot, m.Value
		n.markDirty(m.Slot, e)
	}
	n.learnCommit(m.Ballot, m.Commit)
	n.send(&Accepted{Header: Header{From: n.id, To: m.From}, Ballot: m.Ballot, Slot: m.Slot, Commit: n.commit})
}

// leaderFor returns whether a reply with ballot b from peer i is for this
// leader, and notes that the peer is alive.
func (n *Node) leaderFor(from replica.NodeID, b Ballot, commit uint64) (int, bool) {
	if n.role != leader || b != n.promised {
		return 0, false
	}
	i := n.peerIndex(from)
	n.progress[i].active = true
	n.progress[i].commit = max(n.progress[i].commit, commit)
	return i, true
}

func (n *Node) onAccepted(m *Accepted) {
	i, ok := n.leaderFor(m.From, m.Ballot, m.Commit)
	if !ok {
		return
	}
	e := n.slotAt(m.Slot, false)
	if e == nil || e.chosen || e.ballot != n.promised {
		return
	}
	e.acks |= 1 << i
	n.checkChosen(m.Slot)
	if e.chosen && m.Slot == n.commit+1 {
		n.advance()
	}
}

func (n *Node) onHeartbeat(m *Heartbeat) {
	if !n.follow(m.From, m.Ballot) {
		return
	}
	n.learnCommit(m.Ballot, m.Commit)
	n.send(&HeartbeatReply{Header: Header{From: n.id, To: m.From}, Ballot: m.Ballot, Commit: n.commit, LeaderCommit: m.Commit, Read: m.Read})
}

func (n *Node) onHeartbeatReply(m *HeartbeatReply) {
	i, ok := n.leaderFor(m.From, m.Ballot, m.Commit)
	if !ok {
		return
	}
	if m.Read != 0 && m.Read == n.reads.InFlight() {
		n.readAck(i)
	}
	if m.Commit < m.LeaderCommit && m.Commit < n.commit {
		n.catchUp(m.From, m.Commit)
	}
}

// catchUp sends peer the chosen values above its commit index, or the
// snapshot when they are compacted away.
func (n *Node) catchUp(peer replica.NodeID, from uint64) {
	h := Header{From: n.id, To: peer}
	if from < n.snapIndex {
		// Snapshots are large: send one per election timeout at most,
		// however many replies ask for it meanwhile.
		p := &n.progress[n.peerIndex(peer)]
		if n.snap == nil || (p.snapSent && n.now-p.snapSentAt < uint64(n.cfg.ElectionTicks)) {
			return
		}
		p.snapSent, p.snapSentAt = true, n.now
		n.send(&InstallSnapshot{Header: h, Ballot: n.promised, Snapshot: *n.snap})
		return
	}
	l := &Learn{Header: h, Ballot: n.promised, Commit: n.commit}
	for s := from + 1; s <= n.commit && len(l.Entries) < learnChunk; s++ {
		e := n.slotAt(s, false)
		if e == nil {
			break
		}
		l.Entries = append(l.Entries, LearnEntry{Slot: s, Value: e.value})
	}
	n.send(l)
}

func (n *Node) onLearn(m *Learn) {
	// Chosen values are facts whatever the sender's ballot, so a Learn
	// is used even when it comes from a deposed leader.
	if !m.Ballot.Less(n.promised) && m.Ballot.Node == m.From {
		n.follow(m.From, m.Ballot)
	}
	for _, le := range m.Entries {
		if le.Slot <= n.commit || le.Slot > n.commit+maxWindow {
			continue
		}
		e := n.slotAt(le.Slot, true)
		if e == nil || e.chosen {
			continue
		}
		e.value, e.chosen = le.Value, true
		n.markDirty(le.Slot, e)
	}
	n.advance()
	n.send(&HeartbeatReply{Header: Header{From: n.id, To: m.From}, Ballot: m.Ballot, Commit: n.commit, LeaderCommit: m.Commit})
}

func (n *Node) onInstallSnapshot(m *InstallSnapshot) {
	if !m.Ballot.Less(n.promised) && m.Ballot.Node == m.From {
		n.follow(m.From, m.Ballot)
	}
	n.installSnapshot(m.Snapshot)
	n.send(&HeartbeatReply{Header: Header{From: n.id, To: m.From}, Ballot: m.Ballot, Commit: n.commit, LeaderCommit: m.Snapshot.Index})
}

// HasReady reports whether Ready would return anything.
func (n *Node) HasReady() bool {
	return len(n.early) > 0 || len(n.msgs) > 0 || len(n.results) > 0 || len(n.dirty) > 0 || n.stateDirty ||
		n.pendSnap != nil || n.reads.HasOutput() || n.reads.Startable()
}

// Ready drains the outputs produced since the previous call.
func (n *Node) Ready() replica.Ready {
	var rd replica.Ready
	n.startReadRound()
	claim := n.readyCommit
	n.readyCommit = n.commit
	if n.stateDirty || (claim != n.claimed && (len(n.dirty) > 0 || n.pendSnap != nil)) {
		rd.Persist.State = encodeState(hardState{promised: n.promised, commit: claim})
		n.stateDirty, n.claimed = false, claim
	}
	if len(n.dirty) > 0 {
		slices.Sort(n.dirty)
		rd.Persist.Entries = make([]replica.Entry, 0, len(n.dirty))
		for _, s := range n.dirty {
			e := n.slotAt(s, false)
			if e == nil || !e.dirty {
				continue
			}
			e.dirty = false
			rd.Persist.Entries = append(rd.Persist.Entries, replica.Entry{Index: s, Data: encodeEntry(e)})
		}
		n.dirty = n.dirty[:0]
	}
	rd.Persist.Snapshot = n.pendSnap
	n.pendSnap = nil
	rd.Early, n.early = n.early, nil
	rd.Messages, n.msgs = n.msgs, nil
	rd.Results, n.results = n.results, nil
	rd.Reads = n.reads.Drain()
	return rd
}

// Status describes the replica's current state.
func (n *Node) Status() replica.Status {
	r := RoleFollower
	switch n.role {
	case candidate:
		r = RoleCandidate
	case leader:
		r = RoleLeader
	}
	return replica.Status{
		ID:            n.id,
		Role:          r,
		Leader:        n.leader,
		Epoch:         n.promised.Round,
		Commit:        n.commit,
		Applied:       n.applied,
		LogLen:        len(n.log), // slots held in memory, holes included
		SnapshotIndex: n.snapIndex,
	}
}
