package vr

import (
	"fmt"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// Membership changes (replica.Reconfigurer) follow VR Revisited's epochs
// (section 7). Every message carries its sender's epoch, and a replica
// acts only on messages of its own: one from an older epoch is answered
// with StartEpoch, which tells the sender what it missed; one from a newer
// epoch makes the receiver probe the sender with GetEpochState, which a
// replica of a newer epoch also answers with StartEpoch.
//
// The primary places a reconfiguration (Value.Config) after the requests
// it has queued, and from then on refuses requests and reads and orders no
// further op: the reconfiguration is the last op of its epoch, and it is
// committed by the old configuration like any op (a view change of the old
// epoch carries it over when it is in the log it picks). A replica that
// applies it moves to the next epoch with the ops up to and including it
// as the committed prefix; views of the new epoch count from 0 again, and a
// promise is the pair (epoch, view), ordered epoch first (stamp).
//
// Members of the new epoch that applied the reconfiguration start in view
// 0 of the new epoch at once, their logs ending exactly at its start. The
// others (new replicas, and members that learn of the epoch from a
// StartEpoch) are transitioning: they drop their ops above their commit
// number, which may be an old epoch's uncommitted ops, and fetch the ops up
// to the epoch's start from any replica that holds them committed
// (GetEpochState, answered with NewState). Neither voting nor
// acknowledging until they have them, they then enter view 0 as well; one
// whose transfer brought a snapshot beyond the start (the epoch has moved
// on) joins the current view without acknowledging, as a backup that
// missed a StartView does, or starts a view change if it would be the
// primary of view 0. A replica that restarts in an epoch recovers as
// before, within the epoch, unless it never held the epoch's start
// (neverReady): then it transfers state like a new member. One that holds
// the start but whose durable commit number does not yet cover it can
// only recover (its recovery timeout does not start a view change, since
// the ops below the start in its log may be another epoch's uncommitted
// ones); the commit number is written as soon as it covers the start
// (claimsEpochStart), so that window is one write long.
//
// Members of the old epoch that are not in the new one leave: they send
// StartEpoch to the new members until a majority of them answered with
// EpochStarted, answering their state transfers meanwhile, and then shut
// down, answering nothing but messages of other epochs. A replica started
// with replica.Config.Joining is shut down in the first epoch until a
// StartEpoch that names it.

const (
	// maxView bounds view numbers, so that (epoch, view) fits one
	// uint64 (stamp); a message beyond it is malformed.
	maxView = 1 << 40
	// maxEpoch bounds epoch numbers likewise.
	maxEpoch = 1 << 24
)

// stamp orders (epoch, view) pairs as one number: the promise that
// replica.Inspector reports and Status.Epoch.
func stamp(epoch, view uint64) uint64 { return epoch<<40 | view }

// Roles reported by Status outside the normal protocol.
const (
	RoleTransitioning = "transitioning" // fetching the ops up to its epoch's start
	RoleLeaving       = "leaving"       // left with the last epoch, waiting for the new one to start
	RoleShutDown      = "shut-down"     // not a member of the current epoch
)

var _ replica.Reconfigurer = (*Node)(nil)

// ChangeMembers proposes members as the group's next configuration: the
// primary places the reconfiguration after the requests it has queued (see
// the package documentation). Any other replica returns
// *replica.NotLeaderError.
func (n *Node) ChangeMembers(members []replica.NodeID) error {
	if err := replica.ValidateMembers(members, maxPeers); err != nil {
		return fmt.Errorf("vr: %w", err)
	}
	if !n.isPrimary() || n.stale {
		return n.notPrimary()
	}
	if n.changing() {
		return fmt.Errorf("vr: %w", replica.ErrChangePending)
	}
	if n.epoch+1 >= maxEpoch {
		return fmt.Errorf("vr: no epoch number left above %d", n.epoch)
	}
	n.change = slices.Sorted(slices.Values(members))
	n.advance()
	return nil
}

// pendingConfig returns the op number of a reconfiguration in the log
// above the epoch's start, or 0.
func (n *Node) pendingConfig() uint64 { return n.configOp }

// findConfig looks for pendingConfig in the log, where appendOp, truncateTo
// and setEpoch cannot keep track of it: after a restart or a snapshot.
func (n *Node) findConfig() uint64 {
	for op := n.opNum(); op > max(n.epochStart, n.snapIndex); op-- {
		if v, _ := n.entry(op); v.Config != nil {
			return op
		}
	}
	return 0
}

// changing reports whether the epoch is ending: a reconfiguration waits
// to be placed or sits in the log. The primary then orders nothing more.
func (n *Node) changing() bool { return n.change != nil || n.pendingConfig() != 0 }

// placeChange appends the waiting reconfiguration once every queued
// request is in the log.
func (n *Node) placeChange() {
	if n.change == nil || len(n.queue) > 0 || n.opNum()-n.commit >= n.maxInflight {
		return
	}
	v := Value{Config: n.change}
	n.change = nil
	n.appendOp(v)
	op := n.opNum()
	n.broadcastEarly(func(to replica.NodeID) replica.Message {
		return &Prepare{Header: Header{From: n.id, To: to}, View: n.view, Op: op, Commit: n.commit, Value: v}
	})
}

// info is the replica's epoch as persisted.
func (n *Node) info() epochInfo {
	return epochInfo{epoch: n.epoch, start: n.epochStart, peers: n.peers, old: n.oldPeers}
}

// setEpoch makes e the replica's epoch, whose views start at 0.
func (n *Node) setEpoch(e epochInfo) {
	n.epoch, n.epochStart = e.epoch, e.start
	n.peers = slices.Sorted(slices.Values(e.peers))
	n.oldPeers = slices.Clone(e.old)
	n.self = slices.Index(n.peers, n.id)
	n.quorum = len(n.peers)/2 + 1
	n.acked = make([]uint64, len(n.peers))
	n.active = make([]bool, len(n.peers))
	n.view, n.lastNormal, n.dvcView = 0, 0, 0
	n.stateDirty = true
	n.reads.Abort()
	n.queue, n.change = nil, nil
	n.svcs, n.dvcs, n.recovery = 0, nil, nil
	n.joining, n.started, n.configOp = false, 0, 0
	n.stale, n.ownAcked = false, false
}

// beginEpoch moves to the epoch that the reconfiguration applied at op
// begins.
func (n *Node) beginEpoch(op uint64, members []replica.NodeID) {
	was := n.self >= 0
	old := n.peers
	n.setEpoch(epochInfo{epoch: n.epoch + 1, start: op, peers: members, old: old})
	if n.restoring {
		return
	}
	if was {
		// Tell the replicas that were not members what they are part of;
		// a lost StartEpoch is made up for by the probes of the epoch
		// protocol.
		for _, p := range n.peers {
			if !slices.Contains(old, p) {
				n.send(n.startEpoch(p))
			}
		}
	}
	n.enterEpoch()
}

// enterEpoch starts this replica's part in its (new) epoch.
func (n *Node) enterEpoch() {
	switch {
	case n.self < 0:
		n.status = shutDown
		if slices.Contains(n.oldPeers, n.id) {
			n.status = leaving
			n.broadcastStartEpoch()
		}
	case n.commit < n.epochStart:
		n.status = transitioning
		n.truncateTo(n.commit)
		n.electionElapsed = 0
		n.sendGetEpochState()
	default:
		n.truncateTo(n.epochStart)
		n.startEpochView()
	}
}

// neverReady reports whether a restarted member never held the ops up to
// its epoch's start: it lacks the start, and its hard state shows no vote
// and no normal view in the epoch. Every acknowledgement it could have
// sent in the epoch needed that op durable, so it made none, and it may
// take up the epoch by state transfer instead of recovery, which needs a
// working primary (and a group whose members restarted in that state has
// none).
func (n *Node) neverReady() bool {
	return n.commit < n.epochStart && n.opNum() < n.epochStart && n.dvcView == 0 && n.lastNormal == 0
}

// startEpochView enters view 0 of the epoch with a log that ends at the
// epoch's start, as every member's does: it needs no view change.
func (n *Node) startEpochView() {
	n.enterView()
	if n.isPrimary() {
		n.readFloor = n.opNum()
		n.ackOwn()
		n.broadcastCommit()
		n.advance()
		return
	}
	n.ackPrimary(0)
}

func (n *Node) startEpoch(to replica.NodeID) *StartEpoch {
	return &StartEpoch{Header: Header{From: n.id, To: to}, Start: n.epochStart, Old: n.oldPeers, New: n.peers}
}

// broadcastStartEpoch sends StartEpoch to every member that has not yet
// said it started.
func (n *Node) broadcastStartEpoch() {
	for i, p := range n.peers {
		if n.started&(1<<i) == 0 {
			n.send(n.startEpoch(p))
		}
	}
}

// sendGetEpochState asks the next replica of the old or the new
// configuration, in turn, for the ops up to the epoch's start.
func (n *Node) sendGetEpochState() {
	var from []replica.NodeID
	for _, p := range slices.Concat(n.peers, n.oldPeers) {
		if p != n.id && !slices.Contains(from, p) {
			from = append(from, p)
		}
	}
	if len(from) == 0 {
		return
	}
	n.transferNext++
	n.send(&GetEpochState{Header: Header{From: n.id, To: from[n.transferNext%len(from)]}, Op: n.commit})
}

// stepEpoch handles m when it comes from another epoch, or belongs to the
// epoch protocol, and reports whether it did.
func (n *Node) stepEpoch(m replica.Message) bool {
	h := headerOf(m)
	switch {
	case h.Epoch < n.epoch:
		// Even a StartEpoch: its sender, leaving an epoch that is over,
		// learns of the newer one and shuts down if not in it.
		if _, ok := m.(*EpochStarted); !ok {
			n.send(n.startEpoch(m.Source()))
		}
		return true
	case h.Epoch > n.epoch:
		if s, ok := m.(*StartEpoch); ok {
			n.onStartEpoch(s)
		} else {
			n.send(&GetEpochState{Header: Header{From: n.id, To: m.Source()}, Op: n.commit})
		}
		return true
	}
	switch m := m.(type) {
	case *StartEpoch:
		if n.self >= 0 && n.status != transitioning && n.status != recovering {
			n.send(&EpochStarted{Header: Header{From: n.id, To: m.From}})
		}
	case *EpochStarted:
		if i := n.peerIndex(m.From); n.status == leaving && i >= 0 {
			n.started |= 1 << i
			if bitsSet(n.started) >= n.quorum {
				n.status = shutDown
			}
		}
	case *GetEpochState:
		if n.status != shutDown && n.commit >= n.epochStart {
			n.send(&NewState{Header: Header{From: n.id, To: m.From}, View: n.view, Commit: n.commit, Log: n.suffix(m.Op)})
		}
	case *NewState:
		if n.status != transitioning {
			return false
		}
		n.onEpochState(m)
	default:
		if n.status == transitioning || n.status == leaving || n.status == shutDown {
			return true
		}
		return false
	}
	return true
}

func (n *Node) onStartEpoch(m *StartEpoch) {
	if m.Start < n.epochStart || m.Epoch >= maxEpoch || len(m.New) == 0 || len(m.New) > maxPeers {
		return
	}
	n.setEpoch(epochInfo{epoch: m.Epoch, start: m.Start, peers: m.New, old: m.Old})
	if n.status == recovering && n.self >= 0 {
		// Recovering in an older epoch, it made no promise in this one.
		n.status = normal
	}
	n.enterEpoch()
}

// onEpochState takes the ops up to the epoch's start from a state
// transfer; ops above it may be uncommitted and are left out.
func (n *Node) onEpochState(m *NewState) {
	s := m.Log
	if s.Last() > n.epochStart {
		s.Entries = s.Entries[:n.epochStart-min(s.After, n.epochStart)]
	}
	if m.Commit < n.epochStart || !n.adopt(s, n.commit) {
		return
	}
	n.learnCommit(n.epochStart)
	if n.commit < n.epochStart {
		n.sendGetEpochState()
		return
	}
	switch {
	case n.opNum() == n.epochStart:
		n.startEpochView()
	case n.primaryOf(n.view) == n.id:
		// The epoch has moved past view 0 without this replica.
		n.startViewChange(n.view + 1)
	default:
		n.join()
	}
}

func bitsSet(x uint64) int {
	k := 0
	for ; x != 0; x &= x - 1 {
		k++
	}
	return k
}
