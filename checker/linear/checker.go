package linear

import (
	"encoding/json"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// Kind is the "checker" field of a Checker's recorded options.
const Kind = "linear"

// Checker is the linearizability check of one model as a checker.Checker.
type Checker struct {
	// Model is the sequential specification: "cas-register", "register"
	// or "kv".
	Model string `json:"model"`
}

// New returns the linearizability checker for model.
func New(model string) *Checker { return &Checker{Model: model} }

// Name returns "linearizable".
func (*Checker) Name() string { return "linearizable" }

// Check judges ops with Check.
func (c *Checker) Check(ops []history.Op, opts checker.Options) (checker.Result, error) {
	return Check(c.Model, ops, Options{Timeout: opts.Timeout, Directory: opts.Directory})
}

// MarshalJSON records the options with the checker's kind.
func (c *Checker) MarshalJSON() ([]byte, error) {
	type plain Checker
	return json.Marshal(struct {
		Kind string `json:"checker"`
		*plain
	}{Kind, (*plain)(c)})
}
