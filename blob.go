// blob.go — where bytes live on disk and the primitives that put them there durably.
//
// Layout of SE_DATA_DIR (CONTRACT §6):
//
//	mode.json, .leader.lock, .leader.info     the SE's own top-level files
//	ab/cd/<storage_name>                      the blob of file abcd….
//	ab/cd/<storage_name>.attr.json            its sidecar (attr.go)
//	ab/cd/.tmp.<file_id>.<random>             a write in progress (never visible as a file)
//
// The shard directory is the first two and the next two hex digits of the file_id, so
// 65 536 directories hold millions of files with a few dozen entries each, and a file's
// directory follows from its id alone.
//
// storage_name = {original}_{user}_{timestamp}_{file_id}[.{ext}], each component reduced
// to [A-Za-z0-9-] and bounded, so nothing a client sends can form a path element other
// than a plain file name in the shard directory.
//
// Invariants:
//   - Every path the SE opens or removes is shardDir(file_id) joined with a name that
//     validStorageName accepts for that file_id, or a temp name built by tempName.
//   - Every file write is temp file → fsync → rename, and the directory is fsynced before
//     the write is acknowledged (writeFileAtomic + syncDir). New directories are fsynced
//     into their parents (ensureDir).
//   - Temp names carry the file_id and a random suffix: no two writers share one, and WAL
//     recovery can find the temp files of one transaction.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

const (
	sidecarSuffix     = ".attr.json"
	tempPrefix        = ".tmp."
	maxNameComponent  = 64
	maxUserComponent  = 32
	maxExtComponent   = 16
	storageTimeLayout = "20060102T150405Z"
)

// shardRel is the shard directory of a file relative to the data dir: "ab/cd".
func shardRel(id uuid.UUID) string {
	s := id.String()
	return s[0:2] + "/" + s[2:4]
}

func shardDir(dataDir string, id uuid.UUID) string {
	return filepath.Join(dataDir, shardRel(id))
}

// storageName builds the blob's base name from client input, reduced to a safe set.
func storageName(original, user string, at time.Time, id uuid.UUID) string {
	base, ext := splitExt(original)
	b := strings.Builder{}
	b.WriteString(safeComponent(base, maxNameComponent, "file"))
	b.WriteByte('_')
	b.WriteString(safeComponent(user, maxUserComponent, "user"))
	b.WriteByte('_')
	b.WriteString(at.UTC().Format(storageTimeLayout))
	b.WriteByte('_')
	b.WriteString(id.String())
	if e := safeExt(ext); e != "" {
		b.WriteByte('.')
		b.WriteString(e)
	}
	return b.String()
}

// splitExt splits the last path element of a client file name into base and extension.
// Both '/' and '\' count as separators so a Windows path cannot smuggle a directory.
func splitExt(name string) (base, ext string) {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return name, ""
	}
	return name[:i], name[i+1:]
}

// safeComponent keeps ASCII letters, digits and '-', maps everything else to '-',
// squeezes runs of '-', and bounds the length.
func safeComponent(s string, max int, fallback string) string {
	out := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(out) < max; i++ {
		c := s[i]
		if !isNameByte(c) {
			c = '-'
		}
		if c == '-' && (len(out) == 0 || out[len(out)-1] == '-') {
			continue
		}
		out = append(out, c)
	}
	for len(out) > 0 && out[len(out)-1] == '-' {
		out = out[:len(out)-1]
	}
	if len(out) == 0 {
		return fallback
	}
	return string(out)
}

func safeExt(ext string) string {
	out := make([]byte, 0, maxExtComponent)
	for i := 0; i < len(ext) && len(out) < maxExtComponent; i++ {
		c := ext[i]
		switch {
		case c >= 'A' && c <= 'Z':
			out = append(out, c+('a'-'A'))
		case (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'):
			out = append(out, c)
		}
	}
	return string(out)
}

func isNameByte(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
}

// validStorageName reports whether name is a storage name the SE could have built for
// id: one path element of [A-Za-z0-9._-], not dot-prefixed, bounded, and ending in
// "_<id>" or "_<id>.<ext>". This is what confines a name read from a sidecar.
func validStorageName(name string, id uuid.UUID) bool {
	const maxLen = maxNameComponent + maxUserComponent + len(storageTimeLayout) + 36 + maxExtComponent + 5
	if name == "" || len(name) > maxLen || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isNameByte(c) && c != '.' && c != '_' {
			return false
		}
	}
	marker := "_" + id.String()
	i := strings.LastIndex(name, marker)
	if i <= 0 {
		return false
	}
	rest := name[i+len(marker):]
	if rest == "" {
		return true
	}
	return rest[0] == '.' && len(rest) > 1 && len(rest)-1 <= maxExtComponent && safeExt(rest[1:]) == rest[1:]
}

