package txn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/chaoskv/chaos/kvnode/replica"
	"github.com/chaoskv/chaos/kvnode/session"
	"github.com/chaoskv/chaos/kvnode/shardctl"
)

// Group is the state machine of one sharded key-value replica group: the
// shards it serves under the shard controller's configurations, and both
// roles of two-phase commit.
//
// Everything that crosses groups is a request through the receiving
// group's log, and its answer is an op for the sender's log: Outbox lists
// what this group's state wants delivered (prepares, decisions, shard
// hand-offs); a runtime on the group's leader sends each to the target
// group as an internal request (ClientID 0) and proposes the answer, when
// it is not empty, to this group. Every such message is idempotent, so the
// runtime simply repeats the whole Outbox now and then; nothing depends on
// timers inside the state machine. A recovering leader finds the same
// Outbox in the state rebuilt from the log, so pending decisions resume.
//
// Transactions. A client sends a transaction to the group owning its
// lowest shard, the coordinator. If the group owns every key it is applied
// at once, in one log entry. Otherwise the coordinator prepares its own
// part, logs the transaction and sends Prepare to the other participants.
// A participant takes read and write locks (strict two-phase locking) when
// it logs the prepared record and votes with its reads; a conflicting
// prepare votes no at once (no-wait, so no deadlock). The coordinator
// decides in its own log: commit when every vote is yes, abort on a no or
// when the runtime gives up waiting (Abandon). It records the outcome in
// its session table, then tells every participant until each acknowledges;
// a participant applies a commit and releases its locks. A single-group
// transaction that meets a lock aborts likewise.
//
// The client does not poll for the outcome. Apply answers a cross-group
// transaction request with a pending reply that Deferred recognizes; the
// replica that took the request holds it (kvnode/node.Requests) and
// answers it from Answer, the session table, as soon as an applied entry
// decided it. A retry with the same (client, seq), at this replica or a
// new leader, is held again or answered from the session table; a client
// whose attempt timed out counts its outcome unknown. So the path to the
// client is three log entries, one after the other: the request at the
// coordinator, the prepare at each participant (in parallel), the last
// vote at the coordinator; the decisions, their acknowledgements and the
// participants' commits follow off that path.
//
// Answering when the decision is chosen, before any participant applied
// its commit, keeps strict serializability because of strict two-phase
// locking. Every participant's prepare, which took its locks, was applied
// before the last vote, hence before the client heard of the commit. A
// transaction T2 that starts after that is ordered after the prepare in
// every participant's log, and wherever it touches a key of T1 it either
// meets T1's lock, which is released only when T1's commit is applied
// there (and then T2 aborts: no-wait), or comes after that release and
// sees T1's writes. No read bypasses the locks: a Group answers no
// request outside its log (it is no read-index Querier), and locks never
// migrate, since reconfiguration waits for every prepared record to be
// settled. So no transaction that starts after T1 was acknowledged can
// observe a state without T1's writes.
//
// Reconfiguration waits for locks: a group that learns configuration n+1
// stops preparing and starting transactions, and installs n+1 only when it
// has no prepared and no undecided transactions, and has received every
// shard of configuration n. So locks and prepared records never migrate.
// A shard that leaves is handed to its new owner with its data and the
// whole session table (merged there, so a retried transaction is answered,
// not re-applied) and deleted only when the receiver acknowledges.
type Group struct {
	gid      replica.GroupID
	cfg      shardctl.Config
	next     *shardctl.Config
	state    [shardctl.NShards]shardState
	data     [shardctl.NShards]map[string]string
	sessions *session.Table
	prepared map[TxnID]*prepared
	done     map[uint64]uint64 // client -> highest seq decided here
	coord    map[TxnID]*coordTxn
	handoffs map[handoffKey]*handoff
	locks    map[string]*lock // rebuilt from prepared

	// steps are the two-phase-commit steps the last Apply took, for
	// oracles (Steps); index and cur are that Apply's log index and the
	// transaction it applied writes for.
	steps []Step
	index uint64
	cur   TxnID
}

var _ replica.StateMachine = (*Group)(nil)

type shardState uint8

const (
	notOwned shardState = iota
	serving
	waiting // owned under cfg, data not yet received
)

