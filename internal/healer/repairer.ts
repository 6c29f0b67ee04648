/**
 * Audit and repair of one manifest (architecture.md, "Healer"): every referenced blob is checked against what
 * its node holds; missing or corrupt hot replicas (and cold copies of a small cold part) are copied from a good
 * one, missing or corrupt shards are rebuilt from any four. The repaired manifest is committed with the same version (placement changes, the
 * version never does), fenced by the healer's leadership term.
 */
import { commitSameVersion } from './maintenance.js';
import type { NodePool } from '../cluster/node-pool.js';
import type { BlobInfo } from '../blobstore/blob-store.js';
import { assert } from '../core/assert.js';
import { EC_DATA_SHARDS } from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import type { Logger } from '../log/logger.js';
import { healerHeaderFor } from '../manifest/blob-meta.js';
import type { BlobRef, BlobState, Manifest, StoredManifest } from '../manifest/manifest.js';
import type { LeaderTerm, MetadataStore } from '../metadata/metadata-store.js';
import { chooseNodes } from '../placement/rendezvous.js';
import { fetchReplica, fetchShards } from '../blobio/blob-io.js';
import { checksumMatches, checksumOf, recordedChecksumMatches } from '../blobio/checksum.js';
import { blobIdOf } from '../core/ids.js';
import { hasColdCopies } from '../coldpart/cold-layout.js';

/** What the auditor knows of one node's blobs: null when the node could not be listed (down). */
export type Inventory = Map<string, BlobInfo> | null;

export interface RepairDeps {
  metadata: MetadataStore;
  pool: NodePool;
  ec: ErasureCode;
  log: Logger;
  nodeTimeoutMs: number;
}

export type RepairOutcome = 'healthy' | 'repaired' | 'unrepairable' | 'conflict' | 'waiting';

export interface RepairCounters {
  blobsRepaired: number;
  bytesRepaired: number;
}

/**
 * The state of each ref as its node reports it. `inventories` (node -> blob -> info) come from a listing pass;
 * when `verify` is set, blobs are re-read and checksummed by their node (used for keys a reader reported).
 * `gone` names nodes whose blobs count as lost: down longer than the grace period, or no longer members at all
 * (removed), when spare nodes exist to rebuild them on (the healer decides; see Healer.goneNodes). Refs on
 * other nodes that are down stay 'unknown': a node that is briefly down is not a reason to move data.
 */
export async function observeStates(
  deps: RepairDeps,
  manifest: Manifest,
  inventories: ReadonlyMap<string, Inventory> | null,
  verify: boolean,
  gone: (nodeId: string) => boolean = () => false,
): Promise<BlobState[]> {
  const refs = [...manifest.hot, ...manifest.cold];
  return Promise.all(
    refs.map(async (ref): Promise<BlobState> => {
      if (gone(ref.node)) return 'missing';
      if (!deps.pool.isHealthy(ref.node)) return 'unknown';
      const client = deps.pool.client(ref.node);
      if (!client) return 'unknown';
      try {
        if (verify) {
          const result = await client.verify(ref.blob, { timeoutMs: deps.nodeTimeoutMs });
          if (result !== 'ok') return result;
        }
        const inventory = inventories?.get(ref.node);
        const info = inventory === undefined || inventory === null
          ? await client.stat(ref.blob, { timeoutMs: deps.nodeTimeoutMs })
          : inventory.get(ref.blob) ?? null;
        if (!info) return 'missing';
        if (info.corrupt || info.size !== ref.size || !recordedChecksumMatches(ref.checksum, info.checksum)) return 'corrupt';
        return 'ok';
      } catch (error) {
        deps.pool.observe(ref.node, error);
        return 'unknown';
      }
    }),
  );
}

/**
 * Brings `stored` back to full protection where it can. Refs on nodes that are down stay as they are (a node
 * that is briefly down is not a reason to move data); refs that are missing or corrupt on live nodes are
 * rewritten, on the same node when it is up, otherwise on a healthy node the document does not use yet.
 */
