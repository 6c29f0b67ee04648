/**
 * Configuration: the only module that reads process.env. Every variable is parsed and validated here with a
 * message naming the variable, and the result is frozen. README.md lists every variable.
 */
import os from 'node:os';
import path from 'node:path';
import { LIMITS } from '../core/limits.js';
import { STRATEGIES, type Strategy } from '../manifest/manifest.js';
import { accessSettings, type AccessSettings } from './access-config.js';
import { tieringSettings, type TieringSettings } from './tiering-config.js';
import { coldStorageSettings, type ColdStorageConfig } from './cold-storage-config.js';
import { RESERVE_LIMITS } from '../reserve/reserve-sizing.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const DEFAULT_HOT_FIELDS: readonly string[] = [
  'like_count',
  'view_count',
  'inventory_count',
  'update_count',
  'status_code',
  'battery_level',
  'device_id',
  'is_active',
  'last_sync_ts',
  'firmware_version',
];

export interface NodeAddress {
  id: string;
  address: string;
  zone?: string;
}

/** Access control, TLS and load limits: see access-config.ts. */
export interface StrataConfig extends AccessSettings, TieringSettings, ColdStorageConfig {
  dataDir: string;
  host: string;
  port: number;
  /** First port of the all-in-one storage nodes (node-1 listens here, node-2 on the next port, ...); 0 = free ports. */
  nodePortBase: number;
  nodeCount: number;
  /** all-in-one only: 'local' calls the in-process nodes directly, 'http' goes through their HTTP servers. */
  nodeTransport: 'local' | 'http';
  /** Shared secret on every storage-node call; null = generated and kept in the data directory (all-in-one). */
  clusterToken: string | null;
  /** Separate-process mode: the storage nodes a gateway or healer talks to. */
  nodes: NodeAddress[];
  /** Separate-process mode: this storage node's id and zone. */
  nodeId: string;
  nodeZone: string | undefined;
  /**
   * Separate-process mode: the URL this storage node registers for gateways and healers to dial; null = derived
   * from the address it listens on (defaultAdvertiseUrl).
   */
  advertiseUrl: string | null;
  /** A storage node heartbeats every ttl/3; one silent for this long is down (node registry). */
  nodeTtlMs: number;
  /** The healer rebuilds the blobs of a node down this long elsewhere, when spare active nodes exist. */
  nodeDownGraceMs: number;
  /** Healer rebalancing onto emptier nodes: blobs and bytes moved per healer round at most. */
  rebalanceBlobsPerRoundMax: number;
  rebalanceBytesPerRoundMax: number;
  /** A node is rebalanced onto only when it is short of the average by at least this many bytes. */
  rebalanceDeficitBytesMin: number;
  defaultStrategy: Strategy;
  defaultHotFields: readonly string[];
  /** Hot fields pinned per key prefix; the longest matching prefix wins. */
  hotFieldsByPrefix: ReadonlyMap<string, readonly string[]>;
  bodyBytesMax: number;
  /** Bytes of request and response bodies one gateway holds at once (api/body-budget.ts); beyond it 503 OVERLOADED. */
  bodyBufferBytesMax: number;
  /** A connection that makes no progress (a client that stopped sending or reading) this long is closed. */
  socketIdleTimeoutMs: number;
  depthMax: number;
  membersMax: number;
  nodeTimeoutMs: number;
  /** A read asks a second replica (or the parity shards) when the first answer takes longer than this. */
  hedgeAfterMs: number;
  /** Bytes of verified document parts each gateway keeps for documents read again (0: no cache). */
  readCacheBytes: number;
  nodeProbeIntervalMs: number;
  healerIntervalMs: number;
  /** Full audit + inventory GC pass period (each round in between only resolves intents and reported keys). */
  auditIntervalMs: number;
  /** Healer leadership lease; a new leader takes over this long after the old one stopped renewing. */
  healerLeaseMs: number;
  /** An intent with no outcome this long is resolved by the healer (committed or rolled back). */
  intentTimeoutMs: number;
  /** A blob no manifest references is deleted once it is older than this. */
  gcGraceMs: number;
  tombstoneGraceMs: number;
  scrubIntervalMs: number;
  scrubBytesPerSecMax: number;
  /**
   * Bound on each data directory's space reserve (internal/reserve: sized from what is stored, at most a quarter
   * of the filesystem). 0 keeps no ballast file; writes are still refused before the disk is full.
   */
  diskReserveBytesMax: number;
  /** GET /watch: change-feed streams one gateway serves at once (503 TOO_MANY_WATCHERS beyond). */
  watchStreamsMax: number;
  /** GET /watch: a comment line is sent after this long without an event, so proxies keep the stream open. */
  watchHeartbeatMs: number;
  /** GET /watch: bytes a stream may have waiting for its client; beyond it the stream pauses (flow control). */
  watchBufferBytesMax: number;
  /** GET /watch: a client that leaves a full buffer unread this long is dropped (WATCH_TOO_SLOW). */
  watchStallMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** etcd client URLs; empty = the embedded metadata store in the data directory. */
  etcdEndpoints: string[];
  /** Key prefix of this cluster in etcd (several clusters may share one etcd). */
  etcdPrefix: string;
  /** Kafka/Redpanda bootstrap brokers (host:port); empty = the embedded WAL in the data directory. */
  kafkaBrokers: string[];
  kafkaTopic: string;
  /** For a topic Strata creates; an existing topic is used as it is. */
  kafkaPartitions: number;
  /** For a topic Strata creates; 0 = min(3, brokers). */
  kafkaReplicationFactor: number;
  /**
   * Test-only fault hook (STRATA_TEST_PAUSE_BEFORE_COMMIT_MS): a gateway holds every write this long after its
   * intent and blobs are written and before its commit, so that a cluster test can SIGKILL the process inside that
   * window. 0 (the default) = no hook. Never set it in production: every write would stall.
   */
  testPauseBeforeCommitMs: number;
  /**
   * On SIGTERM/SIGINT a process stops accepting, finishes in-flight requests and closes its stores within this
   * bound; past it, what is left is cut and the process exits with status 1.
   */
  shutdownGraceMs: number;
  /** Separate-process healer: port of its small HTTP server (/health, /metrics); 0 = a free port. */
  healerPort: number;
}

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw.trim());
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function strategyVar(env: Env, name: string, fallback: Strategy): Strategy {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(STRATEGIES as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name} must be one of ${STRATEGIES.join(', ')}, got "${raw}"`);
  }
  return raw as Strategy;
}

function listVar(raw: string | undefined): string[] | null {
  if (raw === undefined || raw.trim() === '') return null;
  return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function hotFieldsByPrefixVar(env: Env): Map<string, readonly string[]> {
  const name = 'STRATA_HOT_FIELDS_BY_PREFIX';
  const raw = env[name];
  const result = new Map<string, readonly string[]>();
  if (raw === undefined || raw.trim() === '') return result;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(`${name} must be a JSON object like {"user:": ["like_count", "/stats/views"]}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`${name} must be a JSON object mapping key prefixes to lists of field paths`);
  }
  for (const [prefix, fields] of Object.entries(parsed as Record<string, unknown>)) {
    if (!Array.isArray(fields) || !fields.every((f) => typeof f === 'string' && f !== '')) {
      throw new ConfigError(`${name}: the value for prefix "${prefix}" must be a list of field paths`);
    }
    result.set(prefix, Object.freeze([...(fields as string[])]));
  }
  return result;
}

