/**
 * The all-in-one cluster (`npm start`): a gateway, six storage nodes and a healer in one process, with the
 * embedded metadata store and log, all data under one directory. The six nodes share one disk, so this mode
 * survives process crashes and bit rot, not the loss of the disk.
 *
 * By default the gateway calls the nodes in-process (no HTTP hop per blob); each node still serves its HTTP API
 * for tools and for the `http` transport, which tests use to exercise the real network path.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NodePool } from '../cluster/node-pool.js';
import type { StrataConfig } from '../config/config.js';
import { systemClock, type Clock } from '../core/clock.js';
import { ReedSolomonCode } from '../ec/reed-solomon.js';
import type { Healer } from '../healer/healer.js';
import { buildHealer } from './healer.js';
import type { Logger } from '../log/logger.js';
import { SqliteMetadataStore } from '../metadata/sqlite-metadata-store.js';
import { HttpNodeClient } from '../nodeclient/http-node-client.js';
import { LocalNodeClient } from '../nodeclient/local-node-client.js';
import type { NodeClient } from '../nodeclient/node-client.js';
import { startStorageNode, type StorageNode } from '../storagenode/server.js';
import { SqliteWriteAheadLog } from '../wal/sqlite-wal.js';
import type { WriteHooks } from '../writeservice/write-service.js';
import { buildGateway, type Gateway } from './gateway.js';
import { serveApp, type HttpServerHandle } from './http-server.js';
import type { Registry } from 'prom-client';
import { RequestContext } from '../log/request-context.js';
import { measureErasureCode } from '../metrics/ec-metrics.js';
import { watchHealer } from '../metrics/healer-metrics.js';
import { StorageNodeMetrics } from '../metrics/node-metrics.js';
import { createProcessRegistry } from '../metrics/registry.js';
import { loadTls, nodeClientTls, type TlsMaterial } from './tls.js';

export interface AllInOneNode {
  id: string;
  dataDir: string;
  /** The node's HTTP address (it keeps its port across stop/start). */
  address: string;
  running: boolean;
  server: StorageNode | null;
  client: NodeClient;
  /** Takes the node away as a crash would: its server stops and in-process calls fail. */
  stop(): Promise<void>;
  /** Brings it back on the same data directory and port. */
  start(): Promise<void>;
}

export interface AllInOne {
  url: string;
  nodes: AllInOneNode[];
  gateway: Gateway;
  healer: Healer;
  metadata: SqliteMetadataStore;
  wal: SqliteWriteAheadLog;
  pool: NodePool;
  /** The process's metrics registry (GET /metrics on the gateway). */
  registry: Registry;
  /** Stops everything; requests in flight at the gateway get up to `graceMs` (default 2 s) to finish. */
  stop(graceMs?: number): Promise<void>;
}

export interface AllInOneOptions {
  log: Logger;
  clock?: Clock;
  hooks?: WriteHooks;
  /** Run the healer loop in the background (tests drive `healer.runOnce()` themselves). */
  startHealer?: boolean;
  /** Node's process metrics (RSS, CPU, event loop lag) on /metrics: `npm start` turns them on, tests leave them off. */
  processMetrics?: boolean;
}

