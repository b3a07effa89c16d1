// Package vr is a Viewstamped Replication core (VR Revisited, Liskov and
// Cowling 2012): a deterministic state machine that implements
// replica.Replicator, interchangeable with the Multi-Paxos core.
//
// Normal operation: the primary of view v (the replica peers[v mod n], peers
// sorted) assigns each batch of up to MaxBatch requests the next op number
// and sends it in a Prepare, keeping up to MaxInflight ops uncommitted. A
// backup appends a Prepare only when it holds every earlier op; otherwise it
// asks the primary for the ops it lacks (GetState / NewState). Its PrepareOK
// acknowledges every op up to the one it names; an op is committed once a
// majority (the primary included) acknowledged it, and the primary's Commit
// heartbeats and Prepares carry the commit number to the backups.
//
// View change: a backup that hears nothing from the primary for an election
// timeout sends StartViewChange for the next view; a replica that collects a
// majority of them sends its log to the new primary in a DoViewChange,
// together with the last view in which its status was normal. The new
// primary takes the log with the largest last-normal view and, among those,
// the largest op number (never simply the longest log), and installs it with
// StartView. Every replica that moves to a new view first truncates its
// uncommitted suffix (Persist.Truncate) and then takes the new primary's ops.
//
// Recovery: a replica that restarts sends Recovery with a nonce drawn from
// its seeded generator and neither votes nor answers until it has
// RecoveryResponses carrying that nonce from a majority, one of them from
// the primary of the highest view reported, whose log it then adopts.
//
// Client table: VR's client table (last request number and reply per
// client) is the session table inside the replicated state machine
// (kv.Store), which answers retried requests without applying them again;
// the core therefore orders duplicates like any other request.
//
// Durability: unlike the paper, which keeps no state on disk and relies on
// recovery from peers alone (so that a majority crashing at once loses
// data), these replicas persist their state: Persist.State holds the view,
// the last normal view, the highest view a DoViewChange was sent in, and a
// commit number that lags one Ready behind, so that every op it covers was
// written by an earlier Ready (and rides on a write that happens anyway,
// never costing one of its own: it only spares a restarted replica
// fetching those ops again); each op is one Entry; snapshots are taken
// every SnapshotEvery applied ops. The disk is what makes it safe for a
// restarted replica that cannot complete recovery (because a majority
// restarted with it) to rejoin view changes from its durable state after a
// recovery timeout, so the group survives every replica crashing at once.
// Recovery with a nonce remains the normal way back in: it rejoins the
// current view without disturbing a working primary.
//
// The primary's write overlaps its backups': its Prepares and Commit
// heartbeats go in Ready.Early, before its own write of the ops they
// carry. It counts its own log only from the PrepareOK it sends itself
// among the Ready's Messages, which comes back once that write is
// durable; so an op commits, and the commit number that every Prepare and
// Commit carries moves over it, only when a majority holds it durably.
// Were the primary to count itself at once, a backup could learn a commit
// number that rests on the primary's unsynced write and apply the op; a
// crash that loses the write could then leave the op out of the log the
// next view starts from. An op that leaves before the primary's own write
// is just a proposal: a restarted primary recovers, and never again acts
// as the primary of its old view (its recovery waits for a primary of the
// highest view, never itself; a view change moves past it), so no other
// op takes that number in that view, and the log it rejoins with, a prefix
// of the one it had, is like any backup's that lags. A backup's log is a
// prefix of the primary's in memory, so the view change's choice (last
// normal view, then op number) is unchanged. Everything that acknowledges
// or hands over a log (PrepareOK, the view change's votes and logs,
// NewState, RecoveryResponse) waits for durability.
//
// Membership changes (replica.Reconfigurer) follow VR Revisited's epochs:
// a reconfiguration is the last op of its epoch, and the configuration
// (which also fixes each view's primary) changes only between epochs.
// epoch.go describes the protocol; the hard state and every snapshot's
// meta record the epoch, its start and its members.
//
// Reads by read index (replica.ReadIndexer): the primary fixes a read's
// index at the larger of its commit number and the op number its log had
// when it started the view (the read floor), confirms with one round of
// Commit heartbeats, answered by PrepareOKs that echo the round, that a
// majority are still normal members of its view, and reports the read once
// it has applied that index. Why this is linearizable: a write acknowledged
// before the read arrived was committed in some view v'. If v' is below
// the primary's view v, the view change put it in the log the primary
// started v with, so it is at or below the floor (the commit number a new
// primary learns may lag, the floor does not). If v' is v, this primary
// committed it. If v' is above v, a majority sent DoViewChange for a view
// above v before the read arrived; a replica that did never again answers a
// Commit of v, and the round, begun later, needed answers from a majority,
// so it could not have completed.
package vr

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
	RolePrimary    = "primary"
	RoleBackup     = "backup"
	RoleViewChange = "view-change"
	RoleRecovering = "recovering"
)

// maxPeers is the group size the vote bitmasks can hold.
const maxPeers = 64

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

type status uint8

