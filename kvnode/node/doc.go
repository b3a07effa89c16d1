// Package node is what a kvnode process does per replica between its
// sockets, its disk and its clock, as deterministic components that both
// of its shells run: the real server (kvnode/server: a goroutine per group,
// TCP, raft-boltdb storage, a ticker) and the simulator (kvnode/sim: one
// event loop on virtual time, a disk that loses unsynced writes). No
// goroutines, sockets, files or clock inside; each rule lives here once.
//
//   - Replica is one replica fed events (a peer message, a client request,
//     a tick, a storage write done). It owns the core, and emits through
//     its Host (peer frames, client answers) and the replica.Storage the
//     shell passes.
//   - Pipeline is the order through storage: persist each Ready, sync,
//     and only then release its messages; only a Ready's Early messages
//     (a leader's proposals and heartbeats) leave before, so that a
//     leader's write overlaps its followers', and, from a core whose
//     answers never rest on its unsynced writes, results and reads are
//     answered at once.
//   - Requests is how clients are answered: batching, not-leader refusals,
//     waiting by (client, seq), stale requests, unknown on leadership loss,
//     and read-only requests served by read index without a log entry.
//   - ShardPump is a shard group's runtime rules: 2PC delivery and
//     abandon, configuration learning.
//   - ShardRuntime carries out ShardPump's decisions: a pool of clients
//     per target group for the deliveries, and the answers turned into
//     requests under the runtime's own session; the shells only send what
//     it hands them and submit what it returns.
package node
