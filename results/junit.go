package results

import (
	"encoding/xml"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/chaoskv/chaos/checker"
)

// JUnitRun is one test run for a JUnit report.
type JUnitRun struct {
	// Name is the test's name; Dir the run directory (or the checked
	// history's path).
	Name, Dir string
	Summary   Summary
	Duration  time.Duration
	// Err is an internal error that stopped the run before a verdict.
	Err error
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// maxJUnitExplanations bounds the explanations a failure carries; the
// report has them all.
const maxJUnitExplanations = 10

// JUnit renders runs as JUnit XML: one suite per run, one test case per
// checker (and one for the run itself). An invalid check is a failure
// carrying the anomaly summary, an unknown one an error, as is a run that
// stopped with an internal error.
func JUnit(runs []JUnitRun) ([]byte, error) {
	out := junitSuites{Name: "chaos"}
	var total time.Duration
	for i, r := range runs {
		suite := junitSuite{Name: fmt.Sprintf("%s #%d", r.Name, i+1), Time: fmtSecs(r.Duration)}
		if base, _, _ := strings.Cut(filepath.Base(r.Dir), "-"); base != "" {
			if ts, err := ParseDirName(base); err == nil {
				suite.Timestamp = ts.Format("2006-01-02T15:04:05")
			}
		}
		class := "chaos." + r.Name
		runCase := junitCase{Name: "run " + filepath.Base(r.Dir), Classname: class, Time: fmtSecs(r.Duration), SystemOut: "results: " + r.Dir}
		switch {
		case r.Err != nil:
			runCase.Error = &junitProblem{Message: cut(r.Err.Error(), 500), Type: "internal", Text: r.Err.Error()}
		case r.Summary.Valid == checker.Invalid:
			runCase.Failure = &junitProblem{Message: "invalid", Type: "invalid", Text: strings.Join(r.Summary.Notes, "\n")}
		case r.Summary.Valid == checker.Unknown:
			runCase.Error = &junitProblem{Message: "unknown: the checkers could not decide", Type: "unknown", Text: strings.Join(r.Summary.Notes, "\n")}
		}
		suite.Cases = append(suite.Cases, runCase)
		names := make([]string, 0, len(r.Summary.Results))
		for n := range r.Summary.Results {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			res := r.Summary.Results[n]
			c := junitCase{Name: "check " + n, Classname: class, Time: "0"}
			switch res.Valid {
			case checker.Invalid:
				c.Failure = &junitProblem{Message: cut(res.Summary, 500), Type: strings.Join(res.AnomalyTypes, ","), Text: anomalySummary(res)}
			case checker.Unknown:
				c.Error = &junitProblem{Message: cut("unknown: "+res.Summary, 500), Type: "unknown", Text: res.Summary}
			}
			suite.Cases = append(suite.Cases, c)
		}
		for _, c := range suite.Cases {
			suite.Tests++
			if c.Failure != nil {
				suite.Failures++
			}
			if c.Error != nil {
				suite.Errors++
			}
		}
		out.Tests += suite.Tests
		out.Failures += suite.Failures
		out.Errors += suite.Errors
		total += r.Duration
		out.Suites = append(out.Suites, suite)
	}
	out.Time = fmtSecs(total)
	b, err := xml.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode junit: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

// WriteJUnit writes JUnit(runs) to path atomically.
func WriteJUnit(path string, runs []JUnitRun) error {
	b, err := JUnit(runs)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// anomalySummary lists anomaly types with counts, the models violated,
// and the first explanations.
func anomalySummary(res checker.Result) string {
	var b strings.Builder
	types := make([]string, 0, len(res.Anomalies))
	for t := range res.Anomalies {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		fmt.Fprintf(&b, "%s: %d\n", t, len(res.Anomalies[t]))
	}
	if len(res.Not) > 0 {
		fmt.Fprintf(&b, "not: %s\n", strings.Join(res.Not, ", "))
	}
	n := 0
	for _, t := range types {
		for _, x := range res.Anomalies[t] {
			if n == maxJUnitExplanations {
				fmt.Fprintf(&b, "... (see report.html for the rest)\n")
				return b.String()
			}
			var e struct {
				Explanation string `json:"explanation"`
			}
			if roundTrip(x, &e) && e.Explanation != "" {
				fmt.Fprintf(&b, "- %s: %s\n", t, e.Explanation)
				n++
			}
		}
	}
	return b.String()
}

func fmtSecs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
