package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/history"
)

// TimelineFile is the per-process timeline page written next to the
// report.
const TimelineFile = "timeline.html"

// ReportInput is everything a report is drawn from.
type ReportInput struct {
	Test    Test
	Summary Summary
	// Ops is the history; nil when there is none (HistoryError says why
	// when it could not be read).
	Ops          []history.Op
	HistoryError string
	// Files are the run directory's entries (directories end in "/"),
	// and NodeFiles the files under nodes/, both relative to the run
	// directory, as the report links them.
	Files     []string
	NodeFiles []string
}

// WriteReport writes the run's report.html and timeline.html, drawn from
// t, s and the history the run directory holds. files are the run
// directory's entries to link.
func (r *Run) WriteReport(t Test, s Summary, files []string) error {
	return writeReport(r.Dir, t, s, files)
}

// Rebuild rewrites the report of the run in dir from its stored test.json,
// results.json (when the run got that far) and history.
func Rebuild(dir string) error {
	t, err := ReadTest(dir)
	if err != nil {
		return err
	}
	s, err := ReadSummary(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if errors.Is(err, fs.ErrNotExist) {
		s = Summary{Valid: checker.Unknown}
		s.Notes = append(s.Notes, "this run has no results.json: it was not checked")
	}
	return writeReport(dir, t, s, dirEntries(dir))
}

func writeReport(dir string, t Test, s Summary, files []string) error {
	in := ReportInput{Test: t, Summary: s, Files: files, NodeFiles: nodeFiles(dir)}
	ops, err := readHistory(dir)
	if err != nil {
		in.HistoryError = err.Error()
	}
	in.Ops = ops
	report, timeline, err := Render(in)
	if err != nil {
		return err
	}
	if timeline != nil {
		if err := WriteFileAtomic(filepath.Join(dir, TimelineFile), timeline); err != nil {
			return err
		}
	}
	return WriteFileAtomic(filepath.Join(dir, ReportFile), report)
}

func readHistory(dir string) ([]history.Op, error) {
	for _, name := range []string{HistoryFile, "history.edn"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		return history.ReadFile(p, "")
	}
	return nil, fmt.Errorf("no %s in %s", HistoryFile, dir)
}

// dirEntries lists a run directory's entries for the report's links.
func dirEntries(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if n == ReportFile || n == TimelineFile || n[0] == '.' {
			continue
		}
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// maxNodeFiles bounds the files listed per node: a node's data directory
// may hold many.
const maxNodeFiles = 40

// nodeFiles lists the files under dir/nodes, logs first.
func nodeFiles(dir string) []string {
	root := filepath.Join(dir, NodesDir)
	nodes, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range nodes {
		if !n.IsDir() {
			continue
		}
		var files []string
		_ = filepath.WalkDir(filepath.Join(root, n.Name()), func(p string, d fs.DirEntry, err error) error {
			if err != nil || len(files) >= maxNodeFiles {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() {
				rel, rerr := filepath.Rel(dir, p)
				if rerr == nil {
					files = append(files, filepath.ToSlash(rel))
				}
			}
			return nil
		})
		sort.SliceStable(files, func(i, j int) bool {
			return isLog(files[i]) && !isLog(files[j])
		})
		out = append(out, files...)
	}
	return out
}

func isLog(p string) bool {
	b := filepath.Base(p)
	return b == "log" || strings.HasSuffix(b, ".log") || strings.HasPrefix(b, "log.") && !strings.HasSuffix(b, ".db")
}

// RenderReport renders a report without a history: the verdict, the
// checks, the parameters and the files.
func RenderReport(t Test, s Summary, files []string) ([]byte, error) {
	b, _, err := Render(ReportInput{Test: t, Summary: s, Files: files})
	return b, err
}

type kv struct{ Key, Value string }

// countRow is one line of the operations table; Invoked is the sum of
// the outcomes.
type countRow struct {
	F string
	OpCounts
}

// countRows counts the workload's calls per f, then all of them, then the
// final reads apart.
func (a *analysis) countRows() []countRow {
	byF := map[string]*OpCounts{}
	var total, final OpCounts
	for i := range a.calls {
		c := &a.calls[i]
		if c.final {
			final.add(c)
			continue
		}
		m := byF[c.f]
		if m == nil {
			m = &OpCounts{}
			byF[c.f] = m
		}
		m.add(c)
		total.add(c)
	}
	var rows []countRow
	for _, f := range a.fs {
		if m := byF[f]; m != nil {
			rows = append(rows, countRow{f, *m})
		}
	}
	rows = append(rows, countRow{"workload", total})
	if final.Invoked > 0 {
		rows = append(rows, countRow{"final reads", final})
	}
	return rows
}

// WorkloadEndStat is the results.json stat holding when the workload
// phase ended, in history nanoseconds: client ops invoked later are the
// final reads.
const WorkloadEndStat = "workload-end-ns"

// intStat reads an integer stat, 0 when absent.
func intStat(s Values, k string) int64 {
	switch v := s[k].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

func floatParam(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case int:
		return float64(x)
	}
	return 0
}

type checkView struct {
	Name, Valid, Class, Summary string
	Types                       []string
	Not                         []string
	Linear                      []linearView
	Anomalies                   []anomalyView
	Other                       []kv
	Files                       []string
	Stats                       []kv
}

type linearView struct {
	Key, Explanation, File, Op string
}

// Render returns the report page and, when there is a history, the
// timeline page. Every string that comes from the run is escaped.
func Render(in ReportInput) (report, timeline []byte, err error) {
	t, s := in.Test, in.Summary
	valid := s.Valid.String()
	data := map[string]any{
		"Test":         t,
		"Valid":        valid,
		"Verdict":      map[string]string{"true": "VALID", "false": "INVALID"}[valid],
		"Class":        verdictClass(valid),
		"Notes":        s.Notes,
		"Files":        in.Files,
		"NodeFiles":    in.NodeFiles,
		"Start":        startOf(t),
		"HistoryError": in.HistoryError,
	}
	if data["Verdict"] == "" {
		data["Verdict"] = "UNKNOWN"
	}
	var params []kv
	for k, v := range t.Parameters {
		params = append(params, kv{k, display(v)})
	}
	sort.Slice(params, func(i, j int) bool { return params[i].Key < params[j].Key })
	data["Params"] = params

	p := t.Parameters
	dur := ""
	if t.End != nil {
		dur = t.End.Sub(t.Start).Round(time.Millisecond).String()
	}
	headline := []kv{
		{"workload", display(p["workload"])},
		{"nemeses", orNone(display(p["nemesis"]))},
		{"nodes", display(p["nodes"])},
		{"replication", display(p["replication"])},
		{"seed", seedOf(t)},
		{"duration", dur},
		{"status", t.Status},
	}
	if tm := t.Timings; tm != nil {
		headline = append(headline, kv{"phases", fmt.Sprintf("setup %.1fs, first op at %.1fs, teardown %.1fs", tm.Setup, tm.FirstOp, tm.Teardown)})
	}
	data["Headline"] = headline

	var checks []checkView
	anomalyID := 0
	for name, res := range s.Results {
		cv := checkView{Name: name, Valid: res.Valid.String(), Class: verdictClass(res.Valid.String()), Summary: res.Summary,
			Types: res.AnomalyTypes, Not: res.Not, Files: res.Files}
		for k, v := range res.Stats {
			cv.Stats = append(cv.Stats, kv{k, display(v)})
		}
		sort.Slice(cv.Stats, func(i, j int) bool { return cv.Stats[i].Key < cv.Stats[j].Key })
		types := make([]string, 0, len(res.Anomalies))
		for typ := range res.Anomalies {
			types = append(types, typ)
		}
		sort.Strings(types)
		for _, typ := range types {
			for _, x := range res.Anomalies[typ] {
				if typ == "nonlinearizable" {
					if lv, ok := viewLinear(x); ok {
						cv.Linear = append(cv.Linear, lv)
						continue
					}
				}
				if a, ok := decodeAnomaly(x); ok {
					anomalyID++
					v := viewAnomaly(typ, a, anomalyID)
					if anomalyID > maxCycleDiagrams {
						// Every anomaly is listed with its explanation and
						// cycle steps; only the drawings are bounded.
						v.SVG = ""
					}
					cv.Anomalies = append(cv.Anomalies, v)
					continue
				}
				cv.Other = append(cv.Other, kv{typ, short(x, 4000)})
			}
		}
		checks = append(checks, cv)
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].Name < checks[j].Name })
	data["Checks"] = checks

	if in.Ops != nil {
		a := analyze(in.Ops)
		a.markFinal(intStat(s.Stats, WorkloadEndStat))
		data["HasHistory"] = true
		data["Ops"] = a.ops
		data["PairWarning"] = a.pairWarning
		data["Counts"] = a.countRows()
		if t.End == nil {
			// The harness writes the report before it records the end.
			headline[5].Value = secs(a.span) + " (history)"
		}
		av := a.availability()
		if from, to := a.workloadRange(); to > from {
			span := float64(to-from) / 1e9
			tp := fmt.Sprintf("%.1f ok ops/s, %.1f invocations/s over %.1fs", float64(av.OK)/span, float64(av.Invoked)/span, span)
			if rate := floatParam(p["rate"]); rate > 0 {
				tp += fmt.Sprintf(" (--rate %g)", rate)
			}
			data["Throughput"] = tp
		}
		data["LatencyPlots"] = a.latencyPlots()
		data["Quantiles"] = a.quantilePlot()
		data["ThroughputPlot"] = a.throughputPlot()
		data["Availability"] = availabilityView(av)
		data["AvailabilityPlot"] = a.availabilityPlot(av)
		data["NemesisTimeline"] = a.nemesisTimeline()
		ev := a.nemesis
		if len(ev) > maxNemesisRows {
			data["NemesisMore"] = len(ev) - maxNemesisRows
			ev = ev[:maxNemesisRows]
		}
		data["Nemesis"] = ev
		var tb bytes.Buffer
		if err := renderTimeline(&tb, in.Test, a, in.Ops); err != nil {
			return nil, nil, err
		}
		timeline = tb.Bytes()
		data["Timeline"] = TimelineFile
	}

	var buf bytes.Buffer
	if err := reportTmpl.Execute(&buf, data); err != nil {
		return nil, nil, fmt.Errorf("render report: %w", err)
	}
	return buf.Bytes(), timeline, nil
}

// maxCycleDiagrams bounds the cycle drawings on one page, so a history
// with thousands of anomalies still opens quickly.
const maxCycleDiagrams = 200

// maxNemesisRows bounds the nemesis table; the timeline plot shows all.
const maxNemesisRows = 500

// startOf and seedOf show a run's start and seed, or "unknown" for a
// history reported without its test.json (no start recorded).
func startOf(t Test) string {
	if t.Start.IsZero() {
		return "unknown"
	}
	return t.Start.UTC().Format("2006-01-02 15:04:05.000 MST")
}

func seedOf(t Test) string {
	if t.Start.IsZero() {
		return "unknown"
	}
	return fmt.Sprint(t.Seed)
}

func viewLinear(x any) (linearView, bool) {
	var v struct {
		Key         any          `json:"key"`
		Explanation string       `json:"explanation"`
		File        string       `json:"file"`
		Op          []history.Op `json:"op"`
	}
	if !roundTrip(x, &v) {
		return linearView{}, false
	}
	lv := linearView{Key: short(v.Key, 200), Explanation: v.Explanation, File: v.File}
	if lv.Key == "" {
		lv.Key = "(none)"
	}
	for _, op := range v.Op {
		lv.Op += fmt.Sprintf("%s %s %s %s; ", op.Process, op.Type, op.F, short(op.Value, 200))
	}
	lv.Op = strings.TrimSuffix(lv.Op, "; ")
	return lv, true
}

// roundTrip decodes x's JSON form into v. Numbers stay json.Number, so
// an int64 key prints the same whether it comes from the checker or from
// results.json.
func roundTrip(x, v any) bool {
	b, err := json.Marshal(x)
	if err != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v) == nil
}

