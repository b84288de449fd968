// scenario_storage.go drives the storage endpoints: mode transitions with
// every 409 of CONTRACT §2, reconcile, capacity (507), metrics, and the whole
// rw-mode instance.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// every operation of CONTRACT §2, per mode, as /api/v1/info reports it.
var allowedByMode = map[string][]string{
	"edit": {"upload", "download", "update", "delete", "list"},
	"rw":   {"upload", "download", "update", "list"},
	"ro":   {"download", "list"},
	"ar":   {"list"},
}

// transition posts a body to /api/v1/mode/transition.
func (s *scenario) transition(ctx context.Context, name, body string, want int, code string) *result {
	return s.c.do(ctx, call{
		Name: name, Method: http.MethodPost, Path: "/api/v1/mode/transition", Token: s.tok.Full,
		Body: []byte(body), CT: "application/json", Want: want, WantCode: code, CheckReq: want == 200,
	})
}

// moveTo performs an allowed transition and checks the answer.
func (s *scenario) moveTo(ctx context.Context, target string, confirm bool) {
	body := fmt.Sprintf(`{"target_mode":%q}`, target)
	if confirm {
		body = fmt.Sprintf(`{"target_mode":%q,"confirm":true}`, target)
	}
	name := s.expected + " -> " + target
	res := s.transition(ctx, name, body, 200, "")
	tr, ok := decodeJSON[transitionResult](s.c, res, name)
	if !ok || res.Status != 200 {
		return
	}
	if tr.Previous != s.expected || tr.Current != target || time.Since(tr.At).Abs() > 5*time.Minute {
		s.c.fail("%s: answer %+v, want previous %s, current %s, now", name, tr, s.expected, target)
	}
	s.expected = target
}

// refused tries a transition that must be refused with code.
func (s *scenario) refused(ctx context.Context, body, code string) {
	s.transition(ctx, s.expected+" refuses "+body, body, 409, code)
}

// editTransitions: edit is a closed lifecycle; malformed targets are 400.
func (s *scenario) editTransitions(ctx context.Context) {
	for _, target := range []string{"rw", "ro", "ar"} {
		s.refused(ctx, fmt.Sprintf(`{"target_mode":%q}`, target), "INVALID_TRANSITION")
	}
	s.refused(ctx, `{"target_mode":"rw","confirm":true}`, "INVALID_TRANSITION")
	// "edit" is both "not rw/ro/ar" (400) and "anything -> edit" (409): either
	// is the contract's; the code must match the status.
	if res := s.transition(ctx, "edit -> edit", `{"target_mode":"edit"}`, 0, ""); res != nil {
		if code := res.errorCode(); !(res.Status == 400 && code == "VALIDATION_ERROR" || res.Status == 409 && code == "INVALID_TRANSITION") {
			s.c.fail("edit -> edit: %d %s, want 400 VALIDATION_ERROR or 409 INVALID_TRANSITION", res.Status, code)
		}
	}
	bad := map[string]string{
		"unknown target": `{"target_mode":"bogus"}`, "no target": `{}`, "malformed JSON": `{"target_mode":`,
		"target not a string": `{"target_mode":5}`, "confirm not a boolean": `{"target_mode":"ro","confirm":"yes"}`,
	}
	for _, name := range slices.Sorted(maps.Keys(bad)) {
		s.transition(ctx, "transition, "+name, bad[name], 400, "VALIDATION_ERROR")
	}
}

// ---- reconcile ------------------------------------------------------------------

func (s *scenario) reconcile(ctx context.Context) {
	c := s.c
	res := c.do(ctx, call{Name: "reconcile", Method: http.MethodPost, Path: "/api/v1/maintenance/reconcile",
		Token: s.tok.Full, Want: 200, CheckReq: true})
	if r, ok := decodeJSON[reconcileResult](c, res, "reconcile"); ok && res.Status == 200 {
		if len(r.Issues) != 0 {
			c.fail("reconcile on a clean store reports issues: %+v", r.Issues)
		}
		if r.CompletedAt.Before(r.StartedAt) || r.FilesChecked < len(s.active) || r.Summary.OK != r.FilesChecked {
			c.fail("reconcile: started %s completed %s files_checked %d ok %d; want completed >= started, >= %d checked, all ok",
				r.StartedAt, r.CompletedAt, r.FilesChecked, r.Summary.OK, len(s.active))
		}
	}
	// Concurrent runs: each must be 200 or 409 RECONCILE_IN_PROGRESS.
	var wg sync.WaitGroup
	results := make([]*result, 3)
	for i := range results {
		wg.Go(func() {
			req, err := c.newRequest(ctx, call{Method: http.MethodPost, Path: "/api/v1/maintenance/reconcile", Token: s.tok.Full})
			if err == nil {
				results[i], _ = c.send(req)
			}
		})
	}
	wg.Wait()
	for i, r := range results {
		s.judgeConcurrent(ctx, i, r)
	}
}

