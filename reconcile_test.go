package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestReconcileFindsEveryIssueTypeAndDeletesNothing(t *testing.T) {
	e := newTestEnv(t)
	okFile := e.upload("ok", []byte("fine"))
	missing := e.upload("missing", []byte("gone"))
	short := e.upload("short", []byte("0123456789"))
	flipped := e.upload("flip", []byte("abcdef"))
	moved := e.upload("moved", []byte("moved"))
	recOf := func(m FileMetadata) *fileRecord { r, _ := e.st.index.Get(mustID(t, m.FileID)); return r }

	os.Remove(e.st.blobPath(recOf(missing)))
	os.WriteFile(e.st.blobPath(recOf(short)), []byte("01234"), 0o640)
	os.WriteFile(e.st.blobPath(recOf(flipped)), []byte("ABCDEF"), 0o640)
	orphanID := uuid.New()
	orphanDir := shardDir(e.opts.dataDir, orphanID)
	os.MkdirAll(orphanDir, 0o750)
	orphanName := storageName("orphan.bin", "x", time.Now(), orphanID)
	os.WriteFile(filepath.Join(orphanDir, orphanName), []byte("orphan"), 0o640)
	garbageRel := shardRel(orphanID) + "/junk" + sidecarSuffix
	os.WriteFile(filepath.Join(e.opts.dataDir, garbageRel), []byte("{not json"), 0o640)
	// a valid sidecar moved into the wrong shard directory is not trusted
	mv := recOf(moved)
	wrongDir := filepath.Join(e.opts.dataDir, "00", "00")
	if shardRel(mv.id()) == "00/00" {
		wrongDir = filepath.Join(e.opts.dataDir, "ff", "ff")
	}
	os.MkdirAll(wrongDir, 0o750)
	os.Rename(filepath.Join(shardDir(e.opts.dataDir, mv.id()), mv.storageName+sidecarSuffix), filepath.Join(wrongDir, mv.storageName+sidecarSuffix))

	before := listAllFiles(t, e.opts.dataDir)
	rep := decodeJSON[reconcileReport](t, e.do("POST", "/api/v1/maintenance/reconcile", nil, nil), 200)
	after := listAllFiles(t, e.opts.dataDir)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("reconcile changed the data dir:\nbefore %v\nafter  %v", before, after)
	}

	byType := map[string][]reconcileIssue{}
	for _, is := range rep.Issues {
		byType[is.Type] = append(byType[is.Type], is)
		if strings.HasPrefix(is.Path, "/") || strings.Contains(is.Path, e.opts.dataDir) || strings.Contains(is.Path, "..") {
			t.Errorf("issue path is not relative: %q", is.Path)
		}
	}
	expect := func(typ, fileID string) {
		t.Helper()
		for _, is := range byType[typ] {
			if is.FileID == fileID {
				return
			}
		}
		t.Errorf("no %s issue for %s; issues %+v", typ, fileID, rep.Issues)
	}
	expect(issueMissingFile, missing.FileID)
	expect(issueSizeMismatch, short.FileID)
	expect(issueChecksumMismatch, flipped.FileID)
	expect(issueOrphanedFile, orphanID.String())
	expect(issueOrphanedFile, mv.meta.FileID) // its bytes lost their sidecar
	expect(issueOrphanedAttr, mv.meta.FileID) // and the sidecar is in the wrong place
	if len(byType[issueOrphanedAttr]) != 2 {
		t.Errorf("orphaned_attr issues: %+v", byType[issueOrphanedAttr])
	}
	s := rep.Summary
	if s.OK != 1 || s.MissingFiles != len(byType[issueMissingFile]) || s.SizeMismatches != len(byType[issueSizeMismatch]) ||
		s.ChecksumMismatches != len(byType[issueChecksumMismatch]) || s.OrphanedFiles != len(byType[issueOrphanedFile]) ||
		s.OrphanedAttrs != len(byType[issueOrphanedAttr]) || rep.IssuesTruncated {
		t.Fatalf("summary %+v does not match issues %+v", s, rep.Issues)
	}
	if rep.FilesChecked != s.OK+len(rep.Issues) || !rep.CompletedAt.After(rep.StartedAt) && !rep.CompletedAt.Equal(rep.StartedAt) {
		t.Fatalf("files_checked %d, times %v %v", rep.FilesChecked, rep.StartedAt, rep.CompletedAt)
	}
	// the index now matches the sidecars: the moved file is no longer listed
	if _, ok := e.st.index.Get(mv.id()); ok {
		t.Error("index still lists a file whose sidecar is not where its id says")
	}
	if _, ok := e.st.index.Get(mustID(t, okFile.FileID)); !ok {
		t.Error("healthy file dropped from the index")
	}
	if got := counterValue(t, e, `se_reconcile_issues_total{type="checksum_mismatch"}`); got != 1 {
		t.Errorf("se_reconcile_issues_total checksum %v", got)
	}
}

