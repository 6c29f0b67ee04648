package main

import (
	"encoding/json"
	"testing"
)

func TestDocumentsAreValidJSONOfTheExactSize(t *testing.T) {
	for _, size := range []int{documentBytesMin, 1024, 100 * 1024} {
		tmpl, err := newDocumentTemplate(size, 1)
		if err != nil {
			t.Fatal(err)
		}
		doc := tmpl.buffer()
		for _, n := range []uint64{0, 7, 999_999_999, 1_000_000_000, 1<<63 + 12345} {
			tmpl.stamp(doc, n)
			if len(doc) != size {
				t.Fatalf("size %d: document of %d bytes", size, len(doc))
			}
			var v map[string]any
			if err := json.Unmarshal(doc, &v); err != nil {
				t.Fatalf("size %d, n %d: %v: %.120s", size, n, err, doc)
			}
			if want := float64(1_000_000_000 + n%1_000_000_000); v["like_count"] != want || v["inventory_count"] != want {
				t.Fatalf("n %d: counters %v, %v, want %v", n, v["like_count"], v["inventory_count"], want)
			}
		}
	}
}

func TestDocumentSizeOutsideTheLimitsIsRefused(t *testing.T) {
	if _, err := newDocumentTemplate(documentBytesMin-1, 1); err == nil {
		t.Fatal("accepted a document too small for its fields")
	}
}
