/**
 * Client API keys and rate limits on the gateway (README "Security", docs/api.md "Access control"): 401 without a
 * valid key, 403 outside a key's permissions or prefix, 429 with an exact Retry-After, /health* always open, and a
 * gateway without configuration as open as before.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../internal/config/config.js';
import { systemClock, type Clock } from '../../internal/core/clock.js';
import { TokenBucketLimiter } from '../../internal/api/rate-limiter.js';
import { StrataClient } from '../../internal/client/strata-client.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { ManualClock } from '../helpers/manual-clock.js';

const READER = 'reader-secret-0123456789abcdef';
const WRITER = 'writer-secret-0123456789abcdef';
const TENANT = 'tenant-a-secret-0123456789abcd';
const ADMIN = 'admin-secret-0123456789abcdefgh';

const KEYS = [
  { id: 'reader', secret: READER, permissions: ['read'] },
  // Given as a digest: the gateway never needs the secret itself.
  { id: 'writer', sha256: createHash('sha256').update(WRITER).digest('hex'), permissions: ['read', 'write'] },
  { id: 'tenant-a', secret: TENANT, permissions: ['read', 'write'], prefix: 'tenant-a:' },
  { id: 'ops', secret: ADMIN, permissions: ['read', 'admin'] },
];

/** The system clock plus an offset a test moves forward: the cluster runs normally, the rate limiter sees jumps. */
class SteppedClock implements Clock {
  offsetMs = 0;
  nowMs(): number {
    return Date.now() + this.offsetMs;
  }
  sleep(ms: number): Promise<void> {
    return systemClock.sleep(ms);
  }
}

const bearer = (secret: string): Record<string, string> => ({ authorization: `Bearer ${secret}` });

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

/** A request with the path sent exactly as given (fetch would resolve dot segments and normalize escapes). */
function rawRequest(base: string, method: string, rawPath: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: rawPath, method, headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const rawGet = (base: string, rawPath: string, headers: Record<string, string>): Promise<{ status: number; body: string }> =>
  rawRequest(base, 'GET', rawPath, headers);

describe('gateway without API keys', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster();
  });
  afterAll(async () => cluster?.destroy());

  it('stays open: writes and reads need no credentials (the quick start)', async () => {
    expect((await cluster.write('open:1', { like_count: 1 })).status).toBe(200);
    expect((await cluster.read('open:1')).status).toBe(200);
    expect((await cluster.fetch('/cluster')).status).toBe(200);
  });
});

