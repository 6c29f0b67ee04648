/**
 * Load limits: a gateway handles at most STRATA_REQUESTS_IN_FLIGHT_MAX requests at once (503 OVERLOADED beyond),
 * a node client keeps a bounded number of calls per node, and a storage node that accepts connections but never
 * answers cannot hang a gateway request or make its memory grow.
 */
import http from 'node:http';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpNodeClient, NODE_CONNECTIONS_DEFAULT } from '../../internal/nodeclient/http-node-client.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { waitForValue, waitUntil } from '../helpers/wait.js';

/** A TCP server that accepts every connection and never sends a byte: a stuck process, not a dead one. */
async function startStuckServer(port = 0): Promise<{ port: number; connectionsOpen: () => number; connectionsEver: () => number; connectionsPeak: () => number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let ever = 0;
  let peak = 0;
  const server = net.createServer((socket) => {
    ever++;
    sockets.add(socket);
    peak = Math.max(peak, sockets.size);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // read and drop whatever arrives
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    connectionsOpen: () => sockets.size,
    connectionsEver: () => ever,
    connectionsPeak: () => peak,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A write whose headers are sent and whose body is held back: the gateway is handling it until `finish`. */
function heldWrite(base: string, key: string, body: string): { finish(): Promise<number> } {
  const url = new URL(base);
  const req = http.request({
    host: url.hostname,
    port: url.port,
    path: `/write?key=${encodeURIComponent(key)}`,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
  });
  const status = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
  req.write(body.slice(0, 1));
  req.flushHeaders();
  return {
    finish() {
      req.end(body.slice(1));
      return status;
    },
  };
}

function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

describe('requests in flight per gateway', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ env: { STRATA_REQUESTS_IN_FLIGHT_MAX: '2' } });
  });
  afterAll(async () => cluster?.destroy());

  it('answers 503 OVERLOADED with Retry-After beyond the limit, keeps /health open, and recovers', async () => {
    const held = [heldWrite(cluster.url, 'held:1', '{"like_count":1}'), heldWrite(cluster.url, 'held:2', '{"like_count":2}')];
    // Both held writes reach the gateway at their own pace; wait until the gateway counts them.
    const overloaded = await waitForValue('a third request to be refused', async () => {
      const res = await cluster.fetch('/cluster');
      if (res.status === 503) return res;
      await res.body?.cancel();
      return null;
    });
    expect(overloaded.headers.get('retry-after')).toBe('1');
    expect(((await overloaded.json()) as { error: { code: string } }).error.code).toBe('OVERLOADED');
    expect((await cluster.fetch('/health/live')).status).toBe(200);
    expect(await Promise.all(held.map((h) => h.finish()))).toEqual([200, 200]);
    expect((await cluster.fetch('/cluster')).status).toBe(200);
    expect(await (await cluster.read('held:2')).text()).toBe('{"like_count":2}');
  });
});

describe('node client against a stuck node', () => {
  it('keeps at most connectionsMax connections, fails calls beyond callsInFlightMax at once, and times out the rest', async () => {
    const stuck = await startStuckServer();
    const client = new HttpNodeClient({
      nodeId: 'stuck',
      address: `http://127.0.0.1:${stuck.port}`,
      token: 'a-token-for-the-stuck-node-test',
      timeoutMs: 300,
      connectionsMax: 2,
      callsInFlightMax: 3,
    });
    try {
      const pending = [1, 2, 3].map((i) => client.get(`W${i}.hot-0`).then(() => 'answered', (e: { code?: string; message?: string }) => `${e.code}: ${e.message}`));
      expect(client.callsInFlight).toBe(3);
      await expect(client.get('W4.hot-0')).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE', message: expect.stringMatching(/calls in flight/) });
      const outcomes = await Promise.all(pending);
      for (const outcome of outcomes) expect(outcome).toMatch(/^NODE_UNAVAILABLE: .*did not answer get W\d\.hot-0 within 300 ms/);
      expect(client.callsInFlight).toBe(0);
      expect(stuck.connectionsPeak()).toBeLessThanOrEqual(2);
    } finally {
      await client.close().catch(() => undefined);
      await stuck.close();
    }
  });
});

