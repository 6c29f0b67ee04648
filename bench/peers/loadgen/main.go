// The load generator of `npm run bench -- peers` (bench/peers/): N closed-loop clients over keep-alive HTTP/1.1
// connections, for a fixed duration, writing fixed-size JSON documents or reading preloaded ones, against Strata's
// API or SeaweedFS's. Standard library only, so that the project's scripts build it with nothing but Go
// (scripts/infra/go-loadgen.ts).
//
// Phases: prepare (reserve SeaweedFS file ids for writes, or preload -keys documents for reads), warm-up (the
// loop runs, nothing is recorded), measure. It prints `measuring` on stderr when the measured phase starts, so
// that the caller can sample the servers' CPU, and one JSON line on stdout at the end:
//
//	{"ops":..., "opsPerSec":..., "mbPerSec":..., "latencyMs":{"p50":..,"p99":..,"max":..}, "errors":..., ...}
//
// Exit status: 0 when the run completed (errors are counted, not fatal), 2 for bad flags, 1 when the prepare
// phase failed.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	api           string
	url           string
	op            string
	sizeBytes     int
	clients       int
	duration      time.Duration
	warmup        time.Duration
	keys          int
	strategy      string
	replication   string
	fsync         bool
	prefix        string
	fidsPerClient uint64
	timeout       time.Duration
	seed          int64
	contentType   string
}

// Limits on what one run may ask for.
const (
	clientsMax      = 4096
	keysMax         = 10_000_000
	durationMax     = time.Hour
	errorSamplesMax = 5
)

type system interface {
	// Everything the measured writes need beyond the document (SeaweedFS's file ids).
	prepareWrites(c *http.Client, o *options) error
	write(c *http.Client, worker int, seq uint64, doc []byte) error
	// Stores o.keys documents for the reads to choose from.
	preload(c *http.Client, o *options, t *documentTemplate) error
	read(c *http.Client, rnd *rand.Rand, sizeBytes int) error
}

type result struct {
	API          string    `json:"api"`
	Op           string    `json:"op"`
	SizeBytes    int       `json:"sizeBytes"`
	Clients      int       `json:"clients"`
	Ops          uint64    `json:"ops"`
	Errors       uint64    `json:"errors"`
	ErrorSamples []string  `json:"errorSamples"`
	Seconds      float64   `json:"seconds"`
	OpsPerSec    float64   `json:"opsPerSec"`
	MBPerSec     float64   `json:"mbPerSec"`
	LatencyMs    latencies `json:"latencyMs"`
	// This process's CPU during the measured phase: a load generator near a full core would be the bottleneck.
	LoadgenCPUSeconds float64 `json:"loadgenCpuSeconds"`
}

type latencies struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.api, "api", "", "strata or seaweedfs")
	fs.StringVar(&o.url, "url", "", "Strata's gateway, or SeaweedFS's master (http://127.0.0.1:9333)")
	fs.StringVar(&o.op, "op", "", "write or read")
	fs.IntVar(&o.sizeBytes, "size", 1024, "bytes per document")
	fs.IntVar(&o.clients, "clients", 16, "concurrent closed-loop clients, one keep-alive connection each")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured time")
	fs.DurationVar(&o.warmup, "warmup", 0, "time the loop runs before measuring")
	fs.IntVar(&o.keys, "keys", 1000, "documents preloaded for reads")
	fs.StringVar(&o.strategy, "strategy", "field_hybrid", "Strata: replication, ec or field_hybrid")
	fs.StringVar(&o.replication, "replication", "000", "SeaweedFS: replica placement (000 one copy, 002 three on one rack)")
	fs.BoolVar(&o.fsync, "fsync", true, "SeaweedFS: ?fsync=true on uploads")
	fs.StringVar(&o.prefix, "prefix", "peers-", "Strata: key prefix")
	fs.Uint64Var(&o.fidsPerClient, "fids-per-client", 0, "SeaweedFS: ids reserved per writer (0: 1,000 per second of warm-up and measure)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "per request")
	fs.Int64Var(&o.seed, "seed", 1, "randomness of the documents and of the read keys")
	fs.StringVar(&o.contentType, "content-type", "application/octet-stream", "SeaweedFS: the uploads' Content-Type (it gzips JSON and text uploads when that saves a tenth)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case o.api != "strata" && o.api != "seaweedfs":
		return nil, fmt.Errorf("-api must be strata or seaweedfs; got %q", o.api)
	case o.url == "":
		return nil, errors.New("-url is required")
	case o.op != "write" && o.op != "read":
		return nil, fmt.Errorf("-op must be write or read; got %q", o.op)
	case o.clients < 1 || o.clients > clientsMax:
		return nil, fmt.Errorf("-clients must be in 1..%d; got %d", clientsMax, o.clients)
	case o.duration <= 0 || o.duration > durationMax:
		return nil, fmt.Errorf("-duration must be in (0, %v]; got %v", durationMax, o.duration)
	case o.warmup < 0 || o.warmup > durationMax:
		return nil, fmt.Errorf("-warmup must be in [0, %v]; got %v", durationMax, o.warmup)
	case o.keys < 1 || o.keys > keysMax:
		return nil, fmt.Errorf("-keys must be in 1..%d; got %d", keysMax, o.keys)
	}
	if o.fidsPerClient == 0 {
		o.fidsPerClient = uint64((o.warmup+o.duration).Seconds()*1000) + 1000
	}
	return o, nil
}

