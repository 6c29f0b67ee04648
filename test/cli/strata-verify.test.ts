import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../internal/cli/strata-cli.js';
import type { VerifyReport } from '../../internal/cli/verify-command.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const BIN = fileURLToPath(new URL('../../cmd/strata/bin.mjs', import.meta.url));

let cluster: TestCluster;

const DOCS: [string, string][] = [
  ['v/repl', 'strategy=replication'],
  ['v/ec', 'strategy=ec'],
  ['v/hybrid', 'strategy=field_hybrid&hot_fields=count'],
];

beforeAll(async () => {
  cluster = await startTestCluster();
  for (const [key, query] of DOCS) {
    // Big and incompressible enough to be erasure coded as six shards (small cold parts stay with the replicas).
    const text = randomBytes(96 * 1024).toString('base64');
    const res = await cluster.write(key, { count: 1, text, nested: { n: 1.50 } }, `&${query}`);
    expect(res.status).toBe(200);
  }
  const other = await cluster.write('w/outside', { a: 1 }, '&strategy=replication');
  expect(other.status).toBe(200);
});

afterAll(async () => {
  await cluster?.destroy();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function strataProcess(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, STRATA_URL: cluster.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function strata(args: string[]): Promise<Run & { progress: string[] }> {
  let stdout = '';
  let stderr = '';
  const progress: string[] = [];
  // Each reading of the clock is 400 ms later: the progress line shows only once a run has lasted a second.
  let nowMs = 0;
  const code = await runCli(args, { STRATA_URL: cluster.url }, {
    now: () => (nowMs += 400),
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    readStdin: async () => '',
    readFile: async () => '',
    progress: (line) => void progress.push(line),
  });
  return { code, stdout, stderr, progress };
}

/** Removes one blob of `key` from its node's store, the way a lost disk sector or an operator's mistake would. */
async function dropBlob(key: string, tier: 'hot' | 'cold', index: number): Promise<void> {
  const stat = (await (await cluster.fetch(`/stat/${encodeURIComponent(key)}`)).json()) as {
    hot: { node: string; blob: string }[];
    cold: { node: string; blob: string }[];
  };
  const ref = stat[tier][index]!;
  const node = cluster.nodes.find((n) => n.id === ref.node)!;
  await node.server!.store.delete(ref.blob);
}

describe('strata verify', () => {
  it('reports every key fully protected and exits 0 on a healthy cluster, as a real process', async () => {
    const run = await strataProcess(['verify', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as VerifyReport;
    expect(report).toMatchObject({ keys_checked: 4, fully_protected: 4, under_protected: 0, unreadable: 0, read: true });
  });

  it('checks only the keys under a prefix', async () => {
    const run = await strata(['verify', 'v/', '--json', '--no-read']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as VerifyReport;
    expect(report.keys_checked).toBe(3);
    expect(report.read).toBe(false);
    expect(run.progress.at(-1)).toBe('');
    expect(run.progress.some((l) => /3 keys checked/.test(l))).toBe(true);
  });

  it('exits 5 and names the key and the lost copy when one shard is gone, while the key still reads back', async () => {
    await dropBlob('v/ec', 'cold', 2);
    const run = await strata(['verify']);
    expect(run.code).toBe(5);
    expect(run.stdout).toMatch(/under-protected\s+1/);
    expect(run.stdout).toMatch(/v\/ec\s+under-protected\s+hot 0\/0, cold 5\/6 \(needs 4\): cold 2@node-\d missing/);
    const read = await cluster.read('v/ec');
    expect(read.status).toBe(200);
  });

  it('reports a key unreadable when fewer shards than the code needs are left', async () => {
    await dropBlob('v/ec', 'cold', 0);
    await dropBlob('v/ec', 'cold', 1);
    const run = await strata(['verify', 'v/', '--json']);
    expect(run.code).toBe(5);
    const report = JSON.parse(run.stdout) as VerifyReport;
    expect(report.unreadable).toBe(1);
    expect(report.problems).toEqual([expect.objectContaining({ key: 'v/ec', kind: 'unreadable' })]);
  });

  it('is fully protected again once the healer has repaired what it can', async () => {
    await dropBlob('v/hybrid', 'hot', 1);
    const before = JSON.parse((await strata(['verify', 'v/hybrid', '--json'])).stdout) as VerifyReport;
    expect(before.under_protected).toBe(1);
    await cluster.healer.runOnce();
    const after = await strata(['verify', 'v/hybrid', '--json']);
    expect(after.code).toBe(0);
    expect((JSON.parse(after.stdout) as VerifyReport).fully_protected).toBe(1);
  });

  it('refuses a verify flag other than true or false on /stat with 400 INVALID_REQUEST', async () => {
    const res = await cluster.fetch('/stat/v%2Frepl?verify=yes');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_REQUEST');
  });

  it('refuses a bad --concurrency with a usage error', async () => {
    const run = await strata(['verify', '--concurrency', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--concurrency must be an integer from 1 to 64/);
  });

  it('says the gateway is unreachable with exit code 4 rather than reporting keys', async () => {
    let stderr = '';
    const code = await runCli(['verify'], { STRATA_URL: 'http://127.0.0.1:9' }, {
      stdout: () => undefined,
      stderr: (t) => void (stderr += t),
      readStdin: async () => '',
      readFile: async () => '',
    });
    expect(code).toBe(4);
    expect(stderr).toMatch(/strata verify:/);
  });
});