// TxnID names a transaction: its client session and sequence number.
type TxnID struct {
	Client uint64 `json:"c"`
	Seq    uint64 `json:"s"`
}

// Part is the micro-ops of one participant, with their positions in the
// whole transaction.
type Part struct {
	Idx []int     `json:"idx"`
	Ops []MicroOp `json:"ops"`
}

type prepared struct {
	Coord replica.GroupID `json:"coord"`
	Part  Part            `json:"part"`
	Res   []MicroResult   `json:"res"`
}

type coordTxn struct {
	Ops     []MicroOp                `json:"ops"`
	Parts   map[replica.GroupID]Part `json:"parts"`
	Votes   map[replica.GroupID]bool `json:"votes"`
	Results []MicroResult            `json:"results"`
	Decided bool                     `json:"decided"`
	Commit  bool                     `json:"commit"`
	Acked   map[replica.GroupID]bool `json:"acked"`
}

type handoffKey struct {
	Shard int    `json:"shard"`
	Num   uint64 `json:"num"`
}

type handoff struct {
	To   replica.GroupID   `json:"to"`
	Data map[string]string `json:"data"`
	Sess []byte            `json:"sess"`
}

type lock struct {
	writer  *TxnID
	readers map[TxnID]bool
}

// NewGroup returns the state machine of group gid, at configuration 0.
func NewGroup(gid replica.GroupID) *Group {
	g := &Group{gid: gid, sessions: session.NewTable()}
	g.cfg = shardctl.Config{Groups: map[replica.GroupID][]replica.NodeID{}}
	g.reset()
	return g
}

func (g *Group) reset() {
	g.prepared = map[TxnID]*prepared{}
	g.done = map[uint64]uint64{}
	g.coord = map[TxnID]*coordTxn{}
	g.handoffs = map[handoffKey]*handoff{}
	g.locks = map[string]*lock{}
}

// ID returns the group's id.
func (g *Group) ID() replica.GroupID { return g.gid }

// ConfigNum returns the number of the configuration the group runs.
func (g *Group) ConfigNum() uint64 { return g.cfg.Num }

// Config returns a copy of the configuration the group runs.
func (g *Group) Config() shardctl.Config { return g.cfg.Clone() }

// Serving returns the shards the group serves now, ascending.
func (g *Group) Serving() []int {
	var out []int
	for s, st := range g.state {
		if st == serving {
			out = append(out, s)
		}
	}
	return out
}

// Get reads a key of a shard the group holds, for tests and inspection.
func (g *Group) Get(key string) (string, bool) {
	m := g.data[shardctl.ShardOf(key)]
	v, ok := m[key]
	return v, ok
}

// Locked reports how many prepared transactions hold locks here.
func (g *Group) Locked() int { return len(g.prepared) }

// Status is the outcome class of a client transaction request.
type Status string

// The statuses of a Reply.
const (
	// StatusOK: committed; Results holds one result per micro-op.
	StatusOK Status = "ok"
	// StatusAborted: certainly not applied; retry as a new request.
	StatusAborted Status = "aborted"
	// StatusWrongGroup: this group does not own the transaction's lowest
	// shard; refresh the configuration and retry the same request.
	StatusWrongGroup Status = "wrong-group"
	// StatusRetry: briefly unable to start (a pending reconfiguration, a
	// shard still arriving); retry the same request.
	StatusRetry Status = "retry"
	// StatusPending: a cross-group transaction waits for its
	// coordinator's decision. It is what Apply returns for the request
	// (see Deferred), and the replica that took the request holds it until
	// the decision is there (Answer); a client that gets it anyway (from a
	// runtime that does not hold) retries the same request.
	StatusPending Status = "pending"
	// StatusError: the request could not be decoded; nothing applied.
	StatusError Status = "error"
	// StatusCheckFailed: a Check micro-op did not match; nothing applied,
	// and retrying the same transaction is pointless.
	StatusCheckFailed Status = "check-failed"
)

// Reply answers a client transaction request.
type Reply struct {
	Status  Status        `json:"status"`
	Results []MicroResult `json:"results,omitempty"`
	Err     string        `json:"err,omitempty"`
	Config  uint64        `json:"config"` // the group's configuration number
	// Silent lists, for a transaction the coordinator abandoned, the
	// participants that never voted, in ascending order: a client may
	// take them for down rather than try again at once.
	Silent []replica.GroupID `json:"silent,omitempty"`
}

