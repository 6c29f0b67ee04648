/**
 * Wiring of the separate processes (`cmd/api`, `cmd/storage-node`, `cmd/healer`): on etcd and Kafka when they
 * are configured, otherwise on the embedded backends in a data directory the processes share (one machine).
 *
 * Storage nodes register themselves in the node registry (the metadata store) and heartbeat. Gateways and
 * healers take their nodes from STRATA_NODES when it is set (a static list), otherwise from the registry,
 * re-read every second.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ClusterDataFormat, FORMAT_VERSION_LIMITS, ProcessAnnouncement, storageNodeProcessId } from '../cluster/format-version.js';
import { NodeHeartbeat } from '../cluster/node-heartbeat.js';
import { NodePool } from '../cluster/node-pool.js';
import { RegistrySync } from '../cluster/registry-sync.js';
import { ConfigError, defaultAdvertiseUrl, type StrataConfig } from '../config/config.js';
import { assert } from '../core/assert.js';
import { systemClock } from '../core/clock.js';
import { EC_TOTAL_SHARDS } from '../core/limits.js';
import type { MetadataStore, ProcessRole } from '../metadata/metadata-store.js';
import { ReedSolomonCode } from '../ec/reed-solomon.js';
import { buildHealer, createHealerApp, healerHolderId } from './healer.js';
import type { Logger } from '../log/logger.js';
import { HttpNodeClient } from '../nodeclient/http-node-client.js';
import { startStorageNode } from '../storagenode/server.js';
import { joinCluster } from '../datadir/cluster-membership.js';
import { openBackends, openMetadata } from './backends.js';
import { buildGateway } from './gateway.js';
import { serveApp, type HttpServerHandle } from './http-server.js';
import { RequestContext } from '../log/request-context.js';
import { measureErasureCode } from '../metrics/ec-metrics.js';
import { watchNodePool } from '../metrics/gateway-metrics.js';
import { watchHealer } from '../metrics/healer-metrics.js';
import { watchMetadataIntegrity } from '../metrics/integrity-metrics.js';
import { StorageNodeMetrics } from '../metrics/node-metrics.js';
import { createProcessRegistry } from '../metrics/registry.js';
import { loadTls, nodeClientTls } from './tls.js';
import type { WriteHooks } from '../writeservice/write-service.js';

export interface Running {
  describe: string;
  /**
   * Graceful shutdown (run-process.ts bounds it by STRATA_SHUTDOWN_GRACE_MS): stop accepting, finish requests in
   * flight, leave the node registry, close stores. `cut` says that some requests in flight had to be cut.
   */
  stop(): Promise<{ cut: boolean } | void>;
}

function requireToken(config: Readonly<StrataConfig>): string {
  if (!config.clusterToken) throw new ConfigError('STRATA_CLUSTER_TOKEN is required when processes run separately');
  return config.clusterToken;
}

interface Membership {
  pool: NodePool;
  stop(): Promise<void>;
}

/** The gateway's or healer's storage nodes: the static STRATA_NODES list, or the node registry when it is empty. */
async function nodeMembership(
  config: Readonly<StrataConfig>,
  registry: MetadataStore,
  log: Logger,
  requestId?: () => string | undefined,
): Promise<Membership> {
  const token = requireToken(config);
  const clientTls = nodeClientTls(loadTls(config));
  if (clientTls.requireTls) {
    const plain = config.nodes.filter((n) => n.address.startsWith('http:'));
    if (plain.length > 0) {
      throw new ConfigError(`STRATA_NODES lists http:// addresses (${plain.map((n) => n.id).join(', ')}) but STRATA_TLS_CA is set: internal traffic must be https://`);
    }
  }
  const makeClient = (n: { id: string; address: string }) =>
    new HttpNodeClient({
      nodeId: n.id,
      address: n.address,
      token,
      timeoutMs: config.nodeTimeoutMs,
      ...clientTls,
      ...(requestId ? { requestId } : {}),
    });
  const probing = { clock: systemClock, probeIntervalMs: config.nodeProbeIntervalMs, probeTimeoutMs: Math.min(1000, config.nodeTimeoutMs) };
  if (config.nodes.length > 0) {
    if (config.nodes.length < EC_TOTAL_SHARDS) {
      throw new ConfigError(`STRATA_NODES must list at least ${EC_TOTAL_SHARDS} storage nodes (id=http://host:port,...), or be empty to use the node registry`);
    }
    const pool = new NodePool(
      config.nodes.map((n) => ({ client: makeClient(n), ...(n.zone ? { zone: n.zone } : {}) })),
      probing,
    );
    pool.start();
    return { pool, stop: () => pool.close() };
  }
  const pool = new NodePool([], probing);
  const sync = new RegistrySync({ registry, pool, makeClient, log });
  // The first read is awaited so that the process starts with the nodes it can know about.
  await sync.syncOnce();
  if (pool.size < EC_TOTAL_SHARDS) {
    log.warn(`${pool.size} storage nodes registered so far; writes need ${EC_TOTAL_SHARDS} (nodes register themselves when they start)`);
  }
  sync.start();
  pool.start();
  return {
    pool,
    async stop() {
      await sync.stop();
      await pool.close();
    },
  };
}