// tempName is the name of a write in progress for file id in its shard directory.
func tempName(id uuid.UUID) string {
	return tempPrefix + id.String() + "." + randomHex(8)
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	return hex.EncodeToString(b)
}

// tempFileID returns the file id a temp name belongs to.
func tempFileID(name string) (uuid.UUID, bool) {
	rest, ok := strings.CutPrefix(name, tempPrefix)
	if !ok || len(rest) < 37 || rest[36] != '.' {
		return uuid.UUID{}, false
	}
	id, err := parseFileID(rest[:36])
	return id, err == nil
}

// isTempName reports whether a directory entry is an SE temp file (of any file id).
func isTempName(name string) bool { return strings.HasPrefix(name, tempPrefix) }

// writeFileAtomic writes data to dir/name through a temp file in the same directory:
// create → write → fsync → rename. The caller fsyncs dir once its whole operation is in
// place (several renames share one directory fsync).
func writeFileAtomic(dir, name, tmp string, data []byte) error {
	if err := writeTempFile(dir, tmp, data); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, tmp), filepath.Join(dir, name)); err != nil {
		os.Remove(filepath.Join(dir, tmp))
		return fmt.Errorf("rename temp file: %w", err)
	}
	return nil
}

// writeTempFile creates dir/tmp (which must not exist) with data, fsynced.
func writeTempFile(dir, tmp string, data []byte) error {
	tmpPath := filepath.Join(dir, tmp)
	f, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	if err := writeSyncClose(f, data); err != nil {
		os.Remove(tmpPath)
		return err
	}
	return nil
}

func writeSyncClose(f *os.File, data []byte) error {
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("write temp file: %w", err)
	}
	return nil
}

// syncDir makes the directory entries of dir (creations, renames, removals) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	return nil
}

// ensureDir creates dir and any missing parents below root, fsyncing each parent that
// gained an entry, so a new shard directory survives a crash together with its files.
func ensureDir(root, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != root && len(parent) > len(root) {
		if err := ensureDir(root, parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create dir: %w", err)
	}
	return syncDir(parent)
}

// idFiles are the directory entries belonging to one file id in its shard directory.
type idFiles struct {
	blobs    []string // names validStorageName accepts (normally one)
	sidecars []string // "<blob>.attr.json" (normally one)
	temps    []string // writes in progress or left by a crash
}

// listIDFiles finds the entries of id in its shard directory. A missing directory
// means no entries.
func listIDFiles(dataDir string, id uuid.UUID) (idFiles, error) {
	var out idFiles
	entries, err := os.ReadDir(shardDir(dataDir, id))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("list shard dir: %w", err)
	}
	idStr := id.String()
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tempPrefix+idStr+"."):
			out.temps = append(out.temps, name)
		case strings.HasSuffix(name, sidecarSuffix) && validStorageName(strings.TrimSuffix(name, sidecarSuffix), id):
			out.sidecars = append(out.sidecars, name)
		case validStorageName(name, id):
			out.blobs = append(out.blobs, name)
		}
	}
	return out, nil
}

// sidecarReadBuffer fits a typical sidecar (about 500 bytes) many times over; the
// index build reads one per file, and a pooled buffer keeps that from being garbage.
const sidecarReadBuffer = 4 << 10

var sidecarBufPool = sync.Pool{New: func() any { b := make([]byte, 0, sidecarReadBuffer); return &b }}

// readSidecarFile reads and validates one sidecar, bounded in size, and checks that it
// describes the file its name says it does.
func readSidecarFile(dir, name string) (*fileRecord, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("open sidecar: %w", err)
	}
	defer f.Close()
	bufp := sidecarBufPool.Get().(*[]byte)
	defer sidecarBufPool.Put(bufp)
	buf := bytes.NewBuffer((*bufp)[:0])
	_, err = buf.ReadFrom(io.LimitReader(f, maxSidecarBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read sidecar: %w", err)
	}
	if buf.Cap() <= sidecarReadBuffer {
		*bufp = buf.Bytes()[:0] // keep a buffer the read did not outgrow
	}
	rec, err := decodeSidecar(buf.Bytes())
	if err != nil {
		return nil, err
	}
	if rec.storageName+sidecarSuffix != name {
		return nil, errors.New("sidecar storage_name does not match its file name")
	}
	return rec, nil
}

