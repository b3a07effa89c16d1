// Package workloads holds the operations a test drives against the system
// under test: generators of invocations (deterministic from a seed), clients
// that execute them and report Jepsen-style completions, the final reads a
// test ends with, and which checker judges the resulting history.
//
// Workloads are sans-IO: a generator and a pure codec that turns an
// invocation into the operations to perform and their results into a
// completion, deciding there whether it is ok, fail or info. A KVWorkload
// (register) has a RegisterCodec of single-key ops; a TxnWorkload
// (list-append, rw-register, bank) has a TxnCodec of transactions, which
// may take several steps (a bank transfer reads, then writes guarded).
// Each world supplies the I/O: chaos run wraps the codec in a blocking
// Client over TCP, and the simulator (kvnode/sim) runs the same codec on
// its single-threaded clients in virtual time. So a simulated history is
// made by exactly the code that makes a real one, and a fix to a
// workload's semantics lands in both.
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

// KVWorkload is a workload of single-key operations, run through its codec.
type KVWorkload interface {
	Workload
	// Codec returns the workload's codec.
	Codec() RegisterCodec
}

// TxnWorkload is a workload whose invocations run as transactions, through
// its codec.
type TxnWorkload interface {
	Workload
	// Codec returns the workload's codec.
	Codec() TxnCodec
}

// Every workload is one or the other, so that a world can drive it by its
// codec alone.
var (
	_ KVWorkload  = (*Register)(nil)
	_ TxnWorkload = (*Elle)(nil)
	_ TxnWorkload = (*Bank)(nil)
)

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

// New returns the workload named name with its default options;
// workload-specific tuning uses the workload's own constructor.
func New(name string) (Workload, error) { return NewTuned(name, Tuning{}) }

// Tuning is what every workload can be tuned by, for a caller that does
// not know which workload it runs (the simulator). Zero values take each
// workload's defaults.
type Tuning struct {
	// Keys is how many keys are in use at once: the register's and the
	// Elle workloads' Keys, the bank's Accounts.
	Keys int
	// Reads is the register's Reads; other workloads have no reads ratio
	// and refuse one.
	Reads int
}

// NewTuned returns the workload named name tuned by t.
func NewTuned(name string, t Tuning) (Workload, error) {
	if t.Reads != 0 && name != "register" {
		return nil, fmt.Errorf("workload %s has no reads ratio to tune (only register has)", name)
	}
	if name == "bank" && t.Keys == 1 {
		return nil, errors.New("workload bank needs at least 2 accounts (keys) to transfer between")
	}
	switch name {
	case "register":
		return NewRegister(RegisterOptions{Keys: t.Keys, Reads: t.Reads}), nil
	case "list-append":
		return NewListAppend(ElleOptions{Keys: t.Keys}), nil
	case "rw-register":
		return NewRWRegister(ElleOptions{Keys: t.Keys}), nil
	case "bank":
		return NewBank(BankOptions{Accounts: t.Keys}), nil
	default:
		return nil, fmt.Errorf("unknown workload %q (known: %v)", name, Names())
	}
}

// Names lists the workloads New knows.
func Names() []string { return []string{"register", "list-append", "rw-register", "bank"} }

// IsTransactional reports whether the named workload needs a system under
// test that implements TxnSUT.
func IsTransactional(name string) bool {
	w, err := New(name)
	if err != nil {
		return false
	}
	_, ok := w.(TxnWorkload)
	return ok
}
