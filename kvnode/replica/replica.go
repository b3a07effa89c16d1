// Package replica holds the contract that every replication core (Multi-Paxos,
// Viewstamped Replication) fulfils and that every runtime (the real server,
// the simulator) drives.
//
// A core is a deterministic state machine: it has no goroutines, clock,
// sockets, files or global randomness. The runtime feeds it inputs (Tick,
// Step, Propose) and then drains its outputs with Ready. The runtime must
// make Ready.Persist durable before it sends Ready.Messages, because those
// messages may promise that the persisted state exists (an acceptor's promise,
// an accepted value). Results may be delivered to clients in any order after
// that, or, from a core that is an EarlyAnswerer, as soon as the runtime
// has the Ready.
//
// Ready.Early are the messages that promise nothing: a leader's proposals
// and heartbeats. The runtime sends them as soon as it has the Ready, in
// the order of the Readies, so that a leader's own write overlaps its
// followers'. What makes that safe is that a leader counts its own copy
// of what it proposed the way it counts a follower's: by an
// acknowledgement it sends itself in Ready.Messages, which the runtime
// hands back to the core with Step once the Persist is durable, like any
// acknowledgement it sends. So a commit index that a core puts in any
// message, Early or not, covers only entries a majority holds durably,
// never one that rests on its own unsynced write. A runtime may always
// send Early with Messages instead (it only loses the overlap); a message
// that Early carries must never acknowledge anything, because it may leave
// before the state it would acknowledge exists on disk.
//
// Linearizable reads need not take a log slot. A core that also implements
// ReadIndexer serves them by read index: the runtime calls ReadIndex with an
// ID of its choosing on the leader; the core fixes the read's index (at
// least every index that may have been acknowledged to a client before the
// call), confirms with one round of heartbeats to a majority that it still
// leads, and reports the read in Ready.Reads once its state machine has
// applied that index. The runtime answers the read from the state machine
// when it delivers that Ready's Results or later: the state it sees is then
// at or above the read's index. A read the
// core could not confirm (it stopped leading) comes back with Lost set and
// was not served. A core that restarts forgets its pending reads, and the
// runtime drops the reads it waits for with the old core.
package replica

import (
	"errors"
	"fmt"
)

// NodeID names a node (a process). Zero means "none" or "unknown".
type NodeID uint32

// GroupID names a replica group. A node may host replicas of many groups.
type GroupID uint32

// Request is one client command. The pair (ClientID, Seq) identifies it for
// exactly-once execution: the state machine stores the last result per
// client and answers a retry from there without applying it again.
type Request struct {
	ClientID uint64
	Seq      uint64
	Op       []byte // opaque to the core; the state machine decodes it
}

// Result is the outcome of applying a Request.
type Result struct {
	ClientID uint64
	Seq      uint64
	Index    uint64 // the log position at which it was applied
	Value    []byte
}

// StateMachine is the replicated application: the key-value store with its
// session table, or the shard controller. It must be deterministic: the same
// requests in the same order give the same results and snapshots.
type StateMachine interface {
	// Apply applies req, chosen at log position index, and returns its result.
	Apply(index uint64, req Request) []byte
	// Snapshot returns the whole state, session table included.
	Snapshot() ([]byte, error)
	// Restore replaces the whole state with a snapshot's.
	Restore(data []byte) error
}

// Message is a protocol message. Each core has its own concrete type and a
// Codec for the wire, which both runtimes use (the simulator passes values
// unencoded only for test cores without a codec); a message must never be
// modified after it was handed to the runtime.
type Message interface {
	Source() NodeID
	Dest() NodeID
}

// Codec encodes a core's messages for the wire.
type Codec interface {
	// AppendMessage appends the encoding of m to b.
	AppendMessage(b []byte, m Message) ([]byte, error)
	// DecodeMessage decodes one message; it must reject malformed input
	// with an error and never panic.
	DecodeMessage(b []byte) (Message, error)
}

// Entry is one persisted log entry. Data is the core's own encoding of what
// the entry holds (for Paxos: accepted ballot and value; for VR: view and
// request batch); storage treats it as opaque bytes.
type Entry struct {
	Index uint64
	Data  []byte
}

// Snapshot is a state machine snapshot taken after applying every entry up
// to and including Index. Meta is the core's own bookkeeping for it.
type Snapshot struct {
	Index uint64
	Meta  []byte
	Data  []byte
}

// Persist is state that must be durable before the messages of the same
// Ready are sent. Apply it in field order: State, Truncate, Entries,
// Snapshot (which also drops every entry at or below its index).
type Persist struct {
	State         []byte    // the core's small hard state; nil = unchanged
	Truncate      bool      // delete every entry above TruncateAfter
	TruncateAfter uint64    //
	Entries       []Entry   // write these, replacing any entry at the same index
	Snapshot      *Snapshot // write this, then drop entries <= Snapshot.Index
}

