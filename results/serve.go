package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chaoskv/chaos/checker"
)

// RunInfo describes one run of the store for the run list.
type RunInfo struct {
	Name string // the test name
	// Path is the run directory relative to the store, with '/'.
	Path  string
	Start time.Time
	Test  Test
	// Valid is "true", "false" or "unknown" ("" when the run has no
	// results.json yet).
	Valid string
	// Problem says why test.json or results.json could not be read.
	Problem string
}

// ListRuns lists the runs of the store, newest first. It never follows a
// symlink (store/latest is one) and skips entries that are not runs.
func ListRuns(store string) ([]RunInfo, error) {
	root, err := os.OpenRoot(store)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer root.Close()
	return listRuns(root.FS())
}

func listRuns(fsys fs.FS) ([]RunInfo, error) {
	tests, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read store: %w", err)
	}
	var out []RunInfo
	for _, te := range tests {
		if !te.IsDir() || te.Type()&fs.ModeSymlink != 0 || ValidateName(te.Name()) != nil {
			continue
		}
		runs, err := fs.ReadDir(fsys, te.Name())
		if err != nil {
			continue
		}
		for _, re := range runs {
			if !re.IsDir() || re.Type()&fs.ModeSymlink != 0 {
				continue
			}
			base, _, _ := strings.Cut(re.Name(), "-")
			start, err := ParseDirName(base)
			if err != nil {
				continue
			}
			ri := RunInfo{Name: te.Name(), Path: te.Name() + "/" + re.Name(), Start: start}
			if b, err := fs.ReadFile(fsys, ri.Path+"/"+TestFile); err != nil {
				ri.Problem = "no readable test.json"
			} else if err := json.Unmarshal(b, &ri.Test); err != nil {
				ri.Problem = "test.json: " + err.Error()
			}
			if b, err := fs.ReadFile(fsys, ri.Path+"/"+ResultsFile); err == nil {
				// Only the verdict: the anomalies may be large.
				var s struct {
					Valid checker.Validity `json:"valid"`
				}
				if err := json.Unmarshal(b, &s); err != nil {
					ri.Problem = "results.json: " + err.Error()
					ri.Valid = "unknown"
				} else {
					ri.Valid = s.Valid.String()
				}
			}
			out = append(out, ri)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.After(out[j].Start)
		}
		return out[i].Path > out[j].Path
	})
	return out, nil
}

// Server serves a store read-only over HTTP: the run list at /, and each
// run's files under /runs/<test>/<timestamp>/. Every path is resolved
// inside the store through an os.Root, so neither "..", absolute paths
// nor symlinks can reach outside it.
type Server struct {
	root *os.Root
}

// NewServer opens the store for serving.
func NewServer(store string) (*Server, error) {
	st, err := os.Stat(store)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", store, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("store %s is not a directory", store)
	}
	root, err := os.OpenRoot(store)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &Server{root: root}, nil
}

// Close releases the store.
func (s *Server) Close() error { return s.root.Close() }

// runsPrefix is where the store's files are served.
const runsPrefix = "/runs/"

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Pages may style themselves and run their own inline scripts
	// (porcupine's visualization does) but load nothing from anywhere.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case r.URL.Path == "/":
		s.index(w, r)
	case strings.HasPrefix(r.URL.Path, runsPrefix):
		s.file(w, r, strings.TrimPrefix(r.URL.Path, runsPrefix))
	default:
		http.NotFound(w, r)
	}
}

// CleanPath checks a request path relative to the store: '/'-separated,
// not absolute, without empty, ".", ".." or hidden elements, backslashes
// or NUL bytes. A trailing '/' is allowed and dropped. It returns the path
// to open ("." for the store itself).
func CleanPath(p string) (string, error) {
	if p == "" {
		return ".", nil
	}
	if strings.HasPrefix(p, "/") {
		return "", errors.New("absolute path")
	}
	if strings.ContainsAny(p, "\\\x00") {
		return "", errors.New("backslash or NUL in path")
	}
	p = strings.TrimSuffix(p, "/")
	for _, e := range strings.Split(p, "/") {
		switch {
		case e == "":
			return "", errors.New("empty path element")
		case e == "." || e == "..":
			return "", fmt.Errorf("path element %q", e)
		case e[0] == '.':
			return "", fmt.Errorf("hidden file %q", e)
		}
	}
	if !fs.ValidPath(p) {
		return "", errors.New("invalid path")
	}
	return p, nil
}

