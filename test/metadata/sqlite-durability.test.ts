/**
 * The embedded SQLite stores commit with synchronous=NORMAL and fdatasync their -wal file off the event loop
 * (metadata/sqlite-group-commit.ts). Durability must be exactly what synchronous=FULL gave: nothing is
 * acknowledged, read, watched or consumed before the fdatasync that follows its COMMIT has completed, and a failed
 * fdatasync fails what it covered as "outcome unknown". The sync is held by the test to observe each step.
 */
import { readlinkSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import { SqliteMetadataStore } from '../../internal/metadata/sqlite-metadata-store.js';
import { SqliteWriteAheadLog } from '../../internal/wal/sqlite-wal.js';
import type { WalRecord } from '../../internal/wal/write-ahead-log.js';
import { makeManifest } from '../helpers/manifest-fixture.js';

/** A sync the test releases by hand; each call waits for its own release. */
class HeldSync {
  calls = 0;
  private pending: { release: () => void; fail: (err: Error) => void }[] = [];
  readonly sync = (): Promise<void> => {
    this.calls++;
    return new Promise<void>((release, fail) => this.pending.push({ release, fail }));
  };
  get waiting(): number {
    return this.pending.length;
  }
  releaseAll(): void {
    for (const p of this.pending.splice(0)) p.release();
  }
  failAll(message: string): void {
    for (const p of this.pending.splice(0)) p.fail(new Error(message));
  }
}

/** Lets every queued setImmediate and promise continuation run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** Tracks whether a promise settled, without awaiting it. */
function track<T>(promise: Promise<T>): { done: () => boolean; result: Promise<T> } {
  let done = false;
  const result = promise.finally(() => (done = true));
  result.catch(() => undefined);
  return { done: () => done, result };
}

const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close().catch(() => undefined);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempFile(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-durability-'));
  dirs.push(dir);
  return join(dir, name);
}

async function openStore(held: HeldSync | null): Promise<SqliteMetadataStore> {
  const store = await SqliteMetadataStore.open({ path: await tempFile('metadata.sqlite'), ...(held ? { syncWal: held.sync } : {}) });
  closers.push(async () => {
    held?.releaseAll();
    await store.close();
  });
  return store;
}

function put(store: SqliteMetadataStore, key: string, writeId: string) {
  return store.commit({ key, expectedModRevision: 0, writeId, manifest: makeManifest(key, writeId), assignVersion: true });
}

describe('SQLite metadata store: durable before visible', () => {
  it('runs the connection with synchronous=NORMAL: the group commit does the syncing', async () => {
    const store = await openStore(null);
    // The setting is per connection: the store's own (1 = NORMAL; SQLite's default in WAL mode is 2 = FULL).
    expect((store as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true })).toBe(1);
  });

  it('acknowledges a commit only after the fdatasync that follows it', async () => {
    const held = new HeldSync();
    const store = await openStore(held);
    const commit = track(put(store, 'k', 'w-1'));
    await settle();
    expect(held.waiting).toBe(1);
    expect(commit.done()).toBe(false);
    held.releaseAll();
    const result = await commit.result;
    expect(result.ok).toBe(true);
  });

  it('reads, the revision and watches show a committed change only once it is durable', async () => {
    const held = new HeldSync();
    const store = await openStore(held);
    const before = await store.currentRevision();
    const seen: string[] = [];
    const watch = await store.watchManifests(before, { onChange: (key) => seen.push(key), onRevision: () => undefined, onReset: () => undefined });
    closers.unshift(() => watch.close());

    const commit = track(put(store, 'k', 'w-1'));
    await settle();
    expect(held.waiting).toBe(1);
    // Committed in SQLite, not yet on disk: nobody may see it.
    const read = track(store.get('k'));
    await settle();
    expect(read.done()).toBe(false);
    expect(await store.currentRevision()).toBe(before);
    expect(seen).toEqual([]);

    held.releaseAll();
    expect((await commit.result).ok).toBe(true);
    expect((await read.result)?.manifest.writeId).toBe('w-1');
    expect(await store.currentRevision()).toBeGreaterThan(before);
    await settle();
    expect(seen).toEqual(['k']);
  });

  it('one fdatasync covers every batch committed while the previous one ran', async () => {
    const held = new HeldSync();
    const store = await openStore(held);
    const first = track(put(store, 'k0', 'w-0'));
    await settle();
    expect(held.calls).toBe(1);
    // Ten more commits in separate batches while the first sync is held.
    const more: ReturnType<typeof track>[] = [];
    for (let i = 1; i <= 10; i++) {
      more.push(track(put(store, `k${i}`, `w-${i}`)));
      await settle();
    }
    expect(store.stats().batches).toBeGreaterThanOrEqual(2);
    expect(held.calls).toBe(1);
    held.releaseAll();
    await first.result;
    await settle();
    // The second sync covers all ten.
    expect(held.calls).toBe(2);
    expect(more.some((m) => m.done())).toBe(false);
    held.releaseAll();
    await Promise.all(more.map((m) => m.result));
  });

  it('a failed fdatasync fails the commits it covered with COMMIT_UNKNOWN and the store refuses further work', async () => {
    const held = new HeldSync();
    const store = await openStore(held);
    const commit = track(put(store, 'k', 'w-1'));
    await settle();
    held.failAll('EIO: i/o error, fdatasync');
    const error = await commit.result.then(() => null, (e: unknown) => e);
    expect(isStrataError(error) && error.code).toBe('COMMIT_UNKNOWN');
    const later = await put(store, 'k2', 'w-2').then(() => null, (e: unknown) => e);
    expect(isStrataError(later) && later.code).toBe('METADATA_UNAVAILABLE');
    expect(String((later as Error).message)).toMatch(/fdatasync/);
  });

  it('by default syncs the database\'s -wal file on the thread pool', async () => {
    const handle = await open(await tempFile('probe'), 'w');
    const proto = Object.getPrototypeOf(handle) as { datasync: () => Promise<void> };
    await handle.close();
    const synced: string[] = [];
    const original = proto.datasync;
    const spy = vi.spyOn(proto, 'datasync').mockImplementation(function (this: { fd: number }) {
      synced.push(readlinkSync(`/proc/self/fd/${this.fd}`));
      return original.call(this);
    });
    try {
      const store = await openStore(null);
      await put(store, 'k', 'w-1');
      expect(synced.length).toBeGreaterThanOrEqual(1);
      expect(synced.every((file) => file.endsWith('metadata.sqlite-wal'))).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('SQLite write-ahead log: durable before acknowledged or consumed', () => {
  const intent = (key: string): WalRecord => ({ type: 'intent', key, writeId: `w-${key}`, atMs: 1, creates: [], releases: [] }) as unknown as WalRecord;

  it('acknowledges an append, and lets a consumer see it, only after the fdatasync that follows it', async () => {
    const held = new HeldSync();
    const wal = await SqliteWriteAheadLog.open({ path: await tempFile('wal.sqlite'), syncWal: held.sync });
    closers.push(async () => {
      held.releaseAll();
      await wal.close();
    });
    const consumer = track(wal.consumer('healer'));
    await settle();
    held.releaseAll();
    const reader = await consumer.result;

    const append = track(wal.append(intent('a')));
    await settle();
    expect(held.waiting).toBe(1);
    expect(append.done()).toBe(false);
    expect(await reader.poll(10, 0)).toEqual([]);

    held.releaseAll();
    await append.result;
    const entries = await reader.poll(10, 0);
    expect(entries.map((e) => e.record.key)).toEqual(['a']);
  });
});
