/**
 * The watch-fed manifest cache (internal/readservice/manifest-cache.ts): two gateways (a ReadService with its own
 * cache each) over one store must read what either of them just committed, through the cache and not around it.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { NodePool } from '../../internal/cluster/node-pool.js';
import { systemClock } from '../../internal/core/clock.js';
import type { ErasureCode } from '../../internal/ec/erasure-code.js';
import { silentLogger } from '../../internal/log/logger.js';
import { EtcdMetadataStore } from '../../internal/metadata/etcd-metadata-store.js';
import type { StoredManifest } from '../../internal/manifest/manifest.js';
import type { ManifestWatchListener, MetadataStore } from '../../internal/metadata/metadata-store.js';
import { SqliteMetadataStore } from '../../internal/metadata/sqlite-metadata-store.js';
import { ManifestCache, type ManifestCacheOptions } from '../../internal/readservice/manifest-cache.js';
import { ReadService } from '../../internal/readservice/read-service.js';
import { startEtcd, type RunningEtcd } from '../../scripts/infra/etcd.js';
import { makeManifest, makeTombstone } from '../helpers/manifest-fixture.js';
import { waitUntil } from '../helpers/wait.js';

interface TestGateway {
  metadata: MetadataStore;
  cache: ManifestCache;
  reads: ReadService;
}

function gateway(metadata: MetadataStore, options: ManifestCacheOptions = {}): TestGateway {
  const cache = new ManifestCache(metadata, options);
  cache.start();
  const reads = new ReadService({
    metadata,
    manifests: cache,
    // liveManifest/currentManifest touch neither the nodes nor the erasure code.
    pool: {} as NodePool,
    ec: {} as ErasureCode,
    clock: systemClock,
    log: silentLogger,
    options: { nodeTimeoutMs: 1_000, hedgeAfterMs: 100, depthMax: 32, membersMax: 1_000 },
  });
  return { metadata, cache, reads };
}

function until(what: string, check: () => boolean): Promise<void> {
  return waitUntil(what, check);
}

async function commitVersion(store: MetadataStore, key: string, expected: number, i: number) {
  const result = await store.commit({ key, expectedModRevision: expected, writeId: `w${i}`, manifest: makeManifest(key, `w${i}`), assignVersion: true });
  if (!result.ok) throw new Error(`commit ${i} failed: ${JSON.stringify(result)}`);
  return result;
}

/** Read-your-writes across gateways: each commit, made through one store, is what the other gateway reads next. */
async function readYourWritesLoop(writer: MetadataStore, gateways: TestGateway[], writes: number): Promise<void> {
  const key = `ryw/${randomUUID()}`;
  let modRevision = 0;
  for (let i = 0; i < writes; i++) {
    const committed = await commitVersion(writer, key, modRevision, i);
    modRevision = committed.modRevision;
    for (const g of gateways) {
      const seen = await g.reads.liveManifest(key);
      expect(seen.manifest.version, `write ${i}`).toBe(committed.manifest.version);
      expect(seen.modRevision).toBe(committed.modRevision);
    }
  }
  const gone = await writer.commit({ key, expectedModRevision: modRevision, writeId: 'del', manifest: makeTombstone(key, 'del'), assignVersion: true });
  expect(gone.ok).toBe(true);
  for (const g of gateways) {
    await expect(g.reads.liveManifest(key)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await g.reads.currentManifest(key))?.manifest.deleted).toBe(true);
  }
}