const (
	normal status = iota
	viewChange
	recovering
	transitioning // fetching the ops up to the epoch's start (epoch.go)
	leaving       // left with the last epoch, waiting for the new one
	shutDown      // not a member of the current epoch
)

// Node is one VR replica. It is not safe for concurrent use.
type Node struct {
	cfg         replica.Config
	sm          replica.StateMachine
	id          replica.NodeID
	peers       []replica.NodeID // every member, sorted, including id
	self        int
	quorum      int
	maxBatch    int
	maxInflight uint64
	rng         *rand.Rand

	status     status
	view       uint64
	lastNormal uint64 // the last view in which status was normal; durable
	dvcView    uint64 // the highest view a DoViewChange was sent in; durable
	boot       uint64 // incarnations before this one; durable
	now        uint64

	// log holds ops snapIndex+1 .. snapIndex+len(log).
	log       []Value
	commit    uint64
	applied   uint64
	snapIndex uint64
	snap      *replica.Snapshot

	electionElapsed  int
	electionTimeout  int
	heartbeatElapsed int
	quorumElapsed    int
	getStateAt       uint64
	getStateSent     bool
	// joining is set while a replica that entered a view without the
	// primary's log waits for it. Until then it keeps its old last normal
	// view and neither appends nor acknowledges ops: a short log must not
	// speak for the new view in the next view change.
	joining bool

	// View change.
	svcs uint64 // peers (by index) known to have sent StartViewChange(view)
	dvcs map[int]*DoViewChange

	// Primary.
	queue  []replica.Request
	acked  []uint64 // per peer: highest op acknowledged in this view
	active []bool   // per peer: heard from since the last quorum check
	stale  bool     // did not hear from a majority in the last check
	// readFloor is the op number the primary's log had when the view
	// started: every op committed in an earlier view is at or below it.
	readFloor uint64
	reads     replica.ReadRounds
	// ownAcked says the primary's own PrepareOK of this view came back:
	// what it sent at the start of the view is durable and has left.
	ownAcked bool

	// Recovery.
	nonce    uint64
	recovery map[int]*RecoveryResponse

	// Epochs (epoch.go): peers are the current epoch's members.
	epoch        uint64           // durable
	epochStart   uint64           // the op that began the epoch; durable
	oldPeers     []replica.NodeID // the previous epoch's members; durable
	change       []replica.NodeID // a reconfiguration the primary will place
	configOp     uint64           // pendingConfig
	started      uint64           // leaving: members (by index) that sent EpochStarted
	transferNext int              // transitioning: whom to ask next
	restoring    bool             // New is replaying the durable log

	// Outputs since the last Ready.
	early       []replica.Message // acknowledge nothing: see Ready.Early
	msgs        []replica.Message
	results     []replica.Result
	dirtyFrom   uint64 // ops from here to the end must be written
	truncate    bool
	truncAfter  uint64
	stateDirty  bool
	pendSnap    *replica.Snapshot
	readyCommit uint64
	claimed     uint64
}

var (
	_ replica.Replicator  = (*Node)(nil)
	_ replica.ReadIndexer = (*Node)(nil)
)

// keepOrdering is a deliberately broken variant for tests only: the primary
// goes on ordering requests after a reconfiguration, so that the old
// epoch commits ops the new one never sees. The randomized membership
// test must catch it (TestKeepOrderingAfterReconfigurationIsCaught).
var keepOrdering bool

// New returns a replica that starts fresh in view 0 when d is nil or empty,
// and otherwise restarts from d and recovers. sm must be in its initial
// state; New restores it from the durable snapshot and re-applies the ops
// that d shows to be committed.
func New(cfg replica.Config, sm replica.StateMachine, d *replica.Durable) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vr: %w", err)
	}
	if len(cfg.Peers) > maxPeers {
		return nil, fmt.Errorf("vr: %d peers, at most %d supported", len(cfg.Peers), maxPeers)
	}
	if sm == nil {
		return nil, fmt.Errorf("vr: nil state machine")
	}
	n := &Node{
		cfg:         cfg,
		sm:          sm,
		id:          cfg.ID,
		maxBatch:    max(cfg.MaxBatch, 1),
		maxInflight: uint64(max(cfg.MaxInflight, 1)),
		// Mixing the ID in gives every replica its own timeouts and
		// nonces even when the whole group shares one seed.
		rng:       rand.New(rand.NewSource(cfg.Seed*1_000_003 + int64(cfg.ID))),
		dirtyFrom: math.MaxUint64,
	}
	n.setEpoch(epochInfo{peers: cfg.Peers})
	for i := range n.active {
		n.active[i] = true
	}
	n.resetElectionTimer()
	if d == nil || (d.State == nil && d.Snapshot == nil && len(d.Entries) == 0) {
		// The first Ready writes the hard state, so that any restart,
		// even before the first op, knows it must recover.
		if n.self < 0 {
			n.status = shutDown
		}
		return n, nil
	}
	n.restoring = true
	err := n.restore(d)
	n.restoring = false
	if err != nil {
		return nil, err
	}
	// Each incarnation draws from its own sequence, so a late answer to
	// an earlier incarnation's Recovery never carries this one's nonce.
	n.boot++
	n.stateDirty = true
	n.rng = rand.New(rand.NewSource(cfg.Seed*1_000_003 + int64(cfg.ID) + int64(n.boot)*7_919_000_009))
	n.resetElectionTimer()
	if n.self < 0 || n.neverReady() {
		// No longer a member, or one that never held the epoch's start:
		// it promised nothing in this epoch, so there is nothing to
		// recover, only its part in the epoch to take up (enterEpoch).
		n.view = 0
		n.enterEpoch()
		return n, nil
	}
	n.startRecovery()
	return n, nil
}