export async function startAllInOne(config: Readonly<StrataConfig>, options: AllInOneOptions): Promise<AllInOne> {
  const clock = options.clock ?? systemClock;
  const { log } = options;
  // Certificate problems stop the start before anything is opened.
  const tls = loadTls(config);
  await mkdir(config.dataDir, { recursive: true });
  const token = config.clusterToken ?? (await localToken(config.dataDir));
  const metadata = await SqliteMetadataStore.open({ path: path.join(config.dataDir, 'metadata', 'strata.db'), clock });
  const wal = await SqliteWriteAheadLog.open({ path: path.join(config.dataDir, 'wal', 'wal.db'), clock });

  // One registry for the whole process: the gateway serves it on /metrics (so does every node's listener), with
  // the nodes' series told apart by their `node` label.
  const registry = createProcessRegistry({ processMetrics: options.processMetrics ?? false });
  const context = new RequestContext();
  const nodeMetrics = new StorageNodeMetrics(registry);
  const nodes: AllInOneNode[] = [];
  for (let i = 1; i <= config.nodeCount; i++) {
    nodes.push(await startNode(config, `node-${i}`, i, token, clock, log, tls, { nodeMetrics, context }));
  }
  const pool = new NodePool(
    nodes.map((n) => ({ client: n.client })),
    { clock, probeIntervalMs: config.nodeProbeIntervalMs, probeTimeoutMs: Math.min(1000, config.nodeTimeoutMs) },
  );
  pool.start();
  const ec = measureErasureCode(new ReedSolomonCode(), registry);
  const healer = buildHealer(config, { metadata, wal, pool, ec, clock, log: log.child({ component: 'healer' }) });
  watchHealer(registry, healer, clock);
  const gateway = buildGateway({
    config,
    metadata,
    wal,
    pool,
    ec,
    clock,
    log: log.child({ component: 'gateway' }),
    backends: { metadata: 'embedded (SQLite)', wal: 'embedded (SQLite)' },
    ...(options.hooks ? { hooks: options.hooks } : {}),
    repairBacklog: () => healer.backlog,
    observability: { registry, context },
  });
  let http: HttpServerHandle;
  try {
    http = await serveApp(gateway.app, config.host, config.port, { tls: tls.server, socketIdleTimeoutMs: config.socketIdleTimeoutMs });
  } catch (error) {
    await Promise.all(nodes.map((n) => n.stop()));
    await pool.close();
    await wal.close();
    await metadata.close();
    throw error;
  }
  if (options.startHealer !== false) healer.start();

  return {
    url: http.address,
    nodes,
    gateway,
    healer,
    metadata,
    wal,
    pool,
    registry,
    async stop(graceMs?: number) {
      await http.close(graceMs);
      await healer.stop();
      await gateway.writes.drain();
      await gateway.tiering.stop();
      await gateway.manifests.close();
      await pool.close();
      await Promise.all(nodes.map((n) => n.stop()));
      await wal.close();
      await metadata.close();
    },
  };
}

async function startNode(
  config: Readonly<StrataConfig>,
  id: string,
  index: number,
  token: string,
  clock: Clock,
  log: Logger,
  tls: TlsMaterial,
  observability: { nodeMetrics: StorageNodeMetrics; context: RequestContext },
): Promise<AllInOneNode> {
  const nodeLog = log.child({ component: 'storage-node', node: id });
  const metrics = observability.nodeMetrics.forNode(id);
  const requestId = (): string | undefined => observability.context.requestId();
  const dataDir = path.join(config.dataDir, 'nodes', id);
  const port = config.nodePortBase === 0 ? 0 : config.nodePortBase + index - 1;
  const launch = (p: number): Promise<StorageNode> =>
    startStorageNode({
      nodeId: id,
      dataDir,
      host: config.host,
      port: p,
      token,
      clock,
      ...(tls.server !== null ? { tls: tls.server } : {}),
      ...(config.scrubIntervalMs > 0 ? { scrubIntervalMs: config.scrubIntervalMs, scrubBytesPerSecMax: config.scrubBytesPerSecMax } : {}),
      onError: (err) => log.error({ err, node: id }, 'storage node error'),
      log: nodeLog,
      metrics,
    });
  const first = await launch(port);
  let local: LocalNodeClient | null = null;
  let client: NodeClient;
  if (config.nodeTransport === 'local') {
    local = new LocalNodeClient({ nodeId: id, store: first.store, address: first.address, copyBuffers: false, requestId, log: nodeLog });
    client = local;
  } else {
    client = new HttpNodeClient({ nodeId: id, address: first.address, token, timeoutMs: config.nodeTimeoutMs, ...nodeClientTls(tls), requestId });
  }
  const node: AllInOneNode = {
    id,
    dataDir,
    address: first.address,
    running: true,
    server: first,
    client,
    async stop() {
      if (!node.running) return;
      node.running = false;
      local?.setAvailable(false);
      await node.server?.stop();
      node.server = null;
    },
    async start() {
      if (node.running) return;
      node.server = await launch(first.port);
      if (local) {
        local.setStore(node.server.store);
        local.setAvailable(true);
      }
      node.running = true;
    },
  };
  return node;
}

/** The all-in-one cluster keeps its node token in the data directory, created on first start. */
async function localToken(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'cluster-token');
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (existing.length >= 16) return existing;
  } catch {
    // first start
  }
  const token = randomBytes(24).toString('base64url');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}
