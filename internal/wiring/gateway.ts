/**
 * Wiring a gateway from its parts. This module and all-in-one.ts are the only places that pick concrete
 * implementations; everything else takes interfaces.
 */
import type { Hono } from 'hono';
import { createGatewayApp } from '../api/app.js';
import { BodyBudget } from '../api/body-budget.js';
import type { GatewayDeps } from '../api/gateway-deps.js';
import type { NodePool } from '../cluster/node-pool.js';
import type { StrataConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import { HEALER_LOCK } from '../healer/healer.js';
import { HOT_FIELD_LIST, parseFieldPaths } from '../json/pointer.js';
import type { Logger } from '../log/logger.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { StaticHotFieldPolicy } from '../policy/hot-fields.js';
import { ManifestCache } from '../readservice/manifest-cache.js';
import { PartCache } from '../readservice/part-cache.js';
import { ReadService } from '../readservice/read-service.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';
import { DocumentOps } from '../writeservice/document-ops.js';
import { WriteService, type WriteHooks, type WriteServiceOptions } from '../writeservice/write-service.js';
import { AccessRecorder } from '../tiering/access-recorder.js';
import { LearnedHotFieldPolicy } from '../policy/learned-hot-fields.js';
import { accessRecorderOptions } from './tiering.js';
import { ConfigError } from '../config/config.js';
import type { Registry } from 'prom-client';
import type { RequestContext } from '../log/request-context.js';
import { GatewayMetrics, watchNodePool } from '../metrics/gateway-metrics.js';
import { GatewayHttpMetrics } from '../metrics/http-metrics.js';
import { watchCapacity } from '../metrics/capacity-metrics.js';
import type { GatewayCapacity } from '../api/capacity-view.js';
import type { DataFormatSource } from '../core/data-format.js';

export interface GatewayParts {
  config: Readonly<StrataConfig>;
  metadata: MetadataStore;
  wal: WriteAheadLog;
  pool: NodePool;
  ec: ErasureCode;
  clock: Clock;
  log: Logger;
  backends: { metadata: string; wal: string };
  hooks?: WriteHooks;
  repairBacklog?: () => number | null;
  /**
   * The process's metrics registry and request context: request ids, request logs and /metrics on the app, and
   * the write and read paths' metrics. Without it the gateway works the same, unmeasured.
   */
  observability?: { registry: Registry; context: RequestContext };
  /** The local disk's reserve (the all-in-one): writes are admitted against it, /cluster and /metrics show it. */
  capacity?: GatewayCapacity;
  /**
   * The cluster's data format: which encodings this gateway's writers may use (internal/core/data-format.ts). The
   * all-in-one passes fixedDataFormat(DATA_FORMAT_MAX); a cluster gateway the identity record's live version.
   */
  dataFormat?: DataFormatSource;
}

export interface Gateway {
  app: Hono;
  deps: GatewayDeps;
  writes: WriteService;
  /** The watch-fed manifest cache the gateway reads through; close it before the metadata store. */
  manifests: ManifestCache;
  /** Access statistics and the cached tiering records; `stop()` it (a last flush) before closing the store. */
  tiering: AccessRecorder;
}

export function buildGateway(parts: GatewayParts): Gateway {
  const { config, metadata, wal, pool, ec, clock, log, observability } = parts;
  validateHotFieldConfig(config);
  const metrics = observability ? new GatewayMetrics(observability.registry, observability.context) : null;
  const writes = new WriteService({
    metadata,
    wal,
    pool,
    ec,
    clock,
    log,
    // The commit deadline is the healer's GC grace period: see WriteServiceOptions.commitDeadlineMs.
    options: writeServiceOptions(config),
    ...(parts.hooks ? { hooks: parts.hooks } : {}),
    ...(metrics ? { observer: metrics } : {}),
    ...(parts.capacity ? { capacity: parts.capacity } : {}),
    ...(parts.dataFormat ? { dataFormat: parts.dataFormat } : {}),
  });
  // Every gateway reads manifests through a cache fed by the store's watch (architecture.md, "Read").
  const manifests = new ManifestCache(metadata, { log: log.child({ component: 'manifest-cache' }) });
  manifests.start();
  const tiering = new AccessRecorder(
    {
      metadata,
      clock,
      log: log.child({ component: 'tiering' }),
      base: new StaticHotFieldPolicy(config.defaultHotFields, config.hotFieldsByPrefix),
    },
    accessRecorderOptions(config),
  );
  tiering.start();
  const partCache = new PartCache(config.readCacheBytes);
  const reads = new ReadService({
    metadata,
    manifests,
    pool,
    ec,
    clock,
    log,
    options: {
      nodeTimeoutMs: config.nodeTimeoutMs,
      hedgeAfterMs: config.hedgeAfterMs,
      depthMax: config.depthMax,
      membersMax: config.membersMax,
    },
    ...(metrics ? { observer: metrics } : {}),
    access: tiering,
    parts: partCache,
  });
  const staticPolicy = new StaticHotFieldPolicy(config.defaultHotFields, config.hotFieldsByPrefix);
  const policy = new LearnedHotFieldPolicy(staticPolicy, (prefix) => tiering.record(prefix));
  const ops = new DocumentOps(writes, reads, policy, config.defaultStrategy, {
    bodyBytesMax: config.bodyBytesMax,
    depthMax: config.depthMax,
    membersMax: config.membersMax,
  }, { clock, access: tiering });
  const bodies = new BodyBudget(config.bodyBufferBytesMax);
  const deps: GatewayDeps = { config, metadata, wal, pool, reads, ops, clock, log, backends: parts.backends, healerLockName: HEALER_LOCK, tiering, bodies };
  if (parts.capacity) deps.capacity = parts.capacity;
  if (parts.dataFormat) deps.dataFormat = parts.dataFormat;
  if (metrics && observability) {
    metrics.watchManifestCache(manifests);
    metrics.watchPartCache(partCache);
    metrics.watchBodyBudget(bodies);
    watchNodePool(observability.registry, pool);
    watchCapacity(observability.registry, pool, parts.capacity, metadata);
  }
  const app = createGatewayApp(deps, {
    ...(parts.repairBacklog ? { repairBacklog: parts.repairBacklog } : {}),
    ...(observability ? { observability: { ...observability, http: new GatewayHttpMetrics(observability.registry) } } : {}),
  });
  return { app, deps, writes, manifests, tiering };
}

/** The write protocol's options from configuration (the healer's rewrites use the same ones). */
export function writeServiceOptions(config: Readonly<StrataConfig>): WriteServiceOptions {
  return {
    nodeTimeoutMs: config.nodeTimeoutMs,
    commitDeadlineMs: config.gcGraceMs,
    cold: { codec: config.coldCompression, minSavingShare: config.compressionMinSaving, withReplicasBytesMax: config.inlineColdBytesMax },
  };
}

/** Hot-field lists from configuration are checked once at start-up, so a typo never becomes a 422 later. */
function validateHotFieldConfig(config: Readonly<StrataConfig>): void {
  const check = (fields: readonly string[], where: string): void => {
    try {
      parseFieldPaths(fields, 'INVALID_HOT_FIELDS', HOT_FIELD_LIST);
    } catch (error) {
      throw new ConfigError(`${where}: ${(error as Error).message}`);
    }
  };
  check(config.defaultHotFields, 'STRATA_HOT_FIELDS');
  for (const [prefix, fields] of config.hotFieldsByPrefix) check(fields, `STRATA_HOT_FIELDS_BY_PREFIX["${prefix}"]`);
}
