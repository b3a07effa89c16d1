package sim

import (
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// CrashProcess stops a node as SIGKILL does: the process and everything in
// its memory are gone, but the operating system outlives it, so every
// write the node handed to its disk reaches stable storage, synced or not.
// Crash, by contrast, is a power loss that may drop or tear the unsynced
// writes. A missing fsync therefore shows under Crash only.
func (c *Cluster) CrashProcess(id replica.NodeID) {
	n := c.nodes[c.mustIndex(id)]
	if !n.up {
		return
	}
	n.disk.flush()
	c.Crash(id)
}

// maxJumpTicks bounds the ticks one forward clock jump fires at once; past
// a few election timeouts more ticks only repeat what the first ones did.
const maxJumpTicks = 1000

// JumpClock steps a node's wall clock by d, as an operator or a bad NTP
// server would, for timers that follow the wall clock. Forward, the ticks
// the jump passes over fire at once (after paying off ticks still owed to
// an earlier backward step), at most maxJumpTicks of them; backward, the
// node's next ticks are skipped until its clock is back where it was. d is
// counted in the node's current tick interval, so a clock-rate fault
// scales it. A crashed or paused node fires nothing (a restart begins with
// fresh timers), but a paused one still owes a backward step's ticks. It
// returns the ticks fired.
func (c *Cluster) JumpClock(id replica.NodeID, d time.Duration) int {
	i := c.mustIndex(id)
	n := c.nodes[i]
	if !n.up {
		return 0
	}
	k := int(int64(d.Abs()) / n.tick)
	if d < 0 {
		n.skipTicks += k
		return 0
	}
	paid := min(k, n.skipTicks)
	n.skipTicks -= paid
	k = min(k-paid, maxJumpTicks)
	if n.paused {
		return 0
	}
	for j := 0; j < k && n.up && !n.paused; j++ {
		n.rep.Tick()
		c.persist(i)
	}
	return k
}

// echo is an armed Echo fault of one node.
type echo struct {
	gen    uint64  // the incarnation whose messages are kept
	kept   []event // deliveries to it, in order
	window time.Duration
}

// maxEcho bounds the messages an Echo keeps.
const maxEcho = 4096

// Echo aims a fault at a node's next restart: the protocol messages node
// id receives from now until it crashes are kept, and once it runs again
// copies of them arrive, each at a random moment within window of the
// restart, as duplicates the network held back across the crash would.
// Answers to a request of an earlier incarnation then reach the next one:
// a core must tell them from answers to its own requests (VR's recovery
// nonce). Partitions in force when a copy arrives still cut it. A node
// that is down, or an Echo already armed, is left alone; it reports
// whether it armed one.
func (c *Cluster) Echo(id replica.NodeID, window time.Duration) bool {
	n := c.nodes[c.mustIndex(id)]
	if !n.up || n.echo != nil {
		return false
	}
	n.echo = &echo{gen: n.gen, window: window}
	return true
}

// keepEcho keeps a delivery to n for its armed Echo.
func (n *node) keepEcho(e event) {
	if n.echo != nil && n.echo.gen == n.gen && len(n.echo.kept) < maxEcho {
		n.echo.kept = append(n.echo.kept, e)
	}
}

// replayEcho sends node i, which just started, the copies its armed Echo
// kept of what its previous incarnation received.
func (c *Cluster) replayEcho(i int) {
	n := c.nodes[i]
	if n.echo == nil || n.echo.gen == n.gen {
		return
	}
	for _, e := range n.echo.kept {
		e.at = c.now + c.rng.Int63n(int64(n.echo.window)+1)
		c.stats.Duplicated++
		c.agenda.push(e)
	}
	n.echo = nil
}
