/**
 * The project's nginx.conf, run by real nginx (scripts/infra/nginx.ts) in front of an in-process gateway and of
 * small fake upstreams: encoded keys pass byte for byte, the gateway's own 413 reaches the client, nginx's own
 * errors are JSON, and failover retries only what is safe to retry.
 *
 * Requests go out through node:http with the path exactly as written here: fetch() would normalise "..", "//" and
 * some escapes before nginx ever saw them.
 */
import { readFile } from 'node:fs/promises';
import http, { type IncomingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS } from '../../internal/core/limits.js';
import { ensureNginx, freePort, NGINX_INFRA_LIMITS, startNginx, type RunningNginx } from '../../scripts/infra/nginx.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { waitUntil } from '../helpers/wait.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface ErrorBody {
  error: { code: string; message: string };
}

/**
 * One request on a fresh connection. A server may answer before the body is sent in full (a 413 decided from
 * Content-Length) and close the connection: the answer counts, the failed rest of the upload does not.
 */
function send(baseUrl: string, options: { method?: string; path: string; headers?: Record<string, string | number>; body?: Buffer | string }): Promise<Answer> {
  const base = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      { host: base.hostname, port: Number(base.port), method: options.method ?? 'GET', path: options.path, headers: options.headers ?? {}, agent: false },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    if (options.body !== undefined) req.write(options.body, () => undefined);
    req.end();
  });
}

function errorOf(answer: Answer): ErrorBody['error'] {
  expect(answer.headers['content-type'], `a JSON error, got: ${answer.body.slice(0, 200)}`).toMatch(/^application\/json/);
  return (JSON.parse(answer.body) as ErrorBody).error;
}

function hostPort(url: string): string {
  return new URL(url).host;
}

/** A port nothing listens on: connecting to it is refused at once, as with a stopped gateway. */
async function closedPort(): Promise<string> {
  return `127.0.0.1:${await freePort()}`;
}

interface FakeUpstream {
  address: string;
  /** Requests whose headers arrived. */
  requests: { method: string; url: string; headers: IncomingHttpHeaders }[];
  connections: number;
  close(): Promise<void>;
}

/**
 * A stand-in gateway. `answer`: replies 200 with a small JSON body and keeps the connection; `drop`: reads the
 * request headers, then closes the connection without answering, as a gateway that crashed mid-request would.
 */
