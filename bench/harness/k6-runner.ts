/**
 * Runs one load with k6 and benchmark.js (repo root) and turns k6's summary (written by benchmark.js's
 * handleSummary) into the LoadResult the in-repo generator produces. The keys are preloaded by the harness, so k6
 * runs with PRELOAD=0 and its whole run is the load.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSpec } from '../../internal/loadgen/node-loadgen.js';
import { OutputTail } from '../../scripts/infra/process-utils.js';
import type { BenchProcess } from './target.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** k6 exits 99 when a threshold failed: the run itself is fine and its figures are recorded. */
const K6_THRESHOLDS_FAILED = 99;

interface K6Summary {
  requests: number;
  errors: number;
  durationSeconds: number;
  bytesSent: number;
  bytesReceived: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number } | null;
}

export async function runK6Load(k6: string, spec: LoadSpec, onProcess: (p: BenchProcess | null) => void): Promise<LoadResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-k6-'));
  const summaryFile = path.join(dir, 'summary.json');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STRATA_URL: spec.url,
    SCENARIO: spec.scenario,
    STRATEGY: spec.strategy,
    DOC: spec.doc,
    DURATION: `${Math.max(1, Math.round(spec.durationMs))}ms`,
    VUS: String(spec.vus),
    KEYS: String(spec.keys),
    IOT_KEYS: String(spec.iotKeys),
    YCSB_KEYS: String(spec.ycsbKeys),
    PREFIX: spec.prefix,
    SEED: spec.seed,
    PRELOAD: '0',
    SUMMARY: summaryFile,
    // Thresholds are for people running k6 by hand; the harness records whatever happened.
    P99_MS_MAX: '600000',
    ERROR_RATE_MAX: '1',
    K6_NO_USAGE_REPORT: 'true',
  };
  try {
    const tail = new OutputTail(4096);
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(k6, ['run', '--quiet', '--no-color', 'benchmark.js'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      if (child.pid !== undefined) onProcess({ name: 'k6', pid: child.pid });
      child.stdout.on('data', (c: Buffer) => tail.push(c));
      child.stderr.on('data', (c: Buffer) => tail.push(c));
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    onProcess(null);
    if (code !== 0 && code !== K6_THRESHOLDS_FAILED) throw new Error(`k6 exited with ${code}:\n${tail.text()}`);
    const s = JSON.parse(await readFile(summaryFile, 'utf8')) as K6Summary;
    const seconds = s.durationSeconds;
    return {
      tool: 'k6',
      requests: s.requests,
      errors: s.errors,
      errorSamples: [],
      durationSeconds: seconds,
      opsPerSec: (s.requests - s.errors) / seconds,
      mbPerSec: (s.bytesSent + s.bytesReceived) / seconds / 1e6,
      bytesSent: s.bytesSent,
      bytesReceived: s.bytesReceived,
      latencyMs: s.latencyMs ?? { p50: 0, p95: 0, p99: 0, max: 0 },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
