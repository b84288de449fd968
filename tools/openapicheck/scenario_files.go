// scenario_files.go drives the file endpoints after the uploads: listing and
// paging, metadata, PATCH, download (full, ranges, conditionals, HEAD) and
// DELETE, checking values as well as shapes.
package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ---- listing -----------------------------------------------------------------

// list fetches one page and returns it decoded.
func (s *scenario) list(ctx context.Context, name, query string, want int) (fileList, bool) {
	res := s.c.do(ctx, call{
		Name: name, Method: http.MethodGet, Path: "/api/v1/files" + query, Token: s.tok.Full,
		Want: want, CheckReq: want == 200,
	})
	if res == nil || res.Status != want || want != 200 {
		return fileList{}, false
	}
	return decodeJSON[fileList](s.c, res, name)
}

// listing checks totals, order, defaults, paging and filters (CONTRACT §4).
func (s *scenario) listing(ctx context.Context) {
	c := s.c
	all, ok := s.list(ctx, "list all", "", 200)
	if !ok {
		return
	}
	n := len(s.fileIDs)
	if all.Total != n || len(all.Items) != n || all.HasMore || all.Limit != 100 || all.Offset != 0 {
		c.fail("list all: total %d items %d has_more %v limit %d offset %d; want %d, %d, false, 100, 0",
			all.Total, len(all.Items), all.HasMore, all.Limit, all.Offset, n, n)
	}
	checkOrder(c, "list all", all.Items)
	var paged []string
	for off := 0; off < n+1; off++ {
		page, ok := s.list(ctx, "page of one", fmt.Sprintf("?limit=1&offset=%d", off), 200)
		if !ok {
			return
		}
		wantLen, wantMore := min(1, n-off), off+1 < n
		if len(page.Items) != wantLen || page.HasMore != wantMore || page.Total != n {
			c.fail("list limit=1 offset=%d: %d items has_more %v total %d; want %d, %v, %d",
				off, len(page.Items), page.HasMore, page.Total, wantLen, wantMore, n)
		}
		for _, it := range page.Items {
			paged = append(paged, it.FileID)
		}
	}
	if !slices.Equal(paged, ids(all.Items)) {
		c.fail("list: paging by one visits %v, the full list is %v", paged, ids(all.Items))
	}
	s.statusFilter(ctx, "active", len(s.active))
	s.statusFilter(ctx, "expired", 0)
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=abc", "?offset=-1", "?offset=x", "?status=bogus", "?limit=1.5"} {
		c.do(ctx, call{
			Name: "list " + q, Method: http.MethodGet, Path: "/api/v1/files" + q, Token: s.tok.Full,
			Want: 400, WantCode: "VALIDATION_ERROR",
		})
	}
}

// statusFilter checks ?status= returns exactly the files with that status.
func (s *scenario) statusFilter(ctx context.Context, status string, want int) []fileMeta {
	page, ok := s.list(ctx, "list status="+status, "?status="+status+"&limit=1000", 200)
	if !ok {
		return nil
	}
	if page.Total != want || len(page.Items) != want {
		s.c.fail("list status=%s: total %d, %d items; want %d", status, page.Total, len(page.Items), want)
	}
	for _, it := range page.Items {
		if it.Status != status {
			s.c.fail("list status=%s returned file %s with status %s", status, it.FileID, it.Status)
		}
	}
	return page.Items
}

func ids(items []fileMeta) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.FileID
	}
	return out
}

// checkOrder requires uploaded_at ascending, then file_id.
func checkOrder(c *checker, what string, items []fileMeta) {
	sorted := slices.IsSortedFunc(items, func(a, b fileMeta) int {
		if cmp := a.UploadedAt.Compare(b.UploadedAt); cmp != 0 {
			return cmp
		}
		return strings.Compare(a.FileID, b.FileID)
	})
	if !sorted {
		c.fail("%s: items are not ordered by uploaded_at, then file_id", what)
	}
}

// ---- metadata -------------------------------------------------------------------