// display renders a parameter or stat value for a person.
func display(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []string:
		return strings.Join(x, ", ")
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = display(e)
		}
		return strings.Join(parts, ", ")
	case int, int64:
		return fmt.Sprint(x)
	case float64:
		// 'f' keeps a whole number whole: a seed or count decoded as a
		// float64 by another reader must still paste back as an integer.
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return short(v, 500)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func verdictClass(v string) string {
	switch v {
	case "true":
		return "valid"
	case "false":
		return "invalid"
	}
	return "unknown"
}

// pageStyle is shared by the report and the timeline.
const pageStyle = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1000px;color:#222;padding:0 1em}
h1{margin:.2em 0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.valid{color:#1b5e20}.invalid{color:#b71c1c}.unknown{color:#8a6d00}
.verdict{font-size:2.6em;font-weight:800;padding:.25em .6em;border-radius:8px;display:inline-block;margin:.2em 0;color:#fff}
.verdict.valid{background:#2e7d32}.verdict.invalid{background:#c62828}.verdict.unknown{background:#b28704}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.headline td:first-child{color:#555}
.anomaly{border:1px solid #ddd;border-left:4px solid #c62828;padding:.4em .8em;margin:.8em 0;background:#fffafa}
.anomaly ol{font-size:.92em}
code,pre{font-family:ui-monospace,monospace;font-size:.9em}td code{word-break:break-all}pre{white-space:pre-wrap;word-break:break-all}
svg{display:block;max-width:100%;height:auto;margin:.5em 0;background:#fff}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:.3em .8em}
.ok{color:#2e7d32}.fail{color:#c62828}.info{color:#b28704}
`

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{"join": strings.Join, "secs": secs}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Test.Name}} {{.Start}}: valid={{.Valid}}</title>
<style>` + pageStyle + `</style></head><body>
<h1>{{.Test.Name}}</h1>
<div id="verdict" class="verdict {{.Class}}">{{.Verdict}}</div>
<p><b class="{{.Class}}">valid: {{.Valid}}</b> &middot; started {{.Start}}</p>
<table class="headline">{{range .Headline}}<tr><td>{{.Key}}</td><td>{{.Value}}</td></tr>{{end}}
{{if .HasHistory}}<tr><td>history</td><td>{{.Ops}} ops</td></tr>{{end}}
{{with .Throughput}}<tr><td>throughput</td><td>{{.}}</td></tr>{{end}}</table>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
{{if .Test.Error}}<p class="note invalid">Error: {{.Test.Error}}</p>{{end}}
{{if .HistoryError}}<p class="note">History not shown: {{.HistoryError}}</p>{{end}}
{{if .PairWarning}}<p class="note">{{.PairWarning}}</p>{{end}}
{{if .Counts}}<h2>Operations</h2>
<table><tr><th>f</th><th>invoked</th><th class="ok">ok</th><th class="ok">expected fail</th><th class="fail">fail</th><th class="info">info</th></tr>
{{range .Counts}}<tr><td>{{.F}}</td><td class="n">{{.Invoked}}</td><td class="n">{{.OK}}</td><td class="n">{{.ExpectedFail}}</td><td class="n">{{.Fail}}</td><td class="n">{{.Info}}</td></tr>
{{end}}</table>
<p>invoked = ok + expected fail + fail + info (an op never completed counts as info); an expected fail is a definite fail that is the op's normal answer, such as a cas mismatch. Final reads, after the faults were healed, are counted apart.</p>{{end}}
<h2>Checks</h2>
<table><tr><th>check</th><th>valid</th><th>summary</th><th>anomalies</th><th>not</th></tr>
{{range .Checks}}<tr><td>{{.Name}}</td><td class="{{.Class}}">{{.Valid}}</td><td>{{.Summary}}</td><td>{{join .Types ", "}}</td><td>{{join .Not ", "}}</td></tr>
{{end}}</table>
{{range .Checks}}{{$check := .}}
{{if .Linear}}<h2>Linearizability failures ({{.Name}})</h2>
<table><tr><th>key</th><th>explanation</th><th>visualization</th></tr>
{{range .Linear}}<tr><td><code>{{.Key}}</code></td><td>{{.Explanation}}{{with .Op}}<br><code>{{.}}</code>{{end}}</td><td>{{if .File}}<a href="{{.File}}">{{.File}}</a>{{else}}none written{{end}}</td></tr>
{{end}}</table>{{end}}
{{if .Anomalies}}<h2>Transactional anomalies ({{.Name}}: {{len .Anomalies}})</h2>
{{range .Anomalies}}<div class="anomaly"><h3 class="invalid">{{.Type}}</h3>
<p>{{.Explanation}}</p>
{{range .Details}}<p><code>{{.}}</code></p>{{end}}
{{if .Txns}}<p>Transactions:</p><ol style="list-style:none;padding-left:.5em">{{range .Txns}}<li><code>{{.}}</code></li>{{end}}</ol>{{end}}
{{if .Steps}}<p>Cycle:</p><ol style="list-style:none;padding-left:.5em">{{range .Steps}}<li>{{.}}</li>{{end}}</ol>{{end}}
{{.SVG}}</div>
{{end}}{{end}}
{{if .Other}}<h2>Other anomalies ({{.Name}})</h2>
{{range .Other}}<div class="anomaly"><b>{{.Key}}</b><pre>{{.Value}}</pre></div>{{end}}{{end}}
{{if .Files}}<p>Artifacts of {{.Name}}: {{range .Files}}<a href="{{.}}">{{.}}</a> {{end}}</p>{{end}}
{{if .Stats}}<details><summary>{{.Name}} statistics</summary><table>{{range .Stats}}<tr><td>{{.Key}}</td><td>{{.Value}}</td></tr>{{end}}</table></details>{{end}}
{{end}}
{{if .HasHistory}}<h2>Latency</h2>
{{range .LatencyPlots}}{{.}}{{end}}
{{.Quantiles}}
<h2>Throughput</h2>
{{.ThroughputPlot}}
<h2>Faults</h2>
{{if .NemesisTimeline}}{{.NemesisTimeline}}{{else}}<p>No faults were injected.</p>{{end}}
<h3>Availability</h3>
{{with .Availability}}<p>Answered = (ok + expected fail) / invoked, by the second each operation was invoked; seconds with no invocation are left blank. {{.Summary}}</p>
{{$.AvailabilityPlot}}
<table><tr><th>window</th><th>from</th><th>to</th><th>invoked</th><th>ok</th><th>expected fail</th><th>fail</th><th>info</th><th>answered</th><th>longest with no ok</th></tr>
{{range .Rows}}<tr><td>{{.Label}}</td><td>{{.From}}</td><td>{{.To}}</td><td class="n">{{.Invoked}}</td><td class="n">{{.OK}}</td><td class="n">{{.ExpectedFail}}</td><td class="n">{{.Fail}}</td><td class="n">{{.Info}}</td><td class="n">{{.Percent}}</td><td class="n">{{.Stall}}</td></tr>
{{end}}</table>
{{if .Groups}}<h3>Availability by serving group</h3>
<table><tr><th>group</th><th>invoked</th><th>ok</th><th>expected fail</th><th>fail</th><th>info</th><th>answered</th><th>longest with no ok</th></tr>
{{range .Groups}}<tr><td>{{.Label}}</td><td class="n">{{.Invoked}}</td><td class="n">{{.OK}}</td><td class="n">{{.ExpectedFail}}</td><td class="n">{{.Fail}}</td><td class="n">{{.Info}}</td><td class="n">{{.Percent}}</td><td class="n">{{.Stall}}</td></tr>
{{end}}</table>{{end}}{{end}}
{{if .Nemesis}}<details><summary>Nemesis operations ({{len .Nemesis}}{{with .NemesisMore}} shown, {{.}} more in the history{{end}})</summary>
<table><tr><th>time</th><th>f</th><th>value</th><th>error</th></tr>
{{range .Nemesis}}<tr><td>{{secs .Time}}</td><td>{{.F}}</td><td><code>{{.Value}}</code></td><td>{{.Err}}</td></tr>
{{end}}</table></details>{{end}}
<h2>Timeline</h2>
<p><a href="{{.Timeline}}">Per-process timeline of operations</a></p>
{{end}}
{{if .NodeFiles}}<h2>Node logs</h2>
<ul>{{range .NodeFiles}}<li><a href="{{.}}">{{.}}</a></li>
{{end}}</ul>{{end}}
<h2>Parameters</h2>
<table>{{range .Params}}<tr><td>{{.Key}}</td><td>{{.Value}}</td></tr>
{{end}}</table>
<p>Versions: go {{.Test.Versions.Go}}{{with .Test.Versions.Revision}}, revision {{.}}{{end}}{{if .Test.Versions.Modified}} (modified){{end}}{{with .Test.Versions.Kvnode}}, kvnode {{.}}{{end}}</p>
<h2>Files</h2>
<ul>{{range .Files}}<li><a href="{{.}}">{{.}}</a></li>
{{end}}</ul>
</body></html>
`))
