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
// it started. With membership changes "a majority" means a majority of
// every configuration that governs a slot above the leader's applied index
// (see below), the same quorums a newer leader's phase 1 needs.
//
// Membership changes (replica.Reconfigurer) follow Lamport's alpha rule,
// with alpha = configDelay. A slot may hold a configuration (Value.Config)
// instead of requests; chosen at slot j, it governs every slot from
// j+configDelay on, and the configuration of slot s is therefore fixed by
// the values chosen at slots up to s-configDelay. A leader proposes slot s
// only when it has applied s-configDelay (its pipeline never reaches
// further), so it always knows the configuration of every slot it
// proposes, and counts a slot as chosen on acceptances from a majority of
// that configuration. After a change it pads with no-ops up to the slot the
// change takes effect, so that the change does not wait for client load.
// One change is in progress at a time: a leader refuses a new one while a
// configuration value sits unapplied in its log or a chosen one has not
// taken effect. Safety does not rest on that restriction (any two
// configurations may differ in any way, a replacement is one change); it
// keeps the number of quorums a leader must satisfy at two.
//
// Why phase 1 stays safe: a candidate gets promises from a majority of
// every configuration that governs a slot above its applied index (its own
// knowledge) and of every configuration it sees proposed in a promise, and
// asks the members of each as it learns of them. Let v be chosen at slot s
// above the candidate's applied index, in a lower ballot. The leader that
// chose v had applied s-configDelay, so every configuration value below
// that was chosen before. Walk those values upwards: the first one above
// the candidate's applied index is governed by a configuration the
// candidate knows, so a majority of it promised, one of them reports the
// value (or a higher-ballot acceptance of it, which Paxos makes equal),
// and the candidate requires a majority of the new configuration too; and
// so on up to the configuration of s itself, whose majority intersects the
// one that chose v. A promise that carries a snapshot above the
// candidate's applied index replaces its knowledge, and the walk starts
// from there. Replicas act as acceptors for any ballot whatever their
// membership, because acceptor safety does not depend on configuration;
// only the counting of quorums does. A replica outside the configuration
// in force (removed, or added but not yet caught up) never campaigns, and
// a leader steps down once a configuration without it takes effect.
//
// A replica started with replica.Config.Joining waits for the leader,
// which heartbeats every member of a configuration in force or pending and
// sends a lagging replica the chosen values or its snapshot; the snapshot
// meta records the configurations in force after its index. Config.Peers
// must be the group's initial configuration, since a joiner that learns
// the log from slot 1 replays every change from there.
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
	// maxPeers is the number of distinct replicas, over every
	// configuration this replica has known, that the acknowledgement
	// bitmasks can hold.
	maxPeers = 64
	// configDelay is alpha: a configuration chosen at slot j governs the
	// slots from j+configDelay on. It also caps the leader's pipeline. It
	// is part of the protocol: every replica of a group must agree on it.
	configDelay = 64
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

// membership is one configuration and the first slot it governs.
type membership struct {
	from uint64
	ids  []replica.NodeID // sorted
	mask uint64           // ids as indexes into Node.known
}

type role uint8

const (
	follower role = iota
	candidate
	leader
)

