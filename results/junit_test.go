package results

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chaoskv/chaos/checker"
	"github.com/chaoskv/chaos/checker/linear"
)

func TestJUnit(t *testing.T) {
	invalid := checker.Result{Valid: checker.Invalid, Summary: "not linearizable: key <x>", AnomalyTypes: []string{"nonlinearizable"},
		Anomalies: map[string][]any{"nonlinearizable": {linear.Violation{Key: "<x>", Explanation: "read -> 3 & cannot be linearized"}}}, Not: []string{"linearizable"}}
	runs := []JUnitRun{
		{Name: "reg", Dir: "store/reg/20261124T100000.000", Duration: 2 * time.Second,
			Summary: Summary{Valid: checker.Valid, Results: map[string]checker.Result{"linear": {Valid: checker.Valid}}}},
		{Name: "reg", Dir: "store/reg/20261124T100001.000", Duration: time.Second,
			Summary: Summary{Valid: checker.Invalid, Results: map[string]checker.Result{"linear": invalid}}},
		{Name: "reg", Dir: "store/reg/20261124T100002.000",
			Summary: Summary{Valid: checker.Unknown, Results: map[string]checker.Result{"linear": {Valid: checker.Unknown, Summary: "timed out"}}}},
		{Name: "reg", Dir: "store/reg/20261124T100003.000", Err: errors.New("cluster did not become healthy")},
	}
	b, err := JUnit(runs)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Suites   []struct {
			Timestamp string `xml:"timestamp,attr"`
			Cases     []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
				Error *struct {
					Type string `xml:"type,attr"`
				} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b)
	}
	// Run cases: ok, failure, error, error; check cases: ok, failure, error.
	if doc.Tests != 7 || doc.Failures != 2 || doc.Errors != 3 || len(doc.Suites) != 4 {
		t.Fatalf("tests %d failures %d errors %d suites %d\n%s", doc.Tests, doc.Failures, doc.Errors, len(doc.Suites), b)
	}
	if doc.Suites[0].Timestamp != "2026-11-24T10:00:00" {
		t.Errorf("timestamp %q", doc.Suites[0].Timestamp)
	}
	f := doc.Suites[1].Cases[1].Failure
	if f == nil || f.Message != "not linearizable: key <x>" || !strings.Contains(f.Text, "nonlinearizable: 1") ||
		!strings.Contains(f.Text, "read -> 3 & cannot be linearized") || !strings.Contains(f.Text, "not: linearizable") {
		t.Errorf("the failure does not carry the anomaly summary: %+v", f)
	}
	if e := doc.Suites[3].Cases[0].Error; e == nil || e.Type != "internal" {
		t.Errorf("an internal error is not a JUnit error: %+v", doc.Suites[3].Cases[0])
	}
	if strings.Contains(string(b), "<x>") {
		t.Error("markup from a result is not escaped in the XML")
	}
}