// Empty reports whether there is nothing to persist.
func (p *Persist) Empty() bool {
	return p.State == nil && !p.Truncate && len(p.Entries) == 0 && p.Snapshot == nil
}

// Ready is everything a core produced since the last call to Ready.
type Ready struct {
	Persist Persist
	// Early may be sent before Persist is durable, but not before the
	// Early of an earlier Ready: proposals and heartbeats, which
	// acknowledge nothing (see the package documentation).
	Early []Message
	// Messages are sent only after Persist, and every earlier Ready's, is
	// durable. A message addressed to the core's own node is its
	// acknowledgement of its own write: the runtime hands it back to the
	// core with Step instead of sending it.
	Messages []Message
	Results  []Result // results of applied requests, for waiting clients
	// Reads are read-index requests that are now confirmed (the state
	// machine has applied at least their Index) or lost.
	Reads []ReadState
}

// Empty reports whether r carries nothing.
func (r *Ready) Empty() bool {
	return r.Persist.Empty() && len(r.Early) == 0 && len(r.Messages) == 0 && len(r.Results) == 0 && len(r.Reads) == 0
}

// Durable is what a core restarts from: everything it ever persisted, as
// storage holds it now.
type Durable struct {
	State    []byte
	Snapshot *Snapshot
	Entries  []Entry // ascending by Index, all above Snapshot.Index
}

// Status is a core's self-description for operators and tests.
type Status struct {
	ID            NodeID `json:"id"`
	Role          string `json:"role"`   // leader/follower/candidate, primary/backup/view-change/recovering
	Leader        NodeID `json:"leader"` // 0 when unknown
	Epoch         uint64 `json:"epoch"`  // ballot round or view number
	Commit        uint64 `json:"commit"`
	Applied       uint64 `json:"applied"`
	LogLen        int    `json:"log_len"`
	SnapshotIndex uint64 `json:"snapshot_index"`
	// Members is the newest configuration this replica knows to be
	// chosen, and MembersFrom the first log index it governs; it is in
	// force once Applied+1 >= MembersFrom. Cores without membership
	// changes leave both zero.
	Members     []NodeID `json:"members,omitempty"`
	MembersFrom uint64   `json:"members_from,omitempty"`
}

// EarlyAnswerer is implemented by cores whose Results and Reads never rest
// on their own unsynced writes: a core that counts its own copy towards a
// commit only from the acknowledgement its durable write sends it (see
// Ready.Early), so that everything it applies, and every state a read is
// answered from, is held durably by a majority whatever its own writes in
// flight hold. The runtime may then answer a Ready's Results and Reads as
// soon as it has the Ready, ahead of its Persist and of every earlier
// Ready's, instead of making clients wait for the writes of later
// proposals. A core that does not implement it (one that answers from the
// log it has just written) has them delivered only after its Persist is
// durable.
type EarlyAnswerer interface {
	// AnswersEarly reports whether this core's Results and Reads may be
	// answered before its Persist is durable.
	AnswersEarly() bool
}

// Replicator is the contract of a replication core.
type Replicator interface {
	// Tick advances the core's logical clock by one tick.
	Tick()
	// Step handles one message from a peer, or one the core addressed to
	// itself in Ready.Messages, handed back once durable. Malformed or
	// stale messages are ignored.
	Step(m Message)
	// Propose submits client requests. It returns a *NotLeaderError when
	// this replica cannot order requests now.
	Propose(reqs ...Request) error
	// Ready drains the outputs produced since the previous call.
	Ready() Ready
	// HasReady reports whether Ready would return anything.
	HasReady() bool
	// Status describes the core's current state.
	Status() Status
}

// Reconfigurer is implemented by cores whose group membership can change
// while they run. A change is ordered like a request: the leader chooses
// it at one log index, and it governs the log from an index the core
// defines; until then the old configuration's quorums decide. One change
// is in progress at a time.
type Reconfigurer interface {
	// ChangeMembers proposes members (every replica of the new
	// configuration) as the group's next configuration. It returns a
	// *NotLeaderError when this replica cannot order it, ErrChangePending
	// while an earlier change has not yet taken effect, and an error for
	// an invalid member list. Status reports when the change took effect.
	ChangeMembers(members []NodeID) error
}

// ErrChangePending refuses a membership change while another one has not
// taken effect.
var ErrChangePending = errors.New("a membership change is in progress")

