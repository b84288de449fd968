// seed.go — writes files straight into an SE data directory in the SE's on-disk format
// (README "On disk", CONTRACT §6), which is ~100× faster than uploading them over HTTPS.
//
// For file i (0-based) of a seed run with base time T:
//
//	file_id       random UUID v4, canonical lowercase
//	uploaded_at   T + i ms (UTC), so the list order is the seed order
//	status        "deleted" when i%10 == 0, "expired" when i%10 == 1, else "active"
//	retention     "temporary", ttl_days 30, expires_at = uploaded_at + 30 days
//	content       the same blobSize bytes for every file (one checksum)
//	storage_name  "seed-<i>_loadtool_<uploaded_at as 20060102T150405Z>_<file_id>.bin"
//
// and two files in the shard directory <id[0:2]>/<id[2:4]>: the blob <storage_name>
// and the sidecar <storage_name>.attr.json = FileMetadata + "storage_name" as one JSON
// line. Nothing is fsynced: the seed is test data, and the measurements read it warm.
// The SE must index every seeded file; the run checks that its list total equals N, so
// a change of the on-disk format in the product shows up as a failed run here.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// seedSidecar is the on-disk sidecar document, fields in FileMetadata order.
type seedSidecar struct {
	FileID           string     `json:"file_id"`
	OriginalFilename string     `json:"original_filename"`
	ContentType      string     `json:"content_type"`
	Size             int64      `json:"size"`
	Checksum         string     `json:"checksum"`
	UploadedBy       string     `json:"uploaded_by"`
	UploadedAt       time.Time  `json:"uploaded_at"`
	Description      *string    `json:"description"`
	Tags             []string   `json:"tags"`
	Status           string     `json:"status"`
	RetentionPolicy  string     `json:"retention_policy"`
	TTLDays          *int       `json:"ttl_days"`
	ExpiresAt        *time.Time `json:"expires_at"`
	StorageName      string     `json:"storage_name"`
}

const (
	sidecarSuffix   = ".attr.json"
	seedTTLDays     = 30
	storageTimeForm = "20060102T150405Z"
)

// newUUIDv4 returns a random RFC 9562 version 4 UUID in canonical lowercase form.
func newUUIDv4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// seedStatus is the status of seeded file i.
func seedStatus(i int) string {
	switch i % 10 {
	case 0:
		return "deleted"
	case 1:
		return "expired"
	}
	return "active"
}

// seedRecord builds the sidecar of seeded file i.
func seedRecord(i int, id string, base time.Time, size int64, checksum string) seedSidecar {
	at := base.Add(time.Duration(i) * time.Millisecond).UTC()
	exp := at.Add(seedTTLDays * 24 * time.Hour)
	ttl := seedTTLDays
	name := "seed-" + strconv.Itoa(i)
	return seedSidecar{
		FileID: id, OriginalFilename: name + ".bin", ContentType: "application/octet-stream",
		Size: size, Checksum: checksum, UploadedBy: tokenSubject, UploadedAt: at,
		Status: seedStatus(i), RetentionPolicy: "temporary", TTLDays: &ttl, ExpiresAt: &exp,
		StorageName: name + "_" + tokenSubject + "_" + at.Format(storageTimeForm) + "_" + id + ".bin",
	}
}

// encodeSeedSidecar renders the one-line sidecar document.
func encodeSeedSidecar(sc seedSidecar) ([]byte, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return nil, fmt.Errorf("encode sidecar: %w", err)
	}
	return append(b, '\n'), nil
}

// shardRel is the shard directory of a file id: "ab/cd".
func shardRel(id string) string { return id[0:2] + "/" + id[2:4] }

// seedDataDir writes n files into dataDir (which need not exist) with uploaded_at
// starting at base. Work is spread over a few goroutines per core.
func seedDataDir(dataDir string, n int, base time.Time, blobSize int) error {
	blob := randomBlock(blobSize)
	sum := sha256.Sum256(blob)
	checksum := hex.EncodeToString(sum[:])
	jobs := make(chan int, 1024)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range jobs {
				if err := seedOne(dataDir, i, base, blob, checksum); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func seedOne(dataDir string, i int, base time.Time, blob []byte, checksum string) error {
	id := newUUIDv4()
	sc := seedRecord(i, id, base, int64(len(blob)), checksum)
	data, err := encodeSeedSidecar(sc)
	if err != nil {
		return err
	}
	dir := filepath.Join(dataDir, shardRel(id))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("seed: create shard dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, sc.StorageName), blob, 0o640); err != nil {
		return fmt.Errorf("seed: write blob: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, sc.StorageName+sidecarSuffix), data, 0o640); err != nil {
		return fmt.Errorf("seed: write sidecar: %w", err)
	}
	return nil
}
