package results

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// servedStore builds the fixture store plus the ways out of it a request
// might try: a file outside the store and symlinks to it.
func servedStore(t *testing.T) (root string, runs map[string]*Run, srv *httptest.Server) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "store")
	runs = fixtures(t, root)
	outside := filepath.Join(base, "outside")
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("TOP-SECRET"), 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "register-partition", "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(runs["valid"].Dir, "secret-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../outside/secret", filepath.Join(runs["valid"].Dir, "relative-link")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(runs["valid"].Dir, ".hidden"), []byte("TOP-SECRET"), 0o644)
	h, err := NewServer(root)
	if err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return root, runs, srv
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func rel(t *testing.T, root string, r *Run) string {
	t.Helper()
	p, err := filepath.Rel(root, r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(p)
}

func TestServeListsRunsNewestFirst(t *testing.T) {
	root, runs, srv := servedStore(t)
	// A run whose parameters hold markup, written last but started first.
	r, err := Create(root, "odd", time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	r.WriteJSON(TestFile, Test{Name: "odd", Status: StatusRunning, Parameters: map[string]any{"workload": evilKey}})

	code, hdr, body := get(t, srv.URL+"/")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", code, hdr.Get("Content-Type"))
	}
	order := []string{rel(t, root, runs["G-single"]), rel(t, root, runs["G1c"]), rel(t, root, runs["linear"]), rel(t, root, runs["valid"]), rel(t, root, r)}
	last := -1
	for _, p := range order {
		i := strings.Index(body, `href="runs/`+p+`/"`)
		if i < 0 {
			t.Fatalf("the run list lacks %s", p)
		}
		if i < last {
			t.Errorf("run %s is listed out of order (want newest first)", p)
		}
		last = i
	}
	if strings.Count(body, `<tr class="invalid">`) != 3 || strings.Count(body, `<tr class="valid">`) != 1 || strings.Count(body, `<tr class="unknown">`) != 1 {
		t.Errorf("rows are not coloured by verdict (3 invalid, 1 valid, 1 unchecked)")
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Error("a parameter's markup is not escaped in the run list")
	}
	if strings.Contains(body, "evil") {
		t.Error("the run list shows a symlinked directory")
	}

	runs2, err := ListRuns(root)
	if err != nil || len(runs2) != 5 || runs2[0].Path != order[0] || runs2[4].Valid != "" {
		t.Fatalf("ListRuns = %+v, %v", runs2, err)
	}
}

func TestServeFiles(t *testing.T) {
	root, runs, srv := servedStore(t)
	lin := srv.URL + "/runs/" + rel(t, root, runs["linear"])
	code, hdr, body := get(t, lin+"/report.html")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("report: %d %v", code, hdr)
	}
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the served report does not escape the <script> key")
	}
	if !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Error("no content security policy")
	}
	if code, _, _ := get(t, lin+"/linearizability-1.html"); code != 200 {
		t.Errorf("porcupine's visualization: %d", code)
	}
	code, hdr, body = get(t, lin+"/nodes/n1/log")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") || !strings.Contains(body, "started") {
		t.Errorf("node log: %d %s", code, hdr.Get("Content-Type"))
	}
	if code, hdr, _ := get(t, lin); code != http.StatusMovedPermanently || !strings.HasSuffix(hdr.Get("Location"), "/") {
		t.Errorf("a directory without its slash: %d %q", code, hdr.Get("Location"))
	}
	code, _, body = get(t, lin+"/")
	if code != 200 || !strings.Contains(body, `href="report.html"`) || !strings.Contains(body, `href="nodes/"`) || strings.Contains(body, ".tmp") {
		t.Errorf("run directory listing: %d\n%s", code, body)
	}
	if code, _, body := get(t, srv.URL+"/runs/latest/report.html"); code != 200 || !strings.Contains(body, "list-append") {
		t.Errorf("store/latest: %d", code)
	}
	resp, err := http.Post(lin+"/report.html", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
}

func TestServeRejectsEscapes(t *testing.T) {
	root, runs, srv := servedStore(t)
	valid := "/runs/" + rel(t, root, runs["valid"])
	for _, p := range []string{
		"/runs/../../outside/secret",
		"/runs/../outside/secret",
		"/runs/%2e%2e/outside/secret",
		"/runs/%2E%2E/%2e%2e/outside/secret",
		"/runs/..%2foutside%2fsecret",
		"/runs/register-partition/%2e%2e/%2e%2e/outside/secret",
		"/runs//" + strings.TrimPrefix(filepath.Join(filepath.Dir(root), "outside", "secret"), "/"),
		"/runs/" + filepath.Join(filepath.Dir(root), "outside", "secret"),
		"/runs/%2f" + strings.TrimPrefix(filepath.Join(filepath.Dir(root), "outside", "secret"), "/"),
		"/runs/register-partition/evil/secret",
		"/runs/register-partition/evil/",
		valid + "/secret-link",
		valid + "/relative-link",
		valid + "/.hidden",
		valid + "/..%5c..%5c..%5coutside%5csecret",
		valid + "/%00",
	} {
		code, _, body := get(t, srv.URL+p)
		if code != http.StatusBadRequest && code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 400 or 404", p, code)
		}
		t.Logf("GET %s: %d", p, code)
		if strings.Contains(body, "TOP-SECRET") {
			t.Errorf("GET %s leaked a file outside the store", p)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", ".", true},
		{"a/b/report.html", "a/b/report.html", true},
		{"a/b/", "a/b", true},
		{"latest/report.html", "latest/report.html", true},
		{"../x", "", false},
		{"a/../../x", "", false},
		{"a/./b", "", false},
		{"/etc/passwd", "", false},
		{"a//b", "", false},
		{`a\..\b`, "", false},
		{"a/.hidden", "", false},
		{"a\x00b", "", false},
	} {
		got, err := CleanPath(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"", "a/b", "../x", "a/../b", "/abs", "a//b", ".x", "a/b/", "%2e%2e", "a\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := CleanPath(p)
		if err != nil {
			return
		}
		if !fs.ValidPath(got) || strings.HasPrefix(got, "/") || strings.Contains(got, "\\") {
			t.Fatalf("CleanPath(%q) = %q: not a plain relative path", p, got)
		}
		for _, e := range strings.Split(got, "/") {
			if e == ".." || (got != "." && strings.HasPrefix(e, ".")) {
				t.Fatalf("CleanPath(%q) = %q: has element %q", p, got, e)
			}
		}
	})
}
