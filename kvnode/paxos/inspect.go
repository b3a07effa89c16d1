package paxos

import "github.com/chaoskv/chaos/kvnode/replica"

var _ replica.Inspector = (*Node)(nil)

// ballotKey orders ballots as one number: the round above the node ID.
// Rounds stay far below 2^40 and node IDs below 2^24.
func ballotKey(b Ballot) uint64 { return b.Round<<24 | uint64(b.Node)&(1<<24-1) }

// Promised returns the promised ballot as a number.
func (n *Node) Promised() uint64 { return ballotKey(n.promised) }

// DurablePromise decodes the promised ballot from a persisted hard state.
func (n *Node) DurablePromise(state []byte) (uint64, error) {
	h, err := decodeState(state)
	if err != nil {
		return 0, err
	}
	return ballotKey(h.promised), nil
}

// Vouches reports the ballot of an acceptor's Promise or Accepted.
func (n *Node) Vouches(m replica.Message) (uint64, bool) {
	switch m := m.(type) {
	case *Promise:
		return ballotKey(m.Ballot), true
	case *Accepted:
		return ballotKey(m.Ballot), true
	}
	return 0, false
}

// Acknowledges reports every message but a leader's Accept and Heartbeat,
// which only ask. A Prepare counts: its candidate counts its own promise
// of the ballot at once, so the Prepare must not leave before that promise
// is durable.
func (n *Node) Acknowledges(m replica.Message) bool {
	switch m.(type) {
	case *Accept, *Heartbeat:
		return false
	}
	return true
}
