/**
 * Extra hot replicas of read-heavy documents. A document read far more than others (internal/tiering/policy.ts,
 * extraReplicasFor) gets up to two more copies of its hot payload on nodes its hot part does not use yet, so
 * that reads, which rotate over every entry of `manifest.hot`, spread over up to five nodes. They are appended to
 * `hot` and counted in `manifest.extraReplicas`; they keep the write id and get the parts `hot-3`, `hot-4` of the
 * write that made the payload, so repair, drain, rebalance, GC and rebuilds treat them like any replica. A client
 * write replaces the hot part and releases them with the rest; the healer adds them again if the document is still
 * read-heavy. They are not counted in `bytes.physical` (reported apart as `extra_replicas`).
 *
 * Adding: copy (bytes verified against the recorded checksum), commit (same version, fenced), done. Removing:
 * commit without them, then delete them. A commit that loses a race deletes the copies it made.
 */
import type { NodePool } from '../cluster/node-pool.js';
import { fetchReplica } from '../blobio/blob-io.js';
import { checksumMatches, checksumOf, recordedChecksumMatches } from '../blobio/checksum.js';
import { blobIdOf } from '../core/ids.js';
import type { Logger } from '../log/logger.js';
import { healerHeaderFor } from '../manifest/blob-meta.js';
import { baseHotRefs, extraReplicaRefs, type BlobRef, type Manifest, type StoredManifest } from '../manifest/manifest.js';
import type { LeaderTerm, MetadataStore } from '../metadata/metadata-store.js';
import { chooseNodes } from '../placement/rendezvous.js';
import { HOT_COPIES_MAX } from '../tiering/limits.js';
import { commitSameVersion, deleteQuietly } from './maintenance.js';

export interface ExtraReplicaDeps {
  metadata: MetadataStore;
  pool: NodePool;
  log: Logger;
  nodeTimeoutMs: number;
}

export type ExtraOutcome = 'changed' | 'unchanged' | 'conflict';

export async function setExtraReplicas(deps: ExtraReplicaDeps, stored: StoredManifest, wanted: number, term: LeaderTerm): Promise<ExtraOutcome> {
  const manifest = stored.manifest;
  const base = baseHotRefs(manifest);
  const current = extraReplicaRefs(manifest);
  const target = Math.max(0, Math.min(wanted, HOT_COPIES_MAX - base.length));
  if (target === current.length || base.length === 0) return 'unchanged';
  const next: Manifest = structuredClone(manifest);
  const made: { node: string; blob: string }[] = [];
  let removed: BlobRef[] = [];
  if (target < current.length) {
    next.hot = [...structuredClone(base), ...structuredClone(current.slice(0, target))];
    removed = current.slice(target);
  } else {
    const added = await copies(deps, stored, base, current, target - current.length);
    if (added.length === 0) return 'unchanged';
    made.push(...added.map((r) => ({ node: r.node, blob: r.blob })));
    next.hot = [...structuredClone(manifest.hot), ...added];
  }
  const extra = next.hot.length - base.length;
  if (extra > 0) next.extraReplicas = extra;
  else delete next.extraReplicas;
  let result;
  try {
    result = await commitSameVersion(deps.metadata, stored, next, term);
  } catch (error) {
    // Outcome unknown: keep the copies; inventory GC removes whichever the manifest does not reference.
    deps.log.warn({ err: error, key: manifest.key }, 'the commit of extra replicas failed; GC settles the copies');
    return 'conflict';
  }
  if (!result.ok) {
    await deleteQuietly(deps, made);
    return 'conflict';
  }
  await deleteQuietly(deps, removed.map((r) => ({ node: r.node, blob: r.blob })));
  return 'changed';
}

/** Copies the hot payload to `count` nodes the hot part does not use yet (fewer when fewer are healthy). */
async function copies(deps: ExtraReplicaDeps, stored: StoredManifest, base: BlobRef[], current: BlobRef[], count: number): Promise<BlobRef[]> {
  const manifest = stored.manifest;
  const used = new Set(manifest.hot.map((r) => r.node));
  const healthy = deps.pool.placementNodes().filter((n) => n.healthy);
  let nodes: string[];
  try {
    nodes = chooseNodes(`${manifest.key}/hot`, healthy, count, { exclude: used });
  } catch {
    // Fewer spare nodes than asked for: take what placement offers one at a time.
    nodes = [];
    for (let i = 0; i < count; i++) {
      try {
        const [node] = chooseNodes(`${manifest.key}/hot`, healthy, 1, { exclude: new Set([...used, ...nodes]) });
        if (node) nodes.push(node);
      } catch {
        break;
      }
    }
  }
  if (nodes.length === 0) return [];
  const source = base.filter((r) => r.state === 'ok');
  const { data } = await fetchReplica(deps.pool, source, { timeoutMs: deps.nodeTimeoutMs, hedgeAfterMs: deps.nodeTimeoutMs });
  const model = base[0]!;
  if (!checksumMatches(model.checksum, checksumOf(data))) throw new Error(`hot payload of "${manifest.key}" does not match its checksum`);
  const out: BlobRef[] = [];
  for (const [i, node] of nodes.entries()) {
    const part = `hot-${base.length + current.length + i}`;
    // A fresh id per attempt (as repairs and moves do), so GC working from an older inventory never deletes it.
    const blob = `${blobIdOf(model.writeId, part)}.x${stored.modRevision.toString(36)}`;
    const ref: BlobRef = { part, node, blob, writeId: model.writeId, size: data.length, checksum: model.checksum, state: 'ok' };
    try {
      const header = await healerHeaderFor(manifest, ref);
      const info = await deps.pool.client(node)!.put(header, data, { timeoutMs: deps.nodeTimeoutMs });
      if (!recordedChecksumMatches(ref.checksum, info.checksum)) throw new Error(`node ${node} stored a different checksum`);
      out.push(ref);
    } catch (error) {
      deps.pool.observe(node, error);
      deps.log.warn({ err: error, key: manifest.key, node }, 'could not place an extra replica');
    }
  }
  return out;
}

