package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func withMode(m seMode) func(*testEnvOptions) { return func(o *testEnvOptions) { o.mode = m } }

// TestModeOperationMatrix checks every row of CONTRACT §2 through HTTP: each operation
// in each mode either succeeds or answers 409 MODE_NOT_ALLOWED.
func TestModeOperationMatrix(t *testing.T) {
	type opCase struct {
		name    string
		allowed map[seMode]bool
		run     func(e *testEnv, id string) *http.Response
		okCode  int
	}
	ops := []opCase{
		{"upload", map[seMode]bool{modeEdit: true, modeRW: true}, func(e *testEnv, _ string) *http.Response {
			return e.uploadParts(uploadPart{name: "file", filename: "u.txt", data: []byte("u")})
		}, 201},
		{"download", map[seMode]bool{modeEdit: true, modeRW: true, modeRO: true}, func(e *testEnv, id string) *http.Response {
			return e.download(id, nil)
		}, 200},
		{"update", map[seMode]bool{modeEdit: true, modeRW: true}, func(e *testEnv, id string) *http.Response {
			return e.do("PATCH", "/api/v1/files/"+id, strings.NewReader(`{"description":"d"}`), nil)
		}, 200},
		{"delete", map[seMode]bool{modeEdit: true}, func(e *testEnv, id string) *http.Response {
			return e.do("DELETE", "/api/v1/files/"+id, nil, nil)
		}, 204},
		{"list", map[seMode]bool{modeEdit: true, modeRW: true, modeRO: true, modeAR: true}, func(e *testEnv, _ string) *http.Response {
			return e.do("GET", "/api/v1/files", nil, nil)
		}, 200},
		{"metadata", map[seMode]bool{modeEdit: true, modeRW: true, modeRO: true, modeAR: true}, func(e *testEnv, id string) *http.Response {
			return e.do("GET", "/api/v1/files/"+id, nil, nil)
		}, 200},
	}
	// reach each mode the way production does: seed edit or rw, transition rw → ro → ar.
	path := map[seMode][]string{modeEdit: nil, modeRW: nil, modeRO: {"ro"}, modeAR: {"ro", "ar"}}
	for _, mode := range []seMode{modeEdit, modeRW, modeRO, modeAR} {
		for _, op := range ops {
			t.Run(string(mode)+"/"+op.name, func(t *testing.T) {
				seed := modeRW
				if mode == modeEdit {
					seed = modeEdit
				}
				e := newTestEnv(t, withMode(seed))
				id := e.upload("f.txt", []byte("content")).FileID
				for _, target := range path[mode] {
					if resp := e.transition(target, false); resp.StatusCode != 200 {
						t.Fatalf("transition to %s: %d %s", target, resp.StatusCode, readBody(t, resp))
					}
				}
				resp := op.run(e, id)
				if op.allowed[mode] {
					body := readBody(t, resp)
					if resp.StatusCode != op.okCode {
						t.Fatalf("%s in %s: status %d, want %d: %s", op.name, mode, resp.StatusCode, op.okCode, body)
					}
					return
				}
				expectError(t, resp, http.StatusConflict, "MODE_NOT_ALLOWED")
			})
		}
	}
}

// TestModeTransitionMatrix covers every (from, to, confirm) combination of CONTRACT §2,
// the response body, mode.json and /api/v1/info.
func TestModeTransitionMatrix(t *testing.T) {
	targets := []string{"edit", "rw", "ro", "ar", "bogus", ""}
	for _, from := range []seMode{modeEdit, modeRW, modeRO, modeAR} {
		for _, to := range targets {
			for _, confirm := range []bool{false, true} {
				name := fmt.Sprintf("%s->%s/confirm=%v", from, to, confirm)
				t.Run(name, func(t *testing.T) {
					e := newTestEnv(t, withMode(from))
					resp := e.transition(to, confirm)
					want := expectedTransition(from, to, confirm)
					if want != "" {
						expectError(t, resp, statusOfCode(want), want)
						assertMode(t, e, from)
						return
					}
					got := decodeJSON[map[string]string](t, resp, http.StatusOK)
					if got["previous_mode"] != string(from) || got["current_mode"] != to {
						t.Fatalf("body %v", got)
					}
					if _, err := time.Parse(time.RFC3339Nano, got["transitioned_at"]); err != nil {
						t.Fatalf("transitioned_at %q: %v", got["transitioned_at"], err)
					}
					assertMode(t, e, seMode(to))
				})
			}
		}
	}
}

// expectedTransition is the contract's matrix written out independently of mode.go.
func expectedTransition(from seMode, to string, confirm bool) string {
	switch to {
	case "rw", "ro", "ar":
	case "edit":
		return "INVALID_TRANSITION"
	default:
		return "VALIDATION_ERROR"
	}
	switch {
	case from == "rw" && to == "ro", from == "ro" && to == "ar":
		return ""
	case from == "ro" && to == "rw":
		if confirm {
			return ""
		}
		return "CONFIRMATION_REQUIRED"
	}
	return "INVALID_TRANSITION"
}

func statusOfCode(code string) int {
	if code == "VALIDATION_ERROR" {
		return 400
	}
	return 409
}

// assertMode checks the mode in /api/v1/info and in mode.json on disk.
func assertMode(t *testing.T, e *testEnv, want seMode) {
	t.Helper()
	info := decodeJSON[storageInfo](t, e.do("GET", "/api/v1/info", nil, http.Header{"Authorization": nil}), 200)
	if info.Mode != want {
		t.Fatalf("info mode %s, want %s", info.Mode, want)
	}
	doc, err := readModeFile(e.opts.dataDir)
	if err != nil || doc.Mode != want {
		t.Fatalf("mode.json %v %v, want %s", doc, err, want)
	}
}

