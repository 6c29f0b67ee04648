/**
 * The `npm run bench` harness in a tiny configuration against a real all-in-one child process: the JSON result
 * must hold the machine, the settings and every scenario of benchmarks.md with every figure, and the ratio bars.
 * Speed is not checked: a tiny run on a shared machine says nothing about it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBench } from '../../bench/harness/run.js';
import { parseBenchArgs } from '../../bench/harness/settings.js';
import type { BenchResult } from '../../bench/harness/result.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const EXPECTED_IDS = [
  ...['small', 'iot', 'large'].flatMap((doc) => ['replication', 'ec', 'field_hybrid'].map((s) => `write/${s}/${doc}`)),
  'hot-patch/small',
  'hot-post/small',
  'hot-patch/iot',
  'hot-post/iot',
  'read/replication',
  'read/ec',
  'read/field_hybrid',
  'project/field_hybrid',
  'ycsb-a',
  'ycsb-b',
  'degraded/read/replication',
  'degraded/read/ec',
  'degraded/read/field_hybrid',
  'degraded/project/field_hybrid',
  'heal',
  'slow-clients',
];

describe('bench harness', () => {
  it('writes a JSON result with every scenario, its figures, the machine, the settings and the bars', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-bench-test-'));
    dirs.push(dir);
    const out = path.join(dir, 'result.json');
    const settings = parseBenchArgs([
      '--loadgen', 'node', '--duration', '0.2', '--vus', '2', '--vus-large', '1',
      '--keys', '4', '--iot-keys', '2', '--ycsb-keys', '10', '--heal-mib', '1',
      '--slow-clients', '4', '--slow-budget-mib', '20', '--out', out,
    ]);
    const lines: string[] = [];
    const { file } = await runBench(settings, { log: (l) => lines.push(l) }, 'test');
    expect(file).toBe(out);
    const result = JSON.parse(await readFile(out, 'utf8')) as BenchResult;

    expect(result.mode).toBe('all-in-one');
    expect(result.machine.cores).toBeGreaterThan(0);
    expect(result.machine.memoryBytes).toBeGreaterThan(0);
    expect(result.machine.cpuModel.length).toBeGreaterThan(0);
    expect(result.settings).toMatchObject({ durationMs: 200, vus: 2, keys: 4, ycsbKeys: 10, healBytes: 1024 ** 2 });
    expect(result.loadGenerator.tool).toBe('node');

    expect(result.scenarios.map((s) => s.id)).toEqual(EXPECTED_IDS);
    for (const s of result.scenarios) {
      for (const field of ['opsPerSec', 'mbPerSec', 'errors', 'requests', 'durationSeconds'] as const) expect(typeof s[field], `${s.id} ${field}`).toBe('number');
      expect(Object.keys(s.latencyMs).sort()).toEqual(['max', 'p50', 'p95', 'p99']);
      expect(s.requests, s.id).toBeGreaterThan(0);
      expect(s.errors, `${s.id}: ${s.errorSamples.join('; ')}`).toBe(0);
      expect(s.peakRssBytes['all-in-one'], s.id).toBeGreaterThan(0);
    }
    for (const s of result.scenarios.filter((r) => r.group === 5)) expect(s.nodesDown).toBe(2);
    for (const s of result.scenarios.filter((r) => r.group <= 5)) expect(s.memoryAtEnd?.heapUsedBytes, s.id).toBeGreaterThan(0);
    // Counted by the nodes; whether it is 0 is the bar's business (reported as PASS/FAIL), not this test's.
    for (const s of result.scenarios.filter((r) => r.group === 2)) expect(typeof s.coldBytesWritten, s.id).toBe('number');
    const heal = result.scenarios.find((s) => s.id === 'heal')!;
    expect(heal.heal?.healed).toBe(true);
    expect(heal.heal?.bytesRebuilt).toBeGreaterThan(0);

    // 8 MiB documents against a 20 MiB body budget: two stalled readers are served, the others refused, and the
    // small writes beside them are never refused (no errors above); the idle timeout gives the bytes back.
    const slow = result.scenarios.find((s) => s.id === 'slow-clients')!.slowClients!;
    expect(slow).toMatchObject({ stalledClients: 4, served: 2, refused: 2, unanswered: 0, budgetBytes: 20 * 1024 ** 2 });
    expect(slow.heldBytes).toBeGreaterThanOrEqual(2 * 8 * 1024 ** 2);
    expect(slow.releasedAfterSeconds).not.toBeNull();

    expect(result.bars).toHaveLength(5);
    for (const bar of result.bars) expect(bar.measured, bar.figure).not.toBeNull();
    for (const bar of result.bars) expect(typeof bar.pass, bar.figure).toBe('boolean');
    expect(result.aims.map((a) => a.figure)).toContain('repair, MB/s rebuilt');
  }, 300_000);

  it('rejects options outside their limits with a message naming the option', () => {
    expect(() => parseBenchArgs(['--mode', 'cloud'])).toThrow(/--mode/);
    expect(() => parseBenchArgs(['--vus', '0'])).toThrow(/--vus/);
    expect(() => parseBenchArgs(['--only', '8'])).toThrow(/--only/);
    expect(() => parseBenchArgs(['--slow-clients', '0'])).toThrow(/--slow-clients/);
    expect(() => parseBenchArgs(['--mode', 'cluster', '--cpu-prof', '/tmp/p'])).toThrow(/--cpu-prof/);
  });
});
