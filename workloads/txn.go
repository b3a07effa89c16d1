package workloads

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/chaoskv/chaos/history"
)

// Micro-operation functions, as both the history and the SUT spell them.
const (
	MicroRead   = "r"
	MicroWrite  = "w"
	MicroAppend = "append"
	// MicroCheck guards a transaction: unless its key holds Value (a key
	// never written holding ""), the whole transaction applies nothing
	// and fails with a definite error.
	MicroCheck = "check"
)

// MicroOp is one step of a transaction as sent to the system under test.
type MicroOp struct {
	F     string // MicroRead, MicroWrite, MicroAppend or MicroCheck
	Key   string
	Value string // written, appended or expected value; empty for reads
}

// MicroResult is the outcome of one MicroOp, in the transaction's order.
// For a read, Found says whether the key exists, Value is its value and
// List its appended elements (nil when the key does not exist).
type MicroResult struct {
	Value string
	Found bool
	List  []string
}

// TxnKV is a transactional session: each call runs its micro-ops as one
// atomic transaction. Errors are unknown outcomes unless marked with
// Definite.
type TxnKV interface {
	// Txn runs ops atomically and returns one result per op.
	Txn(ctx context.Context, ops []MicroOp) ([]MicroResult, error)
	// Close ends the session.
	Close() error
}

// Router is implemented by transactional sessions that can name the
// server or replica group their last transaction was routed to; the
// history records it in the completion's node field, which the report's
// availability per group reads.
type Router interface {
	// Served names where the last transaction went, "" when unknown.
	Served() string
}

// TxnSUT is implemented by systems under test that run transactions.
type TxnSUT interface {
	// OpenTxn opens a transactional session.
	OpenTxn(ctx context.Context) (TxnKV, error)
}

// ErrNoTxn is matched by the error of opening a transactional client
// against a system under test that cannot run transactions.
var ErrNoTxn = errors.New("the system under test does not run transactions")

// openTxn opens a transactional session on sut, or explains why it cannot.
func openTxn(ctx context.Context, workload string, sut SUT) (TxnKV, error) {
	ts, ok := sut.(TxnSUT)
	if !ok {
		return nil, fmt.Errorf("%s client: %w", workload, ErrNoTxn)
	}
	kv, err := ts.OpenTxn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s client: %w", workload, err)
	}
	return kv, nil
}

// TxnCodec is a transactional workload's sans-IO codec: it turns an
// invocation into the transactions to run and their answers into the
// invocation's completion, deciding ok, fail or info. Most invocations
// take one transaction; a bank transfer takes two (it reads both balances,
// then writes both guarded by checks), so the codec hands out steps. It is
// pure: the blocking clients of chaos run and the simulator's
// single-threaded clients run the steps, each with its own I/O.
type TxnCodec interface {
	// Start returns inv's first step: a transaction to run, or at once
	// the completion when inv is malformed (fail: nothing was sent).
	Start(inv Invocation) TxnStep
}

// TxnStep is where an invocation stands: a transaction to run (Ops), whose
// answer Next takes, or the invocation's Completion once Done.
type TxnStep struct {
	// Ops is the transaction to run next; empty when Done.
	Ops []MicroOp
	// Completion is the invocation's outcome once Done.
	Completion Completion
	// next continues from Ops' answer; nil when done. It must not change
	// what it captured, so that a step can be answered more than once
	// (tests do).
	next func(res []MicroResult, err error) TxnStep
}

// Done reports whether the invocation is complete.
func (s TxnStep) Done() bool { return s.next == nil }

// Next returns the step after Ops ran: res holds one result per op, or
// err says the transaction did not answer (an unknown outcome unless
// marked with Definite). Next of a Done step returns it unchanged.
func (s TxnStep) Next(res []MicroResult, err error) TxnStep {
	if s.next == nil {
		return s
	}
	return s.next(res, err)
}

// doneStep is the last step of an invocation.
func doneStep(c Completion) TxnStep { return TxnStep{Completion: c} }

// txnStep asks for ops and continues with next.
func txnStep(ops []MicroOp, next func(res []MicroResult, err error) TxnStep) TxnStep {
	return TxnStep{Ops: ops, next: next}
}

// txnClient is the blocking world's I/O for a TxnCodec: each step's
// transaction is one call on a transactional session.
type txnClient struct {
	kv    TxnKV
	codec TxnCodec
}

func (c *txnClient) Close() error { return c.kv.Close() }

func (c *txnClient) Invoke(ctx context.Context, inv Invocation) Completion {
	return runTxn(ctx, c.kv, c.codec, inv)
}

// runTxn executes one invocation through codec against kv.
func runTxn(ctx context.Context, kv TxnKV, codec TxnCodec, inv Invocation) Completion {
	step, ran := codec.Start(inv), false
	for !step.Done() {
		step, ran = step.Next(kv.Txn(ctx, step.Ops)), true
	}
	c := step.Completion
	if r, ok := kv.(Router); ok && ran && c.Node == "" {
		c.Node = r.Served()
	}
	return c
}

// txnOutcome is the completion type of a transaction that returned err:
// fail when the SUT said nothing was applied, or when the transaction only
// read (dropping it loses nothing); info otherwise.
func txnOutcome(err error, readOnly bool) history.Type {
	if IsDefinite(err) || readOnly {
		return history.Fail
	}
	return history.Info
}

// encodeInt is how integer values travel to the SUT.
func encodeInt(v int64) string { return strconv.FormatInt(v, 10) }