function nodesVar(env: Env): NodeAddress[] {
  const name = 'STRATA_NODES';
  const list = listVar(env[name]);
  if (list === null) return [];
  return list.map((entry) => {
    // id=http://host:port[@zone]
    const match = /^([A-Za-z0-9_-]{1,64})=(https?:\/\/[^@\s]+)(?:@([A-Za-z0-9_-]{1,64}))?$/.exec(entry);
    if (!match) throw new ConfigError(`${name}: "${entry}" is not of the form node-1=http://127.0.0.1:8101[@zone]`);
    const node: NodeAddress = { id: match[1]!, address: match[2]!.replace(/\/$/, '') };
    if (match[3] !== undefined) node.zone = match[3];
    return node;
  });
}

function nodeLabelVar(env: Env, name: string, fallback: string | undefined): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new ConfigError(`${name} must be 1 to 64 of A-Z a-z 0-9 _ -, got "${raw}"`);
  return raw;
}

/**
 * The default of STRATA_ADVERTISE_URL: http://STRATA_HOST:<port the node listens on>. A wildcard listen address
 * cannot be dialled from another machine, so this machine's host name stands in for it.
 */
export function defaultAdvertiseUrl(host: string, port: number): string {
  const dialHost = host === '0.0.0.0' || host === '::' || host === '' ? os.hostname() : host;
  return `http://${dialHost.includes(':') ? `[${dialHost}]` : dialHost}:${port}`;
}

function advertiseUrlVar(env: Env): string | null {
  const name = 'STRATA_ADVERTISE_URL';
  const raw = env[name];
  if (raw === undefined || raw === '') return null;
  if (!/^https?:\/\/[^\s/@]+\/?$/.test(raw)) throw new ConfigError(`${name}: "${raw}" is not a base URL like http://10.0.0.7:8101`);
  return raw.replace(/\/$/, '');
}