// Request kinds of a group's log.
const (
	opTxn        = "txn"
	opPrepare    = "prepare"
	opVote       = "vote"
	opDecide     = "decide"
	opDecideAck  = "decide-ack"
	opAbandon    = "abandon"
	opConfig     = "config"
	opInstall    = "install"
	opInstallAck = "install-ack"
)

// message is every request of a group's log, one kind at a time.
type message struct {
	K      string            `json:"k"`
	Ops    []MicroOp         `json:"ops,omitempty"`
	ID     TxnID             `json:"id,omitzero"`
	From   replica.GroupID   `json:"from,omitempty"`
	Part   *Part             `json:"part,omitempty"`
	Yes    bool              `json:"yes,omitempty"`
	Check  bool              `json:"check,omitempty"` // a no vote because a Check failed
	Res    []MicroResult     `json:"res,omitempty"`
	Commit bool              `json:"commit,omitempty"`
	Cfg    []byte            `json:"cfg,omitempty"`
	Shard  int               `json:"shard,omitempty"`
	Num    uint64            `json:"num,omitempty"`
	Data   map[string]string `json:"data,omitempty"`
	Sess   []byte            `json:"sess,omitempty"`
}

func (m *message) encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("txn: encode %s: %v", m.K, err)) // plain data cannot fail
	}
	return b
}

func decodeMessage(b []byte) (*message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch m.K {
	case opTxn:
		if err := Validate(m.Ops); err != nil {
			return nil, err
		}
	case opPrepare:
		if m.Part == nil || len(m.Part.Idx) != len(m.Part.Ops) {
			return nil, fmt.Errorf("%w: prepare without a well-formed part", ErrMalformed)
		}
		if err := Validate(m.Part.Ops); err != nil {
			return nil, err
		}
	case opVote, opDecide, opDecideAck, opAbandon, opInstallAck:
	case opConfig:
		if _, err := shardctl.DecodeConfig(m.Cfg); err != nil {
			return nil, err
		}
	case opInstall:
		if m.Shard < 0 || m.Shard >= shardctl.NShards {
			return nil, fmt.Errorf("%w: shard %d", ErrMalformed, m.Shard)
		}
	default:
		return nil, fmt.Errorf("%w: unknown request kind %q", ErrMalformed, m.K)
	}
	return &m, nil
}

// MayDecide reports whether applying op can decide a transaction at its
// coordinator: a participant's vote (the last one decides) or an abandon.
func MayDecide(op []byte) bool {
	m, err := decodeMessage(op)
	return err == nil && (m.K == opVote || m.K == opAbandon)
}

// EncodeTxnRequest returns the op of a client transaction request.
func EncodeTxnRequest(ops []MicroOp) []byte { return (&message{K: opTxn, Ops: ops}).encode() }

// DecodeReply decodes a Group's answer to a client transaction request.
func DecodeReply(b []byte) (Reply, error) {
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		return Reply{}, fmt.Errorf("decode txn reply: %w: %v", ErrMalformed, err)
	}
	switch r.Status {
	case StatusOK, StatusAborted, StatusWrongGroup, StatusRetry, StatusPending, StatusError, StatusCheckFailed:
	default:
		return Reply{}, fmt.Errorf("decode txn reply: %w: unknown status %q", ErrMalformed, r.Status)
	}
	for i := range r.Results {
		if r.Results[i].F == Read && r.Results[i].Found {
			r.Results[i].List = SplitList(r.Results[i].Value)
		}
	}
	return r, nil
}

// EncodeConfigRequest returns the op that tells a group about a
// configuration; groups take them strictly in order.
func EncodeConfigRequest(c *shardctl.Config) []byte {
	return (&message{K: opConfig, Cfg: shardctl.EncodeConfig(c)}).encode()
}

// EncodeAbandon returns the op that makes a coordinator abort a
// transaction still waiting for votes (a runtime sends it when waiting has
// lasted too long); it does nothing to a decided transaction.
func EncodeAbandon(id TxnID) []byte { return (&message{K: opAbandon, ID: id}).encode() }

