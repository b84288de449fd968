package main

import (
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeSample copies the sample route table into a temp dir as a .go file
// (it is stored as .txt so the tool's own package does not compile it).
func writeSample(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "sample", "handlers.go.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "handlers.go"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadRoutesTakesOnlyRoutesFunc(t *testing.T) {
	routes, err := readRoutes(writeSample(t))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range routes {
		keys = append(keys, r.Key)
	}
	want := []string{"GET /health/live", "GET /api/v1/files/{}", "DELETE /api/v1/files/{}", "PUT /api/v1/extra"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	if !strings.HasSuffix(routes[1].Pos, "handlers.go:13:17") || routes[1].Raw != "GET /api/v1/files/{id}" {
		t.Fatalf("position/raw of the raw-string pattern: %+v", routes[1])
	}
}

func TestRouteDiffReportsBothDirections(t *testing.T) {
	routes, err := readRoutes(writeSample(t))
	if err != nil {
		t.Fatal(err)
	}
	documented := []string{"GET /health/live", "GET /api/v1/files/{}", "DELETE /api/v1/files/{}", "GET /metrics"}
	diffs := routeDiff(routes, documented)
	if len(diffs) != 2 ||
		!strings.HasPrefix(diffs[0], "documented but not in routes(): GET /metrics") ||
		!strings.HasPrefix(diffs[1], `served but not documented: "PUT /api/v1/extra"`) {
		t.Fatalf("diffs %q", diffs)
	}
	equal := append(slices.Clone(documented[:3]), "PUT /api/v1/extra")
	if d := routeDiff(routes, equal); len(d) != 0 {
		t.Fatalf("equal sets gave diffs %q", d)
	}
}

func TestRouteDiffReportsDuplicates(t *testing.T) {
	served := []sourceRoute{{Key: "GET /a", Raw: "GET /a", Pos: "x:1"}, {Key: "GET /a", Raw: "GET /a", Pos: "x:2"}}
	diffs := routeDiff(served, []string{"GET /a"})
	if len(diffs) != 1 || !strings.HasPrefix(diffs[0], "served twice") {
		t.Fatalf("diffs %q", diffs)
	}
}

func TestReadRoutesFailsWithoutRoutesFunc(t *testing.T) {
	dir := t.TempDir()
	src := "package main\n\nfunc register() { _ = \"GET /a\" }\n"
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readRoutes(dir); err == nil || !strings.Contains(err.Error(), "no function routes()") {
		t.Fatalf("err %v", err)
	}
	empty := "package main\n\nfunc routes() { _ = \"/\" }\n"
	if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(empty), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readRoutes(dir); err == nil || !strings.Contains(err.Error(), "registers no") {
		t.Fatalf("err %v", err)
	}
}

func TestNormalizePath(t *testing.T) {
	cases := map[string]string{
		"/api/v1/files/{file_id}/download": "/api/v1/files/{}/download",
		"/files/{path...}":                 "/files/{}",
		"/plain":                           "/plain",
	}
	for in, want := range cases {
		if got := normalizePath(in); got != want {
			t.Errorf("normalizePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAllowAndSameSet(t *testing.T) {
	got := parseAllow("GET, head,PATCH ,")
	if !slices.Equal(got, []string{"GET", "HEAD", "PATCH"}) {
		t.Fatalf("parseAllow: %q", got)
	}
	if !sameSet(got, []string{"PATCH", "GET", "HEAD"}) {
		t.Fatal("same methods in another order must be the same set")
	}
	if sameSet([]string{"GET", "GET"}, []string{"GET"}) {
		t.Fatal("a duplicated method must not pass")
	}
	if sameSet([]string{"GET"}, []string{"GET", "HEAD"}) {
		t.Fatal("a missing method must not pass")
	}
}

// FuzzRoutesInSource: any input either fails to parse or yields patterns
// that all match the route grammar; it never panics.
func FuzzRoutesInSource(f *testing.F) {
	f.Add([]byte("package main\nfunc routes() { m.HandleFunc(\"GET /a/{b}\", nil) }\n"))
	f.Add([]byte("package main\nfunc (s *x) routes() { _ = `POST /x`; _ = \"/\" }\n"))
	f.Add([]byte("package main\nfunc routes()\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		routes, _, err := routesInSource(token.NewFileSet(), "f.go", src)
		if err != nil {
			return
		}
		for _, r := range routes {
			method, _, _ := strings.Cut(r.Raw, " ")
			if !routePattern.MatchString(r.Raw) || !strings.HasPrefix(r.Key, method+" /") {
				t.Fatalf("bad route %+v", r)
			}
		}
	})
}

// FuzzParseAllow: every method parsed is trimmed, non-empty and upper case.
func FuzzParseAllow(f *testing.F) {
	f.Add("GET, HEAD")
	f.Add(",,get ,")
	f.Fuzz(func(t *testing.T, h string) {
		for _, m := range parseAllow(h) {
			if m == "" || m != strings.TrimSpace(m) || m != strings.ToUpper(m) {
				t.Fatalf("method %q from %q", m, h)
			}
		}
	})
}

func TestMethodsAtUnionsOverlappingTemplates(t *testing.T) {
	ops := []operation{
		{Method: "POST", Path: "/api/v1/files/upload"},
		{Method: "GET", Path: "/api/v1/files/{file_id}"},
		{Method: "DELETE", Path: "/api/v1/files/{file_id}"},
		{Method: "GET", Path: "/api/v1/files/{file_id}/download"},
		{Method: "GET", Path: "/api/v1/files"},
	}
	cases := map[string][]string{
		"/api/v1/files/upload":     {"POST", "GET", "DELETE"},
		"/api/v1/files/x":          {"GET", "DELETE"},
		"/api/v1/files/x/download": {"GET"},
		"/api/v1/files/":           nil,
		"/api/v1/files":            {"GET"},
	}
	for path, want := range cases {
		if got := methodsAt(ops, path); !slices.Equal(got, want) {
			t.Errorf("methodsAt(%q) = %q, want %q", path, got, want)
		}
	}
}