// judgeConcurrent validates one answer of the concurrent reconcile burst.
func (s *scenario) judgeConcurrent(ctx context.Context, i int, r *result) {
	c := s.c
	what := fmt.Sprintf("concurrent reconcile #%d", i)
	if r == nil {
		c.fail("%s: no answer", what)
		return
	}
	req, _ := c.newRequest(ctx, call{Method: http.MethodPost, Path: "/api/v1/maintenance/reconcile"})
	c.judgeDocument(ctx, call{Name: what}, req, r, what)
	if r.Status != 200 && !(r.Status == 409 && r.errorCode() == "RECONCILE_IN_PROGRESS") {
		c.fail("%s: %d %s, want 200 or 409 RECONCILE_IN_PROGRESS", what, r.Status, r.errorCode())
	}
}

// ---- capacity -------------------------------------------------------------------

// fillUp uploads max-size files until the capacity refuses one with 507,
// predicting each answer from the active bytes.
func (s *scenario) fillUp(ctx context.Context) {
	for i := range 4 {
		var used int64
		for _, size := range s.active {
			used += size
		}
		u := upload{Filename: fmt.Sprintf("fill-%d.bin", i), Content: pattern(maxFileSize, byte(i))}
		if used+maxFileSize <= maxCapacity {
			s.doUpload(ctx, fmt.Sprintf("fill-%d", i), u)
			continue
		}
		s.c.do(ctx, s.uploadCall("upload past SE_MAX_CAPACITY", u, s.tok.Full, 507, "STORAGE_FULL"))
		return
	}
}

// ---- metrics --------------------------------------------------------------------

// metrics checks the exposition format and that labels never carry raw URLs.
func (s *scenario) metrics(ctx context.Context) {
	c := s.c
	res := c.do(ctx, call{Name: "metrics after traffic", Method: http.MethodGet, Path: "/metrics", Want: 200})
	if res == nil || res.Status != 200 {
		return
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "version=0.0.4") {
		c.fail("metrics: Content-Type %q, want text/plain; version=0.0.4", ct)
	}
	body := string(res.Body)
	for _, name := range []string{"se_http_requests_total", "se_http_request_duration_seconds", "se_files_total",
		"se_storage_bytes", "se_mode_info", "se_operations_total"} {
		if !strings.Contains(body, name) {
			c.fail("metrics: no series %s", name)
		}
	}
	for _, id := range append(slices.Clone(s.fileIDs), randomID, badID, "no-such-route") {
		if strings.Contains(body, id) {
			c.fail("metrics: a raw URL part %q appears in the series (path must be the route pattern)", id)
		}
	}
}

// ---- the rw instance -----------------------------------------------------------

// rwLifecycle runs on a fresh SE started in rw.
func (s *scenario) rwLifecycle(ctx context.Context) {
	c := s.c
	s.info(ctx, allowedByMode["rw"])
	e, ok := s.doUpload(ctx, "E", upload{Filename: "e.txt", ContentType: "text/plain", Content: pattern(64, 5),
		Description: ptr("permanent"), Tags: ptr(`["p"]`)})
	if !ok {
		return
	}
	id := e.FileID
	deleteCall := func(name string) {
		c.do(ctx, call{Name: name, Method: http.MethodDelete, Path: "/api/v1/files/" + id, Token: s.tok.Full,
			Want: 409, WantCode: "MODE_NOT_ALLOWED"})
	}
	blocked := func() {
		c.do(ctx, s.uploadCall("upload in "+s.expected, fileD, s.tok.Full, 409, "MODE_NOT_ALLOWED"))
		s.patch(ctx, "PATCH in "+s.expected, id, `{"description":"x"}`, 409, "MODE_NOT_ALLOWED")
		deleteCall("DELETE in " + s.expected)
	}
	s.patch(ctx, "PATCH in rw", id, `{"tags":["q"]}`, 200, "")
	deleteCall("DELETE in rw")
	s.refused(ctx, `{"target_mode":"ar"}`, "INVALID_TRANSITION")
	s.refused(ctx, `{"target_mode":"rw"}`, "INVALID_TRANSITION")
	s.moveTo(ctx, "ro", false)
	s.info(ctx, allowedByMode["ro"])
	blocked()
	c.do(ctx, call{Name: "upload without token in ro (auth before mode)", Method: http.MethodPost,
		Path: "/api/v1/files/upload", Want: 401, WantCode: "UNAUTHORIZED"})
	s.download(ctx, "download in ro", id, nil, 200, "")
	s.refused(ctx, `{"target_mode":"rw"}`, "CONFIRMATION_REQUIRED")
	s.refused(ctx, `{"target_mode":"rw","confirm":false}`, "CONFIRMATION_REQUIRED")
	s.refused(ctx, `{"target_mode":"ro"}`, "INVALID_TRANSITION")
	s.moveTo(ctx, "rw", true)
	s.info(ctx, allowedByMode["rw"])
	s.moveTo(ctx, "ro", false)
	s.moveTo(ctx, "ar", false)
	s.info(ctx, allowedByMode["ar"])
	s.archived(ctx, id)
	blocked()
	s.damagedStore(ctx, id)
}

