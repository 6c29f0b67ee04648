package main

import (
	"math/bits"
	"time"
)

// A log-linear latency histogram in microseconds, in the manner of HdrHistogram: values below 2^subBucketBits are
// exact, larger ones fall in buckets whose width is at most 1/64 of their value, so a percentile is off by under
// 1.6 %. One per client (no locking on the hot path), merged when the run ends.
const (
	subBucketBits  = 7
	subBucketCount = 1 << subBucketBits // 128
	subBucketHalf  = subBucketCount / 2 // 64
	// Latencies up to 2^40 µs (12 days) fit; anything larger is clamped into the last bucket.
	histogramShiftMax = 40 - subBucketBits
	histogramBuckets  = subBucketCount + histogramShiftMax*subBucketHalf
)

type histogram struct {
	counts  [histogramBuckets]uint64
	total   uint64
	maxUsec uint64
}

func bucketOf(usec uint64) int {
	if usec < subBucketCount {
		return int(usec)
	}
	shift := bits.Len64(usec) - subBucketBits // >= 1
	if shift > histogramShiftMax {
		return histogramBuckets - 1
	}
	top := usec >> uint(shift) // in [64, 127]
	return subBucketCount + (shift-1)*subBucketHalf + int(top-subBucketHalf)
}

// The middle of a bucket's range: what a percentile that falls in it reports.
func bucketMidUsec(index int) float64 {
	if index < subBucketCount {
		return float64(index)
	}
	shift := (index-subBucketCount)/subBucketHalf + 1
	top := uint64((index-subBucketCount)%subBucketHalf + subBucketHalf)
	low := top << uint(shift)
	return float64(low) + float64(uint64(1)<<uint(shift))/2
}

func (h *histogram) record(d time.Duration) {
	usec := uint64(d / time.Microsecond)
	h.counts[bucketOf(usec)]++
	h.total++
	if usec > h.maxUsec {
		h.maxUsec = usec
	}
}

func (h *histogram) merge(other *histogram) {
	for i, c := range other.counts {
		h.counts[i] += c
	}
	h.total += other.total
	if other.maxUsec > h.maxUsec {
		h.maxUsec = other.maxUsec
	}
}

// The latency at quantile q (0..1) in milliseconds; 0 when nothing was recorded.
func (h *histogram) quantileMs(q float64) float64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			mid := bucketMidUsec(i)
			if mid > float64(h.maxUsec) {
				mid = float64(h.maxUsec)
			}
			return mid / 1000
		}
	}
	return float64(h.maxUsec) / 1000
}