func (s *Server) file(w http.ResponseWriter, r *http.Request, rel string) {
	name, err := CleanPath(rel)
	if err != nil {
		http.Error(w, "bad path: "+err.Error(), http.StatusBadRequest)
		return
	}
	f, err := s.root.Open(name)
	if err != nil {
		// Missing, or a symlink leading out of the store: both are
		// simply not here.
		slog.Debug("serve", "path", name, "err", err)
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "stat failed", http.StatusInternalServerError)
		return
	}
	if st.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, path.Base(r.URL.Path)+"/", http.StatusMovedPermanently)
			return
		}
		s.listing(w, f, name)
		return
	}
	if !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType(name))
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// contentType serves the run's own pages as HTML and everything else as
// inert text, so a node log can never be run as a page.
func contentType(name string) string {
	inNodes := strings.Contains("/"+name+"/", "/"+NodesDir+"/")
	switch {
	case strings.HasSuffix(name, ".html") && !inNodes:
		return "text/html; charset=utf-8"
	case strings.HasSuffix(name, ".json") && !inNodes:
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

type listEntry struct {
	Name string
	Size string
}

func (s *Server) listing(w http.ResponseWriter, f *os.File, name string) {
	ents, err := f.ReadDir(-1)
	if err != nil {
		http.Error(w, "read directory failed", http.StatusInternalServerError)
		return
	}
	var list []listEntry
	for _, e := range ents {
		n := e.Name()
		if n[0] == '.' {
			continue
		}
		size := ""
		if e.IsDir() {
			n += "/"
		} else if info, err := e.Info(); err == nil {
			size = strconv.FormatInt(info.Size(), 10)
		}
		list = append(list, listEntry{n, size})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	render(w, listingTmpl, map[string]any{"Path": name, "Entries": list})
}

type runRow struct {
	RunInfo
	Class, Verdict, Start                       string
	Workload, Nemesis, Nodes, Replication, Seed string
	HasReport                                   bool
}

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	runs, err := listRuns(s.root.FS())
	if err != nil {
		http.Error(w, "cannot read the store", http.StatusInternalServerError)
		return
	}
	rows := make([]runRow, 0, len(runs))
	for _, ri := range runs {
		v := ri.Valid
		if v == "" {
			v = "—"
		}
		p := ri.Test.Parameters
		row := runRow{RunInfo: ri, Class: verdictClass(ri.Valid), Verdict: v, Start: ri.Start.Format("2006-01-02 15:04:05.000"),
			Workload: display(p["workload"]), Nemesis: display(p["nemesis"]), Nodes: display(p["nodes"]),
			Replication: display(p["replication"]), Seed: strconv.FormatInt(ri.Test.Seed, 10)}
		if st, err := s.root.Stat(ri.Path + "/" + ReportFile); err == nil && st.Mode().IsRegular() {
			row.HasReport = true
		}
		rows = append(rows, row)
	}
	render(w, indexTmpl, map[string]any{"Runs": rows})
}

func render(w http.ResponseWriter, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.Copy(w, &buf)
}

var indexTmpl = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chaos: runs</title>
<style>` + pageStyle + `body{max-width:1200px}tr.valid td.v{background:#e8f5e9}tr.invalid td.v{background:#ffebee}tr.unknown td.v{background:#fff8e1}</style></head><body>
<h1>Runs</h1>
{{if not .Runs}}<p>The store holds no runs yet.</p>{{else}}
<table><tr><th>started (UTC)</th><th>test</th><th>valid</th><th>status</th><th>workload</th><th>nemesis</th><th>nodes</th><th>replication</th><th>seed</th><th>files</th></tr>
{{range .Runs}}<tr class="{{.Class}}"><td>{{.Start}}</td><td>{{if .HasReport}}<a href="runs/{{.Path}}/report.html">{{.Name}}</a>{{else}}{{.Name}}{{end}}</td>
<td class="v {{.Class}}"><b>{{.Verdict}}</b></td><td>{{.Test.Status}}{{with .Problem}} ({{.}}){{end}}</td><td>{{.Workload}}</td><td>{{.Nemesis}}</td><td>{{.Nodes}}</td><td>{{.Replication}}</td><td>{{.Seed}}</td>
<td><a href="runs/{{.Path}}/">files</a></td></tr>
{{end}}</table>{{end}}
</body></html>
`))

var listingTmpl = template.Must(template.New("listing").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Path}}</title><style>` + pageStyle + `</style></head><body>
<p><a href="/">all runs</a></p>
<h1>{{.Path}}</h1>
<table><tr><th>name</th><th>bytes</th></tr>
<tr><td><a href="../">../</a></td><td></td></tr>
{{range .Entries}}<tr><td><a href="{{.Name}}">{{.Name}}</a></td><td class="n">{{.Size}}</td></tr>
{{end}}</table>
</body></html>
`))
