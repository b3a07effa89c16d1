package vr

import "github.com/chaoskv/chaos/kvnode/replica"

var _ replica.Inspector = (*Node)(nil)

// Promised returns the view: a replica never acts in a lower one again.
func (n *Node) Promised() uint64 { return n.view }

// DurablePromise decodes the view from a persisted hard state.
func (n *Node) DurablePromise(state []byte) (uint64, error) {
	h, err := decodeState(state)
	if err != nil {
		return 0, err
	}
	return h.view, nil
}

// Vouches reports the view of a PrepareOK, StartViewChange or
// DoViewChange: each binds its sender to that view.
func (n *Node) Vouches(m replica.Message) (uint64, bool) {
	switch m := m.(type) {
	case *PrepareOK:
		return m.View, true
	case *StartViewChange:
		return m.View, true
	case *DoViewChange:
		return m.View, true
	}
	return 0, false
}
