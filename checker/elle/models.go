package elle

import (
	"fmt"
	"slices"
	"strings"
)

// The three tables below transcribe Elle's elle.consistency-model
// namespace (jepsen-io/elle, src/elle/consistency_model.clj: models,
// direct-proscribed-anomalies and implied-anomalies), with Elle's
// canonical model names replaced by the friendly ones Elle prints in
// "not" and "also-not". Deriving everything from them, as Elle does,
// keeps "which anomalies does a model forbid" and "which models does an
// anomaly rule out" consistent with each other and with Elle.

// implies maps each consistency model to the weaker models it implies
// directly: a history that satisfies the key satisfies each value.
var implies = map[string][]string{
	"strong-serializable":               {"serializable", "snapshot-isolation", "strong-snapshot-isolation", "strong-session-serializable"},
	"strong-session-serializable":       {"serializable", "strong-session-snapshot-isolation"},
	"strong-snapshot-isolation":         {"strong-session-snapshot-isolation", "strong-read-committed"},
	"strong-session-snapshot-isolation": {"snapshot-isolation", "strong-session-read-committed"},
	"strong-read-committed":             {"strong-session-read-committed", "strong-read-uncommitted"},
	"strong-session-read-committed":     {"read-committed", "strong-session-read-uncommitted"},
	"strong-read-uncommitted":           {"strong-session-read-uncommitted"},
	"strong-session-read-uncommitted":   {"read-uncommitted"},
	"serializable":                      {"repeatable-read", "snapshot-isolation", "update-serializable", "view-serializable"},
	"update-serializable":               {"forward-consistent-view"},
	"snapshot-isolation":                {"forward-consistent-view", "monotonic-atomic-view", "monotonic-snapshot-read", "parallel-snapshot-isolation", "prefix"},
	"forward-consistent-view":           {"consistent-view"},
	"consistent-view":                   {"cursor-stability", "monotonic-view"},
	"repeatable-read":                   {"cursor-stability", "monotonic-atomic-view"},
	"cursor-stability":                  {"read-committed"},
	"monotonic-atomic-view":             {"read-committed"},
	"monotonic-view":                    {"read-committed"},
	"monotonic-snapshot-read":           {"read-committed"},
	"parallel-snapshot-isolation":       {"causal-cerone", "update-atomic"},
	"prefix":                            {"causal-cerone"},
	"causal-cerone":                     {"read-atomic"},
	"update-atomic":                     {"read-atomic"},
	"read-atomic":                       {"monotonic-atomic-view"},
	"read-committed":                    {"read-uncommitted"},
	"read-uncommitted":                  nil,
	"view-serializable":                 nil,
}

// proscribes maps each model to the anomalies it rules out directly, over
// and above those of the models it implies. Some entries name anomalies
// (G1, G2, G-SI, ...) that this checker never reports itself: they matter
// through impliedBy, which relates the reported ones to them.
var proscribes = map[string][]string{
	"causal-cerone":                     {"internal", "G1a"},
	"cursor-stability":                  {"G1", "G-cursor", "lost-update"},
	"monotonic-view":                    {"G1", "G-monotonic"},
	"monotonic-snapshot-read":           {"G1", "G-MSR"},
	"consistent-view":                   {"G1", "G-single"},
	"forward-consistent-view":           {"G1", "G-SIb"},
	"parallel-snapshot-isolation":       {"internal", "G1a"},
	"serializable":                      {"G1", "G2", "predicate-read-miss", "PL-3-cycle-exists", "internal"},
	"read-committed":                    {"G1", "PL-2-cycle-exists"},
	"read-uncommitted":                  {"G0", "duplicate-elements", "cyclic-versions", "PL-1-cycle-exists"},
	"prefix":                            {"internal", "G1a"},
	"snapshot-isolation":                {"internal", "G1", "G-SI", "G-nonadjacent", "PL-SI-cycle-exists"},
	"read-atomic":                       {"internal", "G1a", "future-read"},
	"repeatable-read":                   {"G1", "G2-item", "PL-2.99-cycle-exists", "lost-update"},
	"update-atomic":                     {"lost-update"},
	"strong-serializable":               {"G1", "G1c-realtime", "G2-realtime", "PL-SS-cycle-exists"},
	"strong-session-read-uncommitted":   {"strong-session-PL-1-cycle-exists", "G0-process"},
	"strong-session-read-committed":     {"strong-session-PL-2-cycle-exists", "G1c-process"},
	"strong-read-uncommitted":           {"strong-PL-1-cycle-exists", "G0-realtime"},
	"strong-read-committed":             {"strong-PL-2-cycle-exists", "G1c-realtime"},
	"strong-session-snapshot-isolation": {"internal", "G1-process", "G-nonadjacent-process", "strong-session-snapshot-isolation-cycle-exists"},
	"strong-snapshot-isolation":         {"internal", "G1-realtime", "G-nonadjacent-realtime", "strong-snapshot-isolation-cycle-exists"},
	"strong-session-serializable":       {"G1-process", "G2-process", "strong-session-serializable-cycle-exists"},
	"update-serializable":               {"G1", "G-update"},
}

