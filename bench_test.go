package main

// Benchmarks of the hot paths issue 6 names that index_test.go (index insert, lookup,
// page), jwt_test.go (verification with a cached key) and metrics_test.go do not
// cover: the sidecar codec, the upload pipeline without HTTP, the start-up index build
// from sidecars on disk, the list handler (index page + JSON) and the verifying
// download reader. Every benchmark reports allocations and runs with -benchtime=1x
// (tools/ci/check-bench.sh), so CI keeps them compiling and running; the numbers
// themselves are read by people (BENCHMARKS.md), never asserted.
//
// Profiling, e.g.:
//
//	go test -run '^$' -bench 'UploadPipeline/parallel' -benchtime 3s -cpuprofile cpu.out -blockprofile block.out .
//	go tool pprof -top cpu.out

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// benchSidecarRecord is a typical record: temporary retention, description and tags.
func benchSidecarRecord(b *testing.B, id uuid.UUID, at time.Time) *fileRecord {
	b.Helper()
	desc := "quarterly report, final version"
	ttl := defaultTTLDays
	exp := at.Add(time.Duration(ttl) * 24 * time.Hour)
	m := FileMetadata{
		FileID: id.String(), OriginalFilename: "report-2026-q1.pdf", ContentType: "application/pdf",
		Size: 1 << 20, Checksum: strings.Repeat("5e", 32), UploadedBy: "ingester", UploadedAt: at,
		Description: &desc, Tags: []string{"finance", "q1"}, Status: statusActive.String(),
		RetentionPolicy: retentionTemporary, TTLDays: &ttl, ExpiresAt: &exp,
	}
	rec, err := newFileRecord(m, storageName(m.OriginalFilename, m.UploadedBy, at, id))
	if err != nil {
		b.Fatal(err)
	}
	return rec
}

