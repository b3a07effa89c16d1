// Command toykv is the stand-in database the Docker backend's tests run to
// show that the backend drives a store other than kvnode. Each node keeps
// its own keys (the adapter places a key on one node by hash, with no
// replication), in memory and in a file it fsyncs before it answers a
// write, so it survives kill -9. It answers on :8080:
//
//	GET  /healthz
//	GET  /kv?key=k                   the value, or 404
//	PUT  /kv?key=k&value=v
//	POST /cas?key=k&old=o&new=n      "true" or "false"
//	POST /clock-offset?offset=1s     the offset its clock reads carry
//	GET  /status                     {"name": ..., "clock_offset": ns}
//
// It refuses to start without its name in TOYKV_NAME and a cluster file
// naming it, so a test sees that the adapter's environment and config file
// reach the node.
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

type store struct {
	mu     sync.Mutex
	path   string
	kv     map[string]string
	offset time.Duration
}

func main() {
	if len(os.Args) != 4 || os.Args[1] != "serve" || os.Args[2] != "--data" {
		fmt.Fprintln(os.Stderr, "usage: toykv serve --data DIR")
		os.Exit(254)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	name := os.Getenv("TOYKV_NAME")
	var nodes []string
	b, err := os.ReadFile("/cluster.json")
	if err == nil {
		err = json.Unmarshal(b, &nodes)
	}
	if err != nil || !slices.Contains(nodes, name) {
		fmt.Fprintf(os.Stderr, "toykv: node %q is not in the cluster file %v (%v)\n", name, nodes, err)
		os.Exit(254)
	}
	s := &store{path: filepath.Join(os.Args[3], "state.json"), kv: map[string]string{}}
	if b, err := os.ReadFile(s.path); err == nil {
		if err := json.Unmarshal(b, &s.kv); err != nil {
			fmt.Fprintf(os.Stderr, "toykv: %s: %v\n", s.path, err)
			os.Exit(255)
		}
	}
	slog.Info("toykv up", "name", name, "keys", len(s.kv))
	http.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	http.HandleFunc("GET /kv", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		v, ok := s.kv[r.FormValue("key")]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, v)
	})
	http.HandleFunc("PUT /kv", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.kv[r.FormValue("key")] = r.FormValue("value")
		s.save(w)
	})
	http.HandleFunc("POST /cas", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := r.FormValue("key")
		if v, ok := s.kv[k]; !ok || v != r.FormValue("old") {
			fmt.Fprint(w, "false")
			return
		}
		s.kv[k] = r.FormValue("new")
		if s.save(w) {
			fmt.Fprint(w, "true")
		}
	})
	http.HandleFunc("POST /clock-offset", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.FormValue("offset"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.offset = d
		s.mu.Unlock()
		slog.Info("clock offset set", "offset", d)
	})
	http.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "clock_offset": s.offset, "keys": len(s.kv)})
	})
	slog.Error("toykv stopped", "err", http.ListenAndServe(":8080", nil))
	os.Exit(255)
}

// save writes the whole map durably (write, fsync, rename, fsync the
// directory) before the write is acknowledged; it reports failure to the
// client as a 500. s.mu must be held.
func (s *store) save(w http.ResponseWriter) bool {
	err := func() error {
		b, err := json.Marshal(s.kv)
		if err != nil {
			return err
		}
		tmp := s.path + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp, s.path); err != nil {
			return err
		}
		d, err := os.Open(filepath.Dir(s.path))
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return false
	}
	return true
}
