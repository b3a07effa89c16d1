package sim

import "github.com/chaoskv/chaos/kvnode/server/wire"

// freshness is the step oracle of real-time order on the log: a request a
// node answers OK was served from a state at or past every index that any
// replica had applied when an attempt of the request first reached a node.
//
// It holds for every correct core. An index applied anywhere was known to
// be chosen; a leader that may serve (its leadership confirmed after the
// request arrived, or a proposal of it chosen) knows every index chosen
// before it took over (phase 1, the view change) and every one chosen in
// its own term, so its read index, and the slot of any write it proposes,
// is at or past that index; a retry that finds its request already
// proposed waits for that earlier proposal, hence the first attempt. A read served by a deposed leader, before the
// state machine reached the read index, or below what a new leader's phase
// 1 recovered breaks it, usually long before a history shows a stale
// value: the history needs a write to the same key in that window, this
// check any index at all.
type freshness struct {
	// bar holds, per request on its way, the highest index applied
	// anywhere when an attempt of it first arrived at a node: every
	// attempt of one request (client session and seq) is the same
	// operation, so a retry that joins an earlier attempt's proposal is
	// measured from the earlier attempt.
	bar map[opKey]uint64
	// keyOf maps the wire ID of an attempt on its way to its request.
	keyOf map[attempt]opKey
}

type opKey struct {
	cl          *Client
	client, seq uint64
}

type attempt struct {
	cl *Client
	id uint64
}

// arrived notes that a node took attempt id of request key.
func (f *freshness) arrived(c *Cluster, id uint64, key opKey) {
	if f.bar == nil {
		f.bar, f.keyOf = make(map[opKey]uint64), make(map[attempt]opKey)
	}
	if _, ok := f.bar[key]; !ok {
		f.bar[key] = c.oracle.topApplied()
	}
	f.keyOf[attempt{key.cl, id}] = key
}

// answered checks node i's answer r to cl against the bar of its request.
func (f *freshness) answered(c *Cluster, i int, cl *Client, r *wire.Response) {
	a := attempt{cl, r.ID}
	key, ok := f.keyOf[a]
	if !ok {
		return
	}
	delete(f.keyOf, a)
	n := c.nodes[i]
	if r.Status != wire.StatusOK || n.rep == nil {
		return
	}
	// The bar outlives an OK answer: the network may lose the answer,
	// and the client's retry is the same request.
	bar := f.bar[key]
	if applied := n.rep.Core.Status().Applied; applied < bar {
		c.oracle.violate(i, "answered request %d (seq %d) of client %d from applied index %d, below index %d that a replica had applied when the request first arrived", r.ID, key.seq, cl.idx, applied, bar)
	}
}

// topApplied returns the highest index any replica applied so far.
func (o *oracle) topApplied() uint64 {
	if len(o.slots) == 0 {
		return 0
	}
	return uint64(len(o.slots) - 1)
}