/**
 * Test-only (STRATA_TEST_PAUSE_BEFORE_COMMIT_MS): every write waits between its blobs and its commit, so that a
 * cluster test (test/cluster/gateway-crash.test.ts) can SIGKILL this process in exactly that window. The log line
 * names the write, which is how the test knows the window has been reached.
 */
function testFaultHooks(config: Readonly<StrataConfig>, log: Logger): WriteHooks | undefined {
  const pauseMs = config.testPauseBeforeCommitMs;
  if (pauseMs === 0) return undefined;
  log.warn({ pauseMs }, 'STRATA_TEST_PAUSE_BEFORE_COMMIT_MS is set: every write pauses before its commit (test-only)');
  return {
    async beforeCommit(writeId, key) {
      log.warn({ writeId, key, pauseMs }, 'test hook: pausing before commit');
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    },
  };
}

/** Options of the run* functions; the entry points use the defaults. */
export interface RunOptions {
  /** Node's process metrics (RSS, CPU, event loop lag) on /metrics; default true. */
  processMetrics?: boolean;
  /**
   * The cluster's data format became one this release cannot read while the process ran (a newer release bumped
   * it): the process must stop writing. Default: SIGTERM to itself, which run-process.ts turns into the graceful
   * shutdown (requests in flight finish, nothing new is accepted), after the reason is logged.
   */
  onNewerDataFormat?: (reason: string) => void;
}

/**
 * The cluster's data format as this process will follow it (internal/cluster/format-version.ts): made before the
 * stores, which take it as their DataFormatSource, and at format 1 until `announce` has read the record.
 */
function dataFormatFollower(config: Readonly<StrataConfig>, log: Logger, options: RunOptions): ClusterDataFormat {
  return new ClusterDataFormat({
    clock: systemClock,
    log: log.child({ component: 'data-format' }),
    pollIntervalMs: config.etcdEndpoints.length > 0 ? FORMAT_VERSION_LIMITS.watchedPollIntervalMs : FORMAT_VERSION_LIMITS.sqlitePollIntervalMs,
    onNewer: options.onNewerDataFormat ?? (() => process.kill(process.pid, 'SIGTERM')),
  });
}

/**
 * Reads the cluster's data format (a newer one than this release reads refuses the start: FORMAT_UNSUPPORTED),
 * follows it, and announces this process with what it reads, so that a bump waits for it.
 */
async function announce(
  config: Readonly<StrataConfig>,
  log: Logger,
  dataFormat: ClusterDataFormat,
  metadata: MetadataStore,
  storeName: string,
  own: { id: string; role: ProcessRole },
): Promise<ProcessAnnouncement> {
  await dataFormat.follow(metadata, storeName);
  const announcement = new ProcessAnnouncement({ registry: metadata, process: own, ttlMs: config.nodeTtlMs, clock: systemClock, log });
  await announcement.start();
  return announcement;
}

/**
 * Of the shutdown bound, the share requests in flight get to finish; the rest is kept for closing the stores,
 * the WAL and the metadata store, so that a slow request cannot use up the time they need.
 */