function etcdEndpointsVar(env: Env): string[] {
  const list = listVar(env['STRATA_ETCD_ENDPOINTS']) ?? [];
  for (const url of list) {
    if (!/^https?:\/\/[^\s/]+$/.test(url.replace(/\/$/, ''))) {
      throw new ConfigError(`STRATA_ETCD_ENDPOINTS: "${url}" is not an etcd client URL like http://127.0.0.1:2379`);
    }
  }
  return list.map((url) => url.replace(/\/$/, ''));
}

function kafkaBrokersVar(env: Env): string[] {
  const list = listVar(env['STRATA_KAFKA_BROKERS']) ?? [];
  for (const broker of list) {
    if (!/^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$/.test(broker)) {
      throw new ConfigError(`STRATA_KAFKA_BROKERS: "${broker}" is not host:port like 127.0.0.1:9092`);
    }
  }
  return list;
}

function kafkaTopicVar(env: Env): string {
  const topic = env['STRATA_KAFKA_TOPIC'] || 'strata-wal';
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(topic)) throw new ConfigError(`STRATA_KAFKA_TOPIC: "${topic}" is not a valid Kafka topic name`);
  return topic;
}

function logLevelVar(env: Env): StrataConfig['logLevel'] {
  const raw = env['STRATA_LOG_LEVEL'] ?? 'info';
  const levels = ['debug', 'info', 'warn', 'error', 'silent'];
  if (!levels.includes(raw)) throw new ConfigError(`STRATA_LOG_LEVEL must be one of ${levels.join(', ')}, got "${raw}"`);
  return raw as StrataConfig['logLevel'];
}

