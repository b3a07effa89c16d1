package elle

import (
	"fmt"
	"slices"
	"strings"
)

// implies maps each consistency model to the weaker models it implies
// directly. The shape follows the lattice Elle reports in "not" and
// "also-not" (Adya, Cerone and Bailis models plus their session and strong
// (realtime) variants).
var implies = map[string][]string{
	"strong-serializable":               {"strong-session-serializable", "strong-snapshot-isolation"},
	"strong-session-serializable":       {"serializable", "strong-session-snapshot-isolation"},
	"strong-snapshot-isolation":         {"strong-session-snapshot-isolation", "strong-read-committed"},
	"strong-session-snapshot-isolation": {"snapshot-isolation", "strong-session-read-committed"},
	"strong-read-committed":             {"strong-session-read-committed", "strong-read-uncommitted"},
	"strong-session-read-committed":     {"read-committed", "strong-session-read-uncommitted"},
	"strong-read-uncommitted":           {"strong-session-read-uncommitted"},
	"strong-session-read-uncommitted":   {"read-uncommitted"},
	"serializable":                      {"repeatable-read", "snapshot-isolation", "update-serializable"},
	"update-serializable":               {"forward-consistent-view"},
	"snapshot-isolation":                {"forward-consistent-view", "parallel-snapshot-isolation", "prefix", "monotonic-atomic-view"},
	"forward-consistent-view":           {"consistent-view"},
	"consistent-view":                   {"cursor-stability", "monotonic-view"},
	"repeatable-read":                   {"cursor-stability", "monotonic-atomic-view"},
	"cursor-stability":                  {"read-committed"},
	"monotonic-atomic-view":             {"read-committed"},
	"monotonic-view":                    {"read-committed"},
	"monotonic-snapshot-read":           {"read-committed"},
	"parallel-snapshot-isolation":       {"causal-cerone", "update-atomic"},
	"causal-cerone":                     {"read-atomic"},
	"prefix":                            {"read-atomic"},
	"update-atomic":                     {"read-atomic"},
	"read-atomic":                       {"read-committed"},
	"read-committed":                    {"read-uncommitted"},
	"read-uncommitted":                  nil,
}

// modelAliases maps other common names to the lattice's names.
var modelAliases = map[string]string{
	"strict-serializable":    "strong-serializable",
	"strict-serializability": "strong-serializable",
	"serializability":        "serializable",
	"si":                     "snapshot-isolation",
	"strong-session-si":      "strong-session-snapshot-isolation",
	"strong-si":              "strong-snapshot-isolation",
	"session-serializable":   "strong-session-serializable",
	"read-committed-strong":  "strong-read-committed",
	"pl-1":                   "read-uncommitted",
	"pl-2":                   "read-committed",
	"pl-2.99":                "repeatable-read",
	"pl-3":                   "serializable",
	"pl-ss":                  "strong-serializable",
}

// prohibitedBy maps each anomaly this checker can report to the weakest
// models that rule it out; every stronger model rules it out too.
var prohibitedBy = map[string][]string{
	"G0":                                     {"read-uncommitted"},
	"G0-process":                             {"strong-session-read-uncommitted"},
	"G0-realtime":                            {"strong-read-uncommitted"},
	"cyclic-versions":                        {"read-uncommitted"},
	"duplicate-elements":                     {"read-uncommitted"},
	"incompatible-order":                     {"read-uncommitted"},
	"G1a":                                    {"read-committed"},
	"G1b":                                    {"read-committed"},
	"G1c":                                    {"read-committed"},
	"dirty-update":                           {"read-committed"},
	"future-read":                            {"read-committed"},
	"G1c-process":                            {"strong-session-read-committed"},
	"G1c-realtime":                           {"strong-read-committed"},
	"internal":                               {"read-atomic"},
	"lost-update":                            {"cursor-stability", "update-atomic"},
	"G-single-item":                          {"consistent-view", "repeatable-read"},
	"G-single-item-process":                  {"strong-session-snapshot-isolation"},
	"G-single-item-realtime":                 {"strong-snapshot-isolation"},
	"G-nonadjacent-item":                     {"repeatable-read", "snapshot-isolation"},
	"G-nonadjacent-item-process":             {"strong-session-snapshot-isolation"},
	"G-nonadjacent-item-realtime":            {"strong-snapshot-isolation"},
	"G2-item":                                {"repeatable-read"},
	"G2-item-process":                        {"strong-session-serializable"},
	"G2-item-realtime":                       {"strong-serializable"},
	"strong-snapshot-isolation-cycle-exists": {"strong-snapshot-isolation"},
	"strong-session-snapshot-isolation-cycle-exists": {"strong-session-snapshot-isolation"},
}

