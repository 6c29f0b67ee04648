/**
 * `npm run verify:storage` run for real (a child process, self-contained, one document per row) and its bounds
 * asserted: for every size and strategy the bytes on disk per document stay within 3x the document plus the
 * fixed per-document overhead, iot documents stay at <= 1.55x, large incompressible cold parts cost about 1.5x,
 * compressible ones much less. The bound checker itself must catch a row that breaks a bound. The file-size
 * measurement runs for real too, on two small rows: its figures add up and its exit code follows its goals (the
 * goals themselves are checked in ./storage-goals.test.ts; a handful of documents cannot decide them).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { FileSizeResult } from '../../internal/efficiency/file-size-measurement.js';
import { STORAGE_GOALS, type GoalResult } from '../../internal/efficiency/storage-goals.js';
import { VERIFY_LIMITS, checkBounds, sizedDocument, type Row, type VerifyResult } from '../../internal/efficiency/verify-storage.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function runVerify(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'scripts/verify-storage.ts'), ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const row = (over: Partial<Row>): Row => ({
  scenario: 'size',
  strategy: 'ec',
  payload: 'incompressible',
  document_bytes: 1000,
  documents: 1,
  logical_bytes: 1000,
  payload_bytes: 1500,
  amplification: 1.5,
  needle_overhead_bytes: 500,
  index_bytes: 100,
  manifest_bytes: 1000,
  overhead_bytes: 1600,
  disk_bytes: 3100,
  ...over,
});

describe('verify:storage', () => {
  it('holds every bound for 200 B to 8 MiB documents of every strategy, compressible or not, and for iot documents', async () => {
    const { code, stdout, stderr } = await runVerify(['--self-contained', '--measure', 'bounds', '--bounds-docs', '1', '--iot-docs', '2', '--json']);
    expect(code, stderr).toBe(0);
    const result = JSON.parse(stdout) as VerifyResult & { problems: string[] };
    expect(result.problems).toEqual([]);
    const sizes = new Set(result.rows.filter((r) => r.scenario === 'size').map((r) => r.document_bytes));
    expect([...sizes].sort((a, b) => a - b)).toEqual([...VERIFY_LIMITS.documentSizes]);
    expect(result.rows).toHaveLength(VERIFY_LIMITS.documentSizes.length * 2 * 3 + 3);
    const F = result.fixed_overhead_bytes;
    expect(F).toBeGreaterThan(0);
    expect(F).toBeLessThanOrEqual(VERIFY_LIMITS.fixedOverheadBytesMax);
    for (const r of result.rows) {
      expect(r.disk_bytes, `${r.document_bytes} ${r.payload} ${r.strategy}`).toBeLessThanOrEqual(3 * r.document_bytes + F + 1);
      if (r.strategy === 'replication') expect(r.amplification).toBeCloseTo(3, 2);
    }
    for (const r of result.rows.filter((x) => x.strategy !== 'replication')) {
      if (r.scenario === 'iot') expect(r.amplification).toBeLessThanOrEqual(1.55);
      if (r.scenario === 'size' && r.document_bytes >= 800 * 1024) {
        if (r.payload === 'incompressible') {
          expect(r.amplification).toBeGreaterThanOrEqual(1.49);
          expect(r.amplification).toBeLessThanOrEqual(1.55);
        } else {
          expect(r.amplification).toBeLessThan(1);
        }
      }
    }
  }, 180_000);

  it('measures file sizes per row with the healer settling the WAL, and exits 1 exactly when a goal is broken', async () => {
    const docs = 20;
    const { code, stdout, stderr } = await runVerify([
      '--self-contained', '--measure', 'file-sizes', '--docs', String(docs), '--rows', 'replication:1024,ec:4096', '--json',
    ]);
    expect(code === 0 || code === 1, stderr).toBe(true);
    const out = JSON.parse(stdout) as { file_sizes: FileSizeResult & { goals: GoalResult[] }; problems: string[]; rows?: unknown };
    expect(out.rows).toBeUndefined();
    const { rows, goals } = out.file_sizes;
    expect(rows.map((r) => `${r.strategy}:${r.document_bytes}:${r.documents}`)).toEqual([`replication:1024:${docs}`, `ec:4096:${docs}`]);
    const [replication, ec] = rows;
    expect(replication!.layout).toBe('copies');
    // At least what the documents made: a healer round may add a blob not yet collected, as in a running cluster.
    expect(replication!.blobs).toBeGreaterThanOrEqual(3 * docs);
    expect(replication!.payload_bytes_per_doc).toBeGreaterThanOrEqual(3 * 1024);
    expect(ec!.layout).toBe('shards');
    expect(ec!.blobs).toBeGreaterThanOrEqual(6 * docs);
    for (const r of rows) {
      const files = Object.values(r.files_per_doc).reduce((a, b) => a + b, 0);
      expect(r.file_bytes_per_doc).toBeCloseTo(files, 0);
      expect(r.fixed_overhead_bytes_per_doc).toBeCloseTo(r.file_bytes_per_doc - r.payload_bytes_per_doc, 0);
      expect(r.fixed_overhead_bytes_per_doc).toBeGreaterThan(0);
      expect(r.disk_per_logical).toBeCloseTo(r.file_bytes_per_doc / r.document_bytes, 2);
      expect(r.index_memory_bytes_per_blob).toBeGreaterThan(0);
      // The healer ran as in production and its intent resolver settled every entry before the row ended.
      expect(r.wal_consumed).toBe(true);
    }
    const measured = goals.filter((g) => g.status !== 'NOT MEASURED').map((g) => g.goal);
    expect(measured).toEqual(expect.arrayContaining(['fixed overhead, replication 1 KiB (copies)', 'fixed overhead, ec 4 KiB (sharded)', 'disk/logical, ec 4 KiB']));
    expect(goals).toHaveLength(STORAGE_GOALS.length + 1);
    const failed = goals.filter((g) => g.status === 'FAIL');
    expect(out.problems).toHaveLength(failed.length);
    expect(code).toBe(failed.length > 0 ? 1 : 0);
  }, 300_000);

  it('refuses file sizes without a data directory of its own, before it measures anything', async () => {
    const { code, stderr } = await runVerify(['--url', 'http://127.0.0.1:1', '--measure', 'file-sizes']);
    expect(code).toBe(2);
    expect(stderr).toContain('needs --self-contained');
  });

  it('writes documents of exactly the sizes it reports, as valid JSON', () => {
    for (const size of VERIFY_LIMITS.documentSizes.filter((s) => s < 1024 * 1024)) {
      for (const kind of ['compressible', 'incompressible'] as const) {
        for (let seed = 0; seed < 5; seed++) {
          const doc = sizedDocument(size, kind, seed);
          expect(Buffer.byteLength(doc), `${size} ${kind} ${seed}`).toBe(size);
          expect(() => JSON.parse(doc)).not.toThrow();
        }
      }
    }
  });

  it('reports a row that costs more than 3x plus the fixed overhead, an iot row above 1.55x and a large cold row above 1.55x', () => {
    const result: VerifyResult = {
      run: 'x',
      fixed_overhead_bytes: 1600,
      rows: [
        row({}),
        row({ disk_bytes: 3 * 1000 + 1601, strategy: 'replication' }),
        row({ scenario: 'iot', amplification: 1.6, strategy: 'field_hybrid' }),
        row({ document_bytes: 800 * 1024, logical_bytes: 800 * 1024, amplification: 1.7 }),
      ],
    };
    const problems = checkBounds(result);
    expect(problems).toHaveLength(3);
    expect(checkBounds({ ...result, rows: [row({})], fixed_overhead_bytes: VERIFY_LIMITS.fixedOverheadBytesMax + 1 })).toHaveLength(1);
    expect(checkBounds({ ...result, rows: [row({})] })).toEqual([]);
  });
});