func newBody(doc []byte) io.Reader { return bytes.NewReader(doc) }

// doRequest sends req and reads the whole answer, so the connection goes back to the pool. wantStatus 0 accepts
// any 2xx; wantBytes >= 0 checks the body's length (a read that returns something else is an error).
func doRequest(c *http.Client, req *http.Request, wantStatus int, wantBytes int) (int64, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	ok := resp.StatusCode == wantStatus || (wantStatus == 0 && resp.StatusCode/100 == 2)
	if !ok {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return 0, fmt.Errorf("%s %s: status %d: %s", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(body))
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if wantBytes >= 0 && n != int64(wantBytes) {
		return n, fmt.Errorf("%s %s: %d bytes, not %d", req.Method, req.URL.Path, n, wantBytes)
	}
	return n, nil
}

func newHTTPClient(o *options) *http.Client {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * o.clients,
		MaxIdleConnsPerHost: 4 * o.clients,
		IdleConnTimeout:     90 * time.Second,
		// No Accept-Encoding: both systems are asked for the bytes as stored, not for gzip the client would undo.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	return &http.Client{Transport: transport, Timeout: o.timeout}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

type errorLog struct {
	mu      sync.Mutex
	count   uint64
	samples []string
}

func (e *errorLog) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count++
	if len(e.samples) < errorSamplesMax {
		e.samples = append(e.samples, err.Error())
	}
}

func run(o *options, sys system) (*result, error) {
	c := newHTTPClient(o)
	tmpl, err := newDocumentTemplate(o.sizeBytes, o.seed)
	if err != nil {
		return nil, err
	}
	if o.op == "write" {
		err = sys.prepareWrites(c, o)
	} else {
		err = sys.preload(c, o, tmpl)
	}
	if err != nil {
		return nil, err
	}

	start := time.Now()
	measureFrom := start.Add(o.warmup)
	stopAt := measureFrom.Add(o.duration)
	var cpuAtMeasure atomic.Uint64 // microseconds, set by the timer below
	measuring := time.AfterFunc(o.warmup, func() {
		cpuAtMeasure.Store(uint64(cpuSeconds() * 1e6))
		fmt.Fprintln(os.Stderr, "measuring")
	})
	defer measuring.Stop()

	histograms := make([]histogram, o.clients)
	var (
		ops          atomic.Uint64
		payloadBytes atomic.Uint64
		errs         errorLog
		wg           sync.WaitGroup
	)
	for w := 0; w < o.clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			doc := tmpl.buffer()
			rnd := rand.New(rand.NewSource(o.seed*7919 + int64(w)))
			h := &histograms[w]
			for seq := uint64(0); ; seq++ {
				t0 := time.Now()
				if !t0.Before(stopAt) {
					return
				}
				var err error
				if o.op == "write" {
					tmpl.stamp(doc, seq*uint64(o.clients)+uint64(w)) // unique across writers
					err = sys.write(c, w, seq, doc)
				} else {
					err = sys.read(c, rnd, o.sizeBytes)
				}
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs.add(err)
					continue
				}
				h.record(time.Since(t0))
				ops.Add(1)
				payloadBytes.Add(uint64(o.sizeBytes))
			}
		}(w)
	}
	wg.Wait()
	end := time.Now()
	measuring.Stop()
	cpu := cpuSeconds() - float64(cpuAtMeasure.Load())/1e6

	var all histogram
	for i := range histograms {
		all.merge(&histograms[i])
	}
	seconds := end.Sub(measureFrom).Seconds()
	return &result{
		API:          o.api,
		Op:           o.op,
		SizeBytes:    o.sizeBytes,
		Clients:      o.clients,
		Ops:          ops.Load(),
		Errors:       errs.count,
		ErrorSamples: append([]string{}, errs.samples...),
		Seconds:      seconds,
		OpsPerSec:    float64(ops.Load()) / seconds,
		MBPerSec:     float64(payloadBytes.Load()) / seconds / 1e6,
		LatencyMs: latencies{
			P50:  all.quantileMs(0.50),
			P90:  all.quantileMs(0.90),
			P99:  all.quantileMs(0.99),
			P999: all.quantileMs(0.999),
			Max:  float64(all.maxUsec) / 1000,
		},
		LoadgenCPUSeconds: cpu,
	}, nil
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(2)
	}
	var sys system
	if o.api == "strata" {
		sys, err = newStrataSystem(o)
	} else {
		sys, err = newSeaweedSystem(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	r, err := run(o, sys)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
}
