// reconcile.go — reconciliation (CONTRACT §4, §10): compare the sidecars with the bytes
// on disk, report every difference, and rebuild the index from the sidecars.
//
// Issue types:
//
//	orphaned_file      bytes with no sidecar
//	missing_file       a sidecar whose bytes are gone
//	size_mismatch      bytes whose length differs from the sidecar's size
//	checksum_mismatch  bytes whose SHA-256 differs from the sidecar's checksum (active files)
//	orphaned_attr      a sidecar that is unreadable, invalid, or in the wrong shard directory
//
// Invariants:
//   - Reconciliation never deletes or changes data; it only reads and reports.
//   - One run at a time: a second caller gets errReconcileInProgress (409).
//   - Reports carry paths relative to SE_DATA_DIR only, and at most maxReportedIssues
//     issues; the summary counts every issue and issues_truncated says when the list
//     was cut (CONTRACT §11).
//   - Hashing uses reconcileWorkers goroutines and pooled buffers, so a multi-terabyte
//     pass costs a bounded share of CPU and I/O while clients are served.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

var errReconcileInProgress = errors.New("reconcile already running")

const (
	maxReportedIssues         = 1000
	reconcileWorkers          = 2
	reconcileProgressInterval = 30 * time.Second
)

const (
	issueOrphanedFile     = "orphaned_file"
	issueMissingFile      = "missing_file"
	issueSizeMismatch     = "size_mismatch"
	issueChecksumMismatch = "checksum_mismatch"
	issueOrphanedAttr     = "orphaned_attr"
)

type reconcileIssue struct {
	FileID      string `json:"file_id,omitempty"`
	Path        string `json:"path"`
	Type        string `json:"type"`
	Description string `json:"description"`
}

type reconcileSummary struct {
	OK                 int `json:"ok"`
	OrphanedFiles      int `json:"orphaned_files"`
	MissingFiles       int `json:"missing_files"`
	ChecksumMismatches int `json:"checksum_mismatches"`
	SizeMismatches     int `json:"size_mismatches"`
	OrphanedAttrs      int `json:"orphaned_attrs"`
}

type reconcileReport struct {
	StartedAt       time.Time        `json:"started_at"`
	CompletedAt     time.Time        `json:"completed_at"`
	FilesChecked    int              `json:"files_checked"`
	Issues          []reconcileIssue `json:"issues"`
	IssuesTruncated bool             `json:"issues_truncated"`
	Summary         reconcileSummary `json:"summary"`
}

type reconciler struct {
	st      *store
	m       *seMetrics
	log     *slog.Logger
	busy    atomic.Bool
	now     func() time.Time
	workers int
	// onStart, when set (tests), runs once a run holds the one-at-a-time guard.
	onStart func()
}

func newReconciler(st *store, m *seMetrics, log *slog.Logger) *reconciler {
	return &reconciler{st: st, m: m, log: log, now: time.Now, workers: reconcileWorkers}
}

func (rc *reconciler) running() bool { return rc.busy.Load() }

func (rc *reconciler) loop(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() bool {
		if _, err := rc.run(ctx, "schedule"); err != nil && !errors.Is(err, errReconcileInProgress) && ctx.Err() == nil {
			rc.log.Error("scheduled reconciliation failed", "err", err)
		}
		return true
	})
}

// run performs one reconciliation; trigger ("api", "schedule") goes to the log.
func (rc *reconciler) run(ctx context.Context, trigger string) (*reconcileReport, error) {
	if !rc.st.ready.Load() {
		return nil, errNotReady
	}
	if !rc.busy.CompareAndSwap(false, true) {
		return nil, errReconcileInProgress
	}
	defer rc.busy.Store(false)
	if rc.onStart != nil {
		rc.onStart()
	}
	// A client that hangs up must not leave a half-checked store behind an index
	// rebuild that never happens: the run finishes on its own context.
	ctx = context.WithoutCancel(ctx)
	rep := &reconcileReport{StartedAt: rc.now().UTC(), Issues: []reconcileIssue{}}
	rc.log.Info("reconciliation started", "trigger", trigger)
	began := time.Now()
	if err := rc.check(ctx, rep); err != nil {
		return nil, err
	}
	if _, err := rc.st.rebuildIndex(ctx); err != nil {
		return nil, fmt.Errorf("rebuild index: %w", err)
	}
	rep.CompletedAt = rc.now().UTC()
	rc.m.reconcileRuns.Inc()
	rc.m.reconcileTime.Observe(time.Since(began).Seconds())
	rc.log.Info("reconciliation finished", "trigger", trigger, "files_checked", rep.FilesChecked,
		"ok", rep.Summary.OK, "issues", len(rep.Issues), "truncated", rep.IssuesTruncated,
		"took", time.Since(began).Round(time.Millisecond).String())
	return rep, nil
}

// reconcileState collects results from the workers.
type reconcileState struct {
	mu        sync.Mutex
	rep       *reconcileReport
	m         *seMetrics
	dirsDone  atomic.Int64
	bytesRead atomic.Int64
}

func (s *reconcileState) add(issue reconcileIssue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := &s.rep.Summary
	switch issue.Type {
	case issueOrphanedFile:
		sum.OrphanedFiles++
	case issueMissingFile:
		sum.MissingFiles++
	case issueSizeMismatch:
		sum.SizeMismatches++
	case issueChecksumMismatch:
		sum.ChecksumMismatches++
	case issueOrphanedAttr:
		sum.OrphanedAttrs++
	}
	s.m.reconcileIssues.With(issue.Type).Inc()
	s.rep.FilesChecked++
	if len(s.rep.Issues) >= maxReportedIssues {
		s.rep.IssuesTruncated = true
		return
	}
	s.rep.Issues = append(s.rep.Issues, issue)
}