// Node is one Multi-Paxos replica. It is not safe for concurrent use.
type Node struct {
	cfg replica.Config
	sm  replica.StateMachine
	id  replica.NodeID
	// known lists every replica this one has heard of, self first; the
	// acknowledgement bitmasks index it, so it only grows.
	known []replica.NodeID
	self  int // index of id in known: always 0
	// configs are the configurations that govern the slots above
	// applied, ascending by from; configs[0] governs applied+1.
	configs []membership
	// member is set once this replica has known a configuration that
	// includes it; a joiner does not campaign before.
	member      bool
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
	promises  uint64 // replicas (by index) that promised
	p1Asked   uint64 // replicas (by index) sent the Prepare
	p1From    uint64
	p1        map[uint64]PromiseEntry // best report per slot
	p1Max     uint64
	p1Configs []membership // configurations proposed in reported slots

	// Leader state.
	next     uint64 // the next free slot
	sent     uint64 // the Accepts of every slot up to here were sent
	queue    []replica.Request
	change   []replica.NodeID // a membership change to place in the log
	padTo    uint64           // fill slots up to here, with no-ops if idle
	progress []peerProgress   // by index into known
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
	_ replica.Replicator   = (*Node)(nil)
	_ replica.ReadIndexer  = (*Node)(nil)
	_ replica.Reconfigurer = (*Node)(nil)
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
		known:       []replica.NodeID{cfg.ID},
		maxBatch:    max(cfg.MaxBatch, 1),
		maxInflight: uint64(max(cfg.MaxInflight, 1)),
		// Mixing the ID in gives every replica its own timeout sequence
		// even when the whole group shares one seed.
		rng:   rand.New(rand.NewSource(cfg.Seed*1_000_003 + int64(cfg.ID))),
		first: 1,
	}
	n.progress = make([]peerProgress, 1)
	n.configs = []membership{n.newMembership(1, cfg.Peers)}
	n.member = slices.Contains(cfg.Peers, cfg.ID)
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
		cs, err := decodeConfigs(d.Snapshot.Meta)
		if err != nil {
			return fmt.Errorf("paxos: restart: snapshot %d: %w", d.Snapshot.Index, err)
		}
		n.setConfigs(cs)
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

// index returns id's index into known, adding it when new; -1 when id is
// zero or known is full.
func (n *Node) index(id replica.NodeID) int {
	if i := slices.Index(n.known, id); i >= 0 {
		return i
	}
	if id == 0 || len(n.known) == maxPeers {
		return -1
	}
	n.known = append(n.known, id)
	n.progress = append(n.progress, peerProgress{})
	return len(n.known) - 1
}

func (n *Node) newMembership(from uint64, ids []replica.NodeID) membership {
	m := membership{from: from, ids: slices.Sorted(slices.Values(ids))}
	for _, id := range m.ids {
		// A member that does not fit is never counted, which makes the
		// quorum harder to reach, never easier.
		if i := n.index(id); i >= 0 {
			m.mask |= 1 << i
		}
	}
	return m
}

// setConfigs replaces the configurations with cs, decoded from a snapshot.
func (n *Node) setConfigs(cs []config) {
	n.configs = n.configs[:0]
	for _, c := range cs {
		n.configs = append(n.configs, n.newMembership(c.from, c.ids))
		n.member = n.member || slices.Contains(c.ids, n.id)
	}
}

// configAt returns the configuration of slot s, which must be at most
// applied+configDelay: beyond that it is not yet decided.
func (n *Node) configAt(s uint64) *membership {
	for i := len(n.configs) - 1; i > 0; i-- {
		if n.configs[i].from <= s {
			return &n.configs[i]
		}
	}
	return &n.configs[0]
}

// quorate reports whether the replicas in acks hold a majority of m.
func quorate(m *membership, acks uint64) bool {
	return 2*bits.OnesCount64(acks&m.mask) > len(m.ids)
}

// enough reports whether acks hold a majority of every configuration that
// governs a slot above applied: what a leader needs to be sure that no
// newer ballot could have chosen anything.
func (n *Node) enough(acks uint64) bool {
	for i := range n.configs {
		if !quorate(&n.configs[i], acks) {
			return false
		}
	}
	return true
}

// audience is every replica, but self, of a configuration that governs a
// slot above applied.
func (n *Node) audience() uint64 {
	var m uint64
	for _, c := range n.configs {
		m |= c.mask
	}
	return m &^ (1 << n.self)
}

// sendEach sends the message mk builds to every replica in mask; early
// ones acknowledge nothing and may leave ahead of this Ready's write (see
// sendEarly).
func (n *Node) sendEach(early bool, mask uint64, mk func(to replica.NodeID) replica.Message) {
	out := &n.msgs
	if early {
		out = &n.early
	}
	for ; mask != 0; mask &= mask - 1 {
		*out = append(*out, mk(n.known[bits.TrailingZeros64(mask)]))
	}
}