export async function repairManifest(
  deps: RepairDeps,
  stored: StoredManifest,
  states: readonly BlobState[],
  term: LeaderTerm,
  counters: RepairCounters,
): Promise<RepairOutcome> {
  const manifest = stored.manifest;
  const refs = [...manifest.hot, ...manifest.cold];
  const bad = refs.map((_, i) => states[i] === 'missing' || states[i] === 'corrupt');
  const recordedChanged = refs.some((ref, i) => states[i] !== 'unknown' && states[i] !== ref.state);
  const anyUnknown = states.some((s) => s === 'unknown');
  if (!bad.some(Boolean) && !recordedChanged) return anyUnknown ? 'waiting' : 'healthy';

  const next: Manifest = structuredClone(manifest);
  const nextRefs = [...next.hot, ...next.cold];
  nextRefs.forEach((ref, i) => {
    if (states[i] !== 'unknown') ref.state = states[i]!;
  });

  let unrepairable = false;
  // Whole copies (hot replicas, and a small cold part kept with them) are repaired from a good sibling copy.
  const repairCopies = async (tier: 'hot' | 'cold', first: number): Promise<void> => {
    const refs = tier === 'hot' ? manifest.hot : manifest.cold;
    const tierBad = refs.map((_, i) => bad[first + i]!);
    if (!tierBad.some(Boolean)) return;
    const good = refs.filter((_, i) => states[first + i] === 'ok');
    if (good.length === 0) {
      unrepairable = true;
      return;
    }
    try {
      const { data } = await fetchReplica(deps.pool, good, { timeoutMs: deps.nodeTimeoutMs, hedgeAfterMs: deps.nodeTimeoutMs });
      const nextRefs = tier === 'hot' ? next.hot : next.cold;
      for (let i = 0; i < refs.length; i++) {
        if (tierBad[i]) await rewrite(deps, next, nextRefs[i]!, data, tier, counters, stored.modRevision);
      }
    } catch (error) {
      deps.log.warn({ err: error, key: manifest.key, tier }, 'could not read a good copy to repair from');
      unrepairable = true;
    }
  };
  await repairCopies('hot', 0);
  const offset = manifest.hot.length;
  if (hasColdCopies(manifest)) await repairCopies('cold', offset);
  const coldBad = manifest.cold.map((_, i) => bad[offset + i]!);
  if (coldBad.some(Boolean) && manifest.cold_layout && !hasColdCopies(manifest)) {
    const good = manifest.cold.map((ref, i) => (states[offset + i] === 'ok' ? ref : null));
    if (good.filter(Boolean).length < EC_DATA_SHARDS) unrepairable = true;
    else {
      try {
        const usable = manifest.cold.filter((_, i) => states[offset + i] === 'ok');
        const { shards: fetched } = await fetchShards(deps.pool, usable, {
          timeoutMs: deps.nodeTimeoutMs,
          hedgeAfterMs: deps.nodeTimeoutMs,
          need: EC_DATA_SHARDS,
        });
        const shards: (Buffer | null)[] = manifest.cold.map(() => null);
        usable.forEach((ref, j) => {
          shards[manifest.cold.indexOf(ref)] = fetched[j] ?? null;
        });
        const rebuilt = await deps.ec.rebuildShards(shards, manifest.cold_layout.dataBytes);
        for (let i = 0; i < manifest.cold.length; i++) {
          if (!coldBad[i]) continue;
          assert(checksumMatches(manifest.cold[i]!.checksum, checksumOf(rebuilt[i]!)), 'a rebuilt shard equals the original');
          await rewrite(deps, next, next.cold[i]!, rebuilt[i]!, 'cold', counters, stored.modRevision);
        }
      } catch (error) {
        deps.log.warn({ err: error, key: manifest.key }, 'could not rebuild shards');
        unrepairable = true;
      }
    }
  }

  next.dirty = [...next.hot, ...next.cold].some((r) => r.state !== 'ok');
  const result = await commitSameVersion(deps.metadata, stored, next, term);
  if (!result.ok) return 'conflict';
  if (unrepairable) return 'unrepairable';
  return next.dirty ? 'waiting' : 'repaired';
}

/**
 * Writes `data` for `ref`, on its own node when that is up and not draining, otherwise on a healthy active node
 * the document's tier does not use. With no such node the ref stays as it is (bad, so the manifest stays dirty).
 */
async function rewrite(
  deps: RepairDeps,
  manifest: Manifest,
  ref: BlobRef,
  data: Buffer,
  tier: 'hot' | 'cold',
  counters: RepairCounters,
  repairedAtModRevision: number,
): Promise<void> {
  const used = new Set((tier === 'hot' ? manifest.hot : manifest.cold).map((r) => r.node));
  let target = ref.node;
  if (!deps.pool.isHealthy(target) || deps.pool.isDraining(target)) {
    used.delete(ref.node);
    const healthy = deps.pool.placementNodes().filter((n) => n.healthy);
    let spare: string | undefined;
    try {
      [spare] = chooseNodes(`${manifest.key}/${tier}`, healthy, 1, { exclude: used });
    } catch (error) {
      // No spare node (INSUFFICIENT_NODES): an operating state, not a failed round; the manifest stays dirty.
      deps.log.warn({ err: error, key: manifest.key, part: ref.part }, 'no spare node to rebuild a blob on');
      return;
    }
    if (!spare) return;
    target = spare;
  }
  const client = deps.pool.client(target)!;
  // Every repair copy gets a blob id of its own, never the id of the copy it replaces: a garbage collector that
  // works from an older inventory can then only ever delete ids that no current manifest can point at again
  // (the bad copy stays behind as garbage for the next pass). The manifest's modRevision makes the id unique:
  // a part is rewritten at most once per repair, and each repair commits a new modRevision.
  const blob = `${blobIdOf(ref.writeId, ref.part)}.r${repairedAtModRevision.toString(36)}`;
  const header = await healerHeaderFor(manifest, { ...ref, blob });
  try {
    await client.put(header, data, { timeoutMs: deps.nodeTimeoutMs });
    ref.blob = blob;
    ref.node = target;
    ref.state = 'ok';
    counters.blobsRepaired++;
    counters.bytesRepaired += data.length;
  } catch (error) {
    deps.pool.observe(target, error);
    deps.log.warn({ err: error, key: manifest.key, part: ref.part, node: target }, 'repair write failed');
  }
}
