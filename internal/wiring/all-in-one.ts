/**
 * The all-in-one cluster (`npm start`): a gateway, six storage nodes and a healer in one process, with the
 * embedded metadata store and log, all data under one directory. The six nodes share one disk, so this mode
 * survives process crashes and bit rot, not the loss of the disk.
 *
 * By default the gateway calls the nodes in-process (no HTTP hop per blob); each node still serves its HTTP API
 * for tools and for the `http` transport, which tests use to exercise the real network path.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import type { BlobInfo, BlobStore, StoreUsage } from '../blobstore/blob-store.js';
import { NodePool } from '../cluster/node-pool.js';
import type { StrataConfig } from '../config/config.js';
import { systemClock, type Clock } from '../core/clock.js';
import { DATA_FORMAT_MAX, fixedDataFormat } from '../core/data-format.js';
import { raiseOwnDataFormat } from '../cluster/format-version.js';
import { StrataError, isStrataError } from '../core/errors.js';
import { openClusterIdentity, nodeDirectory, recordNodeInitialised } from '../datadir/cluster-directory.js';
import { DirLock } from '../datadir/dir-lock.js';
import type { ClusterIdentity } from '../datadir/identity.js';
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
import { watchMetadataIntegrity } from '../metrics/integrity-metrics.js';
import { StorageNodeMetrics } from '../metrics/node-metrics.js';
import { createProcessRegistry } from '../metrics/registry.js';
import { loadTls, nodeClientTls, type TlsMaterial } from './tls.js';
import { DiskReserve } from '../reserve/disk-reserve.js';
import { nodesFootprint } from '../reserve/reserve-sizing.js';
import { VOLUME_BYTES_MAX_DEFAULT, type VolumeStoreUsage } from '../blobstore/volume/volume-blob-store.js';


/**
 * The data format the all-in-one writes: the newest, since one process of one release reads everything it writes
 * (a cluster of separate processes waits for an explicit bump instead).
 */
export const ALL_IN_ONE_DATA_FORMAT: number = DATA_FORMAT_MAX;

export interface AllInOneNode {
  id: string;
  dataDir: string;
  /** The node's HTTP address (it keeps its port across stop/start). */
  address: string;
  running: boolean;
  /**
   * Why the node is down when its directory could not be opened (foreign, emptied, broken, locked by another
   * process); null otherwise. The pool holds it down with this reason, which GET /cluster shows.
   */
  downReason: string | null;
  server: StorageNode | null;
  client: NodeClient;
  /** Takes the node away as a crash would: its server stops and in-process calls fail. */
  stop(): Promise<void>;
  /**
   * Brings it back on the same data directory and port. An emptied directory is taken as a new empty node here
   * (this explicit start is the operator's say-so; at process start-up it keeps the node down instead).
   */
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
  /** The data directory's space reserve (internal/reserve), shared by the databases and the six nodes on its disk. */
  reserve: DiskReserve;
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
  // One process owns the data directory: a second one stops here, before it reads anything (internal/datadir).
  const lock = DirLock.acquire(config.dataDir);
  const opened: { close(): Promise<void> }[] = [];
  try {
    // The reserve before anything else opens: on a full disk it releases its ballast, which is what gives SQLite
    // room for its -wal and -shm files, so the process starts and serves reads.
    const nodeStores: { usage(): Promise<VolumeStoreUsage> }[] = [];
    const reserve = await DiskReserve.open({
      dir: config.dataDir,
      reserveBytesMax: config.diskReserveBytesMax,
      footprint: async () => nodesFootprint(await Promise.all(nodeStores.map((s) => s.usage())), VOLUME_BYTES_MAX_DEFAULT, 2),
      log: log.child({ component: 'disk-reserve' }),
    });
    opened.push(reserve);
    return await startLocked(config, options, { clock, log, tls, lock, opened, reserve, nodeStores });
  } catch (error) {
    for (const resource of opened.reverse()) await resource.close().catch(() => undefined);
    lock.release();
    throw error;
  }
}

interface StartContext {
  clock: Clock;
  log: Logger;
  tls: TlsMaterial;
  lock: DirLock;
  /** Closed in reverse order when the start fails half way. */
  opened: { close(): Promise<void> }[];
  reserve: DiskReserve;
  /** The nodes' volume stores, as they open, for sizing the reserve. */
  nodeStores: { usage(): Promise<VolumeStoreUsage> }[];
}

