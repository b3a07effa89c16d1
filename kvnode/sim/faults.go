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
