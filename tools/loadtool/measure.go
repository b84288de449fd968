// measure.go — the phases of one run. Each SE figure is measured right beside the limit
// it is compared with, round after round, which of the two goes first alternating
// between rounds, so noise from other work on the machine hits both sides alike.
// Throughput figures keep the best round of each side; latencies come from that round.
//
// Instances (each its own data and WAL directories under the run directory):
//
//	ops     empty at start: idle RSS, the big upload/download, 4 KiB traffic
//	n-small seeded with -n-small files: list latency
//	n-large seeded with -n files: restart-to-ready, RSS per file, list latency
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// listLimit is the page size of the list figures (the Admin module's sync page).
const listLimit = 1000

// listKey names one list combination: instance size, filter and position.
type listKey struct {
	N        int
	Filter   string // "" (all) or "active"
	Position string // start, middle, end
}

// results is everything one run measured.
type results struct {
	BinaryPath string
	BinarySize int64

	SHA256, RawWrite, Upload float64 // MB/s, best round
	IdleRSS, UploadPeakRSS   int64   // bytes, around the best... every round: max peak, its idle
	Bare, Download           float64 // MB/s, best round
	BareUpload               float64 // MB/s into io.Discard over the same TLS (context)

	RawCreate, Upload4K loadResult // best round
	Download4K, Meta    loadResult

	SeedTime           time.Duration
	EmptyReady         time.Duration   // exec to ready with no files
	RawRead, Ready     []time.Duration // per restart
	RSSEmpty, RSSLarge int64           // after ready + settle: 0 files, N files (median)

	List map[listKey]loadResult
}

type run struct {
	opt     options
	world   *World
	token   string
	procs   []*seProcess
	res     results
	roots   *x509.CertPool // what the clients trust
	log     func(format string, args ...any)
	procsMu sync.Mutex
}

// instance prepares an SE on its own directories under the run directory.
func (r *run) instance(name string) (*seProcess, error) {
	p, err := newSEProcess(seConfig{
		Bin: r.opt.Bin, Name: name, Root: filepath.Join(r.opt.Dir, name),
		MaxFileSize: r.opt.BigSize + 16<<20,
	})
	if err != nil {
		return nil, err
	}
	r.procsMu.Lock()
	r.procs = append(r.procs, p)
	r.procsMu.Unlock()
	return p, nil
}

// stopAll stops every SE still running (by PID).
func (r *run) stopAll() {
	r.procsMu.Lock()
	defer r.procsMu.Unlock()
	for _, p := range r.procs {
		if p.running() {
			_ = p.stop(10 * time.Second)
		}
	}
}

func (r *run) target(p *seProcess) target { return target{BaseURL: p.BaseURL, Token: r.token} }

// startReady starts p and waits for readiness.
func (r *run) startReady(p *seProcess) (time.Duration, error) {
	if err := p.start(r.world); err != nil {
		return 0, err
	}
	c := newClient(r.roots, 5*time.Second)
	defer c.CloseIdleConnections()
	return p.waitReady(c, 5*time.Millisecond, r.opt.ReadyLimit)
}

// settledRSS waits the settle time and returns the resident set of p.
func (r *run) settledRSS(p *seProcess) (int64, error) {
	time.Sleep(r.opt.Settle)
	m, err := readMem(p.pid())
	return m.RSS, err
}

// ---- big transfers ----

