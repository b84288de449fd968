package main

// In-memory file index of the Storage Element.
//
// The sidecars (*.attr.json) are the source of truth; this index is a cache
// rebuilt from them (start-up, reconcile, follower refresh) and kept current
// by the write paths. It answers GET /api/v1/files pages, per-status counts,
// the active byte total (capacity checks, /api/v1/info) and id lookups.
//
// Concurrency model: copy-on-write snapshots.
//
//   - An indexSnapshot is immutable once published. Readers Load() the
//     current snapshot through an atomic.Pointer and never take a lock, so a
//     list request never waits behind an upload, a GC sweep or a rebuild,
//     and everything one call returns (a page and its total) comes from one
//     consistent state.
//   - Writers serialise on ix.mu, build the next snapshot by path copying
//     (O(log n) new nodes per tree touched, the rest shared with the old
//     snapshot) and Store() it. Old snapshots stay valid for as long as a
//     reader holds them and are reclaimed by the GC afterwards.
//
// Trees: persistent weight-balanced trees (Adams; parameters delta=3,
// gamma=2 with weight = size+1, the pair Hirai & Yamamoto proved correct
// for single insertions and deletions). Every node stores its subtree size,
// which gives both the balance criterion and O(log n) select-by-rank, so a
// page at any offset costs O(log n + limit), whatever the filter.
//
// A snapshot holds:
//
//	all          every record, ordered by (uploadedAt, id)
//	byStatus[s]  the records whose status is s, same order
//	byID         every record, ordered by id (lookups)
//	activeBytes  sum of size() over records with statusActive
//
// Order invariant: uploadedAt ascending (wall clock: Unix seconds, then
// nanoseconds; monotonic readings and locations are ignored so the order is
// a total order whatever produced the time.Time), then the 16 id bytes
// ascending, which equals comparing the lowercase canonical uuid strings.
// Ids are unique inside a snapshot, so the order key is unique too.
//
// Records are immutable once handed to the index: an update is a Put of a
// new *fileRecord with the same id. A record whose status is not one of the
// known fileStatus values is listed and counted only under filterAll.
//
// Memory: a node is three pointers and an int32 (32 bytes); every record
// sits in three trees, so the index costs about 96 bytes per entry on top
// of the records. ReplaceAll allocates the nodes of all three trees in one
// slab; later writes copy paths out of it, which can keep up to one slab of
// dead nodes reachable until the next ReplaceAll (bounded by 2x).

import (
	"cmp"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
)

// statusFilter selects the records a list walks: filterAll or one fileStatus.
type statusFilter uint8

const filterAll statusFilter = 0

// statusSlots sizes indexSnapshot.byStatus; slot 0 is never used.
const statusSlots = int(statusDeleted) + 1

// Weight-balance parameters (see the file comment).
const (
	wbDelta = 3
	wbGamma = 2
)

// indexCounts is the number of records per status and the active byte total,
// all taken from one snapshot.
type indexCounts struct {
	Active, Expired, Deleted int
	ActiveBytes              int64
}

// indexNode is one node of a persistent tree. It is never modified after it
// has been reachable from a published snapshot.
type indexNode struct {
	left, right *indexNode
	rec         *fileRecord
	size        int32 // number of nodes in this subtree, >= 1
}

// indexSnapshot is one immutable state of the index.
type indexSnapshot struct {
	all         *indexNode
	byStatus    [statusSlots]*indexNode
	byID        *indexNode
	activeBytes int64
}

// fileIndex is the index: a published snapshot plus the writers' mutex.
type fileIndex struct {
	mu   sync.Mutex // serialises writers; readers never take it
	snap atomic.Pointer[indexSnapshot]
}

func newFileIndex() *fileIndex {
	ix := &fileIndex{}
	ix.snap.Store(&indexSnapshot{})
	return ix
}

// snapshot returns the current immutable state; everything read from it is
// mutually consistent.
func (ix *fileIndex) snapshot() *indexSnapshot { return ix.snap.Load() }

// ---- reads (lock-free) -----------------------------------------------------

