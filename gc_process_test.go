package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"testing"
	"time"
)

// TestProcessKillDuringGC: kill -9 the SE while GC purges deleted files, several times.
// After each restart every active file is intact, no deleted file is active again, the
// data dir holds only complete pairs, and GC eventually removes every deleted file.
func TestProcessKillDuringGC(t *testing.T) {
	f := newSEFixture(t)
	f.env["SE_GC_INTERVAL"] = strp("1h") // no GC while the files are prepared
	f.env["SE_MODE"] = strp("edit")
	p := f.startReady()
	token := f.token(scopeFilesRead, scopeFilesWrite)
	var active, deleted []procFileMeta
	// enough deleted files that one GC pass takes a while (each purge is a WAL entry and
	// fsyncs), so the kills below land inside passes
	for i := range 400 {
		m := f.uploadPattern(token, fmt.Sprintf("gc-%d.bin", i), uint64(i), int64(1024+i))
		if i%8 == 0 {
			active = append(active, m)
			continue
		}
		deleted = append(deleted, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range deleted {
		resp, err := f.request(ctx, "DELETE", "/api/v1/files/"+m.FileID, token, nil)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("delete %s: %v %v", m.FileID, resp, err)
		}
		resp.Body.Close()
	}
	f.killHard(p)
	f.env["SE_GC_INTERVAL"] = strp("1s")
	p = f.startReady()
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	midRun := 0
	for cycle := range 4 {
		// the first GC pass starts one second after start-up; kill somewhere in it
		time.Sleep(time.Duration(1000+rng.IntN(300)) * time.Millisecond)
		f.killHard(p)
		p = f.startReady()
		var left procFileList
		f.mustGetJSON("/api/v1/files?status=deleted&limit=1", token, http.StatusOK, &left)
		t.Logf("cycle %d: %d of %d deleted files left after the kill", cycle, left.Total, len(deleted))
		if left.Total > 0 && left.Total < len(deleted) {
			midRun++
		}
		for _, m := range active {
			f.checkDownload(token, m)
		}
		for _, m := range deleted {
			var got procFileMeta
			status, err := f.getJSON("/api/v1/files/"+m.FileID, token, &got)
			if err != nil || (status != http.StatusNotFound && !(status == http.StatusOK && got.Status == "deleted")) {
				t.Fatalf("cycle %d: deleted file %s is %d %q (%v)", cycle, m.FileID, status, got.Status, err)
			}
		}
		checkStoreOnDisk(t, f.dataDir, f.walDir)
	}
	if midRun == 0 {
		t.Log("no kill landed inside a GC pass this time (timing); the consistency checks still ran")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var page procFileList
		f.mustGetJSON("/api/v1/files?status=deleted", token, http.StatusOK, &page)
		if page.Total == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC left %d deleted files", page.Total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if pairs := checkStoreOnDisk(t, f.dataDir, f.walDir); pairs != len(active) {
		t.Fatalf("%d pairs on disk, want %d active files", pairs, len(active))
	}
	for _, m := range active {
		f.checkDownload(token, m)
	}
}