describe('ManifestCache over SQLite', () => {
  let dir: string;
  let first: SqliteMetadataStore;
  let second: SqliteMetadataStore;
  const gateways: TestGateway[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-cache-'));
    const path = join(dir, 'metadata.sqlite');
    first = await SqliteMetadataStore.open({ path });
    // A second connection to the same file, as a second gateway process would have: it learns by polling.
    second = await SqliteMetadataStore.open({ path });
  });
  afterEach(async () => {
    for (const g of gateways.splice(0)) await g.cache.close();
    await first.close();
    await second.close();
    await rm(dir, { recursive: true, force: true });
  });

  function start(metadata: MetadataStore, options: ManifestCacheOptions = {}): TestGateway {
    const g = gateway(metadata, options);
    gateways.push(g);
    return g;
  }

  it('reads on either gateway what was just committed, 200 times, never an older version', async () => {
    const a = start(first);
    const b = start(second);
    await until('both caches watch', () => a.cache.watching && b.cache.watching);
    await readYourWritesLoop(first, [a, b], 200);
    // The caches were used, not bypassed.
    expect(b.cache.stats.hits).toBeGreaterThan(100);
    expect(a.cache.stats.hits).toBeGreaterThan(100);
    expect(b.cache.stats.bypasses).toBe(0);
  });

  it('serves cache hits without reading the manifest from the store', async () => {
    const b = start(second);
    await until('the cache watches', () => b.cache.watching);
    const committed = await commitVersion(first, 'hit/key', 0, 1);
    const get = vi.spyOn(second, 'get');
    await until('the watch delivered the commit', () => b.cache.size > 0);
    const calls = get.mock.calls.length;
    for (let i = 0; i < 20; i++) expect((await b.reads.liveManifest('hit/key')).manifest.version).toBe(committed.manifest.version);
    expect(get.mock.calls.length).toBe(calls);
    // A key the watch never reported is read once, then served from the cache.
    expect(await b.reads.currentManifest('never/written')).toBeNull();
    expect(await b.reads.currentManifest('never/written')).toBeNull();
    expect(get.mock.calls.length).toBe(calls + 1);
    get.mockRestore();
  });

  it('shares one currentRevision call among concurrent reads', async () => {
    const b = start(second, { revisionWindowMs: 20 });
    await until('the cache watches', () => b.cache.watching);
    await commitVersion(first, 'shared', 0, 1);
    await b.reads.currentManifest('shared');
    const before = b.cache.stats.currentRevisionCalls;
    await Promise.all(Array.from({ length: 50 }, () => b.reads.liveManifest('shared')));
    expect(b.cache.stats.currentRevisionCalls - before).toBeLessThanOrEqual(2);
  });

  it('falls back to direct reads while the watch is broken, and watches again afterwards', async () => {
    let listener: ManifestWatchListener | null = null;
    const wrapped = new Proxy(second, {
      get(target, prop, receiver) {
        if (prop === 'watchManifests') {
          return (from: number, l: ManifestWatchListener) => {
            listener = l;
            return target.watchManifests(from, l);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const b = start(wrapped, { rewatchDelayMs: 300 });
    await until('the cache watches', () => b.cache.watching && listener !== null);
    let modRevision = (await commitVersion(first, 'broken', 0, 1)).modRevision;
    await b.reads.liveManifest('broken');
    const get = vi.spyOn(second, 'get');

    listener!.onReset('test: the watch broke');
    expect(b.cache.watching).toBe(false);
    const committed = await commitVersion(first, 'broken', modRevision, 2);
    modRevision = committed.modRevision;
    expect((await b.reads.liveManifest('broken')).manifest.version).toBe(committed.manifest.version);
    expect(get).toHaveBeenCalledTimes(1);
    expect(b.cache.stats.bypasses).toBeGreaterThanOrEqual(1);

    await until('the cache watches again', () => b.cache.watching);
    const again = await commitVersion(first, 'broken', modRevision, 3);
    expect((await b.reads.liveManifest('broken')).manifest.version).toBe(again.manifest.version);
    get.mockRestore();
  });

  it('reads directly when the watch does not catch up in time', async () => {
    // A watch that never reports anything: every read must wait, give up and ask the store.
    const silent = new Proxy(second, {
      get(target, prop, receiver) {
        if (prop === 'watchManifests') return async () => ({ close: async () => undefined });
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const b = start(silent, { catchUpWaitMs: 30 });
    await until('the cache watches', () => b.cache.watching);
    let modRevision = 0;
    for (let i = 0; i < 5; i++) {
      const committed = await commitVersion(first, 'stalled', modRevision, i);
      modRevision = committed.modRevision;
      expect((await b.reads.liveManifest('stalled')).manifest.version).toBe(committed.manifest.version);
    }
    expect(b.cache.stats.bypasses).toBe(5);
  });

  it('keeps at most entriesMax manifests', async () => {
    const b = start(second, { entriesMax: 10 });
    await until('the cache watches', () => b.cache.watching);
    const last = await Promise.all(Array.from({ length: 30 }, (_, i) => commitVersion(first, `many/${i}`, 0, i)));
    await until('the watch delivered', () => b.cache.stats.hits + b.cache.size > 0);
    for (let i = 0; i < 30; i++) expect((await b.reads.liveManifest(`many/${i}`)).manifest.version).toBe(last[i]!.manifest.version);
    expect(b.cache.size).toBeLessThanOrEqual(10);
  });
});

/**
 * A store whose reads the test answers by hand, and whose watch the test drives: the order of a direct read and of
 * the watch's changes is chosen, not raced.
 */
function steppedStore(revision: number) {
  let listener: ManifestWatchListener | null = null;
  const reads: { key: string; answer: (stored: StoredManifest | null) => void }[] = [];
  const store = {
    currentRevision: async () => revision,
    get: (key: string) => new Promise<StoredManifest | null>((answer) => reads.push({ key, answer })),
    watchManifests: async (_from: number, l: ManifestWatchListener) => {
      listener = l;
      return { close: async () => undefined };
    },
  } as unknown as MetadataStore;
  return {
    store,
    reads,
    change(key: string, modRevision: number): void {
      listener!.onChange(key, { manifest: makeManifest(key, `w${modRevision}`), modRevision }, modRevision);
    },
  };
}

describe('ManifestCache: a direct read racing the watch', () => {
  const caches: ManifestCache[] = [];
  afterEach(async () => {
    for (const cache of caches.splice(0)) await cache.close();
  });

  async function watching(store: MetadataStore, entriesMax: number): Promise<ManifestCache> {
    const cache = new ManifestCache(store, { entriesMax, revisionWindowMs: 0 });
    caches.push(cache);
    cache.start();
    await until('the cache watches', () => cache.watching);
    return cache;
  }

  it('inserts a direct read that no eviction overlapped, and serves it next time', async () => {
    const s = steppedStore(10);
    const cache = await watching(s.store, 2);
    const read = cache.get('k');
    await until('the read reached the store', () => s.reads.length === 1);
    s.change('a', 11);
    s.reads[0]!.answer({ manifest: makeManifest('k', 'w5'), modRevision: 5 });
    expect((await read)?.modRevision).toBe(5);
    expect(cache.size).toBe(2);
    expect((await cache.get('k'))?.modRevision).toBe(5);
    expect(s.reads).toHaveLength(1);
  });

  it('does not insert a direct read when an eviction happened while it was in flight (the evicted entry may have been newer)', async () => {
    const s = steppedStore(10);
    const cache = await watching(s.store, 2);
    const read = cache.get('k');
    await until('the read reached the store', () => s.reads.length === 1);
    // Three changes into two places: 'a' is evicted while the read is out.
    s.change('a', 11);
    s.change('b', 12);
    s.change('c', 13);
    s.reads[0]!.answer({ manifest: makeManifest('k', 'w5'), modRevision: 5 });
    expect((await read)?.modRevision).toBe(5);
    expect(cache.size).toBe(2);
    // Not cached: the next read of 'k' goes to the store again.
    const again = cache.get('k');
    await until('the second read reached the store', () => s.reads.length === 2);
    s.reads[1]!.answer({ manifest: makeManifest('k', 'w5'), modRevision: 5 });
    expect((await again)?.modRevision).toBe(5);
  });

  it('never replaces an entry the watch delivered meanwhile with an older direct read', async () => {
    const s = steppedStore(10);
    const cache = await watching(s.store, 10);
    const read = cache.get('k');
    await until('the read reached the store', () => s.reads.length === 1);
    s.change('k', 12);
    s.reads[0]!.answer({ manifest: makeManifest('k', 'w5'), modRevision: 5 });
    expect((await read)?.modRevision).toBe(5);
    expect((await cache.get('k'))?.modRevision).toBe(12);
    expect(s.reads).toHaveLength(1);
  });

  it('evicts the least recently used manifest, a hit counting as a use', async () => {
    const s = steppedStore(10);
    const cache = await watching(s.store, 2);
    s.change('a', 1);
    s.change('b', 2);
    // A hit on 'a' makes 'b' the least recently used: the next change pushes 'b' out.
    expect((await cache.get('a'))?.modRevision).toBe(1);
    s.change('c', 3);
    expect((await cache.get('a'))?.modRevision).toBe(1);
    expect((await cache.get('c'))?.modRevision).toBe(3);
    expect(s.reads).toHaveLength(0);
    const b = cache.get('b');
    await until('the read of the evicted key reached the store', () => s.reads.length === 1);
    expect(s.reads[0]!.key).toBe('b');
    s.reads[0]!.answer(null);
    expect(await b).toBeNull();
  });
});

describe('ManifestCache over etcd', () => {
  let etcd: RunningEtcd;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('reads on either gateway what was just committed, 200 times, never an older version', async () => {
    const prefix = `test/${randomUUID()}/`;
    const first = await EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix });
    const second = await EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix });
    const a = gateway(first);
    const b = gateway(second);
    try {
      await until('both caches watch', () => a.cache.watching && b.cache.watching);
      await readYourWritesLoop(first, [a, b], 200);
      expect(b.cache.stats.hits).toBeGreaterThan(100);
      const get = vi.spyOn(second, 'get');
      const key = 'etcd/hit';
      const committed = await commitVersion(first, key, 0, 1);
      for (let i = 0; i < 10; i++) expect((await b.reads.liveManifest(key)).manifest.version).toBe(committed.manifest.version);
      expect(get).not.toHaveBeenCalled();
      get.mockRestore();
    } finally {
      await a.cache.close();
      await b.cache.close();
      await first.close();
      await second.close();
    }
  });

  it('falls back to direct reads when etcd breaks the watch, and watches again once it is back', async () => {
    const prefix = `test/${randomUUID()}/`;
    const own = await startEtcd();
    const writer = await EtcdMetadataStore.open({ endpoints: [own.endpoints], prefix });
    const reader = await EtcdMetadataStore.open({ endpoints: [own.endpoints], prefix });
    const b = gateway(reader, { rewatchDelayMs: 100 });
    try {
      await until('the cache watches', () => b.cache.watching);
      const committed = await commitVersion(writer, 'k', 0, 1);
      expect((await b.reads.liveManifest('k')).manifest.version).toBe(committed.manifest.version);
      // Cancelling every watch on the server side is what a compaction or a lost stream looks like to the client.
      const manager = (reader as unknown as { calls: { client: { watchManager: { handleError(err: Error): void } } } }).calls.client.watchManager;
      manager.handleError(new Error('test: stream lost'));
      expect(b.cache.watching).toBe(false);
      const next = await commitVersion(writer, 'k', committed.modRevision, 2);
      expect((await b.reads.liveManifest('k')).manifest.version).toBe(next.manifest.version);
      expect(b.cache.stats.bypasses).toBeGreaterThanOrEqual(1);
      await until('the cache watches again', () => b.cache.watching);
      const third = await commitVersion(writer, 'k', next.modRevision, 3);
      expect((await b.reads.liveManifest('k')).manifest.version).toBe(third.manifest.version);
    } finally {
      await b.cache.close();
      await writer.close();
      await reader.close();
      await own.stop();
    }
  });
});
