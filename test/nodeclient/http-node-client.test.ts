import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpNodeClient } from '../../internal/nodeclient/http-node-client.js';
import { startStorageNode, type StorageNode } from '../../internal/storagenode/server.js';
import { expectCode, header, makeTempDir, payload } from '../contracts/blob-fixtures.js';
import { flipPayloadByteOnDisk } from '../blobstore/volume-harness/flip.js';
import { runNodeClientContract } from '../contracts/node-client.contract.js';
import { waitUntil } from '../helpers/wait.js';

const TOKEN = 'test-token-0123456789';

runNodeClientContract('HttpNodeClient', async (options) => {
  const tmp = await makeTempDir('http-node');
  const node = await startStorageNode({
    nodeId: 'node-1',
    dataDir: tmp.dir,
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    ...(options.capacityBytes !== undefined ? { capacityBytes: options.capacityBytes } : {}),
  });
  const client = new HttpNodeClient({ nodeId: 'node-1', address: node.address, token: TOKEN, timeoutMs: 5000 });
  return {
    client,
    corruptBlob: (id) => flipPayloadByteOnDisk(node.store, id),
    makeUnavailable: () => node.stop(),
    cleanup: async () => {
      await client.close();
      await node.stop();
      await tmp.remove();
    },
  };
});

