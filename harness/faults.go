package harness

import (
	"sort"
	"strings"
	"sync"

	"github.com/chaoskv/chaos/history"
)

// recordNemesis is the nemesis's recorder: it writes the op to the history
// and follows which faults are in effect, for the status line.
func (r *runner) recordNemesis(op history.Op) {
	r.rec.emit(op)
	if op.Type != history.Invoke && op.Error == "" {
		r.active.apply(op.F)
	}
}

// activeFaults follows the nemesis's completed ops: start-X/stop-X, and
// kill/start and pause/resume pairs.
type activeFaults struct {
	mu sync.Mutex
	on map[string]bool
}

func (a *activeFaults) apply(f string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.on == nil {
		a.on = map[string]bool{}
	}
	switch {
	case f == "kill", f == "pause":
		a.on[f] = true
	case f == "start":
		delete(a.on, "kill")
	case f == "resume":
		delete(a.on, "pause")
	case strings.HasPrefix(f, "start-"):
		a.on[strings.TrimPrefix(f, "start-")] = true
	case strings.HasPrefix(f, "stop-"):
		delete(a.on, strings.TrimPrefix(f, "stop-"))
	}
}

func (a *activeFaults) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.on))
	for f := range a.on {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
