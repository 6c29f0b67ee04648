import { randomBytes } from 'node:crypto';
import type { NodePool } from '../cluster/node-pool.js';
import type { StrataConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import { Healer } from '../healer/healer.js';
import type { Logger } from '../log/logger.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';

/** A healer configured from `config`, with a holder id unique to this process. */
export function buildHealer(
  config: Readonly<StrataConfig>,
  parts: { metadata: MetadataStore; wal: WriteAheadLog; pool: NodePool; ec: ErasureCode; clock: Clock; log: Logger },
): Healer {
  return new Healer({
    ...parts,
    options: {
      holderId: `healer-${process.pid}-${randomBytes(4).toString('hex')}`,
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
    },
  });
}