export function drainBudgetMs(config: Readonly<StrataConfig>): number {
  return Math.floor(config.shutdownGraceMs * 0.75);
}

export async function runGateway(config: Readonly<StrataConfig>, log: Logger, options: RunOptions = {}): Promise<Running> {
  const tls = loadTls(config);
  const registry = createProcessRegistry({ processMetrics: options.processMetrics ?? true });
  const context = new RequestContext();
  const dataFormat = dataFormatFollower(config, log, options);
  const { metadata, wal, names } = await openBackends(config, systemClock, log, dataFormat);
  let announcement: ProcessAnnouncement;
  try {
    announcement = await announce(config, log, dataFormat, metadata, names.metadata, { id: `gateway-${process.pid}-${randomBytes(4).toString('hex')}`, role: 'gateway' });
  } catch (error) {
    await dataFormat.stop();
    await wal.close();
    await metadata.close();
    throw error;
  }
  watchMetadataIntegrity(registry, metadata, systemClock);
  const membership = await nodeMembership(config, metadata, log, () => context.requestId());
  const pool = membership.pool;
  await pool.probe();
  const hooks = testFaultHooks(config, log);
  const gateway = buildGateway({
    config,
    metadata,
    wal,
    pool,
    ec: measureErasureCode(new ReedSolomonCode(), registry),
    clock: systemClock,
    log,
    backends: names,
    ...(hooks ? { hooks } : {}),
    observability: { registry, context },
    dataFormat,
  });
  const http = await serveApp(gateway.app, config.host, config.port, { tls: tls.server, socketIdleTimeoutMs: config.socketIdleTimeoutMs });
  return {
    describe: `gateway listening on ${http.address}`,
    async stop() {
      const finished = await http.close(drainBudgetMs(config));
      await gateway.writes.drain();
      await gateway.tiering.stop();
      await gateway.manifests.close();
      await membership.stop();
      await announcement.leave();
      await dataFormat.stop();
      await wal.close();
      await metadata.close();
      return { cut: !finished };
    },
  };
}

