package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// docPath is the project's document, two levels up from this module.
const docPath = "../../openapi.yaml"

func loadTestSpec(t *testing.T) *spec {
	t.Helper()
	s, err := loadSpec(context.Background(), docPath)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDocumentLoadsWithEveryContractOperation(t *testing.T) {
	s := loadTestSpec(t)
	want := map[string]string{
		"uploadFile": "files:write", "listFiles": "files:read", "getFileMetadata": "files:read",
		"updateFileMetadata": "files:write", "deleteFile": "files:write", "downloadFile": "files:read",
		"getStorageInfo": "", "transitionMode": "storage:write", "reconcileStorage": "storage:write",
		"healthLive": "", "healthReady": "", "getMetrics": "",
	}
	if len(s.Operations) != len(want) {
		t.Fatalf("%d operations, want %d", len(s.Operations), len(want))
	}
	for id, scope := range want {
		o, ok := s.operationByID(id)
		if !ok || o.Scope != scope {
			t.Errorf("operation %s: found %v scope %q, want %q", id, ok, o.Scope, scope)
		}
	}
}

// validate runs the document's response validator on a canned answer.
func validate(t *testing.T, s *spec, method, path string, status int, header http.Header, body string) error {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if header == nil {
		header = http.Header{}
	}
	if body != "" && header.Get("Content-Type") == "" {
		header.Set("Content-Type", "application/json")
	}
	return s.validateResponse(context.Background(), req, status, header, []byte(body))
}

const goodMeta = `{"file_id":"3f8e2a4c-9b1d-4e6f-a2c5-7d9e0b1f3a6c","original_filename":"a.txt",` +
	`"content_type":"text/plain","size":3,"checksum":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",` +
	`"uploaded_by":"u","uploaded_at":"2025-01-02T03:04:05.123Z","description":null,"tags":null,"status":"active",` +
	`"retention_policy":"permanent","ttl_days":null,"expires_at":null}`

func TestValidatorAcceptsContractShapes(t *testing.T) {
	s := loadTestSpec(t)
	id := "/api/v1/files/3f8e2a4c-9b1d-4e6f-a2c5-7d9e0b1f3a6c"
	cases := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", id, 200, goodMeta},
		{"GET", "/api/v1/files", 200, `{"items":[` + goodMeta + `],"total":1,"limit":100,"offset":0,"has_more":false}`},
		{"GET", id, 404, `{"error":{"code":"NOT_FOUND","message":"file not found"}}`},
		{"POST", "/api/v1/mode/transition", 409, `{"error":{"code":"CONFIRMATION_REQUIRED","message":"m"}}`},
		{"GET", "/health/ready", 503, `{"status":"fail","timestamp":"2025-01-02T03:04:05Z","version":"v","service":"storage-element",` +
			`"checks":{"filesystem":{"status":"ok"},"wal":{"status":"fail","message":"x"},"index":{"status":"ok"}}}`},
	}
	for _, c := range cases {
		if err := validate(t, s, c.method, c.path, c.status, nil, c.body); err != nil {
			t.Errorf("%s %s %d: %v", c.method, c.path, c.status, err)
		}
	}
}

func TestValidatorRejectsWhatTheContractForbids(t *testing.T) {
	s := loadTestSpec(t)
	id := "/api/v1/files/3f8e2a4c-9b1d-4e6f-a2c5-7d9e0b1f3a6c"
	cases := map[string]struct {
		method, path string
		status       int
		body         string
	}{
		"undocumented field":     {"GET", id, 200, strings.Replace(goodMeta, `"size":3`, `"size":3,"storage_name":"x"`, 1)},
		"uppercase checksum":     {"GET", id, 200, strings.Replace(goodMeta, "ba7816bf", "BA7816BF", 1)},
		"empty-string null":      {"GET", id, 200, strings.Replace(goodMeta, `"expires_at":null`, `"expires_at":""`, 1)},
		"missing ttl_days":       {"GET", id, 200, strings.Replace(goodMeta, `"ttl_days":null,`, ``, 1)},
		"non-UTC time":           {"GET", id, 200, strings.Replace(goodMeta, "05.123Z", "05+03:00", 1)},
		"code of another status": {"GET", id, 404, `{"error":{"code":"VALIDATION_ERROR","message":"m"}}`},
		"undocumented status":    {"GET", id, 418, `{"error":{"code":"NOT_FOUND","message":"m"}}`},
		"error without message":  {"GET", id, 404, `{"error":{"code":"NOT_FOUND"}}`},
		"flat error":             {"GET", id, 404, `{"code":"NOT_FOUND","message":"m"}`},
		"bad issue type": {"POST", "/api/v1/maintenance/reconcile", 200, `{"started_at":"2025-01-02T03:04:05Z",` +
			`"completed_at":"2025-01-02T03:04:05Z","files_checked":1,"issues":[{"path":"p","type":"lost","description":"d"}],` +
			`"summary":{"ok":0,"orphaned_files":0,"missing_files":0,"checksum_mismatches":0,"size_mismatches":0}}`},
	}
	for name, c := range cases {
		err := validate(t, s, c.method, c.path, c.status, nil, c.body)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: rejected: %.160s", name, err)
	}
}

