package results

import (
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/internal/browsertest"
)

// artifactDir is where screenshots are kept for a person to look at.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHAOS_TEST_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "report-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReportInChromium(t *testing.T) {
	bin := browsertest.Chromium(t)
	root := t.TempDir()
	runs := fixtures(t, root)
	shots := artifactDir(t)

	// The detector must see a console error when there is one.
	control := filepath.Join(t.TempDir(), "control.html")
	os.WriteFile(control, []byte(`<!doctype html><p>x</p><script>console.error("control-error-42")</script>`), 0o644)
	if _, console := browsertest.Browse(t, bin, control, "--dump-dom"); !strings.Contains(strings.Join(console, "\n"), "control-error-42") {
		t.Fatalf("the console check is blind: chromium logged no console line for a page that logs an error (got %q)", console)
	}

	cases := []struct{ run, verdict string }{{"valid", "VALID"}, {"linear", "INVALID"}, {"G1c", "INVALID"}, {"G-single", "INVALID"}}
	if testing.Short() {
		cases = cases[1:3]
	}
	for _, tc := range cases {
		page := runs[tc.run].Path(ReportFile)
		dom, console := browsertest.Browse(t, bin, page, "--dump-dom")
		if len(console) > 0 {
			t.Errorf("%s: console messages: %q", tc.run, console)
		}
		want := fmt.Sprintf(`id="verdict" class="verdict %s">%s</div>`, verdictClass(map[string]string{"VALID": "true"}[tc.verdict]), tc.verdict)
		if tc.verdict == "INVALID" {
			want = `id="verdict" class="verdict invalid">INVALID</div>`
		}
		if !strings.Contains(dom, want) {
			t.Errorf("%s: the DOM lacks the verdict %q", tc.run, want)
		}
		if strings.Contains(dom, "<script>alert") {
			t.Errorf("%s: a key became a script element", tc.run)
		}
		shot := filepath.Join(shots, tc.run+".png")
		if _, console := browsertest.Browse(t, bin, page, "--hide-scrollbars", "--window-size=1100,2400", "--screenshot="+shot); len(console) > 0 {
			t.Errorf("%s: console messages while taking the screenshot: %q", tc.run, console)
		}
		checkVerdictPixels(t, shot, tc.verdict)
		t.Logf("screenshot of the %s report: %s", tc.run, shot)
	}

	// A sharded run with reconfigurations: every nemesis kind in the
	// nemesis timeline, the plots' shading and the per-process timeline.
	rc := reconfigRun(t, root)
	dom, console := browsertest.Browse(t, bin, rc.Path(ReportFile), "--dump-dom")
	if len(console) > 0 {
		t.Errorf("reconfig report: console messages: %q", console)
	}
	for _, want := range []string{`class="nemesis-window" data-fault="reconfig"`, `class="nemesis-window" data-fault="clock-bump"`,
		`class="fault-shade" data-fault="reconfig"`, "availability per second", "Availability by serving group"} {
		if !strings.Contains(dom, want) {
			t.Errorf("reconfig report: the DOM lacks %q", want)
		}
	}
	shot := filepath.Join(shots, "reconfig.png")
	if _, console := browsertest.Browse(t, bin, rc.Path(ReportFile), "--hide-scrollbars", "--window-size=1100,5200", "--screenshot="+shot); len(console) > 0 {
		t.Errorf("reconfig report: console messages while taking the screenshot: %q", console)
	}
	checkVerdictPixels(t, shot, "VALID")
	t.Logf("screenshot of the reconfig report: %s", shot)
	dom, console = browsertest.Browse(t, bin, rc.Path(TimelineFile), "--dump-dom")
	if len(console) > 0 {
		t.Errorf("reconfig timeline: console messages: %q", console)
	}
	if !strings.Contains(dom, `class="fault-shade" data-fault="reconfig"`) || !strings.Contains(dom, "reconfig 1.00s–1.20s: join config=2 group=3") {
		t.Error("reconfig timeline: the DOM lacks the reconfig bands")
	}
	shot = filepath.Join(shots, "reconfig-timeline.png")
	if _, console := browsertest.Browse(t, bin, rc.Path(TimelineFile), "--hide-scrollbars", "--window-size=900,1600", "--screenshot="+shot); len(console) > 0 {
		t.Errorf("reconfig timeline: console messages while taking the screenshot: %q", console)
	}
	t.Logf("screenshot of the reconfig timeline: %s", shot)

	tl := runs["valid"].Path(TimelineFile)
	dom, console = browsertest.Browse(t, bin, tl, "--dump-dom")
	if len(console) > 0 {
		t.Errorf("timeline: console messages: %q", console)
	}
	if !strings.Contains(dom, "worker 0") {
		t.Error("timeline: the DOM lacks the worker lanes")
	}
	if !testing.Short() {
		shot := filepath.Join(shots, "timeline.png")
		browsertest.Browse(t, bin, tl, "--hide-scrollbars", "--window-size=900,1600", "--screenshot="+shot)
		t.Logf("screenshot of the timeline: %s", shot)
	}
}

// checkVerdictPixels checks that the screenshot shows the verdict banner:
// a block of its colour near the top of the page.
func checkVerdictPixels(t *testing.T, path, verdict string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	want := [3]uint32{0xc6, 0x28, 0x28} // the invalid banner
	if verdict == "VALID" {
		want = [3]uint32{0x2e, 0x7d, 0x32}
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < min(b.Max.Y, 250); y++ {
		for x := b.Min.X; x < min(b.Max.X, 600); x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if d(r>>8, want[0]) < 8 && d(g>>8, want[1]) < 8 && d(bl>>8, want[2]) < 8 {
				n++
			}
		}
	}
	if n < 2000 {
		t.Errorf("%s: only %d pixels of the %s banner's colour near the top: the verdict is not visible", path, n, verdict)
	}
}

func d(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
