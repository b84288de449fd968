package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}, {0.5, time.Millisecond}} {
		if got := percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v, want 0", got)
	}
	three := []time.Duration{1, 2, 3}
	if got := percentile(three, 99); got != 3 {
		t.Errorf("p99 of 3 samples = %v, want the maximum", got)
	}
}

func TestSummarizeSortsAndCounts(t *testing.T) {
	r := summarize([]time.Duration{5, 1, 4, 2, 3}, 2*time.Second)
	if r.Ops != 5 || r.P50 != 3 || r.P99 != 5 {
		t.Fatalf("got %+v", r)
	}
	if r.Rate() != 2.5 {
		t.Fatalf("rate %v, want 2.5/s", r.Rate())
	}
	if (loadResult{Ops: 3}).Rate() != 0 {
		t.Fatal("a load without elapsed time must have rate 0")
	}
}

func TestRunLoadCountsEveryCall(t *testing.T) {
	var calls atomic.Int64
	r, err := runLoad(4, 20*time.Millisecond, func(context.Context, int, int) error {
		calls.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops == 0 || int64(r.Ops) != calls.Load() {
		t.Fatalf("ops %d, calls %d", r.Ops, calls.Load())
	}
}

func TestRunLoadStopsOnError(t *testing.T) {
	boom := errors.New("boom")
	_, err := runLoad(3, time.Minute, func(ctx context.Context, w, i int) error {
		if w == 1 && i == 2 {
			return boom
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom (and no minute-long wait)", err)
	}
}

func TestMedians(t *testing.T) {
	if got := median([]time.Duration{9, 1, 5}); got != 5 {
		t.Errorf("median = %v", got)
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("median of an even count = %v, want the lower middle", got)
	}
	if got := medianInt64([]int64{7, 3, 5}); got != 5 {
		t.Errorf("medianInt64 = %v", got)
	}
	if median(nil) != 0 || medianInt64(nil) != 0 {
		t.Error("median of nothing must be 0")
	}
	if got := mbps(2_000_000, time.Second); got != 2 {
		t.Errorf("mbps = %v, want 2", got)
	}
}
