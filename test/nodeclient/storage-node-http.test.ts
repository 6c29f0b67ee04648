/**
 * The storage node's HTTP surface as a client other than HttpNodeClient sees it: auth, status codes, error bodies,
 * limits, and the node's lifecycle (scrub, stop).
 */
import http from 'node:http';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startStorageNode, type StorageNode } from '../../internal/storagenode/server.js';
import type { ScrubReport } from '../../internal/blobstore/file-blob-store.js';
import { LIMITS } from '../../internal/core/limits.js';
import { NODE_KEEP_ALIVE_MS_DEFAULT } from '../../internal/nodeclient/http-node-client.js';
import { header, makeTempDir, payload, sha256 } from '../contracts/blob-fixtures.js';
import { flipPayloadByteOnDisk } from '../blobstore/volume-harness/flip.js';
import { waitUntil } from '../helpers/wait.js';

const TOKEN = 'route-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };

describe('storage node HTTP API', () => {
  let node: StorageNode;
  let dir: string;
  let remove: () => Promise<void>;

  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('node-api'));
    node = await startStorageNode({ nodeId: 'node-2', dataDir: dir, host: '127.0.0.1', port: 0, token: TOKEN });
  });
  afterEach(async () => {
    await node.stop();
    await remove();
  });

  const call = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${node.address}${path}`, { ...init, headers: { ...AUTH, ...(init.headers as Record<string, string>) } });

  async function expectError(response: Response, status: number, code: string): Promise<void> {
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toContain('application/json');
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(0);
  }

  function putBlob(id: string, data: Buffer, extra: Record<string, string> = {}): Promise<Response> {
    const h = header(id);
    return call(`/v1/blobs/${id}`, {
      method: 'PUT',
      body: data,
      // Needed by fetch for a streamed body; harmless for a Buffer.
      duplex: 'half',
      headers: {
        'x-strata-key': encodeURIComponent(h.key),
        'x-strata-write-id': h.writeId,
        'x-strata-part': h.part,
        'x-strata-meta': encodeURIComponent(h.meta),
        ...extra,
      },
    });
  }

  it('answers 401 UNAUTHORIZED without a token, with a wrong one, or with another scheme', async () => {
    for (const authorization of [undefined, 'Bearer nope', `Basic ${TOKEN}`, TOKEN, `Bearer ${TOKEN}x`]) {
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
      const response = await fetch(`${node.address}/v1/health`, { headers });
      await expectError(response, 401, 'UNAUTHORIZED');
    }
    await expectError(await fetch(`${node.address}/v1/blobs/x.hot-0`, { method: 'DELETE' }), 401, 'UNAUTHORIZED');
  });

  it('keeps idle keep-alive connections far longer than its clients do, so a client never reuses one it is closing', async () => {
    const keepAlive = await new Promise<string | undefined>((resolve, reject) => {
      const request = http.get(`${node.address}/v1/health`, { headers: AUTH, agent: new http.Agent({ keepAlive: true }) }, (response) => {
        response.resume();
        const value = response.headers['keep-alive'];
        resolve(Array.isArray(value) ? value[0] : value);
        request.destroy();
      });
      request.on('error', reject);
    });
    // Node announces its idle timeout; the HTTP node client's own is NODE_KEEP_ALIVE_MS_DEFAULT (4 s).
    const seconds = Number(/timeout=(\d+)/.exec(keepAlive ?? '')?.[1]);
    expect(seconds * 1000).toBeGreaterThanOrEqual(10 * NODE_KEEP_ALIVE_MS_DEFAULT);
  });

  it('answers health with the node id', async () => {
    const response = await call('/v1/health');
    expect(response.status).toBe(200);
    // The capacity report: a node without a reserve always takes new blobs.
    expect(await response.json()).toEqual({ status: 'healthy', node: 'node-2', writable: true, reason: null });
  });

  it('stores a blob with PUT (201 BlobInfo) and serves it with GET, HEAD and /info', async () => {
    const data = payload(1234);
    const put = await putBlob('G1.hot-0', data, { 'x-strata-checksum': sha256(data) });
    expect(put.status).toBe(201);
    const info = await put.json();
    expect(info).toMatchObject({ id: 'G1.hot-0', key: 'key-of-G1.hot-0', size: 1234, checksum: sha256(data) });

    const get = await call('/v1/blobs/G1.hot-0');
    expect(get.status).toBe(200);
    expect(get.headers.get('x-strata-checksum')).toBe(sha256(data));
    expect(get.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await get.arrayBuffer()).equals(data)).toBe(true);

    const head = await call('/v1/blobs/G1.hot-0', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('x-strata-size')).toBe('1234');
    expect((await call('/v1/blobs/G1.hot-1', { method: 'HEAD' })).status).toBe(404);

    expect(await (await call('/v1/blobs/G1.hot-0/info')).json()).toEqual(info);
    await expectError(await call('/v1/blobs/G1.hot-1/info'), 404, 'BLOB_NOT_FOUND');
  });

  it('answers 400 INVALID_REQUEST for invalid ids, never 500', async () => {
    // (An escaped "%2E%2E" segment never arrives: URL parsing resolves it as ".." before the request is sent.)
    for (const path of ['/v1/blobs/a%2Fb', '/v1/blobs/.hidden', '/v1/blobs/a..b/info', '/v1/blobs/a%00b', '/v1/blobs/x%2E%2E']) {
      await expectError(await call(path), 400, 'INVALID_REQUEST');
    }
    await expectError(await call('/v1/blobs/%E0%A4%A'), 400, 'INVALID_REQUEST');
    await expectError(await putBlob('a%5Cb', payload(1)), 400, 'INVALID_REQUEST');
  });

  it('answers 404 ROUTE_NOT_FOUND and 405 METHOD_NOT_ALLOWED as JSON', async () => {
    await expectError(await call('/v2/blobs'), 404, 'ROUTE_NOT_FOUND');
    await expectError(await call('/v1/blobs/G1.hot-0', { method: 'POST' }), 405, 'METHOD_NOT_ALLOWED');
    await expectError(await call('/v1/health', { method: 'DELETE' }), 405, 'METHOD_NOT_ALLOWED');
  });

  it('answers 400 for missing or malformed blob headers', async () => {
    await expectError(
      await call('/v1/blobs/V1.hot-0', { method: 'PUT', body: payload(10), headers: { 'x-strata-write-id': 'V1', 'x-strata-part': 'hot-0' } }),
      400,
      'INVALID_HEADER',
    );
    await expectError(await putBlob('V1.hot-0', payload(10), { 'x-strata-key': '%E0%A4%A' }), 400, 'INVALID_HEADER');
    await expectError(await putBlob('V1.hot-0', payload(10), { 'x-strata-checksum': 'xyz' }), 400, 'INVALID_HEADER');
  });

  it('refuses a body damaged in transit (checksum header mismatch) and stores nothing', async () => {
    await expectError(await putBlob('V2.hot-0', payload(10), { 'x-strata-checksum': sha256(payload(11)) }), 400, 'INVALID_REQUEST');
    expect((await node.store.usage()).blobs).toBe(0);
  });

  it('refuses a declared Content-Length over blobBytesMax with 413 before reading the body', async () => {
    const url = new URL(`${node.address}/v1/blobs/Z1.hot-0`);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'PUT',
          headers: {
            ...AUTH,
            'content-length': String(LIMITS.blobBytesMax + 1),
            'x-strata-key': 'k',
            'x-strata-write-id': 'Z1',
            'x-strata-part': 'hot-0',
          },
        },
        (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.write(Buffer.alloc(1024)); // a first chunk only: the answer must not wait for the other 64 MiB
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error.code).toBe('BLOB_TOO_LARGE');
  });

  it('stores a chunked body without content-length', async () => {
    const data = payload(300_000);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < data.length; i += 65_536) controller.enqueue(data.subarray(i, i + 65_536));
        controller.close();
      },
    });
    const response = await putBlob('K1.hot-0', body as unknown as Buffer, { 'x-strata-checksum': sha256(data) });
    expect(response.status).toBe(201);
    expect((await node.store.get('K1.hot-0')).data.equals(data)).toBe(true);
  });

  it('pages the inventory with next, null after the last page', async () => {
    for (let i = 0; i < 5; i++) expect((await putBlob(`L${i}.hot-0`, payload(10, i))).status).toBe(201);
    const first = (await (await call('/v1/blobs?limit=2')).json()) as { blobs: { id: string }[]; next: string | null };
    expect(first.blobs.map((b) => b.id)).toEqual(['L0.hot-0', 'L1.hot-0']);
    expect(first.next).toBe('L1.hot-0');
    const last = (await (await call('/v1/blobs?after=L2.hot-0&limit=2')).json()) as { blobs: unknown[]; next: unknown };
    expect(last.blobs.length).toBe(2);
    expect(last.next).toBeNull();
    await expectError(await call('/v1/blobs?limit=abc'), 400, 'INVALID_LIMIT');
    await expectError(await call('/v1/blobs?limit=1001'), 400, 'INVALID_LIMIT');
  });

  it('deletes, verifies and reports usage', async () => {
    await putBlob('V3.hot-0', payload(100));
    expect(await (await call('/v1/blobs/V3.hot-0/verify', { method: 'POST' })).json()).toEqual({ result: 'ok' });
    const usage = (await (await call('/v1/usage')).json()) as { blobs: number; bytesUsed: number };
    expect(usage.blobs).toBe(1);
    expect(await (await call('/v1/blobs/V3.hot-0', { method: 'DELETE' })).json()).toEqual({ deleted: true });
    expect(await (await call('/v1/blobs/V3.hot-0', { method: 'DELETE' })).json()).toEqual({ deleted: false });
    expect(await (await call('/v1/blobs/V3.hot-0/verify', { method: 'POST' })).json()).toEqual({ result: 'missing' });
  });

  it('stops promptly while clients hold connections: an idle keep-alive one and one in the middle of a request', async () => {
    const agent = new http.Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      http
        .get(`${node.address}/v1/health`, { agent, headers: AUTH }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
        .on('error', reject);
    });
    const [idle] = Object.values(agent.freeSockets).flat();
    expect(idle, 'the agent keeps the idle connection').toBeDefined();
    // A request whose headers never finish: the connection is not idle, so only stop's closing of every
    // connection ends it before node:http's headers timeout (60 s, the test's own timeout). A stop that waited for
    // its clients would fail the test at its timeout; no assertion depends on how fast the machine is.
    const { port } = new URL(node.address);
    const midRequest = net.connect(Number(port), '127.0.0.1');
    midRequest.on('error', () => undefined);
    await new Promise<void>((resolve) => midRequest.once('connect', () => resolve()));
    midRequest.write('GET /v1/health HTTP/1.1\r\nHost: node\r\n');
    const closed = (socket: net.Socket): Promise<void> =>
      socket.destroyed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
    const idleClosed = closed(idle!);
    const midRequestClosed = closed(midRequest);
    await node.stop();
    await Promise.all([idleClosed, midRequestClosed]);
    agent.destroy();
  });
});

describe('storage node background scrub', () => {
  it('finds a corrupted blob on its own when scrubIntervalMs is set', async () => {
    const { dir, remove } = await makeTempDir('node-scrub');
    const reports: ScrubReport[] = [];
    const node = await startStorageNode({
      nodeId: 'node-9',
      dataDir: dir,
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      scrubIntervalMs: 20,
      scrubBytesPerSecMax: 100 * 1024 * 1024,
      onScrub: (report) => reports.push(report),
    });
    try {
      await node.store.put(header('Q1.hot-0'), payload(1000, 1));
      await node.store.put(header('Q1.hot-1'), payload(1000, 2));
      await flipPayloadByteOnDisk(node.store, 'Q1.hot-1');
      await waitUntil('a scrub to report the corrupted blob', () => reports.some((r) => r.corrupt.includes('Q1.hot-1')));
      expect((await node.store.stat('Q1.hot-1'))?.corrupt).toBe(true);
      expect((await node.store.stat('Q1.hot-0'))?.corrupt).toBeUndefined();
    } finally {
      await node.stop();
      await remove();
    }
  });
});

describe('storage node start-up', () => {
  it('fails to start on a port already in use, and releases its store', async () => {
    const first = await makeTempDir('node-port');
    const second = await makeTempDir('node-port');
    const node = await startStorageNode({ nodeId: 'a', dataDir: first.dir, host: '127.0.0.1', port: 0, token: TOKEN });
    try {
      await expect(
        startStorageNode({ nodeId: 'b', dataDir: second.dir, host: '127.0.0.1', port: node.port, token: TOKEN }),
      ).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await node.stop();
      await first.remove();
      await second.remove();
    }
  });

  it('reports the address clients dial, with the port it was given', async () => {
    const tmp = await makeTempDir('node-port');
    const node = await startStorageNode({ nodeId: 'c', dataDir: tmp.dir, host: '127.0.0.1', port: 0, token: TOKEN });
    try {
      expect(node.port).toBeGreaterThan(0);
      expect(node.address).toBe(`http://127.0.0.1:${node.port}`);
      expect(node.nodeId).toBe('c');
    } finally {
      await node.stop();
      await node.stop(); // idempotent
      await tmp.remove();
    }
  });
});
