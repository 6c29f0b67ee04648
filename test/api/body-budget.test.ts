/**
 * The gateway's memory stays bounded under large documents and slow clients: bodies count against
 * STRATA_BODY_BUFFER_BYTES_MAX (api/body-budget.ts), requests beyond it are refused with 503 OVERLOADED before
 * anything is read or fetched, and a client that stops sending or reading is cut after
 * STRATA_SOCKET_IDLE_TIMEOUT_MS, which gives its bytes back.
 */
import net from 'node:net';
import type { Context } from 'hono';
import { EventEmitter } from 'node:events';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BodyBudget, SMALL_BODY_BYTES } from '../../internal/api/body-budget.js';
import { StrataError } from '../../internal/core/errors.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { waitUntil } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const BUDGET_BYTES = 8 * MiB;
const IDLE_TIMEOUT_MS = 1500;
/** Larger than what the kernel's socket buffers absorb for a client that does not read (about 4 MiB here). */
const LARGE_DOC_BYTES = 12 * MiB;

/** A stand-in for hono's context: the budget only looks at the request's identity and node's response. */
function fakeContext(outgoing?: EventEmitter & { closed: boolean }): Context {
  return { req: { raw: {} }, env: outgoing ? { outgoing } : {} } as unknown as Context;
}

