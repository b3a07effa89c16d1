package kv

import "github.com/chaoskv/chaos/kvnode/txn"

// ReadOnly reports whether encoded is an op that only reads (a Get, or a
// Txn of reads only), which a runtime may serve by read index with Query
// instead of taking a log entry. An op that does not decode is not: the
// log path answers it with its decoding error.
func (s *Store) ReadOnly(encoded []byte) bool {
	op, err := DecodeOp(encoded)
	if err != nil {
		return false
	}
	return readOnly(op) == ""
}

// readOnly returns why op must go through the log, or "" when it only
// reads.
func readOnly(op Op) string {
	switch op.Kind {
	case Get:
		return ""
	case Txn:
		ops, err := txn.Decode([]byte(op.Value))
		if err != nil {
			return err.Error()
		}
		for _, o := range ops {
			if o.F != txn.Read {
				return "query: a transaction that writes must go through the log"
			}
		}
		return ""
	}
	return "query: " + op.Kind.String() + " is not a read"
}

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
	if why := readOnly(op); why != "" {
		return Reply{Err: why}.Encode()
	}
	return s.apply(op).Encode()
}
