package results

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chaoskv/chaos/history"
)

// configSpan is the time one replica group spent in one configuration,
// as the membership nemesis's completed changes tell it: from the change
// that made it (or the history's start, for the configuration the first
// change left) to the next change (or the history's end).
type configSpan struct {
	group      string // "" when the history names no group (one group)
	start, end int64
	members    []string
}

// lane names the span's lane in the nemesis timeline.
func (s configSpan) lane() string {
	if s.group == "" {
		return "members"
	}
	return "members g" + s.group
}

// memberChange follows the configurations through one completed
// nemesis op: a "membership" op that did not fail and records the
// configuration before ("from") and after ("to"). A failed change leaves
// the spans alone: whether it took effect is unknown, and the next
// change's "from" says what the group was in.
func (a *analysis) memberChange(op *history.Op, open map[string]int) {
	if op.F != "membership" || op.Error != "" {
		return
	}
	m, ok := op.Value.(map[string]any)
	if !ok {
		return
	}
	from, okFrom := nodeList(m["from"])
	to, okTo := nodeList(m["to"])
	if !okFrom || !okTo {
		return
	}
	group := ""
	if g, ok := m["group"]; ok {
		group = fmt.Sprint(g)
	}
	if i, ok := open[group]; ok {
		a.configs[i].end = op.Time
	} else {
		a.configs = append(a.configs, configSpan{group: group, start: 0, end: op.Time, members: from})
	}
	open[group] = len(a.configs)
	a.configs = append(a.configs, configSpan{group: group, start: op.Time, end: -1, members: to})
}

// nodeList reads a history value that lists node names.
func nodeList(v any) ([]string, bool) {
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, true
}

// describe says what s was, for a tooltip.
func (s configSpan) describe() string {
	return fmt.Sprintf("%s %s–%s: %s", s.lane(), secs(s.start), secs(s.end), strings.Join(s.members, " "))
}
