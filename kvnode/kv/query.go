package kv

import "github.com/chaoskv/chaos/kvnode/txn"

// Query answers a read-only op (a Get, or a Txn of reads only) from the
// current state and returns the encoded Reply, as Apply would have, but
// without the session table and without changing anything: it is how a
// read served by read index, which takes no log entry, is answered. Any
// other op gets a Reply with Err set.
func (s *Store) Query(encoded []byte) []byte {
	op, err := DecodeOp(encoded)
	if err != nil {
		return Reply{Err: err.Error()}.Encode()
	}
	switch op.Kind {
	case Get:
		return s.apply(op).Encode()
	case Txn:
		ops, err := txn.Decode([]byte(op.Value))
		if err != nil {
			return Reply{Err: err.Error()}.Encode()
		}
		for _, o := range ops {
			if o.F != txn.Read {
				return Reply{Err: "query: a transaction that writes must go through the log"}.Encode()
			}
		}
		return s.apply(op).Encode()
	}
	return Reply{Err: "query: " + op.Kind.String() + " is not a read"}.Encode()
}
