// Package workloads holds the operations a test drives against the system
// under test: generators of invocations (deterministic from a seed), clients
// that execute them and report Jepsen-style completions, the final reads a
// test ends with, and which checker judges the resulting history.
//
// Workloads are sans-IO: a generator and a pure codec that turns an
// invocation into the operation to perform and that operation's result
// into a completion (RegisterCodec). Each world supplies the I/O: chaos
// run wraps the codec in a blocking Client over TCP, and the simulator
// (kvnode/sim) runs the same codec on its single-threaded clients in
// virtual time. So a simulated history is made by exactly the code that
// makes a real one, and a fix to a workload's semantics lands in both.
package workloads

import (
	"context"
	"errors"
	"fmt"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// Invocation is one operation a generator asks a client to perform: the
// history's f and value of the invoke record.
type Invocation struct {
	F     string
	Value any
}

// Completion is a client's report of how an invocation ended. Type is
// history.Ok (it happened), history.Fail (it certainly did not happen) or
// history.Info (unknown: it may take effect at any later time).
type Completion struct {
	Type  history.Type
	Value any
	Error string
	Node  string
}

// Generator produces invocations. The sequence is a pure function of the
// seed the generator was made with; it is not safe for concurrent use.
type Generator interface {
	// Next returns the next invocation.
	Next() Invocation
	// FinalReads returns the reads that end a test once faults are healed,
	// covering everything the generated operations touched.
	FinalReads() []Invocation
}

// Client executes invocations for one logical process. A process whose
// operation ended in Info is retired along with its client, so a Client
// never sees another invocation after an Info.
type Client interface {
	// Invoke performs inv and reports its outcome. It must return once ctx
	// is done, with Info unless it knows better.
	Invoke(ctx context.Context, inv Invocation) Completion
	// Close releases the client's session and connections.
	Close() error
}

// Workload ties a generator, a client and a checker together.
type Workload interface {
	// Name is the workload's name as the --workload flag spells it.
	Name() string
	// NewGenerator returns a generator seeded with seed.
	NewGenerator(seed int64) Generator
	// NewClient opens a client for process p against sut. It must not
	// block on the network for long: a client is opened right after its
	// predecessor was retired, possibly while the cluster is partitioned.
	NewClient(ctx context.Context, sut SUT, p history.Process) (Client, error)
	// Checker returns the checker for this workload's histories,
	// configured with the workload's options.
	Checker() checker.Checker
}

// SUT is how workload clients reach the system under test.
type SUT interface {
	// OpenKV opens a key-value session (one client id, its own sequence
	// numbers) against the cluster.
	OpenKV(ctx context.Context) (KV, error)
}

// KV is a key-value session with single-key read, write and compare-and-set.
// Errors are unknown outcomes unless marked with Definite.
type KV interface {
	// Get returns the key's value, or found == false if it has none.
	Get(ctx context.Context, key string) (value string, found bool, err error)
	// Put sets the key's value.
	Put(ctx context.Context, key, value string) error
	// CAS sets the key to new if its value is old, and reports whether it
	// did. A key without a value never matches.
	CAS(ctx context.Context, key, old, new string) (swapped bool, err error)
	// Close ends the session.
	Close() error
}

// definiteError marks an error after which the operation certainly did not
// take effect.
type definiteError struct{ err error }

func (e *definiteError) Error() string { return e.err.Error() }
func (e *definiteError) Unwrap() error { return e.err }

// Definite marks err as a definite failure: the operation certainly did not
// take effect (the request was refused before it could be applied). Adapters
// to a SUT client use it; everything unmarked is an unknown outcome.
func Definite(err error) error {
	if err == nil {
		return nil
	}
	return &definiteError{err: err}
}

// IsDefinite reports whether err, or an error it wraps, was marked with
// Definite.
func IsDefinite(err error) bool {
	var d *definiteError
	return errors.As(err, &d)
}

// New returns the workload named name. Its options are those every workload
// shares; workload-specific tuning uses the workload's own constructor.
func New(name string) (Workload, error) {
	switch name {
	case "register":
		return NewRegister(RegisterOptions{}), nil
	case "list-append":
		return NewListAppend(ElleOptions{}), nil
	case "rw-register":
		return NewRWRegister(ElleOptions{}), nil
	case "bank":
		return NewBank(BankOptions{}), nil
	default:
		return nil, fmt.Errorf("unknown workload %q (known: %v)", name, Names())
	}
}

// Names lists the workloads New knows.
func Names() []string { return []string{"register", "list-append", "rw-register", "bank"} }

// IsTransactional reports whether the named workload needs a system under
// test that implements TxnSUT.
func IsTransactional(name string) bool {
	switch name {
	case "list-append", "rw-register", "bank":
		return true
	}
	return false
}
