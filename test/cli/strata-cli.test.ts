import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../internal/cli/strata-cli.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const BIN = fileURLToPath(new URL('../../cmd/strata/bin.mjs', import.meta.url));

let cluster: TestCluster;
let tmp: string;

beforeAll(async () => {
  [cluster, tmp] = await Promise.all([startTestCluster(), mkdtemp(path.join(os.tmpdir(), 'strata-cli-'))]);
});

afterAll(async () => {
  await cluster?.destroy();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `strata ARGS` as a separate process, the way a script would, against the test cluster by default. */
function strata(args: string[], options: { stdin?: string; url?: string | null } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, STRATA_URL: options.url === undefined ? cluster.url : (options.url ?? '') };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

/** Setup that is not under test goes straight to the gateway: a process start costs far more than a request. */
async function seed(key: string, text: string, query = ''): Promise<void> {
  const res = await cluster.write(key, text, query);
  expect(res.status).toBe(200);
}

/** The CLI without a process: for the exhaustive help and usage matrices. */
async function strataInProcess(args: string[], url: string): Promise<Run> {
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

async function file(name: string, content: string): Promise<string> {
  const p = path.join(tmp, name);
  await writeFile(p, content);
  return p;
}

describe('strata CLI', () => {
  it('puts a document from a file and gets it back with its number text intact', async () => {
    const doc = '{"id":12345678901234567890,"like_count":1,"bio":"long text"}';
    const put = await strata(['put', 'cli:file', await file('doc.json', doc), '--hot', 'like_count', '--strategy', 'field_hybrid']);
    expect(put).toMatchObject({ code: 0, stderr: '' });
    expect(put.stdout).toMatch(/^cli:file: version \d+, field_hybrid, .*hot fields: like_count/);
    const get = await strata(['get', 'cli:file']);
    expect(get).toMatchObject({ code: 0, stdout: `${doc}\n` });
  });

  it('puts a document from stdin and gets selected fields', async () => {
    const put = await strata(['put', 'cli:stdin', '-', '--hot', 'like_count'], { stdin: '{"like_count":7,"name":"Ada","stats":{"views":3}}' });
    expect(put.code).toBe(0);
    const get = await strata(['get', 'cli:stdin', '--fields', 'like_count,/stats/views']);
    expect(get).toMatchObject({ code: 0, stdout: '{"like_count":7,"stats":{"views":3}}\n' });
  });

  it('patches with a merge patch from stdin and a JSON patch from a file', async () => {
    await seed('cli:patch', '{"like_count":1,"name":"Ada"}');
    const merge = await strata(['patch', 'cli:patch', '-', '--merge'], { stdin: '{"like_count":2}' });
    expect(merge.code).toBe(0);
    const ops = await file('ops.json', '[{"op":"replace","path":"/name","value":"Grace"}]');
    expect((await strata(['patch', 'cli:patch', ops, '--json-patch'])).code).toBe(0);
    expect((await strata(['get', 'cli:patch'])).stdout).toBe('{"like_count":2,"name":"Grace"}\n');
  });

  it('lists keys under a prefix, one per line, and as JSON', async () => {
    await Promise.all(['cli:ls/b', 'cli:ls/a', 'cli:ls/c'].map((k) => seed(k, '{"a":1}')));
    const [human, json] = await Promise.all([strata(['ls', 'cli:ls/']), strata(['ls', 'cli:ls/', '--json'])]);
    expect(human).toMatchObject({ code: 0, stdout: 'cli:ls/a\ncli:ls/b\ncli:ls/c\n' });
    expect(JSON.parse(json.stdout)).toEqual({ keys: ['cli:ls/a', 'cli:ls/b', 'cli:ls/c'] });
  });

  it('shows where every hot replica and cold shard lives, with node names and states', async () => {
    // Incompressible and large enough to be erasure coded (small or compressible cold parts stay with the replicas).
    await seed('cli:stat', JSON.stringify({ like_count: 1, body: randomBytes(4000).toString('base64') }), '&hot_fields=like_count');
    const stat = await strata(['stat', 'cli:stat']);
    expect(stat.code).toBe(0);
    expect(stat.stdout).toMatch(/strategy\s+field_hybrid/);
    expect(stat.stdout).toMatch(/hot fields\s+like_count/);
    const rows = stat.stdout.split('\n').filter((l) => /^(hot|cold)\s+\S+\s+(replica|data|parity)\s/.test(l));
    expect(rows).toHaveLength(9);
    for (const row of rows) expect(row).toMatch(/\s(replica|data|parity)\s+node-\d+\s+ok\s/);
    const json = JSON.parse((await strata(['stat', 'cli:stat', '--json'])).stdout);
    expect(json).toMatchObject({ key: 'cli:stat', strategy: 'field_hybrid' });
  });

  it('prints cluster and usage views, and JSON that parses', async () => {
    const [cl, clJson, usage, usageJson] = await Promise.all([
      strata(['cluster']),
      strata(['--json', 'cluster']),
      strata(['usage']),
      strata(['usage', '--json']),
    ]);
    expect(cl.code).toBe(0);
    expect(cl.stdout).toMatch(/6 of 6 healthy/);
    expect(cl.stdout).toMatch(/node-1\s+healthy/);
    expect(JSON.parse(clJson.stdout).nodes).toHaveLength(6);
    expect(usage.stdout).toMatch(/live keys/);
    expect(JSON.parse(usageJson.stdout).live_keys).toBeGreaterThan(0);
  });

  it('gets a document as a JSON envelope that keeps number digits', async () => {
    await seed('cli:envelope', '{"n":12345678901234567890}');
    const get = await strata(['get', 'cli:envelope', '--json']);
    expect(get.stdout).toContain('"doc":{"n":12345678901234567890}');
    expect(JSON.parse(get.stdout)).toMatchObject({ key: 'cli:envelope', strategy: 'field_hybrid', cold_read: true });
  });

  it('removes a key, after which get exits 3 (not found)', async () => {
    await seed('cli:rm', '{"a":1}');
    const removed = await strata(['rm', 'cli:rm', '--json']);
    expect(removed.code).toBe(0);
    expect(JSON.parse(removed.stdout)).toMatchObject({ status: 'ok', key: 'cli:rm' });
    const get = await strata(['get', 'cli:rm']);
    expect(get.code).toBe(3);
    expect(get.stderr).toContain('NOT_FOUND');
  });

  it('exits 1 with the API code when the server rejects the input', async () => {
    const put = await strata(['put', 'cli:bad', '-'], { stdin: '[1,2]' });
    expect(put.code).toBe(1);
    expect(put.stderr).toContain('NOT_AN_OBJECT');
  });

  it('exits 2 on bad usage without contacting the server', async () => {
    const runs = await Promise.all([strata(['frobnicate']), strata(['get', 'a', '--nope'])]);
    for (const run of runs) {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stdout).toBe('');
    }
    expect(runs[1]!.stderr).toContain("Run 'strata get --help'");
    // The rest of the matrix runs in-process: the same code path minus a process start each.
    const matrix = [
      [],
      ['get'],
      ['get', 'a', 'b'],
      ['put', 'k', '-', '--strategy', 'raid5'],
      ['put', 'k', path.join(tmp, 'missing.json')],
      ['put', 'k', '-', '--hot', 'a,,b'],
      ['patch', 'k', '-', '--merge', '--json-patch'],
      ['ls', '--limit', '0'],
      ['cluster', 'extra'],
      ['get', 'k', '--url', 'ftp://example'],
    ];
    for (const args of matrix) {
      const run = await strataInProcess(args, 'http://127.0.0.1:9');
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
    }
  });

  it('exits 4 when the gateway cannot be reached', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const run = await strata(['get', 'k', '--url', `http://127.0.0.1:${port}`], { url: null });
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('cannot reach the gateway');
  });

  it('prints its version, the package\'s, with --version anywhere on the line', async () => {
    const version = (JSON.parse(await readFile(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;
    for (const args of [['--version'], ['-V'], ['get', '--version']]) {
      const run = await strataInProcess(args, cluster.url);
      expect(run, args.join(' ')).toMatchObject({ code: 0, stdout: `strata ${version}\n`, stderr: '' });
    }
  });

  it('ends quietly with 0 when the reader of its output goes away (strata get | head)', async () => {
    const key = 'cli/epipe';
    await seed(key, JSON.stringify({ body: 'x'.repeat(1_000_000) }));
    const child = spawn(process.execPath, [BIN, 'get', key], { env: { ...process.env, STRATA_URL: cluster.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before the document is written
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('prints help for every command and a top-level help with the exit codes', async () => {
    const top = await strata(['--help']);
    expect(top.code).toBe(0);
    for (const text of ['Exit codes', '3  not found', '4  unavailable', 'STRATA_URL']) expect(top.stdout).toContain(text);
    for (const command of ['put', 'get', 'patch', 'rm', 'ls', 'stat', 'cluster', 'usage']) {
      const help = await strataInProcess([command, '--help'], 'http://127.0.0.1:9');
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`Usage: strata ${command}`);
    }
    expect((await strata(['help', 'stat'])).stdout).toContain('Usage: strata stat KEY');
  });
});
