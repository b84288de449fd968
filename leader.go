// leader.go — replicated mode (CONTRACT §9): several SE processes share one data
// directory; the holder of an exclusive flock on {SE_DATA_DIR}/.leader.lock is the
// leader and the only writer, the others follow.
//
// On-disk format: {SE_DATA_DIR}/.leader.info, one line, written atomically by a new
// leader before it does anything else:
//
//	{"address":"se-1.se.ns.svc:8010","pid":4242,"since":"2026-12-03T10:00:00Z"}
//
// Invariants:
//   - Only a process holding the lock changes the data directory. It writes
//     .leader.info, then recovers (its WAL, then the temp-file repair of whatever a
//     crashed leader left), rebuilds its index, and only then admits writes.
//   - The lock is released only by process exit or by stepDown, which first stops
//     admitting writes and waits for those in flight (store.stopWrites).
//   - Standalone mode never opens the lock files.
//   - flock on NFS needs NFSv4 (or v3 with a working lockd); see the README.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	leaderLockFile = ".leader.lock"
	leaderInfoFile = ".leader.info"
)

type replicaRole int32

const (
	roleStandalone replicaRole = iota
	roleFollower
	roleLeader
)

func (r replicaRole) String() string {
	switch r {
	case roleFollower:
		return "follower"
	case roleLeader:
		return "leader"
	}
	return "standalone"
}

type leaderInfo struct {
	Address string    `json:"address"`
	PID     int       `json:"pid"`
	Since   time.Time `json:"since"`
}

// election runs the lock loop of one replica.
type election struct {
	dataDir   string
	advertise string
	retry     time.Duration
	log       *slog.Logger
	// onLead runs once, right after this process won the lock and published
	// .leader.info; it must leave the store writable (store.takeOver).
	onLead func(ctx context.Context) error

	role     atomic.Int32
	mu       sync.Mutex
	lockFile *os.File // held while leader
	leader   leaderInfo
	won      chan struct{} // closed when this process becomes leader
}

func newElection(dataDir, advertise string, retry time.Duration, log *slog.Logger, onLead func(context.Context) error) *election {
	e := &election{dataDir: dataDir, advertise: advertise, retry: retry, log: log, onLead: onLead, won: make(chan struct{})}
	e.role.Store(int32(roleFollower))
	return e
}

func (e *election) currentRole() replicaRole { return replicaRole(e.role.Load()) }

// leaderAddress is where a follower forwards writes; false when no leader is known.
func (e *election) leaderAddress() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leader.Address == "" || e.currentRole() == roleLeader {
		return "", false
	}
	return e.leader.Address, true
}

// run tries the lock every retry interval until it wins or ctx ends; a follower
// re-reads .leader.info on each attempt.
func (e *election) run(ctx context.Context) {
	t := time.NewTicker(e.retry)
	defer t.Stop()
	for {
		won, err := e.tryLock()
		switch {
		case err != nil:
			e.log.Error("leader election attempt failed", "err", err)
		case won:
			e.lead(ctx)
			return
		default:
			e.readLeaderInfo()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tryLock takes the exclusive lock without blocking.
func (e *election) tryLock() (bool, error) {
	f, err := os.OpenFile(filepath.Join(e.dataDir, leaderLockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return false, fmt.Errorf("open leader lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("flock leader lock: %w", err)
	}
	e.mu.Lock()
	e.lockFile = f
	e.mu.Unlock()
	return true, nil
}

// lead publishes .leader.info and hands over to onLead. If either fails the process
// cannot serve as leader; it releases the lock so another replica can.
func (e *election) lead(ctx context.Context) {
	info := leaderInfo{Address: e.advertise, PID: os.Getpid(), Since: time.Now().UTC()}
	if err := e.writeLeaderInfo(info); err != nil {
		e.log.Error("cannot publish .leader.info; releasing the lock", "err", err)
		e.release()
		return
	}
	e.role.Store(int32(roleLeader))
	e.log.Info("became leader", "address", info.Address)
	if err := e.onLead(ctx); err != nil {
		e.log.Error("takeover failed; releasing the lock", "err", err)
		e.role.Store(int32(roleFollower))
		e.release()
		return
	}
	close(e.won)
}

func (e *election) writeLeaderInfo(info leaderInfo) error {
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := writeFileAtomic(e.dataDir, leaderInfoFile, tempPrefix+"leader-info."+randomHex(8), data); err != nil {
		return err
	}
	return syncDir(e.dataDir)
}

func (e *election) readLeaderInfo() {
	f, err := os.Open(filepath.Join(e.dataDir, leaderInfoFile))
	if err != nil {
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	var info leaderInfo
	if err != nil || json.Unmarshal(data, &info) != nil || !validPeerAddress(info.Address) {
		return
	}
	e.mu.Lock()
	if info != e.leader {
		e.log.Info("leader is", "address", info.Address, "since", info.Since)
	}
	e.leader = info
	e.mu.Unlock()
}

// validPeerAddress accepts host:port with a non-empty host and a numeric port; the
// address comes from a file in the shared directory and ends up as a URL host.
func validPeerAddress(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || len(addr) > 255 {
		return false
	}
	_, ok := parseBoundedInt(port, 1, 65535)
	return ok
}

// release drops the lock (closing the descriptor releases the flock).
func (e *election) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lockFile != nil {
		e.lockFile.Close()
		e.lockFile = nil
	}
}
