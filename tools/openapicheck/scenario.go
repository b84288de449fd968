// scenario.go is what the check does to a running SE: it drives every
// documented operation through the statuses CONTRACT §2-§5 promise and checks
// the values a schema cannot (checksums, retention, ordering, capacity).
//
// Two SE instances run one after the other, each with fresh directories:
//   - "edit" (SE_MODE=edit): auth, uploads and their errors, listing, metadata,
//     PATCH, download with ranges and conditionals, DELETE, transitions out of
//     edit (all refused), reconcile, 507, metrics, and the route surface.
//   - "rw" (SE_MODE=rw): permanent retention, then rw -> ro -> rw -> ro -> ar
//     with MODE_NOT_ALLOWED, CONFIRMATION_REQUIRED and INVALID_TRANSITION
//     provoked on the way.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
)

// randomID is a well-formed UUID v4 no file has.
const randomID = "3f8e2a4c-9b1d-4e6f-a2c5-7d9e0b1f3a6c"

// badID is not a UUID at all.
const badID = "not-a-uuid"

// fileMeta mirrors FileMetadata for value checks.
type fileMeta struct {
	FileID           string     `json:"file_id"`
	OriginalFilename string     `json:"original_filename"`
	ContentType      string     `json:"content_type"`
	Size             int64      `json:"size"`
	Checksum         string     `json:"checksum"`
	UploadedBy       string     `json:"uploaded_by"`
	UploadedAt       time.Time  `json:"uploaded_at"`
	Description      *string    `json:"description"`
	Tags             []string   `json:"tags"`
	Status           string     `json:"status"`
	RetentionPolicy  string     `json:"retention_policy"`
	TTLDays          *int       `json:"ttl_days"`
	ExpiresAt        *time.Time `json:"expires_at"`
}

type fileList struct {
	Items   []fileMeta `json:"items"`
	Total   int        `json:"total"`
	Limit   int        `json:"limit"`
	Offset  int        `json:"offset"`
	HasMore bool       `json:"has_more"`
}

type storageInfo struct {
	Mode     string `json:"mode"`
	Status   string `json:"status"`
	Capacity struct {
		Total     int64 `json:"total_bytes"`
		Used      int64 `json:"used_bytes"`
		Available int64 `json:"available_bytes"`
	} `json:"capacity"`
	ReplicaMode       string   `json:"replica_mode"`
	Role              string   `json:"role"`
	AllowedOperations []string `json:"allowed_operations"`
}

type transitionResult struct {
	Previous string    `json:"previous_mode"`
	Current  string    `json:"current_mode"`
	At       time.Time `json:"transitioned_at"`
}

type reconcileResult struct {
	StartedAt    time.Time `json:"started_at"`
	CompletedAt  time.Time `json:"completed_at"`
	FilesChecked int       `json:"files_checked"`
	Issues       []struct {
		Type string `json:"type"`
		Path string `json:"path"`
	} `json:"issues"`
	Summary struct {
		OK int `json:"ok"`
	} `json:"summary"`
}

// upload is one file the scenario sends.
type upload struct {
	Filename    string
	ContentType string // "" sends no Content-Type on the part
	Content     []byte
	Description *string
	Tags        *string // JSON text
	FileFirst   bool    // put the file part before the others
}

// stored is an upload the SE accepted.
type stored struct {
	upload
	Meta fileMeta
}

// scenario is the state of one run across both instances.
type scenario struct {
	c        *checker
	tok      *tokens
	unknown  []byte            // body of the generic unknown-path 404
	active   map[string]int64  // file_id -> size of files that should be active
	fileIDs  []string          // every id the SE handed out
	byName   map[string]stored // scenario name -> stored file
	expected string            // mode the instance is in
	dataDir  string            // SE_DATA_DIR of the running instance
}

func newScenario(c *checker, tok *tokens) *scenario {
	return &scenario{c: c, tok: tok, active: map[string]int64{}, byName: map[string]stored{}}
}

