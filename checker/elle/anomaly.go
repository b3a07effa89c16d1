package elle

// Txn identifies one transaction of the history in an anomaly report.
type Txn struct {
	// Index is the op index of the completion (of the invocation when the
	// transaction never completed).
	Index int64 `json:"index"`
	// InvokeIndex is the op index of the invocation.
	InvokeIndex int64 `json:"invoke-index"`
	// Process is the client process that ran the transaction.
	Process int64 `json:"process"`
	// Type is the completion type: "ok", "info" or "fail".
	Type string `json:"type"`
	// Value is the list of micro-operations as the checker read them: the
	// completion's (the invocation's when the completion carried none),
	// with f normalised to "r", "w" or "append" and the reads of
	// transactions that did not commit as nil (unknown).
	Value any `json:"value"`
}

// Step is one labelled edge of a dependency cycle: Txns[From] must precede
// Txns[To] for the reason Type names.
type Step struct {
	From int `json:"from"`
	To   int `json:"to"`
	// Type is the dependency kind: "ww", "wr", "rw", "process" or
	// "realtime".
	Type string `json:"type"`
	// Key, Value and NewValue carry the evidence of a data dependency: the
	// key, the version the first transaction wrote or read, and the version
	// the second wrote or read.
	Key      any `json:"key,omitempty"`
	Value    any `json:"value,omitempty"`
	NewValue any `json:"new-value,omitempty"`
	// AMop and BMop index the micro-operations in the two transactions that
	// carry the dependency (-1 for process and realtime edges).
	AMop int `json:"a-mop-index"`
	BMop int `json:"b-mop-index"`
	// Explanation is one plain-English sentence.
	Explanation string `json:"explanation"`
}

// Anomaly is one instance of an anomaly. Cycle anomalies (G0, G1c,
// G-single-item, ...) fill Txns and Steps, where Steps[i] leads from
// Txns[i] to Txns[(i+1) % len(Txns)]; the others fill what their kind needs.
type Anomaly struct {
	Type string `json:"type"`
	// Txns are the transactions involved; for cycles in cycle order.
	Txns  []Txn  `json:"txns,omitempty"`
	Steps []Step `json:"steps,omitempty"`
	// Key and Values describe per-key anomalies (incompatible-order,
	// dirty-update, lost-update, cyclic-versions, duplicate-elements).
	Key    any   `json:"key,omitempty"`
	Values []any `json:"values,omitempty"`
	// Mop is the offending micro-operation, Element the offending element
	// or value, Expected what a correct read would have returned.
	Mop      any `json:"mop,omitempty"`
	Element  any `json:"element,omitempty"`
	Expected any `json:"expected,omitempty"`
	// Sources names what a cyclic version order was inferred from.
	Sources []string `json:"sources,omitempty"`
	// Explanation says in plain English why this is an anomaly.
	Explanation string `json:"explanation"`
}
