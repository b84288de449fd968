// store.go — the storage engine: uploads, updates, deletes, lookups, WAL recovery and
// the start-up index build. It knows nothing about HTTP; handlers.go is a thin layer on
// top, and tests drive it directly.
//
// Invariants:
//   - Every state change of a file runs inside a WAL transaction (wal.go) that is begun
//     before the data directory is touched and finished only after the change is
//     durable (fsynced file and directory) or fully undone.
//   - An upload is visible (index, 201) only after blob, sidecar and directory entries
//     are on stable storage. A failed upload leaves no blob, no sidecar, no temp file and
//     no capacity reservation.
//   - Capacity: activeBytes (index) + reserved (in-flight uploads) never exceeds
//     maxCapacity. A commit adds to activeBytes before it releases its reservation, so
//     the sum only over-counts, never under-counts, for an instant.
//   - uploaded_at is strictly increasing in index publication order (uploadSequencer),
//     so a file uploaded during a paging pass lands after it (CONTRACT §4), while the
//     disk I/O of concurrent commits (fsyncs) still runs in parallel.
//   - Operations on one file id (PATCH, DELETE, GC) serialise on its stripe lock.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
)

var (
	errNotFound       = errors.New("file not found")
	errModeNotAllowed = errors.New("operation not allowed in the current mode")
	errFileTooLarge   = errors.New("file exceeds the maximum file size")
	errStorageFull    = errors.New("storage is full")
	errNotReady       = errors.New("storage is starting")
	errNotWritable    = errors.New("this replica does not accept writes now")
)

// validationError is a client mistake; its message is safe to return.
type validationError struct{ msg string }

func (e *validationError) Error() string { return e.msg }

func invalidf(format string, args ...any) error {
	return &validationError{msg: fmt.Sprintf(format, args...)}
}

// isDiskFull reports whether err means the filesystem (or the user's quota) is full.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

type storeOptions struct {
	DataDir     string
	WALDir      string
	SeedMode    seMode
	MaxFileSize int64
	MaxCapacity int64
	Now         func() time.Time // nil = time.Now
	Logger      *slog.Logger
	// Replicated: this process may be a follower, which never writes the data dir,
	// so opening it must not seed mode.json (the leader does at takeover).
	Replicated bool
}

type store struct {
	dataDir     string
	wal         *wal
	index       *fileIndex
	mode        *modeState
	capacity    *capacityGuard
	maxFileSize int64
	now         func() time.Time
	log         *slog.Logger

	ready atomic.Bool // the index is built: reads are served
	seq   uploadSequencer
	// readThrough: an index miss is looked up on disk before it is a 404 (followers,
	// whose index lags the leader's writes by up to one refresh interval).
	readThrough atomic.Bool
	// learned, when set (followers), hears of every id a read-through published.
	learned func(uuid.UUID)

	// writeMu guards the writer gate: writable says whether this process may change the
	// data directory now (standalone after start-up, a leader after takeover), writers
	// counts operations in flight so a stepping-down leader can wait for them.
	writeMu   sync.Mutex
	writeDone sync.Cond
	writable  bool
	writers   int
	// persistMu: every section that changes the data directory holds it for reading
	// and re-checks writable inside (withPersist); stepDown takes it for writing, so
	// once the leader lock is released no change by this process can land.
	persistMu sync.RWMutex
	stripes   [256]sync.Mutex

	// gate lets an index rebuild (reconcile) run without losing concurrent writes:
	// writers hold it for reading around each index change and note the file id in
	// dirty while a rebuild runs; the rebuild holds it for writing only to merge.
	gate    sync.RWMutex
	dirtyMu sync.Mutex
	dirty   map[uuid.UUID]struct{} // nil when no rebuild runs
}

// openStore prepares the directories and the mode. It does not recover or index:
// start-up calls recover and buildIndex (in that order) before marking the store ready.
func openStore(opts storeOptions) (*store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	w, err := openWAL(opts.WALDir)
	if err != nil {
		return nil, err
	}
	ms, differs, err := loadMode(opts.DataDir, opts.SeedMode, opts.Now(), !opts.Replicated)
	if err != nil {
		return nil, err
	}
	if differs {
		opts.Logger.Warn("mode.json overrides SE_MODE", "mode", ms.current(), "se_mode", opts.SeedMode)
	}
	s := &store{
		dataDir:     opts.DataDir,
		wal:         w,
		index:       newFileIndex(),
		mode:        ms,
		maxFileSize: opts.MaxFileSize,
		now:         opts.Now,
		log:         opts.Logger,
	}
	s.capacity = &capacityGuard{max: opts.MaxCapacity, active: s.index.ActiveBytes}
	return s, nil
}

