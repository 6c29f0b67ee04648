package main

import (
	"math"
	"testing"
	"time"
)

func TestQuantilesAreWithinTheBucketPrecision(t *testing.T) {
	var h histogram
	// 1..100,000 µs, once each: the q-quantile is q * 100 ms.
	for us := 1; us <= 100_000; us++ {
		h.record(time.Duration(us) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		got, want := h.quantileMs(q), q*100
		if math.Abs(got-want)/want > 0.016 {
			t.Errorf("quantile %v: %v ms, want %v ms within 1.6 %%", q, got, want)
		}
	}
	if h.maxUsec != 100_000 {
		t.Errorf("max %d µs", h.maxUsec)
	}
}

func TestBucketsAreContiguousAndOrdered(t *testing.T) {
	last := -1
	for us := uint64(0); us < 1<<22; us++ {
		b := bucketOf(us)
		if b != last && b != last+1 {
			t.Fatalf("%d µs jumps from bucket %d to %d", us, last, b)
		}
		last = b
	}
	if bucketOf(math.MaxUint64) != histogramBuckets-1 {
		t.Fatal("huge values are not clamped into the last bucket")
	}
}

func TestMergeAddsCountsAndKeepsTheMax(t *testing.T) {
	var a, b histogram
	a.record(time.Millisecond)
	b.record(3 * time.Millisecond)
	a.merge(&b)
	if a.total != 2 || a.maxUsec != 3000 {
		t.Fatalf("total %d, max %d", a.total, a.maxUsec)
	}
}