func (n *Node) restore(d *replica.Durable) error {
	var claim uint64
	if d.State != nil {
		h, err := decodeState(d.State)
		if err != nil {
			return fmt.Errorf("vr: restart: %w", err)
		}
		n.setEpoch(h.epochInfo)
		n.view, n.lastNormal, n.dvcView, n.boot, claim = h.view, h.lastNormal, h.dvcView, h.boot, h.commit
	}
	if d.Snapshot != nil {
		// The snapshot may have reached disk without the hard state
		// written with it; its meta says which epoch it belongs to.
		e, err := decodeMeta(d.Snapshot.Meta)
		if err != nil {
			return fmt.Errorf("vr: restart: snapshot %d: %w", d.Snapshot.Index, err)
		}
		if e.epoch > n.epoch {
			n.setEpoch(e)
		}
		if err := n.sm.Restore(d.Snapshot.Data); err != nil {
			return fmt.Errorf("vr: restart: restore snapshot %d: %w", d.Snapshot.Index, err)
		}
		s := *d.Snapshot
		n.snap = &s
		n.snapIndex, n.applied, n.commit = s.Index, s.Index, s.Index
	}
	for _, e := range d.Entries {
		if e.Index <= n.snapIndex {
			continue
		}
		if e.Index != n.opNum()+1 {
			// Ops are written in order; a hole means the rest never
			// completed and cannot be vouched for.
			break
		}
		v, err := decodeEntry(e.Data)
		if err != nil {
			return fmt.Errorf("vr: restart: entry %d: %w", e.Index, err)
		}
		n.log = append(n.log, v)
	}
	n.commit = max(n.commit, min(claim, n.opNum()))
	n.readyCommit, n.claimed = n.commit, claim
	n.configOp = n.findConfig()
	n.apply()
	return nil
}

func (n *Node) opNum() uint64 { return n.snapIndex + uint64(len(n.log)) }

// entry returns op's value; ok is false when op is compacted or absent.
func (n *Node) entry(op uint64) (Value, bool) {
	if op <= n.snapIndex || op > n.opNum() {
		return Value{}, false
	}
	return n.log[op-n.snapIndex-1], true
}

func (n *Node) primaryOf(v uint64) replica.NodeID { return n.peers[v%uint64(len(n.peers))] }

func (n *Node) isPrimary() bool {
	return n.status == normal && n.self >= 0 && n.primaryOf(n.view) == n.id
}