async function fakeUpstream(mode: 'answer' | 'drop'): Promise<FakeUpstream> {
  const requests: FakeUpstream['requests'] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (mode === 'drop') {
      req.socket.destroy();
      return;
    }
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end('{"fake":true}');
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

let cluster: TestCluster;
let gateway: string;
/** nginx in front of the cluster's one gateway. */
let proxy: RunningNginx;
/** Per-test nginx instances and fakes, stopped after each test. */
const cleanups: (() => Promise<void>)[] = [];

async function track<T extends { stop(): Promise<void> } | { close(): Promise<void> }>(thing: T): Promise<T> {
  cleanups.push(() => ('stop' in thing ? thing.stop() : thing.close()));
  return thing;
}

beforeAll(async () => {
  await ensureNginx();
}, NGINX_INFRA_LIMITS.installTimeoutMs);

beforeAll(async () => {
  cluster = await startTestCluster();
  gateway = hostPort(cluster.url);
  proxy = await startNginx({ upstreams: [gateway] });
});

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

afterAll(async () => {
  await proxy?.stop();
  await cluster?.destroy();
});

describe('nginx in front of a gateway', () => {
  const KEYS = [
    'a/b',
    '%2F',
    '100%',
    '%25',
    'with space',
    '  padded  ',
    'a/../b',
    '../up',
    '..',
    './here',
    '//double//slash',
    'trailing//',
    'q?x=1&y=2#frag',
    'plus+sign',
    '中文/键',
  ];

  for (const key of KEYS) {
    it(`writes and reads back the key ${JSON.stringify(key)} unchanged through nginx`, async () => {
      const encoded = encodeURIComponent(key);
      const doc = JSON.stringify({ like_count: 1, key });
      const written = await send(proxy.url, {
        method: 'POST',
        path: `/write?key=${encoded}`,
        headers: { 'content-type': 'application/json' },
        body: doc,
      });
      expect(written.status, written.body).toBe(200);
      expect((JSON.parse(written.body) as { key: string }).key).toBe(key);

      const read = await send(proxy.url, { path: `/read/${encoded}` });
      expect(read.status, read.body).toBe(200);
      expect(read.body).toBe(doc);
      // Stored under exactly this key: the gateway, asked directly, finds it there.
      const stat = await send(cluster.url, { path: `/stat/${encoded}` });
      expect((JSON.parse(stat.body) as { key: string }).key).toBe(key);
    });
  }

  it('passes the request target byte for byte, with a request id and the client address', async () => {
    const fake = await track(await fakeUpstream('answer'));
    const nginx = await track(await startNginx({ upstreams: [fake.address] }));
    const targets = ['/read/a%2Fb%2f..%2F%2e%2e//c%25%20d?fields=x%2Cy,%2Fz', '/read/%E4%B8%AD%2F%E9%94%AE', '/stat/..%2F.%2F'];
    for (const target of targets) {
      const answer = await send(nginx.url, { path: target, headers: { 'x-request-id': 'client-chosen-id', 'x-forwarded-for': '10.0.0.9' } });
      expect(answer.status).toBe(200);
      expect(answer.headers['x-request-id']).toBe('client-chosen-id');
    }
    expect(fake.requests.map((r) => r.url)).toEqual(targets);
    for (const request of fake.requests) {
      expect(request.headers['x-request-id']).toBe('client-chosen-id');
      expect(request.headers['x-forwarded-for']).toBe('10.0.0.9, 127.0.0.1');
    }

    const anonymous = await send(nginx.url, { path: '/health' });
    const generated = anonymous.headers['x-request-id'];
    expect(generated).toMatch(/^[0-9a-f]{32}$/);
    expect(fake.requests.at(-1)?.headers['x-request-id']).toBe(generated);
  });

  it('keeps connections to the gateway open across requests', async () => {
    const fake = await track(await fakeUpstream('answer'));
    const nginx = await track(await startNginx({ upstreams: [fake.address] }));
    const requests = 20;
    for (let i = 0; i < requests; i++) expect((await send(nginx.url, { path: `/read/k${i}` })).status).toBe(200);
    // Each client request came on its own connection; nginx reused its own (one pool per worker process).
    expect(fake.connections).toBeLessThanOrEqual(Math.min(os.cpus().length, requests - 1));
    expect(fake.requests.every((r) => r.headers['connection'] === undefined)).toBe(true);
  });

  it('stores and returns a document of almost 16 MiB through nginx', async () => {
    const filler = 'x'.repeat(LIMITS.bodyBytesMax - 64);
    const doc = JSON.stringify({ like_count: 7, filler });
    const written = await send(proxy.url, { method: 'POST', path: '/write?key=big', headers: { 'content-type': 'application/json' }, body: doc });
    expect(written.status, written.body.slice(0, 300)).toBe(200);
    const read = await send(proxy.url, { path: '/read/big' });
    expect(read.status).toBe(200);
    expect(read.body.length).toBe(doc.length);
    expect(read.body === doc).toBe(true);
  });

  it("answers a body of 16 MiB + 1 with the gateway's JSON 413 DOCUMENT_TOO_LARGE, not nginx's page", async () => {
    const body = Buffer.alloc(LIMITS.bodyBytesMax + 1, 0x20);
    const answer = await send(proxy.url, { method: 'POST', path: '/write?key=too-big', headers: { 'content-type': 'application/json' }, body });
    expect(answer.status).toBe(413);
    const error = errorOf(answer);
    expect(error.code).toBe('DOCUMENT_TOO_LARGE');
    // The gateway's message names its exact limit; nginx's own 413 speaks of 17 MiB.
    expect(error.message).toContain(String(LIMITS.bodyBytesMax));
  });

  it("answers a body above nginx's own limit with a JSON 413 DOCUMENT_TOO_LARGE", async () => {
    const answer = await send(proxy.url, {
      method: 'POST',
      path: '/write?key=far-too-big',
      headers: { 'content-type': 'application/json', 'content-length': 18 * 1024 * 1024 },
      body: Buffer.alloc(64 * 1024, 0x20), // nginx answers from Content-Length; the rest is never sent
    });
    expect(answer.status).toBe(413);
    expect(errorOf(answer).code).toBe('DOCUMENT_TOO_LARGE');
  });

  it("passes the gateway's own errors through unchanged", async () => {
    const missing = await send(proxy.url, { path: '/read/no-such-key' });
    expect(missing.status).toBe(404);
    expect(errorOf(missing).code).toBe('NOT_FOUND');
    const wrongType = await send(proxy.url, { method: 'POST', path: '/write?key=k', headers: { 'content-type': 'text/plain' }, body: '{}' });
    expect(wrongType.status).toBe(415);
    expect(errorOf(wrongType).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    // nginx's error pages are not an API of their own.
    const page = await send(proxy.url, { path: '/_strata/error/502' });
    expect(page.status).toBe(404);
    expect(errorOf(page).code).toBe('ROUTE_NOT_FOUND');
  });

  it('refuses a key path whose ".." segments climb above "/" with a JSON 400 (nginx normalises every path it routes)', async () => {
    const key = '../../escape';
    expect((await send(cluster.url, { method: 'POST', path: `/write?key=${encodeURIComponent(key)}`, headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(200);
    const answer = await send(proxy.url, { path: `/read/${encodeURIComponent(key)}` });
    expect(answer.status).toBe(400);
    expect(errorOf(answer).code).toBe('INVALID_REQUEST');
  });
});

describe('nginx without a reachable gateway', () => {
  it('answers a read with a JSON 502 GATEWAY_UNAVAILABLE that says to retry', async () => {
    const nginx = await track(await startNginx({ upstreams: [await closedPort()] }));
    const answer = await send(nginx.url, { path: '/read/anything' });
    expect(answer.status).toBe(502);
    const error = errorOf(answer);
    expect(error.code).toBe('GATEWAY_UNAVAILABLE');
    expect(error.message).toContain('retry the request');
    expect(answer.headers['retry-after']).toBe('1');
    expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
  });

  it('answers a write with a JSON 502 that says its outcome is unknown', async () => {
    const nginx = await track(await startNginx({ upstreams: [await closedPort()] }));
    const answer = await send(nginx.url, { method: 'POST', path: '/write?key=k', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(answer.status).toBe(502);
    const error = errorOf(answer);
    expect(error.code).toBe('GATEWAY_UNAVAILABLE');
    expect(error.message).toMatch(/may or may not have been applied/);
  });

  it('serves again once a reload points it at a live gateway', async () => {
    const nginx = await track(await startNginx({ upstreams: [await closedPort()] }));
    expect((await send(nginx.url, { path: '/health' })).status).toBe(502);
    await nginx.reload([gateway]);
    // Old workers finish gracefully after a reload, so a request may still meet one for a moment.
    await waitUntil('nginx to pass /health to the live gateway', async () => (await send(nginx.url, { path: '/health' })).status === 200);
  });
});

describe('failover between gateways', () => {
  it('passes a read to the next gateway when the first refuses the connection', async () => {
    const nginx = await track(await startNginx({ upstreams: [await closedPort(), gateway] }));
    await cluster.write('failover-read', { like_count: 3 });
    for (let i = 0; i < 4; i++) {
      const answer = await send(nginx.url, { path: '/read/failover-read' });
      expect(answer.status, answer.body).toBe(200);
      expect(JSON.parse(answer.body)).toEqual({ like_count: 3 });
    }
    // nginx did try the dead one first (the first server of a fresh upstream is picked first).
    expect(await readLog(nginx)).toMatch(/connect\(\) failed \(111: Connection refused\)/);
  });

  it('passes a write to the next gateway when the first refuses the connection, since nothing was sent', async () => {
    const nginx = await track(await startNginx({ upstreams: [await closedPort(), gateway] }));
    const answer = await send(nginx.url, { method: 'POST', path: '/write?key=failover-write', headers: { 'content-type': 'application/json' }, body: '{"n":1}' });
    expect(answer.status, answer.body).toBe(200);
    expect(await readLog(nginx)).toMatch(/Connection refused/);
  });

  it('retries a read that a gateway dropped after receiving it', async () => {
    const dropper = await track(await fakeUpstream('drop'));
    const nginx = await track(await startNginx({ upstreams: [dropper.address, gateway] }));
    await cluster.write('dropped-read', { like_count: 4 });
    const answer = await send(nginx.url, { path: '/read/dropped-read' });
    expect(answer.status, answer.body).toBe(200);
    expect(dropper.requests.map((r) => r.url)).toEqual(['/read/dropped-read']);
  });

  it('does not replay a write that a gateway dropped after receiving it: the client learns the outcome is unknown', async () => {
    const dropper = await track(await fakeUpstream('drop'));
    const nginx = await track(await startNginx({ upstreams: [dropper.address, gateway] }));
    const answer = await send(nginx.url, { method: 'POST', path: '/write?key=dropped-write', headers: { 'content-type': 'application/json' }, body: '{"n":1}' });
    expect(answer.status).toBe(502);
    expect(errorOf(answer).message).toMatch(/may or may not have been applied/);
    expect(dropper.requests.map((r) => r.method)).toEqual(['POST']);
    // The live gateway never received it.
    expect((await send(cluster.url, { path: '/read/dropped-write' })).status).toBe(404);
  });
});

function readLog(nginx: RunningNginx): Promise<string> {
  return readFile(nginx.errorLogPath, 'utf8');
}
