import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, quoted, startApi, type ApiClient, type WriteBody } from './support.js';

describe('conditional requests (If-Match, If-None-Match)', () => {
  let api: ApiClient;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  describe('If-Match on /write', () => {
    it('applies the write when the version matches', async () => {
      const first = await api.put('im/write/match', { a: 1 });
      const res = await api.write('im/write/match', { a: 2 }, '', { 'if-match': quoted(first.version) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as WriteBody;
      expect(BigInt(body.version)).toBeGreaterThan(BigInt(first.version));
      expect(await (await api.read('im/write/match')).json()).toEqual({ a: 2 });
    });

    it('accepts a weak ETag from a projection as the version', async () => {
      const first = await api.put('im/write/weak', { a: 1 });
      const res = await api.write('im/write/weak', { a: 2 }, '', { 'if-match': `W/"${first.version}"` });
      expect(res.status).toBe(200);
    });

    it('answers 412 VERSION_MISMATCH for a stale version and changes nothing', async () => {
      const first = await api.put('im/write/stale', { a: 1 });
      await api.put('im/write/stale', { a: 2 });
      const before = await api.snapshot('im/write/stale');
      await expectError(
        await api.write('im/write/stale', { a: 3 }, '', { 'if-match': quoted(first.version) }),
        412,
        'VERSION_MISMATCH',
      );
      await api.expectUnchanged('im/write/stale', before);
    });

    it('answers 412 VERSION_MISMATCH when the key is absent, and does not create it', async () => {
      await expectError(await api.write('im/write/absent', { a: 1 }, '', { 'if-match': '"1"' }), 412, 'VERSION_MISMATCH');
      expect((await api.read('im/write/absent')).status).toBe(404);
    });

    it('answers 412 VERSION_MISMATCH when the key was deleted', async () => {
      const first = await api.put('im/write/deleted', { a: 1 });
      expect((await api.delete('im/write/deleted')).status).toBe(200);
      await expectError(
        await api.write('im/write/deleted', { a: 2 }, '', { 'if-match': quoted(first.version) }),
        412,
        'VERSION_MISMATCH',
      );
      expect((await api.read('im/write/deleted')).status).toBe(404);
    });

    it('refuses a malformed If-Match with 400 and changes nothing', async () => {
      const first = await api.put('im/write/malformed', { a: 1 });
      const before = await api.snapshot('im/write/malformed');
      for (const header of [first.version, '*', '"abc"', `"${first.version}", "1"`, '""', '"-1"', '"0"']) {
        const error = await expectError(
          await api.write('im/write/malformed', { a: 2 }, '', { 'if-match': header }),
          400,
          'INVALID_HEADER',
        );
        expect(error.message).toMatch(/If-Match/);
      }
      await api.expectUnchanged('im/write/malformed', before);
    });
  });

  describe('If-None-Match: * on /write', () => {
    it('creates the key when it is absent', async () => {
      const res = await api.write('inm/absent', { a: 1 }, '', { 'if-none-match': '*' });
      expect(res.status).toBe(200);
      expect(await (await api.read('inm/absent')).json()).toEqual({ a: 1 });
    });

    it('answers 412 ALREADY_EXISTS when the key exists, and changes nothing', async () => {
      await api.put('inm/exists', { a: 1 });
      const before = await api.snapshot('inm/exists');
      await expectError(await api.write('inm/exists', { a: 2 }, '', { 'if-none-match': '*' }), 412, 'ALREADY_EXISTS');
      await api.expectUnchanged('inm/exists', before);
    });

    it('creates a key again after it was deleted', async () => {
      await api.put('inm/recreate', { a: 1 });
      expect((await api.delete('inm/recreate')).status).toBe(200);
      const res = await api.write('inm/recreate', { a: 2 }, '', { 'if-none-match': '*' });
      expect(res.status).toBe(200);
    });

    it('lets exactly one of several concurrent create-only writes win', async () => {
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) => api.write('inm/race', { writer: i }, '', { 'if-none-match': '*' })),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 412, 412, 412, 412, 412]);
      for (const r of results) if (r.status === 412) await expectError(r, 412, 'ALREADY_EXISTS');
    });

    it('refuses If-None-Match other than * on a write with 400', async () => {
      const first = await api.put('inm/bad', { a: 1 });
      const before = await api.snapshot('inm/bad');
      await expectError(await api.write('inm/bad', { a: 2 }, '', { 'if-none-match': quoted(first.version) }), 400, 'INVALID_HEADER');
      await api.expectUnchanged('inm/bad', before);
    });
  });

  describe('If-Match on /patch and /delete', () => {
    it('patches when the version matches and answers 412 when it is stale', async () => {
      const first = await api.put('im/patch', { a: 1, b: 2 });
      const ok = await api.patch('im/patch', { a: 10 }, 'application/merge-patch+json', { 'if-match': quoted(first.version) });
      expect(ok.status).toBe(200);
      const before = await api.snapshot('im/patch');
      await expectError(
        await api.patch('im/patch', { a: 20 }, 'application/merge-patch+json', { 'if-match': quoted(first.version) }),
        412,
        'VERSION_MISMATCH',
      );
      await api.expectUnchanged('im/patch', before);
    });

    it('answers 412 VERSION_MISMATCH for If-Match on a patch of an absent key', async () => {
      await expectError(await api.patch('im/patch/absent', { a: 1 }, 'application/merge-patch+json', { 'if-match': '"1"' }), 412, 'VERSION_MISMATCH');
      expect((await api.read('im/patch/absent')).status).toBe(404);
    });

    it('refuses a malformed If-Match on a patch with 400', async () => {
      await api.put('im/patch/malformed', { a: 1 });
      const before = await api.snapshot('im/patch/malformed');
      await expectError(await api.patch('im/patch/malformed', { a: 2 }, 'application/json', { 'if-match': 'nope' }), 400, 'INVALID_HEADER');
      await api.expectUnchanged('im/patch/malformed', before);
    });

    it('deletes when the version matches and answers 412 when it is stale', async () => {
      const first = await api.put('im/delete', { a: 1 });
      const second = await api.put('im/delete', { a: 2 });
      const before = await api.snapshot('im/delete');
      await expectError(await api.delete('im/delete', { 'if-match': quoted(first.version) }), 412, 'VERSION_MISMATCH');
      await api.expectUnchanged('im/delete', before);
      const ok = await api.delete('im/delete', { 'if-match': quoted(second.version) });
      expect(ok.status).toBe(200);
      expect((await api.read('im/delete')).status).toBe(404);
    });

    it('refuses a malformed If-Match on a delete with 400 and keeps the key', async () => {
      await api.put('im/delete/malformed', { a: 1 });
      const before = await api.snapshot('im/delete/malformed');
      await expectError(await api.delete('im/delete/malformed', { 'if-match': 'W/' }), 400, 'INVALID_HEADER');
      await api.expectUnchanged('im/delete/malformed', before);
    });
  });
});
