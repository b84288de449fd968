package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// scrape returns every sample line of /metrics as name{labels} → value.
func scrape(t testing.TB, e *testEnv) map[string]float64 {
	t.Helper()
	var buf bytes.Buffer
	if err := e.metrics.registry.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func counterValue(t testing.TB, e *testEnv, series string) float64 {
	t.Helper()
	v, ok := scrape(t, e)[series]
	if !ok {
		t.Fatalf("series %s not exported", series)
	}
	return v
}

// TestMetricsAfterScriptedRequests checks exact counter values after a known sequence.
func TestMetricsAfterScriptedRequests(t *testing.T) {
	e := newTestEnv(t)
	m := e.upload("a", []byte("aaaa"))
	e.upload("b", []byte("bb"))
	readBody(t, e.download(m.FileID, nil))
	readBody(t, e.download(m.FileID, nil))
	readBody(t, e.do("GET", "/api/v1/files/"+m.FileID, nil, nil))
	readBody(t, e.do("GET", "/api/v1/files/6ba7b810-9dad-41d1-80b4-00c04fd430c8", nil, nil))
	readBody(t, e.do("GET", "/no/such/"+m.FileID, nil, nil))
	readBody(t, e.do("GET", "/another/unknown", nil, nil))
	readBody(t, e.do("DELETE", "/api/v1/files/"+m.FileID, nil, nil))
	readBody(t, e.do("GET", "/api/v1/files", nil, map[string][]string{"Authorization": nil}))

	got := scrape(t, e)
	want := map[string]float64{
		`se_http_requests_total{method="POST",path="/api/v1/files/upload",status="201"}`:            2,
		`se_http_requests_total{method="GET",path="/api/v1/files/{file_id}/download",status="200"}`: 2,
		`se_http_requests_total{method="GET",path="/api/v1/files/{file_id}",status="200"}`:          1,
		`se_http_requests_total{method="GET",path="/api/v1/files/{file_id}",status="404"}`:          1,
		`se_http_requests_total{method="GET",path="unmatched",status="404"}`:                        2,
		`se_http_requests_total{method="DELETE",path="/api/v1/files/{file_id}",status="204"}`:       1,
		`se_http_requests_total{method="GET",path="/api/v1/files",status="401"}`:                    1,
		`se_http_request_duration_seconds_count{method="POST",path="/api/v1/files/upload"}`:         2,
		`se_operations_total{operation="upload",result="success"}`:                                  2,
		`se_operations_total{operation="download",result="success"}`:                                2,
		`se_operations_total{operation="delete",result="success"}`:                                  1,
		`se_files_total{status="active"}`:                                                           1,
		`se_files_total{status="deleted"}`:                                                          1,
		`se_files_total{status="expired"}`:                                                          0,
		`se_storage_bytes{type="used"}`:                                                             2,
		`se_storage_bytes{type="total"}`:                                                            1 << 30,
		`se_storage_bytes{type="available"}`:                                                        1<<30 - 2,
		`se_mode_info{mode="edit"}`:                                                                 1,
		`se_mode_info{mode="rw"}`:                                                                   0,
		`se_auth_failures_total`:                                                                    1,
	}
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %v, want %v", series, got[series], v)
		}
	}
	for series := range got {
		if strings.Contains(series, m.FileID) {
			t.Errorf("a file id leaked into a label: %s", series)
		}
	}
}

func TestOneLogLinePerRequest(t *testing.T) {
	e := newTestEnv(t)
	var buf bytes.Buffer
	var mu sync.Mutex
	e.srv.log = slog.New(slog.NewJSONHandler(lockedWriter{&buf, &mu}, nil))
	m := e.upload("x.txt", []byte("hello"))
	resp := e.do("GET", "/api/v1/files/"+m.FileID, nil, http.Header{"X-Request-Id": {"req-42"}})
	readBody(t, resp)
	mu.Lock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	mu.Unlock()
	if len(lines) != 2 {
		t.Fatalf("want one line per request, got %d: %v", len(lines), lines)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "request", "method": "GET", "route": "/api/v1/files/{file_id}", "status": float64(200),
		"sub": "tester", "request_id": "req-42"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("log field %s = %v, want %v (line %s)", k, got[k], v, lines[1])
		}
	}
	if b, _ := got["bytes"].(float64); b <= 0 {
		t.Errorf("bytes %v", got["bytes"])
	}
	if _, ok := got["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms missing: %s", lines[1])
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestReadyDegradedWhileJWKSDown(t *testing.T) {
	e := newTestEnv(t)
	healthy := false
	e.srv.health.dependency = func() (bool, bool) { return healthy, true }
	ready := decodeJSON[map[string]any](t, e.do("GET", "/health/ready", nil, nil), http.StatusOK)
	checks := ready["checks"].(map[string]any)
	if ready["status"] != "degraded" || checks["jwks"].(map[string]any)["status"] != "degraded" {
		t.Fatalf("ready while JWKS down: %v", ready)
	}
	if info := decodeJSON[storageInfo](t, e.do("GET", "/api/v1/info", nil, nil), 200); info.Status != "degraded" {
		t.Fatalf("info status %q", info.Status)
	}
	healthy = true
	if ready := decodeJSON[map[string]any](t, e.do("GET", "/health/ready", nil, nil), 200); ready["status"] != "ok" {
		t.Fatalf("ready after recovery: %v", ready)
	}
}
