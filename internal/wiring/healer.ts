import { randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import { METRICS_PATH } from '../metrics/http-metrics.js';
import { renderMetrics } from '../metrics/registry.js';
import type { NodePool } from '../cluster/node-pool.js';
import type { StrataConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { DataFormatSource } from '../core/data-format.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import { Healer, type HealerOptions } from '../healer/healer.js';
import { buildTieringJob } from './tiering.js';
import { writeServiceOptions } from './gateway.js';
import type { Logger } from '../log/logger.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';

/**
 * A healer configured from `config`, with a holder id unique to this process (`holderId`: also its id in the
 * process registry, so that an operator finds the leader there). `dataFormat` is what its rewrites write
 * (internal/core/data-format.ts); without one they write format 1.
 */
export function buildHealer(
  config: Readonly<StrataConfig>,
  parts: { metadata: MetadataStore; wal: WriteAheadLog; pool: NodePool; ec: ErasureCode; clock: Clock; log: Logger; dataFormat?: DataFormatSource },
  holderId = healerHolderId(),
): Healer {
  return new Healer({
    // `dataFormat` rides along: the repairs take it where the healer has a parameter for it.
    ...parts,
    tiering: buildTieringJob(config, parts, writeServiceOptions(config)),
    options: healerOptions(config, holderId),
  });
}

/** The healer's options as `config` sets them. */
export function healerOptions(config: Readonly<StrataConfig>, holderId: string): HealerOptions {
  return {
    holderId,
    intervalMs: config.healerIntervalMs,
    auditIntervalMs: config.auditIntervalMs,
    leaseMs: config.healerLeaseMs,
    intentTimeoutMs: config.intentTimeoutMs,
    gcGraceMs: config.gcGraceMs,
    tombstoneGraceMs: config.tombstoneGraceMs,
    nodeTimeoutMs: config.nodeTimeoutMs,
    nodeDownGraceMs: config.nodeDownGraceMs,
    rebalanceBlobsPerRoundMax: config.rebalanceBlobsPerRoundMax,
    rebalanceBytesPerRoundMax: config.rebalanceBytesPerRoundMax,
    rebalanceDeficitBytesMin: config.rebalanceDeficitBytesMin,
  };
}

/** A healer id unique to this process. */
export function healerHolderId(): string {
  return `healer-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * The separate healer process's small HTTP server (STRATA_HEALER_PORT): `GET /health` (alive, leading or not, the
 * backlog of its last audit) and `GET /metrics`. Everything else is 404 in the API's error shape.
 */
export function createHealerApp(healer: Healer, registry: Registry): Hono {
  const app = new Hono();
  app.get('/health', (c) =>
    c.json({ status: 'healthy', service: 'healer', leader: healer.isLeader, repair_backlog: healer.backlog }),
  );
  app.get(METRICS_PATH, async (c) => {
    const { body, contentType } = await renderMetrics(registry);
    return c.body(body, 200, { 'content-type': contentType });
  });
  app.notFound((c) =>
    c.json({ error: { code: 'ROUTE_NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}; the healer serves GET /health and GET /metrics` } }, 404),
  );
  return app;
}
