package paxos

import (
	"fmt"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// Ballot orders proposers: by Round, then by Node. Rounds grow; the Node
// breaks ties so two proposers never share a ballot.
type Ballot struct {
	Round uint64
	Node  replica.NodeID
}

// Less reports whether b orders before o.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	return b.Node < o.Node
}

// IsZero reports whether b is the zero ballot, below every real one.
func (b Ballot) IsZero() bool { return b == Ballot{} }

// String formats b as round.node.
func (b Ballot) String() string { return fmt.Sprintf("%d.%d", b.Round, b.Node) }

// Value is what one log slot holds: a batch of client requests, or a
// configuration. Neither is a no-op, which fills a hole left by a failed
// leader or pads the log until a configuration takes effect.
type Value struct {
	Reqs []replica.Request
	// Config, when not nil, is a new configuration: every member, sorted.
	Config []replica.NodeID
}

// IsNoop reports whether v carries neither requests nor a configuration.
func (v Value) IsNoop() bool { return len(v.Reqs) == 0 && v.Config == nil }

// Header addresses a message. Every message type embeds it.
type Header struct {
	From replica.NodeID
	To   replica.NodeID
}

// Source returns the sender.
func (h Header) Source() replica.NodeID { return h.From }

// Dest returns the addressee.
func (h Header) Dest() replica.NodeID { return h.To }

// Prepare is phase 1a: the candidate asks for a promise covering every
// slot from FromSlot on.
type Prepare struct {
	Header
	Ballot   Ballot
	FromSlot uint64
}

// PromiseEntry is one slot an acceptor reports in a Promise.
type PromiseEntry struct {
	Slot   uint64
	Ballot Ballot // the ballot it was accepted in; zero when only learned
	Chosen bool   // the acceptor knows Value is the chosen one
	Value  Value
}

// Promise is phase 1b: the acceptor will refuse ballots below Ballot, and
// reports what it accepted at or above FromSlot. When it has compacted
// slots at or above FromSlot it includes its snapshot, because those slots
// are chosen and their values survive only there.
type Promise struct {
	Header
	Ballot   Ballot
	FromSlot uint64
	Commit   uint64 // the acceptor's highest contiguous chosen slot
	Entries  []PromiseEntry
	Snapshot *replica.Snapshot
}

// Nack refuses Ballot because the acceptor promised the higher Promised.
type Nack struct {
	Header
	Ballot   Ballot
	Promised Ballot
}

// Accept is phase 2a for one slot. Commit piggybacks the leader's highest
// contiguous chosen slot.
type Accept struct {
	Header
	Ballot Ballot
	Slot   uint64
	Value  Value
	Commit uint64
}

// Accepted is phase 2b. Commit is the acceptor's highest contiguous chosen
// slot, which tells the leader how far behind it is.
type Accepted struct {
	Header
	Ballot Ballot
	Slot   uint64
	Commit uint64
}

// Heartbeat asserts leadership and carries the leader's commit index. Read
// is the read-index round in flight (0 when none), which the reply echoes.
type Heartbeat struct {
	Header
	Ballot Ballot
	Commit uint64
	Read   uint64
}

// HeartbeatReply answers a Heartbeat, Learn or InstallSnapshot. Commit is
// the follower's highest contiguous chosen slot after handling it and
// LeaderCommit echoes the commit index it was told; Commit < LeaderCommit
// asks the leader for the chosen values in between. Read echoes the
// Heartbeat's read round: the sender had promised no ballot above Ballot
// when it sent the reply.
type HeartbeatReply struct {
	Header
	Ballot       Ballot
	Commit       uint64
	LeaderCommit uint64
	Read         uint64
}

// LearnEntry is one chosen slot.
type LearnEntry struct {
	Slot  uint64
	Value Value
}

// Learn carries chosen values to a replica that lacks them.
type Learn struct {
	Header
	Ballot  Ballot
	Commit  uint64
	Entries []LearnEntry
}

// InstallSnapshot carries the leader's snapshot to a replica that lags
// behind the leader's compacted log.
type InstallSnapshot struct {
	Header
	Ballot   Ballot
	Snapshot replica.Snapshot
}
