package server

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chaoskv/chaos/kvnode/server/wire"
)

// histogram is a fixed-bucket latency histogram in seconds, written in the
// Prometheus text format.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // one per bound, plus +Inf
	sumNS  atomic.Uint64
	n      atomic.Uint64
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(h.bounds, s)
	h.counts[i].Add(1)
	h.sumNS.Add(uint64(d))
	h.n.Add(1)
}

func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, cum)
	}
	cum += h.counts[len(h.bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", name, cum)
	fmt.Fprintf(w, "%s_sum %g\n%s_count %d\n", name, float64(h.sumNS.Load())/1e9, name, h.n.Load())
}

// metrics are the node's counters. Per-group counters are keyed by group.
type metrics struct {
	fsync         *histogram
	frameErrors   atomic.Uint64
	peerDrops     atomic.Uint64
	mu            sync.Mutex
	groups        map[uint32]*groupMetrics
	clientOutcome [int(wire.StatusUnknown) + 1]atomic.Uint64
}

type groupMetrics struct {
	proposals     atomic.Uint64
	commits       atomic.Uint64 // applied results
	leaderChanges atomic.Uint64
	readies       atomic.Uint64
}

func newMetrics() *metrics {
	return &metrics{
		fsync:  newHistogram(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
		groups: map[uint32]*groupMetrics{},
	}
}

func (m *metrics) group(id uint32) *groupMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[id]
	if g == nil {
		g = &groupMetrics{}
		m.groups[id] = g
	}
	return g
}

func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	ids := make([]uint32, 0, len(m.groups))
	for id := range m.groups {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	counter := func(name, help string, get func(*groupMetrics) uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for _, id := range ids {
			fmt.Fprintf(w, "%s{group=\"%d\"} %d\n", name, id, get(m.group(id)))
		}
	}
	counter("kvnode_proposals_total", "Client requests proposed to the core.", func(g *groupMetrics) uint64 { return g.proposals.Load() })
	counter("kvnode_commits_total", "Requests applied by the state machine.", func(g *groupMetrics) uint64 { return g.commits.Load() })
	counter("kvnode_leader_changes_total", "Times the group's known leader changed.", func(g *groupMetrics) uint64 { return g.leaderChanges.Load() })
	counter("kvnode_ready_total", "Ready batches handled (each one persist).", func(g *groupMetrics) uint64 { return g.readies.Load() })
	m.fsync.write(w, "kvnode_fsync_seconds", "Duration of fsync'd storage writes.")
	fmt.Fprintf(w, "# HELP kvnode_frame_errors_total Malformed or oversized frames (each closed a connection).\n# TYPE kvnode_frame_errors_total counter\nkvnode_frame_errors_total %d\n", m.frameErrors.Load())
	fmt.Fprintf(w, "# HELP kvnode_peer_dropped_total Peer messages dropped on full queues.\n# TYPE kvnode_peer_dropped_total counter\nkvnode_peer_dropped_total %d\n", m.peerDrops.Load())
	fmt.Fprintf(w, "# HELP kvnode_client_requests_total Client requests by outcome.\n# TYPE kvnode_client_requests_total counter\n")
	for s := range m.clientOutcome {
		fmt.Fprintf(w, "kvnode_client_requests_total{outcome=%q} %d\n", wire.Status(s).String(), m.clientOutcome[s].Load())
	}
}