func (s *store) stripe(id uuid.UUID) *sync.Mutex { return &s.stripes[id[15]] }

// ---- writer gate ----

// enterWrite admits one state-changing operation; exitWrite must follow.
func (s *store) enterWrite() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if !s.writable {
		if !s.ready.Load() {
			return errNotReady
		}
		return errNotWritable
	}
	s.writers++
	return nil
}

func (s *store) exitWrite() {
	s.writeMu.Lock()
	s.writers--
	if s.writers == 0 && s.writeDone.L != nil {
		s.writeDone.Broadcast()
	}
	s.writeMu.Unlock()
}

func (s *store) isWritable() bool {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.writable
}

func (s *store) allowWrites() {
	s.writeMu.Lock()
	s.writable = true
	s.writeMu.Unlock()
}

// withPersist runs fn, a change to the data directory, unless writes were stopped.
func (s *store) withPersist(fn func() error) error {
	s.persistMu.RLock()
	defer s.persistMu.RUnlock()
	if !s.isWritable() {
		return errNotWritable
	}
	return fn()
}

// stepDown ends this process's writes before it gives up leadership: new writes are
// refused, those in flight get up to timeout to finish, then release runs while no
// change can be in progress. Uploads still streaming after that abort at commit.
func (s *store) stepDown(timeout time.Duration, release func()) {
	if !s.stopWrites(timeout) {
		s.log.Warn("writes still in flight at step-down; they will roll back")
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	release()
}

// stopWrites refuses new writes and waits up to timeout for those in flight to finish
// (commit or roll back). It reports whether they all did.
func (s *store) stopWrites(timeout time.Duration) bool {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.writable = false
	if s.writeDone.L == nil {
		s.writeDone.L = &s.writeMu
	}
	timer := time.AfterFunc(timeout, func() {
		s.writeMu.Lock()
		s.writeDone.Broadcast()
		s.writeMu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	for s.writers > 0 && time.Now().Before(deadline) {
		s.writeDone.Wait()
	}
	return s.writers == 0
}

// ---- capacity ----

// capacityGuard reserves bytes for in-flight uploads against SE_MAX_CAPACITY.
type capacityGuard struct {
	mu       sync.Mutex
	max      int64
	reserved int64
	active   func() int64
}

func (c *capacityGuard) reserve(n int64) bool {
	if n <= 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active()+c.reserved+n > c.max {
		return false
	}
	c.reserved += n
	return true
}

func (c *capacityGuard) release(n int64) {
	c.mu.Lock()
	c.reserved -= n
	c.mu.Unlock()
}

func (c *capacityGuard) reservedBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reserved
}

// ---- upload ----

// uploadChunkGrowth is how much an upload's reservation grows at a time when the body is
// larger than announced (or not announced): big enough to keep the guard's mutex cold.
const uploadChunkGrowth = 8 << 20

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// upload is one file being received. Use: beginUpload → writeContent → commit, with
// abort deferred (a no-op after a successful commit).
type upload struct {
	s          *store
	id         uuid.UUID
	tx         *walTx
	dir        string
	tmp        string
	f          *os.File
	hash       hash.Hash
	reserved   int64
	written    int64
	sidecarTmp string // sidecar temp name once written, for abort
	renamed    string // blob name once renamed into place, for abort
	done       bool
}

// beginUpload reserves capacity for the announced size (-1 when unknown), opens the WAL
// transaction and creates the temp file.
func (s *store) beginUpload(announced int64) (*upload, error) {
	if announced > s.maxFileSize {
		return nil, errFileTooLarge
	}
	if err := s.enterWrite(); err != nil {
		return nil, err
	}
	initial := max(announced, 0)
	if !s.capacity.reserve(initial) {
		s.exitWrite()
		return nil, errStorageFull
	}
	u := &upload{s: s, id: uuid.New(), reserved: initial, hash: sha256.New()}
	u.dir = shardDir(s.dataDir, u.id)
	tx, err := s.wal.begin(walFileCreate, u.id, s.now())
	if err != nil {
		s.capacity.release(initial)
		s.exitWrite()
		return nil, fmt.Errorf("begin upload: %w", err)
	}
	u.tx = tx
	if err := u.createTemp(); err != nil {
		u.abort()
		return nil, err
	}
	return u, nil
}

func (u *upload) createTemp() error {
	if err := ensureDir(u.s.dataDir, u.dir); err != nil {
		return u.diskError("create shard dir", err)
	}
	u.tmp = tempName(u.id)
	f, err := os.OpenFile(filepath.Join(u.dir, u.tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return u.diskError("create temp file", err)
	}
	u.f = f
	return nil
}

func (u *upload) diskError(what string, err error) error {
	if isDiskFull(err) {
		return errStorageFull
	}
	return fmt.Errorf("%s: %w", what, err)
}

// writeContent streams r into the temp file while hashing, enforcing the file size
// limit and capacity as bytes arrive. Memory use is one pooled buffer.
func (u *upload) writeContent(r io.Reader) error {
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := *bufp
	for {
		// mime/multipart hands out at most 4 KiB per Read; filling the whole buffer
		// first turns 64 small writes into one.
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := u.append(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read upload body: %w", rerr)
		}
	}
}

func (u *upload) append(p []byte) error {
	next := u.written + int64(len(p))
	if next > u.s.maxFileSize {
		return errFileTooLarge
	}
	if next > u.reserved {
		if err := u.grow(next - u.reserved); err != nil {
			return err
		}
	}
	if _, err := u.f.Write(p); err != nil {
		return u.diskError("write temp file", err)
	}
	u.hash.Write(p)
	u.written = next
	return nil
}

// grow extends the reservation by at least need bytes: a whole chunk when capacity
// allows, else exactly what is needed, so the last bytes of capacity stay usable.
func (u *upload) grow(need int64) error {
	chunk := min(max(need, uploadChunkGrowth), u.s.maxFileSize-u.reserved)
	if chunk > need && u.s.capacity.reserve(chunk) {
		u.reserved += chunk
		return nil
	}
	if !u.s.capacity.reserve(need) {
		return errStorageFull
	}
	u.reserved += need
	return nil
}

// uploadInfo is what the client told about the file besides its bytes.
type uploadInfo struct {
	Filename    string
	ContentType string
	UploadedBy  string
	Description *string
	Tags        []string
}

// commit makes the upload durable and visible and returns its record.
func (u *upload) commit(info uploadInfo) (*fileRecord, error) {
	if err := u.f.Sync(); err != nil {
		return nil, u.diskError("fsync temp file", err)
	}
	if err := u.f.Close(); err != nil {
		return nil, u.diskError("close temp file", err)
	}
	u.f = nil
	var rec *fileRecord
	err := u.s.withPersist(func() error {
		return u.s.mode.withAllowed(opUpload, func(mode seMode) error {
			at := u.s.seq.ticket(u.s.now())
			var err error
			rec, err = u.persist(info, mode, at)
			if err != nil {
				u.s.seq.resolve(at, nil)
				return err
			}
			u.s.seq.resolve(at, func() { u.s.publish(rec) })
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	u.done = true
	u.s.capacity.release(u.reserved)
	if err := u.tx.finish(); err != nil {
		u.s.log.Warn("WAL entry of a committed upload not removed; recovery will roll it forward", "file_id", u.id, "err", err)
	}
	u.s.exitWrite()
	return rec, nil
}

// uploadSequencer hands out strictly increasing upload timestamps (tickets) and lets
// each upload publish to the index only once every older ticket is resolved (published
// or abandoned). The disk work between ticket and publication runs concurrently; only
// the publication order is serialised.
type uploadSequencer struct {
	mu      sync.Mutex
	cond    sync.Cond
	last    time.Time
	pending []time.Time // unresolved tickets, ascending
}

// ticket returns a UTC timestamp later than every one handed out or observed before.
func (q *uploadSequencer) ticket(now time.Time) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := now.UTC()
	if !t.After(q.last) {
		t = q.last.Add(time.Nanosecond)
	}
	q.last = t
	q.pending = append(q.pending, t)
	return t
}

// observe raises the floor of future tickets (index build: files already on disk).
func (q *uploadSequencer) observe(t time.Time) {
	q.mu.Lock()
	if t.After(q.last) {
		q.last = t
	}
	q.mu.Unlock()
}

// resolve ends ticket t. With publish set it first waits until t is the oldest
// unresolved ticket, then runs publish; with publish nil (abandoned) it returns at once.
func (q *uploadSequencer) resolve(t time.Time, publish func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cond.L == nil {
		q.cond.L = &q.mu
	}
	for publish != nil && !q.pending[0].Equal(t) {
		q.cond.Wait()
	}
	if publish != nil {
		publish()
	}
	for i, p := range q.pending {
		if p.Equal(t) {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			break
		}
	}
	q.cond.Broadcast()
}

// persist renames the blob into place, writes the sidecar and fsyncs the directory: the
// upload is durable when it returns; the caller publishes it.
func (u *upload) persist(info uploadInfo, mode seMode, at time.Time) (*fileRecord, error) {
	meta := FileMetadata{
		FileID:           u.id.String(),
		OriginalFilename: info.Filename,
		ContentType:      info.ContentType,
		Size:             u.written,
		Checksum:         hex.EncodeToString(u.hash.Sum(nil)),
		UploadedBy:       info.UploadedBy,
		UploadedAt:       at,
		Description:      info.Description,
		Tags:             info.Tags,
		Status:           statusActive.String(),
	}
	applyRetention(&meta, mode)
	name := storageName(info.Filename, info.UploadedBy, at, u.id)
	rec, err := newFileRecord(meta, name)
	if err != nil {
		return nil, invalidf("invalid file metadata: %v", err)
	}
	data, err := encodeSidecar(rec)
	if err != nil {
		return nil, err
	}
	// The sidecar is durable as a temp file before the blob gets its final name, so a
	// crash between the renames always leaves a temp file of this id behind, which is
	// what tells a writer's start-up scan that the id's operation was interrupted.
	sidecarTmp := tempName(u.id)
	if err := writeTempFile(u.dir, sidecarTmp, data); err != nil {
		return nil, u.diskError("write sidecar", err)
	}
	u.sidecarTmp = sidecarTmp
	if err := os.Rename(filepath.Join(u.dir, u.tmp), filepath.Join(u.dir, name)); err != nil {
		return nil, u.diskError("rename blob", err)
	}
	u.renamed = name
	if err := os.Rename(filepath.Join(u.dir, sidecarTmp), filepath.Join(u.dir, name+sidecarSuffix)); err != nil {
		return nil, u.diskError("rename sidecar", err)
	}
	if err := syncDir(u.dir); err != nil {
		return nil, u.diskError("fsync shard dir", err)
	}
	return rec, nil
}

// applyRetention sets retention from the mode at upload time (CONTRACT §2).
func applyRetention(m *FileMetadata, mode seMode) {
	if mode != modeEdit {
		m.RetentionPolicy = retentionPermanent
		m.TTLDays, m.ExpiresAt = nil, nil
		return
	}
	ttl := defaultTTLDays
	exp := m.UploadedAt.Add(time.Duration(ttl) * 24 * time.Hour)
	m.RetentionPolicy = retentionTemporary
	m.TTLDays, m.ExpiresAt = &ttl, &exp
}

// abort undoes an upload that did not commit: temp file, any renamed blob or sidecar,
// the capacity reservation and the WAL entry. If the undo itself fails the WAL entry
// stays, so recovery at the next start finishes it.
func (u *upload) abort() {
	if u.done {
		return
	}
	u.done = true
	defer u.s.exitWrite()
	if u.f != nil {
		u.f.Close()
	}
	var errs []error
	remove := func(name string) {
		if err := os.Remove(filepath.Join(u.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if u.tmp != "" {
		remove(u.tmp)
	}
	if u.sidecarTmp != "" {
		remove(u.sidecarTmp)
	}
	if u.renamed != "" {
		u.s.noteDirty(u.id) // a concurrent rebuild may have read the sidecar
		remove(u.renamed + sidecarSuffix)
		remove(u.renamed)
		if err := syncDir(u.dir); err != nil {
			errs = append(errs, err)
		}
	}
	u.s.capacity.release(u.reserved)
	if len(errs) > 0 {
		u.s.log.Error("upload rollback incomplete; WAL recovery will finish it at next start", "file_id", u.id, "err", errors.Join(errs...))
		return
	}
	if u.tx != nil {
		if err := u.tx.finish(); err != nil {
			u.s.log.Warn("WAL entry of an aborted upload not removed", "file_id", u.id, "err", err)
		}
	}
}

// ---- reads ----

// lookup returns the record of a file whatever its status.
func (s *store) lookup(id uuid.UUID) (*fileRecord, error) {
	if !s.ready.Load() {
		return nil, errNotReady
	}
	if rec, ok := s.index.Get(id); ok {
		return rec, nil
	}
	if !s.readThrough.Load() {
		return nil, errNotFound
	}
	return s.refreshFromDisk(id)
}

// refreshFromDisk reads one file's sidecar from its shard directory and publishes it
// (followers: read-after-write, and the effect of a write they just forwarded).
// A file with no sidecar is removed from the index.
func (s *store) refreshFromDisk(id uuid.UUID) (*fileRecord, error) {
	files, err := listIDFiles(s.dataDir, id)
	if err != nil {
		return nil, err
	}
	if len(files.sidecars) != 1 {
		if len(files.sidecars) == 0 {
			s.unpublish(id)
		}
		return nil, errNotFound
	}
	rec, err := readSidecarFile(shardDir(s.dataDir, id), files.sidecars[0])
	if err != nil || rec.id() != id {
		return nil, errNotFound
	}
	s.publish(rec)
	if s.learned != nil {
		s.learned(id)
	}
	return rec, nil
}

// list returns one page in the stable order of CONTRACT §4.
func (s *store) list(f statusFilter, offset, limit int) ([]*fileRecord, int, error) {
	if !s.ready.Load() {
		return nil, 0, errNotReady
	}
	items, total := s.index.Page(f, offset, limit)
	return items, total, nil
}

// blobPath is the only way a blob path is formed: shard dir of the id + a validated name.
func (s *store) blobPath(rec *fileRecord) string {
	return filepath.Join(shardDir(s.dataDir, rec.id()), rec.storageName)
}

// openBlob opens the bytes of an active file and checks their size against the sidecar,
// so a truncated or replaced blob is an error, never served.
func (s *store) openBlob(id uuid.UUID) (*fileRecord, *os.File, error) {
	rec, err := s.lookup(id)
	if err != nil {
		return nil, nil, err
	}
	if rec.status() != statusActive {
		return nil, nil, errNotFound
	}
	f, err := os.Open(s.blobPath(rec))
	if err != nil {
		return nil, nil, fmt.Errorf("open blob of %s: %w", id, err)
	}
	st, err := f.Stat()
	if err != nil || st.Size() != rec.size() || !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("blob of %s does not match its sidecar (stat err %v)", id, err)
	}
	return rec, f, nil
}

// ---- metadata changes ----

// metadataPatch is a validated PATCH body. A field is changed only when its Set flag
// is true; a nil value then clears it (JSON null).
type metadataPatch struct {
	SetDescription bool
	Description    *string
	SetTags        bool
	Tags           []string
}

// updateMetadata applies a PATCH to an active file.
func (s *store) updateMetadata(id uuid.UUID, p metadataPatch) (*fileRecord, error) {
	return s.rewriteSidecar(id, opUpdate, walFileUpdate, func(m *FileMetadata) {
		if p.SetDescription {
			m.Description = p.Description
		}
		if p.SetTags {
			m.Tags = p.Tags
		}
	})
}

// softDelete marks an active file deleted; GC removes its bytes later.
func (s *store) softDelete(id uuid.UUID) error {
	_, err := s.rewriteSidecar(id, opDelete, walFileDelete, func(m *FileMetadata) {
		m.Status = statusDeleted.String()
	})
	return err
}

// rewriteSidecar is the one path for changing an active file's metadata: mode check,
// per-file lock, WAL, atomic sidecar rewrite, directory fsync, index update.
func (s *store) rewriteSidecar(id uuid.UUID, op operation, walType walOp, change func(*FileMetadata)) (*fileRecord, error) {
	if err := s.enterWrite(); err != nil {
		return nil, err
	}
	defer s.exitWrite()
	var out *fileRecord
	err := s.withPersist(func() error {
		return s.mode.withAllowed(op, func(seMode) error {
			mu := s.stripe(id)
			mu.Lock()
			defer mu.Unlock()
			rec, ok := s.index.Get(id)
			if !ok || rec.status() != statusActive {
				return errNotFound
			}
			m := rec.metadata()
			change(&m)
			next, err := rec.withMeta(m)
			if err != nil {
				return invalidf("invalid metadata: %v", err)
			}
			if err := s.writeSidecar(next, walType); err != nil {
				return err
			}
			out = next
			return nil
		})
	})
	return out, err
}

// writeSidecar durably replaces a file's sidecar under a WAL transaction and publishes
// the record. The caller holds the file's stripe lock.
func (s *store) writeSidecar(rec *fileRecord, walType walOp) error {
	data, err := encodeSidecar(rec)
	if err != nil {
		return err
	}
	tx, err := s.wal.begin(walType, rec.id(), s.now())
	if err != nil {
		return err
	}
	dir := shardDir(s.dataDir, rec.id())
	if err := writeFileAtomic(dir, rec.storageName+sidecarSuffix, tempName(rec.id()), data); err != nil {
		tx.finish()
		if isDiskFull(err) {
			return errStorageFull
		}
		return fmt.Errorf("write sidecar: %w", err)
	}
	if err := syncDir(dir); err != nil {
		// The rename may or may not be durable; the WAL entry stays so recovery decides.
		return fmt.Errorf("fsync shard dir: %w", err)
	}
	s.publish(rec)
	if err := tx.finish(); err != nil {
		s.log.Warn("WAL entry not removed", "file_id", rec.id(), "err", err)
	}
	return nil
}

// publish puts a durable record into the index.
func (s *store) publish(rec *fileRecord) {
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.index.Put(rec)
	s.noteDirty(rec.id())
}

// unpublish removes a purged file from the index.
func (s *store) unpublish(id uuid.UUID) {
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.index.Delete(id)
	s.noteDirty(id)
}

func (s *store) noteDirty(id uuid.UUID) {
	s.dirtyMu.Lock()
	if s.dirty != nil {
		s.dirty[id] = struct{}{}
	}
	s.dirtyMu.Unlock()
}

// rebuildIndex replaces the index with what the sidecars on disk say, while the store
// keeps serving: records written during the scan win over what the scan saw.
func (s *store) rebuildIndex(ctx context.Context) (scanResult, error) {
	s.gate.Lock()
	s.dirtyMu.Lock()
	s.dirty = map[uuid.UUID]struct{}{}
	s.dirtyMu.Unlock()
	s.gate.Unlock()
	res, err := scanDataDir(ctx, s.dataDir, false, s.log)

	s.gate.Lock()
	defer s.gate.Unlock()
	s.dirtyMu.Lock()
	dirty := s.dirty
	s.dirty = nil
	s.dirtyMu.Unlock()
	if err != nil {
		return res, err
	}
	byID := make(map[uuid.UUID]*fileRecord, len(res.records))
	for _, r := range res.records {
		byID[r.id()] = r
	}
	for id := range dirty {
		if cur, ok := s.index.Get(id); ok {
			byID[id] = cur
		} else {
			delete(byID, id)
		}
	}
	merged := make([]*fileRecord, 0, len(byID))
	for _, r := range byID {
		merged = append(merged, r)
	}
	s.index.ReplaceAll(merged)
	return res, nil
}

// transitionMode changes the mode (CONTRACT §2) as a write of this replica.
func (s *store) transitionMode(to seMode, confirm bool, by string) (seMode, time.Time, error) {
	if err := s.enterWrite(); err != nil {
		return "", time.Time{}, err
	}
	defer s.exitWrite()
	var from seMode
	var at time.Time
	err := s.withPersist(func() error {
		var err error
		from, at, err = s.mode.transition(to, confirm, by, s.now())
		return err
	})
	return from, at, err
}

// ---- recovery and index build ----

// recover rolls every pending WAL entry forward or back (CONTRACT §6). It runs before
// the index is built and before any write is accepted.
func (s *store) recover() error {
	entries, err := s.wal.pendingEntries()
	if err != nil {
		return err
	}
	for _, wf := range entries {
		if wf.err != nil {
			s.log.Error("unreadable WAL entry moved aside", "entry", wf.name, "err", wf.err)
			if err := s.wal.quarantine(wf.name); err != nil {
				return err
			}
			continue
		}
		outcome, err := s.recoverEntry(wf.entry)
		if err != nil {
			return fmt.Errorf("recover WAL entry %s: %w", wf.name, err)
		}
		s.log.Info("WAL entry recovered", "transaction_id", wf.entry.TransactionID,
			"operation_type", wf.entry.OperationType, "file_id", wf.entry.FileID, "status", outcome)
		if err := s.wal.remove(wf.name); err != nil {
			return err
		}
	}
	if len(entries) > 0 {
		return syncDir(s.wal.dir)
	}
	return nil
}

func (s *store) recoverEntry(e walEntry) (string, error) {
	id, _ := parseFileID(e.FileID) // validated by readEntry
	return repairFile(s.dataDir, id, e.OperationType == walFilePurge)
}

// repairFile brings one file id whose operation was interrupted to a consistent state,
// from what the data directory holds: temp files are removed; a blob and sidecar that
// form a complete pair are kept (the operation finished, or never touched them), any
// other combination is removed (an upload that never completed, or a purge that had
// begun). purge forces removal. It returns the WAL outcome it amounts to.
func repairFile(dataDir string, id uuid.UUID, purge bool) (string, error) {
	files, err := listIDFiles(dataDir, id)
	if err != nil {
		return "", err
	}
	dir := shardDir(dataDir, id)
	toRemove := append([]string(nil), files.temps...)
	outcome := walCommitted
	complete := createComplete(dir, files)
	if purge || !complete {
		toRemove = append(toRemove, files.sidecars...)
		toRemove = append(toRemove, files.blobs...)
		if !purge && len(files.blobs)+len(files.sidecars) > 0 {
			outcome = walRolledBack
		}
	}
	for _, name := range toRemove {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("remove leftover: %w", err)
		}
	}
	if len(toRemove) > 0 {
		if err := syncDir(dir); err != nil {
			return "", err
		}
	}
	return outcome, nil
}

// createComplete reports whether an interrupted upload reached stable storage whole:
// exactly one valid sidecar and its blob with the recorded size.
func createComplete(dir string, files idFiles) bool {
	if len(files.sidecars) != 1 || len(files.blobs) != 1 {
		return false
	}
	rec, err := readSidecarFile(dir, files.sidecars[0])
	if err != nil || rec.storageName != files.blobs[0] {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, files.blobs[0]))
	return err == nil && st.Size() == rec.size()
}

// scanResult is what a walk of the data directory found.
type scanResult struct {
	records     []*fileRecord
	badSidecars []string // relative paths of sidecars that failed validation
}

// scanDataDir reads every sidecar under the shard directories, in parallel. When
// removeTemps is set (the writer's start-up, after recovery) leftover temp files are
// removed; a follower must not, since the leader may be writing them.
func scanDataDir(ctx context.Context, dataDir string, removeTemps bool, log *slog.Logger) (scanResult, error) {
	leaves, err := listShardLeaves(dataDir)
	if err != nil {
		return scanResult{}, err
	}
	workers := max(4*runtime.GOMAXPROCS(0), 8)
	jobs := make(chan string)
	var mu sync.Mutex
	var res scanResult
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for rel := range jobs {
				recs, bad := scanLeaf(dataDir, rel, removeTemps, log)
				mu.Lock()
				res.records = append(res.records, recs...)
				res.badSidecars = append(res.badSidecars, bad...)
				mu.Unlock()
			}
		})
	}
	for _, rel := range leaves {
		if ctx.Err() != nil {
			break
		}
		jobs <- rel
	}
	close(jobs)
	wg.Wait()
	return res, ctx.Err()
}

// listShardLeaves returns "ab/cd" for every shard directory that exists.
func listShardLeaves(dataDir string) ([]string, error) {
	tops, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("list data dir: %w", err)
	}
	var leaves []string
	for _, t := range tops {
		if !t.IsDir() || !isShardName(t.Name()) {
			continue
		}
		subs, err := os.ReadDir(filepath.Join(dataDir, t.Name()))
		if err != nil {
			return nil, fmt.Errorf("list shard dir: %w", err)
		}
		for _, sd := range subs {
			if sd.IsDir() && isShardName(sd.Name()) {
				leaves = append(leaves, t.Name()+"/"+sd.Name())
			}
		}
	}
	return leaves, nil
}

func isShardName(s string) bool { return len(s) == 2 && isLowerHex(s, 2) }

// scanLeaf reads the sidecars of one shard directory. A sidecar is accepted only if its
// file_id belongs to this directory and its name matches its storage_name.
func scanLeaf(dataDir, rel string, removeTemps bool, log *slog.Logger) ([]*fileRecord, []string) {
	dir := filepath.Join(dataDir, rel)
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Error("cannot list shard dir", "dir", rel, "err", err)
		return nil, nil
	}
	if removeTemps && repairLeaf(dataDir, rel, entries, log) {
		if entries, err = os.ReadDir(dir); err != nil {
			log.Error("cannot list shard dir", "dir", rel, "err", err)
			return nil, nil
		}
	}
	var recs []*fileRecord
	var bad []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case isTempName(name):
		case len(name) > len(sidecarSuffix) && name[len(name)-len(sidecarSuffix):] == sidecarSuffix:
			rec, err := readSidecarFile(dir, name)
			if err == nil && shardRel(rec.id()) != rel {
				err = errors.New("sidecar is not in the shard directory of its file_id")
			}
			if err != nil {
				log.Warn("invalid sidecar skipped", "path", rel+"/"+name, "err", err)
				bad = append(bad, rel+"/"+name)
				continue
			}
			recs = append(recs, rec)
		}
	}
	return recs, bad
}