func (s *scenario) metadata(ctx context.Context) {
	c := s.c
	a := s.byName["A"]
	res := c.do(ctx, call{
		Name: "metadata A", Method: http.MethodGet, Path: "/api/v1/files/" + a.Meta.FileID, Token: s.tok.Full,
		Want: 200, CheckReq: true,
	})
	if m, ok := decodeJSON[fileMeta](c, res, "metadata A"); ok && m.Checksum != a.Meta.Checksum {
		c.fail("metadata A: checksum %s differs from the upload's %s", m.Checksum, a.Meta.Checksum)
	}
	c.do(ctx, call{Name: "metadata of an unknown id", Method: http.MethodGet, Path: "/api/v1/files/" + randomID,
		Token: s.tok.Full, Want: 404, WantCode: "NOT_FOUND"})
	c.do(ctx, call{Name: "metadata of a non-UUID id", Method: http.MethodGet, Path: "/api/v1/files/" + badID,
		Token: s.tok.Full, Want: 400, WantCode: "VALIDATION_ERROR"})
}

// ---- PATCH ------------------------------------------------------------------------

// patch sends one PATCH to a file and returns the answer.
func (s *scenario) patch(ctx context.Context, name, id, body string, want int, code string) *result {
	return s.c.do(ctx, call{
		Name: name, Method: http.MethodPatch, Path: "/api/v1/files/" + id, Token: s.tok.Full,
		Body: []byte(body), CT: "application/json", Want: want, WantCode: code, CheckReq: want == 200,
	})
}

func (s *scenario) patching(ctx context.Context) {
	c := s.c
	a := s.byName["A"]
	id := a.Meta.FileID
	if m, ok := decodeJSON[fileMeta](c, s.patch(ctx, "PATCH description", id, `{"description":"updated"}`, 200, ""), "PATCH"); ok {
		if deref(m.Description) != "updated" || !slices.Equal(m.Tags, []string{"logo", "v2"}) {
			c.fail("PATCH description: got description %q tags %q; want updated, tags unchanged", deref(m.Description), m.Tags)
		}
	}
	if m, ok := decodeJSON[fileMeta](c, s.patch(ctx, "PATCH tags", id, `{"tags":["x","y"]}`, 200, ""), "PATCH"); ok {
		if deref(m.Description) != "updated" || !slices.Equal(m.Tags, []string{"x", "y"}) {
			c.fail("PATCH tags: got description %q tags %q; want updated, [x y]", deref(m.Description), m.Tags)
		}
	}
	immutable := fmt.Sprintf(`{"description":"again","file_id":%q,"size":1,"status":"deleted","checksum":"%s"}`,
		randomID, strings.Repeat("0", 64))
	if m, ok := decodeJSON[fileMeta](c, s.patch(ctx, "PATCH with immutable fields", id, immutable, 200, ""), "PATCH"); ok {
		if m.FileID != id || m.Size != a.Meta.Size || m.Status != "active" || m.Checksum != a.Meta.Checksum {
			c.fail("PATCH with immutable fields changed them: %+v", m)
		}
	}
	bad := map[string]string{
		"empty object":          `{}`,
		"malformed JSON":        `{"description":`,
		"1001-char description": fmt.Sprintf(`{"description":%q}`, strings.Repeat("d", 1001)),
		"tags not an array":     `{"tags":"x"}`,
		"tags not strings":      `{"tags":[1]}`,
		"array body":            `[]`,
		"101 tags":              `{"tags":[` + strings.Repeat(`"t",`, 100) + `"t"]}`,
	}
	for _, name := range slices.Sorted(maps.Keys(bad)) {
		s.patch(ctx, "PATCH, "+name, id, bad[name], 400, "VALIDATION_ERROR")
	}
	// The contract caps JSON bodies without naming the status: any documented one.
	s.patch(ctx, "PATCH, 1 MiB body", id, `{"description":"`+strings.Repeat("d", 1<<20)+`"}`, 0, "")
	s.patch(ctx, "PATCH unknown id", randomID, `{"description":"x"}`, 404, "NOT_FOUND")
	s.patch(ctx, "PATCH non-UUID id", badID, `{"description":"x"}`, 400, "VALIDATION_ERROR")
}

// ---- download ------------------------------------------------------------------

// download fetches a file with extra headers.
func (s *scenario) download(ctx context.Context, name, id string, hdr map[string]string, want int, code string) *result {
	return s.c.do(ctx, call{
		Name: name, Method: http.MethodGet, Path: "/api/v1/files/" + id + "/download", Token: s.tok.Full,
		Header: hdr, Want: want, WantCode: code, CheckReq: want == 200 || want == 206 || want == 304,
	})
}

