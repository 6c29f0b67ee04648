import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startApi, type ApiClient } from './support.js';

describe('DELETE /delete/:key', () => {
  let api: ApiClient;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  it('answers 200 with status, key and a new, higher version', async () => {
    const written = await api.put('del/basic', { a: 1 });
    const res = await api.delete('del/basic');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; key: string; version: string };
    expect(body).toEqual({ status: 'ok', key: 'del/basic', version: expect.stringMatching(/^[1-9][0-9]*$/) });
    expect(BigInt(body.version)).toBeGreaterThan(BigInt(written.version));
  });

  for (const strategy of ['replication', 'ec', 'field_hybrid']) {
    it(`makes a deleted ${strategy} key read 404, stat 404, and disappear from the listing`, async () => {
      const key = `del/gone/${strategy}`;
      await api.put(key, { like_count: 1, cold: 'x' }, `&strategy=${strategy}`);
      await api.put(`del/gone/${strategy}-sibling`, { a: 1 });
      expect((await api.delete(key)).status).toBe(200);
      await expectError(await api.read(key), 404, 'NOT_FOUND');
      await expectError(await api.read(key, '?fields=like_count'), 404, 'NOT_FOUND');
      await expectError(await api.stat(key), 404, 'NOT_FOUND');
      const list = (await (await api.list(`prefix=${encodeURIComponent(`del/gone/${strategy}`)}`)).json()) as { keys: string[] };
      expect(list.keys).toEqual([`del/gone/${strategy}-sibling`]);
    });
  }

  it('answers 404 NOT_FOUND for a key never written', async () => {
    await expectError(await api.delete('del/never'), 404, 'NOT_FOUND');
    expect((await api.read('del/never')).status).toBe(404);
  });

  it('answers 404 NOT_FOUND when deleting a key twice', async () => {
    await api.put('del/twice', { a: 1 });
    expect((await api.delete('del/twice')).status).toBe(200);
    await expectError(await api.delete('del/twice'), 404, 'NOT_FOUND');
  });

  it('gives a re-created key a version higher than its delete, and reads the new document', async () => {
    const first = await api.put('del/recreate', { gen: 1 });
    const del = (await (await api.delete('del/recreate')).json()) as { version: string };
    const second = await api.put('del/recreate', { gen: 2 });
    expect(BigInt(del.version)).toBeGreaterThan(BigInt(first.version));
    expect(BigInt(second.version)).toBeGreaterThan(BigInt(del.version));
    const read = await api.read('del/recreate');
    expect(read.status).toBe(200);
    expect(read.headers.get('x-strata-version')).toBe(second.version);
    expect(await read.json()).toEqual({ gen: 2 });
  });

  it('lets a re-created key choose its strategy afresh (the deleted one is not inherited)', async () => {
    await api.put('del/strategy', { a: 1 }, '&strategy=ec');
    expect((await api.delete('del/strategy')).status).toBe(200);
    const again = await api.put('del/strategy', { a: 1 });
    expect(again.strategy).toBe('field_hybrid');
  });

  it('honours If-Match: deletes on the current version, 412 on a stale one', async () => {
    const first = await api.put('del/if-match', { a: 1 });
    const second = await api.put('del/if-match', { a: 2 });
    const before = await api.snapshot('del/if-match');
    await expectError(await api.delete('del/if-match', { 'if-match': `"${first.version}"` }), 412, 'VERSION_MISMATCH');
    await api.expectUnchanged('del/if-match', before);
    expect((await api.delete('del/if-match', { 'if-match': `"${second.version}"` })).status).toBe(200);
    expect((await api.read('del/if-match')).status).toBe(404);
  });

  it('answers 412 for If-Match on an absent key', async () => {
    await expectError(await api.delete('del/if-match-absent', { 'if-match': '"1"' }), 412, 'VERSION_MISMATCH');
  });
});
