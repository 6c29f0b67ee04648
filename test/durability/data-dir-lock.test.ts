/**
 * One process owns a data directory (internal/datadir/dir-lock.ts): a second all-in-one on the same directory, a
 * storage-node process on a node directory the all-in-one holds, and recover:manifests on a locked directory all
 * exit non-zero at once with a message naming the directory, while the owner keeps serving its data; a SIGKILLed
 * owner does not block a restart; a second opener in the same process is refused too.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DirLock } from '../../internal/datadir/dir-lock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { freePort, spawnStrata, stopWith, waitForReady, type StrataChild } from '../helpers/processes.js';

const START_DEADLINE_MS = 60_000;
/** Tests that start processes: each start may take its whole deadline on a busy machine. */
const PROCESS_TEST_TIMEOUT_MS = 4 * START_DEADLINE_MS;

const dirs: string[] = [];
const children: ChildProcess[] = [];
const clusters: TestCluster[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const c of clusters.splice(0)) await c.stop().catch(() => undefined);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-lock-'));
  dirs.push(dir);
  return dir;
}

// tsx as a loader in the one process (spawnStrata's default, not its CLI, which runs the program in a child): a
// SIGKILL must reach the process that holds the lock.
function run(args: string[], env: Record<string, string>): StrataChild {
  const started = spawnStrata(args, { ...process.env, STRATA_LOG_LEVEL: 'warn', ...env });
  children.push(started.child);
  return started;
}

function allInOne(dataDir: string, port: number): StrataChild {
  return run(['cmd/all-in-one/main.ts'], { STRATA_DATA_DIR: dataDir, STRATA_PORT: String(port), STRATA_NODE_PORT_BASE: '0' });
}

function started(r: StrataChild): Promise<void> {
  return waitForReady(r, 'the all-in-one', 'Press Ctrl-C to stop.', START_DEADLINE_MS);
}

