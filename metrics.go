package main

// metrics.go: a small, dependency-free Prometheus metrics registry.
//
// Why handwritten: the SE may depend only on the standard library, x/sys and
// uuid, so client_golang is out. The output is meant to be byte-identical to
// what client_golang's text encoder would print for the same metrics, because
// the topologymetrics series (dephealth.go) are compared against the Go SDK.
//
// Output format (text exposition format 0.0.4), invariants:
//   - families are sorted by name; a family with no series prints nothing,
//     not even its HELP/TYPE lines;
//   - each family prints "# HELP name text" then "# TYPE name type", then
//     its samples; no blank lines, no timestamps;
//   - HELP text escapes `\` and newline; label values escape `\`, `"` and
//     newline; invalid UTF-8 in HELP or label values is replaced by U+FFFD
//     (client_golang would reject it; a scrape must never fail);
//   - within a sample, label names are in alphabetical order, and a
//     histogram's `le` comes last;
//   - series are sorted by their label values, compared in alphabetical
//     label-name order (client_golang's order);
//   - floats print in Go's shortest 'g' form, with 0 (also -0) as "0" and
//     +Inf, -Inf, NaN spelled "+Inf", "-Inf", "NaN";
//   - histograms print cumulative "_bucket" samples for every bound and then
//     le="+Inf", followed by "_sum" and "_count"; "_count" always equals the
//     +Inf bucket of the same scrape.
//
// Concurrency: series values are atomics (float64 bits in a uint64), so
// Inc/Add/Set/Observe never lock. With() on an existing series hashes the
// label values without allocating and looks them up in an immutable index
// loaded atomically; only the first use of a label set (or Delete/Reset)
// takes a lock and publishes a new index. A scrape reads the same immutable
// index and the atomics, so it never blocks series writers; only
// updateAtomically (used by the dependency prober to publish one check as a
// single step) waits for a scrape in progress, and vice versa.
//
// Growth: the registry only grows when a caller uses a new label set in
// With(). Callers are responsible for bounding label values (route patterns,
// never raw URLs).

import (
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// metricsContentType is the Content-Type of the text exposition format 0.0.4.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// defaultLatencyBuckets are upper bounds, in seconds, for HTTP request
// durations: from 1 ms API calls up to 10-minute transfers of large files.
var defaultLatencyBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300, 600,
}

// metricFamily is one named family in the registry.
type metricFamily interface {
	familyName() string
	// appendHeader appends the "# HELP" and "# TYPE" lines.
	appendHeader(buf []byte) []byte
	// appendSamples appends the family's sample lines (not HELP/TYPE).
	appendSamples(buf []byte) []byte
}

// familyMeta is what every family has in common: the name, the HELP text
// (already escaped) and the TYPE word.
type familyMeta struct {
	name        string
	escapedHelp string
	typeName    string
}

func (m *familyMeta) familyName() string { return m.name }

func (m *familyMeta) appendHeader(buf []byte) []byte {
	buf = append(buf, "# HELP "...)
	buf = append(buf, m.name...)
	buf = append(buf, ' ')
	buf = append(buf, m.escapedHelp...)
	buf = append(buf, "\n# TYPE "...)
	buf = append(buf, m.name...)
	buf = append(buf, ' ')
	buf = append(buf, m.typeName...)
	return append(buf, '\n')
}

// metricsRegistry holds the families. Registration is rare (start-up);
// scraping and series updates are frequent.
type metricsRegistry struct {
	mu sync.RWMutex
	// families is sorted by name and replaced (never mutated) on
	// registration, so a scrape can range over it without holding mu.
	families []metricFamily
	// sampleNames holds every sample name a family produces (a histogram
	// "x" produces x_bucket, x_sum and x_count) so that no two families can
	// print samples with the same name.
	sampleNames map[string]string

	// publishMu lets a writer publish several series changes as one step:
	// WriteText renders under the read lock, updateAtomically runs under
	// the write lock. Only rare writers (the dependency prober) use it.
	publishMu sync.RWMutex

	sharedMu sync.Mutex
	shared   map[string]any

	bufPool sync.Pool
}

