// report.go — the table a run prints: each SE figure beside the limit measured in the
// same run, their ratio, the target of issue 6 and whether it is met. Markdown, so it
// pastes into BENCHMARKS.md and issue notes as is.
package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// row is one line of the results table.
type row struct {
	Figure, SE, Limit, Ratio, Target, Met string
}

// verdict renders whether a target is met.
func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**NO**"
}

// human renders a byte count in binary units.
func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// ms renders a duration in milliseconds with three significant digits or so.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func latencies(r loadResult) string {
	return fmt.Sprintf("p50 %s, p99 %s", ms(r.P50), ms(r.P99))
}

// worstList returns the list combination with the highest p99 ratio large/small.
func worstList(res results, small, large int) (listKey, float64) {
	var worst listKey
	ratio := -1.0
	for k, v := range res.List {
		if k.N != large {
			continue
		}
		base := res.List[listKey{small, k.Filter, k.Position}]
		if base.P99 <= 0 {
			continue
		}
		if r := float64(v.P99) / float64(base.P99); r > ratio {
			worst, ratio = k, r
		}
	}
	return worst, ratio
}

func filterName(f string) string {
	if f == "" {
		return "all"
	}
	return "status=" + f
}

// buildRows turns the results into the table of issue 6.
func buildRows(o options, res results) []row {
	var rows []row
	if res.Upload > 0 {
		rows = append(rows, transferRows(o, res)...)
	}
	if res.Upload4K.Ops > 0 {
		rows = append(rows, smallRows(o, res)...)
	}
	rows = append(rows, seededRows(o, res)...)
	if res.BinarySize > 0 {
		rows = append(rows, row{
			"stripped static binary", fmt.Sprintf("%.2f MB (%s)", float64(res.BinarySize)/1e6, human(res.BinarySize)),
			"—", "—", "≤ 10 MB", verdict(res.BinarySize <= 10_000_000),
		})
	}
	return rows
}

func transferRows(o options, res results) []row {
	size := human(o.BigSize)
	var rows []row
	limit := min(res.RawWrite, res.SHA256)
	up := res.Upload / limit
	rows = append(rows, row{
		size + " upload", fmt.Sprintf("%.0f MB/s", res.Upload),
		fmt.Sprintf("min(write+fsync %.0f, SHA-256 %.0f) MB/s", res.RawWrite, res.SHA256),
		fmt.Sprintf("%.2f", up), "≥ 0.80", verdict(up >= 0.8),
	})
	if res.IdleRSS > 0 {
		over := res.UploadPeakRSS - res.IdleRSS
		rows = append(rows, row{
			"peak RSS during the " + size + " upload", human(res.UploadPeakRSS),
			"idle " + human(res.IdleRSS) + " + 32 MiB", "+" + human(over), "≤ +32 MiB", verdict(over <= 32<<20),
		})
	}
	if res.BareUpload > 0 {
		rows = append(rows, row{
			size + " upload, transport only (context)", fmt.Sprintf("%.0f MB/s", res.Upload),
			fmt.Sprintf("bare net/http TLS into io.Discard %.0f MB/s", res.BareUpload),
			fmt.Sprintf("%.2f", res.Upload/res.BareUpload), "—", "—",
		})
	}
	down := res.Download / res.Bare
	rows = append(rows, row{
		size + " download", fmt.Sprintf("%.0f MB/s", res.Download),
		fmt.Sprintf("bare net/http TLS %.0f MB/s", res.Bare), fmt.Sprintf("%.2f", down), "≥ 0.80", verdict(down >= 0.8),
	})
	return rows
}