// impliedBy maps an anomaly to the anomalies its presence implies: an
// internal G0 cycle is also a G1c, an incompatible order is a dirty
// read (G1a), a lost update is a G2-item, and so on.
var impliedBy = map[string][]string{
	"G0":                          {"G1c", "G0-process"},
	"G0-process":                  {"G1c-process", "G0-realtime"},
	"G0-realtime":                 {"G1c-realtime"},
	"G1a":                         {"G1"},
	"G1b":                         {"G1"},
	"G1c":                         {"G1", "G1c-process"},
	"G1c-process":                 {"G1c-realtime", "G1-process"},
	"G1c-realtime":                {"G1-realtime"},
	"G1":                          {"G1-process"},
	"G1-process":                  {"G1-realtime"},
	"G-single-item":               {"G-single", "G-single-item-process", "G-nonadjacent-item"},
	"G-single-item-process":       {"G-single-process", "G-single-item-realtime", "G-nonadjacent-item-process"},
	"G-single-item-realtime":      {"G-single-realtime", "G-nonadjacent-item-realtime"},
	"G-single":                    {"G-nonadjacent", "GSIb", "G-single-process"},
	"G-single-process":            {"G-nonadjacent-process", "G-single-realtime"},
	"G-single-realtime":           {"G-nonadjacent-realtime"},
	"G-nonadjacent-item":          {"G-nonadjacent", "G2-item", "G-nonadjacent-item-process"},
	"G-nonadjacent-item-process":  {"G-nonadjacent-process", "G2-item-process", "G-nonadjacent-item-realtime"},
	"G-nonadjacent-item-realtime": {"G2-item-realtime", "G-nonadjacent-realtime"},
	"G-nonadjacent":               {"G2", "G-nonadjacent-process"},
	"G-nonadjacent-process":       {"G2-process", "G-nonadjacent-realtime"},
	"G-nonadjacent-realtime":      {"G2-realtime"},
	"G2":                          {"G2-process"},
	"G2-item":                     {"G2", "G2-item-process"},
	"G2-item-process":             {"G2-process", "G2-item-realtime"},
	"G2-item-realtime":            {"G2-realtime"},
	"G2-process":                  {"G2-realtime"},
	"GSIa":                        {"GSI"},
	"GSIb":                        {"GSI"},
	"incompatible-order":          {"G1a"},
	"future-read":                 {"G1c"},
	"dirty-update":                {"G1a"},
	"lost-update":                 {"write-skew", "G2-item"},
	"write-skew":                  {"G2"},
}

