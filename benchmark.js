/**
 * Strata's k6 benchmark: the scenarios of shared/design/benchmarks.md against a running gateway (or nginx in
 * front of several). The documents, key choice and request shapes come from internal/loadgen/workloads.js, which the
 * in-repo load generator of `npm run bench` uses too, so both generators send the same requests.
 *
 *   k6 run -e STRATA_URL=http://127.0.0.1:8000 -e SCENARIO=write -e STRATEGY=field_hybrid -e DOC=small benchmark.js
 *
 * `npm run bench` builds k6 (scripts/infra/k6.ts: `go install go.k6.io/k6@<pinned>` into ~/.cache/strata/k6) and
 * runs this script once per scenario; it also stops and restarts storage nodes for the degraded and heal
 * scenarios, which a k6 script cannot do. Run by hand, `degraded` is `read` or `project` after stopping two nodes
 * yourself, and `heal-write` is the write phase of the heal scenario.
 *
 * Environment (all optional):
 *   STRATA_URL   gateway address (default http://127.0.0.1:8000)
 *   SCENARIO     write | hot-patch | hot-post | read | project | ycsb-a | ycsb-b | heal-write   (MODE is an alias)
 *   STRATEGY     replication | ec | field_hybrid (default field_hybrid): write and read scenarios
 *   DOC          small | iot | large (default small): write, hot-patch, hot-post, heal-write
 *   DURATION     k6 duration (default 10s); VUS: virtual users (default 32)
 *   KEYS         keys per read / small-update group (default 1000); IOT_KEYS (default 100); YCSB_KEYS (default 10000)
 *   PREFIX       key prefix of this run (default bench/k6-<time>); PRELOAD=0 when the keys already exist
 *   SEED         seed of the PRNGs (default strata)
 *   SUMMARY      where handleSummary writes its JSON (default bench-results/k6-<scenario>.json)
 *   P99_MS_MAX   latency threshold on p99 (default 1000); ERROR_RATE_MAX (default 0.01)
 */
import http from 'k6/http';
import { Counter, Rate, Trend } from 'k6/metrics';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
import { bulkText, documents, keyGroup, preloadRequest, requestStream } from './internal/loadgen/workloads.js';