// archived checks mode ar: metadata and list work, download is refused
// before the lookup, authentication still comes first.
func (s *scenario) archived(ctx context.Context, id string) {
	c := s.c
	s.download(ctx, "download in ar", id, nil, 409, "MODE_NOT_ALLOWED")
	s.download(ctx, "download of an unknown id in ar", randomID, nil, 409, "MODE_NOT_ALLOWED")
	c.do(ctx, call{Name: "download without token in ar", Method: http.MethodGet,
		Path: "/api/v1/files/" + id + "/download", Want: 401, WantCode: "UNAUTHORIZED"})
	c.do(ctx, call{Name: "metadata in ar", Method: http.MethodGet, Path: "/api/v1/files/" + id, Token: s.tok.Full, Want: 200})
	s.list(ctx, "list in ar", "", 200)
	s.refused(ctx, `{"target_mode":"ro"}`, "INVALID_TRANSITION")
	s.refused(ctx, `{"target_mode":"rw"}`, "INVALID_TRANSITION")
	s.refused(ctx, `{"target_mode":"rw","confirm":true}`, "INVALID_TRANSITION")
	c.do(ctx, call{Name: "reconcile in ar", Method: http.MethodPost, Path: "/api/v1/maintenance/reconcile",
		Token: s.tok.Full, Want: 200})
}

// damagedStore breaks the store the way CONTRACT §6 lays it out (the bytes
// with "<name>.attr.json" beside them): one blob gets a flipped byte
// (checksum_mismatch) and a copy of it without a sidecar appears
// (orphaned_file). Reconcile must report both, with paths that do not leak
// the data directory, and count them in the summary.
func (s *scenario) damagedStore(ctx context.Context, id string) {
	c := s.c
	blob, err := findBlob(s.dataDir, id)
	if err != nil {
		c.fail("damage the store: %v", err)
		return
	}
	if err := flipFirstByte(blob); err != nil {
		c.fail("damage the store: %v", err)
		return
	}
	if err := copyFile(blob, filepath.Join(filepath.Dir(blob), "openapicheck-orphan.bin")); err != nil {
		c.fail("damage the store: %v", err)
		return
	}
	res := c.do(ctx, call{Name: "reconcile a damaged store", Method: http.MethodPost,
		Path: "/api/v1/maintenance/reconcile", Token: s.tok.Full, Want: 200})
	r, ok := decodeJSON[damagedReport](c, res, "reconcile a damaged store")
	if !ok || res.Status != 200 {
		return
	}
	found := map[string]bool{}
	for _, is := range r.Issues {
		found[is.Type] = true
		if is.Type == "checksum_mismatch" && is.FileID != id {
			c.fail("reconcile: checksum_mismatch names file %q, want %s", is.FileID, id)
		}
	}
	if !found["checksum_mismatch"] || !found["orphaned_file"] ||
		r.Summary.ChecksumMismatches != 1 || r.Summary.OrphanedFiles != 1 {
		c.fail("reconcile of a damaged store: issues %+v summary %+v; want one checksum_mismatch and one orphaned_file",
			r.Issues, r.Summary)
	}
}

type damagedReport struct {
	Issues []struct {
		FileID string `json:"file_id"`
		Type   string `json:"type"`
	} `json:"issues"`
	Summary struct {
		OrphanedFiles      int `json:"orphaned_files"`
		ChecksumMismatches int `json:"checksum_mismatches"`
	} `json:"summary"`
}

// findBlob returns the path of the bytes of file id: the sidecar whose JSON
// has that file_id, minus its ".attr.json" suffix.
func findBlob(dataDir, id string) (string, error) {
	var blob string
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".attr.json") || blob != "" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read sidecar: %w", err)
		}
		var attr struct {
			FileID string `json:"file_id"`
		}
		if json.Unmarshal(data, &attr) == nil && attr.FileID == id {
			blob = strings.TrimSuffix(path, ".attr.json")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("walk the data dir: %w", err)
	}
	if blob == "" {
		return "", fmt.Errorf("no <name>.attr.json for file %s under the data dir", id)
	}
	if _, err := os.Stat(blob); err != nil {
		return "", fmt.Errorf("the bytes beside the sidecar of %s: %w", id, err)
	}
	return blob, nil
}

// flipFirstByte changes one byte in place, keeping the size.
func flipFirstByte(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open blob: %w", err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 0); err != nil {
		return fmt.Errorf("read blob: %w", err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write blob: %w", err)
	}
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(from), err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(to), err)
	}
	return nil
}
