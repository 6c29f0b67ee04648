/**
 * The cluster's data format version and its bump (internal/cluster/format-version.ts) on a real embedded metadata
 * store with a manual clock: who blocks a bump and until when, what a process follows after it, and what a process
 * does with a record of a data format newer than its release reads. The same rules on a real etcd are in
 * test/cluster/format-version-etcd.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ClusterDataFormat,
  ProcessAnnouncement,
  bumpDataFormat,
  formatVersionReport,
  raiseOwnDataFormat,
  storageNodeProcessId,
  type FormatVersionContext,
} from '../../internal/cluster/format-version.js';
import { DATA_FORMAT_MAX, fixedDataFormat } from '../../internal/core/data-format.js';
import { StrataError, isStrataError } from '../../internal/core/errors.js';
import { joinCluster } from '../../internal/datadir/cluster-membership.js';
import { DirLock } from '../../internal/datadir/dir-lock.js';
import { silentLogger } from '../../internal/log/logger.js';
import { PROCESS_REGISTRY_LIMITS, type ClusterIdentityRecord } from '../../internal/metadata/metadata-store.js';
import { sealText } from '../../internal/metadata/record-envelope.js';
import { SqliteMetadataStore } from '../../internal/metadata/sqlite-metadata-store.js';
import Database from 'better-sqlite3';
import { ManualClock } from '../helpers/manual-clock.js';

/** A data format this release does not know. */
const NEWER = DATA_FORMAT_MAX + 1;

/** The processes' heartbeat ttl in these tests (STRATA_NODE_TTL_MS). */
const TTL_MS = 10_000;
const POLL_MS = 5_000;

const dirs: string[] = [];
const stores: SqliteMetadataStore[] = [];
const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const identity: ClusterIdentityRecord = { clusterId: 'c1', formatVersion: 1, createdAtMs: 1, nodes: [], acceptedEmpty: [] };

async function setup(): Promise<{ dir: string; dbPath: string; store: SqliteMetadataStore; clock: ManualClock; context: FormatVersionContext }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-format-'));
  dirs.push(dir);
  const clock = new ManualClock();
  const dbPath = path.join(dir, 'metadata', 'strata.db');
  const store = await SqliteMetadataStore.open({ path: dbPath, clock });
  stores.push(store);
  return { dir, dbPath, store, clock, context: { store, clock, nodeTtlMs: TTL_MS, source: fixedDataFormat(1) } };
}

/** Writes the identity record as a newer release would, behind the store's back. */
function writeRecord(dbPath: string, fields: Record<string, unknown>): void {
  const db = new Database(dbPath);
  try {
    db.exec("CREATE TABLE IF NOT EXISTS cluster_identity (name TEXT PRIMARY KEY CHECK (name = 'cluster'), record TEXT NOT NULL)");
    const content = JSON.stringify({ format: 'strata-cluster-identity', clusterId: 'c9', createdAtMs: 1, nodes: [], acceptedEmpty: [], ...fields });
    db.prepare("INSERT OR REPLACE INTO cluster_identity (name, record) VALUES ('cluster', ?)").run(sealText('cluster-identity', 'cluster', content));
  } finally {
    db.close();
  }
}

async function errorOf(promise: Promise<unknown>): Promise<StrataError> {
  const outcome = await promise.then(
    () => null,
    (error: unknown) => error,
  );
  if (!isStrataError(outcome)) throw new Error(`expected a StrataError, got ${String(outcome)}`);
  return outcome;
}

