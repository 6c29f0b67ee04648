/**
 * TLS for client and internal traffic: with STRATA_TLS_CERT/KEY/CA set, the gateway and every storage node speak
 * HTTPS only, node clients verify the nodes with the CA, and nothing is sent to a node in plaintext. The CA and
 * certificates are made for each run with openssl (test/helpers/test-certs.ts).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../internal/config/config.js';
import { silentLogger } from '../../internal/log/logger.js';
import { HttpNodeClient } from '../../internal/nodeclient/http-node-client.js';
import { runGateway, runStorageNode, type Running } from '../../internal/wiring/processes.js';
import { loadTls } from '../../internal/wiring/tls.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';

let certs: TestCerts;
let certDir: string;

beforeAll(async () => {
  certDir = await mkdtemp(path.join(os.tmpdir(), 'strata-tls-'));
  certs = makeTestCerts(certDir);
});
afterAll(async () => {
  await rm(certDir, { recursive: true, force: true });
});

function tlsEnv(): Record<string, string> {
  return { STRATA_TLS_CERT: certs.serverCert, STRATA_TLS_KEY: certs.serverKey, STRATA_TLS_CA: certs.caCert };
}

/** An HTTP client that trusts exactly the given CA file. */
function httpsClient(caFile: string): { fetch: (url: string, init?: Parameters<typeof undiciFetch>[1]) => ReturnType<typeof undiciFetch>; close(): Promise<void> } {
  const agent = new Agent({ connect: { ca: readFileSync(caFile) } });
  return { fetch: (url, init) => undiciFetch(url, { ...init, dispatcher: agent }), close: () => agent.close() };
}

