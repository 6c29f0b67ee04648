package main

import (
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"strconv"
)

// Strata's document API (docs/api.md): `POST /write?key=K&strategy=S` with the JSON body, `GET /read/K`.
// A write is acknowledged once it is durable on a quorum, so there is nothing to ask for beyond the strategy.
type strataSystem struct {
	base     string
	strategy string
	prefix   string
	// Keys preloaded for reads.
	keys []string
}

func newStrataSystem(o *options) (*strataSystem, error) {
	if _, err := url.Parse(o.url); err != nil {
		return nil, fmt.Errorf("-url: %v", err)
	}
	switch o.strategy {
	case "replication", "ec", "field_hybrid":
	default:
		return nil, fmt.Errorf("-strategy must be replication, ec or field_hybrid; got %q", o.strategy)
	}
	return &strataSystem{base: o.url, strategy: o.strategy, prefix: o.prefix}, nil
}

func (s *strataSystem) put(c *http.Client, key string, doc []byte) error {
	u := s.base + "/write?key=" + url.QueryEscape(key) + "&strategy=" + s.strategy
	req, err := http.NewRequest(http.MethodPost, u, newBody(doc))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(doc))
	req.Header.Set("Content-Type", "application/json")
	_, err = doRequest(c, req, http.StatusOK, -1)
	return err
}

// Nothing to reserve for writes: the key is the address.
func (s *strataSystem) prepareWrites(c *http.Client, o *options) error { return nil }

func (s *strataSystem) write(c *http.Client, worker int, seq uint64, doc []byte) error {
	return s.put(c, s.prefix+"w"+strconv.Itoa(worker)+"-"+strconv.FormatUint(seq, 10), doc)
}

func (s *strataSystem) preload(c *http.Client, o *options, t *documentTemplate) error {
	s.keys = make([]string, o.keys)
	for i := range s.keys {
		s.keys[i] = s.prefix + "r" + strconv.Itoa(i)
	}
	return inParallel(o.clients, len(s.keys), t, func(i int, doc []byte) error {
		return s.put(c, s.keys[i], doc)
	})
}

func (s *strataSystem) read(c *http.Client, rnd *rand.Rand, sizeBytes int) error {
	key := s.keys[rnd.Intn(len(s.keys))]
	req, err := http.NewRequest(http.MethodGet, s.base+"/read/"+url.PathEscape(key), nil)
	if err != nil {
		return err
	}
	_, err = doRequest(c, req, http.StatusOK, sizeBytes)
	return err
}
