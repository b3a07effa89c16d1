package bank

import (
	"encoding/json"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// Kind is the "checker" field of a Checker's recorded options.
const Kind = "bank"

// Checker is the bank check as a checker.Checker.
type Checker struct {
	// Total is the constant sum of all balances; nil infers it.
	Total *int64 `json:"total,omitempty"`
	// Accounts lists every account; empty infers them.
	Accounts []string `json:"accounts,omitempty"`
}

// New returns the bank checker of a bank with the given total and
// accounts (nil and empty to infer them from the history).
func New(total *int64, accounts []string) *Checker {
	return &Checker{Total: total, Accounts: accounts}
}

// Name returns "bank".
func (*Checker) Name() string { return "bank" }

// Check judges ops with Check; the bank check neither searches nor writes
// artifacts, so opts does not matter.
func (c *Checker) Check(ops []history.Op, _ checker.Options) (checker.Result, error) {
	return Check(ops, Options{Total: c.Total, Accounts: c.Accounts})
}

// MarshalJSON records the options with the checker's kind.
func (c *Checker) MarshalJSON() ([]byte, error) {
	type plain Checker
	return json.Marshal(struct {
		Kind string `json:"checker"`
		*plain
	}{Kind, (*plain)(c)})
}
