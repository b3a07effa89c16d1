package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
)

// GroupStatus is one local replica's entry in /status.
type GroupStatus struct {
	Group replica.GroupID `json:"group"`
	replica.Status
}

// NodeStatus is the body of /status.
type NodeStatus struct {
	ID       replica.NodeID `json:"id"`
	Name     string         `json:"name"`
	Protocol string         `json:"protocol"`
	Time     time.Time      `json:"time"` // the node's (possibly skewed) wall clock
	// ClockOffset is the shift applied to Time, in nanoseconds.
	ClockOffset time.Duration `json:"clock_offset"`
	Groups      []GroupStatus `json:"groups"`
}

// adminHandler serves /healthz, /status, /metrics (Prometheus text format),
// /debug/pprof/, and POST /clock-offset?offset=D, which shifts the node's
// wall clock by the Go duration D (clock-skew faults; 0 sets it back).
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		st := NodeStatus{ID: n.opts.ID, Name: n.self.Name, Protocol: n.opts.Protocol.Name, Time: Now(), ClockOffset: ClockOffset()}
		for id, s := range n.Status() {
			st.Groups = append(st.Groups, GroupStatus{Group: id, Status: s})
		}
		sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].Group < st.Groups[j].Group })
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
	mux.HandleFunc("POST /clock-offset", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.FormValue("offset"))
		if err != nil || d > MaxClockOffset || d < -MaxClockOffset {
			http.Error(w, fmt.Sprintf("offset: want a Go duration within ±%v, got %q", MaxClockOffset, r.FormValue("offset")), http.StatusBadRequest)
			return
		}
		SetClockOffset(d)
		n.log.Info("clock offset set", "offset", d)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, d)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		n.metrics.write(w)
	})
	// Profiles, for finding where time goes under load.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
