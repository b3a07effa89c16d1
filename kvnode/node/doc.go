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
//     requests under the runtime's own session.
//   - ShardGroup is the shard runtime of one replica as its node hosts
//     it: when the runtime looks at the replica (at start, after applied
//     results, on a leader change, after a delivery, at its one timer),
//     how that timer is armed, and where deliveries and proposals go,
//     through a ShardEnv. The server's group loop and the simulator's
//     nodes only carry out ShardEnv (kick their loop, arm a timer, send a
//     request, submit at the replica).
//
// So each shard runtime rule has one home: when a delivery is retried,
// when a configuration is asked for and when a transaction is abandoned
// are ShardPump's; when the pump is ticked is ShardGroup's.
package node
