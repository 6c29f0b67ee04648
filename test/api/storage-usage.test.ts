import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiClient, type StatBody } from './support.js';

interface Usage {
  total_system_size: number;
  logical_bytes: number;
  amplification: number;
  live_keys: number;
  pending_gc_bytes: number;
  reclaimable_bytes: number;
  reclaimed_bytes: number;
  per_node: Record<
    string,
    { state: string; blobs: number | null; stored_bytes: number | null; referenced_bytes: number; reclaimable_bytes: number | null }
  >;
}

describe('GET /storage_usage', () => {
  let api: ApiClient;
  const live = new Set<string>();

  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  async function usage(): Promise<Usage> {
    const res = await api.fetch('/storage_usage');
    expect(res.status).toBe(200);
    return (await res.json()) as Usage;
  }

  /** Sum of `bytes.physical` and `bytes.logical` over /stat of every live key. */
  async function statTotals(): Promise<{ physical: number; logical: number }> {
    let physical = 0;
    let logical = 0;
    for (const key of live) {
      const stat = (await (await api.stat(key)).json()) as StatBody;
      physical += stat.bytes.physical;
      logical += stat.bytes.logical;
    }
    return { physical, logical };
  }

  async function put(key: string, doc: unknown, query: string): Promise<void> {
    await api.put(key, doc, query);
    live.add(key);
  }

  const doc = (i: number) => ({ like_count: i, view_count: i * 2, body: `document ${i} `.repeat(40), nested: { a: [i, i + 1] } });

  it('answers zero for an empty cluster', async () => {
    const u = await usage();
    expect(u.total_system_size).toBe(0);
    expect(u.logical_bytes).toBe(0);
    expect(u.live_keys).toBe(0);
    expect(u.amplification).toBe(0);
    expect(Object.keys(u.per_node).sort()).toEqual(['node-1', 'node-2', 'node-3', 'node-4', 'node-5', 'node-6']);
  });

  it('answers an amplification of 3.0 for replication-only data', async () => {
    for (let i = 0; i < 5; i++) await put(`usage/rep/${i}`, doc(i), '&strategy=replication');
    const u = await usage();
    const totals = await statTotals();
    expect(u.total_system_size).toBe(totals.physical);
    expect(u.logical_bytes).toBe(totals.logical);
    expect(u.live_keys).toBe(5);
    expect(u.amplification).toBeCloseTo(3.0, 3);
  });

  it('equals the sum of /stat physical bytes of live keys across all strategies', async () => {
    for (let i = 0; i < 4; i++) await put(`usage/ec/${i}`, doc(i), '&strategy=ec');
    for (let i = 0; i < 4; i++) await put(`usage/hybrid/${i}`, doc(i), '&strategy=field_hybrid&hot_fields=like_count');
    const u = await usage();
    const totals = await statTotals();
    expect(u.total_system_size).toBe(totals.physical);
    expect(u.logical_bytes).toBe(totals.logical);
    expect(u.live_keys).toBe(live.size);
    expect(u.amplification).toBeGreaterThan(1.5);
    expect(u.amplification).toBeLessThan(3.0);
    const perNodeReferenced = Object.values(u.per_node).reduce((s, n) => s + n.referenced_bytes, 0);
    expect(perNodeReferenced).toBe(u.total_system_size);
  });

  it('counts an overwritten key once, at its new size', async () => {
    await put('usage/rep/0', { small: true }, '');
    await put('usage/hybrid/0', { ...doc(0), like_count: 999 }, '&hot_fields=like_count');
    const u = await usage();
    const totals = await statTotals();
    expect(u.total_system_size).toBe(totals.physical);
    expect(u.live_keys).toBe(live.size);
  });

  it('stops counting a deleted key at once', async () => {
    const before = await usage();
    const stat = (await (await api.stat('usage/ec/0')).json()) as StatBody;
    expect((await api.delete('usage/ec/0')).status).toBe(200);
    live.delete('usage/ec/0');
    const after = await usage();
    expect(after.total_system_size).toBe(before.total_system_size - stat.bytes.physical);
    expect(after.total_system_size).toBe((await statTotals()).physical);
    expect(after.live_keys).toBe(before.live_keys - 1);
  });

  it('answers total_system_size 0 as soon as every key is deleted', async () => {
    for (const key of [...live]) {
      expect((await api.delete(key)).status).toBe(200);
      live.delete(key);
    }
    const u = await usage();
    expect(u.total_system_size).toBe(0);
    expect(u.logical_bytes).toBe(0);
    expect(u.live_keys).toBe(0);
    expect(u.amplification).toBe(0);
    for (const node of Object.values(u.per_node)) expect(node.referenced_bytes).toBe(0);
    // The released blobs wait for the healer's garbage collection; they are reported, not counted as live.
    expect(u.pending_gc_bytes).toEqual(expect.any(Number));
    // What compaction would give back on the nodes' disks: the deletes' tombstones and dead needles at least.
    expect(u.reclaimable_bytes).toBeGreaterThan(0);
    for (const node of Object.values(u.per_node)) expect(node.reclaimable_bytes).toEqual(expect.any(Number));
  });
});
