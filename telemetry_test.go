package main

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
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