// Get returns the record with the given id, whatever its status.
func (ix *fileIndex) Get(id uuid.UUID) (*fileRecord, bool) {
	rec := ix.snapshot().get(id)
	return rec, rec != nil
}

// Page returns the records at positions [offset, offset+limit) of the
// filter's order, and the number of records matching the filter, both from
// one snapshot. A negative offset counts as 0; a limit <= 0 returns no items.
// items is never nil.
func (ix *fileIndex) Page(f statusFilter, offset, limit int) (items []*fileRecord, total int) {
	items, total, _ = ix.snapshot().page(f, offset, limit)
	return items, total
}

// Counts returns per-status counts and active bytes from one snapshot.
func (ix *fileIndex) Counts() indexCounts { return ix.snapshot().counts() }

// ActiveBytes is the sum of the sizes of active records.
func (ix *fileIndex) ActiveBytes() int64 { return ix.snapshot().activeBytes }

// Len is the number of records of every status.
func (ix *fileIndex) Len() int { return ix.snapshot().all.len() }

// Each calls fn for the filter's records in list order, over one snapshot,
// until fn returns false. Writes made meanwhile are not seen.
func (ix *fileIndex) Each(f statusFilter, fn func(*fileRecord) bool) {
	ix.snapshot().each(f, fn)
}

func (s *indexSnapshot) get(id uuid.UUID) *fileRecord {
	n := s.byID
	for n != nil {
		switch c := compareID(id, n.rec.id()); {
		case c < 0:
			n = n.left
		case c > 0:
			n = n.right
		default:
			return n.rec
		}
	}
	return nil
}

// tree returns the tree a filter walks; nil (empty) for an unknown status.
func (s *indexSnapshot) tree(f statusFilter) *indexNode {
	if f == filterAll {
		return s.all
	}
	if int(f) < statusSlots {
		return s.byStatus[f]
	}
	return nil
}

func (s *indexSnapshot) each(f statusFilter, fn func(*fileRecord) bool) {
	var it treeIter
	it.seek(s.tree(f), 0)
	for n := it.next(); n != nil; n = it.next() {
		if !fn(n.rec) {
			return
		}
	}
}

func (s *indexSnapshot) counts() indexCounts {
	return indexCounts{
		Active:      s.byStatus[statusActive].len(),
		Expired:     s.byStatus[statusExpired].len(),
		Deleted:     s.byStatus[statusDeleted].len(),
		ActiveBytes: s.activeBytes,
	}
}

// page is Page plus the number of nodes it touched; the count exists so a
// test can check the O(log n + limit) bound without timing anything.
func (s *indexSnapshot) page(f statusFilter, offset, limit int) (items []*fileRecord, total, visited int) {
	root := s.tree(f)
	total = root.len()
	offset = max(offset, 0)
	if limit <= 0 || offset >= total {
		return []*fileRecord{}, total, 0
	}
	items = make([]*fileRecord, 0, min(limit, total-offset))
	var it treeIter
	it.seek(root, offset)
	for len(items) < limit {
		n := it.next()
		if n == nil {
			break
		}
		items = append(items, n.rec)
	}
	return items, total, it.visited
}

// maxTreeHeight bounds the height of any tree here: weight balance keeps
// each child at most delta/(delta+1) = 3/4 of its parent's weight, so the
// height is at most log_{4/3}(2^31) < 75 for int32 sizes.
const maxTreeHeight = 80

// treeIter walks a tree in order from a given rank. stack[:depth] holds the
// nodes still to emit whose left subtrees are done (or skipped); the top is
// next. A fixed array keeps the iterator off the heap.
type treeIter struct {
	stack   [maxTreeHeight]*indexNode
	depth   int
	visited int // nodes touched, for the complexity test
}

// seek positions the iterator on the rank-th node (0-based) of root, in
// O(height): at each node the subtree sizes say which side holds rank. A
// rank >= root.len() never goes left, so the stack stays empty.
func (it *treeIter) seek(root *indexNode, rank int) {
	it.depth = 0
	n := root
	for n != nil {
		it.visited++
		ls := n.left.len()
		switch {
		case rank < ls:
			it.push(n) // emitted after its left subtree
			n = n.left
		case rank == ls:
			it.push(n)
			return
		default:
			rank -= ls + 1 // skip n and its left subtree
			n = n.right
		}
	}
}

