// follower.go — how a follower keeps its index and mode close to the leader's writes
// (CONTRACT §9): every SE_INDEX_REFRESH_INTERVAL it re-reads mode.json and rescans the
// shard directories whose modification time changed since the last pass; every
// fullRefreshEvery passes it rescans them all, which also catches changes a coarse or
// cached directory mtime (NFS attribute caching) hid. Between passes, lookups of
// unknown ids read through to disk (store.refreshFromDisk), and the effect of a write
// the follower forwarded is re-read at once.
//
// A follower never writes to the data directory.
package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
)

const fullRefreshEvery = 10

type followerRefresher struct {
	st       *store
	interval time.Duration
	log      *slog.Logger
	stamps   map[string]time.Time // shard dir → mtime at its last scan
	passes   int

	// ids: shard dir → ids this replica's index holds from it, whoever published them
	// (a pass, or a read-through between passes), so a pass can drop those gone from disk.
	mu  sync.Mutex
	ids map[string]map[uuid.UUID]struct{}
}

func newFollowerRefresher(st *store, interval time.Duration, log *slog.Logger) *followerRefresher {
	f := &followerRefresher{st: st, interval: interval, log: log, stamps: map[string]time.Time{}, ids: map[string]map[uuid.UUID]struct{}{}}
	st.learned = f.learned
	return f
}

// learned records an id a read-through published (store.refreshFromDisk).
func (f *followerRefresher) learned(id uuid.UUID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteLocked(shardRel(id), id)
}

func (f *followerRefresher) noteLocked(rel string, id uuid.UUID) {
	set := f.ids[rel]
	if set == nil {
		set = map[uuid.UUID]struct{}{}
		f.ids[rel] = set
	}
	set[id] = struct{}{}
}

// run refreshes until ctx ends or active reports false (this replica became leader).
func (f *followerRefresher) run(ctx context.Context, active func() bool) {
	f.seed()
	every(ctx, f.interval, func() bool {
		if !active() {
			return false
		}
		f.refresh(ctx)
		return true
	})
}

// refresh performs one pass and returns how many shard directories it rescanned.
func (f *followerRefresher) refresh(ctx context.Context) int {
	if err := f.st.mode.reload(); err != nil {
		f.log.Warn("cannot re-read mode.json", "err", err)
	}
	leaves, err := listShardLeaves(f.st.dataDir)
	if err != nil {
		f.log.Error("follower refresh: cannot list the data dir", "err", err)
		return 0
	}
	full := f.passes%fullRefreshEvery == 0
	f.passes++
	seen := make(map[string]bool, len(leaves))
	scanned := 0
	for _, rel := range leaves {
		if ctx.Err() != nil {
			return scanned
		}
		seen[rel] = true
		st, err := os.Stat(filepath.Join(f.st.dataDir, rel))
		if err != nil {
			continue
		}
		if !full && st.ModTime().Equal(f.stamps[rel]) {
			continue
		}
		f.stamps[rel] = st.ModTime()
		f.rescanLeaf(rel)
		scanned++
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for rel, ids := range f.ids {
		if !seen[rel] {
			for id := range ids {
				f.st.unpublish(id)
			}
			delete(f.ids, rel)
			delete(f.stamps, rel)
		}
	}
	return scanned
}

// rescanLeaf replaces what the index holds for one shard directory.
func (f *followerRefresher) rescanLeaf(rel string) {
	recs, _ := scanLeaf(f.st.dataDir, rel, false, f.log)
	onDisk := make(map[uuid.UUID]struct{}, len(recs))
	for _, r := range recs {
		onDisk[r.id()] = struct{}{}
		f.st.publish(r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.ids[rel] {
		if _, ok := onDisk[id]; !ok {
			f.st.unpublish(id)
		}
	}
	f.ids[rel] = onDisk
}

// seed records which ids the start-up index build took from each shard directory, so
// the first pass can drop those that disappeared. One walk of the index.
func (f *followerRefresher) seed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.index.Each(filterAll, func(r *fileRecord) bool {
		f.noteLocked(shardRel(r.id()), r.id())
		return true
	})
}
