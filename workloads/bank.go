package workloads

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

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

// Bank moves money between accounts and reads all balances at once. An
// account's key holds a list of signed deltas (appended), and its balance
// is InitialBalance plus their sum; a transfer is one transaction that
// appends -amount to one account and +amount to another, so it needs no
// read-modify-write and is atomic exactly when the SUT's transactions
// are. A read is one transaction reading every account. If transactions
// are atomic and reads are snapshots, every read sums to the same total.
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

// Check names the bank checker with the known total and accounts.
// Balances may go negative: a transfer cannot look at the balance it
// draws on.
func (b *Bank) Check() CheckSpec {
	total := b.opts.InitialBalance * int64(b.opts.Accounts)
	accts := make([]string, b.opts.Accounts)
	for i := range accts {
		accts[i] = strconv.Itoa(i)
	}
	return CheckSpec{Checker: "bank", Total: &total, Accounts: accts, AllowNegative: true}
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
	return &bankClient{kv: kv, opts: b.opts}, nil
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

type bankClient struct {
	kv   TxnKV
	opts BankOptions
}

func (c *bankClient) Close() error { return c.kv.Close() }

func (c *bankClient) account(a int64) (string, error) {
	if a < 0 || a >= int64(c.opts.Accounts) {
		return "", fmt.Errorf("account %d is outside 0..%d", a, c.opts.Accounts-1)
	}
	return keyName(c.opts.KeyPrefix, a), nil
}

func (c *bankClient) Invoke(ctx context.Context, inv Invocation) Completion {
	switch inv.F {
	case "read":
		return c.read(ctx)
	case "transfer":
		return c.transfer(ctx, inv)
	default:
		return Completion{Type: history.Fail, Value: inv.Value, Error: fmt.Sprintf("bank: unknown f %q", inv.F)}
	}
}

func (c *bankClient) read(ctx context.Context) Completion {
	ops := make([]MicroOp, c.opts.Accounts)
	for i := range ops {
		ops[i] = MicroOp{F: MicroRead, Key: keyName(c.opts.KeyPrefix, int64(i))}
	}
	res, err := c.kv.Txn(ctx, ops)
	if err == nil && len(res) != len(ops) {
		err = fmt.Errorf("%d results for %d reads", len(res), len(ops))
	}
	if err != nil {
		// A read changes nothing: dropping it is always safe.
		return Completion{Type: history.Fail, Error: err.Error()}
	}
	out := make(map[string]any, len(ops))
	for i, r := range res {
		bal := c.opts.InitialBalance
		for _, e := range r.List {
			d, err := strconv.ParseInt(e, 10, 64)
			if err != nil {
				return Completion{Type: history.Fail, Error: fmt.Sprintf("account %d holds %q, not a list of integer deltas", i, r.Value)}
			}
			bal += d
		}
		out[strconv.Itoa(i)] = bal
	}
	return Completion{Type: history.Ok, Value: out}
}

func (c *bankClient) transfer(ctx context.Context, inv Invocation) Completion {
	m, ok := inv.Value.(map[string]any)
	if !ok {
		return Completion{Type: history.Fail, Value: inv.Value, Error: "transfer value is not {from, to, amount}"}
	}
	from, ok1 := toInt(m["from"])
	to, ok2 := toInt(m["to"])
	amount, ok3 := toInt(m["amount"])
	if !ok1 || !ok2 || !ok3 {
		return Completion{Type: history.Fail, Value: inv.Value, Error: "transfer from, to and amount must be integers"}
	}
	fk, err := c.account(from)
	if err == nil && from == to {
		err = fmt.Errorf("transfer from account %d to itself", from)
	}
	tk, err2 := c.account(to)
	if err == nil {
		err = err2
	}
	if err != nil {
		return Completion{Type: history.Fail, Value: inv.Value, Error: err.Error()}
	}
	ops := []MicroOp{
		{F: MicroAppend, Key: fk, Value: encodeInt(-amount)},
		{F: MicroAppend, Key: tk, Value: encodeInt(amount)},
	}
	if _, err := c.kv.Txn(ctx, ops); err != nil {
		return Completion{Type: txnOutcome(err, false), Value: inv.Value, Error: err.Error()}
	}
	return Completion{Type: history.Ok, Value: inv.Value}
}
