/**
 * Moving blobs between nodes without ever lowering a document's protection (drain, rebalance): for each move,
 * copy the blob to its new node (under a fresh blob id, bytes verified against the checksum the manifest recorded), then
 * commit the manifest pointing at the copies (same version, fenced by the healer's term), and only then delete
 * the old copies. Until the commit the old copies are what the manifest references; after it, the new ones
 * are, and they were durable before the commit was sent. A failure anywhere before the commit leaves the
 * manifest as it was; copies it does not reference are deleted here or, failing that, by inventory GC (their
 * write id is referenced, so GC deletes them without an abort record).
 */
import { EC_DATA_SHARDS } from '../core/limits.js';
import { isStrataError } from '../core/errors.js';
import { fetchReplica, fetchShards, fetchVerified } from '../blobio/blob-io.js';
import { checksumMatches, checksumOf, recordedChecksumMatches } from '../blobio/checksum.js';
import { healerHeaderFor } from '../manifest/blob-meta.js';
import { blobIdOf } from '../core/ids.js';
import { referencesBlob, type BlobRef, type Manifest, type StoredManifest } from '../manifest/manifest.js';
import type { LeaderTerm } from '../metadata/metadata-store.js';
import type { RepairDeps } from './repairer.js';
import { commitSameVersion, deleteQuietly } from './maintenance.js';
import { hasColdCopies } from '../coldpart/cold-layout.js';

export type Tier = 'hot' | 'cold';

export interface BlobMove {
  tier: Tier;
  /** Position of the ref in `manifest.hot` or `manifest.cold`. */
  index: number;
  /** The node that receives the copy: healthy, active, and not used by the tier yet. */
  to: string;
}

/** 'moved': committed and the old copies released; 'conflict': the manifest changed meanwhile (retry later). */
export type MoveOutcome = 'moved' | 'conflict' | 'failed';

export interface MoveCounters {
  blobsMoved: number;
  bytesMoved: number;
}

export async function moveBlobs(
  deps: RepairDeps,
  stored: StoredManifest,
  moves: readonly BlobMove[],
  term: LeaderTerm,
  counters: MoveCounters,
): Promise<MoveOutcome> {
  const manifest = stored.manifest;
  if (moves.length === 0) return 'moved';
  const copies: { node: string; blob: string }[] = [];
  const next: Manifest = structuredClone(manifest);
  let bytes = 0;
  try {
    for (const move of moves) {
      const ref = tierOf(manifest, move.tier)[move.index];
      if (ref === undefined) throw new Error(`no ${move.tier} ref ${move.index}`);
      const data = await readPart(deps, manifest, move.tier, move.index);
      // A moved copy gets a fresh blob id (as repair copies do): a deposed healer's garbage collection, working
      // from an older inventory, can then never delete the copy this move makes referenced.
      const blob = `${blobIdOf(ref.writeId, ref.part)}.m${stored.modRevision.toString(36)}`;
      await copyTo(deps, manifest, { ...ref, blob }, move.to, data);
      copies.push({ node: move.to, blob });
      const moved = tierOf(next, move.tier)[move.index]!;
      moved.blob = blob;
      moved.node = move.to;
      moved.state = 'ok';
      bytes += data.length;
    }
  } catch (error) {
    deps.log.warn({ err: error, key: manifest.key }, 'moving a blob failed before its commit; the manifest is unchanged');
    await deleteQuietly(deps, copies.filter((c) => !referencesBlob(manifest, c.node, c.blob)));
    return 'failed';
  }

  let result;
  try {
    result = await commitSameVersion(deps.metadata, stored, next, term);
  } catch (error) {
    // The commit may or may not have been applied: keep both copies; the next audit sees which one is referenced
    // and inventory GC removes the other.
    deps.log.warn({ err: error, key: manifest.key }, 'the commit of a blob move failed; old and new copies are kept for now');
    return 'failed';
  }
  if (!result.ok) {
    const current = result.reason === 'conflict' ? result.current?.manifest ?? null : null;
    await deleteQuietly(deps, copies.filter((c) => current === null || !referencesBlob(current, c.node, c.blob)));
    return result.reason === 'conflict' ? 'conflict' : 'failed';
  }

  counters.blobsMoved += moves.length;
  counters.bytesMoved += bytes;
  // Committed: the old copies are referenced by no manifest any more.
  const released = moves.map((move) => tierOf(manifest, move.tier)[move.index]!).filter((ref) => !referencesBlob(result.manifest, ref.node, ref.blob));
  await deleteQuietly(deps, released.map((ref) => ({ node: ref.node, blob: ref.blob })));
  return 'moved';
}