async function startLocked(config: Readonly<StrataConfig>, options: AllInOneOptions, started: StartContext): Promise<AllInOne> {
  const { clock, log, tls, lock, opened, reserve, nodeStores } = started;
  const nodeIds = Array.from({ length: config.nodeCount }, (_, i) => `node-${i + 1}`);
  const cluster = new ClusterRecord(config.dataDir, await openClusterIdentity(config.dataDir, nodeIds, clock.nowMs()));
  const token = config.clusterToken ?? (await localToken(config.dataDir));
  const metadata = await SqliteMetadataStore.open({ path: path.join(config.dataDir, 'metadata', 'strata.db'), clock, log: log.child({ component: 'metadata' }) });
  opened.push(metadata);
  // One process of one release, so it needs no bump: what it writes is ALL_IN_ONE_DATA_FORMAT (a cluster identity
  // record in its store, if any, is raised to it; one of a newer data format refuses the start).
  const dataFormat = fixedDataFormat(ALL_IN_ONE_DATA_FORMAT);
  await raiseOwnDataFormat(metadata, ALL_IN_ONE_DATA_FORMAT, `the embedded metadata store in ${config.dataDir}`);
  const wal = await SqliteWriteAheadLog.open({ path: path.join(config.dataDir, 'wal', 'wal.db'), clock, thread: 'worker' });
  opened.push(wal);

  // One registry for the whole process: the gateway serves it on /metrics (so does every node's listener), with
  // the nodes' series told apart by their `node` label.
  const registry = createProcessRegistry({ processMetrics: options.processMetrics ?? false });
  const context = new RequestContext();
  const nodeMetrics = new StorageNodeMetrics(registry);
  const nodes: AllInOneNode[] = [];
  opened.push({ close: () => Promise.all(nodes.map((n) => n.stop())).then(() => undefined) });
  // The pool is made once every node is known: nodes down from the start are held down in it below.
  let pool: NodePool | null = null;
  const states = {
    up: (id: string) => pool?.liftHold(id),
    down: (id: string, reason: string) => pool?.holdDown(id, reason),
  };
  for (const [i, id] of nodeIds.entries()) {
    nodes.push(await startNode(config, id, i + 1, token, clock, log, tls, { nodeMetrics, context }, cluster, states, reserve));
  }
  // Sized from the live stores (a restarted node's store is read through its node).
  nodeStores.push(...nodes.map((n) => ({ usage: async () => (n.server === null ? emptyUsage() : n.server.store.usage()) })));
  await reserve.refresh();
  const nodePool = new NodePool(
    nodes.map((n) => ({ client: n.client })),
    { clock, probeIntervalMs: config.nodeProbeIntervalMs, probeTimeoutMs: Math.min(1000, config.nodeTimeoutMs) },
  );
  pool = nodePool;
  opened.push(nodePool);
  for (const n of nodes) if (n.downReason !== null) nodePool.holdDown(n.id, n.downReason);
  nodePool.start();
  const ec = measureErasureCode(new ReedSolomonCode(), registry);
  const healer = buildHealer(config, { metadata, wal, pool: nodePool, ec, clock, log: log.child({ component: 'healer' }), dataFormat });
  watchHealer(registry, healer, clock);
  watchMetadataIntegrity(registry, metadata, clock);
  const gateway = buildGateway({
    config,
    metadata,
    wal,
    pool: nodePool,
    ec,
    clock,
    log: log.child({ component: 'gateway' }),
    backends: { metadata: 'embedded (SQLite)', wal: 'embedded (SQLite)' },
    ...(options.hooks ? { hooks: options.hooks } : {}),
    repairBacklog: () => healer.backlog,
    observability: { registry, context },
    capacity: reserve,
    dataFormat,
  });
  const http = await serveApp(gateway.app, config.host, config.port, { tls: tls.server, socketIdleTimeoutMs: config.socketIdleTimeoutMs });
  if (options.startHealer !== false) healer.start();

  return {
    url: http.address,
    nodes,
    gateway,
    healer,
    metadata,
    wal,
    pool: nodePool,
    reserve,
    registry,
    async stop(graceMs?: number) {
      try {
        await http.close(graceMs);
        await healer.stop();
        await gateway.writes.drain();
        await gateway.tiering.stop();
        await gateway.manifests.close();
        await nodePool.close();
        await Promise.all(nodes.map((n) => n.stop()));
        await wal.close();
        await metadata.close();
        await reserve.close();
      } finally {
        // Last: the directory is ours until everything in it is closed.
        lock.release();
      }
    },
  };
}