func newMetricsRegistry() *metricsRegistry {
	return &metricsRegistry{sampleNames: make(map[string]string)}
}

// register adds a family, panicking on a name clash: registering twice is a
// programming error, like in client_golang.
func (r *metricsRegistry) register(f metricFamily, sampleNames ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range sampleNames {
		if owner, ok := r.sampleNames[s]; ok {
			panic(fmt.Sprintf("metrics: %q clashes with already registered family %q", s, owner))
		}
	}
	for _, s := range sampleNames {
		r.sampleNames[s] = f.familyName()
	}
	next := make([]metricFamily, 0, len(r.families)+1)
	next = append(next, r.families...)
	next = append(next, f)
	sort.Slice(next, func(i, j int) bool { return next[i].familyName() < next[j].familyName() })
	r.families = next
}

// sharedValue returns the value stored under key, creating it with create on
// first use. It lets a component register its families once per registry
// even when it is instantiated several times (one prober per dependency).
func (r *metricsRegistry) sharedValue(key string, create func() any) any {
	r.sharedMu.Lock()
	defer r.sharedMu.Unlock()
	if v, ok := r.shared[key]; ok {
		return v
	}
	if r.shared == nil {
		r.shared = make(map[string]any)
	}
	v := create()
	r.shared[key] = v
	return v
}

// updateAtomically runs fn so that no scrape observes part of its changes.
// fn must not call WriteText.
func (r *metricsRegistry) updateAtomically(fn func()) {
	r.publishMu.Lock()
	defer r.publishMu.Unlock()
	fn()
}

