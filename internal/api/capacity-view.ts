/**
 * Whether this gateway can take writes, and why not: one answer for GET /health/ready, GET /cluster and the
 * strata_writable metric. A gateway is not writable when its own disk is down to its reserve (the all-in-one,
 * internal/reserve), when fewer storage nodes than a write quorum have room for new blobs, or when the metadata store's
 * own quota is exhausted (etcd's NOSPACE alarm). It stays ready either
 * way: reads and deletes work, and deletes are how space is freed.
 */
import type { NodePool } from '../cluster/node-pool.js';
import { EC_WRITE_QUORUM } from '../core/limits.js';
import type { CapacityStatus, ReserveView } from '../reserve/disk-reserve.js';
import type { MetadataStore } from '../metadata/metadata-store.js';

/** The local disk's reserve as the gateway sees it (absent when the gateway keeps no data: cluster mode). */
export interface GatewayCapacity {
  status(): CapacityStatus;
  view(): ReserveView;
  admit(bytes: number, what: string): Promise<void>;
}

export interface Writability extends CapacityStatus {
  /** Storage nodes that are up, not draining and have room for new blobs. */
  nodesWithRoom: number;
  local: ReserveView | null;
}

export function writability(pool: NodePool, capacity: GatewayCapacity | undefined, metadata?: Pick<MetadataStore, 'space'>): Writability {
  const local = capacity?.view() ?? null;
  const nodes = pool.capacity();
  const reasons: string[] = [];
  if (local !== null && !local.writable && local.reason !== null) reasons.push(local.reason);
  // A metadata store with a quota of its own (etcd's NOSPACE alarm) refuses every commit.
  const metadataSpace = metadata?.space?.();
  if (metadataSpace !== undefined && !metadataSpace.writable && metadataSpace.reason !== null) reasons.push(metadataSpace.reason);
  // Too few nodes up is not a capacity problem (readiness reports it); too few with room is.
  if (nodes.nodesWithRoom < EC_WRITE_QUORUM && nodes.nodesUp >= EC_WRITE_QUORUM) {
    const full = pool.views().flatMap((v) => (v.fullReason !== null ? [`${v.id}: ${v.fullReason}`] : []));
    reasons.push(
      `only ${nodes.nodesWithRoom} storage nodes have room for new blobs; ${EC_WRITE_QUORUM} are needed for an erasure-coded write` +
        (full.length > 0 ? ` (${full.join('; ')})` : ''),
    );
  }
  return { writable: reasons.length === 0, reason: reasons.length === 0 ? null : reasons.join('; '), nodesWithRoom: nodes.nodesWithRoom, local };
}
