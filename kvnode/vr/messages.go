package vr

import "github.com/chaoskv/chaos/kvnode/replica"

// Value is what one op number holds: a batch of client requests, or, when
// Config is set, a reconfiguration: the last op of its epoch, naming every
// member of the next one.
type Value struct {
	Reqs   []replica.Request
	Config []replica.NodeID // sorted; nil for a batch of requests
}

// Header addresses a message. Every message type embeds it. Epoch is the
// sender's epoch when it sent the message: a replica acts only on messages
// of its own epoch (see the package documentation).
type Header struct {
	From  replica.NodeID
	To    replica.NodeID
	Epoch uint64
}

// setEpoch stamps an outgoing message with its sender's epoch.
func (h *Header) setEpoch(e uint64) { h.Epoch = e }

// Source returns the sender.
func (h Header) Source() replica.NodeID { return h.From }

// Dest returns the addressee.
func (h Header) Dest() replica.NodeID { return h.To }

// Suffix is a piece of a log: the ops After+1 .. After+len(Entries), and,
// when Snapshot is set, the state after every op up to Snapshot.Index,
// which lets a replica that lacks compacted ops catch up.
type Suffix struct {
	After    uint64
	Entries  []Value
	Snapshot *replica.Snapshot
}

// Last is the op number of the suffix's last entry.
func (s Suffix) Last() uint64 { return s.After + uint64(len(s.Entries)) }

// Prepare orders one batch: the primary of View assigns it op number Op.
// Commit piggybacks the primary's commit number.
type Prepare struct {
	Header
	View   uint64
	Op     uint64
	Commit uint64
	Value  Value
}

// PrepareOK acknowledges every op up to Op in View: the backup holds them
// durably and in the primary's order. Read echoes the read-index round of
// the Commit it answers (0 otherwise): the backup was a normal member of
// View, and had voted for no later view, when it sent the reply.
type PrepareOK struct {
	Header
	View uint64
	Op   uint64
	Read uint64
}

// Commit is the primary's heartbeat: its commit number and its highest op
// number, which tells a backup that it missed Prepares. Read is the
// read-index round in flight (0 when none).
type Commit struct {
	Header
	View   uint64
	Commit uint64
	Op     uint64
	Read   uint64
}

// StartViewChange says the sender gave up on the views below View.
type StartViewChange struct {
	Header
	View uint64
}

// DoViewChange hands the new primary of View the sender's log, with the
// last view in which the sender's status was normal.
type DoViewChange struct {
	Header
	View       uint64
	LastNormal uint64
	Commit     uint64
	Log        Suffix
}

// StartView installs View: Log is the new primary's log (from some point
// the receiver is expected to have committed) and Commit its commit number.
type StartView struct {
	Header
	View   uint64
	Commit uint64
	Log    Suffix
}

// GetState asks a replica of View for the ops above Op.
type GetState struct {
	Header
	View uint64
	Op   uint64
}

// NewState answers a GetState.
type NewState struct {
	Header
	View   uint64
	Commit uint64
	Log    Suffix
}

// Recovery is sent by a replica that restarted; Nonce pairs the answers
// with this attempt, and Commit says how much of the log it holds.
type Recovery struct {
	Header
	Nonce  uint64
	Commit uint64
}

// RecoveryResponse answers a Recovery. Only the primary of View sends its
// log (Log, Commit); the other replicas send just their view.
type RecoveryResponse struct {
	Header
	View    uint64
	Nonce   uint64
	Primary bool
	Commit  uint64
	Log     Suffix
}

// StartEpoch announces epoch Header.Epoch: the reconfiguration committed at
// op Start began it, Old is the configuration of the epoch before it and
// New its own. A replica of an older epoch that receives it moves to the
// new one; a member of the new epoch that is up to date answers with
// EpochStarted.
type StartEpoch struct {
	Header
	Start uint64
	Old   []replica.NodeID
	New   []replica.NodeID
}

// EpochStarted tells a replica that left with the last epoch that the
// sender, a member of the new epoch, holds every op up to its start.
type EpochStarted struct {
	Header
}

// GetEpochState asks for the ops above Op up to the start of the sender's
// epoch (state transfer to a member that lacks them). A replica of a newer
// epoch answers with StartEpoch instead, so it also serves as the probe by
// which a replica that hears from a newer epoch learns about it.
type GetEpochState struct {
	Header
	Op uint64
}