/** A plaintext HTTP/1.1 GET; resolves with the status, or rejects when the server does not answer in HTTP. */
function plainGet(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describe('TLS on an all-in-one cluster whose gateway reaches its nodes over HTTP', () => {
  let cluster: TestCluster;
  let client: ReturnType<typeof httpsClient>;
  let token: string;

  beforeAll(async () => {
    cluster = await startTestCluster({ transport: 'http', env: tlsEnv() });
    client = httpsClient(certs.caCert);
    token = (await readFile(path.join(cluster.dataDir, 'cluster-token'), 'utf8')).trim();
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await cluster?.destroy();
  });

  it('serves the client API over https: write, read, list', async () => {
    expect(cluster.url.startsWith('https://')).toBe(true);
    const doc = '{"like_count":7,"bio":"over TLS","n":12345678901234567890}';
    const write = await client.fetch(`${cluster.url}/write?key=tls%3A1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: doc });
    expect(write.status).toBe(200);
    const read = await client.fetch(`${cluster.url}/read/tls%3A1`);
    expect(read.status).toBe(200);
    expect(await read.text()).toBe(doc);
    const list = await client.fetch(`${cluster.url}/list?prefix=tls%3A`);
    expect(await list.json()).toEqual({ keys: ['tls:1'], next_cursor: null });
  });

  it('refuses a plaintext client on the gateway port, and a TLS client that does not trust the CA', async () => {
    const plainUrl = cluster.url.replace('https://', 'http://');
    await expect(plainGet(`${plainUrl}/health`)).rejects.toThrow();
    const stranger = httpsClient(certs.otherCaCert);
    try {
      await expect(stranger.fetch(`${cluster.url}/health`)).rejects.toThrow();
    } finally {
      await stranger.close();
    }
  });

  it('runs every storage node on https only: a plaintext request gets no answer', async () => {
    for (const node of cluster.nodes) {
      expect(node.address.startsWith('https://')).toBe(true);
      await expect(plainGet(`${node.address.replace('https://', 'http://')}/v1/health`, { authorization: `Bearer ${token}` })).rejects.toThrow();
    }
  });

  it('a node client without the CA, or with another CA, cannot connect; with the CA it can', async () => {
    const node = cluster.nodes[0]!;
    const withoutCa = new HttpNodeClient({ nodeId: node.id, address: node.address, token, timeoutMs: CONDITION_TIMEOUT_MS });
    const otherCa = new HttpNodeClient({ nodeId: node.id, address: node.address, token, timeoutMs: CONDITION_TIMEOUT_MS, ca: readFileSync(certs.otherCaCert) });
    const withCa = new HttpNodeClient({ nodeId: node.id, address: node.address, token, timeoutMs: CONDITION_TIMEOUT_MS, ca: readFileSync(certs.caCert) });
    try {
      expect(await withoutCa.ping()).toBe(false);
      await expect(withoutCa.usage()).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE', message: expect.stringMatching(/certificate/i) });
      expect(await otherCa.ping()).toBe(false);
      expect(await withCa.ping()).toBe(true);
    } finally {
      await Promise.all([withoutCa.close(), otherCa.close(), withCa.close()]);
    }
  });

  it('never sends the cluster token to an http:// node once a CA is configured', async () => {
    let bytesReceived = 0;
    const server = net.createServer((socket) => socket.on('data', (chunk) => (bytesReceived += chunk.length)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const strict = new HttpNodeClient({ nodeId: 'node-x', address: `http://127.0.0.1:${port}`, token, timeoutMs: 1000, ca: readFileSync(certs.caCert), requireTls: true });
    try {
      await expect(strict.get('ABC.hot-0')).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE', message: expect.stringMatching(/TLS/) });
      expect(await strict.ping()).toBe(false);
      expect(bytesReceived).toBe(0);
    } finally {
      await strict.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('the gateway writes to and the healer repairs on the nodes over TLS', async () => {
    const write = await client.fetch(`${cluster.url}/write?key=tls%3Aheal&strategy=replication`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"like_count":1,"text":"repair me"}',
    });
    expect(write.status).toBe(200);
    type Stat = { hot: { part: string; node: string; blob: string; state: string }[] };
    const stat = async (): Promise<Stat> => (await (await client.fetch(`${cluster.url}/stat/tls%3Aheal`)).json()) as Stat;
    const victim = (await stat()).hot[0]!;
    const node = cluster.nodes.find((n) => n.id === victim.node)!;
    expect(await node.server!.store.delete(victim.blob)).toBe(true);
    // The healer's pool is the same HTTPS node clients: finding the loss and re-creating the copy goes through TLS.
    await cluster.healer.runOnce({ forceAudit: true });
    const repaired = (await stat()).hot.find((r) => r.part === victim.part)!;
    expect(repaired.node).toBe(victim.node);
    expect(repaired.blob).not.toBe(victim.blob);
    expect(repaired.state).toBe('ok');
    expect(await node.server!.store.verify(repaired.blob)).toBe('ok');
    const read = await client.fetch(`${cluster.url}/read/tls%3Aheal`);
    expect(await read.text()).toBe('{"like_count":1,"text":"repair me"}');
  });
});

describe('TLS on separate gateway and storage-node processes (the cmd/ wiring)', () => {
  it('nodes register https:// addresses, the gateway serves https and stores through them', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-tls-procs-'));
    const running: Running[] = [];
    const client = httpsClient(certs.caCert);
    const base = {
      ...tlsEnv(),
      STRATA_DATA_DIR: dataDir,
      STRATA_CLUSTER_TOKEN: 'a-token-for-the-tls-process-test',
      STRATA_LOG_LEVEL: 'silent',
      STRATA_PORT: '0',
      STRATA_SCRUB_INTERVAL_MS: '0',
    };
    try {
      for (let i = 1; i <= 6; i++) running.push(await runStorageNode(loadConfig({ ...base, STRATA_NODE_ID: `node-${i}` }), silentLogger));
      for (const node of running) expect(node.describe).toMatch(/registered as https:\/\/127\.0\.0\.1:\d+/);
      const gateway = await runGateway(loadConfig(base), silentLogger);
      running.push(gateway);
      const url = /listening on (https:\/\/\S+)/.exec(gateway.describe)![1]!;
      const write = await client.fetch(`${url}/write?key=p%3A1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"like_count":3,"x":"y"}' });
      expect(write.status).toBe(200);
      expect(await (await client.fetch(`${url}/read/p%3A1`)).text()).toBe('{"like_count":3,"x":"y"}');
    } finally {
      for (const r of running.reverse()) await r.stop();
      await client.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses to start a gateway whose STRATA_NODES are http:// while STRATA_TLS_CA is set', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-tls-procs-'));
    const nodes = [1, 2, 3, 4, 5, 6].map((i) => `node-${i}=http://127.0.0.1:${9000 + i}`).join(',');
    try {
      const config = loadConfig({ ...tlsEnv(), STRATA_DATA_DIR: dataDir, STRATA_CLUSTER_TOKEN: 'a-token-for-the-tls-process-test', STRATA_NODES: nodes, STRATA_LOG_LEVEL: 'silent', STRATA_PORT: '0' });
      await expect(runGateway(config, silentLogger)).rejects.toThrow(/STRATA_NODES.*https/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('TLS start-up errors name the variable and the problem', () => {
  it('refuses an unreadable file, a key of another certificate, a file that is not a certificate, an expired certificate', () => {
    const files = { tlsCertFile: certs.serverCert, tlsKeyFile: certs.serverKey, tlsCaFile: certs.caCert };
    expect(() => loadTls(files)).not.toThrow();
    expect(() => loadTls({ ...files, tlsCertFile: path.join(certDir, 'missing.crt') })).toThrow(/STRATA_TLS_CERT .*cannot be read/);
    expect(() => loadTls({ ...files, tlsKeyFile: certs.otherKey })).toThrow(/STRATA_TLS_KEY .*not the private key of the certificate/);
    expect(() => loadTls({ ...files, tlsCaFile: certs.serverKey })).toThrow(/STRATA_TLS_CA .*not a PEM certificate/);
    expect(() => loadTls({ ...files, tlsCertFile: certs.serverKey })).toThrow(/STRATA_TLS_CERT .*not a PEM certificate/);
    expect(() => loadTls(files, Date.now() + 30 * 86_400_000)).toThrow(/STRATA_TLS_CERT .*expired/);
    expect(() => loadTls(files)).not.toThrow(ConfigError);
  });

  it('refuses a certificate without its key, and a cluster with a mismatched key does not start', async () => {
    expect(() => loadConfig({ STRATA_TLS_CERT: certs.serverCert })).toThrow(/STRATA_TLS_CERT and STRATA_TLS_KEY must be set together/);
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-tls-bad-'));
    try {
      await expect(startTestCluster({ dataDir, env: { ...tlsEnv(), STRATA_TLS_KEY: certs.otherKey } })).rejects.toThrow(ConfigError);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
