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