describe('the data format bump', () => {
  it('is refused with FORMAT_BUMP_BLOCKED naming a registered process that reads only format 1, and nothing changes', async () => {
    const { store, context } = await setup();
    await store.createClusterIdentity(identity);
    await store.registerProcess({ id: 'gateway-old', role: 'gateway', formatMax: 1 }, TTL_MS);
    await store.registerProcess({ id: 'gateway-new', role: 'gateway', formatMax: 2 }, TTL_MS);
    const error = await errorOf(bumpDataFormat(context, 2));
    expect(error.code).toBe('FORMAT_BUMP_BLOCKED');
    expect(error.status).toBe(409);
    expect(error.message).toContain('gateway-old (gateway: reads data formats up to 1)');
    expect(error.message).not.toContain('gateway-new');
    expect(error.details).toMatchObject({ to: 2, processes: ['gateway-old'] });
    expect((await store.getClusterIdentity())?.dataFormat).toBeUndefined();
  });

  it('stays refused while the old process lapsed less than 2 x its ttl ago, and is allowed once it has been gone longer', async () => {
    const { store, clock, context } = await setup();
    await store.createClusterIdentity(identity);
    await store.registerProcess({ id: 'healer-old', role: 'healer', formatMax: 1 }, TTL_MS);
    // Past its ttl it is no longer alive, but it may only be paused: still counted.
    clock.advance(TTL_MS + 1);
    const lapsed = await errorOf(bumpDataFormat(context, 2));
    expect(lapsed.code).toBe('FORMAT_BUMP_BLOCKED');
    expect(lapsed.message).toContain('healer-old (healer: reads data formats up to 1 and lapsed less than 2 x its ttl ago)');
    clock.advance((PROCESS_REGISTRY_LIMITS.lingerTtls - 1) * TTL_MS - 2);
    expect((await errorOf(bumpDataFormat(context, 2))).code).toBe('FORMAT_BUMP_BLOCKED');
    clock.advance(1);
    expect(await bumpDataFormat(context, 2)).toEqual({ dataFormat: 2, changed: true });
    expect(await store.getClusterIdentity()).toMatchObject({ formatVersion: 2, dataFormat: 2 });
  });

  it('is refused while a storage node heartbeats without announcing what it reads (a previous release), until it is gone', async () => {
    const { store, clock, context } = await setup();
    await store.createClusterIdentity(identity);
    await store.registerNode({ id: 'node-1', address: 'http://127.0.0.1:1' }, TTL_MS);
    await store.registerNode({ id: 'node-2', address: 'http://127.0.0.1:2' }, TTL_MS);
    await store.registerProcess({ id: storageNodeProcessId('node-2'), role: 'storage-node', formatMax: 2 }, TTL_MS);
    const error = await errorOf(bumpDataFormat(context, 2));
    expect(error.message).toContain('node-1 (storage-node: heartbeats without announcing what it reads (a previous release))');
    expect(error.message).not.toContain('node-2');
    // node-1 stops; node-2 keeps announcing. Past 3 ttls since node-1's last heartbeat, only node-2 is left.
    for (let i = 0; i < 4; i++) {
      clock.advance(TTL_MS);
      await store.registerNode({ id: 'node-2', address: 'http://127.0.0.1:2' }, TTL_MS);
      await store.registerProcess({ id: storageNodeProcessId('node-2'), role: 'storage-node', formatMax: 2 }, TTL_MS);
    }
    expect((await bumpDataFormat(context, 2)).changed).toBe(true);
  });

  it('refuses to go down (FORMAT_DOWNGRADE_REFUSED), is idempotent at the target, and refuses a format this release does not know', async () => {
    const { store, context } = await setup();
    await store.createClusterIdentity(identity);
    expect(await bumpDataFormat(context, 2)).toEqual({ dataFormat: 2, changed: true });
    expect(await bumpDataFormat(context, 2)).toEqual({ dataFormat: 2, changed: false });
    const down = await errorOf(bumpDataFormat(context, 1));
    expect(down.code).toBe('FORMAT_DOWNGRADE_REFUSED');
    expect(down.status).toBe(409);
    expect((await errorOf(bumpDataFormat(context, DATA_FORMAT_MAX + 1))).code).toBe('INVALID_REQUEST');
    expect((await errorOf(bumpDataFormat(context, 0))).code).toBe('INVALID_REQUEST');
    expect(await store.getClusterIdentity()).toMatchObject({ dataFormat: 2 });
  });

  it('is refused before the first storage node created the cluster identity', async () => {
    const { context } = await setup();
    const error = await errorOf(bumpDataFormat(context, 2));
    expect(error.code).toBe('FORMAT_BUMP_BLOCKED');
    expect(error.message).toContain('no identity record yet');
  });

  it('reports the version, every announced process and what blocks the next bump', async () => {
    const { store, context } = await setup();
    await store.createClusterIdentity(identity);
    await store.registerProcess({ id: 'gateway-old', role: 'gateway', formatMax: 1 }, TTL_MS);
    const before = await formatVersionReport(context);
    expect(before).toMatchObject({ dataFormat: 1, formatMax: DATA_FORMAT_MAX, recorded: true });
    expect(before.processes.map((p) => [p.id, p.formatMax, p.alive])).toEqual([['gateway-old', 1, true]]);
    expect(before.blockers.map((b) => b.id)).toEqual(['gateway-old']);
    await store.deregisterProcess('gateway-old');
    await bumpDataFormat(context, 2);
    expect(await formatVersionReport(context)).toMatchObject({ dataFormat: 2, processes: [], blockers: [] });
  });
});

