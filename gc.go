// gc.go — garbage collection (CONTRACT §10): every SE_GC_INTERVAL, temporary files past
// expires_at become `expired`, then the bytes and sidecars of `deleted` and `expired`
// files are removed.
//
// Invariants:
//   - Each change runs under the file's stripe lock and re-reads the file's current
//     record there, so GC never races a PATCH/DELETE of the same file and never acts on
//     a file that became active again (it cannot, but the check is what makes it so).
//   - Marking expired is a sidecar rewrite under a file_update WAL entry; a purge is a
//     file_purge WAL entry, then sidecar removal, then blob removal, then a directory
//     fsync. A crash in between leaves a pending entry that recovery rolls forward
//     (removes what is left), so a crash mid-run never loses an active file and never
//     leaves a sidecar without bytes.
//   - GC runs only in the process that writes (standalone, or the leader).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
)

type gcRunner struct {
	st  *store
	m   *seMetrics
	log *slog.Logger
	now func() time.Time // injectable clock for tests
	mu  sync.Mutex       // one run at a time
}

type gcResult struct {
	Expired int // files marked expired
	Purged  int // files whose bytes and sidecar were removed
	Errors  int
}

func newGCRunner(st *store, m *seMetrics, log *slog.Logger) *gcRunner {
	return &gcRunner{st: st, m: m, log: log, now: time.Now}
}

func (g *gcRunner) loop(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() bool {
		if _, err := g.run(ctx); err != nil && ctx.Err() == nil {
			g.log.Error("GC run failed", "err", err)
		}
		return true
	})
}

// run performs one GC pass.
func (g *gcRunner) run(ctx context.Context) (gcResult, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	start := time.Now()
	var res gcResult
	now := g.now()
	for _, id := range g.collect(statusFilter(statusActive), func(r *fileRecord) bool {
		return r.meta.RetentionPolicy == retentionTemporary && r.meta.ExpiresAt != nil && !r.meta.ExpiresAt.After(now)
	}) {
		if ctx.Err() != nil {
			break
		}
		g.count(&res.Expired, &res.Errors, g.st.expire(id, now), id, "mark expired")
	}
	var toPurge []uuid.UUID
	for _, f := range []statusFilter{statusFilter(statusDeleted), statusFilter(statusExpired)} {
		toPurge = append(toPurge, g.collect(f, func(*fileRecord) bool { return true })...)
	}
	for _, id := range toPurge {
		if ctx.Err() != nil {
			break
		}
		g.count(&res.Purged, &res.Errors, g.st.purge(id), id, "purge")
	}
	took := time.Since(start)
	g.m.gcRuns.Inc()
	g.m.gcFilesDeleted.Add(float64(res.Purged))
	g.m.gcDuration.Observe(took.Seconds())
	g.log.Info("GC run finished", "expired", res.Expired, "purged", res.Purged, "errors", res.Errors,
		"took", took.Round(time.Millisecond).String())
	return res, ctx.Err()
}

func (g *gcRunner) count(ok, failed *int, err error, id uuid.UUID, what string) {
	switch {
	case err == nil:
		*ok++
	case errors.Is(err, errNotFound):
		// changed under us (e.g. purged by an earlier pass); nothing to do
	default:
		*failed++
		g.log.Error("GC step failed", "step", what, "file_id", id, "err", err)
	}
}

// collect snapshots the ids to work on, so no index walk spans disk I/O.
func (g *gcRunner) collect(f statusFilter, match func(*fileRecord) bool) []uuid.UUID {
	var ids []uuid.UUID
	g.st.index.Each(f, func(r *fileRecord) bool {
		if match(r) {
			ids = append(ids, r.id())
		}
		return true
	})
	return ids
}

// expire marks one temporary active file past its expiry as expired.
func (s *store) expire(id uuid.UUID, now time.Time) error {
	if err := s.enterWrite(); err != nil {
		return err
	}
	defer s.exitWrite()
	return s.withPersist(func() error { return s.expireLocked(id, now) })
}

func (s *store) expireLocked(id uuid.UUID, now time.Time) error {
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	rec, ok := s.index.Get(id)
	if !ok || rec.status() != statusActive || rec.meta.ExpiresAt == nil || rec.meta.ExpiresAt.After(now) {
		return errNotFound
	}
	m := rec.metadata()
	m.Status = statusExpired.String()
	next, err := rec.withMeta(m)
	if err != nil {
		return err
	}
	return s.writeSidecar(next, walFileUpdate)
}

// purge removes the sidecar and bytes of a deleted or expired file.
func (s *store) purge(id uuid.UUID) error {
	if err := s.enterWrite(); err != nil {
		return err
	}
	defer s.exitWrite()
	return s.withPersist(func() error { return s.purgeLocked(id) })
}

func (s *store) purgeLocked(id uuid.UUID) error {
	mu := s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	rec, ok := s.index.Get(id)
	if !ok || rec.status() == statusActive {
		return errNotFound
	}
	tx, err := s.wal.begin(walFilePurge, id, s.now())
	if err != nil {
		return err
	}
	// The sidecar first becomes a temp file (atomic), so from then on a crash leaves
	// an id with a temp file and no complete pair, which any writer's start-up repairs
	// by removing the rest (repairFile), with or without this process's WAL.
	dir := shardDir(s.dataDir, id)
	tomb := tempName(id)
	if err := os.Rename(filepath.Join(dir, rec.storageName+sidecarSuffix), filepath.Join(dir, tomb)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("purge %s: %w", id, err) // WAL entry stays: recovery finishes it
	}
	for _, name := range []string{rec.storageName, tomb} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("purge %s: %w", id, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("purge %s: %w", id, err)
	}
	s.unpublish(id)
	if err := tx.finish(); err != nil {
		s.log.Warn("WAL entry not removed", "file_id", id, "err", err)
	}
	return nil
}
