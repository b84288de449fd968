// limits.go — the machine's own limits, measured on the same filesystem as the SE's
// data directory and in the same run, so every SE figure has a floor or ceiling beside
// it that suffers the same noise:
//
//	raw write+fsync     a new file of the upload's size, written in 256 KiB chunks (the
//	                    SE's copy buffer), fsynced, closed, and kept like an upload
//	SHA-256             the same bytes the upload sends, hashed in one goroutine (one
//	                    upload hashes in one goroutine)
//	durable create      create temp + write 4 KiB + fsync + close + rename + directory
//	                    fsync, in `workers` goroutines over 256 directories
//	sidecar read        list the shard directories and read every *.attr.json whole,
//	                    with as many goroutines as cores
//	bare TLS download   a net/http TLS server in this process serving a static file with
//	                    http.ServeFile, same certificate and client as for the SE
//	bare TLS upload     the same server reading a multipart upload into io.Discard: what
//	                    the transport alone allows (context for the upload, not a target)
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// copyChunk is the write size of the raw write test: the SE's pooled copy buffer.
const copyChunk = 256 << 10

// rawWriteFsync writes size bytes of block to path, fsyncs and closes it, and returns
// the time taken.
func rawWriteFsync(path string, block []byte, size int64) (time.Duration, error) {
	start := time.Now()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, fmt.Errorf("raw write: %w", err)
	}
	buf := make([]byte, copyChunk)
	src := &patternReader{block: block, remaining: size}
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return 0, fmt.Errorf("raw write: %w", err)
			}
		}
		if rerr != nil {
			break
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("raw write fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("raw write close: %w", err)
	}
	return time.Since(start), nil
}

// sha256Stream hashes size bytes of block and returns the time and the hex digest.
func sha256Stream(block []byte, size int64) (time.Duration, string) {
	start := time.Now()
	h := sha256.New()
	buf := make([]byte, copyChunk)
	src := &patternReader{block: block, remaining: size}
	for {
		n, err := io.ReadFull(src, buf)
		h.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return time.Since(start), hex.EncodeToString(h.Sum(nil))
}

// durableCreates measures the raw durable-create rate of 4 KiB files.
func durableCreates(dir string, workers int, duration time.Duration, size int) (loadResult, error) {
	const dirs = 256
	for d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("%02x", d)), 0o750); err != nil {
			return loadResult{}, fmt.Errorf("durable create: %w", err)
		}
	}
	content := randomBlock(size)
	var seq atomic.Int64
	return runLoad(workers, duration, func(_ context.Context, _, _ int) error {
		n := seq.Add(1)
		sub := filepath.Join(dir, fmt.Sprintf("%02x", rand.IntN(dirs)))
		return durableCreate(sub, fmt.Sprintf(".tmp.%d", n), fmt.Sprintf("f%d", n), content)
	})
}

// durableCreate is the minimum an acknowledged durable write costs.
func durableCreate(dir, tmp, name string, content []byte) error {
	f, err := os.OpenFile(filepath.Join(dir, tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("durable create: %w", err)
	}
	_, werr := f.Write(content)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("durable create: %w", err)
	}
	if err := os.Rename(filepath.Join(dir, tmp), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("durable create: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("durable create: %w", err)
	}
	serr = d.Sync()
	d.Close()
	if serr != nil {
		return fmt.Errorf("durable create: dir fsync: %w", serr)
	}
	return nil
}

// readAllSidecars lists the shard directories of dataDir and reads every sidecar,
// with one goroutine per core. It returns the time and the number of sidecars read.
func readAllSidecars(dataDir string) (time.Duration, int, error) {
	start := time.Now()
	leaves, err := shardLeaves(dataDir)
	if err != nil {
		return 0, 0, err
	}
	jobs := make(chan string, 256)
	var count atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			for leaf := range jobs {
				n, err := readLeafSidecars(leaf)
				count.Add(int64(n))
				if err != nil {
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}
	for _, l := range leaves {
		jobs <- l
	}
	close(jobs)
	wg.Wait()
	return time.Since(start), int(count.Load()), firstErr
}

// shardLeaves returns the path of every ab/cd shard directory of dataDir.
func shardLeaves(dataDir string) ([]string, error) {
	tops, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("list data dir: %w", err)
	}
	var leaves []string
	for _, t := range tops {
		if !t.IsDir() || len(t.Name()) != 2 {
			continue
		}
		subs, err := os.ReadDir(filepath.Join(dataDir, t.Name()))
		if err != nil {
			return nil, fmt.Errorf("list shard dir: %w", err)
		}
		for _, s := range subs {
			if s.IsDir() && len(s.Name()) == 2 {
				leaves = append(leaves, filepath.Join(dataDir, t.Name(), s.Name()))
			}
		}
	}
	return leaves, nil
}

func readLeafSidecars(leaf string) (int, error) {
	entries, err := os.ReadDir(leaf)
	if err != nil {
		return 0, fmt.Errorf("list shard dir: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), sidecarSuffix) {
			continue
		}
		if _, err := os.ReadFile(filepath.Join(leaf, e.Name())); err != nil {
			return n, fmt.Errorf("read sidecar: %w", err)
		}
		n++
	}
	return n, nil
}

// bareServer is the baseline static-file server: plain net/http over TLS, HTTP/1.1.
type bareServer struct {
	URL string
	srv *http.Server
}

// startBareServer serves path at /static on a loopback port.
func startBareServer(w *World, path string) (*bareServer, error) {
	tlsCfg, err := w.serverTLSConfig()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for bare server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static", func(rw http.ResponseWriter, r *http.Request) { http.ServeFile(rw, r, path) })
	mux.HandleFunc("POST /sink", func(rw http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusCreated)
		fmt.Fprintf(rw, `{"size":%d}`, n)
	})
	srv := &http.Server{
		Handler: mux, TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1, like the client
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return &bareServer{URL: "https://" + ln.Addr().String(), srv: srv}, nil
}

func (b *bareServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
}