async function write(port: number, key: string, body: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}/write?key=${encodeURIComponent(key)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

async function readText(port: number, key: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/read/${encodeURIComponent(key)}`);
  expect(res.status).toBe(200);
  return res.text();
}

describe('one process per data directory', () => {
  it('a second opener of a locked directory in the same process is refused, and may take it once released', async () => {
    const dir = await tempDir();
    const first = DirLock.acquire(dir);
    expect(() => DirLock.acquire(dir)).toThrow(expect.objectContaining({ code: 'DATA_DIR_LOCKED', message: expect.stringContaining(`data directory ${dir} is in use`) }));
    first.release();
    const second = DirLock.acquire(dir);
    expect(second.held).toBe(true);
    second.release();
  });

  it('a second all-in-one in the same process on the same data directory is refused before it opens anything', async () => {
    const dataDir = await tempDir();
    const first = await startTestCluster({ dataDir });
    clusters.push(first);
    await expect(startTestCluster({ dataDir })).rejects.toMatchObject({ code: 'DATA_DIR_LOCKED' });
    expect((await first.write('same-process', '{"a":1}')).status).toBe(200);
    await first.stop();
    clusters.splice(0);
    // Released on stop: a restart in the same process takes it.
    const again = await startTestCluster({ dataDir });
    clusters.push(again);
    expect(await (await again.read('same-process')).text()).toBe('{"a":1}');
  });

  it('a second npm start on the same data directory exits non-zero at once naming it; the first keeps serving its data', async () => {
    const dataDir = await tempDir();
    const port = await freePort();
    const first = allInOne(dataDir, port);
    await started(first);
    const docs = Array.from({ length: 10 }, (_, i) => ({ key: `lock/${i}`, body: `{"like_count":${i},"text":"first owner ${i}"}` }));
    for (const d of docs) await write(port, d.key, d.body);

    const second = allInOne(dataDir, await freePort());
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(`data directory ${dataDir} is in use by another Strata process (lock file ${path.join(dataDir, 'LOCK')}); stop it first`);
    expect(second.output()).not.toContain('Press Ctrl-C to stop.');

    for (const d of docs) expect(await readText(port, d.key)).toBe(d.body);
    await write(port, 'lock/after', '{"still":"serving"}');
    expect(await readText(port, 'lock/after')).toBe('{"still":"serving"}');
    expect(await stopWith(first, 'SIGINT')).toBe(0);
  }, PROCESS_TEST_TIMEOUT_MS);

  it('a SIGKILLed owner does not block a restart, and what it acknowledged reads back', async () => {
    const dataDir = await tempDir();
    const port = await freePort();
    const first = allInOne(dataDir, port);
    await started(first);
    await write(port, 'killed/doc', '{"survives":"sigkill"}');
    await stopWith(first, 'SIGKILL');

    const second = allInOne(dataDir, port);
    await started(second);
    expect(await readText(port, 'killed/doc')).toBe('{"survives":"sigkill"}');
    expect(await stopWith(second, 'SIGINT')).toBe(0);
  }, PROCESS_TEST_TIMEOUT_MS);

  it('recover:manifests and a storage-node process refuse directories a running all-in-one holds, and change nothing', async () => {
    const dataDir = await tempDir();
    const cluster = await startTestCluster({ dataDir });
    clusters.push(cluster);
    expect((await cluster.write('held/doc', '{"a":1}')).status).toBe(200);
    const versionBefore = await cluster.metadata.currentRevision();

    const recover = run(['scripts/rebuild-manifests.ts', '--data-dir', dataDir, '--nodes', cluster.nodes.map((n) => `${n.id}=${n.address}`).join(',')], {
      STRATA_CLUSTER_TOKEN: 'x'.repeat(24),
    });
    const node = run(['cmd/storage-node/main.ts'], {
      STRATA_DATA_DIR: dataDir,
      STRATA_NODE_ID: 'node-1',
      STRATA_PORT: String(await freePort()),
      STRATA_CLUSTER_TOKEN: 'x'.repeat(24),
    });
    expect(await recover.exited).toBe(1);
    expect(recover.output()).toContain(`data directory ${dataDir} is in use by another Strata process`);
    expect(recover.output()).not.toContain('rebuilding manifests');
    expect(await node.exited).toBe(1);
    expect(node.output()).toContain(`data directory ${path.join(dataDir, 'nodes', 'node-1')} is in use by another Strata process`);

    expect(await cluster.metadata.currentRevision()).toBe(versionBefore);
    expect(await (await cluster.read('held/doc')).text()).toBe('{"a":1}');
    expect(cluster.pool.healthyCount()).toBe(6);
  }, PROCESS_TEST_TIMEOUT_MS);
});

describe('a storage-node process (cluster mode) whose directory is not its own', () => {
  it('exits non-zero at once, naming the directory and the reason, and leaves it as it was', async () => {
    const dataDir = await tempDir();
    // The all-in-one initialises node directories with identities; node-1's then goes to a node-2 process.
    const cluster = await startTestCluster({ dataDir });
    expect((await cluster.write('foreign/doc', '{"a":1}')).status).toBe(200);
    await cluster.stop();
    const { readdir, rename } = await import('node:fs/promises');
    await rename(path.join(dataDir, 'nodes', 'node-2'), path.join(dataDir, 'nodes', 'node-2-aside'));
    await rename(path.join(dataDir, 'nodes', 'node-1'), path.join(dataDir, 'nodes', 'node-2'));
    const before = (await readdir(path.join(dataDir, 'nodes', 'node-2'), { recursive: true })).sort();
    const node = run(['cmd/storage-node/main.ts'], {
      STRATA_DATA_DIR: dataDir,
      STRATA_NODE_ID: 'node-2',
      STRATA_PORT: String(await freePort()),
      STRATA_CLUSTER_TOKEN: 'x'.repeat(24),
    });
    expect(await node.exited).toBe(1);
    expect(node.output()).toContain(`${path.join(dataDir, 'nodes', 'node-2')}: belongs to node-1, not node-2`);
    expect((await readdir(path.join(dataDir, 'nodes', 'node-2'), { recursive: true })).sort()).toEqual(before);
  }, PROCESS_TEST_TIMEOUT_MS);
});