func (s *scenario) downloads(ctx context.Context) {
	a := s.byName["A"]
	s.checkFull(ctx, "download A", a, nil)
	s.checkFull(ctx, "download B", s.byName["B"], nil)
	s.checkFull(ctx, "download D", s.byName["D"], nil)
	s.ranges(ctx, a)
	s.conditionals(ctx, a)
	c := s.c
	c.do(ctx, call{Name: "HEAD download A", Method: http.MethodHead, Path: "/api/v1/files/" + a.Meta.FileID + "/download",
		Token: s.tok.Full, Want: 200})
	s.download(ctx, "download unknown id", randomID, nil, 404, "NOT_FOUND")
	s.download(ctx, "download non-UUID id", badID, nil, 400, "VALIDATION_ERROR")
}

// checkFull downloads a whole file and checks bytes and headers.
func (s *scenario) checkFull(ctx context.Context, name string, f stored, hdr map[string]string) {
	res := s.download(ctx, name, f.Meta.FileID, hdr, 200, "")
	if res == nil || res.Status != 200 {
		return
	}
	c := s.c
	if !bytes.Equal(res.Body, f.Content) {
		c.fail("%s: body differs from the uploaded bytes (%d vs %d bytes)", name, len(res.Body), len(f.Content))
	}
	if got := res.Header.Get("ETag"); got != `"`+f.Meta.Checksum+`"` {
		c.fail("%s: ETag %s, want the quoted checksum", name, got)
	}
	if got := res.Header.Get("Content-Length"); got != strconv.Itoa(len(f.Content)) {
		c.fail("%s: Content-Length %s, want %d", name, got, len(f.Content))
	}
	if ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); ct != f.Meta.ContentType {
		c.fail("%s: Content-Type %q, want the recorded %q", name, res.Header.Get("Content-Type"), f.Meta.ContentType)
	}
	s.checkDisposition(name, f, res.Header.Get("Content-Disposition"))
	if lm, err := http.ParseTime(res.Header.Get("Last-Modified")); err != nil ||
		lm.Sub(f.Meta.UploadedAt.Truncate(time.Second)).Abs() > time.Second {
		c.fail("%s: Last-Modified %q is not uploaded_at %s", name, res.Header.Get("Last-Modified"), f.Meta.UploadedAt)
	}
}

// checkDisposition requires the header to parse and give back the original
// filename (RFC 6266; filename* per RFC 5987 for non-ASCII names).
func (s *scenario) checkDisposition(name string, f stored, header string) {
	disp, params, err := mime.ParseMediaType(header)
	if err != nil || disp != "attachment" {
		s.c.fail("%s: Content-Disposition %q does not parse as attachment: %v", name, header, err)
		return
	}
	if params["filename"] != f.Filename {
		s.c.fail("%s: Content-Disposition %q gives filename %q, want %q", name, header, params["filename"], f.Filename)
	}
	nonASCII := strings.ContainsFunc(f.Filename, func(r rune) bool { return r > 0x7e })
	if nonASCII && !strings.Contains(header, "filename*=") {
		s.c.fail("%s: non-ASCII filename without RFC 5987 filename*: %q", name, header)
	}
}

// ranges provokes 206 for each single-range form and 416 when unsatisfiable.
func (s *scenario) ranges(ctx context.Context, f stored) {
	size := len(f.Content)
	cases := []struct {
		spec       string
		start, end int // inclusive
	}{
		{"bytes=0-9", 0, 9},
		{fmt.Sprintf("bytes=%d-", size-10), size - 10, size - 1},
		{"bytes=-5", size - 5, size - 1},
		{"bytes=100-99999", 100, size - 1},
	}
	for _, rc := range cases {
		name := "range " + rc.spec
		res := s.download(ctx, name, f.Meta.FileID, map[string]string{"Range": rc.spec}, 206, "")
		if res == nil || res.Status != 206 {
			continue
		}
		wantCR := fmt.Sprintf("bytes %d-%d/%d", rc.start, rc.end, size)
		if got := res.Header.Get("Content-Range"); got != wantCR {
			s.c.fail("%s: Content-Range %q, want %q", name, got, wantCR)
		}
		if !bytes.Equal(res.Body, f.Content[rc.start:rc.end+1]) {
			s.c.fail("%s: body is not bytes %d-%d of the file", name, rc.start, rc.end)
		}
	}
	res := s.download(ctx, "unsatisfiable range", f.Meta.FileID, map[string]string{"Range": fmt.Sprintf("bytes=%d-", size)}, 416, "INVALID_RANGE")
	if res != nil && res.Status == 416 {
		if got := res.Header.Get("Content-Range"); got != fmt.Sprintf("bytes */%d", size) {
			s.c.fail("unsatisfiable range: Content-Range %q, RFC 9110 wants %q", got, fmt.Sprintf("bytes */%d", size))
		}
	}
	// Forms the contract does not fix: whatever the SE answers must be documented.
	s.download(ctx, "multi-range", f.Meta.FileID, map[string]string{"Range": "bytes=0-1,5-6"}, 0, "")
	s.download(ctx, "reversed range", f.Meta.FileID, map[string]string{"Range": "bytes=9-2"}, 0, "")
}