describe('gateway with API keys', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ env: { STRATA_API_KEYS: JSON.stringify(KEYS) } });
  });
  afterAll(async () => cluster?.destroy());

  const call = (p: string, secret: string | null, init: RequestInit = {}): Promise<Response> =>
    cluster.fetch(p, { ...init, headers: { ...(secret === null ? {} : bearer(secret)), ...(init.headers as Record<string, string>) } });
  const write = (key: string, secret: string | null, body = '{"like_count":1}'): Promise<Response> =>
    call(`/write?key=${encodeURIComponent(key)}`, secret, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  it('answers 401 UNAUTHORIZED with WWW-Authenticate to a request without a key, on every route but /health*', async () => {
    const requests: [string, RequestInit][] = [
      ['/write?key=a', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }],
      ['/read/a', {}],
      ['/patch/a', { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: '{}' }],
      ['/delete/a', { method: 'DELETE' }],
      ['/stat/a', {}],
      ['/list', {}],
      ['/watch?prefix=a', {}],
      ['/cluster', {}],
      ['/storage_usage', {}],
      ['/admin/nodes', {}],
      ['/no-such-route', {}],
    ];
    for (const [p, init] of requests) {
      const res = await cluster.fetch(p, init);
      expect(res.status, p).toBe(401);
      expect(res.headers.get('www-authenticate'), p).toMatch(/^Bearer realm="strata"/);
      expect(await errorCode(res), p).toBe('UNAUTHORIZED');
    }
    for (const p of ['/health', '/health/live', '/health/ready']) {
      expect((await cluster.fetch(p)).status, p).toBe(200);
    }
  });

  it('answers 401 to an unknown key, a key in another scheme, and a near miss of a real key', async () => {
    for (const headers of [bearer('not-a-key-at-all-0000000'), { authorization: `Basic ${READER}` }, bearer(`${READER}x`), bearer(READER.slice(0, -1)), { 'x-api-key': 'nope' }]) {
      const res = await cluster.fetch('/read/a', { headers });
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
    }
  });

  it('accepts a key as a bearer token or in X-Api-Key, given as a secret or as its sha256', async () => {
    expect((await write('shared:1', WRITER)).status).toBe(200);
    expect((await call('/read/shared%3A1', null, { headers: { 'x-api-key': READER } })).status).toBe(200);
    expect((await call('/read/shared%3A1', READER)).status).toBe(200);
  });

  it('answers 403 FORBIDDEN to a key without the route permission, and changes nothing', async () => {
    expect((await write('shared:2', WRITER, '{"like_count":2}')).status).toBe(200);
    const refused = [
      await write('shared:2', READER, '{"like_count":99}'),
      await call('/patch/shared%3A2', READER, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: '{"like_count":99}' }),
      await call('/delete/shared%3A2', READER, { method: 'DELETE' }),
      await call('/admin/nodes', WRITER),
      await call('/admin/nodes/node-1/drain', READER, { method: 'POST' }),
    ];
    for (const res of refused) {
      expect(res.status).toBe(403);
      expect(await errorCode(res)).toBe('FORBIDDEN');
    }
    expect(await (await call('/read/shared%3A2', READER)).text()).toBe('{"like_count":2}');
    expect((await call('/admin/nodes', ADMIN)).status).toBe(200);
  });

  it('confines a prefix-scoped key to its keys: writes, reads, patches, deletes, stats elsewhere are 403', async () => {
    expect((await write('tenant-a:1', TENANT)).status).toBe(200);
    expect((await call('/read/tenant-a%3A1', TENANT)).status).toBe(200);
    expect((await write('tenant-b:1', WRITER, '{"like_count":5}')).status).toBe(200);
    const outside = [
      await write('tenant-b:1', TENANT, '{"like_count":6}'),
      await write('tenant-b:2', TENANT),
      await call('/read/tenant-b%3A1', TENANT),
      await call('/stat/tenant-b%3A1', TENANT),
      await call('/patch/tenant-b%3A1', TENANT, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: '{"like_count":7}' }),
      await call('/delete/tenant-b%3A1', TENANT, { method: 'DELETE' }),
      // The first ?key= is the one the route uses, so that is the one checked.
      await call(`/write?key=tenant-b%3A3&key=tenant-a%3A3`, TENANT, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
      // A prefix of the scope is not inside it.
      await write('tenant-a', TENANT),
    ];
    for (const res of outside) {
      expect(res.status).toBe(403);
      expect(await errorCode(res)).toBe('FORBIDDEN');
    }
    expect(await (await call('/read/tenant-b%3A1', WRITER)).text()).toBe('{"like_count":5}');
    expect((await call('/read/tenant-b%3A2', WRITER)).status).toBe(404);
    expect((await call('/read/tenant-b%3A3', WRITER)).status).toBe(404);
  });

  it('checks the key as the route decodes it: raw dot segments and encoded slashes do not escape a scope', async () => {
    const headers = bearer(TENANT);
    // `/read/tenant-a:1/../../read/tenant-b:1` routes to the key "tenant-a:1/../../read/tenant-b:1" (inside the
    // scope, and absent), never to tenant-b:1.
    const climbing = await rawGet(cluster.url, '/read/tenant-a%3A1/../../read/tenant-b%3A1', headers);
    expect(climbing.status).toBe(404);
    expect(climbing.body).not.toContain('like_count');
    expect((await rawGet(cluster.url, '/read/..%2Ftenant-b%3A1', headers)).status).toBe(403);
    expect((await rawGet(cluster.url, '/read/%74enant-b%3A1', headers)).status).toBe(403);
    // The router decodes the path it routes on; the route names are checked as routed, not as spelled.
    for (const spelled of ['/%72ead/tenant-b%3A1', '/%72%65%61%64/tenant-b%3A1', '/st%61t/tenant-b%3A1', '/%6Cist', '/%6Cist?prefix=tenant-b%3A', '/w%61tch?prefix=tenant-b%3A']) {
      const answer = await rawGet(cluster.url, spelled, headers);
      expect(answer.status, spelled).not.toBe(200);
      expect(answer.body, spelled).not.toContain('like_count');
      expect(answer.body, spelled).not.toContain('tenant-b');
    }
  });

  it('checks permissions on the route the router picks, however its name is percent-encoded', async () => {
    for (const [method, spelled] of [['GET', '/%61dmin/nodes'], ['GET', '/adm%69n/nodes'], ['POST', '/%61dmin/nodes/node-1/drain'], ['POST', '/%77rite?key=shared%3A9'], ['DELETE', '/%64elete/shared%3A1']] as const) {
      const res = await rawRequest(cluster.url, method, spelled, { ...bearer(READER), 'content-type': 'application/json' }, method === 'POST' ? '{}' : undefined);
      expect(res.status, `${method} ${spelled}: ${res.body}`).toBe(403);
    }
    expect((await call('/read/shared%3A9', WRITER)).status).toBe(404);
  });

  it('StrataClient and the CLI environment send the key they are given', async () => {
    const withKey = new StrataClient({ baseUrl: cluster.url, apiKey: TENANT });
    await withKey.write('tenant-a:client', { like_count: 3 });
    expect((await withKey.read('tenant-a:client')).text).toBe('{"like_count":3}');
    const withoutKey = new StrataClient({ baseUrl: cluster.url, retries: 0 });
    await expect(withoutKey.read('tenant-a:client')).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    await expect(withKey.read('tenant-b:1')).rejects.toMatchObject({ status: 403, code: 'FORBIDDEN' });
  });

  it('answers 403 to /list and /watch outside the scope, 200 inside', async () => {
    for (const query of ['', '?prefix=', '?prefix=tenant-', '?prefix=tenant-b%3A', '?limit=10']) {
      const res = await call(`/list${query}`, TENANT);
      expect(res.status, query).toBe(403);
    }
    expect((await call('/watch?prefix=tenant-b%3A', TENANT)).status).toBe(403);
    expect((await call('/watch', TENANT)).status).toBe(403);
    const inside = await call('/list?prefix=tenant-a%3A', TENANT);
    expect(inside.status).toBe(200);
    expect(((await inside.json()) as { keys: string[] }).keys).toContain('tenant-a:1');
    expect((await call('/list?prefix=tenant-a%3A1', TENANT)).status).toBe(200);
  });
});