// unknownTypes are reported like anomalies but make the verdict unknown
// rather than false.
var unknownTypes = map[string]bool{
	"empty-transaction-graph": true,
	"cycle-search-timeout":    true,
}

// anomalyGroups expands the umbrella names Elle accepts in :anomalies.
var anomalyGroups = map[string][]string{
	"G1":            {"G1a", "G1b", "G1c"},
	"G2":            {"G2-item", "G-single-item", "G-nonadjacent-item"},
	"G-single":      {"G-single-item"},
	"G-nonadjacent": {"G-nonadjacent-item"},
	"G1-process":    {"G1c-process"},
	"G1-realtime":   {"G1c-realtime"},
	"G2-process":    {"G2-item-process", "G-single-item-process", "G-nonadjacent-item-process"},
	"G2-realtime":   {"G2-item-realtime", "G-single-item-realtime", "G-nonadjacent-item-realtime"},
}

// canonicalModel resolves a model name or alias.
func canonicalModel(name string) (string, error) {
	n := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(name), ":"))
	if a, ok := modelAliases[n]; ok {
		n = a
	}
	if _, ok := implies[n]; !ok {
		return "", fmt.Errorf("unknown consistency model %q", name)
	}
	return n, nil
}

// weakerOrEqual returns m and every model m implies.
func weakerOrEqual(models []string) map[string]bool {
	out := map[string]bool{}
	var walk func(string)
	walk = func(m string) {
		if out[m] {
			return
		}
		out[m] = true
		for _, w := range implies[m] {
			walk(w)
		}
	}
	for _, m := range models {
		walk(m)
	}
	return out
}

// violatedModels returns the weakest models the anomaly types rule out
// (not) and every other model they rule out (alsoNot), each sorted.
func violatedModels(types []string) (not, alsoNot []string) {
	var roots []string
	for _, t := range types {
		roots = append(roots, prohibitedBy[t]...)
	}
	if len(roots) == 0 {
		return nil, nil
	}
	// A model is violated when it implies (is at least as strong as) a
	// root.
	violated := map[string]bool{}
	for m := range implies {
		w := weakerOrEqual([]string{m})
		for _, r := range roots {
			if w[r] {
				violated[m] = true
				break
			}
		}
	}
	for m := range violated {
		weakest := true
		for _, w := range implies[m] {
			if violated[w] {
				weakest = false
				break
			}
		}
		if weakest {
			not = append(not, m)
		} else {
			alsoNot = append(alsoNot, m)
		}
	}
	slices.Sort(not)
	slices.Sort(alsoNot)
	return not, alsoNot
}

// expandAnomalies resolves umbrella names and rejects unknown ones.
func expandAnomalies(names []string) ([]string, error) {
	var out []string
	for _, a := range names {
		a = strings.TrimPrefix(strings.TrimSpace(a), ":")
		if g, ok := anomalyGroups[a]; ok {
			out = append(out, g...)
			continue
		}
		if _, ok := prohibitedBy[a]; !ok && !unknownTypes[a] {
			return nil, fmt.Errorf("unknown anomaly %q", a)
		}
		out = append(out, a)
	}
	return out, nil
}