// modelAliases maps other common names, Adya's PL names among them, to
// the names above.
var modelAliases = map[string]string{
	"strict-serializable":    "strong-serializable",
	"strict-serializability": "strong-serializable",
	"serializability":        "serializable",
	"conflict-serializable":  "serializable",
	"si":                     "snapshot-isolation",
	"strong-si":              "strong-snapshot-isolation",
	"strong-session-si":      "strong-session-snapshot-isolation",
	"session-serializable":   "strong-session-serializable",
	"read-committed-strong":  "strong-read-committed",
	"pl-1":                   "read-uncommitted",
	"pl-2":                   "read-committed",
	"pl-2+":                  "consistent-view",
	"pl-2l":                  "monotonic-view",
	"pl-cs":                  "cursor-stability",
	"pl-msr":                 "monotonic-snapshot-read",
	"pl-fcv":                 "forward-consistent-view",
	"pl-2.99":                "repeatable-read",
	"pl-si":                  "snapshot-isolation",
	"pl-3":                   "serializable",
	"pl-3u":                  "update-serializable",
	"pl-ss":                  "strong-serializable",
	"strong-session-pl-1":    "strong-session-read-uncommitted",
	"strong-session-pl-2":    "strong-session-read-committed",
	"strong-pl-1":            "strong-read-uncommitted",
	"strong-pl-2":            "strong-read-committed",
}

// unknownTypes are reported like anomalies but make the verdict unknown
// rather than false.
var unknownTypes = map[string]bool{
	"empty-transaction-graph": true,
	"cycle-search-timeout":    true,
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

// closure returns the given names and everything reachable from them
// through next.
func closure(names []string, next func(string) []string) map[string]bool {
	out := map[string]bool{}
	stack := slices.Clone(names)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if out[n] {
			continue
		}
		out[n] = true
		stack = append(stack, next(n)...)
	}
	return out
}

// invert turns a relation into its converse.
func invert(rel map[string][]string) map[string][]string {
	out := map[string][]string{}
	for a, bs := range rel {
		for _, b := range bs {
			out[b] = append(out[b], a)
		}
	}
	return out
}

var (
	impliedByConverse  = invert(impliedBy)
	impliesConverse    = invert(implies)
	proscribesConverse = invert(proscribes)
)

// weakerOrEqual returns the given models and every model they imply.
func weakerOrEqual(models []string) map[string]bool {
	return closure(models, func(m string) []string { return implies[m] })
}

// anomaliesImplying returns the given anomalies and every anomaly whose
// presence implies one of them.
func anomaliesImplying(anomalies []string) map[string]bool {
	return closure(anomalies, func(a string) []string { return impliedByConverse[a] })
}

// prohibited returns every anomaly that the given models rule out: the
// anomalies each implied model proscribes, and every anomaly implying one
// of those.
func prohibited(models []string) map[string]bool {
	var direct []string
	for m := range weakerOrEqual(models) {
		direct = append(direct, proscribes[m]...)
	}
	return anomaliesImplying(direct)
}

// violatedModels returns the weakest models the anomaly types rule out
// (not) and every other model they rule out (alsoNot), each sorted.
func violatedModels(types []string) (not, alsoNot []string) {
	var roots []string
	for a := range closure(types, func(a string) []string { return impliedBy[a] }) {
		roots = append(roots, proscribesConverse[a]...)
	}
	if len(roots) == 0 {
		return nil, nil
	}
	// Every model that implies a violated model is violated too.
	violated := closure(roots, func(m string) []string { return impliesConverse[m] })
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

// knownAnomaly reports whether a names an anomaly the tables mention.
func knownAnomaly(a string) bool {
	if unknownTypes[a] {
		return true
	}
	if _, ok := impliedBy[a]; ok {
		return true
	}
	if _, ok := impliedByConverse[a]; ok {
		return true
	}
	_, ok := proscribesConverse[a]
	return ok
}

// expandAnomalies resolves the extra anomalies a check must flag: each
// named one and every anomaly that implies it (so "G1" brings in G1a, G1b,
// G1c, G0, dirty-update, ...), as Elle's :anomalies option does.
func expandAnomalies(names []string) (map[string]bool, error) {
	var clean []string
	for _, a := range names {
		a = strings.TrimPrefix(strings.TrimSpace(a), ":")
		if !knownAnomaly(a) {
			return nil, fmt.Errorf("unknown anomaly %q", a)
		}
		clean = append(clean, a)
	}
	return anomaliesImplying(clean), nil
}