func (it *treeIter) push(n *indexNode) {
	it.stack[it.depth] = n
	it.depth++
}

// next returns the next node in order, or nil at the end.
func (it *treeIter) next() *indexNode {
	if it.depth == 0 {
		return nil
	}
	it.depth--
	n := it.stack[it.depth]
	for c := n.right; c != nil; c = c.left {
		it.visited++
		it.push(c)
	}
	return n
}

// ---- writes (serialised on ix.mu) --------------------------------------------

// Put inserts rec, or replaces the record with the same id (its status and
// even its uploadedAt may differ). It returns the replaced record, or nil.
// A nil rec is ignored.
func (ix *fileIndex) Put(rec *fileRecord) (old *fileRecord) {
	if rec == nil {
		return nil
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	cur := ix.snap.Load()
	old = cur.get(rec.id())
	next := *cur
	next.byID = insertNode(next.byID, rec, compareByID) // replaces a same-id record
	next.swapOrdered(old, rec)
	ix.snap.Store(&next)
	return old
}

// Delete removes the record with the given id and returns it, or nil if the
// index had none.
func (ix *fileIndex) Delete(id uuid.UUID) (old *fileRecord) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	cur := ix.snap.Load()
	old = cur.get(id)
	if old == nil {
		return nil
	}
	next := *cur
	next.byID = removeNode(next.byID, old, compareByID)
	next.swapOrdered(old, nil)
	ix.snap.Store(&next)
	return old
}

// ReplaceAll replaces the whole content with recs (nil entries skipped; of
// records sharing an id the last one wins). Cost: two O(n log n) sorts and
// an O(n) balanced build, no per-record insertion. It builds outside the
// writers' lock; a write that lands during the build is overwritten, as the
// caller (a rebuild from disk) intends. recs is not retained.
func (ix *fileIndex) ReplaceAll(recs []*fileRecord) {
	next := buildSnapshot(recs)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.snap.Store(next)
}

// swapOrdered replaces old by rec in the ordered trees and the byte total;
// either may be nil (insert, delete). Where both sit at the same place of a
// tree (same order key and, for a status tree, same status) the node is
// replaced in place: one path copy instead of a removal plus an insertion.
func (s *indexSnapshot) swapOrdered(old, rec *fileRecord) {
	sameKey := old != nil && rec != nil && compareOrder(old, rec) == 0
	s.all = swapInTree(s.all, old, rec, sameKey)
	oldSlot, newSlot := statusSlot(old), statusSlot(rec)
	switch {
	case oldSlot == newSlot:
		if oldSlot != 0 {
			s.byStatus[oldSlot] = swapInTree(s.byStatus[oldSlot], old, rec, sameKey)
		}
	default:
		if oldSlot != 0 {
			s.byStatus[oldSlot] = removeNode(s.byStatus[oldSlot], old, compareOrder)
		}
		if newSlot != 0 {
			s.byStatus[newSlot] = insertNode(s.byStatus[newSlot], rec, compareOrder)
		}
	}
	s.activeBytes += activeSize(rec) - activeSize(old)
}

// swapInTree replaces old by rec in one ordered tree; either may be nil.
func swapInTree(n *indexNode, old, rec *fileRecord, sameKey bool) *indexNode {
	if sameKey {
		return insertNode(n, rec, compareOrder) // an equal key is replaced
	}
	if old != nil {
		n = removeNode(n, old, compareOrder)
	}
	if rec != nil {
		n = insertNode(n, rec, compareOrder)
	}
	return n
}

// statusSlot is the byStatus slot of r, or 0 when r is nil or its status is
// not one the index keeps a tree for.
func statusSlot(r *fileRecord) int {
	if r == nil {
		return 0
	}
	if st := int(r.status()); st > 0 && st < statusSlots {
		return st
	}
	return 0
}

func activeSize(r *fileRecord) int64 {
	if r != nil && r.status() == statusActive {
		return r.size()
	}
	return 0
}

