package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"golang.org/x/sys/unix"
)

// TestDiskFullIs507 fills a real (tmpfs) filesystem: the upload gets 507 STORAGE_FULL and
// its partial bytes are gone. It needs root to mount; CI runs as root.
func TestDiskFullIs507(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	dataDir := filepath.Join(mnt, "data")
	e := newTestEnv(t, func(o *testEnvOptions) { o.dataDir = dataDir; o.maxFileSize = 64 << 20; o.maxCapacity = 1 << 30 })
	var before unix.Statfs_t
	unix.Statfs(mnt, &before)
	expectError(t, e.uploadParts(uploadPart{name: "file", filename: "big", data: bytes.Repeat([]byte("z"), 3<<20)}), 507, "STORAGE_FULL")
	var after unix.Statfs_t
	unix.Statfs(mnt, &after)
	if after.Bfree < before.Bfree {
		t.Fatalf("partial bytes left behind: %d free blocks before, %d after", before.Bfree, after.Bfree)
	}
	assertNoLeftovers(t, e)
	// the store still works once space is available
	e.upload("small", []byte("fits"))
}

func TestCapacityGuard(t *testing.T) {
	active := int64(0)
	c := &capacityGuard{max: 100, active: func() int64 { return active }}
	if !c.reserve(60) || c.reserve(41) || !c.reserve(40) || c.reserve(1) {
		t.Fatal("reservations must stop exactly at capacity")
	}
	c.release(60)
	active = 60 // a commit adds to active before releasing its reservation
	if c.reserve(1) {
		t.Fatal("active + reserved must count together")
	}
	c.release(40)
	if !c.reserve(40) || c.reservedBytes() != 40 {
		t.Fatal("released capacity must be reusable")
	}
}

// TestUploadSequencerPublishesInTicketOrder: tickets resolve out of order, publications
// happen in ticket (= uploaded_at) order, and an abandoned ticket never blocks.
func TestUploadSequencerPublishesInTicketOrder(t *testing.T) {
	var q uploadSequencer
	base := time.Now()
	tickets := make([]time.Time, 6)
	for i := range tickets {
		tickets[i] = q.ticket(base) // same clock reading: still strictly increasing
		if i > 0 && !tickets[i].After(tickets[i-1]) {
			t.Fatal("tickets not strictly increasing")
		}
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for _, i := range []int{5, 3, 4, 1, 0} { // 2 is abandoned
		wg.Go(func() {
			q.resolve(tickets[i], func() { mu.Lock(); order = append(order, i); mu.Unlock() })
		})
	}
	time.Sleep(20 * time.Millisecond) // let later tickets queue up behind the earlier ones
	q.resolve(tickets[2], nil)
	wg.Wait()
	if fmt.Sprint(order) != "[0 1 3 4 5]" {
		t.Fatalf("publication order %v", order)
	}
}

// TestStartupRepairsInterruptedOperationsWithoutWAL: another leader crashed mid-upload
// and mid-purge; its WAL is on its own volume. The temp files left behind are enough
// for this writer's start-up to repair both.
func TestStartupRepairsInterruptedOperationsWithoutWAL(t *testing.T) {
	e := newTestEnv(t)
	keep := e.upload("keep", []byte("keep"))
	purged := e.upload("purged", []byte("purged"))
	// crashed upload: blob renamed, sidecar still a temp file
	id := uuid.New()
	dir := shardDir(e.opts.dataDir, id)
	os.MkdirAll(dir, 0o750)
	name := storageName("c", "u", time.Now(), id)
	os.WriteFile(filepath.Join(dir, name), []byte("crashed"), 0o640)
	os.WriteFile(filepath.Join(dir, tempName(id)), []byte(`{"file_id":`), 0o640)
	// crashed purge: sidecar already renamed to a temp file, blob still there
	prec, _ := e.st.index.Get(mustID(t, purged.FileID))
	pdir := shardDir(e.opts.dataDir, prec.id())
	os.Rename(filepath.Join(pdir, prec.storageName+sidecarSuffix), filepath.Join(pdir, tempName(prec.id())))
	e.restart()
	for _, fid := range []uuid.UUID{id, prec.id()} {
		files, _ := listIDFiles(e.opts.dataDir, fid)
		if len(files.blobs)+len(files.sidecars)+len(files.temps) != 0 {
			t.Fatalf("%s not repaired: %+v", fid, files)
		}
	}
	if body := readBody(t, e.download(keep.FileID, nil)); string(body) != "keep" {
		t.Fatal("an untouched file was damaged by the repair")
	}
	assertNoLeftovers(t, e)
}
