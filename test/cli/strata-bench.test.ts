/**
 * `strata bench`: a short load against a running gateway, printed as a table or as JSON. Figures are not checked
 * (speed is never asserted); what is checked is that every scenario ran against the real gateway without errors.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../internal/cli/strata-cli.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startTestCluster();
});

afterAll(async () => {
  await cluster?.destroy();
});

async function strata(args: string[], url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { STRATA_URL: url }, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    readStdin: async () => '',
    readFile: (p) => readFile(p, 'utf8'),
  });
  return { code, stdout, stderr };
}

describe('strata bench', () => {
  it('runs every scenario against the gateway and prints one table row each', async () => {
    const run = await strata(['bench', '--duration', '0.3', '--vus', '4', '--keys', '20'], cluster.url);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^SCENARIO\s+OPS\/S\s+MB\/S\s+P50 MS\s+P95 MS\s+P99 MS\s+ERRORS$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['write', 'read', 'project', 'hot-patch', 'ycsb-b']);
    for (const line of lines.slice(1)) expect(line.split(/\s+/).at(-1), line).toBe('0');
    // It cleans up after itself: no document of the run is left under the bench's prefix.
    expect(run.stderr).toMatch(/removed the [1-9]\d* documents it wrote \(under bench\/cli-\d+\/\)/);
    const left = await (await cluster.fetch('/list?prefix=bench%2F&limit=1000')).json() as { keys: string[] };
    expect(left.keys).toEqual([]);
  });

  it('prints JSON with ops/s and p50/p95/p99 per scenario', async () => {
    const run = await strata(['bench', '--json', '--scenarios', 'read,hot-patch', '--duration', '0.2', '--vus', '2', '--keys', '5'], cluster.url);
    expect(run.code, run.stderr).toBe(0);
    const body = JSON.parse(run.stdout) as { results: { scenario: string; requests: number; errors: number; opsPerSec: number; latencyMs: Record<string, number> }[] };
    expect(body.results.map((r) => r.scenario)).toEqual(['read', 'hot-patch']);
    for (const r of body.results) {
      expect(r.requests).toBeGreaterThan(0);
      expect(r.errors).toBe(0);
      expect(Object.keys(r.latencyMs).sort()).toEqual(['max', 'p50', 'p95', 'p99']);
    }
  });

  it('exits 2 on an unknown scenario or a bad duration without sending load', async () => {
    for (const args of [['bench', '--scenarios', 'nope'], ['bench', '--duration', '0'], ['bench', '--vus', 'many']]) {
      const run = await strata(args, 'http://127.0.0.1:9');
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
    }
  });

  it('exits 4 when the gateway cannot be reached', async () => {
    const run = await strata(['bench', '--duration', '0.2'], 'http://127.0.0.1:9');
    expect(run.code).toBe(4);
  });
});
