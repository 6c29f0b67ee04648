/**
 * What counts as "the same request" for an Idempotency-Key (internal/api/idempotency-fingerprint.ts): every input
 * that can change the outcome makes a retry a different request (422 IDEMPOTENCY_KEY_REUSED, nothing applied), a
 * true retry replays however its query parameters are ordered, and records written before fingerprints had a
 * version are judged as they were then.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalQuery } from '../../internal/api/idempotency-fingerprint.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { expectError, internalsOrSkip, startApi, type ApiClient, type WriteBody } from './support.js';

const TTL_HEADER = 'x-strata-ttl-ms';

describe('Idempotency-Key fingerprint', () => {
  let api: ApiClient;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  async function expiresAt(key: string): Promise<string | null> {
    const res = await api.stat(key);
    expect(res.status).toBe(200);
    return ((await res.json()) as { expires_at: string | null }).expires_at;
  }

  it('refuses a retry that adds ttl_ms with 422, and the document keeps the first attempt\'s TTL', async () => {
    const headers = { 'idempotency-key': 'fp-ttl-query-added' };
    expect((await api.write('fp/ttl-added', { n: 1 }, '', headers)).status).toBe(200);
    const before = await api.snapshot('fp/ttl-added');
    await expectError(await api.write('fp/ttl-added', { n: 1 }, '&ttl_ms=60000', headers), 422, 'IDEMPOTENCY_KEY_REUSED');
    await api.expectUnchanged('fp/ttl-added', before);
    expect(await expiresAt('fp/ttl-added')).toBeNull();
  });

  it('refuses a retry with another ttl_ms with 422, and the document keeps the first expiry', async () => {
    const headers = { 'idempotency-key': 'fp-ttl-query-changed' };
    expect((await api.write('fp/ttl-changed', { n: 1 }, '&ttl_ms=600000', headers)).status).toBe(200);
    const first = await expiresAt('fp/ttl-changed');
    expect(first).not.toBeNull();
    await expectError(await api.write('fp/ttl-changed', { n: 1 }, '&ttl_ms=60000', headers), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(await expiresAt('fp/ttl-changed')).toBe(first);
  });

  it('refuses a retry with another X-Strata-TTL-Ms header with 422', async () => {
    const token = { 'idempotency-key': 'fp-ttl-header' };
    expect((await api.write('fp/ttl-header', { n: 1 }, '', { ...token, [TTL_HEADER]: '600000' })).status).toBe(200);
    const first = await expiresAt('fp/ttl-header');
    await expectError(await api.write('fp/ttl-header', { n: 1 }, '', { ...token, [TTL_HEADER]: '60000' }), 422, 'IDEMPOTENCY_KEY_REUSED');
    await expectError(await api.write('fp/ttl-header', { n: 1 }, '', token), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(await expiresAt('fp/ttl-header')).toBe(first);
  });

  it('refuses a retried patch with another ttl_ms with 422', async () => {
    await api.put('fp/patch-ttl', { n: 1 });
    const patch = (query: string): Promise<Response> =>
      api.fetch(`/patch/${encodeURIComponent('fp/patch-ttl')}${query}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json', 'idempotency-key': 'fp-patch-ttl' },
        body: '{"m":2}',
      });
    expect((await patch('')).status).toBe(200);
    const before = await api.snapshot('fp/patch-ttl');
    await expectError(await patch('?ttl_ms=60000'), 422, 'IDEMPOTENCY_KEY_REUSED');
    await api.expectUnchanged('fp/patch-ttl', before);
  });

  it('refuses a retry that adds If-None-Match: * with 422 instead of replaying the write it would have refused', async () => {
    const token = { 'idempotency-key': 'fp-if-none-match' };
    expect((await api.write('fp/if-none-match', { n: 1 }, '', token)).status).toBe(200);
    await expectError(await api.write('fp/if-none-match', { n: 1 }, '', { ...token, 'if-none-match': '*' }), 422, 'IDEMPOTENCY_KEY_REUSED');
  });

  it('refuses a retry with another If-Match with 422, on write and on delete', async () => {
    const written = await api.put('fp/if-match', { n: 1 });
    const token = { 'idempotency-key': 'fp-if-match-write' };
    const ifMatch = { ...token, 'if-match': `"${written.version}"` };
    const first = (await (await api.write('fp/if-match', { n: 2 }, '', ifMatch)).json()) as WriteBody;
    await expectError(await api.write('fp/if-match', { n: 2 }, '', token), 422, 'IDEMPOTENCY_KEY_REUSED');
    await expectError(await api.write('fp/if-match', { n: 2 }, '', { ...token, 'if-match': '"1"' }), 422, 'IDEMPOTENCY_KEY_REUSED');
    const replay = await api.write('fp/if-match', { n: 2 }, '', ifMatch);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(((await replay.json()) as WriteBody).version).toBe(first.version);

    const del = { 'idempotency-key': 'fp-if-match-delete' };
    await expectError(await api.delete('fp/if-match', { ...del, 'if-match': `"${written.version}"` }), 412, 'VERSION_MISMATCH');
    await expectError(await api.delete('fp/if-match', { ...del, 'if-match': `"${first.version}"` }), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect((await api.read('fp/if-match')).status).toBe(200);
  });

  it('refuses a retried patch with another media type with 422', async () => {
    await api.put('fp/patch-type', { list: [1] });
    const token = { 'idempotency-key': 'fp-patch-type' };
    const ops = [{ op: 'add', path: '/list/-', value: 2 }];
    expect((await api.patch('fp/patch-type', ops, 'application/json-patch+json', token)).status).toBe(200);
    await expectError(await api.patch('fp/patch-type', ops, 'application/json', token), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(await (await api.read('fp/patch-type')).json()).toEqual({ list: [1, 2] });
  });

  it('refuses a retry with a query parameter added or repeated with 422 (one the route does not take with 400)', async () => {
    const token = { 'idempotency-key': 'fp-query' };
    expect((await api.write('fp/query', { n: 1 }, '&strategy=ec', token)).status).toBe(200);
    await expectError(await api.write('fp/query', { n: 1 }, '&strategy=ec&strategy=replication', token), 422, 'IDEMPOTENCY_KEY_REUSED');
    await expectError(await api.write('fp/query', { n: 1 }, '&strategy=ec&strategy=ec', token), 422, 'IDEMPOTENCY_KEY_REUSED');
    await expectError(await api.write('fp/query', { n: 1 }, '&strategy=ec&ttl_ms=60000', token), 422, 'IDEMPOTENCY_KEY_REUSED');
    await expectError(await api.write('fp/query', { n: 1 }, '&strategy=ec&dry_run=1', token), 400, 'UNKNOWN_PARAMETER');
  });

  it('replays a true retry whose query parameters come in another order and spell their escapes differently', async () => {
    const token = { 'idempotency-key': 'fp-true-retry' };
    const send = (query: string): Promise<Response> =>
      api.fetch(`/write?${query}`, { method: 'POST', headers: { 'content-type': 'application/json', ...token }, body: '{"n":1,"views":2}' });
    const first = await send('key=fp%2Ftrue-retry&strategy=field_hybrid&hot_fields=views&ttl_ms=600000');
    expect(first.status).toBe(200);
    const firstBody = (await first.json()) as WriteBody;
    const retry = await send('ttl_ms=600000&hot_fields=views&strategy=field_hybrid&key=fp%2ftrue-retry');
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(((await retry.json()) as WriteBody).version).toBe(firstBody.version);
  });

  // The formula of the release before versioned fingerprints (sha256 of method, key, extra and body), spelt out
  // here rather than imported, so that the test pins what old records actually hold.
  function unversionedWriteFingerprint(key: string, body: string): string {
    return createHash('sha256').update(`write\n${key}\n\n\n`).update(body).digest('hex');
  }

  it('judges a done record written before versioned fingerprints as before: same body replays, another is refused', async (context) => {
    const internals = internalsOrSkip(api, context, 'writes an idempotency record as the previous release did');
    const key = 'fp/old-done';
    const now = Date.now();
    const claim = {
      token: 'fp-old-done',
      fingerprint: unversionedWriteFingerprint(key, '{"n":1}'),
      attemptId: 'previous-release',
      leaseUntilMs: now + 60_000,
      expiresAtMs: now + 3_600_000,
    };
    expect(await internals.metadata.reserveIdempotency(claim)).toBeNull();
    const recorded = { status: 200, body: { status: 'ok', key, version: '12345' }, headers: {} };
    expect(await internals.metadata.completeIdempotency(claim, recorded)).toBe(true);

    const token = { 'idempotency-key': claim.token };
    // Old fingerprints did not cover ttl_ms: such a retry still replays, exactly as it did before the upgrade.
    const replay = await api.write(key, { n: 1 }, '&ttl_ms=60000', token);
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await replay.json()).toEqual(recorded.body);
    await expectError(await api.write(key, { n: 2 }, '', token), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect((await api.read(key)).status).toBe(404);
  });

  it('takes over a lapsed pending claim written before versioned fingerprints and applies the write once', async (context) => {
    const internals = internalsOrSkip(api, context, 'writes an idempotency record as the previous release did');
    const key = 'fp/old-pending';
    const now = Date.now();
    const claim = {
      token: 'fp-old-pending',
      fingerprint: unversionedWriteFingerprint(key, '{"n":1}'),
      attemptId: 'previous-release-crashed',
      // The gateway that held it died: its lease has lapsed.
      leaseUntilMs: 1,
      expiresAtMs: now + 3_600_000,
    };
    expect(await internals.metadata.reserveIdempotency(claim)).toBeNull();
    const token = { 'idempotency-key': claim.token };
    await expectError(await api.write(key, { n: 2 }, '', token), 422, 'IDEMPOTENCY_KEY_REUSED');
    const first = await api.write(key, { n: 1 }, '', token);
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const firstBody = (await first.json()) as WriteBody;
    const retry = await api.write(key, { n: 1 }, '', token);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(((await retry.json()) as WriteBody).version).toBe(firstBody.version);
    expect(await (await api.read(key)).json()).toEqual({ n: 1 });
  });
});

describe('Idempotency-Key fingerprint with API keys', () => {
  const ALICE = 'alice-secret-0123456789abcdef';
  const BOB = 'bob-secret-0123456789abcdefgh';
  let cluster: TestCluster;
  beforeAll(async () => {
    const keys = [
      { id: 'alice', secret: ALICE, permissions: ['read', 'write'] },
      { id: 'bob', secret: BOB, permissions: ['read', 'write'] },
    ];
    cluster = await startTestCluster({ env: { STRATA_API_KEYS: JSON.stringify(keys) } });
  });
  afterAll(async () => cluster?.destroy());

  const write = (secret: string): Promise<Response> =>
    cluster.write('fp/shared', { n: 1 }, '', { authorization: `Bearer ${secret}`, 'idempotency-key': 'fp-shared-token' });

  it('refuses the same token and request from another API key with 422 instead of showing it the first key\'s answer', async () => {
    const first = await write(ALICE);
    expect(first.status).toBe(200);
    const again = await write(ALICE);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const other = await write(BOB);
    expect(other.status).toBe(422);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });
});

describe('canonicalQuery', () => {
  it('ignores the order of different parameters', () => {
    expect(canonicalQuery('b=2&a=1')).toEqual(canonicalQuery('a=1&b=2'));
  });

  it('keeps repeats and their order, which decides the value a route reads', () => {
    expect(canonicalQuery('a=1&a=1')).not.toEqual(canonicalQuery('a=1'));
    expect(canonicalQuery('a=1&a=2')).not.toEqual(canonicalQuery('a=2&a=1'));
    expect(canonicalQuery('a=1&b=0&a=2')).toEqual(canonicalQuery('b=0&a=1&a=2'));
  });

  it('normalises escapes of unreserved characters and hex case, but keeps an escaped comma apart from a comma', () => {
    expect(canonicalQuery('k=%61%2fb')).toEqual(canonicalQuery('k=a%2Fb'));
    expect(canonicalQuery('hot_fields=a%2Cb')).not.toEqual(canonicalQuery('hot_fields=a,b'));
  });

  it('treats a parameter without a value as the empty value and skips empty pairs', () => {
    expect(canonicalQuery('a&&b=')).toEqual(canonicalQuery('b&a='));
  });
});