func TestModePersistsAcrossRestartAndOverridesSeed(t *testing.T) {
	e := newTestEnv(t, withMode(modeRW))
	if resp := e.transition("ro", false); resp.StatusCode != 200 {
		t.Fatalf("transition: %d", resp.StatusCode)
	}
	e.opts.mode = modeEdit // a different SE_MODE at restart: mode.json wins
	e.restart()
	assertMode(t, e, modeRO)
}

func TestUploadDownloadRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	big := make([]byte, 10<<20)
	rand.Read(big)
	for _, content := range [][]byte{{}, {0x7f}, big} {
		t.Run(fmt.Sprintf("%d bytes", len(content)), func(t *testing.T) {
			before := time.Now().UTC()
			resp := e.uploadParts(
				uploadPart{name: "description", data: []byte("quarterly report")},
				uploadPart{name: "file", filename: "report.bin", contentType: "application/x-test", data: content},
				uploadPart{name: "tags", data: []byte(`["logo","v2"]`)},
			)
			if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/api/v1/files/") {
				t.Fatalf("Location %q", loc)
			}
			meta := decodeJSON[FileMetadata](t, resp, 201)
			sum := sha256.Sum256(content)
			if meta.Checksum != hex.EncodeToString(sum[:]) || meta.Size != int64(len(content)) {
				t.Fatalf("checksum/size %s %d", meta.Checksum, meta.Size)
			}
			if _, err := parseFileID(meta.FileID); err != nil {
				t.Fatalf("file_id %q", meta.FileID)
			}
			if meta.OriginalFilename != "report.bin" || meta.ContentType != "application/x-test" || meta.UploadedBy != "tester" ||
				meta.Status != "active" || *meta.Description != "quarterly report" || strings.Join(meta.Tags, ",") != "logo,v2" {
				t.Fatalf("metadata fields %+v", meta)
			}
			if meta.UploadedAt.Before(before) || meta.UploadedAt.After(time.Now().UTC()) || meta.UploadedAt.Location() != time.UTC {
				t.Fatalf("uploaded_at %v", meta.UploadedAt)
			}
			got := e.download(meta.FileID, nil)
			body := readBody(t, got)
			if got.StatusCode != 200 || !bytes.Equal(body, content) {
				t.Fatalf("download status %d, %d bytes, equal=%v", got.StatusCode, len(body), bytes.Equal(body, content))
			}
			h := got.Header
			if h.Get("Content-Type") != "application/x-test" || h.Get("Content-Length") != fmt.Sprint(len(content)) ||
				h.Get("ETag") != `"`+meta.Checksum+`"` || h.Get("Accept-Ranges") != "bytes" ||
				h.Get("Content-Disposition") != `attachment; filename="report.bin"` || h.Get("Last-Modified") == "" {
				t.Fatalf("download headers %v", h)
			}
			again := decodeJSON[FileMetadata](t, e.do("GET", "/api/v1/files/"+meta.FileID, nil, nil), 200)
			a, _ := json.Marshal(again)
			b, _ := json.Marshal(meta)
			if !bytes.Equal(a, b) {
				t.Fatalf("metadata GET differs from upload response:\n%s\n%s", a, b)
			}
		})
	}
}

func TestRetentionFollowsMode(t *testing.T) {
	edit := newTestEnv(t, withMode(modeEdit)).upload("a", []byte("x"))
	if edit.RetentionPolicy != "temporary" || edit.TTLDays == nil || *edit.TTLDays != 30 || edit.ExpiresAt == nil ||
		!edit.ExpiresAt.Equal(edit.UploadedAt.Add(30*24*time.Hour)) {
		t.Fatalf("edit retention %+v", edit)
	}
	e := newTestEnv(t, withMode(modeRW))
	resp := e.uploadParts(uploadPart{name: "file", filename: "b", data: []byte("y")})
	raw := string(readBody(t, resp))
	if resp.StatusCode != 201 || !strings.Contains(raw, `"retention_policy":"permanent"`) ||
		!strings.Contains(raw, `"ttl_days":null`) || !strings.Contains(raw, `"expires_at":null`) {
		t.Fatalf("rw retention: %d %s", resp.StatusCode, raw)
	}
}