func TestValidatorChecksDownloadHeaders(t *testing.T) {
	s := loadTestSpec(t)
	path := "/api/v1/files/3f8e2a4c-9b1d-4e6f-a2c5-7d9e0b1f3a6c/download"
	etag := `"` + strings.Repeat("a", 64) + `"`
	good := func() http.Header {
		h := http.Header{}
		for name, value := range map[string]string{
			"Content-Type": "text/plain", "Content-Length": "3", "Accept-Ranges": "bytes", "ETag": etag,
			"Content-Disposition": `attachment; filename="_.txt"; filename*=UTF-8''%D1%91.txt`,
			"Last-Modified":       "Thu, 02 Jan 2025 03:04:05 GMT",
		} {
			h.Set(name, value) // canonical keys, as a real response has them
		}
		return h
	}
	if err := validate(t, s, "GET", path, 200, good(), "abc"); err != nil {
		t.Fatalf("good 200: %v", err)
	}
	broken := map[string]func(http.Header){
		"no ETag":                 func(h http.Header) { h.Del("ETag") },
		"weak ETag":               func(h http.Header) { h.Set("ETag", "W/"+etag) },
		"inline disposition":      func(h http.Header) { h.Set("Content-Disposition", `inline; filename="a"`) },
		"unescaped filename*":     func(h http.Header) { h.Set("Content-Disposition", `attachment; filename="a"; filename*=UTF-8''a=b`) },
		"RFC 850 Last-Modified":   func(h http.Header) { h.Set("Last-Modified", "Thursday, 02-Jan-25 03:04:05 GMT") },
		"no Accept-Ranges":        func(h http.Header) { h.Del("Accept-Ranges") },
		"non-numeric Content-Len": func(h http.Header) { h.Set("Content-Length", "x") },
	}
	for name, mutate := range broken {
		h := good()
		mutate(h)
		err := validate(t, s, "GET", path, 200, h, "abc")
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: rejected: %.160s", name, err)
	}
	// 304 and HEAD are skipped by kin-openapi; the tool checks their headers itself.
	if err := validate(t, s, "GET", path, 304, http.Header{}, ""); err == nil {
		t.Error("304 without ETag accepted")
	}
	if err := validate(t, s, "GET", path, 304, http.Header{"Etag": {etag}}, "x"); err == nil {
		t.Error("304 with a body accepted")
	}
	if err := validate(t, s, "HEAD", path, 200, good(), ""); err != nil {
		t.Errorf("good HEAD: %v", err)
	}
	h := good()
	h.Del("Content-Disposition")
	if err := validate(t, s, "HEAD", path, 200, h, ""); err == nil {
		t.Error("HEAD without Content-Disposition accepted")
	}
}

func TestComponentValidationForUndocumentedRoutes(t *testing.T) {
	s := loadTestSpec(t)
	req := httptest.NewRequest("PUT", "/api/v1/info", nil)
	h := http.Header{"Content-Type": {"application/json"}, "Allow": {"GET, HEAD"}}
	body := []byte(`{"error":{"code":"METHOD_NOT_ALLOWED","message":"m"}}`)
	if err := s.validateComponent(context.Background(), "MethodNotAllowed", req, 405, h, body); err != nil {
		t.Fatalf("good 405: %v", err)
	}
	h.Del("Allow")
	if err := s.validateComponent(context.Background(), "MethodNotAllowed", req, 405, h, body); err == nil {
		t.Fatal("405 without Allow accepted")
	}
	h.Set("Allow", "GET")
	if err := s.validateComponent(context.Background(), "MethodNotAllowed", req, 405, h, []byte(`not json`)); err == nil {
		t.Fatal("405 with a plain-text body accepted")
	}
}

func TestLintRejectsMisdeclaredSecurity(t *testing.T) {
	s := loadTestSpec(t)
	lint := func(o operation) []string {
		var problems []string
		lintOperation(o, func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
		return problems
	}
	list, _ := s.operationByID("listFiles")
	if p := lint(list); len(p) != 0 {
		t.Fatalf("the document's own listFiles: %q", p)
	}
	public := *list.Op
	public.Security = openapi3.NewSecurityRequirements()
	list.Op = &public
	if p := lint(list); len(p) != 1 || !strings.Contains(p[0], "may be public") {
		t.Fatalf("listFiles made public: %q", p)
	}
	info, _ := s.operationByID("getStorageInfo")
	secured := *info.Op
	secured.Security = nil
	info.Op = &secured
	if p := lint(info); len(p) == 0 || !strings.Contains(p[0], "must have security: []") {
		t.Fatalf("getStorageInfo secured: %q", p)
	}
}
