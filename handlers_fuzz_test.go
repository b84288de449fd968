package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"", "limit=1000&offset=0", "status=deleted", "limit=%zz", "limit=1&limit=2", "offset=99999999999", "x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseListQuery(raw)
		if err != nil {
			return
		}
		if q.limit < 1 || q.limit > maxListLimit || q.offset < 0 || q.filter > statusFilter(statusDeleted) {
			t.Fatalf("accepted out-of-range query %q: %+v", raw, q)
		}
	})
}

func FuzzDecodePatch(f *testing.F) {
	for _, s := range []string{`{}`, `{"tags":["a"]}`, `{"description":null}`, `{"tags":null,"x":1}`, `[]`, `{"tags":[1]}`, `{"description":"` + strings.Repeat("é", 1001) + `"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodePatch(bytes.NewReader(body))
		if err != nil {
			return
		}
		if !p.SetDescription && !p.SetTags {
			t.Fatalf("accepted a patch that changes nothing: %q", body)
		}
		if validateDescription(p.Description) != nil || validateTags(p.Tags) != nil {
			t.Fatalf("accepted out-of-bounds metadata: %q", body)
		}
	})
}

// FuzzUploadBody sends arbitrary bytes as a multipart upload body through the whole
// handler: the answer is one of the contract's statuses, and a failed upload leaves no
// temp file, no pending WAL entry and no reservation behind.
func FuzzUploadBody(f *testing.F) {
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhello\r\n--B--\r\n"))
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\n[\"x\"]\r\n--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\r\n--B--\r\n"))
	f.Add([]byte("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../x\"\r\nContent-Type: \x00\r\n\r\nz\r\n--B"))
	f.Add([]byte("garbage"))
	e := newTestEnv(f, func(o *testEnvOptions) { o.maxFileSize = 4096; o.maxCapacity = 1 << 20 })
	token := "Bearer " + e.token(allScopes...)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/api/v1/files/upload", bytes.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		req.Header.Set("Authorization", token)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusInsufficientStorage:
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if n, _ := e.st.wal.countPending(); n != 0 || e.st.capacity.reservedBytes() != 0 {
			t.Fatalf("upload left %d WAL entries, %d reserved bytes", n, e.st.capacity.reservedBytes())
		}
	})
}
