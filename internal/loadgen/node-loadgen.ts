/**
 * The in-repo load generator: the workloads of workloads.js driven by a closed loop of virtual users over an
 * undici connection pool, one keep-alive connection per user, as k6 runs them. Used by `npm run bench` when k6 is
 * not available (and for preloading keys), and by `strata bench`.
 *
 * A request counts as an error when it does not answer 200 or fails on the network; latency percentiles are over
 * successful requests, as k6's strata_*_ms trends are.
 */
import { Pool } from 'undici';
import { keyGroup, preloadRequest, requestStream, type BenchRequest, type KeyGroup, type WorkloadOptions } from './workloads.js';

export const LOADGEN_LIMITS = {
  /** Virtual users at most: each holds one connection. */
  vusMax: 1024,
  /** One run at most; a typo in a duration must not hold a machine for hours. */
  durationMsMax: 3_600_000,
  /** Deadline of one request; a stuck request counts as an error rather than stalling its user. */
  requestTimeoutMs: 60_000,
  /** Concurrent writes while preloading keys. */
  preloadConcurrency: 16,
} as const;

export interface LoadSpec extends Omit<WorkloadOptions, 'vu'> {
  url: string;
  vus: number;
  durationMs: number;
}

/** What one load run measured; the k6 runner produces the same shape. */
export interface LoadResult {
  tool: 'k6' | 'node';
  requests: number;
  errors: number;
  /** Status (or `network`) of the first errors, for diagnosis. */
  errorSamples: string[];
  durationSeconds: number;
  opsPerSec: number;
  /** Body bytes sent plus received per second, in MB (10^6 bytes). */
  mbPerSec: number;
  bytesSent: number;
  bytesReceived: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
}

/** The value below which `p` percent of the sorted samples lie (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))] as number;
}

function validate(spec: LoadSpec): void {
  if (!Number.isInteger(spec.vus) || spec.vus < 1 || spec.vus > LOADGEN_LIMITS.vusMax) {
    throw new RangeError(`vus must be an integer in 1..${LOADGEN_LIMITS.vusMax}; got ${spec.vus}`);
  }
  if (!(spec.durationMs > 0) || spec.durationMs > LOADGEN_LIMITS.durationMsMax) {
    throw new RangeError(`durationMs must be in (0, ${LOADGEN_LIMITS.durationMsMax}]; got ${spec.durationMs}`);
  }
}

async function send(pool: Pool, r: BenchRequest): Promise<{ status: number; bytes: number }> {
  const res = await pool.request({
    method: r.method,
    path: r.path,
    body: r.body,
    headers: r.headers,
    headersTimeout: LOADGEN_LIMITS.requestTimeoutMs,
    bodyTimeout: LOADGEN_LIMITS.requestTimeoutMs,
  });
  let bytes = 0;
  for await (const chunk of res.body) bytes += (chunk as Buffer).length;
  return { status: res.statusCode, bytes };
}

/** Runs `spec` for its duration with `spec.vus` users and returns what it measured. */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  validate(spec);
  const pool = new Pool(spec.url, { connections: spec.vus, pipelining: 1, keepAliveTimeout: 60_000 });
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let requests = 0;
  let errors = 0;
  let bytesSent = 0;
  let bytesReceived = 0;
  // Streams first: building the documents (megabytes of random text for large ones) is not part of the load.
  const streams = Array.from({ length: spec.vus }, (_, i) => requestStream({ ...spec, vu: i + 1 }));
  const started = performance.now();
  const deadline = started + spec.durationMs;
  const user = async (vu: number): Promise<void> => {
    const next = streams[vu - 1]!;
    for (let iter = 0; performance.now() < deadline; iter++) {
      const r = next(iter);
      const t0 = performance.now();
      requests++;
      if (r.body !== null) bytesSent += r.body.length;
      try {
        const { status, bytes } = await send(pool, r);
        bytesReceived += bytes;
        if (status === 200) latencies.push(performance.now() - t0);
        else {
          errors++;
          if (errorSamples.length < 5) errorSamples.push(`${r.method} ${status}`);
        }
      } catch (error) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(`${r.method} network: ${(error as Error).message}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: spec.vus }, (_, i) => user(i + 1)));
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    tool: 'node',
    requests,
    errors,
    errorSamples,
    durationSeconds: seconds,
    opsPerSec: (requests - errors) / seconds,
    mbPerSec: (bytesSent + bytesReceived) / seconds / 1e6,
    bytesSent,
    bytesReceived,
    latencyMs: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? 0 },
  };
}

/** Writes every key of the group a scenario reads or updates (update number 0). Throws on the first failure. */
export async function preloadGroup(url: string, group: KeyGroup, prefix: string): Promise<void> {
  const pool = new Pool(url, { connections: LOADGEN_LIMITS.preloadConcurrency });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < group.keys) {
      const i = next++;
      const { status } = await send(pool, preloadRequest(group, prefix, i));
      if (status !== 200) throw new Error(`preloading ${group.group} key ${i}: HTTP ${status}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(group.keys, LOADGEN_LIMITS.preloadConcurrency) }, worker));
  } finally {
    await pool.close();
  }
}

export { keyGroup };