function tierOf(manifest: Manifest, tier: Tier): BlobRef[] {
  return tier === 'hot' ? manifest.hot : manifest.cold;
}

/**
 * The bytes of one ref, verified against its recorded checksum: from its own node, else from another replica
 * (hot) or rebuilt from any four shards (cold).
 */
export async function readPart(deps: RepairDeps, manifest: Manifest, tier: Tier, index: number): Promise<Buffer> {
  const refs = tierOf(manifest, tier);
  const ref = refs[index]!;
  const timeouts = { timeoutMs: deps.nodeTimeoutMs, hedgeAfterMs: deps.nodeTimeoutMs };
  try {
    return await fetchVerified(deps.pool, ref, deps.nodeTimeoutMs);
  } catch (error) {
    deps.log.warn({ err: error, key: manifest.key, part: ref.part, node: ref.node }, 'reading a blob to move failed; using the other copies');
  }
  if (tier === 'hot' || hasColdCopies(manifest)) {
    // Whole copies: any good sibling has the same bytes.
    const others = refs.filter((r, i) => i !== index && r.state === 'ok');
    return (await fetchReplica(deps.pool, others, timeouts)).data;
  }
  if (!manifest.cold_layout) throw new Error(`"${manifest.key}" has shards but no cold layout`);
  const others = refs.map((r, i) => (i !== index && r.state === 'ok' ? r : null));
  const usable = others.filter((r): r is BlobRef => r !== null);
  const { shards: fetched } = await fetchShards(deps.pool, usable, { ...timeouts, need: EC_DATA_SHARDS });
  const shards: (Buffer | null)[] = refs.map(() => null);
  usable.forEach((r, j) => {
    shards[refs.indexOf(r)] = fetched[j] ?? null;
  });
  const rebuilt = (await deps.ec.rebuildShards(shards, manifest.cold_layout.dataBytes))[index]!;
  if (rebuilt.length !== ref.size || !checksumMatches(ref.checksum, checksumOf(rebuilt))) {
    throw new Error(`shard ${index} of "${manifest.key}" rebuilt from the others does not match its checksum`);
  }
  return rebuilt;
}

/**
 * Puts the copy and checks what the node stored against the manifest's checksum. A copy already there (an
 * earlier attempt whose commit lost a race) is accepted when it matches, and replaced when it does not.
 */
async function copyTo(deps: RepairDeps, manifest: Manifest, ref: BlobRef, node: string, data: Buffer): Promise<void> {
  const client = deps.pool.client(node);
  if (!client) throw new Error(`node ${node} left the pool`);
  const options = { timeoutMs: deps.nodeTimeoutMs };
  const header = await healerHeaderFor(manifest, ref);
  let info;
  try {
    info = await client.put(header, data, options);
  } catch (error) {
    if (!isStrataError(error, 'BLOB_EXISTS')) {
      deps.pool.observe(node, error);
      throw error;
    }
    info = await client.stat(ref.blob, options);
    if (info === null || info.corrupt || info.size !== ref.size || !recordedChecksumMatches(ref.checksum, info.checksum)) {
      await client.delete(ref.blob, options);
      info = await client.put(header, data, options);
    }
  }
  if (info.size !== ref.size || !recordedChecksumMatches(ref.checksum, info.checksum)) {
    throw new Error(`node ${node} stored ${ref.blob} with checksum ${info.checksum}, not the recorded ${ref.checksum}`);
  }
}

