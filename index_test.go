package main

// Tests of the in-memory file index against a reference model: a plain
// slice kept sorted by an independently written comparator (time.Compare,
// then the canonical uuid string). Records are built only through
// newTestRecord and read only through the fileRecord accessors.

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// statusUnknown is a status value the index does not know; such records
// must show up under filterAll only.
const statusUnknown fileStatus = statusDeleted + 1

var testBase = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// randomID returns a version-4 uuid drawn from rng (reproducible).
func randomID(rng *rand.Rand) uuid.UUID {
	var id uuid.UUID
	for i := 0; i < 16; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

func randomStatus(rng *rand.Rand, unknownToo bool) fileStatus {
	if unknownToo && rng.IntN(20) == 0 {
		return statusUnknown
	}
	return fileStatus(1 + rng.IntN(3))
}

// ---- reference model ----------------------------------------------------------

func modelLess(a, b *fileRecord) int {
	if c := a.uploadedAt().Compare(b.uploadedAt()); c != 0 {
		return c
	}
	return strings.Compare(a.id().String(), b.id().String())
}

type refModel struct{ recs []*fileRecord } // sorted by modelLess, unique ids

func (m *refModel) find(id uuid.UUID) int {
	return slices.IndexFunc(m.recs, func(r *fileRecord) bool { return r.id() == id })
}

func (m *refModel) put(rec *fileRecord) *fileRecord {
	old := m.del(rec.id())
	i, _ := slices.BinarySearchFunc(m.recs, rec, modelLess)
	m.recs = slices.Insert(m.recs, i, rec)
	return old
}

func (m *refModel) del(id uuid.UUID) *fileRecord {
	i := m.find(id)
	if i < 0 {
		return nil
	}
	old := m.recs[i]
	m.recs = slices.Delete(m.recs, i, i+1)
	return old
}

func (m *refModel) replaceAll(recs []*fileRecord) {
	m.recs = nil
	for _, r := range recs {
		if r != nil {
			m.put(r)
		}
	}
}

func (m *refModel) filtered(f statusFilter) []*fileRecord {
	var out []*fileRecord
	for _, r := range m.recs {
		if f == filterAll || fileStatus(f) == r.status() {
			out = append(out, r)
		}
	}
	return out
}

func (m *refModel) counts() indexCounts {
	var c indexCounts
	for _, r := range m.recs {
		switch r.status() {
		case statusActive:
			c.Active++
			c.ActiveBytes += r.size()
		case statusExpired:
			c.Expired++
		case statusDeleted:
			c.Deleted++
		}
	}
	return c
}

// ---- structural checks ------------------------------------------------------

// checkTree verifies sizes, weight balance and strict order of a tree and
// returns its records in order and its height.
func checkTree(t *testing.T, n *indexNode, cmp func(a, b *fileRecord) int) ([]*fileRecord, int) {
	t.Helper()
	var out []*fileRecord
	h := checkNode(t, n, &out)
	for i := 1; i < len(out); i++ {
		if cmp(out[i-1], out[i]) >= 0 {
			t.Fatalf("tree out of order at %d", i)
		}
	}
	return out, h
}

func checkNode(t *testing.T, n *indexNode, out *[]*fileRecord) int {
	t.Helper()
	if n == nil {
		return 0
	}
	hl := checkNode(t, n.left, out)
	*out = append(*out, n.rec)
	hr := checkNode(t, n.right, out)
	if got, want := n.len(), n.left.len()+n.right.len()+1; got != want {
		t.Fatalf("node size %d, want %d", got, want)
	}
	wl, wr := n.left.weight(), n.right.weight()
	if wl > wbDelta*wr || wr > wbDelta*wl {
		t.Fatalf("node out of balance: weights %d/%d", wl, wr)
	}
	return 1 + max(hl, hr)
}

// checkSnapshot verifies every tree of s against the model content.
func checkSnapshot(t *testing.T, s *indexSnapshot, m *refModel) {
	t.Helper()
	all, _ := checkTree(t, s.all, modelLess)
	assertSameRecs(t, "all tree", all, m.recs)
	for st := statusActive; st <= statusDeleted; st++ {
		got, _ := checkTree(t, s.byStatus[st], modelLess)
		assertSameRecs(t, fmt.Sprintf("status %d tree", st), got, m.filtered(statusFilter(st)))
	}
	if s.byStatus[0] != nil {
		t.Fatal("status slot 0 is used")
	}
	byID, _ := checkTree(t, s.byID, compareByID)
	want := slices.Clone(m.recs)
	slices.SortFunc(want, func(a, b *fileRecord) int { return strings.Compare(a.id().String(), b.id().String()) })
	assertSameRecs(t, "id tree", byID, want)
}

func assertSameRecs(t *testing.T, what string, got, want []*fileRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: record %d is %v, want %v", what, i, describe(got[i]), describe(want[i]))
		}
	}
}

