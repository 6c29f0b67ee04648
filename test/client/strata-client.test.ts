import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StrataApiError, StrataClient, StrataNetworkError } from '../../internal/client/strata-client.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let client: StrataClient;

beforeAll(async () => {
  cluster = await startTestCluster();
  client = new StrataClient({ baseUrl: cluster.url, retryBaseMs: 1 });
});

afterAll(async () => {
  await cluster?.destroy();
});

async function apiError(promise: Promise<unknown>): Promise<StrataApiError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StrataApiError);
  return error as StrataApiError;
}

describe('StrataClient against a cluster', () => {
  it('writes a document and reads it back byte for byte, big numbers included', async () => {
    const text = '{"id":12345678901234567890,"price":19.99,"like_count":1,"bio":"hello"}';
    const written = await client.write('client/a b+c', text, { strategy: 'field_hybrid', hotFields: ['like_count'] });
    expect(written).toMatchObject({ status: 'ok', key: 'client/a b+c', strategy: 'field_hybrid', hot_fields: ['like_count'] });
    const read = await client.read('client/a b+c');
    expect(read.text).toBe(text);
    expect(read.version).toBe(written.version);
    expect(read.strategy).toBe('field_hybrid');
    expect(read.coldRead).toBe(true);
    expect(read.json<{ price: number }>().price).toBe(19.99);
  });

  it('reads only hot fields without touching the cold tier', async () => {
    await client.write('client/proj', { like_count: 5, bio: 'x'.repeat(1000) }, { hotFields: ['like_count'] });
    const read = await client.read('client/proj', { fields: ['like_count'] });
    expect(read.text).toBe('{"like_count":5}');
    expect(read.coldRead).toBe(false);
    expect(read.projection).toBe(true);
  });

  it('answers notModified when the caller holds the current version', async () => {
    const { version } = await client.write('client/etag', { a: 1 });
    expect(await client.read('client/etag', { ifNoneMatch: version })).toEqual({ notModified: true, version });
    const fresh = await client.read('client/etag', { ifNoneMatch: '1' });
    expect(fresh.notModified).toBe(false);
  });

  it('applies merge patches and JSON patches, conditionally on the version', async () => {
    const first = await client.write('client/patch', { like_count: 1, name: 'Ada' }, { hotFields: ['like_count'] });
    const merged = await client.patch('client/patch', { like_count: 2 }, { ifMatch: first.version });
    expect(merged.is_pure_hot_update).toBe(true);
    const patched = await client.patch('client/patch', [{ op: 'replace', path: '/name', value: 'Grace' }]);
    expect((await client.read('client/patch')).json()).toEqual({ like_count: 2, name: 'Grace' });
    const stale = await apiError(client.patch('client/patch', { like_count: 3 }, { ifMatch: first.version }));
    expect(stale).toMatchObject({ status: 412, code: 'VERSION_MISMATCH' });
    expect(BigInt(patched.version)).toBeGreaterThan(BigInt(merged.version));
  });

  it('sends a text patch with the kind it is told', async () => {
    await client.write('client/textpatch', { n: 1 });
    await client.patch('client/textpatch', '[{"op":"add","path":"/m","value":2}]', { kind: 'json-patch' });
    expect((await client.read('client/textpatch')).text).toBe('{"n":1,"m":2}');
  });

  it('refuses a create-only write over an existing key with ALREADY_EXISTS', async () => {
    await client.write('client/once', { a: 1 }, { ifNoneMatch: '*' });
    const error = await apiError(client.write('client/once', { a: 2 }, { ifNoneMatch: '*' }));
    expect(error).toMatchObject({ status: 412, code: 'ALREADY_EXISTS' });
  });

  it('deletes a key, after which reads, stats and deletes are NOT_FOUND', async () => {
    await client.write('client/gone', { a: 1 });
    const deleted = await client.delete('client/gone', { idempotencyKey: 'client-test-delete-1' });
    expect(deleted).toMatchObject({ status: 'ok', key: 'client/gone' });
    for (const attempt of [client.read('client/gone'), client.stat('client/gone'), client.delete('client/gone')]) {
      const error = await apiError(attempt);
      expect(error).toMatchObject({ status: 404, code: 'NOT_FOUND', retryAfterMs: null, attempts: 1 });
      expect(error.message).not.toBe('');
    }
  });

  it('reports bad input with the API codes', async () => {
    expect(await apiError(client.write('client/arr', '[1,2]'))).toMatchObject({ status: 422, code: 'NOT_AN_OBJECT' });
    expect(await apiError(client.write('client/bad', '{"a":'))).toMatchObject({ status: 422, code: 'INVALID_JSON' });
    expect(await apiError(client.write('', { a: 1 }))).toMatchObject({ status: 400, code: 'INVALID_KEY' });
    expect(await apiError(client.list({ limit: 5000 }))).toMatchObject({ status: 400, code: 'INVALID_LIMIT' });
  });

  it('stats a key with every replica and shard placed on a node', async () => {
    // Incompressible and large enough to be erasure coded (small or compressible cold parts stay with the replicas).
    const { version } = await client.write('client/stat', { like_count: 1, body: randomBytes(4000).toString('base64') }, { hotFields: ['like_count'] });
    const stat = await client.stat('client/stat');
    expect(stat).toMatchObject({ key: 'client/stat', version, strategy: 'field_hybrid', hot_fields: ['like_count'] });
    expect(stat.hot).toHaveLength(3);
    expect(stat.cold).toHaveLength(6);
    for (const ref of [...stat.hot, ...stat.cold]) expect(ref.node).toMatch(/^node-\d+$/);
  });

  it('lists one page and walks every page of a prefix in byte order', async () => {
    const keys = Array.from({ length: 7 }, (_, i) => `client/list/${String(i).padStart(2, '0')}`);
    for (const key of keys) await client.write(key, { i: 1 });
    const page = await client.list({ prefix: 'client/list/', limit: 3 });
    expect(page.keys).toEqual(keys.slice(0, 3));
    expect(page.next_cursor).not.toBeNull();
    const all: string[] = [];
    for await (const key of client.listKeys('client/list/', { pageKeys: 2 })) all.push(key);
    expect(all).toEqual(keys);
  });

  it('reports health, readiness, the cluster, node status and storage usage', async () => {
    expect(await client.health()).toMatchObject({ status: 'healthy', service: 'api_gateway', nodes_total: 6 });
    expect(await client.ready()).toEqual({ ready: true, problems: [] });
    const view = await client.cluster();
    expect(view.nodes).toHaveLength(6);
    expect(view.nodes.every((n) => n.state === 'healthy')).toBe(true);
    expect(Object.values(await client.nodeStatus())).toHaveLength(6);
    const usage = await client.storageUsage();
    expect(usage.live_keys).toBeGreaterThan(0);
    expect(usage.total_system_size).toBeGreaterThan(0);
  });
});