// Outgoing is a request this group wants delivered to group To.
type Outgoing struct {
	To replica.GroupID
	Op []byte
	// Txn is the transaction it belongs to, for runtimes that time out
	// prepares; zero for hand-offs.
	Txn TxnID
	// Prepare is true for a prepare still waiting for its vote.
	Prepare bool
}

// Outbox lists what the group's state wants delivered, deterministically
// ordered. The runtime sends each to its group (ClientID 0) and proposes
// any non-empty answer back to this group.
func (g *Group) Outbox() []Outgoing {
	var out []Outgoing
	for _, id := range sortedIDs(g.coord) {
		c := g.coord[id]
		for _, p := range slices.Sorted(maps.Keys(c.Parts)) {
			if p == g.gid {
				continue
			}
			if !c.Decided {
				if _, voted := c.Votes[p]; !voted {
					part := c.Parts[p]
					out = append(out, Outgoing{To: p, Txn: id, Prepare: true, Op: (&message{K: opPrepare, ID: id, From: g.gid, Part: &part}).encode()})
				}
			} else if !c.Acked[p] {
				out = append(out, Outgoing{To: p, Txn: id, Op: (&message{K: opDecide, ID: id, From: g.gid, Commit: c.Commit}).encode()})
			}
		}
	}
	keys := slices.SortedFunc(maps.Keys(g.handoffs), func(a, b handoffKey) int {
		if a.Num != b.Num {
			return cmpU(a.Num, b.Num)
		}
		return a.Shard - b.Shard
	})
	for _, k := range keys {
		h := g.handoffs[k]
		if h.To == 0 {
			continue // the shard has no owner; keep its data here
		}
		out = append(out, Outgoing{To: h.To, Op: (&message{K: opInstall, From: g.gid, Shard: k.Shard, Num: k.Num, Data: h.Data, Sess: h.Sess}).encode()})
	}
	return out
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortedIDs[V any](m map[TxnID]V) []TxnID {
	return slices.SortedFunc(maps.Keys(m), func(a, b TxnID) int {
		if a.Client != b.Client {
			return cmpU(a.Client, b.Client)
		}
		return cmpU(a.Seq, b.Seq)
	})
}

// Apply applies one request of the group's log.
func (g *Group) Apply(index uint64, req replica.Request) []byte {
	g.steps, g.index, g.cur = g.steps[:0], index, TxnID{}
	m, err := decodeMessage(req.Op)
	if err != nil {
		if req.ClientID != 0 {
			return g.reply(Reply{Status: StatusError, Err: err.Error()})
		}
		return nil
	}
	var out []byte
	switch m.K {
	case opTxn:
		out = g.clientTxn(req.ClientID, req.Seq, m.Ops)
	case opPrepare:
		out = g.prepare(m)
	case opVote:
		g.vote(m)
	case opDecide:
		out = g.decide(m)
	case opDecideAck:
		if c := g.coord[m.ID]; c != nil && c.Decided {
			c.Acked[m.From] = true
			if len(c.Acked) == len(c.Parts) {
				delete(g.coord, m.ID)
			}
		}
	case opAbandon:
		if c := g.coord[m.ID]; c != nil && !c.Decided {
			g.abandon(m.ID, c)
		}
	case opConfig:
		cfg, _ := shardctl.DecodeConfig(m.Cfg)
		if g.next == nil && cfg.Num == g.cfg.Num+1 && !g.anyWaiting() {
			g.next = &cfg
		}
	case opInstall:
		out = g.install(m)
	case opInstallAck:
		delete(g.handoffs, handoffKey{m.Shard, m.Num})
	}
	g.tryInstall()
	return out
}

func (g *Group) reply(r Reply) []byte {
	r.Config = g.cfg.Num
	b, _ := json.Marshal(r)
	return b
}

func (g *Group) anyWaiting() bool { return slices.Contains(g.state[:], waiting) }

// split groups a transaction's micro-ops by the owner of their shard under
// the group's configuration.
func (g *Group) split(ops []MicroOp) map[replica.GroupID]Part {
	parts := map[replica.GroupID]Part{}
	for i, o := range ops {
		owner := g.cfg.Shards[shardctl.ShardOf(o.Key)]
		p := parts[owner]
		p.Idx = append(p.Idx, i)
		p.Ops = append(p.Ops, o)
		parts[owner] = p
	}
	return parts
}

func lowestShard(ops []MicroOp) int {
	low := shardctl.NShards
	for _, o := range ops {
		low = min(low, shardctl.ShardOf(o.Key))
	}
	return low
}

func (g *Group) clientTxn(client, seq uint64, ops []MicroOp) []byte {
	cached, st := g.sessions.Check(client, seq)
	switch st {
	case session.Duplicate:
		return cached
	case session.Stale:
		return nil
	}
	id := TxnID{client, seq}
	if g.coord[id] != nil {
		return pendingReply
	}
	if g.state[lowestShard(ops)] != serving {
		if g.state[lowestShard(ops)] == waiting {
			return g.reply(Reply{Status: StatusRetry, Err: "shard still arriving"})
		}
		return g.reply(Reply{Status: StatusWrongGroup})
	}
	if g.next != nil {
		return g.reply(Reply{Status: StatusRetry, Err: "reconfiguring"})
	}
	parts := g.split(ops)
	mine := parts[g.gid]
	finish := func(r Reply) []byte {
		out := g.reply(r)
		g.sessions.Record(client, seq, out)
		g.step(Step{Kind: StepDecided, Txn: id, Coord: g.gid, Commit: r.Status == StatusOK})
		return out
	}
	if !g.servesAll(mine.Ops) {
		return g.reply(Reply{Status: StatusRetry, Err: "shard still arriving"})
	}
	if g.conflicts(id, mine.Ops) {
		return finish(Reply{Status: StatusAborted, Err: "lock conflict"})
	}
	if len(parts) == 1 {
		res, writes, ok := Exec(ops, g.Get)
		if !ok {
			return finish(Reply{Status: StatusCheckFailed, Results: res, Err: "check failed"})
		}
		g.cur = id
		out := finish(Reply{Status: StatusOK, Results: res})
		g.write(writes)
		return out
	}
	if _, ok := parts[0]; ok {
		return finish(Reply{Status: StatusAborted, Err: "a key's shard has no owner"})
	}
	res, ok := g.lockAndRead(id, g.gid, mine)
	if !ok {
		return finish(Reply{Status: StatusCheckFailed, Err: "check failed"})
	}
	c := &coordTxn{Ops: ops, Parts: parts, Votes: map[replica.GroupID]bool{g.gid: true}, Acked: map[replica.GroupID]bool{},
		Results: make([]MicroResult, len(ops))}
	placeResults(c.Results, mine.Idx, res)
	g.coord[id] = c
	return pendingReply
}

// pendingReply is the result of a transaction request waiting for its
// coordinator's decision. It carries no configuration number so that it
// is one constant Deferred can recognize by its bytes.
var pendingReply = func() []byte {
	b, _ := json.Marshal(Reply{Status: StatusPending})
	return b
}()

// Deferred reports whether value, a result of Apply, is the promise of a
// later answer: a cross-group transaction that waits for its decision.
func (g *Group) Deferred(value []byte) bool { return bytes.Equal(value, pendingReply) }

// Answer returns the answer to transaction request seq of client once the
// coordinator decided it (done true), or nil and done true when the client
// has since issued a later request; done is false while it is undecided.
func (g *Group) Answer(client, seq uint64) (value []byte, done bool) {
	cached, st := g.sessions.Check(client, seq)
	switch st {
	case session.Duplicate:
		return cached, true
	case session.Stale:
		return nil, true
	}
	return nil, false
}

func placeResults(dst []MicroResult, idx []int, res []MicroResult) {
	for i, r := range res {
		if i < len(idx) && idx[i] >= 0 && idx[i] < len(dst) {
			dst[idx[i]] = r
		}
	}
}

func (g *Group) servesAll(ops []MicroOp) bool {
	for _, o := range ops {
		if g.state[shardctl.ShardOf(o.Key)] != serving {
			return false
		}
	}
	return true
}

// conflicts reports whether ops cannot take their locks beside the
// prepared transactions (other than id): a write needs the key free, a
// read needs no writer.
func (g *Group) conflicts(id TxnID, ops []MicroOp) bool {
	for _, o := range ops {
		l := g.locks[o.Key]
		if l == nil {
			continue
		}
		if l.writer != nil && *l.writer != id {
			return true
		}
		if o.F != Read {
			for r := range l.readers {
				if r != id {
					return true
				}
			}
		}
	}
	return false
}

func (g *Group) takeLocks(id TxnID, ops []MicroOp) {
	for _, o := range ops {
		l := g.locks[o.Key]
		if l == nil {
			l = &lock{readers: map[TxnID]bool{}}
			g.locks[o.Key] = l
		}
		if o.F == Read {
			l.readers[id] = true
		} else {
			w := id
			l.writer = &w
		}
	}
}

func (g *Group) releaseLocks(id TxnID, ops []MicroOp) {
	for _, o := range ops {
		l := g.locks[o.Key]
		if l == nil {
			continue
		}
		delete(l.readers, id)
		if l.writer != nil && *l.writer == id {
			l.writer = nil
		}
		if l.writer == nil && len(l.readers) == 0 {
			delete(g.locks, o.Key)
		}
	}
}

// lockAndRead logs the prepared record of id's part here and returns the
// part's results under the locks it took. When a Check of the part fails
// it prepares nothing and returns ok false.
func (g *Group) lockAndRead(id TxnID, coord replica.GroupID, part Part) (res []MicroResult, ok bool) {
	res, _, ok = Exec(part.Ops, g.Get)
	if !ok {
		return nil, false
	}
	g.takeLocks(id, part.Ops)
	g.prepared[id] = &prepared{Coord: coord, Part: part, Res: res}
	g.step(Step{Kind: StepPrepared, Txn: id, Coord: coord})
	return res, true
}

func (g *Group) write(writes []KV) {
	g.step(Step{Kind: StepWrote, Txn: g.cur})
	for _, w := range writes {
		s := shardctl.ShardOf(w.Key)
		if g.data[s] == nil {
			g.data[s] = map[string]string{}
		}
		g.data[s][w.Key] = w.Value
	}
}

func (g *Group) prepare(m *message) []byte {
	vote := func(yes bool, res []MicroResult) []byte {
		return (&message{K: opVote, ID: m.ID, From: g.gid, Yes: yes, Res: res}).encode()
	}
	checkFailed := (&message{K: opVote, ID: m.ID, From: g.gid, Check: true}).encode()
	if p := g.prepared[m.ID]; p != nil {
		return vote(true, p.Res)
	}
	if d, ok := g.done[m.ID.Client]; ok && m.ID.Seq <= d {
		return vote(false, nil)
	}
	if g.next != nil || !g.servesAll(m.Part.Ops) || g.conflicts(m.ID, m.Part.Ops) {
		return vote(false, nil)
	}
	res, ok := g.lockAndRead(m.ID, m.From, *m.Part)
	if !ok {
		return checkFailed
	}
	return vote(true, res)
}

func (g *Group) vote(m *message) {
	c := g.coord[m.ID]
	if c == nil || c.Decided {
		return
	}
	part, ok := c.Parts[m.From]
	if _, voted := c.Votes[m.From]; !ok || voted {
		return
	}
	c.Votes[m.From] = m.Yes
	if !m.Yes || len(m.Res) != len(part.Idx) {
		g.concludeWith(m.ID, c, false, m.Check)
		return
	}
	placeResults(c.Results, part.Idx, m.Res)
	if len(c.Votes) == len(c.Parts) {
		g.conclude(m.ID, c, true)
	}
}

// conclude logs the coordinator's decision: the client's answer goes to
// the session table, and the coordinator's own part is settled at once.
func (g *Group) conclude(id TxnID, c *coordTxn, commit bool) {
	g.concludeWith(id, c, commit, false)
}

// abandon aborts a transaction whose votes did not all come in time; the
// client learns which participants never voted.
func (g *Group) abandon(id TxnID, c *coordTxn) {
	var silent []replica.GroupID
	for _, p := range slices.Sorted(maps.Keys(c.Parts)) {
		if _, voted := c.Votes[p]; !voted {
			silent = append(silent, p)
		}
	}
	g.decideAs(id, c, false, Reply{Status: StatusAborted, Err: fmt.Sprintf("groups %v did not vote in time", silent), Silent: silent})
}

// concludeWith is conclude; checkFailed says an abort is for a failed
// Check, which the client must not retry blindly.
func (g *Group) concludeWith(id TxnID, c *coordTxn, commit, checkFailed bool) {
	r := Reply{Status: StatusAborted, Err: "a participant voted no"}
	if checkFailed {
		r = Reply{Status: StatusCheckFailed, Err: "check failed"}
	}
	if commit {
		r = Reply{Status: StatusOK, Results: c.Results}
	}
	g.decideAs(id, c, commit, r)
}

// decideAs logs the coordinator's decision with r as the client's answer.
func (g *Group) decideAs(id TxnID, c *coordTxn, commit bool, r Reply) {
	c.Decided, c.Commit = true, commit
	g.sessions.Record(id.Client, id.Seq, g.reply(r))
	g.step(Step{Kind: StepDecided, Txn: id, Coord: g.gid, Commit: commit})
	c.Results = nil
	g.settle(id, g.gid, commit)
	c.Acked[g.gid] = true
}

// settle applies (on commit) and releases a prepared part here, on the
// decision of coordinator from.
func (g *Group) settle(id TxnID, from replica.GroupID, commit bool) {
	st := Step{Kind: StepSettled, Txn: id, From: from, Commit: commit}
	p := g.prepared[id]
	if p != nil {
		st.Prepared, st.Coord = true, p.Coord
	}
	g.step(st)
	if p != nil {
		if commit {
			g.cur = id
			_, writes, _ := Exec(p.Part.Ops, g.Get)
			g.write(writes)
		}
		g.releaseLocks(id, p.Part.Ops)
		delete(g.prepared, id)
	}
	if id.Seq > g.done[id.Client] {
		g.done[id.Client] = id.Seq
	}
}

func (g *Group) decide(m *message) []byte {
	if p := g.prepared[m.ID]; p != nil && p.Coord != m.From {
		// Only the coordinator that prepared the record may settle it: a
		// decision from another group is about another transaction.
		return nil
	}
	g.settle(m.ID, m.From, m.Commit)
	return (&message{K: opDecideAck, ID: m.ID, From: g.gid}).encode()
}

func (g *Group) install(m *message) []byte {
	ack := (&message{K: opInstallAck, Shard: m.Shard, Num: m.Num}).encode()
	switch {
	case g.cfg.Num > m.Num || (g.cfg.Num == m.Num && g.state[m.Shard] != waiting):
		return ack // an old or repeated hand-off
	case g.cfg.Num < m.Num:
		return nil // not there yet: the sender keeps trying
	}
	tab := session.NewTable()
	if err := tab.UnmarshalBinary(m.Sess); err != nil {
		return nil
	}
	g.sessions.Merge(tab)
	g.data[m.Shard] = maps.Clone(m.Data)
	if g.data[m.Shard] == nil {
		g.data[m.Shard] = map[string]string{}
	}
	g.state[m.Shard] = serving
	return ack
}

func (g *Group) undecided() bool {
	for _, c := range g.coord {
		if !c.Decided {
			return true
		}
	}
	return false
}

// tryInstall moves to the pending configuration once no locks are held
// and no transaction this group coordinates is undecided.
func (g *Group) tryInstall() {
	if g.next == nil || len(g.prepared) > 0 || g.undecided() {
		return
	}
	next := *g.next
	g.next = nil
	sess, _ := g.sessions.MarshalBinary()
	for s := range g.state {
		was, will := g.cfg.Shards[s], next.Shards[s]
		switch {
		case was == g.gid && will != g.gid:
			g.handoffs[handoffKey{s, next.Num}] = &handoff{To: will, Data: g.data[s], Sess: sess}
			g.data[s] = nil
			g.state[s] = notOwned
		case will == g.gid && was != g.gid:
			if was == 0 {
				g.state[s] = serving
				g.data[s] = map[string]string{}
			} else {
				g.state[s] = waiting
			}
		}
	}
	g.cfg = next
}

// Pending returns the transactions this group coordinates that still wait
// for votes, in ascending order.
func (g *Group) Pending() []TxnID {
	var out []TxnID
	for _, id := range sortedIDs(g.coord) {
		if !g.coord[id].Decided {
			out = append(out, id)
		}
	}
	return out
}

// snapshot is the Group's whole state in a form whose JSON encoding is
// deterministic: maps are keyed by strings or integers (which encoding/json
// sorts) and the rest are slices in ascending order.
type snapshot struct {
	GID      replica.GroupID                     `json:"gid"`
	Cfg      []byte                              `json:"cfg"`
	Next     []byte                              `json:"next,omitempty"`
	State    [shardctl.NShards]shardState        `json:"state"`
	Data     [shardctl.NShards]map[string]string `json:"data"`
	Sess     []byte                              `json:"sess"`
	Prepared []idPrepared                        `json:"prepared"`
	Done     map[uint64]uint64                   `json:"done"`
	Coord    []idCoord                           `json:"coord"`
	Handoffs []keyHandoff                        `json:"handoffs"`
}

type idPrepared struct {
	ID TxnID     `json:"id"`
	P  *prepared `json:"p"`
}

type idCoord struct {
	ID TxnID     `json:"id"`
	C  *coordTxn `json:"c"`
}

type keyHandoff struct {
	K handoffKey `json:"k"`
	H *handoff   `json:"h"`
}

// Snapshot returns the whole state as deterministic JSON.
func (g *Group) Snapshot() ([]byte, error) {
	s := snapshot{GID: g.gid, Cfg: shardctl.EncodeConfig(&g.cfg), State: g.state, Data: g.data, Done: g.done}
	if g.next != nil {
		s.Next = shardctl.EncodeConfig(g.next)
	}
	var err error
	if s.Sess, err = g.sessions.MarshalBinary(); err != nil {
		return nil, fmt.Errorf("txn group snapshot: %w", err)
	}
	for _, id := range sortedIDs(g.prepared) {
		s.Prepared = append(s.Prepared, idPrepared{id, g.prepared[id]})
	}
	for _, id := range sortedIDs(g.coord) {
		s.Coord = append(s.Coord, idCoord{id, g.coord[id]})
	}
	for k, h := range g.handoffs {
		s.Handoffs = append(s.Handoffs, keyHandoff{k, h})
	}
	slices.SortFunc(s.Handoffs, func(a, b keyHandoff) int {
		if a.K.Num != b.K.Num {
			return cmpU(a.K.Num, b.K.Num)
		}
		return a.K.Shard - b.K.Shard
	})
	b, err := json.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("txn group snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces the state with a snapshot's; on error nothing changes.
func (g *Group) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("txn group restore: %w: %v", ErrMalformed, err)
	}
	if s.GID != g.gid {
		return fmt.Errorf("txn group restore: snapshot of group %d, this is group %d", s.GID, g.gid)
	}
	cfg, err := shardctl.DecodeConfig(s.Cfg)
	if err != nil {
		return fmt.Errorf("txn group restore: %w", err)
	}
	var next *shardctl.Config
	if s.Next != nil {
		n, err := shardctl.DecodeConfig(s.Next)
		if err != nil {
			return fmt.Errorf("txn group restore: %w", err)
		}
		next = &n
	}
	tab := session.NewTable()
	if err := tab.UnmarshalBinary(s.Sess); err != nil {
		return fmt.Errorf("txn group restore: sessions: %w", err)
	}
	for i, st := range s.State {
		if st > waiting {
			return fmt.Errorf("txn group restore: %w: shard %d in state %d", ErrMalformed, i, st)
		}
	}
	n := &Group{gid: g.gid, cfg: cfg, next: next, state: s.State, data: s.Data, sessions: tab}
	n.reset()
	for _, p := range s.Prepared {
		if p.P == nil || len(p.P.Part.Idx) != len(p.P.Part.Ops) {
			return fmt.Errorf("txn group restore: %w: bad prepared record %v", ErrMalformed, p.ID)
		}
		n.prepared[p.ID] = p.P
		n.takeLocks(p.ID, p.P.Part.Ops)
	}
	for _, c := range s.Coord {
		if c.C == nil || c.C.Votes == nil || c.C.Acked == nil {
			return fmt.Errorf("txn group restore: %w: bad coordinator record %v", ErrMalformed, c.ID)
		}
		n.coord[c.ID] = c.C
	}
	for _, h := range s.Handoffs {
		if h.H == nil {
			return fmt.Errorf("txn group restore: %w: empty hand-off", ErrMalformed)
		}
		n.handoffs[h.K] = h.H
	}
	if s.Done != nil {
		n.done = s.Done
	}
	*g = *n
	return nil
}
