import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, logicalBytes, startApi, type ApiClient, type StatBody } from './support.js';
import { waitUntil } from '../helpers/wait.js';

describe('GET /stat/:key', () => {
  let api: ApiClient;
  const doc = { like_count: 5, view_count: 6, body: 'x'.repeat(500), stats: { views: 1 } };
  const blobState = expect.stringMatching(/^(ok|missing|corrupt|unknown)$/);
  const isoDate = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);

  beforeAll(async () => {
    // These tests pin the sharded, uncompressed layout of cold parts (their documents are small and compressible,
    // which by default are compressed and kept with the replicas): test/api/cold-storage.test.ts covers those.
    api = await startApi({ env: { STRATA_INLINE_COLD_BYTES_MAX: '0', STRATA_COLD_COMPRESSION: 'off' } });
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  async function stat(key: string): Promise<{ res: Response; body: StatBody }> {
    const res = await api.stat(key);
    expect(res.status).toBe(200);
    return { res, body: (await res.json()) as StatBody };
  }

  it('answers the documented metadata of a field_hybrid key, and no document', async () => {
    const written = await api.put('stat/hybrid', doc, '&strategy=field_hybrid&hot_fields=like_count,/stats/views');
    const { res, body } = await stat('stat/hybrid');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(body).toMatchObject({
      key: 'stat/hybrid',
      version: written.version,
      strategy: 'field_hybrid',
      hot_fields: ['like_count', '/stats/views'],
      bytes: { logical: logicalBytes(doc), hot: written.bytes.hot, cold: written.bytes.cold, physical: expect.any(Number) },
      cold_hash: expect.stringMatching(/^[0-9a-f]{16,}$/),
      dirty: false,
      created_at: isoDate,
      updated_at: isoDate,
    });
    expect(body).not.toHaveProperty('body');
    expect(JSON.stringify(body)).not.toContain('x'.repeat(100));
    expect(body.hot).toHaveLength(3);
    for (const h of body.hot) expect(h).toMatchObject({ node: expect.stringMatching(/^node-\d+$/), blob: expect.any(String), state: 'ok' });
    expect(new Set(body.hot.map((h) => h.node)).size).toBe(3);
    expect(body.cold).toHaveLength(6);
    body.cold.forEach((c, i) => expect(c).toMatchObject({ index: i, node: expect.stringMatching(/^node-\d+$/), blob: expect.any(String), state: blobState }));
    expect(new Set(body.cold.map((c) => c.node)).size).toBe(6);
    // Physical bytes: three hot replicas plus six shards of at least a quarter of the cold text each.
    expect(body.bytes.physical).toBeGreaterThanOrEqual(3 * body.bytes.hot + 1.5 * body.bytes.cold);
  });

  it('answers physical bytes of three replicas for a replicated key', async () => {
    await api.put('stat/replication', doc, '&strategy=replication');
    const { body } = await stat('stat/replication');
    expect(body.strategy).toBe('replication');
    expect(body.bytes).toEqual({ logical: logicalBytes(doc), hot: logicalBytes(doc), cold: 0, physical: 3 * logicalBytes(doc) });
    expect(body.cold).toEqual([]);
    expect(body.cold_hash).toBeNull();
  });

  it('answers six shards and about 1.5x physical bytes for an ec key', async () => {
    await api.put('stat/ec', doc, '&strategy=ec');
    const { body } = await stat('stat/ec');
    expect(body.strategy).toBe('ec');
    expect(body.hot).toEqual([]);
    expect(body.cold).toHaveLength(6);
    expect(body.bytes.physical).toBeGreaterThanOrEqual(1.5 * logicalBytes(doc));
    expect(body.bytes.physical).toBeLessThan(1.5 * logicalBytes(doc) + 6 * 8 + 1);
  });

  it('answers the current version in ETag and X-Strata-Version', async () => {
    const written = await api.put('stat/etag', { a: 1 });
    const { res } = await stat('stat/etag');
    expect(res.headers.get('etag')).toBe(`"${written.version}"`);
    expect(res.headers.get('x-strata-version')).toBe(written.version);
  });

  it('keeps created_at and moves updated_at forward on a later write', async () => {
    await api.put('stat/times', { a: 1 });
    const { body: first } = await stat('stat/times');
    // The next write must get a later timestamp: wait for the clock to pass the first one (a condition, not a
    // fixed wait; it holds at once on a slow machine).
    await waitUntil('the clock to pass the first write', () => Date.now() > Date.parse(first.updated_at));
    await api.put('stat/times', { a: 2 });
    const { body: second } = await stat('stat/times');
    expect(second.created_at).toBe(first.created_at);
    expect(Date.parse(second.updated_at)).toBeGreaterThan(Date.parse(first.updated_at));
  });

  it('keeps every cold blob on a pure hot update and replaces them on a cold change', async () => {
    await api.put('stat/pure', doc, '&hot_fields=like_count');
    const { body: before } = await stat('stat/pure');
    await api.put('stat/pure', { ...doc, like_count: 6 }, '&hot_fields=like_count');
    const { body: hotOnly } = await stat('stat/pure');
    expect(hotOnly.cold.map((c) => c.blob)).toEqual(before.cold.map((c) => c.blob));
    expect(hotOnly.hot.map((h) => h.blob)).not.toEqual(before.hot.map((h) => h.blob));
    await api.put('stat/pure', { ...doc, body: 'y' }, '&hot_fields=like_count');
    const { body: cold } = await stat('stat/pure');
    for (const c of cold.cold) expect(before.cold.map((b) => b.blob)).not.toContain(c.blob);
  });

  it('answers 404 NOT_FOUND for an absent key', async () => {
    await expectError(await api.stat('stat/absent'), 404, 'NOT_FOUND');
  });
});
