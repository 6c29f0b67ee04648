/**
 * How cold parts are stored (internal/coldpart): compressed when that saves enough, kept as three copies beside
 * the hot replicas when small, as six shards otherwise. Every path a document takes (read, projection, pure hot
 * update, patch, delete) must work the same for each layout, /stat must say which one a key has, and
 * /storage_usage must report the efficiency figures consistently with /stat.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { blobsOfKey, json, refNames } from '../durability/durability-helpers.js';

interface ColdLayoutView {
  layout: 'shards' | 'with_replicas';
  codec: 'identity' | 'brotli' | 'deflate';
  compression_tried: boolean;
  text_bytes: number;
  stored_bytes: number;
  blob_bytes: number;
}

interface Stat {
  version: string;
  strategy: string;
  bytes: { logical: number; hot: number; cold: number; physical: number };
  hot: { node: string; blob: string; size: number }[];
  cold: { node: string; blob: string; size: number }[];
  cold_layout: ColdLayoutView | null;
  write_id: string;
}

/** A compressible text of about `bytes` with number text and unicode that must come back as written. */
function prose(bytes: number): string {
  const words = ['the', 'sensor', 'reported', 'nominal', 'values', 'héllo', 'wörld', '😀', 'during', 'calibration'];
  const out: string[] = [];
  for (let i = 0, size = 0; size < bytes; i++) {
    const w = `${words[i % words.length]}${(i * 7919) % 100_003}`;
    out.push(w);
    size += Buffer.byteLength(w) + 1;
  }
  return out.join(' ');
}

const noise = (bytes: number): string => randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes);