describe('API keys from STRATA_API_KEYS_FILE', () => {
  let dir: string;
  let cluster: TestCluster;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'strata-keys-'));
    const file = path.join(dir, 'keys.json');
    await writeFile(file, JSON.stringify({ keys: [{ id: 'from-file', sha256: createHash('sha256').update(READER).digest('hex'), permissions: ['read'] }] }), { mode: 0o600 });
    cluster = await startTestCluster({ env: { STRATA_API_KEYS_FILE: file } });
  });
  afterAll(async () => {
    await cluster?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes the keys from the file', async () => {
    expect((await cluster.fetch('/cluster', { headers: bearer(READER) })).status).toBe(200);
    expect((await cluster.fetch('/cluster', { headers: bearer(WRITER) })).status).toBe(401);
  });
});

describe('API key configuration errors name the variable', () => {
  it('refuses malformed, weak, ambiguous or contradictory keys', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ STRATA_API_KEYS: 'not json' }, /STRATA_API_KEYS is not JSON/],
      [{ STRATA_API_KEYS: '{"id":"x"}' }, /STRATA_API_KEYS must be a JSON list/],
      [{ STRATA_API_KEYS: '[{"id":"x","secret":"short","permissions":["read"]}]' }, /STRATA_API_KEYS\[0\] \("x"\)\.secret must be at least 16/],
      [{ STRATA_API_KEYS: '[{"id":"x","sha256":"abc","permissions":["read"]}]' }, /needs "secret".*or "sha256"/],
      [{ STRATA_API_KEYS: `[{"id":"x","secret":"${READER}","permissions":["root"]}]` }, /permissions must be a non-empty list of read, write, admin/],
      [{ STRATA_API_KEYS: `[{"id":"x","secret":"${READER}","permissions":["read"]},{"id":"x","secret":"${WRITER}","permissions":["read"]}]` }, /the id "x" appears twice/],
      [{ STRATA_API_KEYS: `[{"id":"x","secret":"${READER}","permissions":["read"]},{"id":"y","secret":"${READER}","permissions":["read"]}]` }, /same secret/],
      [{ STRATA_API_KEYS: `[{"id":"x","secret":"${READER}","permissions":["admin"],"prefix":"a:"}]` }, /prefix cannot have the admin permission/],
      [{ STRATA_API_KEYS: `[{"id":"x","secret":"${READER}","permissions":["read"],"rate_per_sec":0}]` }, /rate_per_sec must be a number/],
      [{ STRATA_API_KEYS: `[{"id":"x","secret":"${READER}","permissions":["read"],"colour":"red"}]` }, /unknown field "colour"/],
      [{ STRATA_API_KEYS: '[]', STRATA_API_KEYS_FILE: '/x' }, /not both/],
      [{ STRATA_API_KEYS_FILE: '/nonexistent/keys.json' }, /STRATA_API_KEYS_FILE \(\/nonexistent\/keys.json\) cannot be read/],
      [{ STRATA_RATE_LIMIT_PER_SEC: '-1' }, /STRATA_RATE_LIMIT_PER_SEC/],
      [{ STRATA_RATE_LIMIT_BURST: '0' }, /STRATA_RATE_LIMIT_BURST/],
      [{ STRATA_REQUESTS_IN_FLIGHT_MAX: '0' }, /STRATA_REQUESTS_IN_FLIGHT_MAX/],
      [{ STRATA_TRUST_FORWARDED_FOR: 'maybe' }, /STRATA_TRUST_FORWARDED_FOR/],
    ];
    for (const [env, message] of cases) {
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(ConfigError);
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(message);
    }
  });

  it('keeps only the digest of a secret', () => {
    const config = loadConfig({ STRATA_API_KEYS: JSON.stringify([{ id: 'x', secret: READER, permissions: ['read'] }]) });
    expect(JSON.stringify(config)).not.toContain(READER);
    expect(config.apiKeys[0]!.secretSha256.equals(createHash('sha256').update(READER).digest())).toBe(true);
  });
});

