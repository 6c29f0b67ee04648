import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, logicalBytes, startApi, type ApiClient, type StatBody, type WriteBody } from './support.js';

describe('PATCH /patch/:key', () => {
  let api: ApiClient;
  const doc = { like_count: 1, view_count: 2, title: 'cold title', stats: { views: 3, notes: 'x' }, list: [1, 2] };
  let counter = 0;
  /** A fresh key holding `doc` as field_hybrid with like_count and /stats/views hot. */
  async function fresh(strategy = 'field_hybrid'): Promise<{ key: string; written: WriteBody }> {
    const key = `patch/${strategy}/${++counter}`;
    const written = await api.put(key, doc, `&strategy=${strategy}&hot_fields=like_count,/stats/views`);
    return { key, written };
  }
  async function stat(key: string): Promise<StatBody> {
    return (await (await api.stat(key)).json()) as StatBody;
  }

  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  it('applies a JSON Patch sent as application/json-patch+json', async () => {
    const { key, written } = await fresh();
    const res = await api.patch(
      key,
      [
        { op: 'replace', path: '/title', value: 'new title' },
        { op: 'add', path: '/list/-', value: 3 },
        { op: 'remove', path: '/stats/notes' },
        { op: 'test', path: '/like_count', value: 1 },
      ],
      'application/json-patch+json',
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as WriteBody;
    const expected = { like_count: 1, view_count: 2, title: 'new title', stats: { views: 3 }, list: [1, 2, 3] };
    expect(body.status).toBe('ok');
    expect(body.key).toBe(key);
    expect(BigInt(body.version)).toBeGreaterThan(BigInt(written.version));
    expect(body.strategy).toBe('field_hybrid');
    expect(body.bytes.logical).toBe(logicalBytes(expected));
    expect(body.partial).toBe(false);
    expect(typeof body.latency_ms).toBe('number');
    expect(await (await api.read(key)).text()).toBe(JSON.stringify(expected));
  });

  it('applies a JSON Patch sent as application/json with an array body', async () => {
    const { key } = await fresh();
    const res = await api.patch(key, [{ op: 'replace', path: '/title', value: 't2' }], 'application/json');
    expect(res.status).toBe(200);
    expect(((await (await api.read(key)).json()) as { title: string }).title).toBe('t2');
  });

  it('applies a Merge Patch sent as application/merge-patch+json, null removing members', async () => {
    const { key } = await fresh();
    const res = await api.patch(key, { title: null, stats: { notes: 'y' }, added: true }, 'application/merge-patch+json');
    expect(res.status).toBe(200);
    expect(await (await api.read(key)).text()).toBe(
      JSON.stringify({ like_count: 1, view_count: 2, stats: { views: 3, notes: 'y' }, list: [1, 2], added: true }),
    );
  });

  it('applies a Merge Patch sent as application/json with an object body', async () => {
    const { key } = await fresh();
    const res = await api.patch(key, { view_count: 20 }, 'application/json; charset=utf-8');
    expect(res.status).toBe(200);
    expect(((await (await api.read(key)).json()) as { view_count: number }).view_count).toBe(20);
  });

  it('keeps number text and member order of the untouched members', async () => {
    const key = 'patch/numbers';
    const text = '{"big":12345678901234567890,"price":19.990,"neg":-0,"e":1E400,"a":1}';
    await api.put(key, text, '&strategy=ec');
    expect((await api.patch(key, { a: 2 })).status).toBe(200);
    expect(await (await api.read(key)).text()).toBe('{"big":12345678901234567890,"price":19.990,"neg":-0,"e":1E400,"a":2}');
  });

  it('is a pure hot update when it changes only hot fields: the cold shards are kept', async () => {
    const { key } = await fresh();
    const before = await stat(key);
    const res = await api.patch(key, [{ op: 'replace', path: '/like_count', value: 100 }], 'application/json-patch+json');
    const body = (await res.json()) as WriteBody;
    expect(res.status).toBe(200);
    expect(body.is_pure_hot_update).toBe(true);
    const after = await stat(key);
    expect(after.cold.map((c) => c.blob)).toEqual(before.cold.map((c) => c.blob));
    expect(after.cold_hash).toBe(before.cold_hash);
    const merge = (await (await api.patch(key, { stats: { views: 99 } }, 'application/merge-patch+json')).json()) as WriteBody;
    expect(merge.is_pure_hot_update).toBe(true);
    expect(merge.bytes.logical).toBe(logicalBytes({ ...doc, like_count: 100, stats: { views: 99, notes: 'x' } }));
    expect(await (await api.read(key)).json()).toEqual({ ...doc, like_count: 100, stats: { views: 99, notes: 'x' } });
  });

  it('is not a pure hot update when it changes a cold field: the cold shards are replaced', async () => {
    const { key } = await fresh();
    const before = await stat(key);
    const res = await api.patch(key, { title: 'changed' }, 'application/merge-patch+json');
    const body = (await res.json()) as WriteBody;
    expect(body.is_pure_hot_update).toBe(false);
    const after = await stat(key);
    expect(after.cold.map((c) => c.blob)).not.toEqual(before.cold.map((c) => c.blob));
    expect(after.cold_hash).not.toBe(before.cold_hash);
  });

  it('keeps the key\'s strategy and hot fields', async () => {
    for (const strategy of ['replication', 'ec', 'field_hybrid']) {
      const { key } = await fresh(strategy);
      const body = (await (await api.patch(key, { title: 'p' })).json()) as WriteBody;
      expect(body.strategy).toBe(strategy);
      const after = await stat(key);
      expect(after.strategy).toBe(strategy);
      if (strategy === 'field_hybrid') expect(after.hot_fields).toEqual(['like_count', '/stats/views']);
      expect((await api.read(key)).headers.get('x-strata-strategy')).toBe(strategy);
    }
  });

  it('removes a hot member with a hot-only patch and leaves the cold part as it was', async () => {
    for (const [what, patch, type] of [
      ['merge null', { like_count: null }, 'application/merge-patch+json'],
      ['json remove', [{ op: 'remove', path: '/stats/views' }], 'application/json-patch+json'],
    ] as const) {
      const { key } = await fresh();
      const before = await stat(key);
      const res = await api.patch(key, patch, type);
      expect(res.status, what).toBe(200);
      const body = (await res.json()) as WriteBody;
      const expected = what === 'merge null' ? { ...doc, like_count: undefined } : { ...doc, stats: { notes: 'x' } };
      const text = JSON.stringify(expected);
      expect(await (await api.read(key)).text(), what).toBe(text);
      expect(body.bytes.logical, what).toBe(Buffer.byteLength(text));
      const after = await stat(key);
      expect(after.cold.map((c) => c.blob), what).toEqual(before.cold.map((c) => c.blob));
    }
  });

  it('adds a new member that is a configured hot field and makes it hot', async () => {
    const key = 'patch/new-hot';
    await api.put(key, { title: 't' }, '&hot_fields=like_count');
    const res = await api.patch(key, { like_count: 5 }, 'application/merge-patch+json');
    const body = (await res.json()) as WriteBody;
    expect(body.hot_fields).toEqual(['like_count']);
    expect(await (await api.read(key)).json()).toEqual({ title: 't', like_count: 5 });
    const hotOnly = await api.read(key, '?fields=like_count');
    expect(hotOnly.headers.get('x-strata-cold-read')).toBe('0');
    expect(await hotOnly.json()).toEqual({ like_count: 5 });
  });

  it('is not a pure hot update for a patch of the same field under ec or replication', async () => {
    for (const strategy of ['ec', 'replication']) {
      const { key } = await fresh(strategy);
      const body = (await (await api.patch(key, { like_count: 2 })).json()) as WriteBody;
      expect(body.is_pure_hot_update).toBe(false);
    }
  });

  it('loses no update when patches race: ten concurrent appends all land', async () => {
    for (const strategy of ['field_hybrid', 'ec']) {
      const key = `patch/race/${strategy}`;
      await api.put(key, { like_count: 0, items: [] as number[] }, `&strategy=${strategy}&hot_fields=like_count`);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => api.patch(key, [{ op: 'add', path: '/items/-', value: i }], 'application/json-patch+json')),
      );
      for (const r of results) expect(r.status).toBe(200);
      const versions = await Promise.all(results.map(async (r) => ((await r.json()) as WriteBody).version));
      expect(new Set(versions).size).toBe(10);
      const final = (await (await api.read(key)).json()) as { items: number[] };
      expect([...final.items].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
  });

  it('loses no update when ten merge patches adding different members race', async () => {
    const key = 'patch/race/hot';
    await api.put(key, { like_count: 0, cold: 'c' }, '&hot_fields=like_count');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => api.patch(key, { [`extra_${i}`]: i, like_count: i }, 'application/merge-patch+json')),
    );
    for (const r of results) expect(r.status).toBe(200);
    const final = (await (await api.read(key)).json()) as Record<string, number>;
    for (let i = 0; i < 10; i++) expect(final[`extra_${i}`]).toBe(i);
  });

  it('answers 404 NOT_FOUND for an absent or deleted key and does not create it', async () => {
    await expectError(await api.patch('patch/absent', { a: 1 }), 404, 'NOT_FOUND');
    expect((await api.read('patch/absent')).status).toBe(404);
    const { key } = await fresh();
    expect((await api.delete(key)).status).toBe(200);
    await expectError(await api.patch(key, [{ op: 'add', path: '/a', value: 1 }], 'application/json-patch+json'), 404, 'NOT_FOUND');
    expect((await api.read(key)).status).toBe(404);
  });

  describe('422 PATCH_FAILED, changing nothing', () => {
    const failing: [string, unknown][] = [
      ['a failed test op', [{ op: 'test', path: '/title', value: 'other' }]],
      ['a failed test op after a successful one (atomic)', [{ op: 'replace', path: '/title', value: 'x' }, { op: 'test', path: '/like_count', value: 999 }]],
      ['a path that does not exist', [{ op: 'replace', path: '/nope', value: 1 }]],
      ['removing a path that does not exist', [{ op: 'remove', path: '/stats/nope' }]],
      ['a bad array index', [{ op: 'replace', path: '/list/9', value: 1 }]],
      ['a path that is not a JSON Pointer', [{ op: 'add', path: 'title', value: 1 }]],
      ['a bad pointer escape', [{ op: 'add', path: '/a~2', value: 1 }]],
      ['an unknown op', [{ op: 'frobnicate', path: '/title' }]],
      ['an op without its value', [{ op: 'add', path: '/x' }]],
      ['an op that is not an object', [42]],
      ['a move from a missing path', [{ op: 'move', from: '/nope', path: '/x' }]],
      ['a move into its own child', [{ op: 'move', from: '/stats', path: '/stats/child' }]],
      ['replacing the whole document with a non-object', [{ op: 'replace', path: '', value: [1] }]],
      ['a failed test op on a hot field', [{ op: 'test', path: '/like_count', value: 2 }]],
      ['replacing a hot field below a missing parent', [{ op: 'replace', path: '/like_count/deeper', value: 2 }]],
    ];
    for (const [what, ops] of failing) {
      it(`refuses ${what}`, async () => {
        const { key } = await fresh();
        const before = await api.snapshot(key);
        const error = await expectError(await api.patch(key, ops, 'application/json-patch+json'), 422, 'PATCH_FAILED');
        expect(error.message.length).toBeGreaterThan(10);
        await api.expectUnchanged(key, before);
      });
    }

    it('refuses a JSON Patch body that is not an array', async () => {
      const { key } = await fresh();
      const before = await api.snapshot(key);
      await expectError(await api.patch(key, { op: 'add', path: '/a', value: 1 }, 'application/json-patch+json'), 422, 'PATCH_FAILED');
      await api.expectUnchanged(key, before);
    });

    it('refuses an application/json patch that is neither an array nor an object', async () => {
      const { key } = await fresh();
      const before = await api.snapshot(key);
      for (const body of ['42', '"text"', 'null', 'true']) {
        await expectError(await api.patch(key, body, 'application/json'), 422, 'PATCH_FAILED');
      }
      await api.expectUnchanged(key, before);
    });

    it('refuses a merge patch body that is not an object', async () => {
      const { key } = await fresh();
      const before = await api.snapshot(key);
      for (const body of ['[1]', '42', 'null']) {
        const res = await api.patch(key, body, 'application/merge-patch+json');
        // RFC 7396 would replace the whole target; documents must stay objects, so this is refused.
        await expectError(res, 422, 'PATCH_FAILED');
      }
      await api.expectUnchanged(key, before);
    });
  });

  it('refuses invalid JSON in a patch with 422 INVALID_JSON', async () => {
    const { key } = await fresh();
    const before = await api.snapshot(key);
    const error = await expectError(await api.patch(key, '[{"op":"add",', 'application/json-patch+json'), 422, 'INVALID_JSON');
    expect(error.message).toMatch(/byte \d+/);
    await api.expectUnchanged(key, before);
  });

  it('refuses an unsupported Content-Type on a patch with 415', async () => {
    const { key } = await fresh();
    const before = await api.snapshot(key);
    for (const type of ['text/plain', 'application/xml', 'application/x-www-form-urlencoded']) {
      await expectError(await api.patch(key, { a: 1 }, type), 415, 'UNSUPPORTED_MEDIA_TYPE');
    }
    await api.expectUnchanged(key, before);
  });
});
