// wal.go — the write-ahead log: one file per transaction in SE_WAL_DIR.
//
// On-disk format (CONTRACT §6): {tx_id}.wal.json, one JSON object on one line:
//
//	{"transaction_id":"…","operation_type":"file_create","status":"pending",
//	 "file_id":"…","started_at":"…","completed_at":null}
//
// Protocol:
//   - begin writes the entry with status "pending" through writeFileAtomic and fsyncs the
//     WAL directory BEFORE the operation touches the data directory. So every change to a
//     file's bytes or sidecar that may be on disk after a crash has a pending entry naming
//     its file_id.
//   - finish removes the entry once the operation is durable (committed) or undone (rolled
//     back): a committed entry carries no information the data directory does not, and the
//     WAL directory must not grow. The removal is not fsynced: if a crash resurrects the
//     entry, recovery finds the operation complete on disk and rolls it forward again,
//     which is idempotent.
//   - recovery (store.go) reads every pending entry at start, before the index is built,
//     and rolls it forward when the data directory holds the complete result, otherwise
//     back. Paths are derived from file_id only (blob.go); nothing else in an entry is
//     used to find files.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

type walOp string

const (
	walFileCreate walOp = "file_create" // upload: temp blob → blob + sidecar
	walFileUpdate walOp = "file_update" // PATCH, GC marking expired: sidecar rewrite
	walFileDelete walOp = "file_delete" // soft delete: sidecar rewrite with status deleted
	walFilePurge  walOp = "file_purge"  // GC: remove sidecar then bytes of a deleted/expired file
)

const (
	walPending    = "pending"
	walCommitted  = "committed"
	walRolledBack = "rolled_back"
	walSuffix     = ".wal.json"
	maxWALEntry   = 4 << 10
)

type walEntry struct {
	TransactionID string     `json:"transaction_id"`
	OperationType walOp      `json:"operation_type"`
	Status        string     `json:"status"`
	FileID        string     `json:"file_id"`
	StartedAt     time.Time  `json:"started_at"`
	CompletedAt   *time.Time `json:"completed_at"`
}

type wal struct {
	dir     string
	dirSync groupSync // the WAL directory's fsyncs, shared by concurrent begins
}

// walTx is an open transaction; finish must be called exactly once.
type walTx struct {
	w     *wal
	entry walEntry
}

func openWAL(dir string) (*wal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create WAL dir: %w", err)
	}
	return &wal{dir: dir, dirSync: groupSync{dir: dir}}, nil
}

// begin durably records that op is about to change file id.
func (w *wal) begin(op walOp, id uuid.UUID, now time.Time) (*walTx, error) {
	e := walEntry{
		TransactionID: uuid.NewString(),
		OperationType: op,
		Status:        walPending,
		FileID:        id.String(),
		StartedAt:     now.UTC(),
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode WAL entry: %w", err)
	}
	data = append(data, '\n')
	name := e.TransactionID + walSuffix
	if err := writeFileAtomic(w.dir, name, tempPrefix+name, data); err != nil {
		return nil, fmt.Errorf("write WAL entry: %w", err)
	}
	if err := w.dirSync.sync(); err != nil {
		os.Remove(filepath.Join(w.dir, name))
		return nil, fmt.Errorf("write WAL entry: %w", err)
	}
	return &walTx{w: w, entry: e}, nil
}

// finish ends the transaction: the entry is removed (see the protocol above).
func (tx *walTx) finish() error {
	if err := os.Remove(filepath.Join(tx.w.dir, tx.entry.TransactionID+walSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove WAL entry: %w", err)
	}
	return nil
}

// walFile is one entry found in the WAL directory at recovery.
type walFile struct {
	name  string
	entry walEntry
	err   error // non-nil: unreadable or invalid entry
}

// pendingEntries lists the WAL directory. Stray temp files of a begin that crashed
// before its rename are removed here: their operation never started.
func (w *wal) pendingEntries() ([]walFile, error) {
	dirEntries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, fmt.Errorf("list WAL dir: %w", err)
	}
	var out []walFile
	for _, de := range dirEntries {
		name := de.Name()
		if isTempName(name) {
			os.Remove(filepath.Join(w.dir, name))
			continue
		}
		if !strings.HasSuffix(name, walSuffix) || !de.Type().IsRegular() {
			continue
		}
		e, err := w.readEntry(name)
		out = append(out, walFile{name: name, entry: e, err: err})
	}
	return out, nil
}

func (w *wal) readEntry(name string) (walEntry, error) {
	var e walEntry
	f, err := os.Open(filepath.Join(w.dir, name))
	if err != nil {
		return e, fmt.Errorf("open WAL entry: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxWALEntry+1))
	if err != nil {
		return e, fmt.Errorf("read WAL entry: %w", err)
	}
	if len(data) > maxWALEntry {
		return e, errors.New("WAL entry too large")
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("decode WAL entry: %w", err)
	}
	if _, err := parseFileID(e.FileID); err != nil {
		return e, fmt.Errorf("WAL entry file_id: %w", err)
	}
	switch e.OperationType {
	case walFileCreate, walFileUpdate, walFileDelete, walFilePurge:
	default:
		return e, fmt.Errorf("WAL entry operation_type %q unknown", e.OperationType)
	}
	return e, nil
}

// remove deletes an entry after recovery handled it.
func (w *wal) remove(name string) error {
	if err := os.Remove(filepath.Join(w.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove WAL entry: %w", err)
	}
	return nil
}

// quarantine moves an unreadable entry aside (dot-prefixed, kept for the operator)
// so it never blocks start-up again.
func (w *wal) quarantine(name string) error {
	if err := os.Rename(filepath.Join(w.dir, name), filepath.Join(w.dir, ".corrupt."+name)); err != nil {
		return fmt.Errorf("quarantine WAL entry: %w", err)
	}
	return nil
}

// countPending is what the readiness check and metrics report.
func (w *wal) countPending() (int, error) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return 0, fmt.Errorf("list WAL dir: %w", err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), walSuffix) && !isTempName(e.Name()) && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n, nil
}

// groupSync shares directory fsyncs between concurrent callers (group commit): a
// caller returns once an fsync of the directory that started after its call began has
// finished, so every entry created or renamed before the call is durable. While one
// fsync runs, later callers queue; the next fsync covers all of them.
type groupSync struct {
	dir      string
	syncFn   func(dir string) error // nil = syncDir (tests stub it)
	mu       sync.Mutex
	cond     sync.Cond
	started  uint64 // fsyncs started so far
	finished uint64 // sequence number of the last finished fsync
	running  bool
	failedAt uint64 // sequence number of the last failed fsync (0: none)
	err      error  // its error
}

func (g *groupSync) sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond.L == nil {
		g.cond.L = &g.mu
	}
	// An fsync already running may have started before this caller's changes: wait for
	// the next one to start and finish.
	want := g.started + 1
	for g.finished < want {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		seq := g.started
		g.mu.Unlock()
		err := g.syncOnce()
		g.mu.Lock()
		g.running = false
		g.finished = seq
		if err != nil {
			g.failedAt, g.err = seq, err
		}
		g.cond.Broadcast()
	}
	if g.failedAt >= want {
		return g.err
	}
	return nil
}

func (g *groupSync) syncOnce() error {
	if g.syncFn != nil {
		return g.syncFn(g.dir)
	}
	return syncDir(g.dir)
}
