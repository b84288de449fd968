package main

// metrics_test.go: exposition tests. parseExposition is a deliberately strict
// parser of the text format 0.0.4 subset that client_golang prints; every
// test that renders a registry parses the output back with it, so a
// formatting slip (escaping, ordering, blank line, stray timestamp) fails.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

type parsedLabel struct{ name, value string }

type parsedSample struct {
	name   string
	labels []parsedLabel // in printed order
	value  float64
}

// label returns the value of the named label and whether it is present.
func (s parsedSample) label(name string) (string, bool) {
	for _, l := range s.labels {
		if l.name == name {
			return l.value, true
		}
	}
	return "", false
}

type parsedFamily struct {
	name, help, typ string
	samples         []parsedSample
}

// parseExposition parses text strictly: every family is HELP, TYPE, then at
// least one sample; families sorted by name; no blank lines, other comments
// or timestamps; only the escapes client_golang emits; label names in
// alphabetical order with histogram "le" last; floats in canonical form.
func parseExposition(text string) ([]parsedFamily, error) {
	if text == "" {
		return nil, nil
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("exposition does not end with a newline")
	}
	var families []parsedFamily
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i := 0; i < len(lines); {
		fam, next, err := parseFamily(lines, i)
		if err != nil {
			return nil, err
		}
		if n := len(families); n > 0 && families[n-1].name >= fam.name {
			return nil, fmt.Errorf("line %d: family %q not after %q", i+1, fam.name, families[n-1].name)
		}
		families = append(families, fam)
		i = next
	}
	return families, nil
}

// parseFamily parses the family starting at lines[i]; it returns the index
// of the first line after it.
func parseFamily(lines []string, i int) (parsedFamily, int, error) {
	var fam parsedFamily
	name, help, ok := strings.Cut(strings.TrimPrefix(lines[i], "# HELP "), " ")
	if !strings.HasPrefix(lines[i], "# HELP ") || !ok || !validMetricNameForTest(name) {
		return fam, 0, fmt.Errorf("line %d: want \"# HELP name text\", got %q", i+1, lines[i])
	}
	unescapedHelp, err := unescapeHelpForTest(help)
	if err != nil {
		return fam, 0, fmt.Errorf("line %d: %w", i+1, err)
	}
	fam.name, fam.help = name, unescapedHelp
	if i+1 >= len(lines) {
		return fam, 0, fmt.Errorf("line %d: HELP without TYPE", i+1)
	}
	typ, ok := strings.CutPrefix(lines[i+1], "# TYPE "+name+" ")
	if !ok || !slices.Contains([]string{"counter", "gauge", "histogram"}, typ) {
		return fam, 0, fmt.Errorf("line %d: want \"# TYPE %s counter|gauge|histogram\", got %q", i+2, name, lines[i+1])
	}
	fam.typ = typ
	j := i + 2
	for ; j < len(lines) && !strings.HasPrefix(lines[j], "# "); j++ {
		s, err := parseSampleLine(lines[j])
		if err != nil {
			return fam, 0, fmt.Errorf("line %d: %w", j+1, err)
		}
		if !sampleBelongs(fam, s.name) {
			return fam, 0, fmt.Errorf("line %d: sample %q in family %q (%s)", j+1, s.name, name, typ)
		}
		fam.samples = append(fam.samples, s)
	}
	if len(fam.samples) == 0 {
		return fam, 0, fmt.Errorf("family %q has no samples", name)
	}
	return fam, j, nil
}

func sampleBelongs(fam parsedFamily, sample string) bool {
	if fam.typ != "histogram" {
		return sample == fam.name
	}
	suffix, ok := strings.CutPrefix(sample, fam.name)
	return ok && (suffix == "_bucket" || suffix == "_sum" || suffix == "_count")
}

