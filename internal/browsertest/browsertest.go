// Package browsertest opens pages in headless Chromium for tests and
// collects what the page logged to its console, so a report that throws or
// logs an error fails its test.
package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// Chromium finds a headless browser, or skips the test when there is none
// (CI must have one: .ci/run installs it).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH, and CI=true: the report's browser test must run in CI (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH: skipping the browser test of the report (apt-get install chromium)")
	return ""
}

// consoleLine matches what headless Chromium logs for a page's console
// messages and uncaught errors with --enable-logging=stderr --v=1 (at
// --v=0 this build logs none of them).
var consoleLine = regexp.MustCompile(`(?m)^.*(:CONSOLE[:(]|Uncaught ).*$`)

// Browse runs headless Chromium on page with args and returns stdout and
// the console messages it logged.
func Browse(t testing.TB, bin, page string, args ...string) (string, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=1",
		"--user-data-dir=" + t.TempDir(), "--no-first-run", "--disable-extensions"}, args...)
	all = append(all, "file://"+page)
	cmd := exec.CommandContext(ctx, bin, all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", page, err, errb.String())
	}
	return out.String(), consoleLine.FindAllString(errb.String(), -1)
}