// phaseBulk: SHA-256 and raw write+fsync of the upload's bytes beside the big upload,
// then the bare server's download beside the SE's download.
// pid 0 (a remote SE) skips the RSS figures.
func (r *run) phaseBulk(t target, pid int) error {
	size := r.opt.BigSize
	block := randomBlock(1 << 20)
	shaTime, digest := sha256Stream(block, size)
	r.res.SHA256 = mbps(size, shaTime)
	r.log("SHA-256 of %s: %.0f MB/s", human(size), r.res.SHA256)

	rawDir := filepath.Join(r.opt.Dir, "raw")
	if err := os.MkdirAll(rawDir, 0o750); err != nil {
		return err
	}
	// Each round writes a new file and keeps it, as each SE upload does: page cache
	// taken from free memory costs more than pages a truncate just freed (much more in
	// a VM whose memory the host backs lazily), so reusing one file would flatter the
	// limit.
	var rawPath string
	c := newClient(r.roots, 0)
	defer c.CloseIdleConnections()
	var fileID string
	for round := range r.opt.Rounds {
		var rawTime, upTime time.Duration
		var before, after memInfo
		raw := func() error {
			rawPath = filepath.Join(rawDir, fmt.Sprintf("big-%d.bin", round))
			d, err := rawWriteFsync(rawPath, block, size)
			rawTime = d
			return err
		}
		upload := func() error {
			var err error
			if pid != 0 {
				if before, err = readMem(pid); err != nil {
					return err
				}
				if err := resetPeak(pid); err != nil {
					return err
				}
			}
			start := time.Now()
			f, err := t.upload(context.Background(), c, "big.bin", &patternReader{block: block, remaining: size}, size)
			if err != nil {
				return fmt.Errorf("big upload: %w", err)
			}
			upTime = time.Since(start)
			if pid != 0 {
				if after, err = readMem(pid); err != nil {
					return err
				}
			}
			if f.Checksum != digest {
				return fmt.Errorf("big upload: SE checksum %s, sent bytes hash to %s", f.Checksum, digest)
			}
			fileID = f.FileID
			return nil
		}
		if err := alternate(round, raw, upload); err != nil {
			return err
		}
		r.res.RawWrite = max(r.res.RawWrite, mbps(size, rawTime))
		if pid != 0 && (r.res.UploadPeakRSS == 0 || after.Peak-before.RSS > r.res.UploadPeakRSS-r.res.IdleRSS) {
			r.res.IdleRSS, r.res.UploadPeakRSS = before.RSS, after.Peak
		}
		r.res.Upload = max(r.res.Upload, mbps(size, upTime))
		r.log("round %d: raw write+fsync %.0f MB/s, SE upload %.0f MB/s (RSS idle %s, peak %s)",
			round+1, mbps(size, rawTime), mbps(size, upTime), human(before.RSS), human(after.Peak))
	}

	bare, err := startBareServer(r.world, rawPath)
	if err != nil {
		return err
	}
	defer bare.close()
	bt := target{BaseURL: bare.URL}
	for range r.opt.Rounds {
		start := time.Now()
		body, ct, length := multipartUpload("big.bin", &patternReader{block: block, remaining: size}, size)
		if err := postDiscard(c, bare.URL+"/sink", body, ct, length); err != nil {
			return fmt.Errorf("bare upload: %w", err)
		}
		r.res.BareUpload = max(r.res.BareUpload, mbps(size, time.Since(start)))
	}
	r.log("bare TLS upload to a discarding server: %.0f MB/s", r.res.BareUpload)
	for round := range r.opt.Rounds {
		var bd, sd time.Duration
		err := alternate(round, func() (err error) {
			if bd, err = timedGet(bt, c, "/static", size); err != nil {
				err = fmt.Errorf("bare download: %w", err)
			}
			return err
		}, func() (err error) {
			if sd, err = timedGet(t, c, "/api/v1/files/"+fileID+"/download", size); err != nil {
				err = fmt.Errorf("SE download: %w", err)
			}
			return err
		})
		if err != nil {
			return err
		}
		r.res.Bare = max(r.res.Bare, mbps(size, bd))
		r.res.Download = max(r.res.Download, mbps(size, sd))
		r.log("round %d: bare TLS download %.0f MB/s, SE download %.0f MB/s", round+1, mbps(size, bd), mbps(size, sd))
	}
	return nil
}

