/**
 * The separate processes as they are deployed: a gateway (cmd/api), a healer (cmd/healer) and one storage node
 * (cmd/storage-node) run as child processes beside five storage nodes started in this process, all on the embedded
 * backends of one shared data directory. Each child serves /metrics, which is scraped and parsed; the request id
 * of a write reaches the child node's log; and on SIGTERM each child finishes the request it is serving, leaves
 * the node registry (the storage node), and exits 0 within STRATA_SHUTDOWN_GRACE_MS.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../internal/config/config.js';
import { silentLogger } from '../../internal/log/logger.js';
import { SqliteMetadataStore } from '../../internal/metadata/sqlite-metadata-store.js';
import { runStorageNode, type Running } from '../../internal/wiring/processes.js';
import { scrape, sumOf } from '../helpers/prometheus-text.js';
import { waitUntil } from '../helpers/wait.js';
import { fetchOnFreshConnection } from '../helpers/fresh-connection.js';
import { freePort, REPO_ROOT, spawnStrata, waitForReady, type StrataChild } from '../helpers/processes.js';

const TOKEN = randomBytes(18).toString('base64url');
const GRACE_MS = 8000;
/** The gateway holds every write this long before its commit, so that a write can be in flight at SIGTERM. */
const PAUSE_MS = 1500;
/** From spawn to a child's ready line at most (as scripts/cluster/proc.ts allows). */
const START_TIMEOUT_MS = 90_000;

async function startChild(entry: string, env: Record<string, string>, readyText: string): Promise<StrataChild> {
  const started = spawnStrata([path.join(REPO_ROOT, entry)], { PATH: process.env['PATH'] ?? '', ...env });
  await waitForReady(started, entry, readyText, START_TIMEOUT_MS);
  return started;
}

function waitFor(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  return waitUntil(what, check);
}

