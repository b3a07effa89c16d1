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

func (c *bankClient) Invoke(ctx context.Context, inv Invocation) Completion {
	return runTxn(ctx, c.kv, bankShaper{c.opts}, inv)
}

// Shaper returns the workload's TxnShaper.
func (b *Bank) Shaper() TxnShaper { return bankShaper{b.opts} }

type bankShaper struct {
	opts BankOptions
}

func (s bankShaper) account(v any) (string, int64, error) {
	a, ok := toInt(v)
	if !ok {
		return "", 0, fmt.Errorf("account %v is not an integer", v)
	}
	if a < 0 || a >= int64(s.opts.Accounts) {
		return "", 0, fmt.Errorf("account %d is outside 0..%d", a, s.opts.Accounts-1)
	}
	return keyName(s.opts.KeyPrefix, a), a, nil
}

// transfer checks a transfer's value.
func (s bankShaper) transfer(v any) (from, to string, amount int64, err error) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", "", 0, fmt.Errorf("transfer value %v is not {from, to, amount}", v)
	}
	from, fa, err := s.account(m["from"])
	if err != nil {
		return "", "", 0, fmt.Errorf("transfer from: %w", err)
	}
	to, ta, err := s.account(m["to"])
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
	return from, to, amount, nil
}

func (s bankShaper) MicroOps(inv Invocation) ([]MicroOp, error) {
	switch inv.F {
	case "read":
		ops := make([]MicroOp, s.opts.Accounts)
		for i := range ops {
			ops[i] = MicroOp{F: MicroRead, Key: keyName(s.opts.KeyPrefix, int64(i))}
		}
		return ops, nil
	case "transfer":
		from, to, amount, err := s.transfer(inv.Value)
		if err != nil {
			return nil, err
		}
		return []MicroOp{
			{F: MicroAppend, Key: from, Value: encodeInt(-amount)},
			{F: MicroAppend, Key: to, Value: encodeInt(amount)},
		}, nil
	default:
		return nil, fmt.Errorf("bank: unknown f %q", inv.F)
	}
}

func (s bankShaper) Complete(inv Invocation, res []MicroResult, err error) Completion {
	switch inv.F {
	case "read":
		if err == nil && len(res) != s.opts.Accounts {
			err = fmt.Errorf("%d results for %d reads", len(res), s.opts.Accounts)
		}
		if err != nil {
			// A read changes nothing: dropping it is always safe.
			return Completion{Type: history.Fail, Error: err.Error()}
		}
		out := make(map[string]any, len(res))
		for i, r := range res {
			bal := s.opts.InitialBalance
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
	case "transfer":
		if _, _, _, perr := s.transfer(inv.Value); perr != nil {
			return Completion{Type: history.Fail, Value: inv.Value, Error: perr.Error()}
		}
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("%d results for a transfer's 2 appends", len(res))
		}
		if err != nil {
			return Completion{Type: txnOutcome(err, false), Value: inv.Value, Error: err.Error()}
		}
		return Completion{Type: history.Ok, Value: inv.Value}
	default:
		return Completion{Type: history.Fail, Value: inv.Value, Error: fmt.Sprintf("bank: unknown f %q", inv.F)}
	}
}
