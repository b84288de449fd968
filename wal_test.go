package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
)

// crashAfter simulates a crash at a point of an upload: the WAL entry is begun, and the
// data directory holds whatever `stage` says, then the process "dies" (nothing else runs).
func crashedUpload(t *testing.T, e *testEnv, stage string) (uuid.UUID, []byte) {
	t.Helper()
	content := []byte("partial content " + stage)
	up, err := e.st.beginUpload(int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if err := up.writeContent(bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	up.f.Sync()
	up.f.Close()
	up.f = nil
	name := storageName("x.bin", "u", time.Now(), up.id)
	switch stage {
	case "temp only":
	case "blob renamed":
		os.Rename(filepath.Join(up.dir, up.tmp), filepath.Join(up.dir, name))
	case "sidecar temp":
		os.Rename(filepath.Join(up.dir, up.tmp), filepath.Join(up.dir, name))
		os.WriteFile(filepath.Join(up.dir, tempName(up.id)), []byte(`{"half":`), 0o640)
	case "complete":
		rec, err := up.persist(uploadInfo{Filename: "x.bin", ContentType: "a/b", UploadedBy: "u"}, modeEdit, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		name = rec.storageName
	}
	up.done = true // the process died: no abort, no WAL finish
	return up.id, content
}

func TestRecoveryRollsBackIncompleteUploads(t *testing.T) {
	for _, stage := range []string{"temp only", "blob renamed", "sidecar temp"} {
		t.Run(stage, func(t *testing.T) {
			e := newTestEnv(t)
			id, _ := crashedUpload(t, e, stage)
			if n, _ := e.st.wal.countPending(); n != 1 {
				t.Fatalf("pending before restart: %d", n)
			}
			e.restart()
			files, _ := listIDFiles(e.opts.dataDir, id)
			if len(files.blobs)+len(files.sidecars)+len(files.temps) != 0 {
				t.Fatalf("leftovers after recovery: %+v", files)
			}
			if _, ok := e.st.index.Get(id); ok {
				t.Fatal("rolled-back upload is in the index")
			}
			assertNoLeftovers(t, e)
		})
	}
}

func TestRecoveryRollsForwardCompleteUpload(t *testing.T) {
	e := newTestEnv(t)
	id, content := crashedUpload(t, e, "complete")
	e.restart()
	rec, ok := e.st.index.Get(id)
	if !ok {
		t.Fatal("complete upload lost")
	}
	got := readBody(t, e.download(rec.meta.FileID, nil))
	if !bytes.Equal(got, content) {
		t.Fatalf("bytes %q", got)
	}
	assertNoLeftovers(t, e)
}

func TestRecoveryFinishesPurge(t *testing.T) {
	e := newTestEnv(t)
	m := e.upload("p", []byte("purge me"))
	id := mustID(t, m.FileID)
	if err := e.st.softDelete(id); err != nil {
		t.Fatal(err)
	}
	rec, _ := e.st.index.Get(id)
	// crash after the WAL entry and the sidecar removal, before the blob removal
	if _, err := e.st.wal.begin(walFilePurge, id, time.Now()); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(shardDir(e.opts.dataDir, id), rec.storageName+sidecarSuffix))
	e.restart()
	files, _ := listIDFiles(e.opts.dataDir, id)
	if len(files.blobs)+len(files.sidecars) != 0 {
		t.Fatalf("purge not finished: %+v", files)
	}
	assertNoLeftovers(t, e)
}

func TestRecoveryOfSidecarRewriteKeepsACompleteSidecar(t *testing.T) {
	e := newTestEnv(t)
	m := e.upload("u", []byte("u"))
	id := mustID(t, m.FileID)
	e.st.wal.begin(walFileUpdate, id, time.Now())
	os.WriteFile(filepath.Join(shardDir(e.opts.dataDir, id), tempName(id)), []byte(`{"trunc`), 0o640)
	e.restart()
	got := decodeJSON[FileMetadata](t, e.do("GET", "/api/v1/files/"+m.FileID, nil, nil), 200)
	if got.Checksum != m.Checksum || got.Status != "active" {
		t.Fatalf("metadata after recovery %+v", got)
	}
	assertNoLeftovers(t, e)
}

func TestRecoveryQuarantinesUnreadableEntries(t *testing.T) {
	e := newTestEnv(t)
	os.WriteFile(filepath.Join(e.opts.walDir, "junk"+walSuffix), []byte("not json"), 0o640)
	os.WriteFile(filepath.Join(e.opts.walDir, tempPrefix+"x"+walSuffix), []byte("half"), 0o640)
	e.restart()
	entries, _ := os.ReadDir(e.opts.walDir)
	var names []string
	for _, de := range entries {
		names = append(names, de.Name())
	}
	if strings.Join(names, ",") != ".corrupt.junk"+walSuffix {
		t.Fatalf("WAL dir after recovery: %v", names)
	}
}

func TestWALEntryFormat(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(dir)
	id := uuid.New()
	tx, err := w.begin(walFileCreate, id, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, tx.entry.TransactionID+walSuffix))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"transaction_id":"` + tx.entry.TransactionID + `","operation_type":"file_create","status":"pending","file_id":"` +
		id.String() + `","started_at":"2026-01-02T03:04:05Z","completed_at":null}` + "\n"
	if string(data) != want {
		t.Fatalf("entry\n got %s\nwant %s", data, want)
	}
	if err := tx.finish(); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.countPending(); n != 0 {
		t.Fatal("finished entry not removed")
	}
}

func TestTempFilesRemovedAtStartButNotByFollowerScan(t *testing.T) {
	e := newTestEnv(t)
	id := uuid.New()
	dir := shardDir(e.opts.dataDir, id)
	os.MkdirAll(dir, 0o750)
	tmp := filepath.Join(dir, tempName(id))
	os.WriteFile(tmp, []byte("x"), 0o640)
	if _, err := scanDataDir(context.Background(), e.opts.dataDir, false, e.st.log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatal("a read-only scan removed a temp file")
	}
	e.restart()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatal("temp file survived start-up")
	}
}