// ptr returns a pointer to s.
func ptr(s string) *string { return &s }

// pattern returns n bytes of printable, position-dependent content, so a
// wrong range shows up as wrong bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte((i+int(seed))%26)
	}
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// multipartBody encodes parts in order. Filenames are written as Go's
// multipart writer would (quotes and backslashes escaped, UTF-8 raw).
func multipartBody(u upload, extra map[string]string) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	writeFile := func() {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, escapeQuotes(u.Filename)))
		if u.ContentType != "" {
			h.Set("Content-Type", u.ContentType)
		}
		pw, _ := mw.CreatePart(h) // writing to a bytes.Buffer cannot fail
		_, _ = pw.Write(u.Content)
	}
	if u.FileFirst {
		writeFile()
	}
	if u.Description != nil {
		_ = mw.WriteField("description", *u.Description)
	}
	if u.Tags != nil {
		_ = mw.WriteField("tags", *u.Tags)
	}
	for name, value := range extra {
		_ = mw.WriteField(name, value)
	}
	if !u.FileFirst && u.Content != nil {
		writeFile()
	}
	_ = mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func escapeQuotes(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// uploadCall builds the call for an upload.
func (s *scenario) uploadCall(name string, u upload, token string, want int, code string) call {
	body, ct := multipartBody(u, nil)
	return call{
		Name: name, Method: http.MethodPost, Path: "/api/v1/files/upload", Token: token,
		Body: body, CT: ct, Want: want, WantCode: code, CheckReq: want == http.StatusCreated,
	}
}

// doUpload uploads and, on 201, checks the metadata against what was sent.
func (s *scenario) doUpload(ctx context.Context, name string, u upload) (fileMeta, bool) {
	res := s.c.do(ctx, s.uploadCall("upload "+name, u, s.tok.Full, http.StatusCreated, ""))
	if res == nil || res.Status != http.StatusCreated {
		return fileMeta{}, false
	}
	meta, ok := decodeJSON[fileMeta](s.c, res, "upload "+name)
	if !ok {
		return meta, false
	}
	s.checkUploaded(name, u, meta)
	s.byName[name] = stored{upload: u, Meta: meta}
	s.active[meta.FileID] = meta.Size
	s.fileIDs = append(s.fileIDs, meta.FileID)
	return meta, true
}

// checkUploaded compares FileMetadata of a fresh upload with the request and
// with the retention rule of the mode (CONTRACT §2).
func (s *scenario) checkUploaded(name string, u upload, m fileMeta) {
	c := s.c
	wantCT := u.ContentType
	if wantCT == "" {
		wantCT = "application/octet-stream"
	}
	checks := []struct {
		ok   bool
		what string
	}{
		{m.OriginalFilename == u.Filename, fmt.Sprintf("original_filename %q, sent %q", m.OriginalFilename, u.Filename)},
		{m.ContentType == wantCT, fmt.Sprintf("content_type %q, want %q", m.ContentType, wantCT)},
		{m.Size == int64(len(u.Content)), fmt.Sprintf("size %d, sent %d bytes", m.Size, len(u.Content))},
		{m.Checksum == sha256Hex(u.Content), fmt.Sprintf("checksum %s, want %s", m.Checksum, sha256Hex(u.Content))},
		{m.UploadedBy == tokenSubject, fmt.Sprintf("uploaded_by %q, want the token's sub %q", m.UploadedBy, tokenSubject)},
		{m.Status == "active", fmt.Sprintf("status %q, want active", m.Status)},
		{time.Since(m.UploadedAt).Abs() < 5*time.Minute, fmt.Sprintf("uploaded_at %s is not now", m.UploadedAt)},
		{equalPtr(m.Description, u.Description), fmt.Sprintf("description %v, sent %v", deref(m.Description), deref(u.Description))},
		{tagsMatch(m.Tags, u.Tags), fmt.Sprintf("tags %q, sent %v", m.Tags, deref(u.Tags))},
	}
	for _, ch := range checks {
		if !ch.ok {
			c.fail("upload %s: %s", name, ch.what)
		}
	}
	s.checkRetention("upload "+name, m)
}

// checkRetention applies CONTRACT §2: edit -> temporary/30 days, rw -> permanent/null.
func (s *scenario) checkRetention(what string, m fileMeta) {
	switch s.expected {
	case "edit":
		if m.RetentionPolicy != "temporary" || m.TTLDays == nil || *m.TTLDays != 30 || m.ExpiresAt == nil {
			s.c.fail("%s: edit mode must give temporary, ttl_days 30, expires_at set; got %s/%v/%v",
				what, m.RetentionPolicy, derefInt(m.TTLDays), m.ExpiresAt)
			return
		}
		if d := m.ExpiresAt.Sub(m.UploadedAt.Add(30 * 24 * time.Hour)).Abs(); d > time.Second {
			s.c.fail("%s: expires_at %s is not uploaded_at %s + 30 days", what, m.ExpiresAt, m.UploadedAt)
		}
	case "rw":
		if m.RetentionPolicy != "permanent" || m.TTLDays != nil || m.ExpiresAt != nil {
			s.c.fail("%s: rw mode must give permanent with ttl_days and expires_at null; got %s/%v/%v",
				what, m.RetentionPolicy, derefInt(m.TTLDays), m.ExpiresAt)
		}
	}
}

func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return (a == nil || *a == "") && (b == nil || *b == "")
	}
	return *a == *b
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func derefInt(p *int) string {
	if p == nil {
		return "null"
	}
	return strconv.Itoa(*p)
}

