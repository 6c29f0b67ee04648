import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startApi, type ApiClient, type WriteBody } from './support.js';

describe('Idempotency-Key', () => {
  let api: ApiClient;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  async function currentVersion(key: string): Promise<string | null> {
    const res = await api.stat(key);
    if (res.status === 404) return null;
    return ((await res.json()) as { version: string }).version;
  }

  it('returns the first response to a retried write, with the same version, and applies it once', async () => {
    const headers = { 'idempotency-key': 'write-retry-1' };
    const first = await api.write('idem/write', { n: 1 }, '', headers);
    expect(first.status).toBe(200);
    const firstBody = (await first.json()) as WriteBody;
    const retry = await api.write('idem/write', { n: 1 }, '', headers);
    expect(retry.status).toBe(200);
    const retryBody = (await retry.json()) as WriteBody;
    expect(retryBody).toEqual(firstBody);
    expect(retry.headers.get('etag')).toBe(`"${firstBody.version}"`);
    expect(await currentVersion('idem/write')).toBe(firstBody.version);
  });

  it('does not apply a retried write again after another writer changed the key', async () => {
    const headers = { 'idempotency-key': 'write-retry-2' };
    const first = (await (await api.write('idem/interleaved', { n: 1 }, '', headers)).json()) as WriteBody;
    const other = await api.put('idem/interleaved', { n: 2 });
    const retry = (await (await api.write('idem/interleaved', { n: 1 }, '', headers)).json()) as WriteBody;
    expect(retry.version).toBe(first.version);
    expect(await currentVersion('idem/interleaved')).toBe(other.version);
    expect(await (await api.read('idem/interleaved')).json()).toEqual({ n: 2 });
  });

  it('answers 422 IDEMPOTENCY_KEY_REUSED for the same token with a different body, and changes nothing', async () => {
    const headers = { 'idempotency-key': 'write-reuse' };
    expect((await api.write('idem/reuse', { n: 1 }, '', headers)).status).toBe(200);
    const before = await api.snapshot('idem/reuse');
    await expectError(await api.write('idem/reuse', { n: 2 }, '', headers), 422, 'IDEMPOTENCY_KEY_REUSED');
    await api.expectUnchanged('idem/reuse', before);
  });

  it('answers 422 IDEMPOTENCY_KEY_REUSED for the same token on another key', async () => {
    const headers = { 'idempotency-key': 'write-other-key' };
    expect((await api.write('idem/key-a', { n: 1 }, '', headers)).status).toBe(200);
    await expectError(await api.write('idem/key-b', { n: 1 }, '', headers), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect((await api.read('idem/key-b')).status).toBe(404);
  });

  it('answers 422 IDEMPOTENCY_KEY_REUSED for the same token with different query parameters', async () => {
    const headers = { 'idempotency-key': 'write-other-strategy' };
    expect((await api.write('idem/strategy', { n: 1 }, '&strategy=ec', headers)).status).toBe(200);
    await expectError(await api.write('idem/strategy', { n: 1 }, '&strategy=replication', headers), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect((await api.read('idem/strategy')).headers.get('x-strata-strategy')).toBe('ec');
  });

  it('replays a refused write\'s error instead of applying it later', async () => {
    await api.put('idem/conditional', { n: 1 });
    const headers = { 'idempotency-key': 'write-412', 'if-none-match': '*' };
    await expectError(await api.write('idem/conditional', { n: 2 }, '', headers), 412, 'ALREADY_EXISTS');
    await expectError(await api.write('idem/conditional', { n: 2 }, '', headers), 412, 'ALREADY_EXISTS');
  });

  it('applies a retried patch once: an append patched twice appends one element', async () => {
    const written = await api.put('idem/patch', { list: [1] });
    const headers = { 'idempotency-key': 'patch-retry' };
    const ops = [{ op: 'add', path: '/list/-', value: 2 }];
    const first = await api.patch('idem/patch', ops, 'application/json-patch+json', headers);
    expect(first.status).toBe(200);
    const firstBody = (await first.json()) as WriteBody;
    expect(BigInt(firstBody.version)).toBeGreaterThan(BigInt(written.version));
    const retry = await api.patch('idem/patch', ops, 'application/json-patch+json', headers);
    expect(retry.status).toBe(200);
    expect(await retry.json()).toEqual(firstBody);
    expect(await (await api.read('idem/patch')).json()).toEqual({ list: [1, 2] });
    expect(await currentVersion('idem/patch')).toBe(firstBody.version);
  });

  it('answers a retried delete with the first delete\'s outcome, not 404', async () => {
    await api.put('idem/delete', { n: 1 });
    const headers = { 'idempotency-key': 'delete-retry' };
    const first = await api.delete('idem/delete', headers);
    expect(first.status).toBe(200);
    const firstBody = await first.json();
    const retry = await api.delete('idem/delete', headers);
    expect(retry.status).toBe(200);
    expect(await retry.json()).toEqual(firstBody);
  });

  it('does not let a retried delete remove a key re-created after it', async () => {
    await api.put('idem/delete-recreate', { n: 1 });
    const headers = { 'idempotency-key': 'delete-recreate' };
    expect((await api.delete('idem/delete-recreate', headers)).status).toBe(200);
    const recreated = await api.put('idem/delete-recreate', { n: 2 });
    expect((await api.delete('idem/delete-recreate', headers)).status).toBe(200);
    expect(await currentVersion('idem/delete-recreate')).toBe(recreated.version);
  });

  it('applies concurrent attempts with one token once: the others replay it or are told to wait (409)', async () => {
    const headers = { 'idempotency-key': 'write-concurrent' };
    const results = await Promise.all(Array.from({ length: 6 }, () => api.write('idem/concurrent', { n: 1 }, '', headers)));
    const versions = new Set<string>();
    for (const r of results) {
      if (r.status === 409) {
        await expectError(r, 409, 'IDEMPOTENCY_IN_PROGRESS');
        continue;
      }
      expect(r.status).toBe(200);
      versions.add(((await r.json()) as WriteBody).version);
    }
    expect(versions.size).toBe(1);
    expect(await currentVersion('idem/concurrent')).toBe([...versions][0]);
  });

  it('refuses an Idempotency-Key that is not 1 to 256 visible ASCII characters with 400', async () => {
    for (const token of ['x'.repeat(257), 'has space', 'ünïcode']) {
      const res = await api.fetch(`/write?key=${encodeURIComponent('idem/bad-token')}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': Buffer.from(token, 'utf8').toString('latin1') },
        body: '{"n":1}',
      });
      await expectError(res, 400, 'INVALID_HEADER');
    }
    expect((await api.read('idem/bad-token')).status).toBe(404);
  });
});