// ---- bulk build -------------------------------------------------------------

// buildSnapshot builds a snapshot from scratch: dedupe by id (last wins),
// sort, then build each tree perfectly balanced (a perfectly balanced tree
// satisfies the weight-balance invariant) into a single slab of nodes.
func buildSnapshot(recs []*fileRecord) *indexSnapshot {
	byID := dedupeByID(recs)
	byOrder := slices.Clone(byID)
	slices.SortFunc(byOrder, compareOrder)

	s := &indexSnapshot{}
	var perStatus [statusSlots]int
	inStatusTrees := 0
	for _, r := range byOrder {
		if slot := statusSlot(r); slot != 0 {
			perStatus[slot]++
			inStatusTrees++
		}
		s.activeBytes += activeSize(r)
	}

	b := slabBuilder{slab: make([]indexNode, 2*len(byID)+inStatusTrees)}
	s.byID = b.build(len(byID), &recCursor{recs: byID})
	s.all = b.build(len(byOrder), &recCursor{recs: byOrder})
	for st := 1; st < statusSlots; st++ {
		s.byStatus[st] = b.build(perStatus[st], &recCursor{recs: byOrder, status: fileStatus(st)})
	}
	return s
}

// dedupeByID returns the non-nil records of recs sorted by id, keeping for
// each id the last record in recs. The duplicate-free case (the normal one)
// costs one sort and no map.
func dedupeByID(recs []*fileRecord) []*fileRecord {
	out := make([]*fileRecord, 0, len(recs))
	for _, r := range recs {
		if r != nil {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, compareByID)

	var dups map[uuid.UUID]*fileRecord
	for i := 1; i < len(out); i++ {
		if id := out[i].id(); id == out[i-1].id() {
			if dups == nil {
				dups = make(map[uuid.UUID]*fileRecord)
			}
			dups[id] = nil
		}
	}
	if dups == nil {
		return out
	}
	for _, r := range recs { // the later record overwrites: last wins
		if r == nil {
			continue
		}
		if _, ok := dups[r.id()]; ok {
			dups[r.id()] = r
		}
	}
	kept := out[:0]
	for i, r := range out {
		if i > 0 && r.id() == out[i-1].id() {
			continue
		}
		if winner, ok := dups[r.id()]; ok {
			r = winner
		}
		kept = append(kept, r)
	}
	clear(out[len(kept):]) // drop references the caller may want collected
	return kept
}

// recCursor yields recs in order, only those with the given status when
// status != 0.
type recCursor struct {
	recs   []*fileRecord
	i      int
	status fileStatus
}

func (c *recCursor) next() *fileRecord {
	for c.i < len(c.recs) {
		r := c.recs[c.i]
		c.i++
		if c.status == 0 || r.status() == c.status {
			return r
		}
	}
	panic("index: recCursor exhausted (count mismatch)")
}

// slabBuilder carves nodes out of one preallocated slice.
type slabBuilder struct {
	slab []indexNode
	used int
}

// build returns a perfectly balanced tree of the next n records of cur,
// taken in order: left subtree, root, right subtree. O(n), depth log2 n.
func (b *slabBuilder) build(n int, cur *recCursor) *indexNode {
	if n == 0 {
		return nil
	}
	node := &b.slab[b.used]
	b.used++
	leftN := n / 2
	node.left = b.build(leftN, cur)
	node.rec = cur.next()
	node.right = b.build(n-leftN-1, cur)
	node.size = int32(n)
	return node
}

// ---- persistent weight-balanced tree ---------------------------------------

func (n *indexNode) len() int {
	if n == nil {
		return 0
	}
	return int(n.size)
}

// weight is the balance weight: size + 1.
func (n *indexNode) weight() int { return n.len() + 1 }

func newNode(rec *fileRecord, l, r *indexNode) *indexNode {
	return &indexNode{left: l, right: r, rec: rec, size: int32(l.len() + r.len() + 1)}
}

// insertNode returns a tree that also holds rec; a record with an equal key
// is replaced. n is not modified.
func insertNode(n *indexNode, rec *fileRecord, cmp func(a, b *fileRecord) int) *indexNode {
	if n == nil {
		return &indexNode{rec: rec, size: 1}
	}
	switch c := cmp(rec, n.rec); {
	case c < 0:
		return balance(n.rec, insertNode(n.left, rec, cmp), n.right)
	case c > 0:
		return balance(n.rec, n.left, insertNode(n.right, rec, cmp))
	default:
		return &indexNode{left: n.left, right: n.right, rec: rec, size: n.size}
	}
}

// removeNode returns a tree without the record whose key equals key's; if
// there is none, n itself is returned. n is not modified.
func removeNode(n *indexNode, key *fileRecord, cmp func(a, b *fileRecord) int) *indexNode {
	if n == nil {
		return nil
	}
	switch c := cmp(key, n.rec); {
	case c < 0:
		l := removeNode(n.left, key, cmp)
		if l == n.left {
			return n
		}
		return balance(n.rec, l, n.right)
	case c > 0:
		r := removeNode(n.right, key, cmp)
		if r == n.right {
			return n
		}
		return balance(n.rec, n.left, r)
	default:
		return glue(n.left, n.right)
	}
}

// glue joins two balanced siblings (every key of l below every key of r)
// after their parent was removed, taking the new root from the bigger side.
func glue(l, r *indexNode) *indexNode {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.size > r.size:
		m, rest := removeMax(l)
		return balance(m, rest, r)
	default:
		m, rest := removeMin(r)
		return balance(m, l, rest)
	}
}