func FuzzWALEntry(f *testing.F) {
	f.Add([]byte(`{"transaction_id":"a","operation_type":"file_create","status":"pending","file_id":"6ba7b810-9dad-41d1-80b4-00c04fd430c8"}`))
	f.Add([]byte(`{"operation_type":"file_purge","file_id":"../../x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "e"+walSuffix), data, 0o640)
		w := &wal{dir: dir}
		e, err := w.readEntry("e" + walSuffix)
		if err != nil {
			return
		}
		if _, err := parseFileID(e.FileID); err != nil {
			t.Fatalf("accepted entry with file_id %q", e.FileID)
		}
	})
}

// TestGroupSyncWaitsForAnFsyncStartedAfterTheCall: a caller that arrives while an fsync
// is running must not be released by it (its entry may have been created after that
// fsync started), but by the next one, which it shares with the other late callers.
func TestGroupSyncWaitsForAnFsyncStartedAfterTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan error)
		fsyncs := 0
		g := &groupSync{dir: "unused", syncFn: func(string) error {
			fsyncs++
			return <-release
		}}
		first := make(chan error, 1)
		go func() { first <- g.sync() }()
		synctest.Wait() // fsync #1 is running
		late := make(chan error, 2)
		for range 2 {
			go func() { late <- g.sync() }()
		}
		synctest.Wait() // both late callers wait behind #1
		release <- nil  // #1 succeeds
		if err := <-first; err != nil {
			t.Fatalf("first caller: %v", err)
		}
		synctest.Wait() // #2 started for both late callers, and is blocked
		select {
		case err := <-late:
			t.Fatalf("a late caller returned after an fsync that started before it (%v)", err)
		default:
		}
		boom := errors.New("disk gone")
		release <- boom // #2 fails: both late callers see it
		for range 2 {
			if err := <-late; !errors.Is(err, boom) {
				t.Fatalf("late caller got %v, want the failure of the fsync it waited for", err)
			}
		}
		if fsyncs != 2 {
			t.Fatalf("%d fsyncs for three callers, want 2", fsyncs)
		}
	})
	if err := (&groupSync{dir: filepath.Join(t.TempDir(), "missing")}).sync(); err == nil {
		t.Fatal("fsync of a missing directory succeeded")
	}
}
