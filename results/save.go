package results

import (
	"fmt"

	"github.com/chaoskv/chaos/history"
)

// Save stores a run whose history was complete before anything was
// written (a simulated run, which needs no crash-safe streaming): it
// creates the run's directory under root, writes test.json, history.jsonl
// and results.json, draws report.html and timeline.html with the same
// code as every other run, and points latest at it. t.Name names the test
// and t.Start the directory.
func Save(root string, t Test, ops []history.Op, s Summary) (*Run, error) {
	run, err := Create(root, t.Name, t.Start)
	if err != nil {
		return nil, err
	}
	if err := run.WriteJSON(TestFile, t); err != nil {
		return nil, err
	}
	f, err := run.CreateHistory()
	if err != nil {
		return nil, err
	}
	w := history.NewWriter(f)
	for i := range ops {
		if err := w.Write(&ops[i]); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close history: %w", err)
	}
	if err := run.WriteJSON(ResultsFile, s); err != nil {
		return nil, err
	}
	if err := run.WriteReport(t, s, dirEntries(run.Dir)); err != nil {
		return nil, err
	}
	if err := run.MarkLatest(); err != nil {
		return nil, err
	}
	return run, nil
}
