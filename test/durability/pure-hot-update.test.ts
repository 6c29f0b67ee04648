/**
 * Guarantee: updating only hot fields never touches the cold tier (api.md, POST /write and PATCH; architecture.md,
 * "Write" step 2). Every node client's `put` is spied on, so a shard written by mistake is seen even if it were
 * deleted again; the inventory and /stat show what stayed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BlobHeader } from '../../internal/blobstore/blob-store.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { docText, fullInventory, json, stat, type StatBody } from './durability-helpers.js';

const HOT = '&hot_fields=like_count,view_count,/stats/views';

describe('pure hot updates', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster();
  });
  afterAll(async () => {
    await cluster.destroy();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Runs `update`, recording every part any node was asked to store and the shard blobs before and after. */
  async function observe(key: string, update: () => Promise<Response>) {
    const before = await stat(cluster, key);
    const shardsBefore = await shardBlobs();
    const parts: string[] = [];
    for (const node of cluster.nodes) {
      const original = node.client.put.bind(node.client);
      vi.spyOn(node.client, 'put').mockImplementation((header: BlobHeader, data: Buffer, options) => {
        parts.push(header.part);
        return original(header, data, options);
      });
    }
    const res = await update();
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    vi.restoreAllMocks();
    await cluster.gateway.writes.drain();
    const after = await stat(cluster, key);
    const shardsAfter = await shardBlobs();
    return { body, before, after, parts, shardsBefore, shardsAfter };
  }

  async function shardBlobs(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const [name, info] of await fullInventory(cluster)) if (info.part.startsWith('shard-')) out.add(name);
    return out;
  }

  const coldIds = (s: StatBody) => s.cold.map((r) => `${r.node}/${r.blob}`);

  async function expectPureHot(o: Awaited<ReturnType<typeof observe>>, key: string, expected: string): Promise<void> {
    expect(o.body.is_pure_hot_update).toBe(true);
    expect(o.parts.filter((p) => p.startsWith('shard-'))).toEqual([]);
    expect(o.parts.filter((p) => p.startsWith('hot-')).length).toBe(3);
    expect([...o.shardsAfter].filter((s) => !o.shardsBefore.has(s))).toEqual([]);
    expect(coldIds(o.after)).toEqual(coldIds(o.before));
    expect(o.after.cold.length).toBe(6);
    expect(BigInt(o.after.version)).toBeGreaterThan(BigInt(o.before.version));
    const read = await cluster.read(key);
    expect(read.status).toBe(200);
    expect(await read.text()).toBe(expected);
  }

  async function expectReencoded(o: Awaited<ReturnType<typeof observe>>, key: string, expected: string): Promise<void> {
    expect(o.body.is_pure_hot_update).toBe(false);
    expect(o.parts.filter((p) => p.startsWith('shard-')).sort()).toEqual(['shard-0', 'shard-1', 'shard-2', 'shard-3', 'shard-4', 'shard-5']);
    const fresh = coldIds(o.after).filter((id) => !coldIds(o.before).includes(id));
    expect(fresh.length).toBe(6);
    const read = await cluster.read(key);
    expect(await read.text()).toBe(expected);
  }

  async function seed(key: string, text: string): Promise<void> {
    const res = await cluster.write(key, text, `&strategy=field_hybrid${HOT}`);
    expect(res.status).toBe(200);
  }

  it('a POST that changes only hot fields writes no shard and keeps every cold blob', async () => {
    const key = 'hot/post';
    await seed(key, docText(1, 40_000));
    const next = docText(1, 40_000, { like_count: 99, view_count: 12345678901234567890, views: 3 });
    const o = await observe(key, () => cluster.write(key, next, HOT));
    await expectPureHot(o, key, next);
  });

  it('a POST without hot_fields uses the configured hot fields and is pure hot once the cold part matches', async () => {
    const key = 'hot/post-no-fields';
    await seed(key, docText(2, 40_000));
    const next = docText(2, 40_000, { views: 77 });
    const o = await observe(key, () => cluster.write(key, next));
    // Without hot_fields the configured default (like_count, view_count) applies, so /stats/views is cold now:
    // a cold change. Stating the same hot fields again is what keeps the update pure hot.
    expect(o.body.is_pure_hot_update).toBe(false);
    const again = docText(2, 40_000, { views: 77, like_count: 5 });
    const o2 = await observe(key, () => cluster.write(key, again));
    await expectPureHot(o2, key, again);
  });

  it('a merge patch of hot fields writes no shard', async () => {
    const key = 'hot/merge';
    await seed(key, docText(3, 40_000));
    const o = await observe(key, () =>
      cluster.fetch(`/patch/${encodeURIComponent(key)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json' },
        body: '{"like_count":4242,"stats":{"views":8}}',
      }),
    );
    await expectPureHot(o, key, docText(3, 40_000, { like_count: 4242, views: 8 }));
  });

  it('a JSON Patch of hot fields writes no shard', async () => {
    const key = 'hot/json-patch';
    await seed(key, docText(4, 40_000));
    const o = await observe(key, () =>
      cluster.fetch(`/patch/${encodeURIComponent(key)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: JSON.stringify([
          { op: 'test', path: '/like_count', value: 4 },
          { op: 'replace', path: '/like_count', value: 5 },
          { op: 'replace', path: '/view_count', value: 6 },
          { op: 'replace', path: '/stats/views', value: 7 },
        ]),
      }),
    );
    await expectPureHot(o, key, docText(4, 40_000, { like_count: 5, view_count: 6, views: 7 }));
  });

  it('a JSON Patch removing a hot member writes no shard, and adding it back keeps the cold shards', async () => {
    const key = 'hot/remove';
    await seed(key, docText(13, 40_000));
    const patch = (ops: unknown) => () =>
      cluster.fetch(`/patch/${encodeURIComponent(key)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: JSON.stringify(ops),
      });
    const removed = docText(13, 40_000).replace('"like_count":13,', '');
    const o = await observe(key, patch([{ op: 'remove', path: '/like_count' }]));
    await expectPureHot(o, key, removed);
    // Back again (at the end, where JSON Patch `add` puts a new member): the cold part is still the same text.
    const back = removed.replace('"done":true}', '"done":true,"like_count":14}');
    const o2 = await observe(key, patch([{ op: 'add', path: '/like_count', value: 14 }]));
    expect(o2.body.is_pure_hot_update).toBe(true);
    expect(o2.parts.filter((p) => p.startsWith('shard-'))).toEqual([]);
    expect(coldIds(o2.after)).toEqual(coldIds(o2.before));
    expect(await (await cluster.read(key)).text()).toBe(back);
  });

  it('white space differences in the body stay a pure hot update', async () => {
    const key = 'hot/whitespace';
    const compact = docText(5, 40_000);
    await seed(key, compact);
    const next = docText(5, 40_000, { like_count: 6 });
    // Pretty-printed: same members, same order, same number text; only insignificant white space differs.
    const spaced = next.replace(/,"/g, ',\n  "').replace(/":/g, '" :  ').replace(/^\{/, '{\r\n\t');
    expect(spaced).not.toBe(next);
    const o = await observe(key, () => cluster.write(key, spaced, HOT));
    await expectPureHot(o, key, next);
  });

  it('a changed cold value re-encodes the cold part', async () => {
    const key = 'cold/value';
    await seed(key, docText(6, 40_000));
    const next = docText(6, 40_000).replace('"price":19.90', '"price":19.91');
    const o = await observe(key, () => cluster.write(key, next, HOT));
    await expectReencoded(o, key, next);
  });

  it('the same number written with other digits is a cold change', async () => {
    const key = 'cold/number-text';
    await seed(key, docText(7, 40_000));
    // 19.90 and 19.9 are equal numbers but different text; numbers are carried as their text.
    const next = docText(7, 40_000).replace('"price":19.90', '"price":19.9');
    const o = await observe(key, () => cluster.write(key, next, HOT));
    await expectReencoded(o, key, next);
  });

  it('a new cold member re-encodes the cold part', async () => {
    const key = 'cold/new-member';
    await seed(key, docText(8, 40_000));
    const next = docText(8, 40_000).replace('"done":true}', '"done":true,"extra":1}');
    const o = await observe(key, () => cluster.write(key, next, HOT));
    await expectReencoded(o, key, next);
  });

  it('a new cold member added by a merge patch re-encodes the cold part', async () => {
    const key = 'cold/merge-new-member';
    await seed(key, docText(9, 40_000));
    const o = await observe(key, () =>
      cluster.fetch(`/patch/${encodeURIComponent(key)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json' },
        body: '{"like_count":1,"extra":"x"}',
      }),
    );
    await expectReencoded(o, key, docText(9, 40_000, { like_count: 1 }).replace('"done":true}', '"done":true,"extra":"x"}'));
  });

  it('a change of cold member order re-encodes the cold part', async () => {
    const key = 'cold/order';
    await seed(key, docText(10, 40_000));
    const next = docText(10, 40_000).replace('"price":19.90,', '').replace('"done":true}', '"done":true,"price":19.90}');
    const o = await observe(key, () => cluster.write(key, next, HOT));
    await expectReencoded(o, key, next);
  });

  it('moving a hot member among cold members keeps the cold shards and reads back in the new order', async () => {
    const key = 'hot/moved';
    await seed(key, docText(11, 40_000));
    // like_count moves to the end; the cold text (members without the hot ones) is unchanged.
    const next = docText(11, 40_000).replace('"like_count":11,', '').replace('"done":true}', '"done":true,"like_count":12}');
    const o = await observe(key, () => cluster.write(key, next, HOT));
    await expectPureHot(o, key, next);
  });

  it('hot projections of a pure hot update do not read the cold tier', async () => {
    const key = 'hot/projection';
    await seed(key, docText(12, 40_000));
    const next = docText(12, 40_000, { like_count: 13 });
    const o = await observe(key, () => cluster.write(key, next, HOT));
    await expectPureHot(o, key, next);
    const res = await cluster.read(key, '?fields=like_count,/stats/views');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-strata-cold-read')).toBe('0');
    expect(await res.text()).toBe('{"like_count":13,"stats":{"views":12}}');
  });
});