func describe(r *fileRecord) string {
	if r == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{%s %s st=%d sz=%d}", r.id(), r.uploadedAt().Format(time.RFC3339Nano), r.status(), r.size())
}

var allFilters = []statusFilter{filterAll, statusFilter(statusActive), statusFilter(statusExpired), statusFilter(statusDeleted), statusFilter(statusUnknown)}

// checkAgainstModel compares every read API with the model.
func checkAgainstModel(t *testing.T, rng *rand.Rand, ix *fileIndex, m *refModel, pages int) {
	t.Helper()
	if got, want := ix.Counts(), m.counts(); got != want {
		t.Fatalf("Counts() = %+v, want %+v", got, want)
	}
	if got, want := ix.ActiveBytes(), m.counts().ActiveBytes; got != want {
		t.Fatalf("ActiveBytes() = %d, want %d", got, want)
	}
	if got, want := ix.Len(), len(m.recs); got != want {
		t.Fatalf("Len() = %d, want %d", got, want)
	}
	for _, f := range allFilters {
		want := m.filtered(f)
		if f == statusFilter(statusUnknown) {
			want = nil // unknown statuses are listed under filterAll only
		}
		for range pages {
			offset := rng.IntN(len(want) + 3)
			limit := 1 + rng.IntN(40)
			if rng.IntN(4) == 0 {
				offset = max(0, len(want)-limit+rng.IntN(3)-1) // around the end
			}
			items, total := ix.Page(f, offset, limit)
			if total != len(want) {
				t.Fatalf("Page(%d,%d,%d) total %d, want %d", f, offset, limit, total, len(want))
			}
			wantItems := want[min(offset, len(want)):min(offset+limit, len(want))]
			assertSameRecs(t, fmt.Sprintf("Page(%d,%d,%d)", f, offset, limit), items, wantItems)
		}
		var walked []*fileRecord
		ix.Each(f, func(r *fileRecord) bool { walked = append(walked, r); return true })
		assertSameRecs(t, fmt.Sprintf("Each(%d)", f), walked, want)
	}
}

// ---- tests ------------------------------------------------------------------

func TestIndexRandomOpsMatchModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5e))
			ix, m := newFileIndex(), &refModel{}
			pool := make([]uuid.UUID, 150) // small pool: updates and deletes hit existing ids
			for i := range pool {
				pool[i] = randomID(rng)
			}
			newRec := func() *fileRecord {
				at := testBase.Add(time.Duration(rng.IntN(40)) * time.Second) // many ties
				if rng.IntN(3) == 0 {
					at = at.Add(time.Duration(rng.IntN(3)) * time.Nanosecond)
				}
				return newTestRecord(pool[rng.IntN(len(pool))], at, randomStatus(rng, true), int64(rng.IntN(1<<20)))
			}
			for op := range 1500 {
				switch k := rng.IntN(100); {
				case k < 50: // Put: new or replacing, with any status / time
					rec := newRec()
					if got, want := ix.Put(rec), m.put(rec); got != want {
						t.Fatalf("op %d: Put returned %s, want %s", op, describe(got), describe(want))
					}
				case k < 70: // status change of an existing record, same time
					if len(m.recs) == 0 {
						continue
					}
					old := m.recs[rng.IntN(len(m.recs))]
					rec := newTestRecord(old.id(), old.uploadedAt(), randomStatus(rng, false), old.size())
					if got, want := ix.Put(rec), m.put(rec); got != want || got != old {
						t.Fatalf("op %d: Put(update) returned %s, want %s", op, describe(got), describe(want))
					}
				case k < 90:
					id := pool[rng.IntN(len(pool))]
					if got, want := ix.Delete(id), m.del(id); got != want {
						t.Fatalf("op %d: Delete returned %s, want %s", op, describe(got), describe(want))
					}
				case k < 92:
					recs := make([]*fileRecord, rng.IntN(200))
					for i := range recs {
						if rng.IntN(30) != 0 { // leave some nils
							recs[i] = newRec()
						}
					}
					ix.ReplaceAll(recs)
					m.replaceAll(recs)
				default:
					id := pool[rng.IntN(len(pool))]
					got, ok := ix.Get(id)
					want := (*fileRecord)(nil)
					if i := m.find(id); i >= 0 {
						want = m.recs[i]
					}
					if got != want || ok != (want != nil) {
						t.Fatalf("op %d: Get = %s,%v want %s", op, describe(got), ok, describe(want))
					}
				}
				checkAgainstModel(t, rng, ix, m, 3)
				if op%50 == 0 {
					checkSnapshot(t, ix.snapshot(), m)
				}
			}
			checkSnapshot(t, ix.snapshot(), m)
		})
	}
}

func TestIndexPagingVisitsEachOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	recs := make([]*fileRecord, 2500)
	for i := range recs {
		at := testBase.Add(time.Duration(rng.IntN(600)) * time.Second) // ties included
		recs[i] = newTestRecord(randomID(rng), at, randomStatus(rng, false), int64(i))
	}
	ix := newFileIndex()
	ix.ReplaceAll(recs)

	// Like the Admin sync: limit=1000 until a short page.
	seen := make(map[uuid.UUID]int)
	var order []*fileRecord
	pages := 0
	for offset := 0; ; offset += 1000 {
		items, total := ix.Page(filterAll, offset, 1000)
		pages++
		if total != 2500 {
			t.Fatalf("total %d, want 2500", total)
		}
		for _, r := range items {
			seen[r.id()]++
		}
		order = append(order, items...)
		if len(items) < 1000 {
			break
		}
	}
	if pages != 3 {
		t.Fatalf("%d pages, want 3 (1000, 1000, 500)", pages)
	}
	if len(seen) != 2500 || len(order) != 2500 {
		t.Fatalf("saw %d distinct of %d items, want 2500", len(seen), len(order))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", id, n)
		}
	}
	if !slices.IsSortedFunc(order, modelLess) {
		t.Fatal("pages not in (uploaded_at, file_id) order")
	}
}

func TestIndexTiesOrderedByID(t *testing.T) {
	ids := []string{
		"ffffffff-0000-4000-8000-000000000000",
		"00000000-0000-4000-8000-00000000000f",
		"00000000-0000-4000-8000-0000000000f0",
		"0000000a-0000-4000-8000-000000000000",
		"00000009-ffff-4fff-bfff-ffffffffffff",
		"80000000-0000-4000-8000-000000000000",
		"7fffffff-ffff-4fff-bfff-ffffffffffff",
	}
	same := testBase
	// The same instant in another location and with a monotonic reading:
	// the index orders by wall clock, so these tie with testBase.
	paris := same.In(time.FixedZone("CET", 3600))
	var recs []*fileRecord
	for i, s := range ids {
		at := same
		if i%2 == 1 {
			at = paris
		}
		recs = append(recs, newTestRecord(uuid.MustParse(s), at, statusActive, 1))
	}
	later := newTestRecord(uuid.MustParse("00000000-0000-4000-8000-000000000000"), same.Add(time.Nanosecond), statusActive, 1)
	earlier := newTestRecord(uuid.MustParse("ffffffff-ffff-4fff-bfff-ffffffffffff"), same.Add(-time.Nanosecond), statusActive, 1)

	ix := newFileIndex()
	for _, r := range append(recs, later, earlier) {
		ix.Put(r)
	}
	items, _ := ix.Page(filterAll, 0, 100)
	var got []string
	for _, r := range items {
		got = append(got, r.id().String())
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted) // canonical lowercase strings
	want := append([]string{earlier.id().String()}, sorted...)
	want = append(want, later.id().String())
	if !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}

	// Monotonic readings are ignored: a time.Now() and its stripped copy tie.
	now := time.Now()
	a := newTestRecord(uuid.MustParse("20000000-0000-4000-8000-000000000000"), now, statusActive, 1)
	b := newTestRecord(uuid.MustParse("10000000-0000-4000-8000-000000000000"), now.Round(0), statusActive, 1)
	if compareOrder(a, b) <= 0 || compareOrder(b, a) >= 0 {
		t.Fatal("equal instants not ordered by id")
	}
}

