import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StrataApiError, StrataClient, StrataNetworkError, type WatchEvent, type WatchOptions } from '../../internal/client/strata-client.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { outlastRealTimer } from '../helpers/wait.js';

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
  it('has a method for every operation the gateway describes in its OpenAPI document', async () => {
    const methodOf: Record<string, keyof StrataClient | null> = {
      'POST /write': 'write',
      'GET /read/{key}': 'read',
      'PATCH /patch/{key}': 'patch',
      'DELETE /delete/{key}': 'delete',
      'GET /stat/{key}': 'stat',
      'GET /list': 'list',
      'GET /watch': 'watch',
      'GET /health': 'health',
      'GET /health/live': 'live',
      'GET /health/ready': 'ready',
      'GET /cluster': 'cluster',
      'GET /node_status': 'nodeStatus',
      'GET /storage_usage': 'storageUsage',
      'GET /healer': 'healer',
      'GET /request_stats': 'requestStats',
      'GET /metrics': 'metrics',
      'GET /openapi.json': 'openapi',
      'GET /policy': 'listPolicies',
      'GET /policy/{prefix}': 'policy',
      'PUT /policy/{prefix}': 'setPolicy',
      'GET /admin/nodes': 'listNodes',
      'POST /admin/nodes/{id}/drain': 'drainNode',
      'POST /admin/nodes/{id}/activate': 'activateNode',
      'DELETE /admin/nodes/{id}': 'removeNode',
      'GET /admin/format-version': 'formatVersion',
      'POST /admin/format-version': 'bumpFormatVersion',
      // The API reference's web page and its assets are for a browser.
      'GET /docs': null,
      'GET /docs/{asset}': null,
    };
    const spec = (await client.openapi()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
      Object.keys(item).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m)).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(operations.filter((op) => !(op in methodOf)), 'operations without a client method').toEqual([]);
    for (const [op, method] of Object.entries(methodOf)) {
      expect(operations, `${op} is no longer described`).toContain(op);
      if (method !== null) expect(typeof client[method], `${op}: StrataClient.${method}`).toBe('function');
    }
  });

  it('writes with a time to live and shows when it ends; a patch can give a new one', async () => {
    const written = await client.write('client/ttl', { a: 1 }, { ttlMs: 3_600_000 });
    const before = await client.stat(written.key);
    expect(Date.parse(before.expires_at!)).toBeGreaterThan(Date.now() + 3_000_000);
    await client.patch('client/ttl', { a: 2 }, { ttlMs: 7_200_000 });
    const after = await client.stat('client/ttl');
    expect(Date.parse(after.expires_at!)).toBeGreaterThan(Date.parse(before.expires_at!));
    expect((await client.stat((await client.write('client/no-ttl', { a: 1 })).key)).expires_at).toBeNull();
    const refused = await apiError(client.write('client/ttl-bad', { a: 1 }, { ttlMs: 0 }));
    expect(refused).toMatchObject({ status: 400, code: 'INVALID_TTL' });
  });

  it('reports liveness, the healer, request counts, metrics and the API description', async () => {
    expect(await client.live()).toEqual({ status: 'alive' });
    const healer = await client.healer({ limit: 5 });
    expect(Array.isArray(healer.recent)).toBe(true);
    expect(healer).toHaveProperty('leader');
    expect((await apiError(client.healer({ limit: 0 }))).code).toBe('INVALID_LIMIT');
    const stats = await client.requestStats();
    expect(stats.total).toBeGreaterThan(0);
    expect(stats.by_class['2xx']).toBeGreaterThan(0);
    expect(await client.metrics()).toMatch(/^# HELP /m);
    const spec = await client.openapi();
    expect(spec).toHaveProperty('paths');
  });

  it('lists, drains, activates and removes storage nodes, with the API codes when refused', async () => {
    // This cluster's nodes are configured, not registered: the registry holds what is put in it here.
    const node1 = cluster.nodes.find((n) => n.id === 'node-1')!;
    await cluster.metadata.registerNode({ id: 'node-1', address: node1.address }, 600_000);
    await cluster.metadata.registerNode({ id: 'node-7', address: 'http://127.0.0.1:9' }, 600_000);
    try {
      const nodes = await client.listNodes();
      expect(nodes.map((n) => n.id).sort()).toEqual(['node-1', 'node-7']);
      expect(nodes.every((n) => n.state === 'active' && n.alive)).toBe(true);

      expect(await client.drainNode('node-7')).toMatchObject({ id: 'node-7', state: 'draining' });
      expect(await client.drainNode('node-7')).toMatchObject({ id: 'node-7', state: 'draining' });
      // Six active nodes are left: draining another would leave too few for a cold write.
      expect(await apiError(client.drainNode('node-1'))).toMatchObject({ status: 409, code: 'TOO_FEW_ACTIVE_NODES' });
      expect(await apiError(client.removeNode('node-1'))).toMatchObject({ status: 409, code: 'NODE_NOT_DRAINED' });
      expect(await apiError(client.activateNode('node-99'))).toMatchObject({ status: 404, code: 'NODE_NOT_FOUND' });

      expect(await client.activateNode('node-7')).toMatchObject({ id: 'node-7', state: 'active' });
      await client.drainNode('node-7');
      // It holds nothing, so it can go.
      expect(await client.removeNode('node-7')).toEqual({ removed: 'node-7' });
      expect((await client.listNodes()).map((n) => n.id)).toEqual(['node-1']);
    } finally {
      await cluster.metadata.deregisterNode('node-1');
      await cluster.metadata.removeNode('node-7').catch(() => undefined);
    }
  });

  it('pins hot fields for a prefix and sets its lifecycle, and lists the prefixes with a policy', async () => {
    const set = await client.setPolicy('client-policy/', { pins: ['like_count'], idleToEcAfterMs: 86_400_000 });
    expect(set).toMatchObject({ prefix: 'client-policy/', pins: { api: ['like_count'] }, lifecycle: { idle_to_ec_after_ms: 86_400_000 } });
    expect(set.hot_fields).toContain('like_count');
    const again = await client.setPolicy('client-policy/', { pins: ['like_count'], idleToEcAfterMs: 86_400_000 });
    expect(again.epoch).toBe(set.epoch);
    expect(await client.policy('client-policy/')).toMatchObject({ prefix: 'client-policy/', pins: { api: ['like_count'] } });
    expect((await client.listPolicies()).map((p) => p.prefix)).toContain('client-policy/');
    const cleared = await client.setPolicy('client-policy/', { pins: null, idleToEcAfterMs: null });
    expect(cleared.pins.api).toEqual([]);
    expect(await apiError(client.setPolicy('client-policy/', { idleToEcAfterMs: -1 }))).toMatchObject({ status: 422, code: 'INVALID_POLICY' });
  });

  it('follows the change feed of a prefix from a version, and stops when the caller aborts', async () => {
    const first = await client.write('client-watch/a', { n: 1 });
    const stop = new AbortController();
    const events: WatchEvent[] = [];
    const done = (async () => {
      for await (const event of client.watch('client-watch/', { since: first.version, signal: stop.signal })) {
        events.push(event);
        if (events.length === 3) stop.abort();
      }
    })();
    await client.write('client-other/x', { n: 0 });
    const second = await client.write('client-watch/b', { n: 2 });
    const gone = await client.delete('client-watch/a');
    await done;
    expect(events).toEqual([
      { type: 'ready', prefix: 'client-watch/', version: first.version },
      { type: 'change', key: 'client-watch/b', version: second.version, kind: 'put' },
      { type: 'change', key: 'client-watch/a', version: gone.version, kind: 'delete' },
    ]);
  });

  it('refuses a watch from a version ahead of the cluster with the API code', async () => {
    const error = await apiError(client.watch('', { since: '999999999999' }).next());
    expect(error).toMatchObject({ status: 400, code: 'INVALID_REQUEST' });
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

describe('StrataClient change feed', () => {
  /** One scripted answer per connection, in order; each sees the request's URL. */
  type Script = (req: IncomingMessage, res: ServerResponse) => void;
  let server: Server;
  let url: string;
  let scripts: Script[] = [];
  const seen: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(`${req.url} last-event-id=${req.headers['last-event-id'] ?? ''}`);
      const script = scripts.shift();
      if (!script) {
        res.writeHead(500).end();
        return;
      }
      script(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const sse = (res: ServerResponse, text: string): void => {
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(text);
  };
  const change = (key: string, version: number, kind = 'put'): string =>
    `event: change\r\nid: ${version}\r\ndata: {"key":"${key}","version":"${version}","kind":"${kind}"}\r\n\r\n`;

  async function collect(client: StrataClient, count: number, options: WatchOptions = {}): Promise<WatchEvent[]> {
    const events: WatchEvent[] = [];
    for await (const event of client.watch('p/', options)) {
      events.push(event);
      if (events.length === count) break;
    }
    return events;
  }

  it('resumes after a dropped connection, a retryable error event and a 503 from the last version, without repeats', async () => {
    seen.length = 0;
    scripts = [
      (_req, res) => {
        sse(res, 'event: ready\nid: 4\ndata: {"prefix":"p/","version":"4"}\n\n: heartbeat\n\n');
        sse(res, change('p/a', 5));
        // The connection drops in the middle of the next event (once the bytes before are out): it must not be
        // delivered half.
        res.write('event: change\nid: 6\ndata: {"key":"p/', () => res.socket?.destroy());
      },
      (_req, res) => {
        sse(res, 'event: ready\nid: 5\ndata: {"prefix":"p/","version":"5"}\n\n');
        sse(res, change('p/b', 6));
        sse(res, 'event: error\ndata: {"error":{"code":"WATCH_TOO_SLOW","message":"resume with Last-Event-ID: 6"}}\n\n');
        res.end();
      },
      (_req, res) => {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
        res.end(JSON.stringify({ error: { code: 'TOO_MANY_WATCHERS', message: 'busy' } }));
      },
      (_req, res) => {
        sse(res, 'event: ready\nid: 6\ndata: {"prefix":"p/","version":"6"}\n\n');
        sse(res, change('p/a', 7, 'delete'));
      },
    ];
    const client = new StrataClient({ baseUrl: url, retries: 2, retryBaseMs: 1 });
    expect(await collect(client, 4)).toEqual([
      { type: 'ready', prefix: 'p/', version: '4' },
      { type: 'change', key: 'p/a', version: '5', kind: 'put' },
      { type: 'change', key: 'p/b', version: '6', kind: 'put' },
      { type: 'change', key: 'p/a', version: '7', kind: 'delete' },
    ]);
    expect(seen).toEqual(['/watch?prefix=p%2F last-event-id=', '/watch?prefix=p%2F&since=5 last-event-id=', '/watch?prefix=p%2F&since=6 last-event-id=', '/watch?prefix=p%2F&since=6 last-event-id=']);
  });

  it('throws HISTORY_COMPACTED at once instead of resuming', async () => {
    scripts = [
      (_req, res) => {
        res.writeHead(410, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'HISTORY_COMPACTED', message: 'list again' } }));
      },
    ];
    const error = await apiError(collect(new StrataClient({ baseUrl: url, retries: 5, retryBaseMs: 1 }), 1, { since: '3' }));
    expect(error).toMatchObject({ status: 410, code: 'HISTORY_COMPACTED', attempts: 1 });
    expect(scripts).toHaveLength(0);
  });

  it('replaces a connection that stays silent longer than the idle timeout', async () => {
    seen.length = 0;
    scripts = [
      // Headers and a ready event, then nothing at all: a connection a dead proxy left open.
      (_req, res) => sse(res, 'event: ready\nid: 8\ndata: {"prefix":"p/","version":"8"}\n\n'),
      (_req, res) => sse(res, `event: ready\nid: 8\ndata: {"prefix":"p/","version":"8"}\n\n${change('p/c', 9)}`),
    ];
    const client = new StrataClient({ baseUrl: url, retries: 1, retryBaseMs: 1 });
    expect(await collect(client, 2, { idleTimeoutMs: 50 })).toEqual([
      { type: 'ready', prefix: 'p/', version: '8' },
      { type: 'change', key: 'p/c', version: '9', kind: 'put' },
    ]);
    expect(seen).toEqual(['/watch?prefix=p%2F last-event-id=', '/watch?prefix=p%2F&since=8 last-event-id=']);
  });

  it('keeps the connection while the caller holds an event longer than the idle timeout', async () => {
    seen.length = 0;
    let stream: ServerResponse | null = null;
    scripts = [
      (_req, res) => {
        stream = res;
        sse(res, `event: ready\nid: 1\ndata: {"prefix":"p/","version":"1"}\n\n${change('p/a', 2)}`);
      },
    ];
    const events: WatchEvent[] = [];
    for await (const event of new StrataClient({ baseUrl: url, retries: 0, retryBaseMs: 1 }).watch('p/', { idleTimeoutMs: 50 })) {
      events.push(event);
      if (event.version === '2') {
        // The watch's idle timer is a real timer of 50 ms: a caller this slow must not be taken for a silent
        // connection. The next change is sent on the same connection once the caller is back.
        await outlastRealTimer(200);
        sse(stream!, change('p/b', 3));
      }
      if (events.length === 3) break;
    }
    expect(events.map((e) => e.version)).toEqual(['1', '2', '3']);
    expect(seen).toHaveLength(1);
  });

  it('gives up when every connection opens and fails again without a change: opening is not progress', async () => {
    const failing = (_req: IncomingMessage, res: ServerResponse): void => {
      sse(res, 'event: ready\nid: 3\ndata: {"prefix":"p/","version":"3"}\n\n');
      sse(res, 'event: error\ndata: {"error":{"code":"METADATA_UNAVAILABLE","message":"store down"}}\n\n');
      res.end();
    };
    scripts = [failing, failing, failing];
    const events: WatchEvent[] = [];
    const error = await apiError(
      (async () => {
        for await (const event of new StrataClient({ baseUrl: url, retries: 2, retryBaseMs: 1 }).watch('p/')) events.push(event);
      })(),
    );
    expect(error).toMatchObject({ code: 'METADATA_UNAVAILABLE' });
    expect(events).toEqual([{ type: 'ready', prefix: 'p/', version: '3' }]);
    expect(scripts).toHaveLength(0);
  });

  it('gives up after its retries with the last failure', async () => {
    const refused = (_req: IncomingMessage, res: ServerResponse): void => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end(JSON.stringify({ error: { code: 'METADATA_UNAVAILABLE', message: 'store down' } }));
    };
    scripts = [refused, refused, refused];
    const error = await apiError(collect(new StrataClient({ baseUrl: url, retries: 2, retryBaseMs: 1 }), 1));
    expect(error).toMatchObject({ status: 503, code: 'METADATA_UNAVAILABLE' });
    expect(scripts).toHaveLength(0);
  });
});
