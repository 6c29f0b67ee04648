/**
 * The real entry point as a newcomer runs it: `npm start` (cmd/all-in-one) as a child process, a write, Ctrl-C,
 * a second start on the same data directory, and the document is still there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../helpers/wait.js';
import { fetchOnFreshConnection } from '../helpers/fresh-connection.js';

const root = path.resolve(import.meta.dirname, '../..');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Started {
  child: ChildProcess;
  output: () => string;
}

async function start(dataDir: string, port: number): Promise<Started> {
  const child = spawn(process.execPath, [path.join(root, 'node_modules/tsx/dist/cli.mjs'), 'cmd/all-in-one/main.ts'], {
    cwd: root,
    env: { ...process.env, STRATA_DATA_DIR: dataDir, STRATA_PORT: String(port), STRATA_NODE_PORT_BASE: '0', STRATA_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await waitUntil('the all-in-one to start', () => {
    if (child.exitCode !== null) throw new Error(`all-in-one exited early:\n${out}`);
    return out.includes('Press Ctrl-C to stop.');
  }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${out}`);
  });
  return { child, output: () => out };
}

async function stop(started: Started): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => started.child.once('exit', (code) => resolve(code)));
  started.child.kill('SIGINT');
  return exited;
}

describe('npm start (all-in-one process)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('prints where everything listens, stops cleanly on Ctrl-C and keeps data across a restart', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-e2e-'));
    dirs.push(dataDir);
    const port = await freePort();
    const first = await start(dataDir, port);
    expect(first.output()).toContain(`Gateway: http://127.0.0.1:${port}`);
    expect(first.output()).toMatch(/storage node-6: http:\/\/127\.0\.0\.1:\d+/);
    expect(first.output()).toContain('share this disk');
    const doc = '{"like_count":1,"n":12345678901234567890,"text":"survives"}';
    const put = await fetchOnFreshConnection(`http://127.0.0.1:${port}/write?key=e2e%2Fdoc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: doc,
    });
    expect(put.status).toBe(200);
    const { version } = (await put.json()) as { version: string };
    expect(await stop(first)).toBe(0);
    expect(first.output()).toContain('SIGINT received, shutting down');

    const second = await start(dataDir, port);
    const read = await fetchOnFreshConnection(`http://127.0.0.1:${port}/read/e2e%2Fdoc`);
    expect(read.status).toBe(200);
    expect(await read.text()).toBe(doc);
    expect(read.headers.get('x-strata-version')).toBe(version);
    expect(await stop(second)).toBe(0);
  });

  it('refuses a bad configuration with one line naming the variable', async () => {
    const child = spawn(process.execPath, [path.join(root, 'node_modules/tsx/dist/cli.mjs'), 'cmd/all-in-one/main.ts'], {
      cwd: root,
      env: { ...process.env, STRATA_PORT: 'eighty' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(err).toContain('STRATA_PORT must be a whole number');
  });
});