// repairLeaf repairs every file id of a shard directory that has temp files: an
// operation on it was interrupted (by a crash of this process or of another leader,
// whose WAL this process cannot see). It reports whether anything was repaired.
func repairLeaf(dataDir, rel string, entries []os.DirEntry, log *slog.Logger) bool {
	ids := map[uuid.UUID]bool{}
	for _, e := range entries {
		if id, ok := tempFileID(e.Name()); ok && shardRel(id) == rel {
			ids[id] = true
		} else if isTempName(e.Name()) {
			os.Remove(filepath.Join(dataDir, rel, e.Name())) // a temp of no valid id: junk
		}
	}
	for id := range ids {
		outcome, err := repairFile(dataDir, id, false)
		if err != nil {
			log.Error("repair of an interrupted operation failed", "file_id", id, "err", err)
			continue
		}
		log.Info("interrupted operation repaired", "file_id", id, "status", outcome)
	}
	return len(ids) > 0
}

// buildIndex scans the data directory and replaces the index with what it found.
func (s *store) buildIndex(ctx context.Context, removeTemps bool) (scanResult, error) {
	res, err := scanDataDir(ctx, s.dataDir, removeTemps, s.log)
	if err != nil {
		return res, err
	}
	s.index.ReplaceAll(res.records)
	var latest time.Time
	for _, r := range res.records {
		if r.uploadedAt().After(latest) {
			latest = r.uploadedAt()
		}
	}
	s.seq.observe(latest) // one lock, not one per file, at start-up
	return res, nil
}