func removeMin(n *indexNode) (*fileRecord, *indexNode) {
	if n.left == nil {
		return n.rec, n.right
	}
	m, l := removeMin(n.left)
	return m, balance(n.rec, l, n.right)
}

func removeMax(n *indexNode) (*fileRecord, *indexNode) {
	if n.right == nil {
		return n.rec, n.left
	}
	m, r := removeMax(n.right)
	return m, balance(n.rec, n.left, r)
}

// balance builds node(rec, l, r), rotating once (single or double) when one
// side outweighs the other by more than wbDelta. Valid when l and r are
// balanced and the imbalance comes from one insertion or deletion.
func balance(rec *fileRecord, l, r *indexNode) *indexNode {
	wl, wr := l.weight(), r.weight()
	switch {
	case wr > wbDelta*wl:
		return rotateLeft(rec, l, r)
	case wl > wbDelta*wr:
		return rotateRight(rec, l, r)
	default:
		return newNode(rec, l, r)
	}
}

// rotateLeft lifts r (the heavy side) above rec.
func rotateLeft(rec *fileRecord, l, r *indexNode) *indexNode {
	rl, rr := r.left, r.right
	if rl.weight() < wbGamma*rr.weight() {
		return newNode(r.rec, newNode(rec, l, rl), rr)
	}
	return newNode(rl.rec, newNode(rec, l, rl.left), newNode(r.rec, rl.right, rr))
}

// rotateRight lifts l (the heavy side) above rec.
func rotateRight(rec *fileRecord, l, r *indexNode) *indexNode {
	ll, lr := l.left, l.right
	if lr.weight() < wbGamma*ll.weight() {
		return newNode(l.rec, ll, newNode(rec, lr, r))
	}
	return newNode(lr.rec, newNode(l.rec, ll, lr.left), newNode(rec, lr.right, r))
}

// ---- order ------------------------------------------------------------------

// compareOrder is the list order: uploadedAt (wall clock) then id bytes.
func compareOrder(a, b *fileRecord) int {
	ta, tb := a.uploadedAt(), b.uploadedAt()
	if c := cmp.Compare(ta.Unix(), tb.Unix()); c != 0 {
		return c
	}
	if c := cmp.Compare(ta.Nanosecond(), tb.Nanosecond()); c != 0 {
		return c
	}
	return compareID(a.id(), b.id())
}

func compareByID(a, b *fileRecord) int { return compareID(a.id(), b.id()) }

// compareID orders uuids by their 16 bytes, big-endian; the same order as
// their lowercase canonical strings.
func compareID(a, b uuid.UUID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}
