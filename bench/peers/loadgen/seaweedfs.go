package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SeaweedFS's blob API (its REST_API.md): the master hands out file ids (`GET /dir/assign?count=N&replication=R`
// answers `{"fid":"3,01637037d6","url":"127.0.0.1:8080","count":N}`, and `<fid>_1` .. `<fid>_<N-1>` are reserved
// too), the client PUTs the body to `http://<url>/<fid>?fsync=true` (the volume server fsyncs the write, and its
// replicas, before it answers), and reads GET `http://<location>/<fid>` from any location `/dir/lookup?volumeId=V`
// lists. The ids are assigned before the measured loop, so every measured operation is one request, as Strata's
// are; a real client would also ask the master once per write or batch.
type seaweedSystem struct {
	master      string
	replication string
	fsync       bool
	contentType string
	// One reservation per writer: writes cycle through its ids, overwriting once they are used up.
	writes []fidRange
	reads  []readTarget
}

type fidRange struct {
	fid   string
	url   string
	count uint64
}

type readTarget struct {
	fid       string
	locations []string
}

// How long assign waits out a master that is still warming up (it answers 503 with Retry-After).
const assignRetryMax = 30 * time.Second

func newSeaweedSystem(o *options) (*seaweedSystem, error) {
	if len(o.replication) != 3 || strings.Trim(o.replication, "0123456789") != "" {
		return nil, fmt.Errorf("-replication must be three digits such as 000 or 002; got %q", o.replication)
	}
	return &seaweedSystem{master: o.url, replication: o.replication, fsync: o.fsync, contentType: o.contentType}, nil
}

type assignAnswer struct {
	Fid   string `json:"fid"`
	URL   string `json:"url"`
	Count uint64 `json:"count"`
	Error string `json:"error"`
}

func (s *seaweedSystem) assign(c *http.Client, count uint64) (fidRange, error) {
	u := s.master + "/dir/assign?count=" + strconv.FormatUint(count, 10) + "&replication=" + s.replication
	deadline := time.Now().Add(assignRetryMax)
	for {
		var a assignAnswer
		status, err := getJSON(c, u, &a)
		if err == nil && status == http.StatusOK && a.Error == "" && a.Fid != "" {
			if a.Count < count {
				return fidRange{}, fmt.Errorf("GET %s reserved %d ids, not %d", u, a.Count, count)
			}
			return fidRange{fid: a.Fid, url: a.URL, count: count}, nil
		}
		if err == nil {
			err = fmt.Errorf("GET %s: status %d: %s", u, status, a.Error)
		}
		if time.Now().After(deadline) {
			return fidRange{}, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r fidRange) nth(i uint64) string {
	if i == 0 {
		return r.fid
	}
	return r.fid + "_" + strconv.FormatUint(i, 10)
}

func (s *seaweedSystem) put(c *http.Client, volumeURL, fid string, doc []byte) error {
	u := "http://" + volumeURL + "/" + fid
	if s.fsync {
		u += "?fsync=true"
	}
	req, err := http.NewRequest(http.MethodPut, u, newBody(doc))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(doc))
	req.Header.Set("Content-Type", s.contentType)
	// 201 Created, or 204 when the bytes are already stored under that id.
	_, err = doRequest(c, req, 0, -1)
	return err
}

func (s *seaweedSystem) prepareWrites(c *http.Client, o *options) error {
	s.writes = make([]fidRange, o.clients)
	for i := range s.writes {
		// One assign per writer: the master picks a writable volume for each, so writers spread over volumes as
		// independent clients would.
		r, err := s.assign(c, o.fidsPerClient)
		if err != nil {
			return err
		}
		s.writes[i] = r
	}
	return nil
}

func (s *seaweedSystem) write(c *http.Client, worker int, seq uint64, doc []byte) error {
	r := s.writes[worker]
	return s.put(c, r.url, r.nth(seq%r.count), doc)
}

func (s *seaweedSystem) preload(c *http.Client, o *options, t *documentTemplate) error {
	s.reads = make([]readTarget, o.keys)
	err := inParallel(o.clients, o.keys, t, func(i int, doc []byte) error {
		r, err := s.assign(c, 1)
		if err != nil {
			return err
		}
		s.reads[i] = readTarget{fid: r.fid}
		return s.put(c, r.url, r.fid, doc)
	})
	if err != nil {
		return err
	}
	// Reads go to any replica, as a client with a lookup cache would spread them.
	locations := map[string][]string{}
	for i := range s.reads {
		volume := s.reads[i].fid[:strings.IndexByte(s.reads[i].fid, ',')]
		if _, ok := locations[volume]; !ok {
			urls, err := s.lookup(c, volume)
			if err != nil {
				return err
			}
			locations[volume] = urls
		}
		s.reads[i].locations = locations[volume]
	}
	return nil
}

func (s *seaweedSystem) lookup(c *http.Client, volume string) ([]string, error) {
	u := s.master + "/dir/lookup?volumeId=" + url.QueryEscape(volume)
	var answer struct {
		Locations []struct {
			URL string `json:"url"`
		} `json:"locations"`
		Error string `json:"error"`
	}
	status, err := getJSON(c, u, &answer)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK || len(answer.Locations) == 0 {
		return nil, fmt.Errorf("GET %s: status %d, %d locations: %s", u, status, len(answer.Locations), answer.Error)
	}
	urls := make([]string, len(answer.Locations))
	for i, l := range answer.Locations {
		urls[i] = l.URL
	}
	return urls, nil
}

func (s *seaweedSystem) read(c *http.Client, rnd *rand.Rand, sizeBytes int) error {
	t := s.reads[rnd.Intn(len(s.reads))]
	location := t.locations[rnd.Intn(len(t.locations))]
	req, err := http.NewRequest(http.MethodGet, "http://"+location+"/"+t.fid, nil)
	if err != nil {
		return err
	}
	_, err = doRequest(c, req, http.StatusOK, sizeBytes)
	return err
}

func getJSON(c *http.Client, u string, into any) (int, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(body, into); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: status %d, not JSON: %.200s", u, resp.StatusCode, body)
	}
	return resp.StatusCode, nil
}

// inParallel calls put(i, doc) for i in 0..n-1 from `workers` goroutines, each stamping its own copy of the
// template with i; the first error stops the others.
func inParallel(workers, n int, t *documentTemplate, put func(i int, doc []byte) error) error {
	var (
		next     int
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next >= n {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			doc := t.buffer()
			for i, ok := take(); ok; i, ok = take() {
				t.stamp(doc, uint64(i))
				if err := put(i, doc); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("preload of document %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