/** The cluster identity as this process last wrote it; node starts add to it one at a time. */
class ClusterRecord {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly dataDir: string,
    private identity: ClusterIdentity,
  ) {}

  get clusterId(): string {
    return this.identity.clusterId;
  }

  heldData(nodeId: string): boolean {
    return this.identity.nodes.includes(nodeId);
  }

  initialised(nodeId: string): Promise<void> {
    const next = this.tail.then(async () => {
      this.identity = await recordNodeInitialised(this.dataDir, this.identity, nodeId);
    });
    this.tail = next.catch(() => undefined);
    return next;
  }
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
  cluster: ClusterRecord,
  states: { up(id: string): void; down(id: string, reason: string): void },
  reserve: DiskReserve,
): Promise<AllInOneNode> {
  const nodeLog = log.child({ component: 'storage-node', node: id });
  const metrics = observability.nodeMetrics.forNode(id);
  const requestId = (): string | undefined => observability.context.requestId();
  const dataDir = nodeDirectory(config.dataDir, id);
  const launch = async (p: number, acceptEmpty: boolean): Promise<StorageNode> => {
    const server = await startStorageNode({
      nodeId: id,
      dataDir,
      host: config.host,
      port: p,
      token,
      clock,
      identity: { clusterId: cluster.clusterId, heldData: cluster.heldData(id), acceptEmpty },
      reserve,
      ...(tls.server !== null ? { tls: tls.server } : {}),
      ...(config.scrubIntervalMs > 0 ? { scrubIntervalMs: config.scrubIntervalMs, scrubBytesPerSecMax: config.scrubBytesPerSecMax } : {}),
      onError: (err) => log.error({ err, node: id }, 'storage node error'),
      log: nodeLog,
      metrics,
    });
    if (server.directory !== 'verified') nodeLog.info({ dataDir, directory: server.directory }, 'storage node directory identity written');
    try {
      await cluster.initialised(id);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  };
  // A node whose directory cannot be opened starts down, with the reason; the others serve. Anything else (a
  // port in use) still stops the start, as before.
  let first: StorageNode | null = null;
  let downReason: string | null = null;
  try {
    first = await launch(config.nodePortBase === 0 ? 0 : config.nodePortBase + index - 1, false);
  } catch (err) {
    if (!isDirectoryRefusal(err)) throw err;
    downReason = err.message;
    log.error({ node: id, dataDir, code: err.code, reason: downReason }, `storage ${id} is down: its directory cannot be opened; the other nodes serve`);
  }
  // A node that is down from the start keeps the port it would have had, so that start() can bring it back there.
  const port = first?.port ?? (config.nodePortBase === 0 ? await freePort(config.host) : config.nodePortBase + index - 1);
  const address = first?.address ?? `${tls.server === null ? 'http' : 'https'}://${urlHost(config.host)}:${port}`;
  let local: LocalNodeClient | null = null;
  let client: NodeClient;
  if (config.nodeTransport === 'local') {
    local = new LocalNodeClient({ nodeId: id, store: first?.blobs ?? new UnopenedBlobStore(id), address, copyBuffers: false, requestId, log: nodeLog });
    local.setAvailable(first !== null);
    client = local;
  } else {
    client = new HttpNodeClient({ nodeId: id, address, token, timeoutMs: config.nodeTimeoutMs, ...nodeClientTls(tls), requestId });
  }
  const node: AllInOneNode = {
    id,
    dataDir,
    address,
    running: first !== null,
    downReason,
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
      let server: StorageNode;
      try {
        // An explicit start takes an emptied directory as a new empty node (the healer refills it); a foreign or
        // broken one is still refused.
        server = await launch(port, true);
      } catch (err) {
        if (isDirectoryRefusal(err)) {
          node.downReason = err.message;
          states.down(id, err.message);
        }
        throw err;
      }
      node.server = server;
      if (local) {
        local.setStore(server.blobs);
        local.setAvailable(true);
      }
      node.running = true;
      if (node.downReason !== null) {
        node.downReason = null;
        states.up(id);
      }
    },
  };
  return node;
}

function isDirectoryRefusal(err: unknown): err is StrataError {
  return isStrataError(err, 'DATA_DIR_UNUSABLE') || isStrataError(err, 'DATA_DIR_LOCKED');
}

/** The blob store of a node whose directory could not be opened: every call is NODE_UNAVAILABLE. */
class UnopenedBlobStore implements BlobStore {
  constructor(private readonly nodeId: string) {}
  put(): Promise<BlobInfo> {
    return this.refuse();
  }
  get(): Promise<{ info: BlobInfo; data: Buffer }> {
    return this.refuse();
  }
  stat(): Promise<BlobInfo | null> {
    return this.refuse();
  }
  delete(): Promise<boolean> {
    return this.refuse();
  }
  list(): Promise<BlobInfo[]> {
    return this.refuse();
  }
  verify(): Promise<'ok' | 'corrupt' | 'missing'> {
    return this.refuse();
  }
  usage(): Promise<StoreUsage> {
    return this.refuse();
  }
  async close(): Promise<void> {}
  private async refuse(): Promise<never> {
    throw new StrataError('NODE_UNAVAILABLE', `storage ${this.nodeId} is down: its directory could not be opened`);
  }
}

function emptyUsage(): VolumeStoreUsage {
  return { blobs: 0, bytesUsed: 0, bytesFree: 0, garbageBytes: 0, reclaimableBytes: 0, reclaimedBytes: 0, fileBytes: 0, volumes: 0 };
}

/** A port nothing listens on now, for a node that is down from the start (port base 0 means "pick one"). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The host a client on this machine dials: a wildcard listener is reached on loopback. */
function urlHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
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