// voter reports whether this replica belongs to the configuration in
// force at the next slot.
func (n *Node) voter() bool { return slices.Contains(n.configs[0].ids, n.id) }

// addConfig records the configuration chosen at slot s.
func (n *Node) addConfig(s uint64, ids []replica.NodeID) {
	n.configs = append(n.configs, n.newMembership(s+configDelay, ids))
	n.padTo = max(n.padTo, s+configDelay-1)
	n.member = n.member || slices.Contains(ids, n.id)
}

// pruneConfigs drops the configurations that govern no slot above applied.
func (n *Node) pruneConfigs() {
	k := 0
	for k+1 < len(n.configs) && n.configs[k+1].from <= n.applied+1 {
		k++
	}
	if k > 0 {
		n.configs = slices.Delete(n.configs, 0, k)
	}
}

func (n *Node) resetElectionTimer() {
	n.electionElapsed = 0
	n.electionTimeout = n.cfg.ElectionTicks + n.rng.Intn(n.cfg.ElectionTicks)
	if !n.voter() {
		// A replica outside the configuration in force campaigns only
		// when the members have failed to elect anyone for a while: when
		// the members are new and know nothing yet, someone who does
		// must lead until they have caught up.
		n.electionTimeout += 2 * n.cfg.ElectionTicks
	}
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
			heard := uint64(1) << n.self
			for i := range n.progress {
				if n.progress[i].active {
					heard |= 1 << i
				}
				n.progress[i].active = false
			}
			if !n.enough(heard) {
				n.becomeFollower(0)
			}
		}
		if !n.voter() && n.role == leader {
			// A configuration without this replica governs the next
			// slot. It leads on, without a vote, until a majority of
			// the members have caught up with it, so that one of them
			// can take over.
			var done uint64
			for i := range n.progress {
				if n.progress[i].commit >= n.commit {
					done |= 1 << i
				}
			}
			if quorate(&n.configs[0], done) {
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
	if !n.member {
		n.resetElectionTimer()
		return
	}
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
	n.p1Asked = 1 << n.self
	n.p1From = n.commit + 1
	n.p1 = make(map[uint64]PromiseEntry)
	n.p1Max = n.commit
	n.p1Configs = nil
	for s := n.p1From; s <= n.lastSlot(); s++ {
		if e := n.slotAt(s, false); e != nil {
			n.mergePromised(PromiseEntry{Slot: s, Ballot: e.ballot, Chosen: e.chosen, Value: e.value})
		}
	}
	n.checkPhase1()
}

// checkPhase1 asks every replica whose promise the candidate needs and
// has not asked yet, and becomes leader once it holds a majority of every
// configuration in force above applied and of every one proposed in a
// reported slot (see the package documentation).
func (n *Node) checkPhase1() {
	need := n.audience()
	for _, c := range n.p1Configs {
		need |= c.mask
	}
	b := n.promised
	n.sendEach(false, need&^n.p1Asked, func(to replica.NodeID) replica.Message {
		return &Prepare{Header: Header{From: n.id, To: to}, Ballot: b, FromSlot: n.p1From}
	})
	n.p1Asked |= need
	if !n.enough(n.promises) {
		return
	}
	for i := range n.p1Configs {
		if !quorate(&n.p1Configs[i], n.promises) {
			return
		}
	}
	n.becomeLeader()
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
	// Every configuration proposed anywhere above applied may have been
	// chosen, so its majority must promise too; requiring one that was
	// not chosen costs only liveness.
	if c := e.Value.Config; c != nil && !slices.ContainsFunc(n.p1Configs, func(m membership) bool { return slices.Equal(m.ids, c) }) {
		n.p1Configs = append(n.p1Configs, n.newMembership(0, c))
	}
}

func (n *Node) becomeFollower(leaderHint replica.NodeID) {
	n.reads.Abort()
	n.role = follower
	n.leader = leaderHint
	n.queue = nil
	n.change = nil
	n.p1 = nil
	n.p1Configs = nil
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
	n.padTo = 0
	for s := n.commit + 1; s <= last; s++ {
		e := n.slotAt(s, true)
		if e == nil {
			last = s - 1
			break
		}
		if !e.chosen {
			if p, ok := n.p1[s]; ok {
				e.value, e.chosen = p.Value, p.Chosen
			} else {
				e.value = Value{}
			}
		}
		if e.value.Config != nil {
			n.padTo = max(n.padTo, s+configDelay-1)
		}
		e.ballot = b
		e.acks = 0
		n.markDirty(s, e)
	}
	if c := n.configs[len(n.configs)-1]; c.from > n.applied+1 {
		n.padTo = max(n.padTo, c.from-1)
	}
	n.p1 = nil
	n.p1Configs = nil
	n.next = last + 1
	n.sent = n.commit
	n.readFloor = last
	n.broadcastHeartbeat()
	n.advance()
}

// sendWindow sends the Accepts of the slots that entered the leader's
// window: those up to applied+configDelay, whose configuration is known.
func (n *Node) sendWindow() {
	limit := min(n.next-1, n.applied+configDelay)
	for ; n.sent < limit; n.sent++ {
		s := n.sent + 1
		if e := n.slotAt(s, false); e != nil {
			n.sendAccepts(s, e)
		}
	}
}

// sendAccepts proposes e's value for slot s to the other members of its
// configuration, and to the leader itself once its own write is durable.
func (n *Node) sendAccepts(s uint64, e *slot) {
	e.sentAt = n.now
	b, v, c := n.promised, e.value, n.commit
	n.sendEach(true, n.configAt(s).mask&^(1<<n.self), func(to replica.NodeID) replica.Message {
		return &Accept{Header: Header{From: n.id, To: to}, Ballot: b, Slot: s, Value: v, Commit: c}
	})
	n.acceptOwn(s)
}

func (n *Node) broadcastHeartbeat() {
	// A read round in flight rides on every heartbeat until it completes,
	// so a lost heartbeat or reply only delays it.
	b, c, read := n.promised, n.commit, n.reads.InFlight()
	n.sendEach(true, n.audience(), func(to replica.NodeID) replica.Message {
		return &Heartbeat{Header: Header{From: n.id, To: to}, Ballot: b, Commit: c, Read: read}
	})
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
	n.reads.AckWith(n.reads.InFlight(), i, n.enough)
	n.reads.Release(n.applied)
}

// retransmit re-sends Accepts that have waited at least a heartbeat
// interval, to the peers that have not acknowledged them.
func (n *Node) retransmit() {
	limit := min(n.sent, n.commit+retransmitSlots)
	for s := n.commit + 1; s <= limit; s++ {
		e := n.slotAt(s, false)
		if e == nil || e.chosen || n.now-e.sentAt < uint64(n.cfg.HeartbeatTicks) {
			continue
		}
		e.sentAt = n.now
		to := n.configAt(s).mask &^ e.acks &^ (1 << n.self)
		for i := range n.progress {
			if n.progress[i].commit >= s {
				to &^= 1 << i
			}
		}
		b, v, c := n.promised, e.value, n.commit
		n.sendEach(true, to, func(to replica.NodeID) replica.Message {
			return &Accept{Header: Header{From: n.id, To: to}, Ballot: b, Slot: s, Value: v, Commit: c}
		})
		// The leader's own acceptance is a message like any other: a
		// runtime that drops it (a test's lossy network does) must not
		// leave the slot waiting for a majority of the others alone.
		if e.acks&(1<<n.self) == 0 {
			n.acceptOwn(s)
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

// ChangeMembers proposes members as the group's next configuration (see
// the package documentation). A follower returns *replica.NotLeaderError.
func (n *Node) ChangeMembers(members []replica.NodeID) error {
	if err := replica.ValidateMembers(members, maxPeers); err != nil {
		return fmt.Errorf("paxos: %w", err)
	}
	if n.role != leader {
		return &replica.NotLeaderError{Leader: n.leader}
	}
	if n.changePending() {
		return fmt.Errorf("paxos: %w", replica.ErrChangePending)
	}
	n.change = slices.Sorted(slices.Values(members))
	n.advance()
	return nil
}

// changePending reports whether a configuration waits to be placed, sits
// unapplied in the log, or was applied but does not govern the next slot.
func (n *Node) changePending() bool {
	if n.change != nil || len(n.configs) > 1 {
		return true
	}
	for s := n.applied + 1; s < n.next; s++ {
		if e := n.slotAt(s, false); e != nil && e.value.Config != nil {
			return true
		}
	}
	return false
}

// flush turns queued requests, a membership change and the no-ops that
// make a change take effect into new slots while the pipeline has room.
func (n *Node) flush() {
	n.next = max(n.next, n.commit+1)
	for (len(n.queue) > 0 || n.change != nil || n.next <= n.padTo) &&
		n.next-1-n.commit < n.maxInflight && n.next <= n.applied+configDelay {
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
		var v Value
		switch {
		case n.change != nil:
			v = Value{Config: n.change}
			n.change = nil
			n.padTo = max(n.padTo, s+configDelay-1)
		case len(n.queue) > 0:
			k := min(len(n.queue), n.maxBatch)
			v = Value{Reqs: n.queue[:k:k]}
			if k == len(n.queue) {
				n.queue = nil
			} else {
				n.queue = n.queue[k:]
			}
		}
		*e = slot{ballot: n.promised, value: v}
		n.markDirty(s, e)
	}
}

// checkChosen marks slot s chosen once a majority of its configuration
// accepted it in this leader's ballot; s must be in the leader's window.
func (n *Node) checkChosen(s uint64) {
	e := n.slotAt(s, false)
	if e != nil && !e.chosen && quorate(n.configAt(s), e.acks) {
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
	n.sendWindow()
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
		if e.value.Config != nil {
			n.addConfig(s, e.value.Config)
		}
		n.applied = s
	}
	n.pruneConfigs()
	if n.cfg.SnapshotEvery > 0 && n.applied-n.snapIndex >= n.cfg.SnapshotEvery {
		data, err := n.sm.Snapshot()
		if err != nil {
			// Keep the log; the next applied slot tries again.
			return
		}
		s := &replica.Snapshot{Index: n.applied, Meta: n.encodeConfigs(), Data: data}
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
	cs, err := decodeConfigs(s.Meta)
	if err != nil {
		// A snapshot we cannot restore is ignored; the sender retries.
		return
	}
	if err := n.sm.Restore(s.Data); err != nil {
		return
	}
	n.setConfigs(cs)
	n.compact(&s)
	n.commit, n.applied = s.Index, s.Index
	n.pruneConfigs()
	if n.role == leader {
		n.next = max(n.next, s.Index+1)
		n.sent = max(n.sent, s.Index)
	}
	n.advance()
}

// Step handles one message from a peer, or the leader's own Accepted
// handed back once durable; stale, misaddressed and ill-formed messages
// are ignored.
func (n *Node) Step(m replica.Message) {
	if isNil(m) || m.Dest() != n.id || n.index(m.Source()) < 0 {
		return
	}
	// Messages from any replica count: a joiner hears from a leader that
	// its initial configuration does not name, and quorums are counted
	// per configuration, never by who happens to write. From itself a
	// replica takes only the Accepted its own durable write sent.
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
	i := n.index(m.From)
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
	n.checkPhase1()
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
	i := n.index(from)
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
		p := &n.progress[n.index(peer)]
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

// AnswersEarly reports true (replica.EarlyAnswerer): a leader counts its
// own acceptance only from the Accepted its durable write sends it, so
// what it applies, and what its reads are answered from, is durable on a
// majority whatever its own writes in flight hold.
func (n *Node) AnswersEarly() bool { return true }

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
	last := n.configs[len(n.configs)-1]
	return replica.Status{
		ID:            n.id,
		Role:          r,
		Leader:        n.leader,
		Epoch:         n.promised.Round,
		Commit:        n.commit,
		Applied:       n.applied,
		LogLen:        len(n.log), // slots held in memory, holes included
		SnapshotIndex: n.snapIndex,
		Members:       slices.Clone(last.ids),
		MembersFrom:   last.from,
	}
}