// conditionals checks If-None-Match and If-Range.
func (s *scenario) conditionals(ctx context.Context, f stored) {
	etag := `"` + f.Meta.Checksum + `"`
	other := `"` + strings.Repeat("0", 64) + `"`
	id := f.Meta.FileID
	res := s.download(ctx, "If-None-Match current ETag", id, map[string]string{"If-None-Match": etag}, 304, "")
	if res != nil && res.Status == 304 && res.Header.Get("ETag") != etag {
		s.c.fail("304: ETag %q, want %q", res.Header.Get("ETag"), etag)
	}
	s.download(ctx, "If-None-Match *", id, map[string]string{"If-None-Match": "*"}, 304, "")
	s.checkFull(ctx, "If-None-Match other ETag", f, map[string]string{"If-None-Match": other})
	s.download(ctx, "If-Range current ETag", id, map[string]string{"If-Range": etag, "Range": "bytes=0-9"}, 206, "")
	s.checkFull(ctx, "If-Range other ETag", f, map[string]string{"If-Range": other, "Range": "bytes=0-9"})
	// A date is a weak validator when the file changed within its second
	// (RFC 9110 §13.1.5), so 200 is as right as 206 here: any documented answer.
	lastMod := f.Meta.UploadedAt.UTC().Format(http.TimeFormat)
	s.download(ctx, "If-Range date", id, map[string]string{"If-Range": lastMod, "Range": "bytes=0-9"}, 0, "")
}

// ---- delete -------------------------------------------------------------------------

func (s *scenario) deleting(ctx context.Context) {
	c := s.c
	cFile := s.byName["C"]
	id := cFile.Meta.FileID
	del := func(name, id string, want int, code string) *result {
		return c.do(ctx, call{Name: name, Method: http.MethodDelete, Path: "/api/v1/files/" + id,
			Token: s.tok.Full, Want: want, WantCode: code, CheckReq: want == 204})
	}
	if res := del("DELETE C", id, 204, ""); res != nil && res.Status == 204 {
		delete(s.active, id)
	}
	del("DELETE C again", id, 404, "NOT_FOUND")
	del("DELETE unknown id", randomID, 404, "NOT_FOUND")
	del("DELETE non-UUID id", badID, 400, "VALIDATION_ERROR")
	res := c.do(ctx, call{Name: "metadata of deleted C", Method: http.MethodGet, Path: "/api/v1/files/" + id,
		Token: s.tok.Full, Want: 200})
	if m, ok := decodeJSON[fileMeta](c, res, "metadata of deleted C"); ok && m.Status != "deleted" {
		c.fail("metadata of deleted C: status %q, want deleted", m.Status)
	}
	s.download(ctx, "download deleted C", id, nil, 404, "NOT_FOUND")
	s.patch(ctx, "PATCH deleted C", id, `{"description":"x"}`, 404, "NOT_FOUND")
	if items := s.statusFilter(ctx, "deleted", 1); len(items) == 1 && items[0].FileID != id {
		c.fail("list status=deleted: got %s, want C %s", items[0].FileID, id)
	}
	s.statusFilter(ctx, "active", len(s.active))
	if all, ok := s.list(ctx, "list all after delete", "", 200); ok && all.Total != len(s.fileIDs) {
		c.fail("list without status after a delete: total %d, want every status (%d)", all.Total, len(s.fileIDs))
	}
}