// verifyingReader serves a blob to http.ServeContent and, when the whole blob is read
// from the start in order, checks its SHA-256 before handing out the last chunk. On a
// mismatch the last chunk is withheld and Read fails, so the client gets a truncated
// transfer (an error), never a complete response with wrong bytes. Ranged reads are not
// verified (that would cost a read of the whole blob); the size check in openBlob
// still applies.
//
// The hashing runs in its own goroutine on copies of the chunks served, gathered into
// hashBatch-sized batches, so SHA-256 overlaps with TLS and the socket instead of adding
// to them; only the last chunk waits for the digest. close stops that goroutine when a
// transfer ends early.
type verifyingReader struct {
	f          *os.File
	size       int64
	want       string
	onMismatch func()
	pos        int64
	hashed     int64 // bytes handed to the hasher so far, from offset 0 in order; -1 = not verifying
	h          *pipelinedHash
}

var errChecksumMismatch = errors.New("blob checksum mismatch")

func newVerifyingReader(f *os.File, size int64, checksum string, onMismatch func()) *verifyingReader {
	return &verifyingReader{f: f, size: size, want: checksum, onMismatch: onMismatch}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.ReadAt(p[:min(int64(len(p)), max(v.size-v.pos, 0))], v.pos)
	if n == 0 && err == nil {
		err = io.EOF
	}
	if v.hashed == v.pos && v.hashed >= 0 {
		if v.h == nil {
			v.h = startPipelinedHash()
		}
		v.h.write(p[:n])
		v.hashed += int64(n)
		if v.hashed == v.size {
			sum := v.h.sum()
			v.h, v.hashed = nil, -1 // verified (or not): nothing more to hash
			if sum != v.want {
				v.onMismatch()
				return 0, errChecksumMismatch
			}
		}
	} else {
		v.stopHashing()
	}
	v.pos += int64(n)
	if err == io.EOF && v.pos < v.size {
		err = io.ErrUnexpectedEOF // the blob shrank under us
	}
	return n, err
}

func (v *verifyingReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += v.pos
	case io.SeekEnd:
		offset += v.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	if offset == 0 {
		v.stopHashing()
		v.hashed = 0
	}
	v.pos = offset
	return offset, nil
}

// stopHashing abandons verification (a seek elsewhere, a ranged read).
func (v *verifyingReader) stopHashing() {
	v.close()
	v.hashed = -1
}

// close releases the hasher goroutine; the handler defers it.
func (v *verifyingReader) close() {
	if v.h != nil {
		v.h.abandon()
		v.h = nil
	}
}

// hashBatch is how many served bytes the hasher receives at a time.
const hashBatch = 256 << 10

var hashBatchPool = sync.Pool{New: func() any { b := make([]byte, 0, hashBatch); return &b }}

// pipelinedHash computes SHA-256 in its own goroutine over batches of bytes written to
// it in order. At most two batches are in flight, so memory stays bounded.
type pipelinedHash struct {
	batches chan *[]byte
	cur     *[]byte
	digest  chan string
}

func startPipelinedHash() *pipelinedHash {
	batches, digest := make(chan *[]byte, 1), make(chan string, 1)
	ph := &pipelinedHash{batches: batches, digest: digest}
	go func() {
		h := sha256.New()
		for b := range batches {
			h.Write(*b)
			*b = (*b)[:0]
			hashBatchPool.Put(b)
		}
		digest <- hex.EncodeToString(h.Sum(nil))
	}()
	return ph
}

// write copies p into the current batch, sending full batches to the hasher.
func (ph *pipelinedHash) write(p []byte) {
	for len(p) > 0 {
		if ph.cur == nil {
			ph.cur = hashBatchPool.Get().(*[]byte)
		}
		n := min(len(p), hashBatch-len(*ph.cur))
		*ph.cur = append(*ph.cur, p[:n]...)
		p = p[n:]
		if len(*ph.cur) == hashBatch {
			ph.batches <- ph.cur
			ph.cur = nil
		}
	}
}

// sum sends the last batch and waits for the digest of everything written. It is
// called once, after the last write.
func (ph *pipelinedHash) sum() string {
	if ph.cur != nil {
		ph.batches <- ph.cur
		ph.cur = nil
	}
	close(ph.batches)
	ph.batches = nil
	return <-ph.digest
}

// abandon stops the hasher without waiting for a digest.
func (ph *pipelinedHash) abandon() {
	if ph.batches == nil {
		return
	}
	if ph.cur != nil {
		*ph.cur = (*ph.cur)[:0]
		hashBatchPool.Put(ph.cur)
		ph.cur = nil
	}
	close(ph.batches)
	ph.batches = nil
}
