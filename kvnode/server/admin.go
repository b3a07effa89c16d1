package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"strings"
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
// /debug/pprof/, POST /clock-offset?offset=D, which shifts the node's
// wall clock by the Go duration D (clock-skew faults; 0 sets it back), and
// POST /membership?group=G&members=1,2,4, which proposes a group's next
// configuration at its leader (421 from any other replica, 409 while a
// change is in progress or when the protocol has none; GET /status shows
// when it took effect).
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
	mux.HandleFunc("POST /membership", func(w http.ResponseWriter, r *http.Request) {
		gid, members, err := parseMembership(r.FormValue("group"), r.FormValue("members"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := n.ChangeMembers(r.Context(), gid, members); err != nil {
			code := http.StatusConflict
			if errors.Is(err, replica.ErrNotLeader) {
				code = http.StatusMisdirectedRequest
			}
			http.Error(w, err.Error(), code)
			return
		}
		n.log.Info("membership change proposed", "group", gid, "members", members)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "proposed")
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

// parseMembership parses the group and comma-separated member IDs of a
// membership change.
func parseMembership(group, members string) (replica.GroupID, []replica.NodeID, error) {
	g, err := strconv.ParseUint(group, 10, 32)
	if err != nil || g == 0 {
		return 0, nil, fmt.Errorf("group: want a non-zero group ID, got %q", group)
	}
	var ids []replica.NodeID
	for _, f := range strings.Split(members, ",") {
		id, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return 0, nil, fmt.Errorf("members: want comma-separated node IDs, got %q", members)
		}
		ids = append(ids, replica.NodeID(id))
	}
	if err := replica.ValidateMembers(ids, 64); err != nil {
		return 0, nil, err
	}
	return replica.GroupID(g), ids, nil
}
