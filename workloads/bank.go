package workloads

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/bank"
	"github.com/chaoskv/chaos/history"
)

// BankOptions tunes the bank workload. Zero values take defaults.
type BankOptions struct {
	// Accounts is the number of accounts, 0..Accounts-1 (default 8).
	Accounts int
	// InitialBalance is every account's balance before any transfer
	// (default 10).
	InitialBalance int64
	// MaxTransfer bounds a transfer's amount, 1..MaxTransfer (default 5).
	MaxTransfer int64
	// KeyPrefix is prepended to the account number to form the SUT's key
	// (default "acct").
	KeyPrefix string
}

func (o BankOptions) withDefaults() BankOptions {
	if o.Accounts < 2 {
		o.Accounts = 8
	}
	if o.InitialBalance <= 0 {
		o.InitialBalance = 10
	}
	if o.MaxTransfer <= 0 {
		o.MaxTransfer = 5
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "acct"
	}
	return o
}

// Bank moves money between accounts and reads all balances at once, with
// Jepsen's bank semantics: a transfer that would overdraw its source
// account fails, so no balance is ever negative. An account's key holds
// its balance as a decimal integer (a key never written holds
// InitialBalance), so opening the accounts needs no setup in either world:
// an empty store is a bank whose accounts all hold InitialBalance. A transfer reads both balances in one transaction and,
// when the source can pay, writes both new balances in a second one
// guarded by checks that both keys still hold what was read; a transfer
// refused for lack of funds, or whose guard no longer matched, definitely
// changed nothing. A read is one transaction reading every account. If
// transactions are atomic and reads are snapshots, every read sums to the
// same total and shows no negative balance.
//
// History values: transfer {"from": 1, "to": 4, "amount": 3}; read
// invokes with nil and completes with {"0": 12, "1": 7, ...}.
type Bank struct {
	opts BankOptions
}

// NewBank returns the bank workload.
func NewBank(opts BankOptions) *Bank { return &Bank{opts: opts.withDefaults()} }

// Name returns "bank".
func (*Bank) Name() string { return "bank" }

// Checker returns the bank checker with the known total and accounts.
func (b *Bank) Checker() checker.Checker {
	total := b.opts.InitialBalance * int64(b.opts.Accounts)
	accts := make([]string, b.opts.Accounts)
	for i := range accts {
		accts[i] = strconv.Itoa(i)
	}
	return bank.New(&total, accts)
}

// NewGenerator returns a generator whose sequence depends only on seed.
func (b *Bank) NewGenerator(seed int64) Generator {
	return &bankGen{opts: b.opts, rng: rand.New(rand.NewPCG(uint64(seed), 0x42616e6b))}
}

// NewClient opens a transactional session for process p.
func (b *Bank) NewClient(ctx context.Context, sut SUT, _ history.Process) (Client, error) {
	kv, err := openTxn(ctx, "bank", sut)
	if err != nil {
		return nil, err
	}
	return &txnClient{kv: kv, codec: b.Codec()}, nil
}

type bankGen struct {
	opts BankOptions
	rng  *rand.Rand
}

func (g *bankGen) Next() Invocation {
	if g.rng.IntN(3) == 0 {
		return Invocation{F: "read"}
	}
	from := g.rng.IntN(g.opts.Accounts)
	to := g.rng.IntN(g.opts.Accounts - 1)
	if to >= from {
		to++
	}
	amount := 1 + g.rng.Int64N(g.opts.MaxTransfer)
	return Invocation{F: "transfer", Value: map[string]any{"from": int64(from), "to": int64(to), "amount": amount}}
}

func (g *bankGen) FinalReads() []Invocation { return []Invocation{{F: "read"}} }

// Codec returns the workload's TxnCodec: a read is one transaction over
// every account; a transfer is two, the reads of both balances and then
// their guarded writes.
func (b *Bank) Codec() TxnCodec { return bankCodec{opts: b.opts} }

type bankCodec struct {
	opts BankOptions
}

// ErrInsufficientFunds fails a transfer that would overdraw its source.
var ErrInsufficientFunds = errors.New("insufficient funds")

func (c bankCodec) Start(inv Invocation) TxnStep {
	switch inv.F {
	case "read":
		return c.read()
	case "transfer":
		return c.transfer(inv.Value)
	default:
		return doneStep(Completion{Type: history.Fail, Value: inv.Value, Error: fmt.Sprintf("bank: unknown f %q", inv.F)})
	}
}