describe('BodyBudget', () => {
  const MAX = 4 * SMALL_BODY_BYTES;

  it('admits bodies while they fit and refuses one that does not fit beside the others with OVERLOADED', () => {
    const budget = new BodyBudget(MAX);
    budget.reserve(fakeContext(), 3 * SMALL_BODY_BYTES);
    budget.reserve(fakeContext(), SMALL_BODY_BYTES);
    expect(budget.stats().heldBytes).toBe(MAX);
    let refused: unknown;
    try {
      budget.reserve(fakeContext(), SMALL_BODY_BYTES + 1);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(StrataError);
    expect((refused as StrataError).code).toBe('OVERLOADED');
    expect((refused as StrataError).message).toContain('STRATA_BODY_BUFFER_BYTES_MAX');
    expect(budget.stats()).toEqual({ bytesMax: MAX, heldBytes: MAX, refused: 1 });
  });

  it('never refuses a small body, so small requests go on while large ones hold the budget', () => {
    const budget = new BodyBudget(MAX);
    budget.reserve(fakeContext(), 2 * MAX);
    const small = fakeContext();
    budget.reserve(small, SMALL_BODY_BYTES / 2);
    budget.reserve(small, SMALL_BODY_BYTES / 2);
    // Growing past the small size, the same request is refused like any other large body.
    expect(() => budget.reserve(small, 1)).toThrow(StrataError);
    expect(budget.stats().heldBytes).toBe(2 * MAX + SMALL_BODY_BYTES);
  });

  it('admits one body larger than the whole budget when nothing else is held', () => {
    const budget = new BodyBudget(MAX);
    const big = fakeContext();
    budget.reserve(big, 2 * MAX);
    // Its own further chunks still fit: the refusal is about other requests' bodies.
    budget.reserve(big, 10);
    expect(budget.stats().heldBytes).toBe(2 * MAX + 10);
    expect(() => budget.reserve(fakeContext(), SMALL_BODY_BYTES + 1)).toThrow(new RegExp(`holds ${2 * MAX + 10} of ${MAX}`));
  });

  it('releases at once without a connection, and only when the response closes with one', () => {
    const budget = new BodyBudget(100);
    const plain = fakeContext();
    budget.reserve(plain, 30);
    budget.settle(plain);
    expect(budget.stats().heldBytes).toBe(0);

    const outgoing = Object.assign(new EventEmitter(), { closed: false });
    const streamed = fakeContext(outgoing);
    budget.reserve(streamed, 50);
    // A response larger than what was reserved for it is counted whole.
    budget.holdAtLeast(streamed, 70);
    budget.holdAtLeast(streamed, 60);
    budget.settle(streamed);
    expect(budget.stats().heldBytes).toBe(70);
    outgoing.emit('close');
    expect(budget.stats().heldBytes).toBe(0);
    // A second close (or settle) does not release twice.
    outgoing.emit('close');
    budget.settle(streamed);
    expect(budget.stats().heldBytes).toBe(0);
  });
});

/** An HTTP/1.1 request on a raw socket, so that the test decides when (and whether) bytes move. */
interface RawExchange {
  socket: net.Socket;
  /** Resolves with the status code once the status line arrived. */
  status: Promise<number>;
  /** Resolves when the gateway closed the connection. */
  closed: Promise<void>;
}

function rawRequest(base: string, head: string, options: { stopReadingAfterStatus: boolean }): RawExchange {
  const url = new URL(base);
  const socket = net.connect(Number(url.port), url.hostname);
  socket.write(head);
  let received = '';
  const status = new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      received += chunk.subarray(0, 64).toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(received);
      if (!match) return;
      socket.off('data', onData);
      // A client that stops reading: what the gateway sends piles up in the socket buffers, then in the gateway.
      if (options.stopReadingAfterStatus) socket.pause();
      else socket.resume();
      resolve(Number(match[1]));
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  return { socket, status, closed };
}

function readHead(key: string): string {
  return `GET /read/${encodeURIComponent(key)} HTTP/1.1\r\nHost: strata\r\n\r\n`;
}

describe('a gateway under large documents and slow clients', () => {
  let cluster: TestCluster;
  const key = 'budget/large';
  let document: string;

  beforeAll(async () => {
    cluster = await startTestCluster({
      env: {
        STRATA_BODY_BUFFER_BYTES_MAX: String(BUDGET_BYTES),
        STRATA_SOCKET_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
        STRATA_WATCH_HEARTBEAT_MS: '500',
      },
    });
    document = JSON.stringify({ title: 'large', like_count: 1, blob: 'x'.repeat(LARGE_DOC_BYTES) });
    const res = await cluster.write(key, document, '&strategy=field_hybrid');
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect((await cluster.write('budget/small-doc', { like_count: 2, text: 'z'.repeat(10_000) })).status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  const bodies = () => cluster.gateway.deps.bodies.stats();

  it('refuses further reads while stalled readers hold the budget, and recovers once the idle timeout cuts them', async () => {
    const stalled: RawExchange[] = [];
    for (let i = 0; i < 6; i++) stalled.push(rawRequest(cluster.url, readHead(key), { stopReadingAfterStatus: true }));
    const statuses = await Promise.all(stalled.map((s) => s.status));
    const served = statuses.filter((s) => s === 200).length;
    // The first response already holds more than the budget: every read after it is refused, not buffered.
    expect(served).toBe(1);
    expect(statuses.filter((s) => s === 503)).toHaveLength(stalled.length - served);
    expect(bodies().heldBytes).toBeGreaterThan(BUDGET_BYTES);
    expect(bodies().heldBytes).toBeLessThanOrEqual(document.length);

    const refused = await cluster.read(key);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).not.toBeNull();
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('OVERLOADED');
    // Small documents are still served while the large ones hold the budget.
    expect((await cluster.read('budget/small-doc')).status).toBe(200);

    // The stalled client makes no progress: the gateway cuts it and its response is let go. (The client, not
    // reading, does not notice until it reads again.)
    await waitUntil('the held body bytes to be released', () => bodies().heldBytes === 0);
    const read = await cluster.read(key);
    expect(read.status).toBe(200);
    expect(await read.text()).toBe(document);
    for (const s of stalled) s.socket.destroy();
  }, 30_000);

  it('refuses an upload that does not fit beside a slow one before reading its body, and loses nothing', async () => {
    const declared = 6 * MiB;
    const slowKey = 'budget/slow-upload';
    // A client that declares 6 MiB and then stops sending after the first bytes.
    const slow = rawRequest(
      cluster.url,
      `POST /write?key=${encodeURIComponent(slowKey)} HTTP/1.1\r\nHost: strata\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n{"a":`,
      { stopReadingAfterStatus: false },
    );
    await waitUntil('the declared body bytes to be held', () => bodies().heldBytes === declared);

    const refused = await cluster.write('budget/refused', JSON.stringify({ blob: 'y'.repeat(4 * MiB) }));
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('OVERLOADED');
    expect((await cluster.read('budget/refused')).status).toBe(404);

    // Small writes still go through beside it.
    const small = await cluster.write('budget/small', { n: 1 });
    expect(small.status).toBe(200);
    await small.arrayBuffer();

    // The stalled upload is cut after the idle timeout, never half-applied, and its reservation is given back.
    await slow.closed;
    await waitUntil('the held body bytes to be released', () => bodies().heldBytes === 0);
    expect((await cluster.read(slowKey)).status).toBe(404);
    const retried = await cluster.write('budget/refused', JSON.stringify({ blob: 'y'.repeat(4 * MiB) }));
    expect(retried.status).toBe(200);
    await retried.arrayBuffer();
    expect(bodies().refused).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('answers a conditional read of the current version with 304, fetching and holding nothing', async () => {
    const current = (await cluster.read(key, '?fields=title')).headers.get('x-strata-version')!;
    const gets = cluster.nodes.map((n) => vi.spyOn(n.client, 'get'));
    try {
      const res = await cluster.read(key, '', { 'if-none-match': `"${current}"` });
      expect(res.status).toBe(304);
      expect(await res.text()).toBe('');
      for (const get of gets) expect(get).not.toHaveBeenCalled();
    } finally {
      for (const get of gets) get.mockRestore();
    }
    await waitUntil('the held body bytes to be released', () => bodies().heldBytes === 0);
  });

  it('reports the budget on /metrics', async () => {
    const text = await (await cluster.fetch('/metrics')).text();
    expect(text).toMatch(/^strata_body_buffer_bytes 0$/m);
    expect(text).toMatch(new RegExp(`^strata_body_buffer_bytes_max ${BUDGET_BYTES}$`, 'm'));
    expect(text).toMatch(/^strata_body_buffer_refusals_total [1-9]\d*$/m);
  });
});