export function loadConfig(env: Env = process.env, overrides: Partial<StrataConfig> = {}): Readonly<StrataConfig> {
  const transport = env['STRATA_NODE_TRANSPORT'] ?? 'local';
  if (transport !== 'local' && transport !== 'http') {
    throw new ConfigError(`STRATA_NODE_TRANSPORT must be "local" or "http", got "${transport}"`);
  }
  const token = env['STRATA_CLUSTER_TOKEN'];
  if (token !== undefined && token !== '' && token.length < 16) {
    throw new ConfigError('STRATA_CLUSTER_TOKEN must be at least 16 characters');
  }
  const config: StrataConfig = {
    dataDir: path.resolve(env['STRATA_DATA_DIR'] ?? './data'),
    host: env['STRATA_HOST'] ?? '127.0.0.1',
    port: intVar(env, 'STRATA_PORT', 8000, 0, 65535),
    nodePortBase: intVar(env, 'STRATA_NODE_PORT_BASE', 8101, 0, 65530),
    nodeCount: intVar(env, 'STRATA_NODE_COUNT', 6, 6, 64),
    nodeTransport: transport,
    clusterToken: token === undefined || token === '' ? null : token,
    nodes: nodesVar(env),
    nodeId: nodeLabelVar(env, 'STRATA_NODE_ID', 'node-1')!,
    nodeZone: nodeLabelVar(env, 'STRATA_NODE_ZONE', undefined),
    advertiseUrl: advertiseUrlVar(env),
    // etcd leases have whole seconds and a floor of about 2 s.
    nodeTtlMs: intVar(env, 'STRATA_NODE_TTL_MS', 10_000, 2_000, 600_000),
    nodeDownGraceMs: intVar(env, 'STRATA_NODE_DOWN_GRACE_MS', 10 * 60_000, 10, 30 * 86_400_000),
    rebalanceBlobsPerRoundMax: intVar(env, 'STRATA_REBALANCE_BLOBS_PER_ROUND_MAX', 64, 0, 1_000_000),
    rebalanceBytesPerRoundMax: intVar(env, 'STRATA_REBALANCE_BYTES_PER_ROUND_MAX', 64 * 1024 * 1024, 0, 64 * 1024 ** 3),
    rebalanceDeficitBytesMin: intVar(env, 'STRATA_REBALANCE_DEFICIT_BYTES_MIN', 256 * 1024 * 1024, 0, 1024 ** 4),
    defaultStrategy: strategyVar(env, 'STRATA_DEFAULT_STRATEGY', 'field_hybrid'),
    defaultHotFields: Object.freeze(listVar(env['STRATA_HOT_FIELDS']) ?? [...DEFAULT_HOT_FIELDS]),
    hotFieldsByPrefix: hotFieldsByPrefixVar(env),
    bodyBytesMax: intVar(env, 'STRATA_BODY_BYTES_MAX', LIMITS.bodyBytesMax, 1024, 256 * 1024 * 1024),
    bodyBufferBytesMax: intVar(env, 'STRATA_BODY_BUFFER_BYTES_MAX', 256 * 1024 * 1024, 1024, 64 * 1024 ** 3),
    socketIdleTimeoutMs: intVar(env, 'STRATA_SOCKET_IDLE_TIMEOUT_MS', 60_000, 100, 3_600_000),
    depthMax: intVar(env, 'STRATA_DEPTH_MAX', LIMITS.depthMax, 2, 1024),
    membersMax: intVar(env, 'STRATA_MEMBERS_MAX', LIMITS.membersMax, 16, 10_000_000),
    nodeTimeoutMs: intVar(env, 'STRATA_NODE_TIMEOUT_MS', 5000, 10, 600_000),
    hedgeAfterMs: intVar(env, 'STRATA_HEDGE_AFTER_MS', 100, 1, 60_000),
    readCacheBytes: intVar(env, 'STRATA_READ_CACHE_BYTES', 64 * 1024 * 1024, 0, 64 * 1024 * 1024 * 1024),
    nodeProbeIntervalMs: intVar(env, 'STRATA_NODE_PROBE_INTERVAL_MS', 1000, 10, 60_000),
    healerIntervalMs: intVar(env, 'STRATA_HEALER_INTERVAL_MS', 2000, 10, 3_600_000),
    auditIntervalMs: intVar(env, 'STRATA_AUDIT_INTERVAL_MS', 60_000, 10, 86_400_000),
    healerLeaseMs: intVar(env, 'STRATA_HEALER_LEASE_MS', 10_000, 100, 600_000),
    intentTimeoutMs: intVar(env, 'STRATA_INTENT_TIMEOUT_MS', 60_000, 10, 86_400_000),
    gcGraceMs: intVar(env, 'STRATA_GC_GRACE_MS', 15 * 60_000, 10, 30 * 86_400_000),
    tombstoneGraceMs: intVar(env, 'STRATA_TOMBSTONE_GRACE_MS', 86_400_000, 10, 365 * 86_400_000),
    scrubIntervalMs: intVar(env, 'STRATA_SCRUB_INTERVAL_MS', 3_600_000, 0, 30 * 86_400_000),
    scrubBytesPerSecMax: intVar(env, 'STRATA_SCRUB_BYTES_PER_SEC_MAX', 32 * 1024 * 1024, 1024, 10 * 1024 ** 3),
    diskReserveBytesMax: intVar(env, 'STRATA_DISK_RESERVE_BYTES_MAX', RESERVE_LIMITS.reserveBytesMax, 0, 1024 ** 4),
    watchStreamsMax: intVar(env, 'STRATA_WATCH_STREAMS_MAX', 256, 1, 100_000),
    watchHeartbeatMs: intVar(env, 'STRATA_WATCH_HEARTBEAT_MS', 15_000, 10, 600_000),
    watchBufferBytesMax: intVar(env, 'STRATA_WATCH_BUFFER_BYTES_MAX', 4 * 1024 * 1024, 1024, 1024 ** 3),
    watchStallMs: intVar(env, 'STRATA_WATCH_STALL_MS', 30_000, 10, 3_600_000),
    logLevel: logLevelVar(env),
    etcdEndpoints: etcdEndpointsVar(env),
    etcdPrefix: env['STRATA_ETCD_PREFIX'] || 'strata/',
    kafkaBrokers: kafkaBrokersVar(env),
    kafkaTopic: kafkaTopicVar(env),
    kafkaPartitions: intVar(env, 'STRATA_KAFKA_PARTITIONS', 6, 1, 1024),
    kafkaReplicationFactor: intVar(env, 'STRATA_KAFKA_REPLICATION_FACTOR', 0, 0, 16),
    testPauseBeforeCommitMs: intVar(env, 'STRATA_TEST_PAUSE_BEFORE_COMMIT_MS', 0, 0, 600_000),
    shutdownGraceMs: intVar(env, 'STRATA_SHUTDOWN_GRACE_MS', 10_000, 100, 600_000),
    healerPort: intVar(env, 'STRATA_HEALER_PORT', 0, 0, 65535),
    ...accessSettings(env, (message) => new ConfigError(message)),
    ...tieringSettings(env, (message) => new ConfigError(message)),
    ...coldStorageSettings(env, (message) => new ConfigError(message)),
    ...overrides,
  };
  if (config.gcGraceMs < config.intentTimeoutMs) {
    throw new ConfigError('STRATA_GC_GRACE_MS must be at least STRATA_INTENT_TIMEOUT_MS, so GC never races a live write');
  }
  if (config.socketIdleTimeoutMs <= config.watchHeartbeatMs) {
    throw new ConfigError('STRATA_SOCKET_IDLE_TIMEOUT_MS must be longer than STRATA_WATCH_HEARTBEAT_MS, or idle change feeds would be cut');
  }
  return Object.freeze(config);
}