// tagsMatch compares returned tags with the JSON text sent (nil = none).
func tagsMatch(got []string, sent *string) bool {
	if sent == nil {
		return len(got) == 0
	}
	want := strings.Trim(*sent, "[]")
	var parts []string
	for _, t := range strings.Split(want, ",") {
		if t = strings.Trim(strings.TrimSpace(t), `"`); t != "" {
			parts = append(parts, t)
		}
	}
	return slices.Equal(got, parts) || (len(got) == 0 && len(parts) == 0)
}

// ---- public endpoints -------------------------------------------------------

func (s *scenario) public(ctx context.Context) {
	c := s.c
	if res := c.do(ctx, call{Name: "liveness", Method: http.MethodGet, Path: "/health/live", Want: 200, CheckReq: true}); res != nil {
		body, _ := decodeJSON[map[string]any](c, res, "liveness")
		if body["status"] != "ok" || body["service"] != "storage-element" {
			c.fail("liveness: want status ok and service storage-element, got %v", body)
		}
	}
	c.do(ctx, call{Name: "readiness", Method: http.MethodGet, Path: "/health/ready", Want: 200, CheckReq: true})
	c.do(ctx, call{Name: "HEAD liveness", Method: http.MethodHead, Path: "/health/live", Want: 200})
	c.do(ctx, call{Name: "info", Method: http.MethodGet, Path: "/api/v1/info", Want: 200, CheckReq: true})
	c.do(ctx, call{Name: "metrics", Method: http.MethodGet, Path: "/metrics", Want: 200, CheckReq: true})
	// A public path stays public when a client sends a bad token anyway.
	c.do(ctx, call{Name: "info with a garbage token", Method: http.MethodGet, Path: "/api/v1/info", Token: "garbage", Want: 0})
}

