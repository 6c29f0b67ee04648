/**
 * Methods no route takes get 405 METHOD_NOT_ALLOWED in the API's JSON error shape, through the real HTTP servers,
 * including the ones node:http never hands to a request listener: CONNECT (which it answers by resetting the
 * connection when nobody listens for it) and methods its parser does not know. Sent over raw sockets, since fetch
 * refuses to send CONNECT or TRACE at all.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unknownMethodOf } from '../../internal/wiring/http-server.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Sends `text` on a fresh connection and reads until the server closes it. A reset rejects. */
function exchange(address: string, text: string): Promise<RawAnswer> {
  const url = new URL(address);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      socket.end();
      const raw = Buffer.concat(chunks).toString('utf8');
      const split = raw.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`no complete response: ${JSON.stringify(raw)}`));
      const [statusLine, ...headerLines] = raw.slice(0, split).split('\r\n');
      const headers = new Map(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: raw.slice(split + 4) });
    });
  });
}

function expectMethodNotAllowed(answer: RawAnswer, method: string): void {
  expect(answer.status, `${method}: ${answer.body}`).toBe(405);
  expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
  expect(answer.headers.get('allow')).toMatch(/GET/);
  const body = JSON.parse(answer.body) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toBe('METHOD_NOT_ALLOWED');
  expect(body.error.message).toContain(method);
}

describe('methods no route takes', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    // Blobs over HTTP: the storage nodes' own servers are part of the write path checked below.
    cluster = await startTestCluster({ transport: 'http' });
  });
  afterAll(async () => cluster?.destroy());

  it('answers CONNECT with 405 METHOD_NOT_ALLOWED in the JSON error shape instead of resetting the connection', async () => {
    const answer = await exchange(cluster.url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expectMethodNotAllowed(answer, 'CONNECT');
  });

  it('answers CONNECT that sends tunnel bytes straight after its headers with 405 too', async () => {
    const hello = Buffer.alloc(512, 0x16).toString('latin1');
    const answer = await exchange(cluster.url, `CONNECT /write HTTP/1.1\r\nHost: localhost\r\n\r\n${hello}`);
    expectMethodNotAllowed(answer, 'CONNECT');
  });

  for (const method of ['TRACE', 'PROPFIND', 'QUERY', 'BREW', 'X-MADE-UP']) {
    it(`answers ${method} on a document route with 405 METHOD_NOT_ALLOWED in the JSON error shape`, async () => {
      const answer = await exchange(cluster.url, `${method} /read/doc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      expectMethodNotAllowed(answer, method);
    });
  }

  it('answers a method the path takes with 404 ROUTE_NOT_FOUND when nothing is there, not with 405', async () => {
    const missing = await cluster.fetch('/console/no-such-asset.js');
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('ROUTE_NOT_FOUND');
    const wrongMethod = await cluster.fetch('/console/app.js', { method: 'POST' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('GET, HEAD');
    const console = await cluster.fetch('/console/', { redirect: 'manual' });
    expect(console.status).toBe(301);
    expect(console.headers.get('location')).toBe('/');
  });

  it('still answers garbage that is no request line with 400 INVALID_REQUEST', async () => {
    const answer = await exchange(cluster.url, '\x16\x03\x01 not http\r\n\r\n');
    expect(answer.status).toBe(400);
    expect((JSON.parse(answer.body) as { error: { code: string } }).error.code).toBe('INVALID_REQUEST');
  });

  it('answers CONNECT on a storage node with 405 in the same shape, and the node keeps serving writes', async () => {
    const node = cluster.nodes[0]!;
    const answer = await exchange(node.address, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expectMethodNotAllowed(answer, 'CONNECT');
    const after = await cluster.write('connect/after', { n: 1 });
    expect(after.status, await after.clone().text()).toBe(200);
    const read = await cluster.read('connect/after');
    expect(read.status).toBe(200);
    expect(await read.json()).toEqual({ n: 1 });
    const stat = (await (await cluster.fetch('/stat/connect%2Fafter')).json()) as { dirty: boolean };
    expect(stat.dirty).toBe(false);
  });

  it('keeps the gateway serving after a burst of CONNECT requests', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => exchange(cluster.url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')),
    );
    for (const answer of answers) expectMethodNotAllowed(answer, 'CONNECT');
    expect((await cluster.fetch('/health')).status).toBe(200);
  });
});

describe('unknownMethodOf', () => {
  it('finds a method token followed by a space, and nothing in bytes that are no request line', () => {
    expect(unknownMethodOf(Buffer.from('BREW /pot HTTP/1.1\r\n'))).toBe('BREW');
    expect(unknownMethodOf(Buffer.from('\x16\x03\x01\x02'))).toBeNull();
    expect(unknownMethodOf(Buffer.from(`${'A'.repeat(100)} / HTTP/1.1`))).toBeNull();
    expect(unknownMethodOf(undefined)).toBeNull();
  });
});