describe('a process following the cluster data format', () => {
  it('switches to format 2 within one poll of the bump', async () => {
    const { store, clock, context } = await setup();
    await store.createClusterIdentity(identity);
    const source = new ClusterDataFormat({ clock, log: silentLogger, pollIntervalMs: POLL_MS, onNewer: () => undefined });
    stops.push(() => source.stop());
    await source.follow(store, 'the test store');
    expect(source.current()).toBe(1);
    await bumpDataFormat(context, 2);
    expect(source.current()).toBe(1);
    await vi.waitFor(
      () => {
        clock.advance(POLL_MS);
        expect(source.current()).toBe(2);
      },
      { timeout: 30_000, interval: 20 },
    );
  });

  it('starts at the recorded format, and at format 1 when there is no record yet', async () => {
    const { store, clock } = await setup();
    const none = new ClusterDataFormat({ clock, log: silentLogger, onNewer: () => undefined });
    stops.push(() => none.stop());
    await none.follow(store, 'the test store');
    expect(none.current()).toBe(1);
    await store.createClusterIdentity(identity);
    await store.raiseClusterDataFormat(2);
    const raised = new ClusterDataFormat({ clock, log: silentLogger, onNewer: () => undefined });
    stops.push(() => raised.stop());
    await raised.follow(store, 'the test store');
    expect(raised.current()).toBe(2);
  });

  it('a record of a data format newer than this release makes a process refuse to start (FORMAT_UNSUPPORTED naming what it needs)', async () => {
    const { store, clock, dbPath } = await setup();
    writeRecord(dbPath, { formatVersion: 2, dataFormat: NEWER });
    const source = new ClusterDataFormat({ clock, log: silentLogger, onNewer: () => undefined });
    stops.push(() => source.stop());
    const error = await errorOf(source.follow(store, 'the test store'));
    expect(error.code).toBe('FORMAT_UNSUPPORTED');
    expect(error.message).toMatch(new RegExp(`data format is ${NEWER}, newer than this release reads \\(up to ${DATA_FORMAT_MAX}\\).*run a release that reads data format ${NEWER}`));
    // The all-in-one's start refuses it too, and changes nothing.
    expect((await errorOf(raiseOwnDataFormat(store, DATA_FORMAT_MAX, 'the test store'))).code).toBe('FORMAT_UNSUPPORTED');
    expect(await store.getClusterIdentity()).toMatchObject({ dataFormat: NEWER });
  });

  it('a record of data format 3 appearing while running stops the process (onNewer), once, and the version stays', async () => {
    const { store, clock, dbPath } = await setup();
    await store.createClusterIdentity(identity);
    const reasons: string[] = [];
    const source = new ClusterDataFormat({ clock, log: silentLogger, pollIntervalMs: POLL_MS, onNewer: (reason) => reasons.push(reason) });
    stops.push(() => source.stop());
    await source.follow(store, 'the test store');
    writeRecord(dbPath, { formatVersion: 3 });
    await vi.waitFor(
      () => {
        clock.advance(POLL_MS);
        expect(reasons).toHaveLength(1);
      },
      { timeout: 30_000, interval: 20 },
    );
    expect(reasons[0]).toMatch(/record format 3; this release knows up to 2/);
    clock.advance(POLL_MS * 3);
    await source.refresh();
    expect(reasons).toHaveLength(1);
    expect(source.current()).toBe(1);
  });

  it('a storage node refuses to start against a record of a newer data format, and leaves its directory untouched', async () => {
    const { dir, store, clock, dbPath } = await setup();
    writeRecord(dbPath, { formatVersion: 2, dataFormat: NEWER });
    const nodeDir = path.join(dir, 'nodes', 'node-1');
    const lock = DirLock.acquire(nodeDir);
    try {
      const error = await errorOf(joinCluster({ store, storeName: 'the test store', dataDir: dir, nodeDir, nodeId: 'node-1', clock }));
      expect(error.code).toBe('DATA_DIR_UNUSABLE');
      expect(error.message).toMatch(new RegExp(`data format is ${NEWER}.*run a release that reads data format ${NEWER}; nothing in the directory was changed`));
    } finally {
      lock.release();
    }
    expect((await store.getClusterIdentity())?.nodes).toEqual([]);
  });

  it('the all-in-one raises a record in its own store to the format it writes, and leaves a store without one as it is', async () => {
    const { store } = await setup();
    await raiseOwnDataFormat(store, DATA_FORMAT_MAX, 'the test store');
    expect(await store.getClusterIdentity()).toBeNull();
    await store.createClusterIdentity(identity);
    await raiseOwnDataFormat(store, 1, 'the test store');
    expect(await store.getClusterIdentity()).toEqual({ ...identity });
    await raiseOwnDataFormat(store, DATA_FORMAT_MAX, 'the test store');
    expect(await store.getClusterIdentity()).toMatchObject({ formatVersion: 2, dataFormat: DATA_FORMAT_MAX });
  });
});

describe('a process announcing what it reads', () => {
  it('registers at start with this release formatMax, renews every ttl/3, and is forgotten when it leaves', async () => {
    const { store, clock } = await setup();
    const announcement = new ProcessAnnouncement({ registry: store, process: { id: 'gateway-1', role: 'gateway' }, ttlMs: TTL_MS, clock, log: silentLogger });
    expect(await announcement.start()).toBe(true);
    expect(await store.listProcesses()).toMatchObject([{ id: 'gateway-1', role: 'gateway', formatMax: DATA_FORMAT_MAX, alive: true }]);
    const first = (await store.listProcesses())[0]!.lastHeartbeatMs;
    // Renewed: past several ttls it is still alive.
    await vi.waitFor(
      async () => {
        clock.advance(announcement.intervalMs);
        const [entry] = await store.listProcesses();
        expect(entry!.lastHeartbeatMs).toBeGreaterThanOrEqual(first + 3 * TTL_MS);
        expect(entry!.alive).toBe(true);
      },
      { timeout: 30_000, interval: 20 },
    );
    await announcement.leave();
    expect(await store.listProcesses()).toEqual([]);
  });
});