func TestIndexSnapshotPersistence(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	recs := make([]*fileRecord, 500)
	for i := range recs {
		recs[i] = newTestRecord(randomID(rng), testBase.Add(time.Duration(rng.IntN(100))*time.Second), randomStatus(rng, false), int64(rng.IntN(1000)))
	}
	ix := newFileIndex()
	ix.ReplaceAll(recs)
	m := &refModel{}
	m.replaceAll(recs)
	before := ix.snapshot()
	beforeCounts := before.counts()

	// Every kind of write, many times.
	for i := range 300 {
		r := recs[rng.IntN(len(recs))]
		switch i % 3 {
		case 0:
			ix.Put(newTestRecord(r.id(), r.uploadedAt().Add(time.Hour), statusDeleted, 5))
		case 1:
			ix.Delete(r.id())
		default:
			ix.Put(newTestRecord(randomID(rng), testBase, statusActive, 7))
		}
	}
	mid := ix.snapshot()
	ix.ReplaceAll(recs[:10])

	checkSnapshot(t, before, m)
	if got := before.counts(); got != beforeCounts {
		t.Fatalf("old snapshot counts changed: %+v, want %+v", got, beforeCounts)
	}
	for _, r := range recs {
		if got := before.get(r.id()); got != r {
			t.Fatalf("old snapshot get(%s) = %s", r.id(), describe(got))
		}
	}
	items, total, _ := before.page(filterAll, 0, 1000)
	assertSameRecs(t, "old snapshot page", items, m.recs)
	if total != 500 {
		t.Fatalf("old snapshot total %d", total)
	}
	if mid.all.len() == before.all.len() && mid.activeBytes == before.activeBytes {
		t.Fatal("writes did not produce a different snapshot")
	}
	if ix.Len() != 10 {
		t.Fatalf("Len after ReplaceAll = %d, want 10", ix.Len())
	}
}

func TestIndexReplaceAllDuplicatesLastWins(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 1))
	id1, id2 := randomID(rng), randomID(rng)
	first := newTestRecord(id1, testBase, statusActive, 100)
	other := newTestRecord(id2, testBase.Add(time.Second), statusExpired, 50)
	second := newTestRecord(id1, testBase.Add(time.Minute), statusDeleted, 200)
	third := newTestRecord(id1, testBase.Add(-time.Minute), statusActive, 300)

	ix := newFileIndex()
	ix.ReplaceAll([]*fileRecord{first, nil, other, second, third})
	if got, _ := ix.Get(id1); got != third {
		t.Fatalf("Get = %s, want the last duplicate", describe(got))
	}
	want := indexCounts{Active: 1, Expired: 1, ActiveBytes: 300}
	if got := ix.Counts(); got != want {
		t.Fatalf("Counts = %+v, want %+v", got, want)
	}
	items, total := ix.Page(filterAll, 0, 10)
	if total != 2 || len(items) != 2 || items[0] != third || items[1] != other {
		t.Fatalf("Page = %d items total %d", len(items), total)
	}

	ix.ReplaceAll(nil)
	if ix.Len() != 0 || ix.Counts() != (indexCounts{}) {
		t.Fatalf("ReplaceAll(nil) left %d records", ix.Len())
	}
}

func TestIndexBasicsAndEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	ix := newFileIndex()
	if items, total := ix.Page(filterAll, 0, 10); total != 0 || items == nil || len(items) != 0 {
		t.Fatalf("empty Page = %v, %d", items, total)
	}
	if _, ok := ix.Get(randomID(rng)); ok {
		t.Fatal("Get on empty index found something")
	}
	if ix.Delete(randomID(rng)) != nil {
		t.Fatal("Delete of a missing id returned a record")
	}
	if ix.Put(nil) != nil || ix.Len() != 0 {
		t.Fatal("Put(nil) changed the index")
	}

	a := newTestRecord(randomID(rng), testBase, statusActive, 10)
	if ix.Put(a) != nil {
		t.Fatal("Put of a new id returned an old record")
	}
	b := newTestRecord(a.id(), testBase, statusActive, 25) // same place, new size
	if ix.Put(b) != a {
		t.Fatal("Put did not return the replaced record")
	}
	if ix.ActiveBytes() != 25 || ix.Len() != 1 {
		t.Fatalf("after replace: bytes %d len %d", ix.ActiveBytes(), ix.Len())
	}
	c := newTestRecord(a.id(), testBase.Add(time.Hour), statusExpired, 25) // moves and changes status
	ix.Put(c)
	if got := ix.Counts(); got != (indexCounts{Expired: 1}) {
		t.Fatalf("Counts = %+v", got)
	}

	for i := range 20 {
		ix.Put(newTestRecord(randomID(rng), testBase.Add(time.Duration(i)*time.Second), statusActive, 1))
	}
	cases := []struct{ offset, limit, wantLen int }{
		{-5, 3, 3}, {0, 0, 0}, {0, -1, 0}, {19, 5, 2}, {21, 5, 0}, {1000, 5, 0}, {0, 1000, 21},
	}
	for _, tc := range cases {
		items, total := ix.Page(filterAll, tc.offset, tc.limit)
		if total != 21 || len(items) != tc.wantLen || items == nil {
			t.Errorf("Page(all,%d,%d) = %d items total %d, want %d items", tc.offset, tc.limit, len(items), total, tc.wantLen)
		}
	}
	if items, total := ix.Page(statusFilter(200), 0, 10); total != 0 || len(items) != 0 {
		t.Errorf("unknown filter listed %d (total %d)", len(items), total)
	}

	n := 0
	ix.Each(filterAll, func(*fileRecord) bool { n++; return n < 5 })
	if n != 5 {
		t.Fatalf("Each did not stop when fn returned false: %d calls", n)
	}
}

func TestIndexUnknownStatusListedUnderAllOnly(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	ix := newFileIndex()
	odd := newTestRecord(randomID(rng), testBase, statusUnknown, 99)
	ix.Put(odd)
	ix.Put(newTestRecord(randomID(rng), testBase, statusActive, 1))
	if ix.Len() != 2 {
		t.Fatalf("Len = %d", ix.Len())
	}
	if got := ix.Counts(); got != (indexCounts{Active: 1, ActiveBytes: 1}) {
		t.Fatalf("Counts = %+v", got)
	}
	if _, total := ix.Page(statusFilter(statusUnknown), 0, 10); total != 0 {
		t.Fatalf("unknown status filter total %d", total)
	}
	if ix.Delete(odd.id()) != odd || ix.Len() != 1 {
		t.Fatal("Delete of the unknown-status record failed")
	}
}