func parseSampleLine(line string) (parsedSample, error) {
	var s parsedSample
	end := strings.IndexAny(line, "{ ")
	if end <= 0 {
		return s, fmt.Errorf("no metric name in %q", line)
	}
	s.name = line[:end]
	if !validMetricNameForTest(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	rest := line[end:]
	if strings.HasPrefix(rest, "{") {
		labels, after, err := parseLabelsForTest(rest[1:])
		if err != nil {
			return s, err
		}
		if err := checkLabelOrder(s.name, labels); err != nil {
			return s, err
		}
		s.labels, rest = labels, after
	}
	valueText, ok := strings.CutPrefix(rest, " ")
	if !ok {
		return s, fmt.Errorf("want one space before the value in %q", line)
	}
	v, err := parseCanonicalFloat(valueText)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// parseLabelsForTest parses `a="x",b="y"}` (after the opening brace) and
// returns the text after the closing brace.
func parseLabelsForTest(text string) ([]parsedLabel, string, error) {
	var labels []parsedLabel
	for {
		eq := strings.IndexByte(text, '=')
		if eq <= 0 || !validLabelNameForTest(text[:eq]) || len(text) < eq+2 || text[eq+1] != '"' {
			return nil, "", fmt.Errorf("bad label at %q", text)
		}
		name := text[:eq]
		value, after, err := unescapeLabelValueForTest(text[eq+2:])
		if err != nil {
			return nil, "", fmt.Errorf("label %s: %w", name, err)
		}
		labels = append(labels, parsedLabel{name, value})
		switch {
		case strings.HasPrefix(after, ","):
			text = after[1:]
		case strings.HasPrefix(after, "}"):
			if len(labels) == 0 {
				return nil, "", errors.New("empty label set printed")
			}
			return labels, after[1:], nil
		default:
			return nil, "", fmt.Errorf("want , or } at %q", after)
		}
	}
}

// unescapeLabelValueForTest reads a quoted value up to its closing quote.
func unescapeLabelValueForTest(text string) (value, after string, err error) {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '"':
			if !utf8.ValidString(b.String()) {
				return "", "", errors.New("label value is not UTF-8")
			}
			return b.String(), text[i+1:], nil
		case '\\':
			if i+1 >= len(text) {
				return "", "", errors.New("dangling backslash")
			}
			i++
			switch text[i] {
			case '\\':
				b.WriteByte('\\')
			case '"':
				b.WriteByte('"')
			case 'n':
				b.WriteByte('\n')
			default:
				return "", "", fmt.Errorf("unknown escape \\%c", text[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated label value")
}

func unescapeHelpForTest(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", errors.New("HELP is not UTF-8")
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(text) {
			return "", errors.New("dangling backslash in HELP")
		}
		i++
		switch text[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("unknown HELP escape \\%c", text[i])
		}
	}
	return b.String(), nil
}

// checkLabelOrder requires alphabetical label names, with "le" last on a
// histogram bucket.
func checkLabelOrder(sample string, labels []parsedLabel) error {
	names := make([]string, 0, len(labels))
	for _, l := range labels {
		names = append(names, l.name)
	}
	if strings.HasSuffix(sample, "_bucket") && len(names) > 0 && names[len(names)-1] == "le" {
		names = names[:len(names)-1]
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		return fmt.Errorf("label names not strictly alphabetical: %v", names)
	}
	return nil
}

// parseCanonicalFloat accepts only the spelling client_golang prints.
func parseCanonicalFloat(text string) (float64, error) {
	switch text {
	case "+Inf":
		return math.Inf(+1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bad value %q", text)
	}
	canonical := strconv.FormatFloat(v, 'g', -1, 64)
	if v == 0 {
		canonical = "0"
	}
	if canonical != text {
		return 0, fmt.Errorf("value %q is not in canonical form %q", text, canonical)
	}
	return v, nil
}

func validMetricNameForTest(s string) bool {
	for i, c := range s {
		if !(c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return s != ""
}

func validLabelNameForTest(s string) bool {
	return validMetricNameForTest(s) && !strings.Contains(s, ":")
}

// render renders reg and parses it, failing the test on any error.
func render(t testing.TB, reg *metricsRegistry) (string, []parsedFamily) {
	t.Helper()
	var buf bytes.Buffer
	if err := reg.WriteText(&buf); err != nil {
		t.Fatalf("WriteText: %v", err)
	}
	families, err := parseExposition(buf.String())
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, buf.String())
	}
	return buf.String(), families
}

func familyByName(families []parsedFamily, name string) (parsedFamily, bool) {
	for _, f := range families {
		if f.name == name {
			return f, true
		}
	}
	return parsedFamily{}, false
}

// ---------------------------------------------------------------------------

func TestWriteTextExactBytes(t *testing.T) {
	reg := newMetricsRegistry()
	requests := reg.CounterVec("se_http_requests_total", "Requests served.", "method", "path", "status")
	requests.With("GET", "/b", "200").Inc()
	requests.With("GET", "/a", "200").Add(2)
	requests.With("POST", "/a", "201").Add(0.5)
	mode := reg.GaugeVec("se_mode_info", "Current mode.", "mode")
	mode.With("edit").Set(1)
	dur := reg.HistogramVec("a_duration_seconds", "Durations.", []float64{0.5, 1, 1e6}, "zone", "path")
	dur.With("z", "/x").Observe(0.5)
	dur.With("z", "/x").Observe(3)
	reg.GaugeFunc("b_plain", "No labels.", func() float64 { return 1.79e-07 })
	reg.CounterFunc("c_total", "Counter func.", func() float64 { return 1234567 })
	reg.GaugeVec("d_empty", "Never printed.", "x")

	want := `# HELP a_duration_seconds Durations.
# TYPE a_duration_seconds histogram
a_duration_seconds_bucket{path="/x",zone="z",le="0.5"} 1
a_duration_seconds_bucket{path="/x",zone="z",le="1"} 1
a_duration_seconds_bucket{path="/x",zone="z",le="1e+06"} 2
a_duration_seconds_bucket{path="/x",zone="z",le="+Inf"} 2
a_duration_seconds_sum{path="/x",zone="z"} 3.5
a_duration_seconds_count{path="/x",zone="z"} 2
# HELP b_plain No labels.
# TYPE b_plain gauge
b_plain 1.79e-07
# HELP c_total Counter func.
# TYPE c_total counter
c_total 1.234567e+06
# HELP se_http_requests_total Requests served.
# TYPE se_http_requests_total counter
se_http_requests_total{method="GET",path="/a",status="200"} 2
se_http_requests_total{method="GET",path="/b",status="200"} 1
se_http_requests_total{method="POST",path="/a",status="201"} 0.5
# HELP se_mode_info Current mode.
# TYPE se_mode_info gauge
se_mode_info{mode="edit"} 1
`
	got, _ := render(t, reg)
	if got != want {
		t.Fatalf("exposition mismatch\n--- got\n%s--- want\n%s", got, want)
	}
}

func TestWriteTextTrickyRoundTrip(t *testing.T) {
	tricky := []string{
		`plain`,
		`with "quotes"`,
		`back\slash\`,
		"new\nline\n",
		`\n literal backslash-n`,
		"UTF-8: Москва 東京 🚀",
		"",
		`"\"\\` + "\n",
		"tab\tand } { , = chars",
	}
	help := "Help with \\ backslash,\nnewline, \"quotes\" and ünïcødé \\n"
	reg := newMetricsRegistry()
	g := reg.GaugeVec("tricky_gauge", help, "value", "index")
	h := reg.HistogramVec("tricky_hist", help, []float64{1}, "value")
	for i, v := range tricky {
		g.With(v, strconv.Itoa(i)).Set(float64(i) + 0.25)
		h.With(v).Observe(float64(i))
	}
	_, families := render(t, reg)

	gf, ok := familyByName(families, "tricky_gauge")
	if !ok || gf.help != help || gf.typ != "gauge" {
		t.Fatalf("gauge family = %+v, want help %q", gf, help)
	}
	got := map[string]float64{}
	for _, s := range gf.samples {
		v, _ := s.label("value")
		got[v] = s.value
	}
	for i, v := range tricky {
		if got[v] != float64(i)+0.25 {
			t.Errorf("value %q: got %v, want %v", v, got[v], float64(i)+0.25)
		}
	}
	if len(gf.samples) != len(tricky) {
		t.Errorf("gauge has %d samples, want %d", len(gf.samples), len(tricky))
	}
	hf, _ := familyByName(families, "tricky_hist")
	if hf.help != help || len(hf.samples) != 4*len(tricky) {
		t.Fatalf("histogram family help %q with %d samples", hf.help, len(hf.samples))
	}
	for _, s := range hf.samples {
		if v, _ := s.label("value"); !slices.Contains(tricky, v) {
			t.Errorf("histogram label value %q did not round-trip", v)
		}
	}
}

func TestInvalidUTF8IsReplaced(t *testing.T) {
	reg := newMetricsRegistry()
	g := reg.GaugeVec("bad_utf8", "bad \xff help", "v")
	g.With("a\xffb").Set(1)
	g.With("a\xfeb").Set(2) // same series after replacement
	text, families := render(t, reg)
	f := families[0]
	if f.help != "bad \uFFFD help" || len(f.samples) != 1 {
		t.Fatalf("got help %q, %d samples:\n%s", f.help, len(f.samples), text)
	}
	if v, _ := f.samples[0].label("v"); v != "a\uFFFDb" || f.samples[0].value != 2 {
		t.Fatalf("got %q=%v", v, f.samples[0].value)
	}
	if !g.Delete("a\xffb") {
		t.Fatal("Delete with the original invalid value found nothing")
	}
}

func TestFloatFormatting(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-1, "-1"}, {0.0123, "0.0123"},
		{1.79e-07, "1.79e-07"}, {1e6, "1e+06"}, {123456, "123456"}, {1e21, "1e+21"},
		{math.Inf(+1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {5e-324, "5e-324"},
	}
	for _, c := range cases {
		if got := string(appendFloat(nil, c.v)); got != c.want {
			t.Errorf("appendFloat(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	reg := newMetricsRegistry()
	h := reg.HistogramVec("h_seconds", "h", []float64{0.1, 1, 10, math.Inf(+1)}).With()
	for _, v := range []float64{0.05, 0.1, 0.5, 1, 1.0000001, 9, 11, 1e9, -3} {
		h.Observe(v)
	}
	_, families := render(t, reg)
	f := families[0]
	wantBuckets := []struct {
		le    string
		count float64
	}{{"0.1", 3}, {"1", 5}, {"10", 7}, {"+Inf", 9}}
	if len(f.samples) != len(wantBuckets)+2 {
		t.Fatalf("got %d samples, want %d", len(f.samples), len(wantBuckets)+2)
	}
	for i, wb := range wantBuckets {
		s := f.samples[i]
		le, _ := s.label("le")
		if s.name != "h_seconds_bucket" || le != wb.le || s.value != wb.count {
			t.Errorf("bucket %d = %s{le=%q} %v, want le=%q %v", i, s.name, le, s.value, wb.le, wb.count)
		}
	}
	wantSum := 0.05 + 0.1 + 0.5 + 1 + 1.0000001 + 9 + 11 + 1e9 - 3
	sum, count := f.samples[4], f.samples[5]
	if sum.name != "h_seconds_sum" || math.Abs(sum.value-wantSum) > 1e-6 {
		t.Errorf("sum = %s %v, want %v", sum.name, sum.value, wantSum)
	}
	if count.name != "h_seconds_count" || count.value != 9 {
		t.Errorf("count = %s %v, want 9", count.name, count.value)
	}

	h.Observe(math.NaN())
	_, families = render(t, reg)
	f = families[0]
	if inf := f.samples[3]; inf.value != 10 || !math.IsNaN(f.samples[4].value) || f.samples[5].value != 10 {
		t.Errorf("after NaN: +Inf %v, sum %v, count %v; want 10, NaN, 10", inf.value, f.samples[4].value, f.samples[5].value)
	}
}

func TestHistogramWithoutBuckets(t *testing.T) {
	reg := newMetricsRegistry()
	reg.HistogramVec("only_inf", "h", nil, "a").With("x").Observe(2)
	got, _ := render(t, reg)
	want := "# HELP only_inf h\n# TYPE only_inf histogram\n" +
		"only_inf_bucket{a=\"x\",le=\"+Inf\"} 1\nonly_inf_sum{a=\"x\"} 2\nonly_inf_count{a=\"x\"} 1\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSeriesOrderIsStableAndAlphabeticalByLabelName(t *testing.T) {
	reg := newMetricsRegistry()
	// Declared order (z, a) differs from output order (a, z): series must
	// sort by the a value first.
	g := reg.GaugeVec("order_test", "o", "z", "a")
	inserts := [][2]string{{"1", "b"}, {"2", "a"}, {"0", "b"}, {"9", "a"}, {"", "c"}, {"5", ""}}
	for i, in := range inserts {
		g.With(in[0], in[1]).Set(float64(i))
	}
	first, families := render(t, reg)
	var got []string
	for _, s := range families[0].samples {
		a, _ := s.label("a")
		z, _ := s.label("z")
		got = append(got, a+"/"+z)
	}
	want := []string{"/5", "a/2", "a/9", "b/0", "b/1", "c/"}
	if !slices.Equal(got, want) {
		t.Fatalf("series order %v, want %v", got, want)
	}
	for range 3 {
		if again, _ := render(t, reg); again != first {
			t.Fatalf("output changed between scrapes:\n%s\n%s", first, again)
		}
	}
}

func TestGaugeVecDeleteAndReset(t *testing.T) {
	reg := newMetricsRegistry()
	g := reg.GaugeVec("dg", "d", "k")
	g.With("a").Set(1)
	g.With("b").Add(2)
	g.With("b").Add(-0.5)
	if g.Delete("missing") || g.Delete("a", "extra") {
		t.Fatal("Delete of a missing series or with wrong arity returned true")
	}
	if !g.Delete("a") || g.Delete("a") {
		t.Fatal("Delete(a) should succeed exactly once")
	}
	got, _ := render(t, reg)
	if want := "# HELP dg d\n# TYPE dg gauge\ndg{k=\"b\"} 1.5\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	g.With("a").Set(7) // a deleted series comes back fresh
	g.Reset()
	if got, _ := render(t, reg); got != "" {
		t.Fatalf("after Reset got %q, want empty", got)
	}
	g.With("c").Set(3)
	if got, _ := render(t, reg); got != "# HELP dg d\n# TYPE dg gauge\ndg{k=\"c\"} 3\n" {
		t.Fatalf("after re-adding got %q", got)
	}
}

func TestCounterAddKeepsFractions(t *testing.T) {
	reg := newMetricsRegistry()
	c := reg.CounterVec("cf_total", "c").With()
	c.Inc()
	c.Add(2)
	c.Add(0.25)
	c.Add(0.25)
	c.Add(0)
	_, families := render(t, reg)
	if v := families[0].samples[0].value; v != 3.5 {
		t.Fatalf("counter = %v, want 3.5", v)
	}
	c.Add(math.Inf(+1))
	if _, families = render(t, reg); !math.IsInf(families[0].samples[0].value, +1) {
		t.Fatalf("counter after +Inf = %v", families[0].samples[0].value)
	}
}

func TestFuncFamilies(t *testing.T) {
	reg := newMetricsRegistry()
	n := 0.0
	reg.GaugeFunc("fn_gauge", "g", func() float64 { n++; return n })
	reg.GaugeVecFunc("fn_vec", "v", []string{"status", "kind"}, func(emit func(float64, ...string)) {
		emit(3, "expired", "x")
		emit(1, "active", "y")
		emit(99, "expired", "x") // duplicate: the first one wins
		emit(2, "deleted", "x")
	})
	reg.GaugeVecFunc("fn_silent", "s", []string{"a"}, func(func(float64, ...string)) {})
	got, _ := render(t, reg)
	want := `# HELP fn_gauge g
# TYPE fn_gauge gauge
fn_gauge 1
# HELP fn_vec v
# TYPE fn_vec gauge
fn_vec{kind="x",status="deleted"} 2
fn_vec{kind="x",status="expired"} 3
fn_vec{kind="y",status="active"} 1
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if again, _ := render(t, reg); !strings.Contains(again, "fn_gauge 2\n") {
		t.Fatalf("GaugeFunc not evaluated per scrape:\n%s", again)
	}
}

func TestRegistrationPanics(t *testing.T) {
	cases := map[string]func(r *metricsRegistry){
		"empty name":        func(r *metricsRegistry) { r.GaugeVec("", "h") },
		"name with dash":    func(r *metricsRegistry) { r.GaugeVec("a-b", "h") },
		"name starts digit": func(r *metricsRegistry) { r.CounterVec("1a", "h") },
		"label with colon":  func(r *metricsRegistry) { r.GaugeVec("ok", "h", "a:b") },
		"reserved label":    func(r *metricsRegistry) { r.GaugeVec("ok", "h", "__name") },
		"duplicate label":   func(r *metricsRegistry) { r.GaugeVec("ok", "h", "a", "a") },
		"le in histogram":   func(r *metricsRegistry) { r.HistogramVec("ok", "h", nil, "le") },
		"unsorted buckets":  func(r *metricsRegistry) { r.HistogramVec("ok", "h", []float64{1, 0.5}) },
		"repeated bucket":   func(r *metricsRegistry) { r.HistogramVec("ok", "h", []float64{1, 1}) },
		"NaN bucket":        func(r *metricsRegistry) { r.HistogramVec("ok", "h", []float64{math.NaN()}) },
		"duplicate family":  func(r *metricsRegistry) { r.GaugeVec("dup", "h"); r.CounterVec("dup", "h") },
		"histogram suffix":  func(r *metricsRegistry) { r.HistogramVec("x", "h", nil); r.GaugeFunc("x_count", "h", nil) },
		"func duplicate":    func(r *metricsRegistry) { r.GaugeFunc("f", "h", nil); r.CounterFunc("f", "h", nil) },
		"too few values":    func(r *metricsRegistry) { r.CounterVec("c", "h", "a", "b").With("x") },
		"too many values":   func(r *metricsRegistry) { r.GaugeVec("g", "h").With("x") },
		"histogram arity":   func(r *metricsRegistry) { r.HistogramVec("hh", "h", nil, "a").With() },
		"negative counter":  func(r *metricsRegistry) { r.CounterVec("c", "h").With().Add(-1) },
		"NaN counter":       func(r *metricsRegistry) { r.CounterVec("c", "h").With().Add(math.NaN()) },
		"vec func bad arity": func(r *metricsRegistry) {
			r.GaugeVecFunc("vf", "h", []string{"a"}, func(e func(float64, ...string)) { e(1) })
			_ = r.WriteText(io.Discard)
		},
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			fn(newMetricsRegistry())
		})
	}
	// A label named "le" is fine outside histograms, as in client_golang.
	newMetricsRegistry().GaugeVec("le_ok", "h", "le").With("x").Set(1)
}

func TestServeHTTP(t *testing.T) {
	reg := newMetricsRegistry()
	reg.CounterVec("served_total", "s", "k").With("v").Inc()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, srv.URL+"/metrics", nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
			t.Fatalf("%s: status %d, Content-Type %q", method, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		want := "# HELP served_total s\n# TYPE served_total counter\nserved_total{k=\"v\"} 1\n"
		if method == http.MethodHead {
			want = ""
		}
		if string(body) != want || resp.Header.Get("Content-Length") != strconv.Itoa(len("# HELP served_total s\n# TYPE served_total counter\nserved_total{k=\"v\"} 1\n")) {
			t.Fatalf("%s: body %q, Content-Length %s", method, body, resp.Header.Get("Content-Length"))
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestWriteTextReportsWriteError(t *testing.T) {
	reg := newMetricsRegistry()
	reg.GaugeFunc("x", "x", func() float64 { return 1 })
	if err := reg.WriteText(failingWriter{}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("WriteText error = %v", err)
	}
}

func TestRuntimeMetrics(t *testing.T) {
	reg := newMetricsRegistry()
	start := time.Unix(1700000000, 500_000_000)
	registerRuntimeMetrics(reg, start, "1.2.3")
	_, families := render(t, reg)
	value := func(name string) float64 {
		t.Helper()
		f, ok := familyByName(families, name)
		if !ok {
			t.Fatalf("family %s missing", name)
		}
		return f.samples[0].value
	}
	if v := value("go_goroutines"); v < 1 {
		t.Errorf("go_goroutines = %v", v)
	}
	for _, name := range []string{
		"go_memstats_alloc_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes",
		"go_memstats_heap_objects", "go_memstats_sys_bytes", "go_memstats_next_gc_bytes",
		"go_memstats_alloc_bytes_total", "process_cpu_seconds_total", "process_max_fds",
	} {
		if v := value(name); !(v > 0) {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if v := value("process_start_time_seconds"); v != 1700000000.5 {
		t.Errorf("process_start_time_seconds = %v", v)
	}
	if v := value("se_uptime_seconds"); v < float64(time.Since(start)/time.Second)-60 {
		t.Errorf("se_uptime_seconds = %v", v)
	}
	build, _ := familyByName(families, "se_build_info")
	if v, _ := build.samples[0].label("version"); v != "1.2.3" {
		t.Errorf("se_build_info version = %q", v)
	}
	if v, _ := build.samples[0].label("goversion"); v != runtime.Version() {
		t.Errorf("se_build_info goversion = %q", v)
	}
	goInfo, _ := familyByName(families, "go_info")
	if v, _ := goInfo.samples[0].label("version"); v != runtime.Version() || goInfo.samples[0].value != 1 {
		t.Errorf("go_info = %+v", goInfo.samples[0])
	}
	if runtime.GOOS == "linux" {
		if v := value("process_open_fds"); v < 3 {
			t.Errorf("process_open_fds = %v", v)
		}
		if rss, vsz := value("process_resident_memory_bytes"), value("process_virtual_memory_bytes"); rss <= 0 || vsz < rss {
			t.Errorf("rss %v, vsz %v", rss, vsz)
		}
	}
	if f, _ := familyByName(families, "process_cpu_seconds_total"); f.typ != "counter" {
		t.Errorf("process_cpu_seconds_total type %q", f.typ)
	}
}

// TestConcurrentUpdatesAndScrapes is meant for -race: writers create and
// update series while scrapers render; the final totals must be exact.
func TestConcurrentUpdatesAndScrapes(t *testing.T) {
	reg := newMetricsRegistry()
	counters := reg.CounterVec("cc_total", "c", "worker", "path")
	hist := reg.HistogramVec("ch_seconds", "h", defaultLatencyBuckets, "path")
	gauges := reg.GaugeVec("cg", "g", "path")
	const workers, perWorker = 8, 500
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	for range 2 {
		scrapes.Add(1)
		go func() {
			defer scrapes.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var buf bytes.Buffer
				if err := reg.WriteText(&buf); err != nil {
					t.Error(err)
					return
				}
				if _, err := parseExposition(buf.String()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				path := "/p" + strconv.Itoa(i%7)
				counters.With("shared", path).Inc()
				counters.With(strconv.Itoa(w), path).Add(0.5)
				hist.With(path).Observe(float64(i%10) / 100)
				gauges.With(path).Add(1)
				if i%50 == 0 {
					gauges.Delete("/gone")
					gauges.With("/gone").Set(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	scrapes.Wait()

	_, families := render(t, reg)
	var shared, perWorkerSum, histCount, gaugeSum float64
	for _, f := range families {
		for _, s := range f.samples {
			switch {
			case f.name == "cc_total":
				if w, _ := s.label("worker"); w == "shared" {
					shared += s.value
				} else {
					perWorkerSum += s.value
				}
			case s.name == "ch_seconds_count":
				histCount += s.value
			case f.name == "cg":
				if p, _ := s.label("path"); p != "/gone" {
					gaugeSum += s.value
				}
			}
		}
	}
	total := float64(workers * perWorker)
	if shared != total || perWorkerSum != total/2 || histCount != total || gaugeSum != total {
		t.Fatalf("shared %v, per-worker %v, histogram count %v, gauges %v; want %v, %v, %v, %v",
			shared, perWorkerSum, histCount, gaugeSum, total, total/2, total, total)
	}
}

// FuzzLabelEscape checks that any label value and HELP text survive the
// exposition: the strict parser must read back exactly the (UTF-8
// sanitised) input.
func FuzzLabelEscape(f *testing.F) {
	for _, seed := range []string{"", `"`, `\`, "\n", `\n`, `a"b\c` + "\nd", "Москва", "\xff", "}\" 1\n# HELP x"} {
		f.Add(seed, seed)
	}
	f.Fuzz(func(t *testing.T, value, help string) {
		reg := newMetricsRegistry()
		g := reg.GaugeVec("fuzz_gauge", help, "first", "second")
		g.With(value, "fixed").Set(1)
		g.With("fixed", value).Set(2)
		reg.HistogramVec("fuzz_hist", help, []float64{1}, "v").With(value).Observe(0.5)
		_, families := render(t, reg)
		wantValue := strings.ToValidUTF8(value, "\uFFFD")
		wantHelp := strings.ToValidUTF8(help, "\uFFFD")
		if len(families) != 2 {
			t.Fatalf("got %d families", len(families))
		}
		for _, fam := range families {
			if fam.help != wantHelp {
				t.Fatalf("help %q, want %q", fam.help, wantHelp)
			}
		}
		samples := families[0].samples
		wantSeries := 2
		if wantValue == "fixed" {
			wantSeries = 1
		}
		if len(samples) != wantSeries {
			t.Fatalf("got %d gauge series, want %d", len(samples), wantSeries)
		}
		found := map[float64]bool{}
		for _, s := range samples {
			first, _ := s.label("first")
			second, _ := s.label("second")
			found[s.value] = true
			if s.value == 1 && (first != wantValue || second != "fixed") ||
				s.value == 2 && (first != "fixed" || second != wantValue) {
				t.Fatalf("series %+v does not round-trip %q", s, wantValue)
			}
		}
		if !found[2] {
			t.Fatalf("series with value 2 missing")
		}
		for _, s := range families[1].samples {
			if v, _ := s.label("v"); v != wantValue {
				t.Fatalf("histogram label %q, want %q", v, wantValue)
			}
		}
	})
}

func BenchmarkCounterWith(b *testing.B) {
	reg := newMetricsRegistry()
	c := reg.CounterVec("bench_total", "b", "method", "path", "status")
	c.With("GET", "/api/v1/files/{file_id}", "200").Inc()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.With("GET", "/api/v1/files/{file_id}", "200").Inc()
		}
	})
}

func BenchmarkWriteText(b *testing.B) {
	reg := newMetricsRegistry()
	registerRuntimeMetrics(reg, time.Now(), "bench")
	c := reg.CounterVec("bench_total", "b", "method", "path", "status")
	h := reg.HistogramVec("bench_seconds", "b", defaultLatencyBuckets, "method", "path")
	for _, m := range []string{"GET", "POST", "PATCH", "DELETE"} {
		for p := range 10 {
			path := "/api/v1/route" + strconv.Itoa(p)
			c.With(m, path, "200").Add(12345)
			h.With(m, path).Observe(0.042)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := reg.WriteText(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
