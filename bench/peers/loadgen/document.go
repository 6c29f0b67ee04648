package main

import (
	"encoding/base64"
	"fmt"
	"math/rand"
)

// Documents of exactly sizeBytes bytes of compact JSON: four counters and a flag (hot fields under Strata's
// default STRATA_HOT_FIELDS), then a `body` of random base64 text (cold). Every document differs in its counters,
// so no system can skip a write as unchanged (SeaweedFS answers 204 to an identical re-upload), and both systems
// receive the same bytes with the same Content-Type.
const (
	counterDigits = 10
	// The JSON around the body is about 130 bytes; below this there is no room for a body worth the name.
	documentBytesMin = 256
	documentBytesMax = 64 << 20
)

// Counters are counterDigits wide and start with 1 (JSON forbids leading zeros), so the size never changes.
var documentHead = `{"like_count":%[1]d,"view_count":%[1]d,"update_count":%[1]d,"inventory_count":%[1]d,"is_active":true,"body":"`

const counterBase = 1_000_000_000 // 10 digits; stamp() rewrites the 9 after the leading 1

type documentTemplate struct {
	bytes []byte
	// Offsets of the four counters' digits, rewritten in place for each document.
	counterOffsets [4]int
}

func newDocumentTemplate(sizeBytes int, seed int64) (*documentTemplate, error) {
	if sizeBytes < documentBytesMin || sizeBytes > documentBytesMax {
		return nil, fmt.Errorf("-size must be in %d..%d bytes; got %d", documentBytesMin, documentBytesMax, sizeBytes)
	}
	head := fmt.Sprintf(documentHead, counterBase)
	tail := `"}`
	bodyChars := sizeBytes - len(head) - len(tail)
	random := make([]byte, bodyChars) // base64 of n bytes is longer than n chars: enough to cut from
	rand.New(rand.NewSource(seed)).Read(random)
	body := base64.StdEncoding.EncodeToString(random)[:bodyChars]
	t := &documentTemplate{bytes: []byte(head + body + tail)}
	offset := 0
	for i, name := range []string{`"like_count":`, `"view_count":`, `"update_count":`, `"inventory_count":`} {
		at := indexFrom(t.bytes, name, offset)
		t.counterOffsets[i] = at + len(name)
		offset = t.counterOffsets[i]
	}
	return t, nil
}

func indexFrom(b []byte, what string, from int) int {
	for i := from; i+len(what) <= len(b); i++ {
		if string(b[i:i+len(what)]) == what {
			return i
		}
	}
	panic("document template lost its field " + what)
}

// A copy of the template for one client, to be stamped before each request.
func (t *documentTemplate) buffer() []byte {
	return append([]byte(nil), t.bytes...)
}

// Writes 1_000_000_000 + n mod 10^9 into every counter of `doc` (a buffer() copy): fixed width, valid JSON.
func (t *documentTemplate) stamp(doc []byte, n uint64) {
	for _, at := range t.counterOffsets {
		v := n
		for i := at + counterDigits - 1; i > at; i-- {
			doc[i] = byte('0' + v%10)
			v /= 10
		}
	}
}
