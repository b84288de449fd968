// stats.go — timing of concurrent operations: rates and latency percentiles.
//
// Percentiles are nearest-rank: p of n sorted samples is sample ⌈p/100·n⌉ (1-based), so
// p99 of 100 samples is the 99th, and p100 is the maximum. No interpolation: every
// reported latency is one a request really had.
package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// percentile returns the nearest-rank p-th percentile of sorted samples (0 if none).
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// loadResult is what a timed load of one operation produced.
type loadResult struct {
	Ops     int
	Elapsed time.Duration // first start to last finish
	P50     time.Duration
	P99     time.Duration
}

// Rate is operations per second over the whole load.
func (r loadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// summarize builds a loadResult from every latency sample of a load.
func summarize(samples []time.Duration, elapsed time.Duration) loadResult {
	slices.Sort(samples)
	return loadResult{Ops: len(samples), Elapsed: elapsed, P50: percentile(samples, 50), P99: percentile(samples, 99)}
}

// runLoad runs op in workers goroutines, each in a loop, until duration has passed,
// and times every call. The first error stops every worker and is returned.
func runLoad(workers int, duration time.Duration, op func(ctx context.Context, worker, i int) error) (loadResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	perWorker := make([][]time.Duration, workers)
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				if err := op(ctx, w, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				perWorker[w] = append(perWorker[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	var all []time.Duration
	for _, s := range perWorker {
		all = append(all, s...)
	}
	return summarize(all, elapsed), nil
}

// mbps is bytes per second in MB/s (10^6 bytes, as dd and disks count).
func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// median returns the median of durations (the lower middle for an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// medianInt64 returns the median of values (the lower middle for an even count).
func medianInt64(vs []int64) int64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
