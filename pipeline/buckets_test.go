package pipeline

import (
	"slices"
	"testing"
)

// TestReceivedToFiledBucketsResolveTheTarget: the bound (p99 of the
// 250 to the filing within 100 ms) is read from this histogram, so it has a
// bound at 100 ms and no bucket wider than 10 ms up to 150 ms, where
// interpolating inside a bucket would otherwise decide the answer.
func TestReceivedToFiledBucketsResolveTheTarget(t *testing.T) {
	b := receivedToFiledBuckets
	if !slices.IsSorted(b) {
		t.Fatalf("buckets not ascending: %v", b)
	}
	if !slices.Contains(b, 0.100) {
		t.Fatalf("no bound at 100 ms: %v", b)
	}
	for i := 1; i < len(b) && b[i] <= 0.150; i++ {
		if b[i] > 0.010 && b[i]-b[i-1] > 0.0100001 {
			t.Fatalf("bucket %v..%v is wider than 10 ms", b[i-1], b[i])
		}
	}
}
