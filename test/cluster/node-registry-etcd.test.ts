/**
 * The node registry on a real etcd (scripts/infra/etcd.ts): storage nodes register themselves with a lease kept
 * alive by their heartbeats; a node that stops heartbeating is down for gateways and healers within its ttl
 * (plus one registry refresh), even while it still answers probes; and the separate-process wiring finds its
 * storage nodes through the registry when STRATA_NODES is empty.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeHeartbeat } from '../../internal/cluster/node-heartbeat.js';
import { NodePool } from '../../internal/cluster/node-pool.js';
import { RegistrySync } from '../../internal/cluster/registry-sync.js';
import { loadConfig } from '../../internal/config/config.js';
import { systemClock } from '../../internal/core/clock.js';
import { silentLogger } from '../../internal/log/logger.js';
import { EtcdMetadataStore } from '../../internal/metadata/etcd-metadata-store.js';
import { HttpNodeClient } from '../../internal/nodeclient/http-node-client.js';
import { startStorageNode } from '../../internal/storagenode/server.js';
import { runGateway, runStorageNode, type Running } from '../../internal/wiring/processes.js';
import { startEtcd, type RunningEtcd } from '../../scripts/infra/etcd.js';
import { CONDITION_TIMEOUT_MS, outlastRealTimer, waitUntil } from '../helpers/wait.js';

const TOKEN = 'membership-test-token-0123456789';
/**
 * The nodes' lease. Heartbeats renew it every third of it; it is long enough that a heartbeat a busy machine
 * delays by seconds still lands in time (etcd's smallest lease, 2 s, left about one).
 */
const TTL_MS = 6_000;

let etcd: RunningEtcd;
let admin: Etcd3;
let dir: string;

beforeAll(async () => {
  etcd = await startEtcd();
  admin = new Etcd3({ hosts: [etcd.endpoints] });
  dir = await mkdtemp(path.join(os.tmpdir(), 'strata-registry-'));
});
afterAll(async () => {
  admin?.close();
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});


describe('node registry on etcd', () => {
  it('a node that stops heartbeating is down within its ttl, although it still answers probes', async () => {
    const prefix = `test/${randomUUID()}/`;
    const store = await EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix });
    const node = await startStorageNode({ nodeId: 'n1', dataDir: path.join(dir, 'n1'), host: '127.0.0.1', port: 0, token: TOKEN });
    const heartbeat = new NodeHeartbeat({ registry: store, node: { id: 'n1', address: node.address, zone: 'z1' }, ttlMs: TTL_MS, log: silentLogger });
    // Probes with a generous deadline: the node answers them throughout, however busy the machine; only the
    // registry may say it is down.
    const pool = new NodePool([], { clock: systemClock, probeIntervalMs: 200, probeTimeoutMs: CONDITION_TIMEOUT_MS });
    const sync = new RegistrySync({
      registry: store,
      pool,
      makeClient: (n) => new HttpNodeClient({ nodeId: n.id, address: n.address, token: TOKEN, timeoutMs: CONDITION_TIMEOUT_MS }),
      log: silentLogger,
    });
    try {
      expect(await heartbeat.start()).toBe(true);
      expect(await sync.syncOnce()).toBe(true);
      pool.start();
      sync.start();
      expect(pool.isHealthy('n1')).toBe(true);
      expect(pool.views()).toEqual([expect.objectContaining({ id: 'n1', address: node.address, zone: 'z1', state: 'healthy' })]);

      // Heartbeats keep it alive well past its ttl (etcd expires leases by its own real clock).
      await outlastRealTimer(TTL_MS * 1.5);
      expect(pool.isHealthy('n1')).toBe(true);
      expect((await store.listNodes())[0]).toMatchObject({ id: 'n1', alive: true });

      await heartbeat.stop();
      const stoppedMs = Date.now();
      // Its last heartbeat was at most ttl/3 before the stop; the lease ends ttl after it. Not before: the lower
      // bound holds however busy the machine (only the upper one would depend on it, and the wait bounds that).
      await waitUntil('the registry to report the node down', () => !pool.isHealthy('n1'));
      const downAfterMs = Date.now() - stoppedMs;
      expect(downAfterMs).toBeGreaterThan(TTL_MS / 3);
      // The node itself is fine: only the registry says it is gone.
      expect(await new HttpNodeClient({ nodeId: 'n1', address: node.address, token: TOKEN }).ping()).toBe(true);
      expect((await store.listNodes())[0]).toMatchObject({ id: 'n1', alive: false, state: 'active' });
      expect(pool.views()[0]).toMatchObject({ state: 'down' });

      // Heartbeating again brings it back within a refresh.
      expect(await heartbeat.beatOnce()).toBe(true);
      await waitUntil('the registry to report the node back', () => pool.isHealthy('n1'));
    } finally {
      await heartbeat.stop();
      await sync.stop();
      await pool.close();
      await node.stop();
      await store.close();
      await admin.delete().prefix(prefix);
    }
  });

  it('storage-node processes register themselves and a gateway without STRATA_NODES finds them', async () => {
    const prefix = `test/${randomUUID()}/`;
    const dataDir = path.join(dir, 'processes');
    const env = (extra: Record<string, string>) =>
      loadConfig({
        STRATA_DATA_DIR: dataDir,
        STRATA_HOST: '127.0.0.1',
        STRATA_PORT: '0',
        STRATA_CLUSTER_TOKEN: TOKEN,
        STRATA_ETCD_ENDPOINTS: etcd.endpoints,
        STRATA_ETCD_PREFIX: prefix,
        STRATA_NODE_TTL_MS: String(TTL_MS),
        STRATA_LOG_LEVEL: 'silent',
        ...extra,
      });
    const running: Running[] = [];
    try {
      const zones = ['zone-a', 'zone-b', 'zone-c'];
      for (let i = 1; i <= 6; i++) {
        running.push(await runStorageNode(env({ STRATA_NODE_ID: `node-${i}`, STRATA_NODE_ZONE: zones[i % 3]! }), silentLogger));
      }
      const store = await EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix });
      const registered = await store.listNodes();
      await store.close();
      expect(registered.map((n) => n.id)).toEqual(['node-1', 'node-2', 'node-3', 'node-4', 'node-5', 'node-6']);
      for (const n of registered) {
        expect(n).toMatchObject({ state: 'active', alive: true });
        expect(n.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      }

      const gateway = await runGateway(env({}), silentLogger);
      running.push(gateway);
      const url = /listening on (\S+)/.exec(gateway.describe)![1]!;
      const written = await fetch(`${url}/write?key=registry/doc`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ like_count: 1, body: 'x'.repeat(5_000) }),
      });
      expect(written.status, await written.clone().text()).toBe(200);
      const read = await fetch(`${url}/read/registry%2Fdoc`);
      expect(await read.json()).toEqual({ like_count: 1, body: 'x'.repeat(5_000) });
      const cluster = (await (await fetch(`${url}/cluster`)).json()) as { nodes: { id: string; zone: string; state: string; draining: boolean }[] };
      expect(cluster.nodes.map((n) => n.id).sort()).toEqual(registered.map((n) => n.id));
      for (const n of cluster.nodes) expect(n).toMatchObject({ state: 'healthy', draining: false });
      expect(new Set(cluster.nodes.map((n) => n.zone))).toEqual(new Set(zones));
    } finally {
      for (const r of running.reverse()) await r.stop();
      await admin.delete().prefix(prefix);
    }
  });
});