func (c bankCodec) read() TxnStep {
	ops := make([]MicroOp, c.opts.Accounts)
	for i := range ops {
		ops[i] = MicroOp{F: MicroRead, Key: keyName(c.opts.KeyPrefix, int64(i))}
	}
	return txnStep(ops, func(res []MicroResult, err error) TxnStep {
		if err == nil && len(res) != len(ops) {
			err = fmt.Errorf("%d results for %d reads", len(res), len(ops))
		}
		if err != nil {
			// A read changes nothing: dropping it is always safe.
			return doneStep(Completion{Type: history.Fail, Error: err.Error()})
		}
		out := make(map[string]any, len(res))
		for i, r := range res {
			bal, err := c.balance(r)
			if err != nil {
				return doneStep(Completion{Type: history.Fail, Error: fmt.Sprintf("account %d: %v", i, err)})
			}
			out[strconv.Itoa(i)] = bal
		}
		return doneStep(Completion{Type: history.Ok, Value: out})
	})
}

// balance decodes an account's stored balance.
func (c bankCodec) balance(r MicroResult) (int64, error) {
	if !r.Found || r.Value == "" {
		return c.opts.InitialBalance, nil
	}
	n, err := strconv.ParseInt(r.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("holds %q, not a balance", r.Value)
	}
	return n, nil
}

func (c bankCodec) transfer(v any) TxnStep {
	fail := func(err error) TxnStep { return doneStep(Completion{Type: history.Fail, Value: v, Error: err.Error()}) }
	from, to, amount, err := c.parse(v)
	if err != nil {
		return fail(err)
	}
	return txnStep([]MicroOp{{F: MicroRead, Key: from}, {F: MicroRead, Key: to}}, func(res []MicroResult, err error) TxnStep {
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("%d results for a transfer's 2 reads", len(res))
		}
		if err != nil {
			return fail(fmt.Errorf("read the balances: %w", err)) // nothing written yet
		}
		fb, err := c.balance(res[0])
		if err != nil {
			return fail(fmt.Errorf("account %s: %w", from, err))
		}
		tb, err := c.balance(res[1])
		if err != nil {
			return fail(fmt.Errorf("account %s: %w", to, err))
		}
		if fb < amount {
			return fail(fmt.Errorf("%w: account %s holds %d, less than %d", ErrInsufficientFunds, from, fb, amount))
		}
		// The guards compare the raw values read ("" for an account never
		// written), so the writes apply only if neither balance moved since.
		writes := []MicroOp{
			{F: MicroCheck, Key: from, Value: rawValue(res[0])},
			{F: MicroCheck, Key: to, Value: rawValue(res[1])},
			{F: MicroWrite, Key: from, Value: encodeInt(fb - amount)},
			{F: MicroWrite, Key: to, Value: encodeInt(tb + amount)},
		}
		return txnStep(writes, func(_ []MicroResult, err error) TxnStep {
			if err != nil {
				return doneStep(Completion{Type: txnOutcome(err, false), Value: v, Error: err.Error()})
			}
			return doneStep(Completion{Type: history.Ok, Value: v})
		})
	})
}

func rawValue(r MicroResult) string {
	if !r.Found {
		return ""
	}
	return r.Value
}

func (c bankCodec) account(v any) (string, int64, error) {
	a, ok := toInt(v)
	if !ok {
		return "", 0, fmt.Errorf("account %v is not an integer", v)
	}
	if a < 0 || a >= int64(c.opts.Accounts) {
		return "", 0, fmt.Errorf("account %d is outside 0..%d", a, c.opts.Accounts-1)
	}
	return keyName(c.opts.KeyPrefix, a), a, nil
}

// parse checks a transfer's value.
func (c bankCodec) parse(v any) (from, to string, amount int64, err error) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", "", 0, fmt.Errorf("transfer value %v is not {from, to, amount}", v)
	}
	from, fa, err := c.account(m["from"])
	if err != nil {
		return "", "", 0, fmt.Errorf("transfer from: %w", err)
	}
	to, ta, err := c.account(m["to"])
	if err != nil {
		return "", "", 0, fmt.Errorf("transfer to: %w", err)
	}
	if fa == ta {
		return "", "", 0, fmt.Errorf("transfer from account %d to itself", fa)
	}
	amount, ok = toInt(m["amount"])
	if !ok {
		return "", "", 0, fmt.Errorf("transfer amount %v is not an integer", m["amount"])
	}
	if amount < 1 {
		return "", "", 0, fmt.Errorf("transfer amount %d is not positive", amount)
	}
	return from, to, amount, nil
}