describe('HttpNodeClient against a real storage node', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function startNode(port = 0, dir?: string): Promise<{ node: StorageNode; dir: string }> {
    let dataDir = dir;
    if (dataDir === undefined) {
      const tmp = await makeTempDir('http-node');
      cleanups.push(tmp.remove);
      dataDir = tmp.dir;
    }
    const node = await startStorageNode({ nodeId: 'node-7', dataDir, host: '127.0.0.1', port, token: TOKEN });
    cleanups.push(node.stop);
    return { node, dir: dataDir };
  }

  function clientFor(address: string, options: { token?: string; timeoutMs?: number } = {}): HttpNodeClient {
    const client = new HttpNodeClient({
      nodeId: 'node-7',
      address,
      token: options.token ?? TOKEN,
      timeoutMs: options.timeoutMs ?? 5000,
    });
    cleanups.push(() => client.close());
    return client;
  }

  /** A TCP server that accepts connections and never answers; `connections()` counts those it accepted. */
  async function startSilentServer(): Promise<{ address: string; connections: () => number }> {
    const sockets = new Set<net.Socket>();
    let accepted = 0;
    const server = net.createServer((socket) => {
      accepted++;
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    return { address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => accepted };
  }

  /** An HTTP server that answers every request with `handler`. */
  async function startFakeServer(handler: http.RequestListener): Promise<string> {
    const server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('fails every call with UNAUTHORIZED when the token is wrong, and pings false', async () => {
    const { node } = await startNode();
    const client = clientFor(node.address, { token: 'wrong-token' });
    await expectCode(client.put(header('U1.hot-0'), payload(10)), 'UNAUTHORIZED');
    await expectCode(client.get('U1.hot-0'), 'UNAUTHORIZED');
    await expectCode(client.list(null, 10), 'UNAUTHORIZED');
    expect(await client.ping()).toBe(false);
    expect((await node.store.usage()).blobs).toBe(0);
  });

  // These tests give the client a deadline far beyond the test's own timeout (vitest.config.ts) wherever the
  // behaviour under test is "does not wait for the deadline": a client that waited would fail the test, and no
  // assertion depends on how fast a loaded machine is.
  const BEYOND_TEST_TIMEOUT_MS = 600_000;

  it('fails at once with NODE_UNAVAILABLE naming the node and the cause when the node is stopped', async () => {
    const { node } = await startNode();
    const client = clientFor(node.address, { timeoutMs: BEYOND_TEST_TIMEOUT_MS });
    await client.put(header('S1.hot-0'), payload(10));
    await node.stop();
    const err = await expectCode(client.get('S1.hot-0'), 'NODE_UNAVAILABLE');
    expect(err.message).toContain('node-7');
    expect(err.message).toMatch(/ECONNREFUSED|other side closed|socket/i);
    expect(err.message).not.toContain('did not answer');
  });

  it('fails with NODE_UNAVAILABLE at its deadline when the node never answers', async () => {
    const silent = await startSilentServer();
    const client = clientFor(silent.address, { timeoutMs: 300 });
    const err = await expectCode(client.get('H1.hot-0'), 'NODE_UNAVAILABLE');
    // The deadline fired (not a connection failure), and the call had reached the node.
    expect(err.message).toMatch(/did not answer get H1\.hot-0 within 300 ms/);
    await waitUntil('the silent node to have accepted the call', () => silent.connections() >= 1);
    expect(await client.ping({ timeoutMs: 100 })).toBe(false);
  });

  it('honours a per-call timeoutMs shorter than the default', async () => {
    const silent = await startSilentServer();
    const client = clientFor(silent.address, { timeoutMs: BEYOND_TEST_TIMEOUT_MS });
    const err = await expectCode(client.put(header('H2.hot-0'), payload(1000), { timeoutMs: 150 }), 'NODE_UNAVAILABLE');
    expect(err.message).toMatch(/did not answer put H2\.hot-0 within 150 ms/);
  });

  it('rejects with the caller reason when the caller aborts a call in flight', async () => {
    const silent = await startSilentServer();
    const client = clientFor(silent.address, { timeoutMs: BEYOND_TEST_TIMEOUT_MS });
    const controller = new AbortController();
    const reason = new Error('hedged read won elsewhere');
    const call = client.get('H3.hot-0', { signal: controller.signal });
    // In flight: the node has the connection and is not answering.
    await waitUntil('the silent node to accept the call', () => silent.connections() >= 1);
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
  });

  it('reconnects after the node restarts on the same port, and finds the blobs it had', async () => {
    const { node, dir } = await startNode();
    const client = clientFor(node.address);
    await client.put(header('R1.hot-0'), payload(1000));
    await node.stop();
    await expectCode(client.stat('R1.hot-0'), 'NODE_UNAVAILABLE');
    await startNode(node.port, dir);
    expect((await client.get('R1.hot-0')).equals(payload(1000))).toBe(true);
  });

  it('serves many concurrent calls over its bounded pool', async () => {
    const { node } = await startNode();
    const client = new HttpNodeClient({ nodeId: 'node-7', address: node.address, token: TOKEN, connectionsMax: 4 });
    cleanups.push(() => client.close());
    await Promise.all(Array.from({ length: 40 }, (_, i) => client.put(header(`P${i}.hot-0`), payload(5000, i))));
    const got = await Promise.all(Array.from({ length: 40 }, (_, i) => client.get(`P${i}.hot-0`)));
    got.forEach((data, i) => expect(data.equals(payload(5000, i))).toBe(true));
    expect((await client.usage()).blobs).toBe(40);
  });

  it('maps a node answer that breaks the protocol to NODE_UNAVAILABLE', async () => {
    const address = await startFakeServer((req, res) => {
      if (req.url?.includes('/info')) res.writeHead(200, { 'content-type': 'application/json' }).end('not json');
      else if (req.url?.endsWith('/verify')) res.writeHead(200).end('{"result":"maybe"}');
      else if (req.method === 'GET') res.writeHead(200).end('bytes without a checksum header');
      else res.writeHead(502).end('<html>bad gateway</html>');
    });
    const client = clientFor(address);
    await expectCode(client.stat('B1.hot-0'), 'NODE_UNAVAILABLE');
    await expectCode(client.verify('B1.hot-0'), 'NODE_UNAVAILABLE');
    await expectCode(client.get('B1.hot-0'), 'NODE_UNAVAILABLE');
    await expectCode(client.delete('B1.hot-0'), 'NODE_UNAVAILABLE');
  });

  it('maps a node INTERNAL error to NODE_UNAVAILABLE and keeps other codes', async () => {
    const address = await startFakeServer((req, res) => {
      const code = req.method === 'DELETE' ? 'INTERNAL' : 'DISK_FULL';
      res.writeHead(code === 'INTERNAL' ? 500 : 507, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code, message: 'as the node said' } }));
    });
    const client = clientFor(address);
    await expectCode(client.delete('I1.hot-0'), 'NODE_UNAVAILABLE');
    const err = await expectCode(client.put(header('I1.hot-0'), payload(10)), 'DISK_FULL');
    expect(err.message).toBe('node node-7: as the node said');
  });

  it('refuses an answer larger than any blob without buffering it', async () => {
    const address = await startFakeServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(200 * 1024 * 1024), 'x-strata-checksum': '0'.repeat(64) });
      res.write(Buffer.alloc(1024));
      // Never finishes: the client must give up on the declared length alone.
    });
    const client = clientFor(address, { timeoutMs: BEYOND_TEST_TIMEOUT_MS });
    const err = await expectCode(client.get('L1.hot-0'), 'NODE_UNAVAILABLE');
    // Refused on the declared length alone: the deadline never fired.
    expect(err.message).not.toContain('did not answer');
  });

  it('detects bytes damaged on the way back (checksum header mismatch) as BLOB_CORRUPT', async () => {
    const address = await startFakeServer((_req, res) => {
      res.writeHead(200, { 'x-strata-checksum': 'a'.repeat(64) }).end('payload');
    });
    await expectCode(clientFor(address).get('D1.hot-0'), 'BLOB_CORRUPT');
  });
});