// TestIndexConcurrentReadersWriters runs lock-free readers against writers
// (meant for -race). Each reader checks that what it sees in one snapshot is
// self-consistent: totals equal the counts, pages are ordered and filtered,
// and the active bytes equal the sum over the active walk.
func TestIndexConcurrentReadersWriters(t *testing.T) {
	ix := newFileIndex()
	pool := make([]uuid.UUID, 400)
	seedRng := rand.New(rand.NewPCG(21, 21))
	for i := range pool {
		pool[i] = randomID(seedRng)
	}
	const writeOps = 3000
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 16)
	fail := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(format, args...):
		default:
		}
	}

	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for i := range writeOps {
				id := pool[rng.IntN(len(pool))]
				at := testBase.Add(time.Duration(rng.IntN(50)) * time.Second)
				switch {
				case i%500 == 499:
					recs := make([]*fileRecord, 100)
					for j := range recs {
						recs[j] = newTestRecord(pool[rng.IntN(len(pool))], at, randomStatus(rng, false), int64(j))
					}
					ix.ReplaceAll(recs)
				case rng.IntN(4) == 0:
					ix.Delete(id)
				default:
					ix.Put(newTestRecord(id, at, randomStatus(rng, false), int64(rng.IntN(1000))))
				}
			}
		}()
	}

	readerChecks := make([]int, 4)
	var readers sync.WaitGroup
	for rd := range readerChecks {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(rd), 7))
			for {
				select {
				case <-done:
					return
				default:
				}
				checkReaderSnapshot(ix.snapshot(), rng, fail)
				// The public API must be consistent within one call too.
				items, total := ix.Page(filterAll, 0, 50)
				if len(items) != min(50, total) || !slices.IsSortedFunc(items, modelLess) {
					fail("Page(all): %d items for total %d, or unsorted", len(items), total)
				}
				readerChecks[rd]++
			}
		}()
	}
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for rd, n := range readerChecks {
		if n == 0 {
			t.Errorf("reader %d never ran", rd)
		}
	}
	// After the dust settles the structure must still be sound.
	s := ix.snapshot()
	all, _ := checkTree(t, s.all, modelLess)
	m := &refModel{}
	m.replaceAll(all)
	checkSnapshot(t, s, m)
}

func checkReaderSnapshot(s *indexSnapshot, rng *rand.Rand, fail func(string, ...any)) {
	c := s.counts()
	want := map[statusFilter]int{
		filterAll:                       c.Active + c.Expired + c.Deleted,
		statusFilter(statusActive):      c.Active,
		statusFilter(statusExpired):     c.Expired,
		statusFilter(statusDeleted):     c.Deleted,
		statusFilter(statusUnknown):     0,
		statusFilter(statusUnknown + 1): 0,
	}
	for f, n := range want {
		offset := rng.IntN(n + 2)
		items, total, _ := s.page(f, offset, 100)
		if total != n {
			fail("filter %d: total %d, counts say %d", f, total, n)
		}
		if len(items) != max(0, min(100, n-offset)) {
			fail("filter %d: %d items at offset %d of %d", f, len(items), offset, n)
		}
		for i, r := range items {
			if f != filterAll && fileStatus(f) != r.status() {
				fail("filter %d: item with status %d", f, r.status())
			}
			if i > 0 && modelLess(items[i-1], r) >= 0 {
				fail("filter %d: page out of order", f)
			}
		}
	}
	var bytes int64
	active := 0
	s.each(statusFilter(statusActive), func(r *fileRecord) bool {
		bytes += r.size()
		active++
		return true
	})
	if bytes != c.ActiveBytes || active != c.Active {
		fail("active walk: %d records %d bytes; counts say %d, %d", active, bytes, c.Active, c.ActiveBytes)
	}
}