// info fetches /api/v1/info and checks mode, capacity and allowed operations.
func (s *scenario) info(ctx context.Context, wantOps []string) {
	c := s.c
	res := c.do(ctx, call{Name: "info in " + s.expected, Method: http.MethodGet, Path: "/api/v1/info", Want: 200})
	in, ok := decodeJSON[storageInfo](c, res, "info")
	if !ok {
		return
	}
	var used int64
	for _, size := range s.active {
		used += size
	}
	if in.Mode != s.expected {
		c.fail("info: mode %q, want %q", in.Mode, s.expected)
	}
	if in.Status != "online" || in.ReplicaMode != "standalone" || in.Role != "standalone" {
		c.fail("info: want online/standalone/standalone, got %s/%s/%s", in.Status, in.ReplicaMode, in.Role)
	}
	if in.Capacity.Total != maxCapacity || in.Capacity.Used != used || in.Capacity.Available != max(0, maxCapacity-used) {
		c.fail("info: capacity %+v, want total %d used %d available %d", in.Capacity, maxCapacity, used, max(0, maxCapacity-used))
	}
	got := slices.Sorted(slices.Values(in.AllowedOperations))
	want := slices.Sorted(slices.Values(wantOps))
	if !slices.Equal(got, want) {
		c.fail("info: allowed_operations %v in mode %s, want %v", got, s.expected, want)
	}
}

// ---- unknown paths ------------------------------------------------------------

// unknownPaths records the generic 404 and checks near-miss paths get it.
func (s *scenario) unknownPaths(ctx context.Context) {
	c := s.c
	res := c.do(ctx, call{
		Name: "unknown path", Method: http.MethodGet, Path: "/api/v1/no-such-route-7f3a", Token: s.tok.Full,
		Want: 404, WantCode: "NOT_FOUND", Component: "NotFound",
	})
	if res != nil {
		s.unknown = res.Body
	}
	near := []string{
		"/", "/api", "/api/v1", "/api/v1/", "/api/v1/files/", "/api/v2/files", "/health", "/health/",
		"/api/v1/info/", "/metrics/x", "/api/v1/files/" + randomID + "/download/x", "/api/v1/files/upload/x",
	}
	for _, p := range near {
		c.do(ctx, call{
			Name: "near-miss unknown path", Method: http.MethodGet, Path: p, Token: s.tok.Full,
			Want: 404, WantCode: "NOT_FOUND", Component: "NotFound",
		})
	}
}

// ---- authentication and scopes ---------------------------------------------

// concrete builds a request for a documented operation with a harmless,
// valid body, and the path's file_id set to id.
func concrete(o operation, id string) call {
	k := call{Method: o.Method, Path: strings.ReplaceAll(o.Path, "{file_id}", id)}
	switch o.ID {
	case "uploadFile":
		k.Body, k.CT = multipartBody(upload{Filename: "auth.txt", ContentType: "text/plain", Content: []byte("x")}, nil)
	case "updateFileMetadata":
		k.Body, k.CT = []byte(`{"description":"auth probe"}`), "application/json"
	case "transitionMode":
		k.Body, k.CT = []byte(`{"target_mode":"ar"}`), "application/json"
	}
	return k
}

// auth provokes 401 on every secured operation and for every kind of bad
// token, and 403 for every operation with a token lacking its scope.
func (s *scenario) auth(ctx context.Context) {
	c := s.c
	for _, o := range c.spec.Operations {
		if o.Scope == "" {
			continue
		}
		k := concrete(o, randomID)
		k.Name, k.Want, k.WantCode = "no token: "+o.ID, 401, "UNAUTHORIZED"
		c.do(ctx, k)
		k = concrete(o, randomID)
		k.Name, k.Token, k.Want, k.WantCode = "token without "+o.Scope+": "+o.ID, s.tok.WithoutOf[o.Scope], 403, "FORBIDDEN"
		c.do(ctx, k)
	}
	bad := []struct{ name, header string }{
		{"expired token", "Bearer " + s.tok.Expired},
		{"token not yet valid", "Bearer " + s.tok.NotYetValid},
		{"token signed by another key", "Bearer " + s.tok.BadSig},
		{"token with an unknown kid", "Bearer " + s.tok.UnknownKid},
		{"HS256 token (alg confusion)", "Bearer " + s.tok.HS256},
		{"alg=none token", "Bearer " + s.tok.AlgNone},
		{"malformed token", "Bearer not.a.jwt"},
		{"oversized token", "Bearer " + strings.Repeat("a", 17*1024)},
		{"Basic scheme", "Basic b3BlbmFwaTpjaGVjaw=="},
		{"empty bearer", "Bearer "},
	}
	for _, b := range bad {
		c.do(ctx, call{
			Name: b.name, Method: http.MethodGet, Path: "/api/v1/files",
			Header: map[string]string{"Authorization": b.header}, Want: 401, WantCode: "UNAUTHORIZED",
		})
	}
	c.do(ctx, call{Name: "OAuth2 scope claim", Method: http.MethodGet, Path: "/api/v1/files", Token: s.tok.OAuth2Read, Want: 200})
}