export async function runStorageNode(config: Readonly<StrataConfig>, log: Logger, options: RunOptions = {}): Promise<Running> {
  const tls = loadTls(config);
  const registry = createProcessRegistry({ processMetrics: options.processMetrics ?? true });
  if (tls.server !== null && config.advertiseUrl?.startsWith('http:') === true) {
    throw new ConfigError('STRATA_ADVERTISE_URL is http:// but this node serves HTTPS (STRATA_TLS_CERT): advertise its https:// address');
  }
  // The node's directory first: one that is locked by another process stops this process at once. Under the
  // lock, the directory is checked against the cluster identity in the metadata store (which also holds the node
  // registry; a store that does not answer is waited for within a bound): one that is foreign (another cluster's
  // or another node's identity, a newer format), emptied while the cluster lists the node, or cannot be opened
  // stops this process with a message naming it and what to do; there is nothing else for it to serve
  // (internal/datadir/cluster-membership.ts).
  const held: { metadata: MetadataStore | null; name: string } = { metadata: null, name: '' };
  const dataFormat = dataFormatFollower(config, log, options);
  let clusterId: string | null = null;
  let node: Awaited<ReturnType<typeof startStorageNode>>;
  try {
    node = await startStorageNode({
      nodeId: config.nodeId,
      dataDir: path.join(config.dataDir, 'nodes', config.nodeId),
      host: config.host,
      port: config.port,
      token: requireToken(config),
      admitDirectory: async (dir) => {
        const { metadata: store, name: storeName } = await openMetadata(config, systemClock, log, dataFormat);
        held.metadata = store;
        held.name = storeName;
        const joined = await joinCluster({ store, storeName, dataDir: config.dataDir, nodeDir: dir, nodeId: config.nodeId, clock: systemClock, log });
        clusterId = joined.clusterId;
        if (joined.directory !== 'verified') log.info({ dir, directory: joined.directory, clusterId }, 'storage node directory identity written');
        return joined.directory;
      },
      reserve: { own: { reserveBytesMax: config.diskReserveBytesMax } },
      ...(tls.server !== null ? { tls: tls.server } : {}),
      ...(config.scrubIntervalMs > 0 ? { scrubIntervalMs: config.scrubIntervalMs, scrubBytesPerSecMax: config.scrubBytesPerSecMax } : {}),
      onError: (err) => log.error({ err }, 'storage node error'),
      log,
      metrics: new StorageNodeMetrics(registry).forNode(config.nodeId),
    });
  } catch (error) {
    await held.metadata?.close();
    throw error;
  }
  const metadata = held.metadata;
  assert(metadata !== null, 'the metadata store was opened to admit the directory');
  const derived = defaultAdvertiseUrl(config.host, node.port);
  const address = config.advertiseUrl ?? (tls.server !== null ? derived.replace(/^http:/, 'https:') : derived);
  const heartbeat = new NodeHeartbeat({
    registry: metadata,
    node: { id: config.nodeId, address, ...(config.nodeZone ? { zone: config.nodeZone } : {}) },
    ttlMs: config.nodeTtlMs,
    log,
  });
  await heartbeat.start();
  // The node's directory was admitted against the identity record (joinCluster refuses a newer data format); it
  // follows the version from now on and announces that it reads this release's formats.
  let announcement: ProcessAnnouncement;
  try {
    announcement = await announce(config, log, dataFormat, metadata, held.name, { id: storageNodeProcessId(config.nodeId), role: 'storage-node' });
  } catch (error) {
    await dataFormat.stop();
    await heartbeat.leave();
    await node.shutdown(drainBudgetMs(config));
    await metadata.close();
    throw error;
  }
  return {
    describe: `storage node ${config.nodeId} listening on ${node.address}, registered as ${address} (cluster ${clusterId})`,
    async stop() {
      // Leave the registry first, so that gateways and healers stop sending new calls (they re-read it every
      // second); calls already on their way are still served while the listener drains.
      await heartbeat.leave();
      const finished = await node.shutdown(drainBudgetMs(config));
      await announcement.leave();
      await dataFormat.stop();
      await metadata.close();
      return { cut: !finished };
    },
  };
}

export async function runHealer(config: Readonly<StrataConfig>, log: Logger, options: RunOptions = {}): Promise<Running> {
  const registry = createProcessRegistry({ processMetrics: options.processMetrics ?? true });
  const dataFormat = dataFormatFollower(config, log, options);
  const { metadata, wal, names } = await openBackends(config, systemClock, log, dataFormat);
  // The healer's process id is its leadership holder id: the registry then names the leader's release too.
  const holderId = healerHolderId();
  let announcement: ProcessAnnouncement;
  try {
    announcement = await announce(config, log, dataFormat, metadata, names.metadata, { id: holderId, role: 'healer' });
  } catch (error) {
    await dataFormat.stop();
    await wal.close();
    await metadata.close();
    throw error;
  }
  watchMetadataIntegrity(registry, metadata, systemClock);
  const membership = await nodeMembership(config, metadata, log);
  const pool = membership.pool;
  const ec = measureErasureCode(new ReedSolomonCode(), registry);
  const healer = buildHealer(config, { metadata, wal, pool, ec, clock: systemClock, log, dataFormat }, holderId);
  watchHealer(registry, healer, systemClock);
  watchNodePool(registry, pool);
  let http: HttpServerHandle;
  try {
    http = await serveApp(createHealerApp(healer, registry), config.host, config.healerPort);
  } catch (error) {
    await membership.stop();
    await announcement.leave();
    await dataFormat.stop();
    await wal.close();
    await metadata.close();
    throw error;
  }
  healer.start();
  return {
    describe: `healer running (it leads when it holds the lease); health and metrics on ${http.address}`,
    async stop() {
      const finished = await http.close(drainBudgetMs(config));
      // A round in progress finishes (its steps are bounded by node timeouts); the lease is released.
      await healer.stop();
      await membership.stop();
      await announcement.leave();
      await dataFormat.stop();
      await wal.close();
      await metadata.close();
      return { cut: !finished };
    },
  };
}