// ValidateMembers reports the first problem with a configuration: it must
// be non-empty, hold at most max members, and name each non-zero ID once.
func ValidateMembers(members []NodeID, max int) error {
	if len(members) == 0 {
		return errors.New("members: empty configuration")
	}
	if len(members) > max {
		return fmt.Errorf("members: %d members, at most %d supported", len(members), max)
	}
	seen := map[NodeID]bool{}
	for _, m := range members {
		if m == 0 {
			return errors.New("members: node ID 0 is reserved")
		}
		if seen[m] {
			return fmt.Errorf("members: node %d listed twice", m)
		}
		seen[m] = true
	}
	return nil
}

// ErrNotLeader is matched by every *NotLeaderError.
var ErrNotLeader = errors.New("not the leader")

// NotLeaderError says that a replica cannot order requests, and which
// replica it believes can (0 when it does not know).
type NotLeaderError struct {
	Leader NodeID
}

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "not the leader (leader unknown)"
	}
	return fmt.Sprintf("not the leader (try node %d)", e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Config is what every core needs to start.
type Config struct {
	ID NodeID
	// Peers is the group's initial configuration: every member, including
	// ID unless Joining. A core with membership changes learns later
	// configurations from its log or a snapshot.
	Peers []NodeID
	// Joining starts a replica that is not in Peers: it waits, without
	// ever campaigning, to learn from the leader a configuration that
	// includes it.
	Joining bool
	// ElectionTicks is the base number of ticks without hearing from a
	// leader before a replica tries to become one; the core randomizes
	// the actual timeout in [ElectionTicks, 2*ElectionTicks) from Seed.
	ElectionTicks int
	// HeartbeatTicks is how often a leader sends heartbeats.
	HeartbeatTicks int
	// Seed drives every random choice of the core.
	Seed int64
	// SnapshotEvery takes a snapshot and truncates the log every so many
	// applied entries; 0 disables snapshots.
	SnapshotEvery uint64
	// MaxBatch bounds the number of requests in one log entry.
	MaxBatch int
	// MaxInflight bounds the number of proposed but uncommitted entries
	// (the pipeline depth).
	MaxInflight int
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if c.ID == 0 {
		return errors.New("config: ID must be non-zero")
	}
	found := false
	seen := map[NodeID]bool{}
	for _, p := range c.Peers {
		if p == 0 {
			return errors.New("config: peer ID 0 is reserved")
		}
		if seen[p] {
			return fmt.Errorf("config: peer %d listed twice", p)
		}
		seen[p] = true
		if p == c.ID {
			found = true
		}
	}
	if !found && !c.Joining {
		return fmt.Errorf("config: ID %d is not among Peers %v", c.ID, c.Peers)
	}
	if c.ElectionTicks <= 0 || c.HeartbeatTicks <= 0 || c.HeartbeatTicks >= c.ElectionTicks {
		return fmt.Errorf("config: need 0 < HeartbeatTicks (%d) < ElectionTicks (%d)", c.HeartbeatTicks, c.ElectionTicks)
	}
	if c.MaxBatch < 0 || c.MaxInflight < 0 {
		return errors.New("config: MaxBatch and MaxInflight must not be negative")
	}
	return nil
}

// Storage is where a runtime makes a core's Persist durable. Write may
// leave its data in a cache, where a crash can lose it (all of it, any part
// of it, or tear the last write); only Sync makes every earlier Write
// durable. The runtime decides when to sync: it must not release a Ready's
// Messages before a Sync that followed the Ready's Write returned. A failed
// Write or Sync leaves the storage in an unknown state: the runtime must
// stop (and restart from Load), never carry on.
type Storage interface {
	// Write applies p in the contract's field order, durably or not.
	Write(p *Persist) error
	// Sync makes every earlier Write durable.
	Sync() error
	// Load returns what a restarting core reads: everything durable.
	Load() (*Durable, error)
}

// Inspector is implemented by cores so that a simulator can check, at every
// step, that a replica never goes back on a promise and never acknowledges
// state that is not durable. A promise is the Paxos ballot or the VR view
// below which the replica no longer acts, as one number ordered like the
// ballots or views themselves.
type Inspector interface {
	// Promised returns the replica's current promise.
	Promised() uint64
	// DurablePromise returns the promise recorded in a persisted hard
	// state (a Persist.State this core produced).
	DurablePromise(state []byte) (uint64, error)
	// Vouches reports the promise that an outgoing message m of this core
	// commits its sender to (an acceptor's promise or acceptance, a VR
	// PrepareOK or view-change vote), and false for every other message.
	Vouches(m Message) (uint64, bool)
	// Acknowledges reports whether its receiver may take m as a statement
	// about its sender's durable state: a promise, a refusal naming one, an
	// acceptance, an acknowledged log or commit, a vote, a log handed over.
	// Such a message never travels in Ready.Early. Every message Vouches
	// for acknowledges.
	Acknowledges(m Message) bool
}
