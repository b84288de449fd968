package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewUUIDv4(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newUUIDv4()
		if !uuidV4.MatchString(id) {
			t.Fatalf("%q is not a canonical lowercase UUID v4", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

// TestSeedSidecarFormat pins the document the SE's decodeSidecar accepts: the
// FileMetadata fields in order plus storage_name, one line, and a storage name that
// follows the SE's rule (components of [A-Za-z0-9-], the UTC time, the file id).
func TestSeedSidecarFormat(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	id := "0123abcd-0000-4000-8000-000000000001"
	sc := seedRecord(42, id, base, 7, strings.Repeat("ab", 32))
	data, err := encodeSeedSidecar(sc)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"file_id":"0123abcd-0000-4000-8000-000000000001","original_filename":"seed-42.bin",` +
		`"content_type":"application/octet-stream","size":7,"checksum":"` + strings.Repeat("ab", 32) + `",` +
		`"uploaded_by":"loadtool","uploaded_at":"2026-01-02T02:04:05.042Z","description":null,"tags":null,` +
		`"status":"active","retention_policy":"temporary","ttl_days":30,"expires_at":"2026-02-01T02:04:05.042Z",` +
		`"storage_name":"seed-42_loadtool_20260102T020405Z_0123abcd-0000-4000-8000-000000000001.bin"}` + "\n"
	if string(data) != want {
		t.Fatalf("sidecar\n got %s\nwant %s", data, want)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9-]{1,64}_[A-Za-z0-9-]{1,32}_\d{8}T\d{6}Z_` + id + `\.bin$`).MatchString(sc.StorageName) {
		t.Fatalf("storage name %q breaks the SE's rule", sc.StorageName)
	}
}

func TestSeedStatusMix(t *testing.T) {
	all, active := expectedTotals(100)
	if all != 100 || active != 80 {
		t.Fatalf("totals %d/%d, want 100/80", all, active)
	}
	counts := map[string]int{}
	for i := range 100 {
		counts[seedStatus(i)]++
	}
	if counts["deleted"] != 10 || counts["expired"] != 10 || counts["active"] != 80 {
		t.Fatalf("status mix %v", counts)
	}
}

// TestSeedDataDir checks the layout: every sidecar sits in the shard directory of its
// file id beside its blob, which has the recorded size and checksum; the raw reader
// finds all of them.
func TestSeedDataDir(t *testing.T) {
	dir := t.TempDir()
	const n = 50
	if err := seedDataDir(dir, n, time.Now().Add(-time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	leaves, err := shardLeaves(dir)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, leaf := range leaves {
		entries, err := os.ReadDir(leaf)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), sidecarSuffix) {
				continue
			}
			found++
			data, err := os.ReadFile(filepath.Join(leaf, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Count(data, []byte("\n")) != 1 || data[len(data)-1] != '\n' {
				t.Fatalf("sidecar %s is not one line", e.Name())
			}
			var sc seedSidecar
			if err := json.Unmarshal(data, &sc); err != nil {
				t.Fatal(err)
			}
			if rel, _ := filepath.Rel(dir, leaf); filepath.ToSlash(rel) != shardRel(sc.FileID) {
				t.Fatalf("sidecar of %s in %s", sc.FileID, rel)
			}
			if sc.StorageName+sidecarSuffix != e.Name() {
				t.Fatalf("sidecar name %s, storage_name %s", e.Name(), sc.StorageName)
			}
			blob, err := os.ReadFile(filepath.Join(leaf, sc.StorageName))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(blob)
			if int64(len(blob)) != sc.Size || hex.EncodeToString(sum[:]) != sc.Checksum {
				t.Fatalf("blob of %s: %d bytes, sidecar says %d", sc.FileID, len(blob), sc.Size)
			}
		}
	}
	if found != n {
		t.Fatalf("found %d sidecars, seeded %d", found, n)
	}
	_, count, err := readAllSidecars(dir)
	if err != nil || count != n {
		t.Fatalf("readAllSidecars: %d, %v; want %d", count, err, n)
	}
}