func TestUploadValidation(t *testing.T) {
	e := newTestEnv(t)
	file := uploadPart{name: "file", filename: "f", data: []byte("x")}
	cases := map[string][]uploadPart{
		"no file part":         {{name: "description", data: []byte("d")}},
		"description too long": {file, {name: "description", data: []byte(strings.Repeat("é", 1001))}},
		"tags not json":        {file, {name: "tags", data: []byte(`logo,v2`)}},
		"tags not array":       {file, {name: "tags", data: []byte(`{"a":1}`)}},
		"tags not strings":     {file, {name: "tags", data: []byte(`[1,2]`)}},
		"too many tags":        {file, {name: "tags", data: []byte(`[` + strings.Repeat(`"t",`, 100) + `"t"]`)}},
		"tag too long":         {file, {name: "tags", data: []byte(`["` + strings.Repeat("a", 257) + `"]`)}},
		"two file parts":       {file, file},
	}
	for name, parts := range cases {
		t.Run(name, func(t *testing.T) {
			expectError(t, e.uploadParts(parts...), 400, "VALIDATION_ERROR")
		})
	}
	t.Run("description of exactly 1000 characters", func(t *testing.T) {
		m := decodeJSON[FileMetadata](t, e.uploadParts(file, uploadPart{name: "description", data: []byte(strings.Repeat("é", 1000))}), 201)
		if len([]rune(*m.Description)) != 1000 {
			t.Fatal("description not kept")
		}
	})
	t.Run("not multipart", func(t *testing.T) {
		expectError(t, e.do("POST", "/api/v1/files/upload", strings.NewReader("x"), http.Header{"Content-Type": {"text/plain"}}), 400, "VALIDATION_ERROR")
	})
	t.Run("malformed multipart", func(t *testing.T) {
		expectError(t, e.do("POST", "/api/v1/files/upload", strings.NewReader("--zz\r\nbroken"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=zz"}}), 400, "VALIDATION_ERROR")
	})
	t.Run("default content type", func(t *testing.T) {
		m := decodeJSON[FileMetadata](t, e.uploadParts(uploadPart{name: "file", filename: "n", data: []byte("x")}), 201)
		if m.ContentType != "application/octet-stream" {
			t.Fatalf("content_type %q", m.ContentType)
		}
	})
	assertNoLeftovers(t, e)
}

// assertNoLeftovers checks that the data dir holds only complete blob+sidecar pairs
// inside shard directories, no temp files, no pending WAL entries, no reservation.
func assertNoLeftovers(t *testing.T, e *testEnv) {
	t.Helper()
	pairs := map[string]int{}
	err := filepath.Walk(e.opts.dataDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(e.opts.dataDir, p)
		if rel == modeFileName {
			return nil
		}
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 || !isShardName(parts[0]) || !isShardName(parts[1]) || isTempName(parts[2]) {
			t.Errorf("unexpected file in data dir: %s", rel)
			return nil
		}
		pairs[strings.TrimSuffix(rel, sidecarSuffix)]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for blob, n := range pairs {
		if n != 2 {
			t.Errorf("%s has no blob+sidecar pair (%d files)", blob, n)
		}
	}
	if n, _ := e.st.wal.countPending(); n != 0 {
		t.Errorf("%d pending WAL entries", n)
	}
	if r := e.st.capacity.reservedBytes(); r != 0 {
		t.Errorf("%d bytes still reserved", r)
	}
}

func TestHostileFilenamesStayInDataDir(t *testing.T) {
	parent := t.TempDir()
	dataDir := filepath.Join(parent, "data")
	e := newTestEnv(t, func(o *testEnvOptions) { o.dataDir = dataDir })
	names := []string{"../../etc/passwd", `..\..\windows\system32`, "/abs/olute", "....//....//x", ".hidden",
		strings.Repeat("A", 900) + ".txt", "name with spaces & ünïcödé.tar.gz", "a.attr.json", "x.." + strings.Repeat("e", 40)}
	for _, n := range names {
		m := e.upload(n, []byte(n))
		got := readBody(t, e.download(m.FileID, nil))
		if string(got) != n {
			t.Fatalf("%q: wrong bytes", n)
		}
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 || entries[0].Name() != "data" {
		t.Fatalf("something was written beside the data dir: %v", entries)
	}
	assertNoLeftovers(t, e)
}

func TestListPagingVisitsEveryFileOnce(t *testing.T) {
	e := newTestEnv(t)
	const n = 2500
	want := map[string]bool{}
	for i := range n {
		rec := storeUpload(t, e.st, fmt.Sprintf("f%d", i), []byte{byte(i)})
		want[rec.meta.FileID] = true
	}
	seen := map[string]bool{}
	var last FileMetadata
	for offset := 0; ; offset += 1000 {
		page := decodeJSON[fileListResponse](t, e.do("GET", fmt.Sprintf("/api/v1/files?limit=1000&offset=%d", offset), nil, nil), 200)
		if page.Total != n || page.Limit != 1000 || page.Offset != offset {
			t.Fatalf("page header total=%d limit=%d offset=%d", page.Total, page.Limit, page.Offset)
		}
		wantLen := min(1000, n-offset)
		if len(page.Items) != wantLen || page.HasMore != (offset+wantLen < n) {
			t.Fatalf("offset %d: %d items has_more=%v", offset, len(page.Items), page.HasMore)
		}
		for _, it := range page.Items {
			if seen[it.FileID] {
				t.Fatalf("file %s listed twice", it.FileID)
			}
			if last.FileID != "" && (it.UploadedAt.Before(last.UploadedAt) || it.UploadedAt.Equal(last.UploadedAt) && it.FileID < last.FileID) {
				t.Fatal("items out of order")
			}
			seen[it.FileID], last = true, it
		}
		if !page.HasMore {
			break
		}
	}
	if len(seen) != n {
		t.Fatalf("saw %d of %d files", len(seen), n)
	}
}

// storeUpload uploads through the store API (no HTTP) for bulk set-up.
func storeUpload(t testing.TB, st *store, name string, content []byte) *fileRecord {
	t.Helper()
	up, err := st.beginUpload(int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	defer up.abort()
	if err := up.writeContent(bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	rec, err := up.commit(uploadInfo{Filename: name, ContentType: "application/octet-stream", UploadedBy: "bulk"})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestListFiltersAndValidation(t *testing.T) {
	e := newTestEnv(t)
	a := e.upload("a", []byte("a"))
	b := e.upload("b", []byte("bb"))
	if resp := e.do("DELETE", "/api/v1/files/"+b.FileID, nil, nil); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	for q, wantIDs := range map[string][]string{
		"":                {a.FileID, b.FileID},
		"?status=active":  {a.FileID},
		"?status=deleted": {b.FileID},
		"?status=expired": {},
	} {
		page := decodeJSON[fileListResponse](t, e.do("GET", "/api/v1/files"+q, nil, nil), 200)
		var got []string
		for _, it := range page.Items {
			got = append(got, it.FileID)
		}
		if strings.Join(got, ",") != strings.Join(wantIDs, ",") || page.Total != len(wantIDs) || page.Limit != 100 {
			t.Fatalf("%q: got %v total %d", q, got, page.Total)
		}
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=1.5", "offset=-1", "offset=x",
		"status=gone", "status=ACTIVE", "limit=1&limit=2", "unknown=1"} {
		expectError(t, e.do("GET", "/api/v1/files?"+q, nil, nil), 400, "VALIDATION_ERROR")
	}
	empty := e.do("GET", "/api/v1/files?offset=100000", nil, nil)
	if body := string(readBody(t, empty)); !strings.Contains(body, `"items":[]`) {
		t.Fatalf("empty page must list items as []: %s", body)
	}
}

func TestRestartKeepsFilesMetadataAndMode(t *testing.T) {
	e := newTestEnv(t, withMode(modeRW))
	m := decodeJSON[FileMetadata](t, e.uploadParts(uploadPart{name: "file", filename: "keep.txt", data: []byte("keep")},
		uploadPart{name: "tags", data: []byte(`["t1"]`)}), 201)
	patched := decodeJSON[FileMetadata](t, e.do("PATCH", "/api/v1/files/"+m.FileID, strings.NewReader(`{"description":"after"}`), nil), 200)
	if resp := e.transition("ro", false); resp.StatusCode != 200 {
		t.Fatal("transition")
	}
	e.restart()
	got := decodeJSON[FileMetadata](t, e.do("GET", "/api/v1/files/"+m.FileID, nil, nil), 200)
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(patched)
	if !bytes.Equal(a, b) {
		t.Fatalf("after restart:\n%s\nwant\n%s", a, b)
	}
	if body := readBody(t, e.download(m.FileID, nil)); string(body) != "keep" {
		t.Fatalf("bytes after restart %q", body)
	}
	assertMode(t, e, modeRO)
}

func TestAuthentication(t *testing.T) {
	e := newTestEnv(t, withMode(modeRO))
	id := "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
	protected := []struct{ method, path string }{
		{"POST", "/api/v1/files/upload"}, {"GET", "/api/v1/files"}, {"GET", "/api/v1/files/" + id},
		{"PATCH", "/api/v1/files/" + id}, {"DELETE", "/api/v1/files/" + id}, {"GET", "/api/v1/files/" + id + "/download"},
		{"POST", "/api/v1/mode/transition"}, {"POST", "/api/v1/maintenance/reconcile"},
	}
	expired, _ := signRS256(sharedTestKey(t), testKID, map[string]any{"sub": "x", "scopes": allScopes, "exp": time.Now().Add(-time.Hour).Unix()})
	for _, p := range protected {
		for name, auth := range map[string][]string{"none": nil, "garbage": {"Bearer abc.def.ghi"}, "basic": {"Basic dXNlcjpwYXNz"},
			"expired": {"Bearer " + expired}, "empty bearer": {"Bearer "}} {
			h := http.Header{"Authorization": auth}
			resp := e.do(p.method, p.path, nil, h)
			// Authentication comes before mode: ro would otherwise answer 409 for writes.
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s (%s): no WWW-Authenticate", p.method, p.path, name)
			}
			expectError(t, resp, 401, "UNAUTHORIZED")
		}
	}
	// a valid token without the route's scope → 403, also before mode.
	scopeOf := map[string]string{"/api/v1/files/upload": scopeFilesWrite, "/api/v1/mode/transition": scopeStorageWrite, "/api/v1/maintenance/reconcile": scopeStorageWrite}
	for _, p := range protected {
		need := scopeOf[p.path]
		if need == "" {
			need = map[string]string{"GET": scopeFilesRead, "PATCH": scopeFilesWrite, "DELETE": scopeFilesWrite}[p.method]
		}
		var others []string
		for _, s := range allScopes {
			if s != need {
				others = append(others, s)
			}
		}
		resp := e.do(p.method, p.path, nil, http.Header{"Authorization": {"Bearer " + e.token(others...)}})
		expectError(t, resp, 403, "FORBIDDEN")
	}
	for _, p := range []string{"/health/live", "/health/ready", "/metrics", "/api/v1/info"} {
		resp := e.do("GET", p, nil, http.Header{"Authorization": nil})
		readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Errorf("public %s: %d", p, resp.StatusCode)
		}
	}
}

func TestScopeStringFormAccepted(t *testing.T) {
	e := newTestEnv(t)
	tok, _ := signRS256(sharedTestKey(t), testKID, map[string]any{"sub": "idp-user", "scope": "openid files:read", "exp": time.Now().Add(time.Hour).Unix()})
	resp := e.do("GET", "/api/v1/files", nil, http.Header{"Authorization": {"Bearer " + tok}})
	if readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("scope string form: %d", resp.StatusCode)
	}
}

func TestUnknownPathAndWrongMethod(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range []string{"/", "/nope", "/api/v1/files/", "/api/v2/files", "/api/v1/files/x/y/z"} {
		expectError(t, e.do("GET", p, nil, nil), 404, "NOT_FOUND")
	}
	cases := map[string]string{
		"PUT /api/v1/files":                                      "GET, HEAD",
		"POST /health/live":                                      "GET, HEAD",
		"GET /api/v1/files/upload/x":                             "",
		"GET /api/v1/mode/transition":                            "POST",
		"PUT /api/v1/files/6ba7b810-9dad-41d1-80b4-00c04fd430c8": "GET, HEAD, PATCH, DELETE",
	}
	for req, allow := range cases {
		method, path, _ := strings.Cut(req, " ")
		resp := e.do(method, path, nil, nil)
		if allow == "" {
			expectError(t, resp, 404, "NOT_FOUND")
			continue
		}
		if got := resp.Header.Get("Allow"); got != allow {
			t.Errorf("%s: Allow %q, want %q", req, got, allow)
		}
		expectError(t, resp, 405, "METHOD_NOT_ALLOWED")
	}
}

func TestDownloadRangesAndConditionals(t *testing.T) {
	e := newTestEnv(t)
	content := []byte("0123456789abcdefghij")
	m := e.upload("digits.txt", content)
	etag := `"` + m.Checksum + `"`
	ranges := map[string]struct {
		body, contentRange string
	}{
		"bytes=0-3":   {"0123", "bytes 0-3/20"},
		"bytes=15-":   {"fghij", "bytes 15-19/20"},
		"bytes=-4":    {"ghij", "bytes 16-19/20"},
		"bytes=5-5":   {"5", "bytes 5-5/20"},
		"bytes=10-99": {"abcdefghij", "bytes 10-19/20"},
	}
	for rg, want := range ranges {
		resp := e.download(m.FileID, http.Header{"Range": {rg}})
		body := readBody(t, resp)
		if resp.StatusCode != 206 || string(body) != want.body || resp.Header.Get("Content-Range") != want.contentRange {
			t.Errorf("%s: %d %q %q", rg, resp.StatusCode, body, resp.Header.Get("Content-Range"))
		}
	}
	for _, rg := range []string{"bytes=20-", "bytes=30-40", "bytes=-0"} {
		resp := e.download(m.FileID, http.Header{"Range": {rg}})
		if cr := resp.Header.Get("Content-Range"); cr != "bytes */20" {
			t.Errorf("%s: Content-Range %q", rg, cr)
		}
		expectError(t, resp, 416, "INVALID_RANGE")
	}
	resp := e.download(m.FileID, http.Header{"If-None-Match": {etag}})
	if readBody(t, resp); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	resp = e.download(m.FileID, http.Header{"If-None-Match": {`"other"`}})
	if readBody(t, resp); resp.StatusCode != 200 {
		t.Errorf("If-None-Match other: %d", resp.StatusCode)
	}
	resp = e.download(m.FileID, http.Header{"Range": {"bytes=0-1"}, "If-Range": {etag}})
	if body := readBody(t, resp); resp.StatusCode != 206 || string(body) != "01" {
		t.Errorf("If-Range match: %d %q", resp.StatusCode, body)
	}
	resp = e.download(m.FileID, http.Header{"Range": {"bytes=0-1"}, "If-Range": {`"stale"`}})
	if body := readBody(t, resp); resp.StatusCode != 200 || !bytes.Equal(body, content) {
		t.Errorf("If-Range mismatch must send the whole file: %d %q", resp.StatusCode, body)
	}
}

func TestDownloadNonASCIIFilename(t *testing.T) {
	e := newTestEnv(t)
	m := e.upload(`отчёт "Q1".pdf`, []byte("x"))
	cd := e.download(m.FileID, nil).Header.Get("Content-Disposition")
	want := `attachment; filename="_____ _Q1_.pdf"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82%20%22Q1%22.pdf`
	if cd != want {
		t.Fatalf("Content-Disposition\n got %s\nwant %s", cd, want)
	}
	// characters that are legal in a URL path but not in an RFC 5987 value
	m = e.upload("b \"quoted\";v=1@host:x.bin", []byte("x"))
	cd = e.download(m.FileID, nil).Header.Get("Content-Disposition")
	_, params, err := mime.ParseMediaType(cd)
	if err != nil || params["filename"] != "b \"quoted\";v=1@host:x.bin" {
		t.Fatalf("Content-Disposition %q does not parse back: %v %v", cd, params, err)
	}
}

func TestDownloadOnlyActiveAndModeBeforeLookup(t *testing.T) {
	e := newTestEnv(t)
	m := e.upload("a", []byte("a"))
	if resp := e.do("DELETE", "/api/v1/files/"+m.FileID, nil, nil); resp.StatusCode != 204 {
		t.Fatal("delete")
	}
	expectError(t, e.download(m.FileID, nil), 404, "NOT_FOUND")
	expectError(t, e.download("6ba7b810-9dad-41d1-80b4-00c04fd430c8", nil), 404, "NOT_FOUND")
	expectError(t, e.download("not-a-uuid", nil), 400, "VALIDATION_ERROR")

	ar := newTestEnv(t, withMode(modeAR))
	// unknown id in ar: the mode answers first (409, not 404)
	expectError(t, ar.download("6ba7b810-9dad-41d1-80b4-00c04fd430c8", nil), 409, "MODE_NOT_ALLOWED")
}

func TestDownloadNeverServesWrongBytes(t *testing.T) {
	e := newTestEnv(t)
	m := e.upload("a.bin", bytes.Repeat([]byte("A"), 100_000))
	rec, _ := e.st.index.Get(mustID(t, m.FileID))
	path := e.st.blobPath(rec)
	// same size, different bytes: the transfer must not complete
	if err := os.WriteFile(path, bytes.Repeat([]byte("B"), 100_000), 0o640); err != nil {
		t.Fatal(err)
	}
	resp := e.download(m.FileID, nil)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && len(body) == 100_000 {
		t.Fatal("a corrupted blob was served as a complete response")
	}
	// different size: 500 without leaking the path
	os.WriteFile(path, []byte("short"), 0o640)
	resp = e.download(m.FileID, nil)
	raw := string(readBody(t, resp))
	if resp.StatusCode != 500 || !strings.Contains(raw, `"INTERNAL_ERROR"`) {
		t.Fatalf("truncated blob: %d %s", resp.StatusCode, raw)
	}
	if strings.Contains(raw, e.opts.dataDir) || strings.Contains(raw, rec.storageName) {
		t.Fatalf("error leaks internals: %s", raw)
	}
}

func mustID(t testing.TB, s string) [16]byte {
	t.Helper()
	id, err := parseFileID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestPatch(t *testing.T) {
	e := newTestEnv(t)
	m := decodeJSON[FileMetadata](t, e.uploadParts(uploadPart{name: "file", filename: "p", data: []byte("p")},
		uploadPart{name: "description", data: []byte("old")}), 201)
	patch := func(body string) *http.Response {
		return e.do("PATCH", "/api/v1/files/"+m.FileID, strings.NewReader(body), http.Header{"Content-Type": {"application/json"}})
	}
	got := decodeJSON[FileMetadata](t, patch(`{"tags":["n1","n2"],"size":1,"file_id":"x","status":"deleted"}`), 200)
	if strings.Join(got.Tags, ",") != "n1,n2" || *got.Description != "old" || got.Size != m.Size || got.Status != "active" || got.FileID != m.FileID {
		t.Fatalf("patch tags: %+v", got)
	}
	got = decodeJSON[FileMetadata](t, patch(`{"description":"new"}`), 200)
	if *got.Description != "new" || strings.Join(got.Tags, ",") != "n1,n2" {
		t.Fatalf("patch description: %+v", got)
	}
	onDisk := decodeJSON[FileMetadata](t, e.do("GET", "/api/v1/files/"+m.FileID, nil, nil), 200)
	if *onDisk.Description != "new" {
		t.Fatal("patch not visible")
	}
	for name, body := range map[string]string{
		"empty object": `{}`, "only immutable": `{"size":3}`, "malformed": `{"tags":`, "array": `[]`,
		"description too long": `{"description":"` + strings.Repeat("x", 1001) + `"}`,
		"tags not array":       `{"tags":"a,b"}`, "tags not strings": `{"tags":[1]}`, "description number": `{"description":5}`,
		"two objects": `{"tags":[]} {"tags":[]}`, "huge body": `{"description":"` + strings.Repeat("x", 300<<10) + `"}`,
	} {
		t.Run(name, func(t *testing.T) { expectError(t, patch(body), 400, "VALIDATION_ERROR") })
	}
	expectError(t, e.do("PATCH", "/api/v1/files/6ba7b810-9dad-41d1-80b4-00c04fd430c8", strings.NewReader(`{"tags":[]}`), nil), 404, "NOT_FOUND")
	if resp := e.do("DELETE", "/api/v1/files/"+m.FileID, nil, nil); resp.StatusCode != 204 {
		t.Fatal("delete")
	}
	expectError(t, patch(`{"tags":[]}`), 404, "NOT_FOUND")
}

func TestDelete(t *testing.T) {
	e := newTestEnv(t)
	m := e.upload("d", []byte("d"))
	resp := e.do("DELETE", "/api/v1/files/"+m.FileID, nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 204 || len(body) != 0 {
		t.Fatalf("delete: %d %q", resp.StatusCode, body)
	}
	expectError(t, e.do("DELETE", "/api/v1/files/"+m.FileID, nil, nil), 404, "NOT_FOUND")
	expectError(t, e.do("DELETE", "/api/v1/files/6ba7b810-9dad-41d1-80b4-00c04fd430c8", nil, nil), 404, "NOT_FOUND")
	expectError(t, e.do("DELETE", "/api/v1/files/zzz", nil, nil), 400, "VALIDATION_ERROR")
	got := decodeJSON[FileMetadata](t, e.do("GET", "/api/v1/files/"+m.FileID, nil, nil), 200)
	if got.Status != "deleted" {
		t.Fatalf("status %s", got.Status)
	}
	// the sidecar on disk says deleted, and the bytes are still there until GC
	rec, _ := e.st.index.Get(mustID(t, m.FileID))
	if _, err := os.Stat(e.st.blobPath(rec)); err != nil {
		t.Fatalf("bytes removed before GC: %v", err)
	}
	e.restart()
	got = decodeJSON[FileMetadata](t, e.do("GET", "/api/v1/files/"+m.FileID, nil, nil), 200)
	if got.Status != "deleted" {
		t.Fatalf("status after restart %s", got.Status)
	}
	info := decodeJSON[storageInfo](t, e.do("GET", "/api/v1/info", nil, nil), 200)
	if info.Capacity.UsedBytes != 0 {
		t.Fatalf("deleted bytes still counted as used: %d", info.Capacity.UsedBytes)
	}
}

func TestMetadataGet(t *testing.T) {
	e := newTestEnv(t)
	expectError(t, e.do("GET", "/api/v1/files/not-a-uuid", nil, nil), 400, "VALIDATION_ERROR")
	expectError(t, e.do("GET", "/api/v1/files/6BA7B810-9DAD-41D1-80B4-00C04FD430C8", nil, nil), 400, "VALIDATION_ERROR")
	expectError(t, e.do("GET", "/api/v1/files/6ba7b810-9dad-41d1-80b4-00c04fd430c8", nil, nil), 404, "NOT_FOUND")
}

func TestUploadLimits(t *testing.T) {
	e := newTestEnv(t, func(o *testEnvOptions) { o.maxFileSize = 1000; o.maxCapacity = 2500 })
	expectError(t, e.uploadParts(uploadPart{name: "file", filename: "big", data: make([]byte, 1001)}), 413, "FILE_TOO_LARGE")
	// no Content-Length: enforced while streaming
	body, ct := multipartBody(t, uploadPart{name: "file", filename: "big", data: make([]byte, 5000)})
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/files/upload", io.MultiReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+e.token(allScopes...))
	req.ContentLength = -1
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, resp, 413, "FILE_TOO_LARGE")
	e.upload("a", make([]byte, 1000))
	e.upload("b", make([]byte, 1000))
	expectError(t, e.uploadParts(uploadPart{name: "file", filename: "c", data: make([]byte, 501)}), 507, "STORAGE_FULL")
	e.upload("d", make([]byte, 500))
	info := decodeJSON[storageInfo](t, e.do("GET", "/api/v1/info", nil, nil), 200)
	if info.Capacity != (capacityDoc{TotalBytes: 2500, UsedBytes: 2500, AvailableBytes: 0}) {
		t.Fatalf("capacity %+v", info.Capacity)
	}
	assertNoLeftovers(t, e)
}

func TestConcurrentUploadsNeverOvershootCapacity(t *testing.T) {
	const size, capacity = 4000, 10 * 4000
	e := newTestEnv(t, func(o *testEnvOptions) { o.maxFileSize = size; o.maxCapacity = capacity })
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for i := range 30 {
		wg.Go(func() {
			resp := e.uploadParts(uploadPart{name: "file", filename: fmt.Sprint(i), data: make([]byte, size)})
			readBody(t, resp)
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case 201:
				created++
			case 507:
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if created != 10 || e.st.index.ActiveBytes() != capacity {
		t.Fatalf("created %d files, %d active bytes (capacity %d)", created, e.st.index.ActiveBytes(), capacity)
	}
	assertNoLeftovers(t, e)
}

func TestClientDisconnectLeavesNothing(t *testing.T) {
	e := newTestEnv(t)
	pr, pw := io.Pipe()
	body, ct := multipartBody(t, uploadPart{name: "file", filename: "cut", data: make([]byte, 1<<20)})
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/files/upload", pr)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+e.token(allScopes...))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := e.ts.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write(body.Bytes()[:512<<10])
	pw.CloseWithError(io.ErrUnexpectedEOF)
	<-done
	// the handler finishes asynchronously after the client is gone
	deadline := time.Now().Add(10 * time.Second)
	for e.st.capacity.reservedBytes() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	waitNoTemps(t, e, deadline)
	assertNoLeftovers(t, e)
	if e.st.index.Len() != 0 {
		t.Fatal("a cut upload became visible")
	}
}

func waitNoTemps(t *testing.T, e *testEnv, deadline time.Time) {
	for time.Now().Before(deadline) {
		n, _ := e.st.wal.countPending()
		if n == 0 && e.st.capacity.reservedBytes() == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPatchDeleteSerialise(t *testing.T) {
	e := newTestEnv(t)
	for round := range 20 {
		m := e.upload(fmt.Sprint(round), []byte("x"))
		var wg sync.WaitGroup
		deleted := make(chan time.Time, 1)
		for i := range 8 {
			wg.Go(func() {
				if i == 0 {
					resp := e.do("DELETE", "/api/v1/files/"+m.FileID, nil, nil)
					readBody(t, resp)
					if resp.StatusCode == 204 {
						deleted <- time.Now()
					}
					return
				}
				resp := e.do("PATCH", "/api/v1/files/"+m.FileID, strings.NewReader(fmt.Sprintf(`{"description":"%d"}`, i)), nil)
				readBody(t, resp)
				if resp.StatusCode != 200 && resp.StatusCode != 404 {
					t.Errorf("patch: %d", resp.StatusCode)
				}
			})
		}
		wg.Wait()
		if len(deleted) != 1 {
			t.Fatal("delete did not succeed")
		}
		got := decodeJSON[FileMetadata](t, e.do("GET", "/api/v1/files/"+m.FileID, nil, nil), 200)
		if got.Status != "deleted" {
			t.Fatalf("round %d: a deleted file came back as %s", round, got.Status)
		}
		rec, _ := e.st.index.Get(mustID(t, m.FileID))
		disk, err := readSidecarFile(shardDir(e.opts.dataDir, rec.id()), rec.storageName+sidecarSuffix)
		if err != nil || disk.status() != statusDeleted {
			t.Fatalf("round %d: sidecar on disk says %v (%v)", round, disk, err)
		}
	}
}

func TestJSONBodiesAreOneLine(t *testing.T) {
	e := newTestEnv(t)
	m := e.upload("x", []byte("x"))
	for _, p := range []string{"/api/v1/files", "/api/v1/files/" + m.FileID, "/api/v1/info", "/health/live", "/health/ready", "/nope"} {
		body := readBody(t, e.do("GET", p, nil, nil))
		if bytes.Count(body, []byte("\n")) != 1 || body[len(body)-1] != '\n' || !json.Valid(body) {
			t.Errorf("%s: body is not one JSON line: %q", p, body)
		}
	}
}

func TestHealthAndInfo(t *testing.T) {
	e := newTestEnv(t)
	live := decodeJSON[map[string]any](t, e.do("GET", "/health/live", nil, nil), 200)
	if live["status"] != "ok" || live["service"] != "storage-element" || live["version"] != "test" || live["timestamp"] == "" {
		t.Fatalf("live %v", live)
	}
	ready := decodeJSON[map[string]any](t, e.do("GET", "/health/ready", nil, nil), 200)
	checks, _ := ready["checks"].(map[string]any)
	if ready["status"] != "ok" || checks["filesystem"] == nil || checks["wal"] == nil || checks["index"] == nil {
		t.Fatalf("ready %v", ready)
	}
	e.st.ready.Store(false)
	resp := e.do("GET", "/health/ready", nil, nil)
	notReady := decodeJSON[map[string]any](t, resp, 503)
	if notReady["status"] != "fail" {
		t.Fatalf("not ready: %v", notReady)
	}
	info := decodeJSON[map[string]any](t, e.do("GET", "/api/v1/info", nil, nil), 200)
	if info["status"] != "offline" {
		t.Fatalf("info status while not ready: %v", info["status"])
	}
	expectError(t, e.do("GET", "/api/v1/files", nil, nil), 503, "NOT_READY")
	e.st.ready.Store(true)
	full := decodeJSON[storageInfo](t, e.do("GET", "/api/v1/info", nil, nil), 200)
	if full.StorageID != "se-test" || full.Status != "online" || full.ReplicaMode != "standalone" || full.Role != "standalone" ||
		fmt.Sprint(full.AllowedOperations) != "[upload download update delete list]" || full.Capacity.TotalBytes != 1<<30 {
		t.Fatalf("info %+v", full)
	}
}

func TestRequestIDEchoed(t *testing.T) {
	e := newTestEnv(t)
	resp := e.do("GET", "/health/live", nil, http.Header{"X-Request-Id": {"abc-123"}})
	readBody(t, resp)
	if resp.Header.Get("X-Request-ID") != "abc-123" {
		t.Fatalf("request id not echoed: %q", resp.Header.Get("X-Request-ID"))
	}
	resp = e.do("GET", "/health/live", nil, http.Header{"X-Request-Id": {"bad id with spaces"}})
	readBody(t, resp)
	if id := resp.Header.Get("X-Request-ID"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("invalid request id must be replaced: %q", id)
	}
}

// TestSlowBodiesIdleTimeoutNotTotal: a body that keeps moving may take longer than the
// idle timeout in total; a body that stalls longer than the idle timeout is cut.
func TestSlowBodiesIdleTimeoutNotTotal(t *testing.T) {
	e := newTestEnv(t)
	e.srv.idleTimeout = 400 * time.Millisecond
	content := bytes.Repeat([]byte("s"), 20)
	body, ct := multipartBody(t, uploadPart{name: "file", filename: "slow", data: content})
	raw := body.Bytes()
	send := func(pause time.Duration, chunks int) (*http.Response, error) {
		pr, pw := io.Pipe()
		go func() {
			step := len(raw) / chunks
			for i := 0; i < chunks; i++ {
				end := (i + 1) * step
				if i == chunks-1 {
					end = len(raw)
				}
				if _, err := pw.Write(raw[i*step : end]); err != nil {
					return
				}
				time.Sleep(pause)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/files/upload", pr)
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+e.token(allScopes...))
		return e.ts.Client().Do(req)
	}
	// 12 chunks 150 ms apart: 1.8 s in total, never idle for 400 ms
	resp, err := send(150*time.Millisecond, 12)
	if err != nil {
		t.Fatalf("trickling upload failed: %v", err)
	}
	decodeJSON[FileMetadata](t, resp, 201)
	// one pause of 1.2 s: the server drops the request
	resp, err = send(1200*time.Millisecond, 2)
	if err == nil {
		body := readBody(t, resp)
		if resp.StatusCode == 201 {
			t.Fatalf("a body idle for longer than the idle timeout was accepted: %s", body)
		}
	}
	waitNoTemps(t, e, time.Now().Add(5*time.Second))
	assertNoLeftovers(t, e)
}

func TestServerTimeoutsBoundHeadersNotTransfers(t *testing.T) {
	a := &app{server: &server{}, log: discardLogger(), certs: &certReloader{}}
	srv := a.httpServer()
	if srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Fatal("whole-request timeouts would cut multi-GB transfers over slow links")
	}
	if srv.ReadHeaderTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Fatalf("header/idle bounds missing: %+v", srv)
	}
}

// TestReadinessNeverWritesAndNeverHangs: readiness reads a cached probe; a stuck mount
// makes it fail fast instead of hanging, and probing writes nothing.
func TestReadinessNeverWritesAndNeverHangs(t *testing.T) {
	e := newTestEnv(t)
	e.upload("x", []byte("x"))
	before := listAllFilesWithTimes(t, e.opts.dataDir)
	for range 5 {
		e.srv.health.probe()
		readBody(t, e.do("GET", "/health/ready", nil, nil))
	}
	if after := listAllFilesWithTimes(t, e.opts.dataDir); after != before {
		t.Fatalf("readiness changed the data volume:\n%s\n%s", before, after)
	}
	block := make(chan struct{})
	defer close(block)
	e.srv.health.stat = func(string) error { <-block; return nil }
	start := time.Now()
	e.srv.health.probe() // returns after the probe timeout, leaving the stuck stat behind
	resp := e.do("GET", "/health/ready", nil, nil)
	ready := decodeJSON[map[string]any](t, resp, 503)
	if ready["status"] != "fail" || time.Since(start) > 2*healthProbeTimeout {
		t.Fatalf("stuck mount: %v after %v", ready, time.Since(start))
	}
}

func listAllFilesWithTimes(t *testing.T, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// TestConfirmedTransitionIsLoggedWithSubject: CONTRACT §2 wants ro → rw logged with the
// caller's sub and the time.
func TestConfirmedTransitionIsLoggedWithSubject(t *testing.T) {
	e := newTestEnv(t, withMode(modeRO))
	var buf bytes.Buffer
	var mu sync.Mutex
	e.srv.log = slog.New(slog.NewJSONHandler(lockedWriter{&buf, &mu}, nil))
	body := strings.NewReader(`{"target_mode":"rw","confirm":true}`)
	tok := e.tokenFor("operator-7", allScopes...)
	got := decodeJSON[map[string]string](t, e.do("POST", "/api/v1/mode/transition", body, http.Header{"Authorization": {"Bearer " + tok}}), 200)
	mu.Lock()
	defer mu.Unlock()
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "mode transition" {
			line = m
		}
	}
	if line == nil || line["from"] != "ro" || line["to"] != "rw" || line["sub"] != "operator-7" || line["at"] != got["transitioned_at"] {
		t.Fatalf("transition log line %v (response %v)", line, got)
	}
}
