package main

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestGCExpiresAndPurges(t *testing.T) {
	e := newTestEnv(t, withMode(modeEdit))
	expiring := e.upload("old", []byte("old"))
	keep := e.upload("keep", []byte("keep")) // uploaded later, so it expires later
	deleted := e.upload("del", []byte("del"))
	if resp := e.do("DELETE", "/api/v1/files/"+deleted.FileID, nil, nil); resp.StatusCode != 204 {
		t.Fatal("delete")
	}
	keepRec, _ := e.st.index.Get(mustID(t, keep.FileID))
	oldRec, _ := e.st.index.Get(mustID(t, expiring.FileID))
	delRec, _ := e.st.index.Get(mustID(t, deleted.FileID))
	// the injected clock stands exactly at the older file's expiry
	e.gc.now = func() time.Time { return *oldRec.meta.ExpiresAt }
	res, err := e.gc.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Expired != 1 || res.Purged != 2 || res.Errors != 0 {
		t.Fatalf("gc result %+v", res)
	}
	for _, rec := range []*fileRecord{oldRec, delRec} {
		files, _ := listIDFiles(e.opts.dataDir, rec.id())
		if len(files.blobs)+len(files.sidecars) != 0 {
			t.Fatalf("%s: bytes or sidecar left: %+v", rec.meta.OriginalFilename, files)
		}
		expectError(t, e.do("GET", "/api/v1/files/"+rec.meta.FileID, nil, nil), 404, "NOT_FOUND")
	}
	if body := readBody(t, e.download(keep.FileID, nil)); string(body) != "keep" {
		t.Fatalf("active file damaged: %q", body)
	}
	if _, err := os.Stat(e.st.blobPath(keepRec)); err != nil {
		t.Fatal("active file bytes removed")
	}
	if got := counterValue(t, e, "se_gc_runs_total"); got != 1 {
		t.Fatalf("se_gc_runs_total %v", got)
	}
	if got := counterValue(t, e, "se_gc_files_deleted_total"); got != 2 {
		t.Fatalf("se_gc_files_deleted_total %v", got)
	}
	assertNoLeftovers(t, e)
}

func TestGCMarksExpiredBeforePurging(t *testing.T) {
	e := newTestEnv(t, withMode(modeEdit))
	m := e.upload("x", []byte("x"))
	rec, _ := e.st.index.Get(mustID(t, m.FileID))
	if err := e.st.expire(rec.id(), rec.meta.ExpiresAt.Add(-time.Second)); err == nil {
		t.Fatal("a file before its expiry was expired")
	}
	if err := e.st.expire(rec.id(), *rec.meta.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	got := decodeJSON[FileMetadata](t, e.do("GET", "/api/v1/files/"+m.FileID, nil, nil), 200)
	if got.Status != "expired" {
		t.Fatalf("status %s", got.Status)
	}
	expectError(t, e.download(m.FileID, nil), 404, "NOT_FOUND")
	page := decodeJSON[fileListResponse](t, e.do("GET", "/api/v1/files?status=expired", nil, nil), 200)
	if page.Total != 1 {
		t.Fatalf("expired list total %d", page.Total)
	}
}

func TestGCLeavesPermanentFiles(t *testing.T) {
	e := newTestEnv(t, withMode(modeRW))
	m := e.upload("p", []byte("p"))
	e.gc.now = func() time.Time { return time.Now().Add(100 * 365 * 24 * time.Hour) }
	res, _ := e.gc.run(context.Background())
	if res.Expired+res.Purged != 0 {
		t.Fatalf("gc touched a permanent file: %+v", res)
	}
	if body := readBody(t, e.download(m.FileID, nil)); string(body) != "p" {
		t.Fatal("permanent file damaged")
	}
}
