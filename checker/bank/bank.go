// Package bank checks histories of the bank workload with Jepsen's bank
// semantics: transfers move money between accounts and a transfer that
// would overdraw its source fails, so every successful read must see the
// same total, no account may ever be negative, and every read must be a
// whole snapshot of all the accounts.
package bank

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// Anomaly types this checker reports.
const (
	WrongTotal    = "wrong-total"
	NegativeValue = "negative-value"
	UnexpectedKey = "unexpected-key"
	MissingKey    = "missing-key"
)

// Options describe the bank.
type Options struct {
	// Total is the constant sum of all balances. When nil, it is the total
	// most ok reads agree on.
	Total *int64
	// Accounts lists every account. When empty, the accounts are those
	// that any read or transfer names, and no key is unexpected.
	Accounts []string
}

// Error describes one anomaly in one read.
type Error struct {
	// Op is the ok completion of the read.
	Op history.Op `json:"op"`
	// Total is the sum the read saw, and Expected the bank's total
	// (wrong-total only).
	Total    *int64 `json:"total,omitempty"`
	Expected *int64 `json:"expected,omitempty"`
	// Account and Balance name a negative balance (negative-value only).
	Account string `json:"account,omitempty"`
	Balance *int64 `json:"balance,omitempty"`
	// Keys are the accounts missing from, or unexpected in, the read.
	Keys []string `json:"keys,omitempty"`
	// Explanation is the sentence a person reads.
	Explanation string `json:"explanation"`
}

type read struct {
	op       *history.Op
	balances map[string]int64
	total    int64
}