describe('metrics, request ids and graceful shutdown of separate processes', () => {
  let dataDir: string;
  const inProcess: Running[] = [];
  let node6: StrataChild;
  let node6Port: number;
  let gateway: StrataChild;
  let gatewayUrl: string;
  let healer: StrataChild;
  let healerUrl: string;

  const common = (): Record<string, string> => ({
    STRATA_DATA_DIR: dataDir,
    STRATA_CLUSTER_TOKEN: TOKEN,
    STRATA_HOST: '127.0.0.1',
    STRATA_SCRUB_INTERVAL_MS: '0',
    STRATA_NODE_TTL_MS: '60000',
    STRATA_SHUTDOWN_GRACE_MS: String(GRACE_MS),
  });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-procs-'));
    for (let i = 1; i <= 5; i++) {
      const config = loadConfig({ ...common(), STRATA_PORT: '0', STRATA_NODE_ID: `node-${i}`, STRATA_LOG_LEVEL: 'silent' });
      inProcess.push(await runStorageNode(config, silentLogger, { processMetrics: false }));
    }
    node6Port = await freePort();
    node6 = await startChild(
      'cmd/storage-node/main.ts',
      { ...common(), STRATA_PORT: String(node6Port), STRATA_NODE_ID: 'node-6', STRATA_LOG_LEVEL: 'debug' },
      'storage node node-6 listening',
    );
    const gatewayPort = await freePort();
    gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    gateway = await startChild(
      'cmd/api/main.ts',
      { ...common(), STRATA_PORT: String(gatewayPort), STRATA_LOG_LEVEL: 'info', STRATA_TEST_PAUSE_BEFORE_COMMIT_MS: String(PAUSE_MS) },
      'gateway listening',
    );
    const healerPort = await freePort();
    healerUrl = `http://127.0.0.1:${healerPort}`;
    healer = await startChild(
      'cmd/healer/main.ts',
      { ...common(), STRATA_HEALER_PORT: String(healerPort), STRATA_LOG_LEVEL: 'warn', STRATA_HEALER_INTERVAL_MS: '200' },
      'health and metrics on',
    );
  }, 4 * START_TIMEOUT_MS);

  afterAll(async () => {
    for (const started of [gateway, healer, node6]) {
      if (started && started.child.exitCode === null) {
        started.child.kill('SIGKILL');
        await started.exited;
      }
    }
    for (const running of inProcess) await running.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('a write with X-Request-Id is counted by the gateway and the node process, whose log carries the id', async () => {
    const doc = JSON.stringify({ like_count: 1, blob: randomBytes(8192).toString('hex') });
    const res = await fetchOnFreshConnection(`${gatewayUrl}/write?key=procs%2Fone&strategy=ec`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'procs-write-1' },
      body: doc,
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('procs-write-1');

    const gw = await scrape(`${gatewayUrl}/metrics`);
    expect(sumOf(gw, 'strata_http_requests_total', { route: '/write', method: 'POST', status: '200', strategy: 'ec' })).toBe(1);
    expect(sumOf(gw, 'strata_ec_encode_seconds_count')).toBe(1);
    // The process metrics: resident memory, CPU time and event loop lag.
    expect(sumOf(gw, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(gw.samples.some((s) => s.name === 'process_cpu_seconds_total')).toBe(true);
    expect(gw.samples.some((s) => s.name.startsWith('nodejs_eventloop_lag'))).toBe(true);

    // Six shards on six nodes: node-6 stored one, in one group-commit fsync at least.
    const node = await scrape(`http://127.0.0.1:${node6Port}/metrics`);
    expect(sumOf(node, 'strata_node_http_requests_total', { node: 'node-6', route: '/v1/blobs/:id', method: 'PUT', status: '201' })).toBe(1);
    expect(sumOf(node, 'strata_blobstore_fsync_batch_appends_sum', { node: 'node-6' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(node, 'strata_blobstore_fsync_seconds_count', { node: 'node-6' })).toBeGreaterThanOrEqual(1);
    await waitFor('the node to log the request id', () => node6.output().includes('"reqId":"procs-write-1"'));
    const line = node6.output().split('\n').find((l) => l.includes('"reqId":"procs-write-1"'))!;
    expect(JSON.parse(line)).toMatchObject({ msg: 'node request', method: 'PUT', route: '/v1/blobs/:id', status: 201 });
  }, 30_000);

  it('the healer process serves /health and /metrics, and its metrics show it leading and reading the WAL', async () => {
    const health = await fetchOnFreshConnection(`${healerUrl}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'healthy', service: 'healer' });
    await waitFor('the healer to lead and read the write\'s intent', async () => {
      const s = await scrape(`${healerUrl}/metrics`);
      return sumOf(s, 'strata_healer_leader') === 1 && sumOf(s, 'strata_healer_wal_entries_read_total') >= 2;
    });
    const s = await scrape(`${healerUrl}/metrics`);
    expect(sumOf(s, 'strata_healer_rounds_total')).toBeGreaterThan(0);
    expect(sumOf(s, 'strata_storage_nodes', { state: 'healthy' })).toBe(6);
    expect(s.types.get('strata_healer_wal_unresolved_intents')).toBe('gauge');
    expect((await fetchOnFreshConnection(`${healerUrl}/nothing`)).status).toBe(404);
  }, 30_000);

  it('a storage node sent SIGTERM finishes the upload in flight, leaves the registry and exits 0', async () => {
    const payload = randomBytes(64 * 1024);
    // The request is in flight when the signal arrives: the node has parsed its headers (it answered 100 Continue)
    // and holds half its body; the rest is sent once the node says it is shutting down. Each step waits for the
    // one before, never for an amount of time.
    let req!: ReturnType<typeof httpRequest>;
    const headersParsed = new Promise<void>((resolveContinue) => {
      req = httpRequest(
        {
          host: '127.0.0.1',
          port: node6Port,
          method: 'PUT',
          path: '/v1/blobs/sigterm-upload.hot-0',
          headers: {
            authorization: `Bearer ${TOKEN}`,
            'content-type': 'application/octet-stream',
            'content-length': String(payload.length),
            expect: '100-continue',
            'x-strata-key': 'sigterm',
            'x-strata-write-id': 'sigterm-upload',
            'x-strata-part': 'hot-0',
          },
        },
      );
      req.once('continue', () => resolveContinue());
    });
    const put = new Promise<number>((resolve, reject) => {
      req.once('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
    req.flushHeaders();
    await headersParsed;
    await new Promise<void>((resolve, reject) => req.write(payload.subarray(0, payload.length / 2), (err) => (err ? reject(err) : resolve())));
    node6.child.kill('SIGTERM');
    await waitFor('the node to start shutting down', () => node6.output().includes('SIGTERM received, shutting down'));
    req.end(payload.subarray(payload.length / 2));
    expect(await put).toBe(201);
    // 0, not 1: the process's own STRATA_SHUTDOWN_GRACE_MS timer would have exited 1 had the bound passed.
    expect(await node6.exited).toBe(0);
    expect(node6.output()).toContain('left the node registry');
    // Not alive any more, long before its 60 s ttl would have run out; its entry stays for its restart.
    const registry = await SqliteMetadataStore.open({ path: path.join(dataDir, 'metadata', 'strata.db') });
    try {
      const entry = (await registry.listNodes()).find((n) => n.id === 'node-6');
      expect(entry).toMatchObject({ alive: false, state: 'active' });
    } finally {
      await registry.close();
    }
  }, 30_000);

  it('a gateway sent SIGTERM completes the write in flight and exits 0 within the bound', async () => {
    const write = fetchOnFreshConnection(`${gatewayUrl}/write?key=procs%2Finflight`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ like_count: 5, text: 'in flight at SIGTERM' }),
    });
    await waitFor('the write to reach its commit pause', () => gateway.output().includes('"key":"procs/inflight"'));
    gateway.child.kill('SIGTERM');
    const res = await write;
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await gateway.exited).toBe(0);
    expect(gateway.output()).toContain('SIGTERM received, shutting down');
    expect(gateway.output()).toContain('stopped cleanly');
  }, 30_000);

  it('a gateway whose request outlasts STRATA_SHUTDOWN_GRACE_MS cuts it, says so, and exits 1', async () => {
    const port = await freePort();
    const impatient = await startChild(
      'cmd/api/main.ts',
      { ...common(), STRATA_PORT: String(port), STRATA_LOG_LEVEL: 'info', STRATA_SHUTDOWN_GRACE_MS: '400', STRATA_TEST_PAUSE_BEFORE_COMMIT_MS: '30000' },
      'gateway listening',
    );
    try {
      const write = fetchOnFreshConnection(`http://127.0.0.1:${port}/write?key=procs%2Fcut`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ like_count: 6 }),
      }).then(
        (res) => res.status,
        () => 'cut' as const,
      );
      await waitFor('the write to reach its commit pause', () => impatient.output().includes('"key":"procs/cut"'));
      impatient.child.kill('SIGTERM');
      expect(await impatient.exited).toBe(1);
      expect(await write).toBe('cut');
      expect(impatient.output()).toMatch(/shutdown cut requests that were still in flight|did not finish within STRATA_SHUTDOWN_GRACE_MS/);
    } finally {
      if (impatient.child.exitCode === null) impatient.child.kill('SIGKILL');
    }
  }, START_TIMEOUT_MS + 30_000);

  it('a healer sent SIGTERM releases its lease and exits 0', async () => {
    healer.child.kill('SIGTERM');
    expect(await healer.exited).toBe(0);
  }, 30_000);
});