describe('rate limits', () => {
  it('token bucket: a burst, then one request per 1/rate seconds, with the exact wait', () => {
    const clock = new ManualClock();
    const limiter = new TokenBucketLimiter({ clock, clientsMax: 10 });
    const limit = { ratePerSec: 4, burst: 3 };
    for (let i = 0; i < 3; i++) expect(limiter.take('a', limit)).toEqual({ allowed: true });
    expect(limiter.take('a', limit)).toEqual({ allowed: false, retryAfterMs: 250 });
    clock.advance(100);
    expect(limiter.take('a', limit)).toEqual({ allowed: false, retryAfterMs: 150 });
    clock.advance(150);
    expect(limiter.take('a', limit)).toEqual({ allowed: true });
    // Another client has its own bucket.
    expect(limiter.take('b', limit)).toEqual({ allowed: true });
    // Idle for long, the bucket holds the burst, never more.
    clock.advance(3_600_000);
    for (let i = 0; i < 3; i++) expect(limiter.take('a', limit)).toEqual({ allowed: true });
    expect(limiter.take('a', limit).allowed).toBe(false);
  });

  it('token bucket table: never more than clientsMax buckets, idle ones dropped first', () => {
    const clock = new ManualClock();
    const limiter = new TokenBucketLimiter({ clock, clientsMax: 100 });
    const limit = { ratePerSec: 1, burst: 2 };
    for (let i = 0; i < 10_000; i++) {
      limiter.take(`client-${i}`, limit);
      expect(limiter.size).toBeLessThanOrEqual(100);
    }
    // Once every bucket has refilled, each new request drops idle ones: the table shrinks back.
    clock.advance(10_000);
    for (let i = 0; i < 60; i++) limiter.take('busy', limit);
    expect(limiter.size).toBeLessThan(10);
  });

  it('token bucket table: a request drops at most two idle buckets, and none behind one still refilling', () => {
    const clock = new ManualClock();
    const limiter = new TokenBucketLimiter({ clock, clientsMax: 100 });
    const slow = { ratePerSec: 0.1, burst: 1 };
    const fast = { ratePerSec: 10, burst: 1 };
    limiter.take('x', slow);
    limiter.take('y', fast);
    clock.advance(1_000);
    // 'x' (least recently seen) has refilled a tenth: it stays, and so does the idle 'y' behind it.
    limiter.take('z', fast);
    expect(limiter.size).toBe(3);
    clock.advance(10_000);
    // All three are idle now; one request drops two of them, the least recently seen.
    limiter.take('w', fast);
    expect(limiter.size).toBe(2);
    clock.advance(10_000);
    // A client's own idle bucket is refilled, not dropped; the idle 'w' is.
    expect(limiter.take('z', fast)).toEqual({ allowed: true });
    expect(limiter.size).toBe(1);
  });

  describe('over HTTP', () => {
    const clock = new SteppedClock();
    let cluster: TestCluster;
    beforeAll(async () => {
      cluster = await startTestCluster({
        clock,
        env: {
          STRATA_API_KEYS: JSON.stringify([
            { id: 'slow', secret: READER, permissions: ['read'], rate_per_sec: 0.5, burst: 2 },
            { id: 'default', secret: WRITER, permissions: ['read'] },
          ]),
          STRATA_RATE_LIMIT_PER_SEC: '0.2',
          STRATA_RATE_LIMIT_BURST: '1',
        },
      });
    });
    afterAll(async () => cluster?.destroy());

    it('answers 429 RATE_LIMITED with Retry-After in seconds until the key has a token again', async () => {
      const get = (secret: string): Promise<Response> => cluster.fetch('/cluster', { headers: bearer(secret) });
      expect((await get(READER)).status).toBe(200);
      expect((await get(READER)).status).toBe(200);
      const limited = await get(READER);
      expect(limited.status).toBe(429);
      expect(await errorCode(limited)).toBe('RATE_LIMITED');
      expect(limited.headers.get('retry-after')).toBe('2'); // one token at 0.5/s
      // The other key has its own bucket, with the default rate: one request, then 5 s.
      expect((await get(WRITER)).status).toBe(200);
      const other = await get(WRITER);
      expect(other.status).toBe(429);
      expect(other.headers.get('retry-after')).toBe('5');
      clock.offsetMs += 2000;
      expect((await get(READER)).status).toBe(200);
      expect((await get(READER)).status).toBe(429);
      // /health is never limited.
      for (let i = 0; i < 5; i++) expect((await cluster.fetch('/health/live')).status).toBe(200);
    });
  });

  describe('per client address without keys', () => {
    const clock = new SteppedClock();
    let cluster: TestCluster;
    beforeAll(async () => {
      cluster = await startTestCluster({ clock, env: { STRATA_RATE_LIMIT_PER_SEC: '1', STRATA_RATE_LIMIT_BURST: '3', STRATA_TRUST_FORWARDED_FOR: '1' } });
    });
    afterAll(async () => cluster?.destroy());

    it('gives each address (the last X-Forwarded-For entry, from a trusted proxy) its own bucket', async () => {
      const from = (address: string): Promise<Response> => cluster.fetch('/cluster', { headers: { 'x-forwarded-for': `6.6.6.6, ${address}` } });
      for (let i = 0; i < 3; i++) expect((await from('10.0.0.1')).status).toBe(200);
      const limited = await from('10.0.0.1');
      expect(limited.status).toBe(429);
      expect(limited.headers.get('retry-after')).toBe('1');
      expect((await from('10.0.0.2')).status).toBe(200);
      clock.offsetMs += 1000;
      expect((await from('10.0.0.1')).status).toBe(200);
    });
  });
});