func listAllFiles(t *testing.T, root string) []string {
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			data, _ := os.ReadFile(p)
			out = append(out, p+" "+string(bytes.TrimSpace(data[:min(len(data), 16)])))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestReconcileOneAtATime(t *testing.T) {
	e := newTestEnv(t)
	e.upload("a", []byte("a"))
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.recon.onStart = func() { once.Do(func() { close(started); <-release }) }
	first := make(chan *http.Response, 1)
	go func() { first <- e.do("POST", "/api/v1/maintenance/reconcile", nil, nil) }()
	<-started
	expectError(t, e.do("POST", "/api/v1/maintenance/reconcile", nil, nil), 409, "RECONCILE_IN_PROGRESS")
	info := decodeJSON[storageInfo](t, e.do("GET", "/api/v1/info", nil, nil), 200)
	if info.Status != "maintenance" {
		t.Errorf("info status during reconcile %q", info.Status)
	}
	close(release)
	rep := decodeJSON[reconcileReport](t, <-first, 200)
	if rep.Summary.OK != 1 {
		t.Fatalf("first run %+v", rep)
	}
}

func TestReconcileIssueListIsCapped(t *testing.T) {
	e := newTestEnv(t)
	for range maxReportedIssues + 5 {
		id := uuid.New()
		dir := shardDir(e.opts.dataDir, id)
		os.MkdirAll(dir, 0o750)
		os.WriteFile(filepath.Join(dir, storageName("o", "x", time.Now(), id)), nil, 0o640)
	}
	rep := decodeJSON[reconcileReport](t, e.do("POST", "/api/v1/maintenance/reconcile", nil, nil), 200)
	if len(rep.Issues) != maxReportedIssues || !rep.IssuesTruncated || rep.Summary.OrphanedFiles != maxReportedIssues+5 {
		t.Fatalf("issues %d truncated %v summary %+v", len(rep.Issues), rep.IssuesTruncated, rep.Summary)
	}
}

// TestReconcileRebuildKeepsConcurrentWrites: uploads that land while the rebuild scans
// are not lost when the rebuilt index is swapped in.
func TestReconcileRebuildKeepsConcurrentWrites(t *testing.T) {
	e := newTestEnv(t)
	for i := range 200 {
		storeUpload(t, e.st, "pre", []byte{byte(i)})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var uploaded []string
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			uploaded = append(uploaded, storeUpload(t, e.st, "during", []byte("d")).meta.FileID)
		}
	})
	for range 3 {
		if _, err := e.recon.run(t.Context(), "test"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for _, id := range uploaded {
		if _, ok := e.st.index.Get(mustID(t, id)); !ok {
			t.Fatalf("upload %s lost by the index rebuild", id)
		}
	}
	if e.st.index.Len() != 200+len(uploaded) {
		t.Fatalf("index has %d entries, want %d", e.st.index.Len(), 200+len(uploaded))
	}
}