// ---- uploads ----------------------------------------------------------------------

// fileA has a non-ASCII name (RFC 5987 in Content-Disposition); fileB has a
// name with quotes, a semicolon and characters RFC 5987 must percent-encode
// (= @ :) and no part Content-Type; fileC is deleted later; fileD has a
// 1000-character (2000-byte) description.
var (
	fileA = upload{Filename: "отчёт 2024.txt", ContentType: "text/plain", Content: pattern(1500, 0),
		Description: ptr("first file"), Tags: ptr(`["logo","v2"]`)}
	fileB = upload{Filename: `b "quoted";v=1@host:x.bin`, Content: pattern(200, 7), FileFirst: true}
	fileC = upload{Filename: "c.png", ContentType: "image/png", Content: pattern(300, 3), Tags: ptr(`[]`), FileFirst: true}
	fileD = upload{Filename: "d.txt", ContentType: "text/plain", Content: pattern(10, 1),
		Description: ptr(strings.Repeat("ё", 1000))}
)

func (s *scenario) uploads(ctx context.Context) {
	s.doUpload(ctx, "A", fileA)
	s.doUpload(ctx, "B", fileB)
	s.doUpload(ctx, "C", fileC)
	s.doUpload(ctx, "D", fileD)
	s.uploadErrors(ctx)
}

// uploadErrors provokes every 400 of the upload endpoint and 413.
func (s *scenario) uploadErrors(ctx context.Context) {
	c := s.c
	small := upload{Filename: "e.txt", ContentType: "text/plain", Content: []byte("e")}
	withTags := func(t string) upload { u := small; u.Tags = ptr(t); return u }
	withDesc := func(d string) upload { u := small; u.Description = ptr(d); return u }
	manyTags := `["` + strings.Repeat(`t","`, 100) + `t"]`
	cases := map[string]upload{
		"tags not JSON":           withTags("not json"),
		"tags not strings":        withTags(`[1,2]`),
		"tags an object":          withTags(`{"a":"b"}`),
		"101 tags":                withTags(manyTags),
		"a 257-character tag":     withTags(`["` + strings.Repeat("t", 257) + `"]`),
		"1001-character descr.":   withDesc(strings.Repeat("d", 1001)),
		"no file part":            {Description: ptr("only a description")},
		"file over max file size": {Filename: "big.bin", Content: pattern(2*maxFileSize, 0)},
	}
	for _, name := range slices.Sorted(maps.Keys(cases)) {
		want, code := 400, "VALIDATION_ERROR"
		if name == "file over max file size" {
			want, code = 413, "FILE_TOO_LARGE"
		}
		c.do(ctx, s.uploadCall("upload, "+name, cases[name], s.tok.Full, want, code))
	}
	raw := []struct{ name, ct, body string }{
		{"not multipart", "application/json", `{"file":"x"}`},
		{"multipart without boundary", "multipart/form-data", "--x\r\n"},
		{"truncated multipart", "multipart/form-data; boundary=xyz",
			"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc"},
		{"no body", "multipart/form-data; boundary=xyz", ""},
	}
	for _, r := range raw {
		c.do(ctx, call{
			Name: "upload, " + r.name, Method: http.MethodPost, Path: "/api/v1/files/upload", Token: s.tok.Full,
			CT: r.ct, Body: []byte(r.body), Want: 400, WantCode: "VALIDATION_ERROR",
		})
	}
}
