package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