func smallRows(o options, res results) []row {
	var rows []row
	small := res.Upload4K.Rate() / res.RawCreate.Rate()
	rows = append(rows, row{
		fmt.Sprintf("%s uploads/s, %d clients", human(int64(o.SmallSize)), o.Clients),
		fmt.Sprintf("%.0f/s (%s)", res.Upload4K.Rate(), latencies(res.Upload4K)),
		fmt.Sprintf("raw durable create %.0f/s (%s)", res.RawCreate.Rate(), latencies(res.RawCreate)),
		fmt.Sprintf("%.2f", small), "≥ 0.60", verdict(small >= 0.6),
	})
	rows = append(rows,
		row{fmt.Sprintf("%s downloads/s, %d clients", human(int64(o.SmallSize)), o.Clients),
			fmt.Sprintf("%.0f/s (%s)", res.Download4K.Rate(), latencies(res.Download4K)), "—", "—", "—", "—"},
		row{fmt.Sprintf("metadata GETs/s, %d clients", o.Clients),
			fmt.Sprintf("%.0f/s (%s)", res.Meta.Rate(), latencies(res.Meta)), "—", "—", "—", "—"},
	)
	return rows
}

func seededRows(o options, res results) []row {
	var rows []row
	if k, ratio := worstList(res, o.NSmall, o.N); ratio >= 0 {
		base := res.List[listKey{o.NSmall, k.Filter, k.Position}]
		rows = append(rows, row{
			fmt.Sprintf("list p99, limit %d, worst of 6 (%s, %s)", listLimit, filterName(k.Filter), k.Position),
			fmt.Sprintf("%s at %d files", ms(res.List[k].P99), o.N),
			fmt.Sprintf("%s at %d files", ms(base.P99), o.NSmall),
			fmt.Sprintf("%.2f", ratio), "≤ 1.50", verdict(ratio <= 1.5),
		})
	}
	if len(res.Ready) > 0 {
		ready, raw := median(res.Ready), median(res.RawRead)
		rr := float64(ready) / float64(raw)
		rows = append(rows, row{
			fmt.Sprintf("restart-to-ready, %d files", o.N), ms(ready),
			fmt.Sprintf("raw parallel sidecar read %s", ms(raw)), fmt.Sprintf("%.2f", rr), "≤ 1.50", verdict(rr <= 1.5),
		})
		perFile := float64(res.RSSLarge-res.RSSEmpty) / float64(o.N)
		rows = append(rows, row{
			"RSS per indexed file", fmt.Sprintf("%.0f B", perFile),
			fmt.Sprintf("(%s at %d − %s at 0) / %d", human(res.RSSLarge), o.N, human(res.RSSEmpty), o.N),
			"—", "≤ 400 B", verdict(perFile <= 400),
		})
	}
	return rows
}

// writeTable prints rows as a Markdown table.
func writeTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| figure | SE | limit (same run) | ratio | target | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.Figure, r.SE, r.Limit, r.Ratio, r.Target, r.Met)
	}
}

// writeListDetail prints every list combination at both sizes.
func writeListDetail(w io.Writer, o options, res results) {
	fmt.Fprintf(w, "| list page (limit %d) | p50 at %d | p99 at %d | p50 at %d | p99 at %d | p99 ratio |\n",
		listLimit, o.NSmall, o.NSmall, o.N, o.N)
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, f := range []string{"", "active"} {
		for _, pos := range []string{"start", "middle", "end"} {
			s, l := res.List[listKey{o.NSmall, f, pos}], res.List[listKey{o.N, f, pos}]
			ratio := 0.0
			if s.P99 > 0 {
				ratio = float64(l.P99) / float64(s.P99)
			}
			fmt.Fprintf(w, "| %s, %s | %s | %s | %s | %s | %.2f |\n",
				filterName(f), pos, ms(s.P50), ms(s.P99), ms(l.P50), ms(l.P99), ratio)
		}
	}
}

// countMet returns how many rows have a target and how many of those are met.
func countMet(rows []row) (met, total int) {
	for _, r := range rows {
		if r.Met == "—" {
			continue
		}
		total++
		if r.Met == "yes" {
			met++
		}
	}
	return met, total
}

// durations renders a list of durations for the log.
func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = ms(d)
	}
	return strings.Join(parts, ", ")
}
