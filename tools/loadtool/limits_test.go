package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRawWriteAndHashSeeTheSameBytes(t *testing.T) {
	block := randomBlock(1000)
	path := filepath.Join(t.TempDir(), "raw")
	const size = 300_000 // not a multiple of the block or the chunk
	if _, err := rawWriteFsync(path, block, size); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || len(data) != size {
		t.Fatalf("raw file: %d bytes, %v", len(data), err)
	}
	if !bytes.Equal(data[:1000], block) || !bytes.Equal(data[1000:2000], block) {
		t.Fatal("raw file does not repeat the block")
	}
	_, digest := sha256Stream(block, size)
	sum := sha256.Sum256(data)
	if digest != hex.EncodeToString(sum[:]) {
		t.Fatal("sha256Stream hashes other bytes than rawWriteFsync writes")
	}
}

func TestDurableCreatesLeaveOnlyFinalFiles(t *testing.T) {
	dir := t.TempDir()
	res, err := durableCreates(dir, 3, 50*time.Millisecond, 4096)
	if err != nil {
		t.Fatal(err)
	}
	leaves, _ := os.ReadDir(dir)
	files := 0
	for _, l := range leaves {
		entries, err := os.ReadDir(filepath.Join(dir, l.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || info.Size() != 4096 || e.Name()[0] == '.' {
				t.Fatalf("leftover %s (%v)", e.Name(), err)
			}
			files++
		}
	}
	if files != res.Ops || files == 0 {
		t.Fatalf("%d files for %d timed creates", files, res.Ops)
	}
}