// Check checks a bank history. Reads have f "read" and, on their ok
// completion, a value mapping account to balance: a JSON object (or EDN
// map), or a list of [account, balance] pairs. Transfers have f "transfer"
// and value {from, to, amount}; only their accounts matter here. An error
// means the history is malformed (it wraps history.ErrMalformed).
func Check(ops []history.Op, opts Options) (checker.Result, error) {
	start := time.Now()
	if _, err := history.Pair(ops); err != nil {
		return checker.Result{}, fmt.Errorf("bank: %w", err)
	}
	known := make(map[string]bool)
	for _, a := range opts.Accounts {
		known[a] = true
	}
	inferAccounts := len(opts.Accounts) == 0
	var reads []read
	for i := range ops {
		op := &ops[i]
		if !op.IsClient() {
			continue
		}
		switch {
		case op.F == "read" && op.Type == history.Ok:
			bal, err := balances(op.Value)
			if err != nil {
				return checker.Result{}, fmt.Errorf("bank: line %d (index %d): %w: %w", i+1, op.Index, history.ErrMalformed, err)
			}
			r := read{op: op, balances: bal}
			for a, b := range bal {
				r.total += b
				if inferAccounts {
					known[a] = true
				}
			}
			reads = append(reads, r)
		case op.F == "transfer" && inferAccounts:
			if m, ok := op.Value.(map[string]any); ok {
				for _, f := range []string{"from", "to"} {
					if a, ok := accountName(m[f]); ok {
						known[a] = true
					}
				}
			}
		}
	}
	res := checker.Result{
		Checker:   "bank",
		Anomalies: map[string][]any{},
		Stats: map[string]any{
			"reads":    len(reads),
			"accounts": len(known),
		},
	}
	if len(reads) == 0 {
		res.Valid = checker.Unknown
		res.Summary = "unknown: no ok reads to check"
		res.Stats["elapsed"] = time.Since(start).String()
		return res, nil
	}
	total, inferred := expectedTotal(reads, opts.Total)
	res.Stats["total"] = total
	if inferred {
		res.Stats["total-inferred"] = true
	}
	accounts := make([]string, 0, len(known))
	for a := range known {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	add := func(kind string, e Error) {
		res.Anomalies[kind] = append(res.Anomalies[kind], e)
	}
	for _, r := range reads {
		line := fmt.Sprintf("read at index %d", r.op.Index)
		if r.total != total {
			add(WrongTotal, Error{Op: *r.op, Total: ptr(r.total), Expected: ptr(total),
				Explanation: fmt.Sprintf("%s sums to %d, not %d", line, r.total, total)})
		}
		var missing, unexpected []string
		for _, a := range accounts {
			if _, ok := r.balances[a]; !ok {
				missing = append(missing, a)
			}
		}
		for _, a := range sortedKeys(r.balances) {
			b := r.balances[a]
			if !known[a] {
				unexpected = append(unexpected, a)
			}
			if b < 0 {
				add(NegativeValue, Error{Op: *r.op, Account: a, Balance: ptr(b),
					Explanation: fmt.Sprintf("%s sees account %s at %d", line, a, b)})
			}
		}
		if len(missing) > 0 {
			add(MissingKey, Error{Op: *r.op, Keys: missing,
				Explanation: fmt.Sprintf("%s lacks accounts %v", line, missing)})
		}
		if len(unexpected) > 0 {
			add(UnexpectedKey, Error{Op: *r.op, Keys: unexpected,
				Explanation: fmt.Sprintf("%s has accounts %v that the bank does not", line, unexpected)})
		}
	}
	for _, kind := range []string{WrongTotal, NegativeValue, UnexpectedKey, MissingKey} {
		if n := len(res.Anomalies[kind]); n > 0 {
			res.AnomalyTypes = append(res.AnomalyTypes, kind)
			res.Stats[kind] = n
		}
	}
	if len(res.AnomalyTypes) == 0 {
		res.Valid = checker.Valid
		res.Summary = fmt.Sprintf("valid: %d reads over %d accounts all total %d", len(reads), len(accounts), total)
	} else {
		res.Valid = checker.Invalid
		first := res.Anomalies[res.AnomalyTypes[0]][0].(Error)
		res.Summary = fmt.Sprintf("invalid: %v; first: %s", res.AnomalyTypes, first.Explanation)
	}
	res.Stats["elapsed"] = time.Since(start).String()
	return res, nil
}

func ptr(n int64) *int64 { return &n }

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// expectedTotal returns the configured total, or else the total most reads
// agree on (the smallest such on a tie), so that one bad read does not make
// every other read look wrong.
func expectedTotal(reads []read, total *int64) (int64, bool) {
	if total != nil {
		return *total, false
	}
	count := make(map[int64]int)
	for _, r := range reads {
		count[r.total]++
	}
	best, bestN := int64(0), 0
	for t, n := range count {
		if n > bestN || (n == bestN && t < best) {
			best, bestN = t, n
		}
	}
	return best, true
}

// balances decodes a read's value: an object of account to balance, or a
// list of [account, balance] pairs.
func balances(v any) (map[string]int64, error) {
	out := make(map[string]int64)
	put := func(k, b any) error {
		a, ok := accountName(k)
		if !ok {
			return fmt.Errorf("account %s is neither a string nor an integer", history.AppendValue(nil, k))
		}
		n, ok := integer(b)
		if !ok {
			return fmt.Errorf("balance %s of account %s is not an integer", history.AppendValue(nil, b), a)
		}
		if _, dup := out[a]; dup {
			return fmt.Errorf("account %s appears twice in one read", a)
		}
		out[a] = n
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		for k, b := range x {
			if err := put(k, b); err != nil {
				return nil, err
			}
		}
	case []any:
		for _, e := range x {
			pair, ok := e.([]any)
			if !ok || len(pair) != 2 {
				return nil, fmt.Errorf("read entry %s is not an [account, balance] pair", history.AppendValue(nil, e))
			}
			if err := put(pair[0], pair[1]); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("read value %s is neither a map of balances nor a list of [account, balance] pairs", history.AppendValue(nil, v))
	}
	return out, nil
}

func accountName(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
	}
	return "", false
}

func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}
