package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func sampleResults() (options, results) {
	o := options{N: 100_000, NSmall: 10_000, BigSize: 1 << 30, SmallSize: 4 << 10, Clients: 16}
	res := results{
		BinarySize: 8_200_000, SHA256: 1000, RawWrite: 500, Upload: 450,
		IdleRSS: 10 << 20, UploadPeakRSS: 50 << 20, Bare: 800, Download: 600,
		RawCreate: loadResult{Ops: 1000, Elapsed: time.Second}, Upload4K: loadResult{Ops: 700, Elapsed: time.Second},
		Download4K: loadResult{Ops: 5000, Elapsed: time.Second}, Meta: loadResult{Ops: 6000, Elapsed: time.Second},
		RawRead: []time.Duration{time.Second}, Ready: []time.Duration{1400 * time.Millisecond},
		RSSEmpty: 10 << 20, RSSLarge: 10<<20 + 30_000_000,
		List: map[listKey]loadResult{},
	}
	for _, f := range []string{"", "active"} {
		for _, p := range []string{"start", "middle", "end"} {
			res.List[listKey{10_000, f, p}] = loadResult{P99: 10 * time.Millisecond}
			res.List[listKey{100_000, f, p}] = loadResult{P99: 12 * time.Millisecond}
		}
	}
	res.List[listKey{100_000, "active", "end"}] = loadResult{P99: 20 * time.Millisecond}
	return o, res
}

func TestBuildRowsVerdicts(t *testing.T) {
	o, res := sampleResults()
	rows := buildRows(o, res)
	want := map[string]string{ // figure prefix -> met
		"1 GiB upload":                     "yes",    // 450 / min(500,1000) = 0.90
		"peak RSS during the 1 GiB upload": "**NO**", // +40 MiB
		"1 GiB download":                   "**NO**", // 0.75
		"4.0 KiB uploads/s":                "yes",    // 0.70
		"list p99":                         "**NO**", // 2.0 (active, end)
		"restart-to-ready":                 "yes",    // 1.4
		"RSS per indexed file":             "yes",    // 300 B
		"stripped static binary":           "yes",
	}
	for prefix, met := range want {
		var found *row
		for i := range rows {
			if strings.HasPrefix(rows[i].Figure, prefix) {
				found = &rows[i]
			}
		}
		if found == nil {
			t.Errorf("no row %q", prefix)
			continue
		}
		if found.Met != met {
			t.Errorf("%s: met %q, want %q (row %+v)", prefix, found.Met, met, *found)
		}
	}
	if met, total := countMet(rows); met != 5 || total != 8 {
		t.Errorf("countMet = %d of %d, want 5 of 8", met, total)
	}
	var buf bytes.Buffer
	writeTable(&buf, rows)
	if lines := strings.Count(buf.String(), "\n"); lines != len(rows)+2 {
		t.Errorf("table has %d lines for %d rows", lines, len(rows))
	}
	if !strings.Contains(buf.String(), "(status=active, end)") {
		t.Errorf("worst list combination not named:\n%s", buf.String())
	}
}

// TestBuildRowsRemote: without process figures (a -url run) their rows are left out.
func TestBuildRowsRemote(t *testing.T) {
	o, res := sampleResults()
	res.IdleRSS, res.UploadPeakRSS, res.Ready, res.RawRead, res.List, res.BinarySize = 0, 0, nil, nil, nil, 0
	for _, r := range buildRows(o, res) {
		for _, gone := range []string{"peak RSS", "list p99", "restart", "RSS per", "binary"} {
			if strings.Contains(r.Figure, gone) {
				t.Errorf("remote run has row %q", r.Figure)
			}
		}
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{1 << 30: "1 GiB", 3 << 29: "1.50 GiB", 5 << 20: "5.0 MiB", 4096: "4.0 KiB", 12: "12 B"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{1500 * time.Microsecond: "1.50 ms", 15 * time.Millisecond: "15.0 ms", 1889 * time.Millisecond: "1889 ms"} {
		if got := ms(d); got != want {
			t.Errorf("ms(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestListOffsetsAndQueries(t *testing.T) {
	if listOffset("start", 10_000) != 0 || listOffset("middle", 10_000) != 5000 || listOffset("end", 10_000) != 9000 {
		t.Fatal("offsets of a 10k listing")
	}
	if listOffset("end", 10) != 0 {
		t.Fatal("end of a listing shorter than a page must be offset 0")
	}
	if q := listQuery("active", 5); q != "limit=1000&offset=5&status=active" {
		t.Fatalf("query %q", q)
	}
	if q := listQuery("", 0); q != "limit=1000&offset=0" {
		t.Fatalf("query %q", q)
	}
}