describe('StrataClient retries', () => {
  let server: Server;
  let url: string;
  const attempts: { method: string; url: string; headers: Record<string, string | string[] | undefined> }[] = [];
  let failuresLeft = 0;

  beforeAll(async () => {
    // Answers 503 (with Retry-After: 0) while failuresLeft > 0, then a success, and records every attempt.
    server = createServer((req, res) => {
      attempts.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      req.resume();
      req.on('end', () => {
        if (failuresLeft > 0) {
          failuresLeft--;
          res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
          res.end(JSON.stringify({ error: { code: 'INSUFFICIENT_NODES', message: 'only 4 of 6 nodes are up' } }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', etag: '"9"', 'x-strata-version': '9' });
        res.end(JSON.stringify({ status: 'ok', key: 'k', version: '9' }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  function failTwice(): void {
    attempts.length = 0;
    failuresLeft = 2;
  }

  const retrying = (): StrataClient => new StrataClient({ baseUrl: url, retries: 3, retryBaseMs: 1 });

  it('sends a plain write once and surfaces the 503 with its Retry-After', async () => {
    failTwice();
    const error = await apiError(retrying().write('k', { a: 1 }));
    expect(error).toMatchObject({ status: 503, code: 'INSUFFICIENT_NODES', retryAfterMs: 0, attempts: 1 });
    expect(attempts).toHaveLength(1);
  });

  it('retries a write with an Idempotency-Key until it succeeds, sending the same token each time', async () => {
    failTwice();
    await retrying().write('k', { a: 1 }, { idempotencyKey: 'tok-1' });
    expect(attempts).toHaveLength(3);
    expect(attempts.map((a) => a.headers['idempotency-key'])).toEqual(['tok-1', 'tok-1', 'tok-1']);
  });

  it('retries conditional patches and deletes, and reads', async () => {
    failTwice();
    await retrying().patch('k', { a: 2 }, { ifMatch: '9' });
    expect(attempts).toHaveLength(3);
    expect(attempts[0]!.headers['if-match']).toBe('"9"');
    failTwice();
    await retrying().delete('k', { ifMatch: '9' });
    expect(attempts).toHaveLength(3);
    failTwice();
    expect((await retrying().read('k')).version).toBe('9');
    expect(attempts).toHaveLength(3);
  });

  it('never retries an unconditional patch or delete', async () => {
    failTwice();
    await apiError(retrying().patch('k', { a: 2 }));
    expect(attempts).toHaveLength(1);
    failTwice();
    await apiError(retrying().delete('k'));
    expect(attempts).toHaveLength(1);
  });

  it('gives up after its retries and reports how many attempts it made', async () => {
    attempts.length = 0;
    failuresLeft = 10;
    const error = await apiError(new StrataClient({ baseUrl: url, retries: 2, retryBaseMs: 1 }).read('k'));
    expect(error).toMatchObject({ status: 503, attempts: 3 });
    expect(attempts).toHaveLength(3);
    failuresLeft = 0;
  });

  it('waits at least Retry-After, with backoff growing per attempt', async () => {
    const waits: number[] = [];
    let calls = 0;
    const fake = (async () => {
      calls++;
      if (calls <= 3) {
        return new Response(JSON.stringify({ error: { code: 'WAL_UNAVAILABLE', message: 'down' } }), {
          status: 503,
          headers: { 'retry-after': calls === 1 ? '2' : '0' },
        });
      }
      return new Response('{}', { status: 200, headers: { 'x-strata-version': '1' } });
    }) as typeof fetch;
    const c = new StrataClient({
      baseUrl: 'http://strata.invalid',
      fetch: fake,
      retries: 3,
      retryBaseMs: 100,
      random: () => 1,
      sleep: async (ms) => void waits.push(ms),
    });
    await c.read('k');
    expect(waits).toEqual([2000, 200, 400]);
  });

  it('retries reads after network errors and reports the gateway unreachable at the end', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    let calls = 0;
    const counting = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      calls++;
      return fetch(input, init);
    }) as typeof fetch;
    const c = new StrataClient({ baseUrl: `http://127.0.0.1:${port}`, fetch: counting, retries: 2, retryBaseMs: 1 });
    const error = await c.read('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StrataNetworkError);
    expect(error).toMatchObject({ code: 'UNREACHABLE', attempts: 3 });
    expect(calls).toBe(3);
    calls = 0;
    await c.write('k', { a: 1 }).catch(() => undefined);
    expect(calls).toBe(1);
  });

  it('encodes keys with encodeURIComponent in paths and queries', async () => {
    attempts.length = 0;
    failuresLeft = 0;
    const c = retrying();
    await c.read('a/b c%+?');
    await c.write('a/b c%+?', { a: 1 }, { hotFields: ['x,y', '/s/v'] });
    expect(attempts[0]!.url).toBe('/read/a%2Fb%20c%25%2B%3F');
    expect(attempts[1]!.url).toBe('/write?key=a%2Fb%20c%25%2B%3F&hot_fields=x%2Cy,%2Fs%2Fv');
  });
});
