/**
 * Wiring of the tiering parts (internal/tiering, internal/healer/tiering-job.ts) from configuration: the
 * gateway's access recorder options and the healer's tiering job, which rewrites documents through a write
 * service and reads them through a read service of its own.
 */
import type { NodePool } from '../cluster/node-pool.js';
import type { StrataConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { DataFormatSource } from '../core/data-format.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import { TieringJob } from '../healer/tiering-job.js';
import type { Logger } from '../log/logger.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { StaticHotFieldPolicy } from '../policy/hot-fields.js';
import { ReadService } from '../readservice/read-service.js';
import type { AccessRecorderOptions } from '../tiering/access-recorder.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';
import { WriteService, type WriteServiceOptions } from '../writeservice/write-service.js';

export function accessRecorderOptions(config: Readonly<StrataConfig>): AccessRecorderOptions {
  return {
    halfLifeMs: config.tieringHalfLifeMs,
    flushIntervalMs: config.tieringFlushIntervalMs,
    policy: {
      halfLifeMs: config.tieringHalfLifeMs,
      promoteScore: config.tieringPromoteScore,
      demoteScore: config.tieringDemoteScore,
      dwellMs: config.tieringDwellMs,
    },
  };
}

export function buildTieringJob(
  config: Readonly<StrataConfig>,
  parts: { metadata: MetadataStore; wal: WriteAheadLog; pool: NodePool; ec: ErasureCode; clock: Clock; log: Logger; dataFormat?: DataFormatSource },
  writeOptions: WriteServiceOptions,
): TieringJob {
  const { metadata, wal, pool, ec, clock } = parts;
  const log = parts.log.child({ component: 'tiering' });
  const writes = new WriteService({ metadata, wal, pool, ec, clock, log, options: writeOptions, ...(parts.dataFormat ? { dataFormat: parts.dataFormat } : {}) });
  const reads = new ReadService({
    metadata,
    pool,
    ec,
    clock,
    log,
    options: { nodeTimeoutMs: config.nodeTimeoutMs, hedgeAfterMs: config.hedgeAfterMs, depthMax: config.depthMax, membersMax: config.membersMax },
  });
  return new TieringJob({
    metadata,
    pool,
    clock,
    log,
    writes,
    reads,
    staticPolicy: new StaticHotFieldPolicy(config.defaultHotFields, config.hotFieldsByPrefix),
    settings: config,
    nodeTimeoutMs: config.nodeTimeoutMs,
  });
}
