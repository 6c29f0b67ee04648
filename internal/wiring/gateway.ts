/**
 * Wiring a gateway from its parts. This module and all-in-one.ts are the only places that pick concrete
 * implementations; everything else takes interfaces.
 */
import type { Hono } from 'hono';
import { createGatewayApp } from '../api/app.js';
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
import { ReadService } from '../readservice/read-service.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';
import { DocumentOps } from '../writeservice/document-ops.js';
import { WriteService, type WriteHooks } from '../writeservice/write-service.js';
import { ConfigError } from '../config/config.js';

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
}

export interface Gateway {
  app: Hono;
  deps: GatewayDeps;
  writes: WriteService;
  /** The watch-fed manifest cache the gateway reads through; close it before the metadata store. */
  manifests: ManifestCache;
}

export function buildGateway(parts: GatewayParts): Gateway {
  const { config, metadata, wal, pool, ec, clock, log } = parts;
  validateHotFieldConfig(config);
  const writes = new WriteService({
    metadata,
    wal,
    pool,
    ec,
    clock,
    log,
    // The commit deadline is the healer's GC grace period: see WriteServiceOptions.commitDeadlineMs.
    options: { nodeTimeoutMs: config.nodeTimeoutMs, commitDeadlineMs: config.gcGraceMs },
    ...(parts.hooks ? { hooks: parts.hooks } : {}),
  });
  // Every gateway reads manifests through a cache fed by the store's watch (architecture.md, "Read").
  const manifests = new ManifestCache(metadata, { log: log.child({ component: 'manifest-cache' }) });
  manifests.start();
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
  });
  const policy = new StaticHotFieldPolicy(config.defaultHotFields, config.hotFieldsByPrefix);
  const ops = new DocumentOps(writes, reads, policy, config.defaultStrategy, {
    bodyBytesMax: config.bodyBytesMax,
    depthMax: config.depthMax,
    membersMax: config.membersMax,
  });
  const deps: GatewayDeps = { config, metadata, wal, pool, reads, ops, clock, log, backends: parts.backends, healerLockName: HEALER_LOCK };
  const app = createGatewayApp(deps, parts.repairBacklog ? { repairBacklog: parts.repairBacklog } : {});
  return { app, deps, writes, manifests };
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