func (s *reconcileState) ok() {
	s.mu.Lock()
	s.rep.Summary.OK++
	s.rep.FilesChecked++
	s.mu.Unlock()
}

func (rc *reconciler) check(ctx context.Context, rep *reconcileReport) error {
	leaves, err := listShardLeaves(rc.st.dataDir)
	if err != nil {
		return err
	}
	state := &reconcileState{rep: rep, m: rc.m}
	stopProgress := rc.progress(state, len(leaves))
	defer stopProgress()
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range max(rc.workers, 1) {
		wg.Go(func() {
			for rel := range jobs {
				rc.checkLeaf(ctx, rel, state)
				state.dirsDone.Add(1)
			}
		})
	}
	for _, rel := range leaves {
		jobs <- rel
	}
	close(jobs)
	wg.Wait()
	return nil
}

// progress logs a readable line every reconcileProgressInterval until stopped.
func (rc *reconciler) progress(state *reconcileState, totalDirs int) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(reconcileProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				d := state.dirsDone.Load()
				state.mu.Lock()
				checked := state.rep.FilesChecked
				state.mu.Unlock()
				rc.log.Info(fmt.Sprintf("reconciliation progress: %d/%d shard dirs (%.0f%%), %d files checked, %.1f GiB hashed",
					d, totalDirs, 100*float64(d)/float64(max(totalDirs, 1)), checked, float64(state.bytesRead.Load())/(1<<30)))
			}
		}
	}()
	return func() { close(done) }
}

// checkLeaf compares sidecars and blobs of one shard directory.
func (rc *reconciler) checkLeaf(ctx context.Context, rel string, state *reconcileState) {
	dir := filepath.Join(rc.st.dataDir, rel)
	entries, err := os.ReadDir(dir)
	if err != nil {
		rc.log.Error("reconcile: cannot list shard dir", "dir", rel, "err", err)
		return
	}
	names := map[string]bool{}
	for _, e := range entries {
		if e.Type().IsRegular() && !isTempName(e.Name()) {
			names[e.Name()] = true
		}
	}
	described := map[string]bool{}
	for name := range names {
		if !strings.HasSuffix(name, sidecarSuffix) {
			continue
		}
		blob := strings.TrimSuffix(name, sidecarSuffix)
		described[blob] = true
		rc.checkSidecar(ctx, dir, rel, name, names[blob], state)
	}
	for name := range names {
		if strings.HasSuffix(name, sidecarSuffix) || described[name] {
			continue
		}
		state.add(reconcileIssue{FileID: fileIDFromName(name), Path: rel + "/" + name, Type: issueOrphanedFile,
			Description: "bytes without a metadata sidecar"})
	}
}

func (rc *reconciler) checkSidecar(ctx context.Context, dir, rel, name string, blobExists bool, state *reconcileState) {
	path := rel + "/" + name
	rec, err := readSidecarFile(dir, name)
	if err == nil && shardRel(rec.id()) != rel {
		err = errors.New("not in the shard directory of its file_id")
	}
	if err != nil {
		state.add(reconcileIssue{FileID: fileIDFromName(strings.TrimSuffix(name, sidecarSuffix)), Path: path,
			Type: issueOrphanedAttr, Description: "metadata sidecar is unreadable or invalid"})
		return
	}
	blobPath := rel + "/" + rec.storageName
	if !blobExists {
		state.add(reconcileIssue{FileID: rec.meta.FileID, Path: blobPath, Type: issueMissingFile,
			Description: "metadata sidecar without bytes"})
		return
	}
	issue, err := rc.checkBlob(ctx, filepath.Join(dir, rec.storageName), rec, state)
	if err != nil {
		rc.log.Error("reconcile: cannot read blob", "path", blobPath, "err", err)
		return
	}
	if issue != "" {
		state.add(reconcileIssue{FileID: rec.meta.FileID, Path: blobPath, Type: issue, Description: issueText(issue)})
		return
	}
	state.ok()
}

func issueText(t string) string {
	if t == issueSizeMismatch {
		return "size on disk differs from the recorded size"
	}
	return "SHA-256 of the bytes differs from the recorded checksum"
}

// checkBlob returns the issue type of one blob, or "" when it matches its sidecar.
// Only active files are hashed: deleted and expired bytes are about to go.
func (rc *reconciler) checkBlob(ctx context.Context, path string, rec *fileRecord, state *reconcileState) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Size() != rec.size() {
		return issueSizeMismatch, nil
	}
	if rec.status() != statusActive {
		return "", nil
	}
	h := sha256.New()
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	n, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: f}, *bufp)
	state.bytesRead.Add(n)
	if err != nil {
		return "", err
	}
	if hex.EncodeToString(h.Sum(nil)) != rec.meta.Checksum {
		return issueChecksumMismatch, nil
	}
	return "", nil
}

// ctxReader stops a long hash when the process shuts down.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// fileIDFromName extracts the file id a storage-style name ends with, if any.
func fileIDFromName(name string) string {
	if i := strings.IndexByte(name, '.'); i > 0 {
		name = name[:i]
	}
	if len(name) < 36 {
		return ""
	}
	id, err := uuid.Parse(name[len(name)-36:])
	if err != nil {
		return ""
	}
	return id.String()
}