// notPrimary is the error for a request this replica cannot order now.
func (n *Node) notPrimary() error {
	var hint replica.NodeID
	if n.status == normal && !n.stale && !n.isPrimary() {
		hint = n.primaryOf(n.view)
	}
	return &replica.NotLeaderError{Leader: hint}
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

func (n *Node) send(m replica.Message) {
	m.(interface{ setEpoch(uint64) }).setEpoch(n.epoch)
	n.msgs = append(n.msgs, m)
}

func (n *Node) broadcast(mk func(to replica.NodeID) replica.Message) {
	for _, p := range n.peers {
		if p != n.id {
			n.send(mk(p))
		}
	}
}

// broadcastEarly broadcasts the primary's Prepares and Commits, which may
// leave before this Ready's Persist is durable, once the view's StartView
// has left: those of a view's first Readies wait behind it, or a backup
// would take them for a view it missed and fetch the log it is about to
// be sent.
func (n *Node) broadcastEarly(mk func(to replica.NodeID) replica.Message) {
	if !n.ownAcked {
		n.broadcast(mk)
		return
	}
	for _, p := range n.peers {
		if p != n.id {
			m := mk(p)
			m.(interface{ setEpoch(uint64) }).setEpoch(n.epoch)
			n.early = append(n.early, m)
		}
	}
}

// ackOwn has the primary acknowledge its own log, once the write of it is
// durable: the PrepareOK it sends itself is released, like any other, only
// after that write is synced.
func (n *Node) ackOwn() {
	n.send(&PrepareOK{Header: Header{From: n.id, To: n.id}, View: n.view, Op: n.opNum()})
}

func (n *Node) appendOp(v Value) {
	n.log = append(n.log, v)
	n.dirtyFrom = min(n.dirtyFrom, n.opNum())
	if v.Config != nil && n.opNum() > n.epochStart {
		n.configOp = n.opNum()
	}
}

// truncateTo drops every op above t, which must not be below commit.
func (n *Node) truncateTo(t uint64) {
	if t >= n.opNum() {
		return
	}
	t = max(t, n.commit)
	k := t - n.snapIndex
	// Capping the slice makes later appends copy, so a message that
	// shares the old backing array never sees the new ops.
	n.log = n.log[:k:k]
	if n.configOp > t {
		n.configOp = 0
	}
	if !n.truncate || t < n.truncAfter {
		n.truncate, n.truncAfter = true, t
	}
}

// suffix returns the log above after, or from the snapshot on when after
// is compacted.
func (n *Node) suffix(after uint64) Suffix {
	var s Suffix
	if after < n.snapIndex {
		s.Snapshot = n.snap
		after = n.snapIndex
	}
	after = min(after, n.opNum())
	s.After = after
	s.Entries = slices.Clone(n.log[after-n.snapIndex:])
	return s
}

// Tick advances the logical clock by one tick.
func (n *Node) Tick() {
	n.now++
	switch {
	case n.status == shutDown:
	case n.status == transitioning || n.status == leaving:
		n.heartbeatElapsed++
		if n.heartbeatElapsed >= n.cfg.HeartbeatTicks {
			n.heartbeatElapsed = 0
			if n.status == leaving {
				n.broadcastStartEpoch()
			} else {
				n.sendGetEpochState()
			}
		}
	case n.status == recovering:
		n.electionElapsed++
		if n.electionElapsed%n.cfg.HeartbeatTicks == 0 {
			n.sendRecovery()
		}
		// Nobody answered: a majority is recovering too. The durable
		// state holds every promise this replica made, so it may take
		// part in a view change as if it had never crashed, once its log
		// holds the epoch's start (before that it may hold another
		// epoch's uncommitted ops).
		if n.electionElapsed >= 2*n.electionTimeout && n.commit >= n.epochStart {
			n.startViewChange(n.view + 1)
		}
	case n.isPrimary():
		n.heartbeatElapsed++
		if n.heartbeatElapsed >= n.cfg.HeartbeatTicks {
			n.heartbeatElapsed = 0
			n.broadcastCommit()
		}
		// A primary cut off from a majority refuses new requests, so
		// that clients go elsewhere instead of waiting on it.
		n.quorumElapsed++
		if n.quorumElapsed >= n.cfg.ElectionTicks {
			n.quorumElapsed = 0
			heard := 1
			for i := range n.active {
				if i != n.self && n.active[i] {
					heard++
				}
				n.active[i] = false
			}
			n.stale = heard < n.quorum
		}
	default:
		n.electionElapsed++
		if n.electionElapsed >= n.electionTimeout {
			n.startViewChange(n.view + 1)
			return
		}
		if n.status == viewChange {
			n.heartbeatElapsed++
			if n.heartbeatElapsed >= n.cfg.HeartbeatTicks {
				// Messages may be lost; a view change repeats its votes.
				n.heartbeatElapsed = 0
				n.broadcast(func(to replica.NodeID) replica.Message {
					return &StartViewChange{Header: Header{From: n.id, To: to}, View: n.view}
				})
				if n.dvcView == n.view && n.primaryOf(n.view) != n.id {
					n.sendDoViewChange()
				}
			}
		}
	}
}

func (n *Node) broadcastCommit() {
	// A read round in flight rides on every heartbeat until it completes,
	// so a lost heartbeat or reply only delays it.
	read := n.reads.InFlight()
	n.broadcastEarly(func(to replica.NodeID) replica.Message {
		return &Commit{Header: Header{From: n.id, To: to}, View: n.view, Commit: n.commit, Op: n.opNum(), Read: read}
	})
}

// ReadIndex starts a linearizable read (see the package documentation).
// A replica that is not the primary of a normal view, or that did not hear
// from a majority lately, returns *replica.NotLeaderError.
func (n *Node) ReadIndex(id uint64) error {
	// A primary whose epoch is ending cannot tell whether the next one
	// has begun writing.
	if !n.isPrimary() || n.stale || n.changing() {
		return n.notPrimary()
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
	n.broadcastCommit()
	n.readAck(n.self)
}

// readAck counts member i's acknowledgement of the read round in flight.
func (n *Node) readAck(i int) {
	n.reads.Ack(n.reads.InFlight(), i, n.quorum)
	n.reads.Release(n.applied)
}

func (n *Node) startViewChange(v uint64) {
	if v == 0 || v >= maxView {
		// The view number wrapped; only a corrupt or hostile peer gets
		// here, and staying put keeps every promise intact.
		n.resetElectionTimer()
		return
	}
	n.view = v
	n.status = viewChange
	n.stateDirty = true
	n.reads.Abort()
	n.queue, n.change = nil, nil
	n.recovery = nil
	n.svcs = 1 << n.self
	n.dvcs = map[int]*DoViewChange{}
	n.heartbeatElapsed = 0
	n.resetElectionTimer()
	n.broadcast(func(to replica.NodeID) replica.Message {
		return &StartViewChange{Header: Header{From: n.id, To: to}, View: v}
	})
	n.checkStartViewChanges()
}

// checkStartViewChanges sends this replica's DoViewChange once a majority
// gave up on the old view.
func (n *Node) checkStartViewChanges() {
	if n.status != viewChange || n.dvcView >= n.view || bits.OnesCount64(n.svcs) < n.quorum {
		return
	}
	n.dvcView = n.view
	n.stateDirty = true
	if n.primaryOf(n.view) == n.id {
		n.dvcs[n.self] = n.doViewChange(n.id)
		n.checkDoViewChanges()
		return
	}
	n.sendDoViewChange()
}

func (n *Node) doViewChange(to replica.NodeID) *DoViewChange {
	return &DoViewChange{Header: Header{From: n.id, To: to}, View: n.view, LastNormal: n.lastNormal, Commit: n.commit, Log: n.suffix(0)}
}

func (n *Node) sendDoViewChange() {
	n.send(n.doViewChange(n.primaryOf(n.view)))
}

// better reports whether log a (last normal view, op number) beats b.
func better(a, b *DoViewChange) bool {
	if a.LastNormal != b.LastNormal {
		return a.LastNormal > b.LastNormal
	}
	return a.Log.Last() > b.Log.Last()
}

// checkDoViewChanges starts the view once the new primary holds a
// majority of DoViewChanges, its own included.
func (n *Node) checkDoViewChanges() {
	own, ok := n.dvcs[n.self]
	if n.status != viewChange || !ok || len(n.dvcs) < n.quorum {
		return
	}
	best, commit := own, n.commit
	for _, d := range n.dvcs {
		if better(d, best) {
			best = d
		}
		commit = max(commit, d.Commit)
	}
	if best != own && !n.adopt(best.Log, n.commit) {
		// The chosen log carries everything from its sender's snapshot
		// on, so it always attaches; a message that does not is corrupt.
		return
	}
	minCommit := commit
	for _, d := range n.dvcs {
		minCommit = min(minCommit, d.Commit)
	}
	n.enterView()
	n.readFloor = n.opNum()
	n.commit = max(n.commit, min(commit, n.opNum()))
	n.ackOwn()
	for i, p := range n.peers {
		if i == n.self {
			continue
		}
		from := minCommit
		if d, ok := n.dvcs[i]; ok {
			from = d.Commit
		}
		n.send(&StartView{Header: Header{From: n.id, To: p}, View: n.view, Commit: n.commit, Log: n.suffix(from)})
	}
	n.dvcs = nil
	n.advance()
}

// enterView makes the current view normal.
func (n *Node) enterView() {
	n.reads.Abort()
	n.status = normal
	n.lastNormal = n.view
	n.joining = false
	n.stateDirty = true
	n.dvcs = nil
	n.recovery = nil
	n.queue = nil
	n.stale = false
	n.ownAcked = false
	n.heartbeatElapsed, n.quorumElapsed = 0, 0
	for i := range n.acked {
		n.acked[i], n.active[i] = 0, true
	}
	n.resetElectionTimer()
}

// adopt attaches a peer's log suffix to this replica's log, whose ops up
// to base agree with the peer's; the ops above base are dropped first. It
// returns false, changing nothing, when the suffix starts above base and
// above its snapshot.
func (n *Node) adopt(s Suffix, base uint64) bool {
	useSnap := s.Snapshot != nil && s.Snapshot.Index > n.commit
	if s.After > base && (!useSnap || s.After > s.Snapshot.Index) {
		return false
	}
	if useSnap {
		if !n.installSnapshot(*s.Snapshot) {
			return false
		}
		base = max(base, n.commit)
	}
	n.truncateTo(base)
	for i, v := range s.Entries {
		if s.After+uint64(i)+1 > n.opNum() {
			n.appendOp(v)
		}
	}
	return true
}

func (n *Node) installSnapshot(s replica.Snapshot) bool {
	if s.Index <= n.commit {
		return false
	}
	if err := n.sm.Restore(s.Data); err != nil {
		// A snapshot that does not restore is ignored; the sender
		// retries.
		return false
	}
	if s.Index >= n.opNum() {
		n.log = nil
	} else {
		n.log = slices.Clone(n.log[s.Index-n.snapIndex:])
	}
	n.snap, n.pendSnap = &s, &s
	n.snapIndex, n.commit, n.applied = s.Index, s.Index, s.Index
	n.configOp = n.findConfig()
	return true
}

// Propose submits client requests. The primary of a normal view orders
// them; every other replica returns *replica.NotLeaderError.
func (n *Node) Propose(reqs ...replica.Request) error {
	if !n.isPrimary() || n.stale || (n.changing() && !keepOrdering) {
		return n.notPrimary()
	}
	n.queue = append(n.queue, reqs...)
	n.advance()
	return nil
}

// flush turns queued requests into ops while the pipeline has room.
func (n *Node) flush() {
	before := n.opNum()
	for len(n.queue) > 0 && n.opNum()-n.commit < n.maxInflight && (keepOrdering || n.pendingConfig() == 0) {
		k := min(len(n.queue), n.maxBatch)
		v := Value{Reqs: n.queue[:k:k]}
		if k == len(n.queue) {
			n.queue = nil
		} else {
			n.queue = n.queue[k:]
		}
		n.appendOp(v)
		op := n.opNum()
		n.broadcastEarly(func(to replica.NodeID) replica.Message {
			return &Prepare{Header: Header{From: n.id, To: to}, View: n.view, Op: op, Commit: n.commit, Value: v}
		})
	}
	n.placeChange()
	if n.opNum() != before {
		n.ackOwn()
	}
}

// advance commits what a majority acknowledged (on the primary, whose
// own acknowledgement counts only once its log is durable, even in a
// group of one), applies committed ops, and refills the pipeline.
func (n *Node) advance() {
	if n.isPrimary() {
		var buf [maxPeers]uint64
		acks := buf[:len(n.peers)]
		copy(acks, n.acked)
		slices.Sort(acks)
		if c := acks[len(acks)-n.quorum]; c > n.commit {
			n.commit = c
		}
	}
	n.apply()
	if !n.isPrimary() {
		return
	}
	n.reads.Release(n.applied)
	n.flush()
}

func (n *Node) apply() {
	for n.applied < n.commit {
		op := n.applied + 1
		v, ok := n.entry(op)
		if !ok {
			return
		}
		for _, r := range v.Reqs {
			out := n.sm.Apply(op, r)
			n.results = append(n.results, replica.Result{ClientID: r.ClientID, Seq: r.Seq, Index: op, Value: out})
		}
		n.applied = op
		if v.Config != nil && op > n.epochStart {
			n.beginEpoch(op, v.Config)
		}
	}
	if n.cfg.SnapshotEvery > 0 && n.applied-n.snapIndex >= n.cfg.SnapshotEvery {
		data, err := n.sm.Snapshot()
		if err != nil {
			// Keep the log; the next applied op tries again.
			return
		}
		s := &replica.Snapshot{Index: n.applied, Meta: encodeMeta(n.info()), Data: data}
		n.log = slices.Clone(n.log[s.Index-n.snapIndex:])
		n.snap, n.pendSnap = s, s
		n.snapIndex = s.Index
	}
}

func (n *Node) learnCommit(c uint64) {
	n.commit = max(n.commit, min(c, n.opNum()))
	n.apply()
}

// sendGetState asks the primary for missing ops, at most once per
// heartbeat interval unless force is set.
func (n *Node) sendGetState(force bool) {
	if !force && n.getStateSent && n.now-n.getStateAt < uint64(n.cfg.HeartbeatTicks) {
		return
	}
	n.getStateSent, n.getStateAt = true, n.now
	// A joining replica's ops above its commit number may not be in the
	// view's log; it asks for everything above the commit number.
	op := n.opNum()
	if n.joining {
		op = n.commit
	}
	n.send(&GetState{Header: Header{From: n.id, To: n.primaryOf(n.view)}, View: n.view, Op: op})
}

// ackPrimary acknowledges the log to the primary, and with it the read
// round read when that is not 0.
func (n *Node) ackPrimary(read uint64) {
	n.send(&PrepareOK{Header: Header{From: n.id, To: n.primaryOf(n.view)}, View: n.view, Op: n.opNum(), Read: read})
}

// Step handles one message from a peer, or the primary's own PrepareOK
// handed back once durable; stale, misaddressed and ill-formed messages
// are ignored.
func (n *Node) Step(m replica.Message) {
	if isNil(m) || m.Dest() != n.id || m.Source() == 0 || n.stepEpoch(m) || n.peerIndex(m.Source()) < 0 {
		return
	}
	if _, own := m.(*PrepareOK); m.Source() == n.id && !own {
		return
	}
	switch m := m.(type) {
	case *Prepare:
		n.onPrepare(m)
	case *PrepareOK:
		n.onPrepareOK(m)
	case *Commit:
		n.onCommit(m)
	case *StartViewChange:
		n.onStartViewChange(m)
	case *DoViewChange:
		n.onDoViewChange(m)
	case *StartView:
		n.onStartView(m)
	case *GetState:
		n.onGetState(m)
	case *NewState:
		n.onNewState(m)
	case *Recovery:
		n.onRecovery(m)
	case *RecoveryResponse:
		n.onRecoveryResponse(m)
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
	case *PrepareOK:
		return m == nil
	case *Commit:
		return m == nil
	case *StartViewChange:
		return m == nil
	case *DoViewChange:
		return m == nil
	case *StartView:
		return m == nil
	case *GetState:
		return m == nil
	case *NewState:
		return m == nil
	case *Recovery:
		return m == nil
	case *RecoveryResponse:
		return m == nil
	case *StartEpoch:
		return m == nil
	case *EpochStarted:
		return m == nil
	case *GetEpochState:
		return m == nil
	}
	return false
}

// fromPrimary handles the view of a message from the primary of view v in
// normal operation. A replica that is behind (an older view, or still
// changing views) missed the StartView: it truncates its uncommitted ops,
// joins the view and fetches the primary's log.
func (n *Node) fromPrimary(from replica.NodeID, v uint64) bool {
	if n.status == recovering || v < n.view || n.primaryOf(v) != from || v < n.dvcView {
		return false
	}
	if v > n.view || n.status != normal {
		n.view = v
		n.join()
	}
	n.electionElapsed = 0
	return true
}

// join enters the current view as a backup that lacks the primary's log
// and fetches it. Its own log stays as it was in its last normal view,
// which is what it must report in a view change until the new log is in.
func (n *Node) join() {
	lastNormal := n.lastNormal
	n.enterView()
	n.lastNormal, n.joining = lastNormal, true
	n.sendGetState(true)
}

func (n *Node) onPrepare(m *Prepare) {
	if !n.fromPrimary(m.From, m.View) {
		return
	}
	if n.joining {
		n.sendGetState(false)
		return
	}
	switch {
	case m.Op == n.opNum()+1:
		n.appendOp(m.Value)
	case m.Op > n.opNum()+1:
		n.sendGetState(false)
	}
	n.learnCommit(m.Commit)
	n.ackPrimary(0)
}

func (n *Node) onCommit(m *Commit) {
	if !n.fromPrimary(m.From, m.View) {
		return
	}
	if n.joining {
		n.sendGetState(false)
		return
	}
	n.learnCommit(m.Commit)
	if m.Op > n.opNum() {
		n.sendGetState(false)
	}
	n.ackPrimary(m.Read)
}

func (n *Node) onPrepareOK(m *PrepareOK) {
	if !n.isPrimary() || m.View != n.view {
		return
	}
	i := n.peerIndex(m.From)
	n.active[i] = true
	n.acked[i] = max(n.acked[i], min(m.Op, n.opNum()))
	if i == n.self {
		n.ownAcked = true
	}
	if m.Read != 0 && m.Read == n.reads.InFlight() {
		n.readAck(i)
	}
	n.advance()
}

func (n *Node) onStartViewChange(m *StartViewChange) {
	switch {
	case n.status == recovering:
		return
	case m.View > n.view:
		n.startViewChange(m.View)
	case m.View < n.view || n.status == normal:
		// The sender is behind; the primary's heartbeat makes it join.
		if n.isPrimary() {
			n.send(&Commit{Header: Header{From: n.id, To: m.From}, View: n.view, Commit: n.commit, Op: n.opNum()})
		}
		return
	}
	n.svcs |= 1 << n.peerIndex(m.From)
	n.checkStartViewChanges()
}

func (n *Node) onDoViewChange(m *DoViewChange) {
	if n.status == recovering || m.View < n.view || n.primaryOf(m.View) != n.id || m.LastNormal > m.View {
		return
	}
	if m.View > n.view {
		n.startViewChange(m.View)
	}
	if n.status != viewChange {
		// The view started without this message; the sender catches
		// up from the heartbeat.
		n.send(&Commit{Header: Header{From: n.id, To: m.From}, View: n.view, Commit: n.commit, Op: n.opNum()})
		return
	}
	i := n.peerIndex(m.From)
	n.svcs |= 1 << i
	n.dvcs[i] = m
	n.checkStartViewChanges()
	n.checkDoViewChanges()
}

func (n *Node) onStartView(m *StartView) {
	if n.status == recovering || m.View < n.view || (m.View == n.view && n.status == normal && !n.joining) ||
		n.primaryOf(m.View) != m.From || m.View < n.dvcView {
		return
	}
	n.view = m.View
	if !n.adopt(m.Log, n.commit) {
		n.join()
		return
	}
	n.enterView()
	n.learnCommit(m.Commit)
	n.ackPrimary(0)
}

func (n *Node) onGetState(m *GetState) {
	if n.status != normal || m.View != n.view || m.Op > n.opNum() {
		return
	}
	n.send(&NewState{Header: Header{From: n.id, To: m.From}, View: n.view, Commit: n.commit, Log: n.suffix(m.Op)})
}

func (n *Node) onNewState(m *NewState) {
	if n.status != normal || m.View != n.view || n.isPrimary() {
		return
	}
	if n.joining {
		// The primary's whole log above the commit number: from here
		// on this replica speaks for the view.
		if !n.adopt(m.Log, n.commit) {
			return
		}
		n.enterView()
	} else if !n.adopt(m.Log, n.opNum()) {
		// In a normal view a backup's log is a prefix of the
		// primary's, so nothing it holds is dropped.
		return
	}
	n.learnCommit(m.Commit)
	n.ackPrimary(0)
}

func (n *Node) startRecovery() {
	n.status = recovering
	n.nonce = n.rng.Uint64()
	n.recovery = map[int]*RecoveryResponse{}
	n.electionElapsed = 0
	n.sendRecovery()
}

func (n *Node) sendRecovery() {
	n.broadcast(func(to replica.NodeID) replica.Message {
		return &Recovery{Header: Header{From: n.id, To: to}, Nonce: n.nonce, Commit: n.commit}
	})
}

func (n *Node) onRecovery(m *Recovery) {
	if n.status != normal {
		return
	}
	r := &RecoveryResponse{Header: Header{From: n.id, To: m.From}, View: n.view, Nonce: m.Nonce}
	if n.isPrimary() {
		r.Primary, r.Commit, r.Log = true, n.commit, n.suffix(m.Commit)
	}
	n.send(r)
}

func (n *Node) onRecoveryResponse(m *RecoveryResponse) {
	if n.status != recovering || m.Nonce != n.nonce || (m.Primary && n.primaryOf(m.View) != m.From) {
		return
	}
	n.recovery[n.peerIndex(m.From)] = m
	if len(n.recovery) < n.quorum {
		return
	}
	var top uint64
	for _, r := range n.recovery {
		top = max(top, r.View)
	}
	p, ok := n.recovery[n.peerIndex(n.primaryOf(top))]
	// A view below one this replica voted to leave may have lost ops that
	// it acknowledged there; it waits for a newer view instead.
	if !ok || !p.Primary || p.View != top || top < n.dvcView {
		return
	}
	n.view = top
	if !n.adopt(p.Log, n.commit) {
		n.join()
		return
	}
	n.enterView()
	n.learnCommit(p.Commit)
	n.ackPrimary(0)
}

// AnswersEarly reports true (replica.EarlyAnswerer): the primary counts
// its own log only from the PrepareOK its durable write sends it, so what
// it applies, and what its reads are answered from, is durable on a
// majority whatever its own writes in flight hold.
func (n *Node) AnswersEarly() bool { return true }

// HasReady reports whether Ready would return anything.
func (n *Node) HasReady() bool {
	return len(n.early) > 0 || len(n.msgs) > 0 || len(n.results) > 0 || n.dirtyFrom <= n.opNum() || n.truncate ||
		n.stateDirty || n.pendSnap != nil || n.reads.HasOutput() || n.reads.Startable() || n.claimsEpochStart()
}

// claimsEpochStart reports whether the next hard state's commit number
// would cover the epoch's start for the first time. That one is written
// even without other writes: a replica that left with the epoch writes
// nothing else, and must still know after a restart that it holds the ops
// the new members fetch from it.
func (n *Node) claimsEpochStart() bool {
	return n.claimed < n.epochStart && n.readyCommit >= n.epochStart
}

// Ready drains the outputs produced since the previous call.
func (n *Node) Ready() replica.Ready {
	var rd replica.Ready
	n.startReadRound()
	due := n.claimsEpochStart()
	claim := n.readyCommit
	n.readyCommit = n.commit
	writes := n.truncate || max(n.dirtyFrom, n.snapIndex+1) <= n.opNum() || n.pendSnap != nil
	if n.stateDirty || due || (claim != n.claimed && writes) {
		rd.Persist.State = encodeState(hardState{view: n.view, lastNormal: n.lastNormal, dvcView: n.dvcView, boot: n.boot, commit: claim, epochInfo: n.info()})
		n.stateDirty, n.claimed = false, claim
	}
	if n.truncate {
		rd.Persist.Truncate, rd.Persist.TruncateAfter = true, n.truncAfter
		n.truncate = false
	}
	if from := max(n.dirtyFrom, n.snapIndex+1); from <= n.opNum() {
		rd.Persist.Entries = make([]replica.Entry, 0, n.opNum()-from+1)
		for op := from; op <= n.opNum(); op++ {
			v, _ := n.entry(op)
			rd.Persist.Entries = append(rd.Persist.Entries, replica.Entry{Index: op, Data: encodeEntry(v)})
		}
	}
	n.dirtyFrom = math.MaxUint64
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
	r, leader := RoleBackup, n.primaryOf(n.view)
	switch {
	case n.status == recovering:
		r, leader = RoleRecovering, 0
	case n.status == transitioning:
		r, leader = RoleTransitioning, 0
	case n.status == leaving:
		r, leader = RoleLeaving, 0
	case n.status == shutDown:
		r, leader = RoleShutDown, 0
	case n.status == viewChange:
		r, leader = RoleViewChange, 0
	case n.isPrimary():
		r = RolePrimary
	}
	// Members is the configuration of the current epoch, in force from
	// the op after its start, or the one a committed reconfiguration
	// names, in force once it is applied.
	members, from := n.peers, n.epochStart+1
	if op := n.pendingConfig(); op != 0 && op <= n.commit {
		v, _ := n.entry(op)
		members, from = v.Config, op+1
	}
	return replica.Status{
		ID:            n.id,
		Role:          r,
		Leader:        leader,
		Epoch:         stamp(n.epoch, n.view),
		Commit:        n.commit,
		Applied:       n.applied,
		LogLen:        len(n.log),
		SnapshotIndex: n.snapIndex,
		Members:       slices.Clone(members),
		MembersFrom:   from,
	}
}