// TestIndexPageCostIndependentOfN counts the nodes a page touches (no
// timing): it must stay within c*(limit + log2 n) for trees built in bulk,
// by random inserts, and by inserts in upload order (the common case).
func TestIndexPageCostIndependentOfN(t *testing.T) {
	const c = 3
	for _, n := range []int{1000, 100_000} {
		recs := benchRecords(n)
		bulk := newFileIndex()
		bulk.ReplaceAll(recs)

		inOrder := newFileIndex() // benchRecords are already in upload order
		for _, r := range recs {
			inOrder.Put(r)
		}
		shuffled := newFileIndex()
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		for _, i := range rng.Perm(n) {
			shuffled.Put(recs[i])
		}
		for name, ix := range map[string]*fileIndex{"bulk": bulk, "inorder": inOrder, "shuffled": shuffled} {
			s := ix.snapshot()
			for _, f := range []statusFilter{filterAll, statusFilter(statusActive), statusFilter(statusDeleted)} {
				total := s.tree(f).len()
				_, height := checkTree(t, s.tree(f), modelLess)
				log2n := bits.Len(uint(total))
				if limitHeight := 2.5*math.Log2(float64(total+1)) + 2; float64(height) > limitHeight {
					t.Errorf("%s n=%d filter %d: height %d over %.0f", name, n, f, height, limitHeight)
				}
				for _, limit := range []int{1, 10, 100, 1000} {
					for _, offset := range []int{0, 1, total / 3, total / 2, total - limit, total - 1} {
						items, _, visited := s.page(f, offset, limit)
						if bound := c * (limit + log2n); visited > bound {
							t.Errorf("%s n=%d filter %d offset %d limit %d: visited %d nodes > %d", name, n, f, offset, limit, visited, bound)
						}
						if offset >= 0 && len(items) != max(0, min(limit, total-offset)) {
							t.Errorf("%s: page of %d items", name, len(items))
						}
					}
				}
			}
		}
	}
}

// TestIndexMemoryPerEntry measures heap growth per entry of a bulk-built
// index (records excluded), at 100k entries to keep the test quick.
func TestIndexMemoryPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100k records")
	}
	recs := benchRecords(100_000)
	perEntry, ix := measureIndexBytes(recs)
	t.Logf("index overhead: %.1f B/entry (n=%d)", perEntry, ix.Len())
	if perEntry > 150 {
		t.Fatalf("index overhead %.1f B/entry, want < 150", perEntry)
	}
}

func measureIndexBytes(recs []*fileRecord) (float64, *fileIndex) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ix := newFileIndex()
	ix.ReplaceAll(recs)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(recs)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(len(recs)), ix
}

// FuzzIndexOps interprets the input as a sequence of index operations on a
// tiny id and time space (so replacements, ties and moves are frequent) and
// compares the index with the model after every one.
func FuzzIndexOps(f *testing.F) {
	f.Add([]byte{0x00, 0x11, 0x22, 0x33, 0x44})
	f.Add([]byte{0x01, 0x01, 0x41, 0x01, 0x81, 0x01, 0xc1})
	f.Add([]byte("replace all the things, then delete some of them"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		ids := make([]uuid.UUID, 16)
		for i := range ids {
			ids[i] = uuid.UUID{byte(i * 17), 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, byte(i)}
		}
		rec := func(b byte) *fileRecord {
			return newTestRecord(ids[b&15], testBase.Add(time.Duration(b>>4&3)*time.Second), fileStatus(1+(b>>6)%4), int64(b))
		}
		ix, m := newFileIndex(), &refModel{}
		rng := rand.New(rand.NewPCG(uint64(len(ops)), 1))
		for i := 0; i < len(ops); i++ {
			op := ops[i]
			switch op % 4 {
			case 0, 1:
				r := rec(op>>2 | ops[(i+1)%len(ops)]<<6)
				if got, want := ix.Put(r), m.put(r); got != want {
					t.Fatalf("Put returned %s, want %s", describe(got), describe(want))
				}
			case 2:
				id := ids[op>>2&15]
				if got, want := ix.Delete(id), m.del(id); got != want {
					t.Fatalf("Delete returned %s, want %s", describe(got), describe(want))
				}
			default:
				n := min(int(op>>2), len(ops)-i-1)
				recs := make([]*fileRecord, n)
				for j := range recs {
					recs[j] = rec(ops[i+1+j])
				}
				i += n
				ix.ReplaceAll(recs)
				m.replaceAll(recs)
			}
			checkAgainstModel(t, rng, ix, m, 2)
		}
		checkSnapshot(t, ix.snapshot(), m)
	})
}

// ---- benchmarks -------------------------------------------------------------

var benchSizes = []int{10_000, 100_000, 1_000_000}

var (
	benchRecsMu    sync.Mutex
	benchRecsCache = map[int][]*fileRecord{}
)