// WriteText writes every family in text exposition format 0.0.4.
func (r *metricsRegistry) WriteText(w io.Writer) error {
	bp := r.render()
	defer r.bufPool.Put(bp)
	if _, err := w.Write(*bp); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// render returns a pooled buffer holding the whole exposition; the caller
// puts it back into r.bufPool.
func (r *metricsRegistry) render() *[]byte {
	bp, _ := r.bufPool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	buf := (*bp)[:0]

	r.mu.RLock()
	families := r.families
	r.mu.RUnlock()

	r.publishMu.RLock()
	defer r.publishMu.RUnlock()
	for _, f := range families {
		buf = appendFamily(buf, f)
	}
	*bp = buf
	return bp
}

// appendFamily appends the header and samples of f, or nothing at all when
// f has no samples.
func appendFamily(buf []byte, f metricFamily) []byte {
	start := len(buf)
	buf = f.appendHeader(buf)
	headerEnd := len(buf)
	buf = f.appendSamples(buf)
	if len(buf) == headerEnd {
		return buf[:start]
	}
	return buf
}

// ServeHTTP serves the exposition. The body is rendered fully before the
// header is written, so a client never sees a truncated 200.
func (r *metricsRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	bp := r.render()
	defer r.bufPool.Put(bp)
	h := w.Header()
	h.Set("Content-Type", metricsContentType)
	h.Set("Content-Length", strconv.Itoa(len(*bp)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(*bp) // the client went away; nothing useful to do
}

// ---------------------------------------------------------------------------
// Names, escaping and number formatting.

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c == ':' || isASCIILetter(c):
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]* and is not
// reserved (names starting with "__" belong to Prometheus).
func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || isASCIILetter(c):
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// mustValidNames panics unless name and every label name are valid and the
// label names are distinct and not in reserved.
func mustValidNames(name string, labelNames []string, reserved ...string) {
	if !validMetricName(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	seen := make(map[string]bool, len(labelNames))
	for _, l := range labelNames {
		if !validLabelName(l) || slices.Contains(reserved, l) {
			panic(fmt.Sprintf("metrics: %s: invalid or reserved label name %q", name, l))
		}
		if seen[l] {
			panic(fmt.Sprintf("metrics: %s: duplicate label name %q", name, l))
		}
		seen[l] = true
	}
}

// escapeHelp escapes HELP text: `\` -> `\\`, newline -> `\n`.
func escapeHelp(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsAny(s, "\\\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// appendLabelValue appends s escaped for use inside a quoted label value.
// s must be valid UTF-8 (label values are sanitised on entry).
func appendLabelValue(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, `\\`...)
		case '"':
			buf = append(buf, `\"`...)
		case '\n':
			buf = append(buf, `\n`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendFloat formats v the way client_golang's text encoder does.
func appendFloat(buf []byte, v float64) []byte {
	switch {
	case v == 0:
		return append(buf, '0') // also -0
	case math.IsNaN(v):
		return append(buf, "NaN"...)
	case math.IsInf(v, +1):
		return append(buf, "+Inf"...)
	case math.IsInf(v, -1):
		return append(buf, "-Inf"...)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, 64)
}

// ---------------------------------------------------------------------------
// Label sets.

// labelLayout describes a family's labels: the declared order (the order of
// With's arguments) and the alphabetical order used for output and sorting.
type labelLayout struct {
	names  []string
	sorted []int // indexes into names, alphabetical by name
}

func newLabelLayout(names []string) labelLayout {
	names = slices.Clone(names)
	sorted := make([]int, len(names))
	for i := range sorted {
		sorted[i] = i
	}
	sort.Slice(sorted, func(a, b int) bool { return names[sorted[a]] < names[sorted[b]] })
	return labelLayout{names: names, sorted: sorted}
}

// renderInner returns `a="x",b="y"` in alphabetical name order, without
// braces; "" when there are no labels.
func (l labelLayout) renderInner(values []string) string {
	var buf []byte
	for n, idx := range l.sorted {
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, l.names[idx]...)
		buf = append(buf, `="`...)
		buf = appendLabelValue(buf, values[idx])
		buf = append(buf, '"')
	}
	return string(buf)
}

// sortKey returns values in alphabetical label-name order.
func (l labelLayout) sortKey(values []string) []string {
	key := make([]string, len(values))
	for n, idx := range l.sorted {
		key[n] = values[idx]
	}
	return key
}

// sanitizeValues returns a copy of values with invalid UTF-8 replaced.
func sanitizeValues(values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		if !utf8.ValidString(v) {
			v = strings.ToValidUTF8(v, "\uFFFD")
		}
		out[i] = v
	}
	return out
}

// labelHashSeed is fixed for the process so every vector hashes alike.
var labelHashSeed = maphash.MakeSeed()

// hashValues hashes the values, each followed by 0xff (a byte that never
// occurs in UTF-8, so ["a","b"] and ["ab",""] hash differently). Collisions
// are resolved by comparing values, so the hash only has to be fast.
func hashValues(values []string) uint64 {
	var h maphash.Hash
	h.SetSeed(labelHashSeed)
	for _, v := range values {
		h.WriteString(v)
		h.WriteByte(0xff)
	}
	return h.Sum64()
}

// ---------------------------------------------------------------------------
// Vectors: the series of one family, keyed by label values.

// seriesEntry is one series. values, key and labels never change.
type seriesEntry[T any] struct {
	values []string // declared order; valid UTF-8
	key    []string // alphabetical label-name order, for sorting
	labels string   // rendered `a="x",b="y"` (no braces)
	metric T
}

// seriesIndex is an immutable view of a vector's series: a writer builds a
// new one and publishes it atomically, so readers never lock.
type seriesIndex[T any] struct {
	byHash  map[uint64][]*seriesEntry[T] // hash of values -> collision chain
	ordered []*seriesEntry[T]            // sorted by key, for output
}

// seriesVec maps label values to series of type T. Reads (With on an
// existing series, scrapes) load the current index without locking, so many
// goroutines do not contend on a shared lock word. Writes (first use of a
// label set, Delete, Reset) are serialised by mu and copy the index; they are
// rare because callers bound their label values.
type seriesVec[T any] struct {
	familyName string
	layout     labelLayout
	newMetric  func() T

	mu      sync.Mutex // serialises writers
	current atomic.Pointer[seriesIndex[T]]
}

func newSeriesVec[T any](name string, labelNames []string, newMetric func() T) *seriesVec[T] {
	v := &seriesVec[T]{
		familyName: name,
		layout:     newLabelLayout(labelNames),
		newMetric:  newMetric,
	}
	v.current.Store(&seriesIndex[T]{byHash: map[uint64][]*seriesEntry[T]{}})
	return v
}

func (v *seriesVec[T]) mustArity(values []string) {
	if len(values) != len(v.layout.names) {
		panic(fmt.Sprintf("metrics: %s: got %d label values, want %d (%v)",
			v.familyName, len(values), len(v.layout.names), v.layout.names))
	}
}

// lookup finds the series for values in idx.
func (idx *seriesIndex[T]) lookup(h uint64, values []string) *seriesEntry[T] {
	for _, e := range idx.byHash[h] {
		if slices.Equal(e.values, values) {
			return e
		}
	}
	return nil
}

// get returns the series for values, creating it on first use.
func (v *seriesVec[T]) get(values []string) T {
	v.mustArity(values)
	if e := v.current.Load().lookup(hashValues(values), values); e != nil {
		return e.metric
	}
	return v.create(values)
}

// create is get's slow path. Stored values are sanitised, so a label value
// with invalid UTF-8 always lands here and maps to its sanitised series.
func (v *seriesVec[T]) create(values []string) T {
	clean := sanitizeValues(values)
	h := hashValues(clean)
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.current.Load()
	if e := old.lookup(h, clean); e != nil {
		return e.metric
	}
	e := &seriesEntry[T]{
		values: clean,
		key:    v.layout.sortKey(clean),
		labels: v.layout.renderInner(clean),
		metric: v.newMetric(),
	}
	next := &seriesIndex[T]{byHash: maps.Clone(old.byHash)}
	next.byHash[h] = append(slices.Clip(old.byHash[h]), e)
	at, _ := slices.BinarySearchFunc(old.ordered, e, compareEntries[T])
	next.ordered = slices.Insert(slices.Clip(old.ordered), at, e)
	v.current.Store(next)
	return e.metric
}

func compareEntries[T any](a, b *seriesEntry[T]) int { return slices.Compare(a.key, b.key) }

// remove deletes the series for values; false when there is none (or the
// arity is wrong, as client_golang's DeleteLabelValues).
func (v *seriesVec[T]) remove(values []string) bool {
	if len(values) != len(v.layout.names) {
		return false
	}
	clean := sanitizeValues(values)
	h := hashValues(clean)
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.current.Load()
	e := old.lookup(h, clean)
	if e == nil {
		return false
	}
	isEntry := func(x *seriesEntry[T]) bool { return x == e }
	next := &seriesIndex[T]{
		byHash:  maps.Clone(old.byHash),
		ordered: slices.DeleteFunc(slices.Clone(old.ordered), isEntry),
	}
	if chain := slices.DeleteFunc(slices.Clone(old.byHash[h]), isEntry); len(chain) > 0 {
		next.byHash[h] = chain
	} else {
		delete(next.byHash, h)
	}
	v.current.Store(next)
	return true
}

func (v *seriesVec[T]) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.current.Store(&seriesIndex[T]{byHash: map[uint64][]*seriesEntry[T]{}})
}

// snapshot returns the series in output order; the slice is never mutated.
func (v *seriesVec[T]) snapshot() []*seriesEntry[T] { return v.current.Load().ordered }

// appendSample appends `name{labels} value\n`.
func appendSample(buf []byte, name, labels string, value float64) []byte {
	buf = append(buf, name...)
	if labels != "" {
		buf = append(buf, '{')
		buf = append(buf, labels...)
		buf = append(buf, '}')
	}
	buf = append(buf, ' ')
	buf = appendFloat(buf, value)
	return append(buf, '\n')
}

// ---------------------------------------------------------------------------
// Counters.

// counter is a monotonically increasing value. Whole increments go to an
// integer part (one atomic add, no CAS loop under contention); fractional
// ones go to a float part.
type counter struct {
	whole     atomic.Uint64
	fractBits atomic.Uint64
}

func (c *counter) Inc() { c.whole.Add(1) }

// Add adds delta, which must not be negative or NaN: a counter that goes
// down is a programming error (client_golang panics too).
func (c *counter) Add(delta float64) {
	if delta < 0 || math.IsNaN(delta) {
		panic(fmt.Sprintf("metrics: counter cannot decrease or be NaN (delta %v)", delta))
	}
	if delta <= 1<<53 && delta == math.Trunc(delta) {
		c.whole.Add(uint64(delta))
		return
	}
	addFloatBits(&c.fractBits, delta)
}

func (c *counter) value() float64 {
	return float64(c.whole.Load()) + math.Float64frombits(c.fractBits.Load())
}

// addFloatBits adds delta to the float64 stored as bits in p.
func addFloatBits(p *atomic.Uint64, delta float64) {
	for {
		old := p.Load()
		next := math.Float64bits(math.Float64frombits(old) + delta)
		if p.CompareAndSwap(old, next) {
			return
		}
	}
}

type counterVec struct {
	familyMeta
	vec *seriesVec[*counter]
}

// CounterVec registers a counter family with the given label names (none is
// fine: With() then returns the single series).
func (r *metricsRegistry) CounterVec(name, help string, labelNames ...string) *counterVec {
	mustValidNames(name, labelNames)
	v := &counterVec{
		familyMeta: familyMeta{name: name, escapedHelp: escapeHelp(help), typeName: "counter"},
		vec:        newSeriesVec(name, labelNames, func() *counter { return new(counter) }),
	}
	r.register(v, name)
	return v
}

// With returns the series for labelValues (in the declared label order),
// creating it on first use. Panics on a wrong number of values.
func (v *counterVec) With(labelValues ...string) *counter { return v.vec.get(labelValues) }

func (v *counterVec) appendSamples(buf []byte) []byte {
	for _, e := range v.vec.snapshot() {
		buf = appendSample(buf, v.name, e.labels, e.metric.value())
	}
	return buf
}

// ---------------------------------------------------------------------------
// Gauges.

// gauge is a value that can go up and down, stored as float64 bits.
type gauge struct{ bits atomic.Uint64 }

func (g *gauge) Set(v float64)     { g.bits.Store(math.Float64bits(v)) }
func (g *gauge) Add(delta float64) { addFloatBits(&g.bits, delta) }
func (g *gauge) value() float64    { return math.Float64frombits(g.bits.Load()) }

type gaugeVec struct {
	familyMeta
	vec *seriesVec[*gauge]
}

// GaugeVec registers a gauge family with the given label names.
func (r *metricsRegistry) GaugeVec(name, help string, labelNames ...string) *gaugeVec {
	mustValidNames(name, labelNames)
	v := &gaugeVec{
		familyMeta: familyMeta{name: name, escapedHelp: escapeHelp(help), typeName: "gauge"},
		vec:        newSeriesVec(name, labelNames, func() *gauge { return new(gauge) }),
	}
	r.register(v, name)
	return v
}

// With returns the series for labelValues, creating it (at 0) on first use.
func (v *gaugeVec) With(labelValues ...string) *gauge { return v.vec.get(labelValues) }

// Delete removes the series for labelValues; false if there was none.
func (v *gaugeVec) Delete(labelValues ...string) bool { return v.vec.remove(labelValues) }

// Reset removes every series of the family.
func (v *gaugeVec) Reset() { v.vec.reset() }

func (v *gaugeVec) appendSamples(buf []byte) []byte {
	for _, e := range v.vec.snapshot() {
		buf = appendSample(buf, v.name, e.labels, e.metric.value())
	}
	return buf
}

// ---------------------------------------------------------------------------
// Histograms.

// histogram counts observations per bucket. counts[i] holds observations in
// (upper[i-1], upper[i]] (not cumulative); the last slot is the +Inf bucket.
// The total count is derived from the buckets at scrape time, so _count
// always matches the +Inf bucket; _sum may trail by in-flight observations.
type histogram struct {
	upper   []float64 // shared by the family, read-only
	counts  []atomic.Uint64
	sumBits atomic.Uint64
}

// Observe records v. NaN lands in the +Inf bucket and makes the sum NaN,
// as in client_golang.
func (h *histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // first bound >= v: buckets are "le"
	h.counts[i].Add(1)
	addFloatBits(&h.sumBits, v)
}

type histogramVec struct {
	familyMeta
	upper              []float64
	leTexts            []string // formatted bounds, then "+Inf"
	sumName, countName string
	vec                *seriesVec[*histogram]
}

// HistogramVec registers a histogram family. buckets are the upper bounds,
// strictly increasing; a trailing +Inf is optional (it is always added).
func (r *metricsRegistry) HistogramVec(name, help string, buckets []float64, labelNames ...string) *histogramVec {
	mustValidNames(name, labelNames, "le")
	upper := mustValidBuckets(name, buckets)
	leTexts := make([]string, 0, len(upper)+1)
	for _, b := range upper {
		leTexts = append(leTexts, string(appendFloat(nil, b)))
	}
	leTexts = append(leTexts, "+Inf")
	v := &histogramVec{
		familyMeta: familyMeta{name: name, escapedHelp: escapeHelp(help), typeName: "histogram"},
		upper:      upper,
		leTexts:    leTexts,
		sumName:    name + "_sum",
		countName:  name + "_count",
	}
	v.vec = newSeriesVec(name, labelNames, func() *histogram {
		return &histogram{upper: upper, counts: make([]atomic.Uint64, len(upper)+1)}
	})
	r.register(v, name+"_bucket", name+"_sum", name+"_count")
	return v
}

// mustValidBuckets returns a copy of buckets without a trailing +Inf,
// panicking unless the bounds are strictly increasing and not NaN.
func mustValidBuckets(name string, buckets []float64) []float64 {
	upper := slices.Clone(buckets)
	if n := len(upper); n > 0 && math.IsInf(upper[n-1], +1) {
		upper = upper[:n-1]
	}
	for i, b := range upper {
		if math.IsNaN(b) || math.IsInf(b, +1) || (i > 0 && b <= upper[i-1]) {
			panic(fmt.Sprintf("metrics: %s: buckets must be strictly increasing and finite: %v", name, buckets))
		}
	}
	return upper
}

// With returns the series for labelValues, creating it on first use.
func (v *histogramVec) With(labelValues ...string) *histogram { return v.vec.get(labelValues) }

func (v *histogramVec) appendSamples(buf []byte) []byte {
	var counts []uint64
	for _, e := range v.vec.snapshot() {
		counts = counts[:0]
		for i := range e.metric.counts {
			counts = append(counts, e.metric.counts[i].Load())
		}
		sum := math.Float64frombits(e.metric.sumBits.Load())
		var cumulative uint64
		for i, c := range counts {
			cumulative += c
			buf = v.appendBucket(buf, e.labels, v.leTexts[i], cumulative)
		}
		buf = appendSample(buf, v.sumName, e.labels, sum)
		buf = appendSample(buf, v.countName, e.labels, float64(cumulative))
	}
	return buf
}

// appendBucket appends `name_bucket{labels,le="x"} n\n`.
func (v *histogramVec) appendBucket(buf []byte, labels, le string, n uint64) []byte {
	buf = append(buf, v.name...)
	buf = append(buf, "_bucket{"...)
	if labels != "" {
		buf = append(buf, labels...)
		buf = append(buf, ',')
	}
	buf = append(buf, `le="`...)
	buf = append(buf, le...)
	buf = append(buf, `"} `...)
	buf = appendFloat(buf, float64(n))
	return append(buf, '\n')
}

// ---------------------------------------------------------------------------
// Families computed at scrape time.

// funcFamily is a gauge or counter family whose series come from a callback
// at scrape time. The callback runs during every scrape without registry
// locks held (other than the publish read lock), so it may be slow but must
// not call WriteText.
type funcFamily struct {
	familyMeta
	layout  labelLayout
	collect func(emit func(value float64, labelValues ...string))
}

// GaugeFunc registers an unlabelled gauge whose value fn computes at scrape
// time.
func (r *metricsRegistry) GaugeFunc(name, help string, fn func() float64) {
	r.registerFunc(name, help, "gauge", nil, func(emit func(float64, ...string)) { emit(fn()) })
}

// CounterFunc registers an unlabelled counter whose value fn computes at
// scrape time; fn must never return less than before.
func (r *metricsRegistry) CounterFunc(name, help string, fn func() float64) {
	r.registerFunc(name, help, "counter", nil, func(emit func(float64, ...string)) { emit(fn()) })
}

// GaugeVecFunc registers a labelled gauge family whose series fn emits at
// scrape time, label values in the order of labelNames. Emitting a label set
// twice keeps the first; emitting nothing omits the family. A wrong number
// of label values panics (programming error).
func (r *metricsRegistry) GaugeVecFunc(name, help string, labelNames []string, fn func(emit func(value float64, labelValues ...string))) {
	r.registerFunc(name, help, "gauge", labelNames, fn)
}

func (r *metricsRegistry) registerFunc(name, help, typeName string, labelNames []string, fn func(emit func(float64, ...string))) {
	mustValidNames(name, labelNames)
	f := &funcFamily{
		familyMeta: familyMeta{name: name, escapedHelp: escapeHelp(help), typeName: typeName},
		layout:     newLabelLayout(labelNames),
		collect:    fn,
	}
	r.register(f, name)
}

type emittedSample struct {
	key    []string
	labels string
	value  float64
}

func (f *funcFamily) appendSamples(buf []byte) []byte {
	var samples []emittedSample
	f.collect(func(value float64, labelValues ...string) {
		if len(labelValues) != len(f.layout.names) {
			panic(fmt.Sprintf("metrics: %s: emitted %d label values, want %d (%v)",
				f.name, len(labelValues), len(f.layout.names), f.layout.names))
		}
		clean := sanitizeValues(labelValues)
		samples = append(samples, emittedSample{
			key:    f.layout.sortKey(clean),
			labels: f.layout.renderInner(clean),
			value:  value,
		})
	})
	// Stable sort keeps the first of equal keys first, so dropping later
	// duplicates keeps the first emitted.
	slices.SortStableFunc(samples, func(a, b emittedSample) int { return slices.Compare(a.key, b.key) })
	for i, s := range samples {
		if i > 0 && slices.Equal(s.key, samples[i-1].key) {
			continue
		}
		buf = appendSample(buf, f.name, s.labels, s.value)
	}
	return buf
}

// Compile-time checks that every family kind implements metricFamily.
var (
	_ metricFamily = (*counterVec)(nil)
	_ metricFamily = (*gaugeVec)(nil)
	_ metricFamily = (*histogramVec)(nil)
	_ metricFamily = (*funcFamily)(nil)
)

// ---------------------------------------------------------------------------
// Go runtime and process metrics.

// registerRuntimeMetrics registers the Go/process basics that client_golang's
// default collectors would expose (a subset, same names and units) plus
// se_uptime_seconds and se_build_info. Heap figures come from runtime/metrics,
// which, unlike runtime.ReadMemStats, does not stop the world. Process figures
// come from /proc and getrusage/getrlimit; a figure that cannot be read is
// left out of the scrape rather than printed as a made-up value.
func registerRuntimeMetrics(r *metricsRegistry, startTime time.Time, version string) {
	r.GaugeFunc("go_goroutines", "Number of goroutines that currently exist.",
		func() float64 { return float64(runtime.NumGoroutine()) })
	goVersion := runtime.Version()
	r.GaugeVecFunc("go_info", "Information about the Go environment.", []string{"version"},
		func(emit func(float64, ...string)) { emit(1, goVersion) })

	runtimeGauge := func(name, help string, sampleNames ...string) {
		r.GaugeVecFunc(name, help, nil, func(emit func(float64, ...string)) {
			if v, ok := readRuntimeSum(sampleNames...); ok {
				emit(v)
			}
		})
	}
	runtimeGauge("go_memstats_alloc_bytes", "Number of bytes allocated in heap objects and still in use.",
		"/memory/classes/heap/objects:bytes")
	runtimeGauge("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and still in use.",
		"/memory/classes/heap/objects:bytes")
	runtimeGauge("go_memstats_heap_inuse_bytes", "Number of heap bytes in spans that are in use.",
		"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes")
	runtimeGauge("go_memstats_heap_objects", "Number of allocated heap objects.",
		"/gc/heap/objects:objects")
	runtimeGauge("go_memstats_sys_bytes", "Number of bytes obtained from the OS by the Go runtime.",
		"/memory/classes/total:bytes")
	runtimeGauge("go_memstats_next_gc_bytes", "Heap size target of the next garbage collection, in bytes.",
		"/gc/heap/goal:bytes")
	r.CounterFunc("go_memstats_alloc_bytes_total", "Total number of heap bytes allocated, even if freed.",
		func() float64 { v, _ := readRuntimeSum("/gc/heap/allocs:bytes"); return v })

	registerProcessMetrics(r, startTime)

	r.GaugeFunc("se_uptime_seconds", "Seconds since the storage element process started.",
		func() float64 { return time.Since(startTime).Seconds() })
	r.GaugeVecFunc("se_build_info", "Build information of the storage element; the value is always 1.",
		[]string{"version", "goversion"},
		func(emit func(float64, ...string)) { emit(1, version, goVersion) })
}

// readRuntimeSum reads runtime/metrics samples and returns their sum; ok is
// false when any of them is unsupported by this Go version.
func readRuntimeSum(names ...string) (float64, bool) {
	samples := make([]rtmetrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	rtmetrics.Read(samples)
	var sum float64
	for _, s := range samples {
		switch s.Value.Kind() {
		case rtmetrics.KindUint64:
			sum += float64(s.Value.Uint64())
		case rtmetrics.KindFloat64:
			sum += s.Value.Float64()
		default:
			return 0, false
		}
	}
	return sum, true
}

func registerProcessMetrics(r *metricsRegistry, startTime time.Time) {
	pageSize := float64(os.Getpagesize())
	statmField := func(name, help string, field int) {
		r.GaugeVecFunc(name, help, nil, func(emit func(float64, ...string)) {
			if pages, ok := readStatmField(field); ok {
				emit(pages * pageSize)
			}
		})
	}
	statmField("process_virtual_memory_bytes", "Virtual memory size in bytes.", 0)
	statmField("process_resident_memory_bytes", "Resident memory size in bytes.", 1)

	r.GaugeVecFunc("process_open_fds", "Number of open file descriptors.", nil,
		func(emit func(float64, ...string)) {
			if n, ok := countOpenFDs(); ok {
				emit(float64(n))
			}
		})
	r.GaugeVecFunc("process_max_fds", "Maximum number of open file descriptors.", nil,
		func(emit func(float64, ...string)) {
			var lim syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
				emit(float64(lim.Cur))
			}
		})
	startSeconds := float64(startTime.UnixNano()) / 1e9
	r.GaugeFunc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
		func() float64 { return startSeconds })
	r.registerFunc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", nil,
		func(emit func(float64, ...string)) {
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
				emit(timevalSeconds(ru.Utime) + timevalSeconds(ru.Stime))
			}
		})
}

func timevalSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// readStatmField returns field i (in pages) of /proc/self/statm, whose
// format is "size resident shared text lib data dt".
func readStatmField(i int) (float64, bool) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(data))
	if i >= len(fields) {
		return 0, false
	}
	v, err := strconv.ParseUint(fields[i], 10, 64)
	if err != nil {
		return 0, false
	}
	return float64(v), true
}

// countOpenFDs counts the entries of /proc/self/fd (the directory handle
// used to read it included, as client_golang does).
func countOpenFDs() (int, bool) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, false
	}
	return len(names), true
}