describe('cold part storage', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    // The defaults (brotli, 30 % minimum saving, 1 KiB kept with the replicas), stated so the test does not drift.
    cluster = await startTestCluster({
      env: { STRATA_COLD_COMPRESSION: 'brotli', STRATA_COMPRESSION_MIN_SAVING: '0.3', STRATA_INLINE_COLD_BYTES_MAX: '1024' },
    });
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  async function stat(key: string): Promise<Stat> {
    const res = await cluster.fetch(`/stat/${encodeURIComponent(key)}`);
    expect(res.status).toBe(200);
    return (await res.json()) as Stat;
  }

  async function write(key: string, text: string, query = ''): Promise<Record<string, unknown>> {
    const res = await cluster.write(key, text, query);
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    return body;
  }

  async function readText(key: string, query = ''): Promise<{ text: string; coldRead: string | null }> {
    const res = await cluster.read(key, query);
    expect(res.status).toBe(200);
    return { text: await res.text(), coldRead: res.headers.get('x-strata-cold-read') };
  }

  async function patch(key: string, body: string, type = 'application/merge-patch+json'): Promise<Record<string, unknown>> {
    const res = await cluster.fetch(`/patch/${encodeURIComponent(key)}`, { method: 'PATCH', headers: { 'content-type': type }, body });
    const out = await json(res);
    expect(res.status, JSON.stringify(out)).toBe(200);
    return out;
  }

  it('compresses a compressible cold part and reads it back byte for byte, numbers and unicode as written', async () => {
    const text = `{"like_count":7,"id":12345678901234567890,"f":1.0,"z":-0,"e":1E400,"notes":"${prose(200_000)}","tail":[1.50,"😀"]}`;
    await write('cold/prose', text, '&strategy=field_hybrid');
    const s = await stat('cold/prose');
    expect(s.cold_layout).toMatchObject({ layout: 'shards', codec: 'brotli', compression_tried: true, text_bytes: s.bytes.cold });
    expect(s.cold_layout!.stored_bytes).toBeLessThan(s.bytes.cold / 2);
    expect(s.cold).toHaveLength(6);
    // Physical bytes follow the compressed size: well under the 1.5x that raw shards would cost.
    expect(s.bytes.physical).toBeLessThan(s.bytes.logical);
    expect((await readText('cold/prose')).text).toBe(text);
    expect((await readText('cold/prose', '?fields=e,tail')).text).toBe('{"e":1E400,"tail":[1.50,"😀"]}');
    // A pure hot update reuses the compressed shards as they are: nothing is re-compressed or re-encoded.
    const updated = text.replace('"like_count":7', '"like_count":8');
    expect((await write('cold/prose', updated))['is_pure_hot_update']).toBe(true);
    const after = await stat('cold/prose');
    expect(after.cold.map((c) => c.blob)).toEqual(s.cold.map((c) => c.blob));
    expect(after.cold_layout).toEqual(s.cold_layout);
    expect((await readText('cold/prose')).text).toBe(updated);
  });

  it('stores an incompressible cold part as written, and says it tried', async () => {
    const text = `{"device_id":"d-1","battery_level":80,"sensor_raw_log":"${noise(100_000)}"}`;
    await write('cold/noise', text, '&strategy=field_hybrid');
    const s = await stat('cold/noise');
    expect(s.cold_layout).toMatchObject({ layout: 'shards', codec: 'identity', compression_tried: true, text_bytes: s.bytes.cold, stored_bytes: s.bytes.cold });
    expect((await readText('cold/noise')).text).toBe(text);
  });

  for (const strategy of ['field_hybrid', 'ec'] as const) {
    it(`keeps a small ${strategy} cold part as three copies on the replicas' nodes`, async () => {
      const key = `cold/small-${strategy}`;
      const text = '{"like_count":1,"name":"Ada","bio":"short","n":12345678901234567890}';
      await write(key, text, `&strategy=${strategy}`);
      const s = await stat(key);
      expect(s.cold_layout).toMatchObject({ layout: 'with_replicas', codec: 'identity', compression_tried: false, stored_bytes: s.bytes.cold });
      expect(s.cold).toHaveLength(3);
      expect(new Set(s.cold.map((c) => c.node)).size).toBe(3);
      if (strategy === 'field_hybrid') expect(new Set(s.cold.map((c) => c.node))).toEqual(new Set(s.hot.map((h) => h.node)));
      // Three copies of each part: exactly three times the payload bytes of the document's parts.
      expect(s.bytes.physical).toBe(3 * (s.hot[0]?.size ?? 0) + 3 * s.bytes.cold);
      expect((await readText(key)).text).toBe(text);
    });
  }

  it('serves projections, pure hot updates, patches and deletes of a document whose cold part lives with the replicas', async () => {
    const key = 'cold/small-lifecycle';
    const doc = (likes: number, bio = 'short') => `{"like_count":${likes},"name":"Ada","bio":"${bio}","stats":{"x":1.0}}`;
    await write(key, doc(1), '&strategy=field_hybrid');
    const first = await stat(key);
    expect(first.cold_layout!.layout).toBe('with_replicas');

    const hotOnly = await readText(key, '?fields=like_count');
    expect(hotOnly).toEqual({ text: '{"like_count":1}', coldRead: '0' });
    expect((await readText(key, '?fields=bio,/stats/x')).text).toBe('{"bio":"short","stats":{"x":1.0}}');

    // A pure hot update, by POST and by PATCH: the cold copies are reused, not rewritten.
    expect((await write(key, doc(2)))['is_pure_hot_update']).toBe(true);
    expect((await patch(key, '{"like_count":3}'))['is_pure_hot_update']).toBe(true);
    const afterHot = await stat(key);
    expect(afterHot.cold.map((c) => `${c.node}/${c.blob}`)).toEqual(first.cold.map((c) => `${c.node}/${c.blob}`));
    expect((await readText(key)).text).toBe(doc(3));

    // A patch of a cold member writes new copies and releases the old ones.
    expect((await patch(key, '[{"op":"replace","path":"/bio","value":"longer"}]', 'application/json-patch+json'))['is_pure_hot_update']).toBe(false);
    const afterCold = await stat(key);
    expect(afterCold.cold_layout!.layout).toBe('with_replicas');
    expect(afterCold.cold[0]!.blob).not.toBe(first.cold[0]!.blob);
    expect((await readText(key)).text).toBe(doc(3, 'longer'));
    await cluster.gateway.writes.drain();
    expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(afterCold as never).sort());

    expect((await cluster.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE' })).status).toBe(200);
    await cluster.gateway.writes.drain();
    expect(await blobsOfKey(cluster, key)).toEqual(new Set());
    expect((await cluster.read(key)).status).toBe(404);
  });

  it('moves a document between layouts when its cold part grows or shrinks', async () => {
    const key = 'cold/grows';
    await write(key, '{"like_count":1,"body":"tiny"}', '&strategy=field_hybrid');
    expect((await stat(key)).cold_layout!.layout).toBe('with_replicas');
    const big = `{"like_count":1,"body":"${noise(5000)}"}`;
    await write(key, big);
    expect((await stat(key)).cold_layout!.layout).toBe('shards');
    expect((await readText(key)).text).toBe(big);
    await write(key, '{"like_count":2,"body":"tiny again"}');
    expect((await stat(key)).cold_layout!.layout).toBe('with_replicas');
    expect((await readText(key)).text).toBe('{"like_count":2,"body":"tiny again"}');
  });
});
