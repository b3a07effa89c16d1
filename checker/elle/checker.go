package elle

import (
	"encoding/json"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// Kind is the "checker" field of a Checker's recorded options.
const Kind = "elle"

// Checker is Elle's check of one transactional workload as a
// checker.Checker.
type Checker struct {
	// Workload is "list-append" or "rw-register".
	Workload string `json:"model"`
	// ConsistencyModels, Anomalies and the key assumptions are as in
	// Options.
	ConsistencyModels []string `json:"consistency-models,omitempty"`
	Anomalies         []string `json:"anomalies,omitempty"`
	SequentialKeys    bool     `json:"sequential-keys,omitempty"`
	LinearizableKeys  bool     `json:"linearizable-keys,omitempty"`
	WFRKeys           bool     `json:"wfr-keys,omitempty"`
}

// New returns Elle's checker for workload, holding histories to models
// (empty for strict-serializable).
func New(workload string, models []string) *Checker {
	return &Checker{Workload: workload, ConsistencyModels: models}
}

// Name returns "elle".
func (*Checker) Name() string { return "elle" }

// Check judges ops with Check; opts.Timeout bounds the cycle search.
func (c *Checker) Check(ops []history.Op, opts checker.Options) (checker.Result, error) {
	return Check(c.Workload, ops, c.options(opts))
}

// Stream returns a Builder's Take and the check of what it took: Elle's
// compact form of a transaction is all that is kept of its op.
func (c *Checker) Stream() (func(*history.Op) error, func(checker.Options) (checker.Result, error)) {
	b := NewBuilder(c.Workload)
	return b.Take, func(opts checker.Options) (checker.Result, error) { return b.Check(c.options(opts)) }
}

func (c *Checker) options(opts checker.Options) Options {
	return Options{
		ConsistencyModels:  c.ConsistencyModels,
		Anomalies:          c.Anomalies,
		CycleSearchTimeout: opts.Timeout,
		Directory:          opts.Directory,
		SequentialKeys:     c.SequentialKeys,
		LinearizableKeys:   c.LinearizableKeys,
		WFRKeys:            c.WFRKeys,
	}
}

// Validate reports a consistency model or anomaly Elle does not know.
func (c *Checker) Validate() error {
	_, err := Check(c.Workload, nil, Options{ConsistencyModels: c.ConsistencyModels, Anomalies: c.Anomalies})
	return err
}

// MarshalJSON records the options with the checker's kind.
func (c *Checker) MarshalJSON() ([]byte, error) {
	type plain Checker
	return json.Marshal(struct {
		Kind string `json:"checker"`
		*plain
	}{Kind, (*plain)(c)})
}
