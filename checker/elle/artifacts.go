package elle

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DOT renders a cycle anomaly as a Graphviz digraph: one node per
// transaction, one edge per step labelled with its kind and key. It
// returns "" for anomalies without a cycle.
func (a *Anomaly) DOT() string {
	if len(a.Steps) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n  node [shape=box, fontname=monospace];\n", a.Type)
	for i, t := range a.Txns {
		fmt.Fprintf(&b, "  t%d [label=%q];\n", i, fmt.Sprintf("T%d\nop %d, process %d\n%s", i+1, t.Index, t.Process, mopsText(t.Value)))
	}
	for _, s := range a.Steps {
		label := s.Type
		if s.Key != nil {
			label = fmt.Sprintf("%s on %v", s.Type, s.Key)
		}
		style := ""
		if s.Type == "rw" {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  t%d -> t%d [label=%q%s];\n", s.From, s.To, label, style)
	}
	b.WriteString("}\n")
	return b.String()
}

func mopsText(v any) string {
	l, ok := v.([]any)
	if !ok {
		return fmt.Sprint(v)
	}
	var parts []string
	for _, m := range l {
		if mo, ok := m.([]any); ok && len(mo) == 3 {
			val := mo[2]
			if lv, ok := val.([]any); ok {
				val = fmtList(lv)
			}
			parts = append(parts, fmt.Sprintf("%v %v %v", mo[0], mo[1], val))
		}
	}
	return strings.Join(parts, "\n")
}

// writeArtifacts writes one Graphviz file per reported cycle into dir and
// returns their names relative to dir.
func writeArtifacts(dir string, anomalies map[string][]any) ([]string, error) {
	var files []string
	for typ, insts := range anomalies {
		for i, x := range insts {
			a, ok := x.(*Anomaly)
			if !ok {
				continue
			}
			dot := a.DOT()
			if dot == "" {
				continue
			}
			if len(files) == 0 {
				if err := os.MkdirAll(filepath.Join(dir, "elle"), 0o755); err != nil {
					return nil, fmt.Errorf("elle: artifacts: %w", err)
				}
			}
			name := filepath.Join("elle", fmt.Sprintf("%s-%d.dot", typ, i))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(dot), 0o644); err != nil {
				return nil, fmt.Errorf("elle: artifacts: %w", err)
			}
			files = append(files, name)
		}
	}
	return files, nil
}