func BenchmarkSidecarEncode(b *testing.B) {
	rec := benchSidecarRecord(b, uuid.New(), time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeSidecar(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSidecarDecode(b *testing.B) {
	data, err := encodeSidecar(benchSidecarRecord(b, uuid.New(), time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeSidecar(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUploadPipeline is an upload without HTTP: WAL entry, stream into a temp
// file while hashing, fsync, rename, sidecar, directory fsync, index, WAL removal.
// "serial" is one upload at a time (latency); "parallel" runs 8 goroutines per
// GOMAXPROCS, where the store's fsyncs can overlap (the 4 KiB uploads/s figure).
func BenchmarkUploadPipeline(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20, 32 << 20} {
		content := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		b.Run(fmt.Sprintf("serial/size=%d", size), func(b *testing.B) {
			st := newTestEnv(b).st
			b.SetBytes(int64(size))
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				storeUpload(b, st, "bench.bin", content)
			}
			reportCPUPerOp(b, cpu)
		})
		if size > 4<<10 {
			continue
		}
		b.Run(fmt.Sprintf("parallel/size=%d", size), func(b *testing.B) {
			st := newTestEnv(b).st
			b.SetBytes(int64(size))
			b.SetParallelism(8)
			b.ReportAllocs()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					storeUpload(b, st, "bench.bin", content)
				}
			})
			reportCPUPerOp(b, cpu)
		})
	}
}

// processCPU is the CPU time (user + system) this process has used so far. Uploads
// are dominated by kernel work (creates, renames, fsyncs), which ns/op under
// contention hides and CPU per upload shows.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// reportCPUPerOp reports the process CPU time per iteration since start.
func reportCPUPerOp(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// writeBenchSidecars writes n blob+sidecar pairs straight into dataDir in the store's
// on-disk format (faster than n fsynced uploads), one upload time per millisecond.
func writeBenchSidecars(b *testing.B, dataDir string, n int) {
	b.Helper()
	blob := []byte("bench blob\n")
	sum := sha256.Sum256(blob)
	base := time.Now().Add(-time.Duration(n)*time.Millisecond - time.Hour).UTC()
	for i := range n {
		id := uuid.New()
		at := base.Add(time.Duration(i) * time.Millisecond)
		m := FileMetadata{
			FileID: id.String(), OriginalFilename: fmt.Sprintf("file-%d.bin", i), ContentType: "application/octet-stream",
			Size: int64(len(blob)), Checksum: hex.EncodeToString(sum[:]), UploadedBy: "bench", UploadedAt: at,
			Status: statusActive.String(), RetentionPolicy: retentionPermanent,
		}
		rec, err := newFileRecord(m, storageName(m.OriginalFilename, m.UploadedBy, at, id))
		if err != nil {
			b.Fatal(err)
		}
		data, err := encodeSidecar(rec)
		if err != nil {
			b.Fatal(err)
		}
		dir := shardDir(dataDir, id)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rec.storageName), blob, 0o640); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rec.storageName+sidecarSuffix), data, 0o640); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexBuild is the store's start-up on n files already on disk (WAL
// recovery, parallel scan and decode of every sidecar, index build): restart-to-ready
// minus the process and TLS set-up. heap-B/file is the live heap the index and its
// records hold per file after the build (compare: RSS per indexed file).
func BenchmarkIndexBuild(b *testing.B) {
	const n = 10_000
	dataDir, walDir := b.TempDir(), b.TempDir()
	writeBenchSidecars(b, dataDir, n)
	b.ReportAllocs()
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		st, err := openStore(storeOptions{DataDir: dataDir, WALDir: walDir, SeedMode: modeEdit,
			MaxFileSize: 1 << 30, MaxCapacity: 1 << 40, Logger: discardLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if c := st.index.Counts(); c.Active != n {
			b.Fatalf("indexed %d active files, wrote %d", c.Active, n)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(st)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/file")
}

// BenchmarkListHandler is GET /api/v1/files with limit 1000 after authentication: the
// index page plus the JSON response, at the sizes, filters and offsets of the list
// latency figure.
func BenchmarkListHandler(b *testing.B) {
	e := newTestEnv(b)
	for _, n := range []int{10_000, 100_000} {
		e.st.index.ReplaceAll(benchRecords(n))
		for _, filter := range []string{"", "active"} {
			total := n
			if filter != "" {
				total = e.st.index.Counts().Active
			}
			for _, pos := range []struct {
				name   string
				offset int
			}{{"start", 0}, {"middle", total / 2}, {"end", total - maxListLimit}} {
				query := fmt.Sprintf("limit=%d&offset=%d", maxListLimit, pos.offset)
				if filter != "" {
					query += "&status=" + filter
				}
				b.Run(fmt.Sprintf("n=%d/filter=%s/%s", n, cmpOr(filter, "all"), pos.name), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						w := httptest.NewRecorder()
						e.srv.handleList(w, httptest.NewRequest("GET", "/api/v1/files?"+query, nil))
						if w.Code != 200 || w.Body.Len() < maxListLimit*100 {
							b.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
						}
					}
				})
			}
		}
	}
}

func cmpOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// BenchmarkDownloadVerify reads a whole blob through the download path's verifying
// reader (SHA-256 checked before the last chunk) in http.ServeContent's 32 KiB
// chunks; "plain" is the same file read without verification.
func BenchmarkDownloadVerify(b *testing.B) {
	const size = 32 << 20
	content := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	sum := sha256.Sum256(content)
	path := filepath.Join(b.TempDir(), "blob")
	if err := os.WriteFile(path, content, 0o640); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 32<<10)
	b.Run("verified", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			r := newVerifyingReader(f, size, hex.EncodeToString(sum[:]), func() { b.Fatal("checksum mismatch") })
			if n, err := io.CopyBuffer(io.Discard, io.LimitReader(r, size), buf); err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
	})
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if n, err := io.CopyBuffer(io.Discard, io.NewSectionReader(f, 0, size), buf); err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
	})
}