// start runs the standalone start-up sequence: WAL recovery, the index build with
// repair of interrupted operations, then reads and writes.
func (s *store) start(ctx context.Context) error {
	began := time.Now()
	if err := s.recoverAndIndex(ctx); err != nil {
		return err
	}
	s.ready.Store(true)
	s.allowWrites()
	s.logReady("standalone", began)
	return nil
}

// startReader builds the index without touching the data directory (a follower).
func (s *store) startReader(ctx context.Context) error {
	began := time.Now()
	s.readThrough.Store(true)
	if _, err := s.buildIndex(ctx, false); err != nil {
		return fmt.Errorf("index build: %w", err)
	}
	s.ready.Store(true)
	s.logReady("follower", began)
	return nil
}

// takeOver makes this process the writer after it won the leader lock: recovery of its
// own WAL, repair of what a crashed leader left, a fresh index, then writes.
func (s *store) takeOver(ctx context.Context) error {
	began := time.Now()
	if err := s.mode.storeSeed(); err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	if err := s.recoverAndIndex(ctx); err != nil {
		return err
	}
	s.readThrough.Store(false)
	s.ready.Store(true)
	s.allowWrites()
	s.logReady("leader", began)
	return nil
}

func (s *store) recoverAndIndex(ctx context.Context) error {
	if err := s.recover(); err != nil {
		return fmt.Errorf("WAL recovery: %w", err)
	}
	if _, err := s.buildIndex(ctx, true); err != nil {
		return fmt.Errorf("index build: %w", err)
	}
	return nil
}

func (s *store) logReady(role string, began time.Time) {
	// The start-up scan's garbage (file contents, decoder state) is about as large as
	// the index itself; hand it back to the OS now rather than keep it as heap headroom.
	go debug.FreeOSMemory()
	c := s.index.Counts()
	s.log.Info("store ready", "role", role, "active", c.Active, "expired", c.Expired, "deleted", c.Deleted,
		"mode", s.mode.current(), "took", time.Since(began).Round(time.Millisecond).String())
}
