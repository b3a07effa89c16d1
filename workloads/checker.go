package workloads

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/bank"
	"github.com/chaoskv/chaos/checker/elle"
	"github.com/chaoskv/chaos/checker/linear"
)

// CheckNames lists the workloads CheckerFor knows, in help order: the
// workloads New knows, and the history shapes of other tools (a
// cas-register is the register's, kv is single-key reads, writes and
// appends).
func CheckNames() []string {
	return []string{"list-append", "rw-register", "register", "cas-register", "kv", "bank"}
}

// CheckerFor returns the checker that judges histories of the named
// workload. recorded, when not empty, is a checker's JSON as test.json
// records it (a Workload's Checker encoded); it replaces the defaults, so
// a stored run is checked again exactly as it was. This is the one place
// a workload's name becomes its checker.
func CheckerFor(workload string, recorded json.RawMessage) (checker.Checker, error) {
	var (
		c    checker.Checker
		kind string
	)
	switch workload {
	case "list-append", "rw-register":
		c, kind = elle.New(workload, nil), elle.Kind
	case "register", "cas-register":
		// The register workload does cas; a history without cas checks
		// the same under the cas-register model as under a plain one.
		c, kind = linear.New("cas-register"), linear.Kind
	case "kv":
		c, kind = linear.New("kv"), linear.Kind
	case "bank":
		c, kind = bank.New(nil, nil), bank.Kind
	default:
		return nil, fmt.Errorf("unknown workload %q: want %s", workload, strings.Join(CheckNames(), ", "))
	}
	if len(recorded) == 0 {
		return c, nil
	}
	rec, err := ReadCheckerRecord(recorded)
	if err != nil {
		return nil, err
	}
	if rec.Kind != kind {
		return nil, fmt.Errorf("recorded checker %s does not judge workload %s (its checker is %s)", rec.Kind, workload, kind)
	}
	dec := json.NewDecoder(bytes.NewReader(recorded))
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("recorded %s checker %s: %w", kind, recorded, err)
	}
	return c, nil
}

// CheckerRecord is what every recorded checker's JSON says about itself.
type CheckerRecord struct {
	// Kind is the "checker" field: linear, elle or bank.
	Kind string `json:"checker"`
	// Model is the linearizability model or Elle workload; empty for
	// the bank.
	Model string `json:"model"`
}

// ReadCheckerRecord decodes the kind and model of a recorded checker.
func ReadCheckerRecord(recorded json.RawMessage) (CheckerRecord, error) {
	var rec CheckerRecord
	if err := json.Unmarshal(recorded, &rec); err != nil || rec.Kind == "" {
		return rec, fmt.Errorf("%s is not a checker's recorded options", recorded)
	}
	return rec, nil
}

// Workload names the workload whose histories a recorded checker judges:
// the model names it for the linearizability and Elle checkers; the bank
// checker has no model, and its kind is its workload's name.
func (r CheckerRecord) Workload() string {
	if r.Model != "" {
		return r.Model
	}
	return r.Kind
}
