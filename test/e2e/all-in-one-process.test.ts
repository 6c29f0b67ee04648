/**
 * The real entry point as a newcomer runs it: `npm start` (cmd/all-in-one, compiled to dist/) as a child process, a
 * write, Ctrl-C, a second start on the same data directory, and the document is still there.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';
import { fetchOnFreshConnection } from '../helpers/fresh-connection.js';
import { freePort, spawnStrata, stopWith, waitForReady, type StrataChild } from '../helpers/processes.js';

/** As `npm start` runs it: the compiled entry point (dist/), in one process. */
function allInOne(env: NodeJS.ProcessEnv): StrataChild {
  return spawnStrata(['cmd/all-in-one/main.ts'], env, 'compiled');
}

/** The command lines of the processes `pid` started (from /proc): tsx would show as an esbuild service child. */
async function childCommandLines(pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    if (new RegExp(`^PPid:\\s+${pid}$`, 'm').test(status)) {
      out.push((await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ').trim());
    }
  }
  return out;
}

async function start(dataDir: string, port: number): Promise<StrataChild> {
  const started = allInOne({ ...process.env, STRATA_DATA_DIR: dataDir, STRATA_PORT: String(port), STRATA_NODE_PORT_BASE: '0', STRATA_LOG_LEVEL: 'warn' });
  await waitForReady(started, 'the all-in-one', 'Press Ctrl-C to stop.', CONDITION_TIMEOUT_MS);
  return started;
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
    // Compiled JavaScript, no TypeScript loader: tsx would show as its esbuild service, a child process.
    expect(await childCommandLines(first.child.pid!)).toEqual([]);
    const doc = '{"like_count":1,"n":12345678901234567890,"text":"survives"}';
    const put = await fetchOnFreshConnection(`http://127.0.0.1:${port}/write?key=e2e%2Fdoc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: doc,
    });
    expect(put.status).toBe(200);
    const { version } = (await put.json()) as { version: string };
    expect(await stopWith(first, 'SIGINT')).toBe(0);
    expect(first.output()).toContain('SIGINT received, shutting down');

    const second = await start(dataDir, port);
    const read = await fetchOnFreshConnection(`http://127.0.0.1:${port}/read/e2e%2Fdoc`);
    expect(read.status).toBe(200);
    expect(await read.text()).toBe(doc);
    expect(read.headers.get('x-strata-version')).toBe(version);
    expect(await stopWith(second, 'SIGINT')).toBe(0);
  });

  it('refuses a bad configuration with one line naming the variable', async () => {
    const refused = allInOne({ ...process.env, STRATA_PORT: 'eighty' });
    expect(await refused.exited).toBe(2);
    expect(refused.output()).toContain('STRATA_PORT must be a whole number');
  });
});
