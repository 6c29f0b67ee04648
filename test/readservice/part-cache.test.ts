import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BlobRef } from '../../internal/manifest/manifest.js';
import { PART_CACHE_LIMITS, PartCache } from '../../internal/readservice/part-cache.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

function ref(writeId: string, checksum = 'c'): BlobRef {
  return { part: 'hot-0', node: 'node-1', blob: `${writeId}.hot-0`, writeId, size: 1, checksum, state: 'ok' };
}

describe('PartCache', () => {
  it('loads a part once and serves it again from memory', async () => {
    const cache = new PartCache(1 << 20);
    const load = vi.fn(async () => Buffer.from('payload'));
    expect((await cache.get('hot', [ref('w1')], load)).toString()).toBe('payload');
    expect((await cache.get('hot', [ref('w1')], load)).toString()).toBe('payload');
    expect(load).toHaveBeenCalledTimes(1);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, entries: 1 });
  });

  it('keeps parts of different writes, tiers and checksums apart', async () => {
    const cache = new PartCache(1 << 20);
    await cache.get('hot', [ref('w1')], async () => Buffer.from('a'));
    expect((await cache.get('hot', [ref('w2')], async () => Buffer.from('b'))).toString()).toBe('b');
    expect((await cache.get('cold', [ref('w1')], async () => Buffer.from('c'))).toString()).toBe('c');
    expect((await cache.get('hot', [ref('w1', 'other')], async () => Buffer.from('d'))).toString()).toBe('d');
    expect(cache.stats().misses).toBe(4);
  });

  it('stays within its byte bound, evicting the least recently used part first', async () => {
    const bound = 64 * 1024;
    const cache = new PartCache(bound);
    const part = (n: number) => async () => Buffer.alloc(800, n);
    for (let i = 0; i < 200; i++) await cache.get('hot', [ref(`w${i}`)], part(i));
    expect(cache.stats().bytes).toBeLessThanOrEqual(bound);
    // The newest parts are still there; the oldest are gone.
    const reload = vi.fn(part(0));
    await cache.get('hot', [ref('w199')], reload);
    expect(reload).not.toHaveBeenCalled();
    await cache.get('hot', [ref('w0')], reload);
    expect(reload).toHaveBeenCalledTimes(1);
  });

  it('never caches a part bigger than a small share of its bound', async () => {
    const cache = new PartCache(64 * 1024);
    const load = vi.fn(async () => Buffer.alloc(2 * 1024));
    await cache.get('cold', [ref('big')], load);
    await cache.get('cold', [ref('big')], load);
    expect(load).toHaveBeenCalledTimes(2);
    expect(cache.stats().entries).toBe(0);
  });

  it('keeps a part read again over older ones: a hit counts as a use', async () => {
    const cache = new PartCache(64 * 1024);
    const part = (n: number) => async () => Buffer.alloc(800, n);
    for (let i = 0; i < 40; i++) await cache.get('hot', [ref(`w${i}`)], part(i));
    // w0 is the oldest part; read again, it becomes the newest, so the parts that follow push out w1 instead.
    await cache.get('hot', [ref('w0')], part(0));
    for (let i = 40; i < 80; i++) await cache.get('hot', [ref(`w${i}`)], part(i));
    const reload = vi.fn(part(0));
    await cache.get('hot', [ref('w0')], reload);
    expect(reload).not.toHaveBeenCalled();
    await cache.get('hot', [ref('w1')], reload);
    expect(reload).toHaveBeenCalledTimes(1);
  });

  it('counts each part as its bytes, its key and a fixed overhead against the bound', async () => {
    const cache = new PartCache(64 * 1024);
    await cache.get('hot', [ref('w1')], async () => Buffer.alloc(100));
    await cache.get('cold', [ref('w22')], async () => Buffer.alloc(300));
    const keyBytes = 'hot\nw1\nc'.length + 'cold\nw22\nc'.length;
    expect(cache.stats()).toMatchObject({ entries: 2, bytes: 400 + keyBytes + 2 * PART_CACHE_LIMITS.entryOverheadBytes, bytesMax: 64 * 1024 });
  });

  it('caches a part of exactly the share of its bound, and not one a byte larger', async () => {
    const cache = new PartCache(64 * 1024);
    const shareBytes = 64 * 1024 * PART_CACHE_LIMITS.partShareMax;
    const fits = vi.fn(async () => Buffer.alloc(shareBytes));
    const tooBig = vi.fn(async () => Buffer.alloc(shareBytes + 1));
    for (let i = 0; i < 2; i++) {
      await cache.get('cold', [ref('fits')], fits);
      await cache.get('cold', [ref('too-big')], tooBig);
    }
    expect(fits).toHaveBeenCalledTimes(1);
    expect(tooBig).toHaveBeenCalledTimes(2);
  });

  it('does not let a part too big to cache push out the cached ones', async () => {
    const cache = new PartCache(64 * 1024);
    const small = vi.fn(async () => Buffer.alloc(500));
    await cache.get('hot', [ref('small')], small);
    await cache.get('cold', [ref('big')], async () => Buffer.alloc(60 * 1024));
    await cache.get('hot', [ref('small')], small);
    expect(small).toHaveBeenCalledTimes(1);
    expect(cache.stats().entries).toBe(1);
  });

  it('does nothing with a bound of 0', async () => {
    const cache = new PartCache(0);
    const load = vi.fn(async () => Buffer.from('x'));
    await cache.get('hot', [ref('w')], load);
    await cache.get('hot', [ref('w')], load);
    expect(load).toHaveBeenCalledTimes(2);
  });
});

