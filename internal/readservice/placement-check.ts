/**
 * Checks, blob by blob, that a manifest's replicas and shards are really where it says: each node is asked to
 * verify its copy (the node re-reads the bytes and checks their checksum). This is what `GET /stat/KEY?verify=true`
 * and `strata verify` report; a manifest's own states are only what the healer last saw.
 */
import { EC_DATA_SHARDS } from '../core/limits.js';
import type { NodePool } from '../cluster/node-pool.js';
import type { BlobRef, Manifest } from '../manifest/manifest.js';

/** What a node said about one blob just now; `unreachable` when the node is down or did not answer in time. */
export type LiveBlobState = 'ok' | 'missing' | 'corrupt' | 'unreachable';

export interface CheckedRef {
  ref: BlobRef;
  state: LiveBlobState;
}

export interface Protection {
  /** Every replica and shard answered ok. */
  full: boolean;
  /** Enough answered ok to read the whole document (one hot replica, four shards or one cold replica). */
  readable: boolean;
  hot: { ok: number; total: number };
  cold: { ok: number; total: number; needed: number };
}

export interface PlacementCheck {
  hot: CheckedRef[];
  cold: CheckedRef[];
  protection: Protection;
}

export const PLACEMENT_CHECK_LIMITS = {
  /** One node's answer about one blob; a node slower than this counts as unreachable for this check. */
  verifyTimeoutMs: 5_000,
} as const;

export async function checkPlacement(manifest: Manifest, pool: NodePool): Promise<PlacementCheck> {
  const check = async (ref: BlobRef): Promise<CheckedRef> => {
    const client = pool.client(ref.node);
    if (client === undefined || !pool.isHealthy(ref.node)) return { ref, state: 'unreachable' };
    try {
      const state = await client.verify(ref.blob, { timeoutMs: PLACEMENT_CHECK_LIMITS.verifyTimeoutMs });
      return { ref, state };
    } catch {
      return { ref, state: 'unreachable' };
    }
  };
  const [hot, cold] = await Promise.all([Promise.all(manifest.hot.map(check)), Promise.all(manifest.cold.map(check))]);
  return { hot, cold, protection: protectionOf(hot, cold) };
}

export function protectionOf(hot: readonly CheckedRef[], cold: readonly CheckedRef[]): Protection {
  const hotOk = hot.filter((c) => c.state === 'ok').length;
  const coldOk = cold.filter((c) => c.state === 'ok').length;
  // Erasure-coded shards need any EC_DATA_SHARDS of them; a cold part kept as whole copies needs one.
  const sharded = cold.some((c) => c.ref.part.startsWith('shard-'));
  const coldNeeded = cold.length === 0 ? 0 : sharded ? EC_DATA_SHARDS : 1;
  const hotReadable = hot.length === 0 || hotOk >= 1;
  return {
    full: hotOk === hot.length && coldOk === cold.length,
    readable: hotReadable && coldOk >= coldNeeded,
    hot: { ok: hotOk, total: hot.length },
    cold: { ok: coldOk, total: cold.length, needed: coldNeeded },
  };
}