// postDiscard sends an upload body to the bare server's sink.
func postDiscard(c *http.Client, url string, body io.Reader, ct string, length int64) error {
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		return err
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", ct)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// alternate runs the limit and the SE measurement of one round, the limit first in
// even rounds and the SE first in odd ones, so neither side always inherits the state
// (free memory, dirty pages, journal) the other leaves behind.
func alternate(round int, limit, se func() error) error {
	first, second := limit, se
	if round%2 == 1 {
		first, second = se, limit
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// timedGet downloads path and checks its length.
func timedGet(t target, c *http.Client, path string, want int64) (time.Duration, error) {
	start := time.Now()
	n, err := t.get(context.Background(), c, path)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if n != want {
		return 0, fmt.Errorf("got %d bytes, want %d", n, want)
	}
	return d, nil
}

// ---- small files ----

// phaseSmall: the raw durable-create rate beside 4 KiB uploads, then 4 KiB downloads
// and metadata GETs of the uploaded files.
func (r *run) phaseSmall(t target) error {
	clients := make([]*http.Client, r.opt.Clients)
	for i := range clients {
		clients[i] = newClient(r.roots, 30*time.Second)
		defer clients[i].CloseIdleConnections()
	}
	content := randomBlock(r.opt.SmallSize)
	var ids []string
	for round := range r.opt.Rounds {
		rawDir := filepath.Join(r.opt.Dir, "raw", "creates-"+strconv.Itoa(round))
		var raw, up loadResult
		perWorker := make([][]string, r.opt.Clients)
		err := alternate(round, func() (err error) {
			raw, err = durableCreates(rawDir, r.opt.Clients, r.opt.Duration, r.opt.SmallSize)
			return err
		}, func() (err error) {
			up, err = runLoad(r.opt.Clients, r.opt.Duration, func(ctx context.Context, w, _ int) error {
				f, err := t.upload(ctx, clients[w], "small.bin", bytes.NewReader(content), int64(len(content)))
				if err == nil {
					perWorker[w] = append(perWorker[w], f.FileID)
				}
				return err
			})
			if err != nil {
				err = fmt.Errorf("4 KiB uploads: %w", err)
			}
			return err
		})
		if err != nil {
			return err
		}
		if raw.Rate() > r.res.RawCreate.Rate() {
			r.res.RawCreate = raw
		}
		for _, p := range perWorker {
			ids = append(ids, p...)
		}
		if up.Rate() > r.res.Upload4K.Rate() {
			r.res.Upload4K = up
		}
		r.log("round %d: raw durable creates %.0f/s, SE 4 KiB uploads %.0f/s (p50 %s, p99 %s)",
			round+1, raw.Rate(), up.Rate(), ms(up.P50), ms(up.P99))
	}
	if len(ids) == 0 {
		return errors.New("no 4 KiB upload succeeded")
	}
	pick := func() string { return ids[rand.IntN(len(ids))] }
	want := int64(len(content))
	var err error
	r.res.Download4K, err = runLoad(r.opt.Clients, r.opt.Duration, func(ctx context.Context, w, _ int) error {
		n, err := t.get(ctx, clients[w], "/api/v1/files/"+pick()+"/download")
		if err == nil && n != want {
			err = fmt.Errorf("download: %d bytes, want %d", n, want)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("4 KiB downloads: %w", err)
	}
	r.res.Meta, err = runLoad(r.opt.Clients, r.opt.Duration, func(ctx context.Context, w, _ int) error {
		_, err := t.get(ctx, clients[w], "/api/v1/files/"+pick())
		return err
	})
	if err != nil {
		return fmt.Errorf("metadata GETs: %w", err)
	}
	r.log("SE 4 KiB downloads %.0f/s, metadata GETs %.0f/s", r.res.Download4K.Rate(), r.res.Meta.Rate())
	return nil
}

// ---- many files ----

// expectedTotals is what the SE must list for n seeded files: all, and active only.
func expectedTotals(n int) (all, active int) {
	for i := range n {
		if seedStatus(i) == "active" {
			active++
		}
	}
	return n, active
}

// checkTotals fails unless the SE indexed exactly the seeded files.
func (r *run) checkTotals(p *seProcess, n int) error {
	c := newClient(r.roots, 30*time.Second)
	defer c.CloseIdleConnections()
	wantAll, wantActive := expectedTotals(n)
	for _, q := range []struct {
		query string
		want  int
	}{{"limit=1", wantAll}, {"limit=1&status=active", wantActive}} {
		page, err := r.target(p).list(context.Background(), c, q.query)
		if err != nil {
			return err
		}
		if page.Total != q.want {
			return fmt.Errorf("SE %s lists %d files for %q, seeded %d: the seed format no longer matches the SE's (see seed.go)",
				p.cfg.Name, page.Total, q.query, q.want)
		}
	}
	return nil
}

// phaseSeed writes the two seeded data directories.
func (r *run) phaseSeed(small, large *seProcess) error {
	start := time.Now()
	base := time.Now().Add(-time.Duration(r.opt.N)*time.Millisecond - time.Hour)
	if err := seedDataDir(small.DataDir, r.opt.NSmall, base, r.opt.SeedBlob); err != nil {
		return err
	}
	if err := seedDataDir(large.DataDir, r.opt.N, base, r.opt.SeedBlob); err != nil {
		return err
	}
	r.res.SeedTime = time.Since(start)
	r.log("seeded %d + %d files in %s", r.opt.NSmall, r.opt.N, r.res.SeedTime.Round(time.Millisecond))
	return nil
}

// phaseRestart alternates the raw parallel read of the N sidecars with a start of the
// SE on them, -restarts times; the SE is left running after the last one.
func (r *run) phaseRestart(large *seProcess) error {
	var rss []int64
	for k := range r.opt.Restarts {
		d, n, err := readAllSidecars(large.DataDir)
		if err != nil {
			return err
		}
		if n != r.opt.N {
			return fmt.Errorf("raw read found %d sidecars, seeded %d", n, r.opt.N)
		}
		ready, err := r.startReady(large)
		if err != nil {
			return err
		}
		if k == 0 {
			if err := r.checkTotals(large, r.opt.N); err != nil {
				return err
			}
		}
		m, err := r.settledRSS(large)
		if err != nil {
			return err
		}
		r.res.RawRead = append(r.res.RawRead, d)
		r.res.Ready = append(r.res.Ready, ready)
		rss = append(rss, m)
		r.log("restart %d: raw sidecar read %s, SE ready in %s, RSS %s", k+1, ms(d), ms(ready), human(m))
		if k < r.opt.Restarts-1 {
			if err := large.stop(10 * time.Second); err != nil {
				return err
			}
		}
	}
	r.res.RSSLarge = medianInt64(rss)
	return nil
}

// phaseList times list pages on both seeded instances, alternating between them
// request by request.
func (r *run) phaseList(small, large *seProcess) error {
	type side struct {
		n int
		t target
		c *http.Client
	}
	sides := []side{{r.opt.NSmall, r.target(small), nil}, {r.opt.N, r.target(large), nil}}
	for i := range sides {
		sides[i].c = newClient(r.roots, 30*time.Second)
		defer sides[i].c.CloseIdleConnections()
	}
	type combo struct {
		key   listKey
		query string
	}
	var combos [][2]combo // [small, large] per filter/position
	for _, filter := range []string{"", "active"} {
		for _, pos := range []string{"start", "middle", "end"} {
			var pair [2]combo
			for i, s := range sides {
				all, active := expectedTotals(s.n)
				total := all
				if filter == "active" {
					total = active
				}
				pair[i] = combo{listKey{s.n, filter, pos}, listQuery(filter, listOffset(pos, total))}
			}
			combos = append(combos, pair)
		}
	}
	samples := map[listKey][]time.Duration{}
	for s := -3; s < r.opt.ListSamples; s++ { // three untimed warm-up passes
		for _, pair := range combos {
			for j := range 2 {
				i := (j + s + 3) % 2 // alternate which side goes first
				start := time.Now()
				if _, err := sides[i].t.get(context.Background(), sides[i].c, "/api/v1/files?"+pair[i].query); err != nil {
					return err
				}
				if s >= 0 {
					samples[pair[i].key] = append(samples[pair[i].key], time.Since(start))
				}
			}
		}
	}
	r.res.List = map[listKey]loadResult{}
	for k, v := range samples {
		r.res.List[k] = summarize(v, 0)
	}
	return nil
}

// listOffset is the offset of a page at pos in a listing of total files.
func listOffset(pos string, total int) int {
	switch pos {
	case "middle":
		return total / 2
	case "end":
		return max(total-listLimit, 0)
	}
	return 0
}

func listQuery(filter string, offset int) string {
	q := "limit=" + strconv.Itoa(listLimit) + "&offset=" + strconv.Itoa(offset)
	if filter != "" {
		q += "&status=" + filter
	}
	return q
}
