package vr

import "github.com/chaoskv/chaos/kvnode/replica"

var _ replica.Inspector = (*Node)(nil)

// Promised returns the highest view this replica sent a DoViewChange in:
// it never acts in a lower view again, which is what keeps the ops a new
// view was built from. (Its current view may go down: a restarted replica
// that had only voted for a view change that never completed rejoins the
// view the others are still in, as StartViewChange binds no one.)
//
// With epochs the promise is (epoch, view) as one number (stamp): a
// replica never acts in an older epoch again.
func (n *Node) Promised() uint64 { return stamp(n.epoch, n.dvcView) }

// DurablePromise decodes the same from a persisted hard state.
func (n *Node) DurablePromise(state []byte) (uint64, error) {
	h, err := decodeState(state)
	if err != nil {
		return 0, err
	}
	return stamp(h.epoch, h.dvcView), nil
}

// Vouches reports the view of a DoViewChange.
func (n *Node) Vouches(m replica.Message) (uint64, bool) {
	if m, ok := m.(*DoViewChange); ok {
		return stamp(m.Epoch, m.View), true
	}
	return 0, false
}

// Acknowledges reports every message but those that only ask: the
// primary's Prepare and Commit, GetState, GetEpochState and Recovery.
func (n *Node) Acknowledges(m replica.Message) bool {
	switch m.(type) {
	case *Prepare, *Commit, *GetState, *Recovery, *GetEpochState:
		return false
	}
	return true
}