const env = __ENV;
const BASE = (env.STRATA_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const SCENARIO = env.SCENARIO || env.MODE || 'write';
// Init code runs once per VU, each at its own time: a time-based default prefix is fixed in setup() and handed on.
const PREFIX = env.PREFIX || '';
const OPTIONS = {
  scenario: SCENARIO,
  strategy: env.STRATEGY || 'field_hybrid',
  doc: env.DOC || 'small',
  keys: Number(env.KEYS || 1000),
  iotKeys: Number(env.IOT_KEYS || 100),
  ycsbKeys: Number(env.YCSB_KEYS || 10000),
  seed: env.SEED || 'strata',
};
// The megabytes of random text of iot and large documents: generated once per run (k6's JavaScript is slow at
// it), shared by every VU, and turned into the document factory in the init context so it is not measured.
const DOC_KIND = (keyGroup(OPTIONS) || { kind: OPTIONS.doc }).kind;
if (DOC_KIND !== 'small') documents(DOC_KIND, new SharedArray(`bulk-${DOC_KIND}`, () => [bulkText(DOC_KIND)])[0]);
else documents('small');

/** Requests in flight at once while preloading keys in setup(). */
const PRELOAD_BATCH = 16;

const errors = new Counter('strata_errors');
const errorRate = new Rate('strata_error_rate');
/** Body bytes (k6's data_sent and data_received also count setup's preload and the headers). */
const bodyBytesSent = new Counter('strata_body_bytes_sent');
const bodyBytesReceived = new Counter('strata_body_bytes_received');
const opLatency = {
  read: new Trend('strata_read_ms', true),
  write: new Trend('strata_write_ms', true),
  update: new Trend('strata_update_ms', true),
};

export const options = {
  scenarios: {
    load: { executor: 'constant-vus', vus: Number(env.VUS || 32), duration: env.DURATION || '10s', gracefulStop: '30s' },
  },
  thresholds: {
    strata_error_rate: [`rate<=${Number(env.ERROR_RATE_MAX || 0.01)}`],
    'http_req_duration{phase:load}': [`p(99)<${Number(env.P99_MS_MAX || 1000)}`],
    // These only create the load phase's sub-metrics (without setup's preload requests) for the summary.
    'http_reqs{phase:load}': ['count>=0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(50)', 'p(95)', 'p(99)', 'max'],
  // The iot and large documents are big; a 10 s default would fail slow writes under load on 2 cores.
  setupTimeout: '600s',
  discardResponseBodies: false,
};

export function setup() {
  const prefix = PREFIX || `bench/k6-${Date.now()}`;
  const group = keyGroup(OPTIONS);
  if (group === null || env.PRELOAD === '0') return { prefix };
  for (let start = 0; start < group.keys; start += PRELOAD_BATCH) {
    const batch = [];
    for (let i = start; i < Math.min(group.keys, start + PRELOAD_BATCH); i++) {
      const r = preloadRequest(group, prefix, i);
      batch.push({ method: r.method, url: BASE + r.path, body: r.body, params: { headers: r.headers, tags: { phase: 'preload' } } });
    }
    for (const res of http.batch(batch)) {
      if (res.status !== 200) throw new Error(`preload failed: HTTP ${res.status} ${res.body}`);
    }
  }
  return { prefix };
}

let next = null;

export default function (data) {
  if (next === null) next = requestStream({ ...OPTIONS, prefix: data.prefix, vu: exec.vu.idInTest });
  const r = next(exec.vu.iterationInScenario);
  const res = http.request(r.method, BASE + r.path, r.body, { headers: r.headers, tags: { phase: 'load', op: r.op } });
  const failed = res.status !== 200;
  if (r.body !== null) bodyBytesSent.add(r.body.length);
  if (typeof res.body === 'string') bodyBytesReceived.add(res.body.length);
  errorRate.add(failed);
  if (failed) errors.add(1, { status: String(res.status) });
  else opLatency[r.op].add(res.timings.duration);
}

export function handleSummary(data) {
  const m = data.metrics;
  const trend = m['http_req_duration{phase:load}'] || m.http_req_duration;
  const reqs = m['http_reqs{phase:load}'] || m.http_reqs;
  const seconds = data.state.testRunDurationMs / 1000;
  const summary = {
    tool: 'k6',
    scenario: SCENARIO,
    options: { ...OPTIONS, prefix: data.setup_data ? data.setup_data.prefix : PREFIX },
    vus: Number(env.VUS || 32),
    durationSeconds: seconds,
    requests: reqs ? reqs.values.count : 0,
    errors: m.strata_errors ? m.strata_errors.values.count : 0,
    latencyMs: trend ? { p50: trend.values['p(50)'], p95: trend.values['p(95)'], p99: trend.values['p(99)'], max: trend.values.max } : null,
    bytesSent: m.strata_body_bytes_sent ? m.strata_body_bytes_sent.values.count : 0,
    bytesReceived: m.strata_body_bytes_received ? m.strata_body_bytes_received.values.count : 0,
    thresholdsPassed: Object.keys(m).every((name) => !m[name].thresholds || Object.values(m[name].thresholds).every((t) => t.ok)),
    metrics: m,
  };
  const out = env.SUMMARY || `bench-results/k6-${SCENARIO}.json`;
  const line =
    `${SCENARIO}: ${summary.requests} requests in ${seconds.toFixed(1)} s, ${summary.errors} errors` +
    (summary.latencyMs ? `, p50 ${summary.latencyMs.p50.toFixed(2)} ms, p95 ${summary.latencyMs.p95.toFixed(2)} ms, p99 ${summary.latencyMs.p99.toFixed(2)} ms\n` : '\n');
  return { [out]: JSON.stringify(summary, null, 2), stdout: line };
}