describe('reads through the gateway with the read cache on', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ env: { STRATA_READ_CACHE_BYTES: String(16 * 1024 * 1024) } });
  });
  afterAll(async () => {
    await cluster.destroy();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  function countGets(): { count: number } {
    const counter = { count: 0 };
    for (const node of cluster.nodes) {
      const original = node.client.get.bind(node.client);
      vi.spyOn(node.client, 'get').mockImplementation((id, options) => {
        counter.count++;
        return original(id, options);
      });
    }
    return counter;
  }

  const bulk = randomBytes(24 * 1024).toString('base64');
  const doc = (likes: number, text = bulk) => JSON.stringify({ like_count: likes, text });

  it('serves a document read again without asking the nodes, byte for byte', async () => {
    expect((await cluster.write('cache/a', doc(1), '&strategy=field_hybrid&hot_fields=like_count')).status).toBe(200);
    const first = await (await cluster.read('cache/a')).text();
    const gets = countGets();
    const second = await (await cluster.read('cache/a')).text();
    expect(second).toBe(first);
    expect(second).toBe(doc(1));
    expect(gets.count).toBe(0);
  });

  it('never serves a stale version: a pure hot update reads its new hot part and the cached cold one', async () => {
    await cluster.read('cache/a');
    const res = await cluster.fetch('/patch/cache%2Fa', { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: '{"like_count":2}' });
    expect(((await res.json()) as { is_pure_hot_update: boolean }).is_pure_hot_update).toBe(true);
    const gets = countGets();
    expect(await (await cluster.read('cache/a')).text()).toBe(doc(2));
    // Only the new hot part came from a node: one replica (the cold text was cached).
    expect(gets.count).toBe(1);
  });

  it('reads a rewritten cold part from the nodes, and answers 404 once the key is deleted', async () => {
    const other = randomBytes(24 * 1024).toString('base64');
    expect((await cluster.write('cache/a', doc(3, other))).status).toBe(200);
    expect(await (await cluster.read('cache/a')).text()).toBe(doc(3, other));
    expect((await cluster.fetch('/delete/cache%2Fa', { method: 'DELETE' })).status).toBe(200);
    expect((await cluster.read('cache/a')).status).toBe(404);
  });

  it('counts its hits and misses in /metrics', async () => {
    const text = await (await cluster.fetch('/metrics')).text();
    expect(Number(/^strata_read_cache_hits_total (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0);
    expect(Number(/^strata_read_cache_misses_total (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0);
  });
});