// benchRecords returns n records in upload order (about one per second,
// with occasional ties), 80% active, 10% expired, 10% deleted. Cached: the
// records are immutable.
func benchRecords(n int) []*fileRecord {
	benchRecsMu.Lock()
	defer benchRecsMu.Unlock()
	if recs, ok := benchRecsCache[n]; ok {
		return recs
	}
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	recs := make([]*fileRecord, n)
	at := testBase
	for i := range recs {
		if rng.IntN(10) != 0 {
			at = at.Add(time.Second)
		}
		st := statusActive
		switch rng.IntN(10) {
		case 0:
			st = statusExpired
		case 1:
			st = statusDeleted
		}
		recs[i] = newTestRecord(randomID(rng), at, st, int64(rng.IntN(1<<24)))
	}
	benchRecsCache[n] = recs
	return recs
}

func benchIndex(n int) (*fileIndex, []*fileRecord) {
	recs := benchRecords(n)
	ix := newFileIndex()
	ix.ReplaceAll(recs)
	return ix, recs
}

func BenchmarkIndexPut(b *testing.B) {
	for _, n := range benchSizes {
		ix, recs := benchIndex(n)
		rng := rand.New(rand.NewPCG(1, 2))
		// Pre-built updates: existing ids, status cycling, same upload time.
		updates := make([]*fileRecord, 4096)
		for i := range updates {
			r := recs[rng.IntN(n)]
			updates[i] = newTestRecord(r.id(), r.uploadedAt(), fileStatus(1+i%3), r.size())
		}
		b.Run(fmt.Sprintf("update/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ix.Put(updates[i&4095])
				i++
			}
		})
		ix.ReplaceAll(recs)
		last := recs[n-1].uploadedAt()
		b.Run(fmt.Sprintf("insert/n=%d", n), func(b *testing.B) {
			fresh := make([]*fileRecord, b.N)
			for i := range fresh {
				fresh[i] = newTestRecord(randomID(rng), last.Add(time.Duration(i+1)*time.Second), statusActive, 1)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				ix.Put(fresh[i])
			}
		})
	}
}

func BenchmarkIndexGet(b *testing.B) {
	for _, n := range benchSizes {
		ix, recs := benchIndex(n)
		rng := rand.New(rand.NewPCG(3, 4))
		ids := make([]uuid.UUID, 4096)
		for i := range ids {
			ids[i] = recs[rng.IntN(n)].id()
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := ix.Get(ids[i&4095]); !ok {
					b.Fatal("missing id")
				}
				i++
			}
		})
	}
}

func BenchmarkIndexPage(b *testing.B) {
	const limit = 1000
	for _, n := range benchSizes {
		ix, _ := benchIndex(n)
		for _, f := range []statusFilter{filterAll, statusFilter(statusActive)} {
			total := ix.snapshot().tree(f).len()
			for _, pos := range []struct {
				name   string
				offset int
			}{{"start", 0}, {"middle", total / 2}, {"end", total - limit}} {
				name := fmt.Sprintf("n=%d/filter=%d/%s", n, f, pos.name)
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if items, _ := ix.Page(f, pos.offset, limit); len(items) != limit {
							b.Fatal("short page")
						}
					}
				})
			}
		}
	}
}

func BenchmarkIndexReplaceAll(b *testing.B) {
	for _, n := range benchSizes {
		recs := benchRecords(n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			ix := newFileIndex()
			for b.Loop() {
				ix.ReplaceAll(recs)
			}
		})
	}
}

// BenchmarkIndexMemory reports the heap bytes per entry of a bulk-built 1M
// index (records excluded) and of the same index after 100k updates.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1_000_000
	recs := benchRecords(n)
	for b.Loop() {
		perEntry, ix := measureIndexBytes(recs)
		b.ReportMetric(perEntry, "B/entry")

		rng := rand.New(rand.NewPCG(5, 6))
		updates := make([]*fileRecord, 100_000)
		for i := range updates {
			r := recs[rng.IntN(n)]
			updates[i] = newTestRecord(r.id(), r.uploadedAt(), statusDeleted, r.size())
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, u := range updates {
			ix.Put(u)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(ix)
		b.ReportMetric(perEntry+float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "B/entry-after-100k-updates")
	}
}