describe('a gateway with one stuck storage node', () => {
  // Long enough that the healthy nodes answer in time on a loaded 2-core machine; the stuck one never does.
  const NODE_TIMEOUT_MS = 1500;
  let cluster: TestCluster;
  let stuck: Awaited<ReturnType<typeof startStuckServer>>;
  const docs = new Map<string, string>();

  beforeAll(async () => {
    cluster = await startTestCluster({ transport: 'http', env: { STRATA_NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS), STRATA_HEDGE_AFTER_MS: '50' } });
    const cold = 'x'.repeat(20_000);
    for (const strategy of ['replication', 'ec', 'field_hybrid']) {
      for (let i = 0; i < 4; i++) {
        const key = `stuck:${strategy}:${i}`;
        const body = `{"like_count":${i},"cold":"${cold}${i}"}`;
        const res = await cluster.write(key, body, `&strategy=${strategy}`);
        expect(res.status).toBe(200);
        docs.set(key, body);
      }
    }
    // node-6 is replaced, on its own port, by a process that accepts connections and never answers.
    const victim = cluster.nodes[5]!;
    const port = Number(new URL(victim.address).port);
    await victim.stop();
    stuck = await startStuckServer(port);
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
    await stuck?.close();
  });

  // The stuck node never answers: a request that waited on it without ending its calls at their deadline (or
  // hedging past it) would never complete, and the test would fail at its timeout. No assertion depends on how
  // long a request takes on a busy machine.
  async function roundOfRequests(round: number): Promise<void> {
    for (const [key, body] of docs) {
      const res = await cluster.read(key);
      expect(res.status, key).toBe(200);
      expect(await res.text(), key).toBe(body);
    }
    for (const strategy of ['replication', 'ec', 'field_hybrid']) {
      const key = `stuck:new:${strategy}:${round}`;
      const body = `{"like_count":${round},"cold":"${'y'.repeat(20_000)}"}`;
      const res = await cluster.write(key, body, `&strategy=${strategy}`);
      expect(res.status, key).toBe(200);
      const patched = await cluster.fetch(`/patch/${encodeURIComponent(key)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json' },
        body: '{"like_count":-1}',
      });
      expect(patched.status, `patch ${key}`).toBe(200);
    }
  }

  it('reads, writes and patches complete through the other nodes, never waiting on the stuck one', async () => {
    await roundOfRequests(0);
    // The stuck node was really asked (and its calls ended by their deadline), unless the node pool had already
    // found it down (a probe past its deadline, which a busy machine can reach before the first request) and
    // placement skipped it: either way no request waited on it.
    const view = cluster.pool.views().find((v) => v.id === cluster.nodes[5]!.id)!;
    expect(stuck.connectionsEver() > 0 || view.state === 'down', `asked ${stuck.connectionsEver()} times, state ${view.state}`).toBe(true);
  }, 120_000);

  it('does not grow the gateway memory or its connections to the stuck node over repeated requests', async () => {
    const gc = gcFunction();
    await roundOfRequests(1);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let round = 2; round < 7; round++) await roundOfRequests(round);
    gc();
    const growthBytes = process.memoryUsage().heapUsed - before;
    // Each round moves about 1 MB of documents; a leak of what one request holds would add up past this.
    expect(growthBytes).toBeLessThan(24 * 1024 * 1024);
    // Connections left to the stuck node stay within the node client's pool, whatever the number of requests.
    expect(stuck.connectionsPeak()).toBeLessThanOrEqual(NODE_CONNECTIONS_DEFAULT);
    const stuckClient = cluster.nodes[5]!.client as HttpNodeClient;
    // Every call left on it ends at its deadline: at most a health probe is waiting on it.
    await waitUntil('the calls to the stuck node to end at their deadlines', () => stuckClient.callsInFlight <= 1);
  }, 180_000);
});
