package results

import (
	"bytes"
	"fmt"
	"html/template"
	"sort"
	"strings"
)

// WriteReport writes a minimal report.html: the verdict, each check's
// summary, the parameters, and links to the run's files. It needs no
// network to view.
func (r *Run) WriteReport(t Test, s Summary, files []string) error {
	b, err := RenderReport(t, s, files)
	if err != nil {
		return err
	}
	return WriteFileAtomic(r.Path(ReportFile), b)
}

type reportParam struct{ Key, Value string }

type reportCheck struct {
	Name, Valid, Summary string
	Anomalies            []string
}

// RenderReport renders the page WriteReport writes.
func RenderReport(t Test, s Summary, files []string) ([]byte, error) {
	var params []reportParam
	for k, v := range t.Parameters {
		params = append(params, reportParam{k, fmt.Sprint(v)})
	}
	sort.Slice(params, func(i, j int) bool { return params[i].Key < params[j].Key })
	var checks []reportCheck
	for name, res := range s.Results {
		checks = append(checks, reportCheck{Name: name, Valid: res.Valid.String(), Summary: res.Summary, Anomalies: res.AnomalyTypes})
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].Name < checks[j].Name })
	data := map[string]any{
		"Test":   t,
		"Valid":  s.Valid.String(),
		"Class":  verdictClass(s.Valid.String()),
		"Checks": checks,
		"Notes":  s.Notes,
		"Params": params,
		"Files":  files,
		"Start":  t.Start.UTC().Format("2006-01-02 15:04:05.000 MST"),
	}
	var buf bytes.Buffer
	if err := reportTmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render report: %w", err)
	}
	return buf.Bytes(), nil
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

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{"join": strings.Join}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Test.Name}} {{.Start}}: valid={{.Valid}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}
.valid{color:#176c2e}.invalid{color:#b00020}.unknown{color:#8a6d00}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
</style></head><body>
<h1>{{.Test.Name}}</h1>
<p>Started {{.Start}}, status {{.Test.Status}}, seed {{.Test.Seed}}.</p>
<h2 class="{{.Class}}">valid: {{.Valid}}</h2>
{{range .Notes}}<p>{{.}}</p>{{end}}
{{if .Test.Error}}<p class="invalid">Error: {{.Test.Error}}</p>{{end}}
<table><tr><th>check</th><th>valid</th><th>summary</th><th>anomalies</th></tr>
{{range .Checks}}<tr><td>{{.Name}}</td><td>{{.Valid}}</td><td>{{.Summary}}</td><td>{{join .Anomalies ", "}}</td></tr>
{{end}}</table>
<h2>Parameters</h2>
<table>{{range .Params}}<tr><td>{{.Key}}</td><td>{{.Value}}</td></tr>
{{end}}</table>
<h2>Files</h2>
<ul>{{range .Files}}<li><a href="{{.}}">{{.}}</a></li>
{{end}}</ul>
</body></html>
`))
