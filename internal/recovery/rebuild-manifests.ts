/**
 * Disaster recovery of the metadata store (architecture.md, "Healer: metadata recovery"): rebuilds every manifest
 * from the storage nodes' self-describing blobs after the metadata store is lost.
 *
 * Rules (also in the README section "Backup and recovery"):
 * 1. Inventory: every node is listed page by page; each blob header gives key, write id, part and meta
 *    (blob-meta.ts: strategy, role, shard index, dataBytes, shardBytes, coldHash, and codec and textBytes when the
 *    cold part is compressed). Blobs are grouped by key, then by write id. Blobs whose meta cannot be parsed are
 *    counted and ignored. A small cold part kept as whole copies beside the replicas (role `cold`, parts
 *    cold-0..cold-2) counts like a replica set: 2 copies meet the quorum, 1 is readable. A compressed cold part is
 *    decompressed within its recorded size and checked against its coldHash. Whether compression was tried and
 *    refused (`codec: 'identity'`) is not in the blobs, so rebuilt manifests leave it out.
 * 2. Which write becomes the manifest: write ids are ULIDs, so they sort by time. The newest write that met the
 *    write quorum (2 of 3 hot replicas, 5 of 6 shards, per what the write created) wins, because only such a write
 *    can have been committed. When no write of a key meets the quorum (blobs lost since), the newest readable one
 *    (1 hot replica, 4 shards) is used, marked dirty.
 * 3. Pure hot updates (field_hybrid): a write that created hot replicas but no shards reused the cold shards of an
 *    earlier write. It is paired with the newest earlier field_hybrid shard set (ULID order: the reused shards are
 *    always older than the write that reused them) whose cold text reconstructs, hashes to the coldHash its shards
 *    record and to the one the hot replicas name (format 2 hot replicas of a pure hot update carry it), and merges
 *    with the hot blob's offsets into a valid JSON object; if that pairing fails the next older shard set is tried.
 * 4. Missing replicas or shards of the chosen write are recorded as refs in state 'missing' on a node the key does
 *    not use yet (in placement rank order), with the size and checksum the healer must reproduce (a hot replica's
 *    is its siblings'; a shard's is computed by rebuilding it from the others), and the manifest is dirty: the
 *    healer's next audit rewrites them.
 * 5. What blobs cannot tell: `hotFields` (the configured hot field list) is recorded as the hot paths the document
 *    has (field_hybrid) or [] (replication, ec); `createdAt` and `updatedAt` are the time of the chosen write's
 *    newest blob.
 * 6. Versions: each rebuilt manifest is committed with assignVersion, so versions are new numbers from the new
 *    store's counter, all greater than any version that store issued before. Clients holding an old ETag get 412
 *    on a conditional request and must read again.
 * 7. Deletes: a tombstone holds no blobs, so a delete cannot be seen on the nodes. A deleted key whose blobs were
 *    already released stays deleted; one whose blobs still exist (release failed, not yet collected) comes back
 *    at its newest surviving write.
 * 8. Merging into a restored backup (an etcd snapshot): a key that already has a manifest or tombstone in the target
 *    store keeps it, unless the nodes hold a newer write of it (write id after the stored one's) that met its
 *    quorum: that write was made after the backup and replaces it (a key deleted before the backup stays deleted
 *    unless it was written again after it).
 * 9. A live manifest of the store none of whose blobs is left on the nodes, with no newer write either, was deleted
 *    after the backup (deletes and overwrites release blobs at once) and becomes a tombstone; only when every node
 *    could be listed.
 *
 * Memory: the inventory (one small record per blob) is held in memory; that bounds this tool to inventories of
 * a few million blobs per run.
 */
import { checksum64Of, checksumOf } from '../blobio/checksum.js';
import { decodeDescriptorFragments, decodeWholeDescriptor, type BlobDescription } from '../manifest/blob-descriptor.js';
import type { BlobInfo } from '../blobstore/blob-store.js';
import { EC_DATA_SHARDS, EC_TOTAL_SHARDS, EC_WRITE_QUORUM, HOT_REPLICAS, HOT_WRITE_QUORUM, LIMITS } from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import { parseJson } from '../json/parse.js';
import { coldHash as hashCold, decodeHotBlob, mergeDocument, type DecodedHot } from '../json/split.js';
import { NESTING_DEPTH_HARD_MAX, isJsonObject } from '../json/value.js';
import { STRATEGIES, tombstoneManifest, type BlobRef, type ColdCodec, type ColdLayout, type Manifest, type Strategy } from '../manifest/manifest.js';
import { decompressCold } from '../coldpart/cold-codec.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { NodeClient } from '../nodeclient/node-client.js';
import { rankNodes } from '../placement/rendezvous.js';
import { newWriteId } from '../core/ids.js';
import { emptyParentOffsets, hotBytesOf } from '../writeservice/plan.js';

export interface RebuildDeps {
  nodes: readonly NodeClient[];
  metadata: MetadataStore;
  ec: ErasureCode;
  /** Progress lines (the CLI prints them); default: silent. */
  progress?: (line: string) => void;
  /** Per node call. */
  timeoutMs?: number;
  /** Inventory page size (at most LIMITS.inventoryPageMax). */
  pageSize?: number;
}

export interface RebuildReport {
  nodesListed: number;
  nodesUnreachable: string[];
  blobsScanned: number;
  blobsUnparseable: number;
  keysFound: number;
  rebuilt: number;
  dirty: number;
  /** Keys that already had a manifest or tombstone in the store, left as they were. */
  skippedExisting: number;
  /**
   * Keys that had a manifest or tombstone in the store (a restored backup) but whose nodes hold a newer write that
   * met its quorum: written after the backup, so that write replaced the stored manifest.
   */
  merged: number;
  /**
   * Live manifests of the store none of whose blobs is on any node (all nodes listed) and with no newer write:
   * deleted after the backup (a delete releases the blobs), so they became tombstones.
   */
  tombstoned: number;
  unrecoverable: { key: string; reason: string }[];
}

/** What rebuilding one key's manifest needs: the nodes to read blobs from, and the erasure code. */
export type KeyRebuildDeps = Pick<RebuildDeps, 'nodes' | 'ec' | 'timeoutMs'>;

interface FoundBlob {
  node: string;
  info: BlobInfo;
  /** The document's key: the blob header's (format 1) or its descriptor's (format 2). */
  key: string;
  strategy: Strategy;
  /** `cold`: a whole copy of a small cold part kept with the replicas (internal/coldpart). */
  role: 'hot' | 'shard' | 'cold';
  index: number;
  dataBytes: number;
  shardBytes: number;
  coldHash: string | null;
  /**
   * Format 2: the cold hash's first 16 hex digits (the whole hash is computed from the rebuilt text). On a hot
   * replica: the cold part a pure hot update reused (absent when its own write stored the cold part).
   */
  coldHash64: string | null;
  /** Compression of the stored cold bytes, and the text size before it (shards and cold copies). */
  codec: ColdCodec;
  textBytes: number | null;
}

/** The blobs of one write id of one key, one per part (a repaired copy of the same part on another node is a spare). */
export interface WriteSet {
  writeId: string;
  strategy: Strategy;
  hot: FoundBlob[];
  shards: (FoundBlob | null)[];
  /** Cold copies (cold-0..cold-2), in part order. */
  copies: FoundBlob[];
}

const PROGRESS_EVERY_KEYS = 1000;

export async function rebuildManifests(deps: RebuildDeps): Promise<RebuildReport> {
  const progress = deps.progress ?? ((): void => undefined);
  const report: RebuildReport = {
    nodesListed: 0,
    nodesUnreachable: [],
    blobsScanned: 0,
    blobsUnparseable: 0,
    keysFound: 0,
    rebuilt: 0,
    dirty: 0,
    skippedExisting: 0,
    merged: 0,
    tombstoned: 0,
    unrecoverable: [],
  };
  const byKey = await takeInventory(deps, report, progress);
  report.keysFound = byKey.size;
  progress(`inventory: ${report.blobsScanned} blobs of ${byKey.size} keys on ${report.nodesListed} nodes`);
  let done = 0;
  for (const [key, writes] of byKey) {
    try {
      const existing = await deps.metadata.get(key);
      if (existing && !hasNewerQuorumWrite(writes, existing.manifest.writeId)) {
        report.skippedExisting++;
      } else if (existing) {
        // Rule 8: a write newer than the restored manifest (or tombstone) was made after the backup.
        const manifest = await rebuildKey(deps, key, writes, existing.manifest.writeId);
        const result = await deps.metadata.commit({ key, expectedModRevision: existing.modRevision, writeId: manifest.writeId, manifest, assignVersion: true });
        if (!result.ok) throw new Error(`commit refused (${result.reason})`);
        report.merged++;
        if (manifest.dirty) report.dirty++;
      } else {
        const manifest = await rebuildKey(deps, key, writes);
        const result = await deps.metadata.commit({ key, expectedModRevision: 0, writeId: manifest.writeId, manifest, assignVersion: true });
        if (!result.ok) throw new Error(`commit refused (${result.reason})`);
        report.rebuilt++;
        if (manifest.dirty) report.dirty++;
      }
    } catch (error) {
      report.unrecoverable.push({ key, reason: (error as Error).message });
    }
    if (++done % PROGRESS_EVERY_KEYS === 0) progress(`keys: ${done} of ${byKey.size}`);
  }
  await tombstoneVanished(deps, byKey, report, progress);
  progress(
    `done: ${report.rebuilt} manifests rebuilt (${report.dirty} dirty), ${report.merged} replaced by newer writes, ` +
      `${report.tombstoned} deleted since the backup, ${report.skippedExisting} already present, ` +
      `${report.unrecoverable.length} unrecoverable`,
  );
  return report;
}

async function takeInventory(
  deps: RebuildDeps,
  report: RebuildReport,
  progress: (line: string) => void,
): Promise<Map<string, Map<string, WriteSet>>> {
  const pageSize = Math.min(deps.pageSize ?? LIMITS.inventoryPageMax, LIMITS.inventoryPageMax);
  const grouper = new BlobGrouper();
  for (const client of deps.nodes) {
    let after: string | null = null;
    let count = 0;
    try {
      for (;;) {
        const page = await client.list(after, pageSize, callOptions(deps));
        for (const info of page) {
          report.blobsScanned++;
          count++;
          grouper.add(client.nodeId, info);
        }
        if (page.length < pageSize) break;
        after = page[page.length - 1]!.id;
      }
      report.nodesListed++;
      progress(`listed ${client.nodeId}: ${count} blobs`);
    } catch (error) {
      report.nodesUnreachable.push(client.nodeId);
      progress(`could not list ${client.nodeId}: ${(error as Error).message}`);
    }
  }
  await grouper.resolve(deps.ec);
  report.blobsUnparseable += grouper.unparseable;
  return grouper.byKey;
}

function parseFound(node: string, info: BlobInfo): FoundBlob | null {
  if (info.corrupt) return null;
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(info.meta) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (meta === null || typeof meta !== 'object') return null;
  const strategy = meta['strategy'];
  if (typeof strategy !== 'string' || !(STRATEGIES as readonly string[]).includes(strategy)) return null;
  const role = meta['role'];
  if (role === 'hot' && /^hot-[0-9]+$/.test(info.part)) {
    return { node, info, key: info.key, strategy: strategy as Strategy, role, index: Number(info.part.slice(4)), dataBytes: 0, shardBytes: 0, coldHash: null, coldHash64: null, codec: 'identity', textBytes: null };
  }
  const compression = codecOf(meta);
  if (compression === null) return null;
  if (role === 'cold' && /^cold-[0-9]+$/.test(info.part)) {
    const dataBytes = meta['dataBytes'];
    const hash = meta['coldHash'];
    if (!Number.isSafeInteger(dataBytes) || dataBytes !== info.size) return null;
    const index = Number(info.part.slice('cold-'.length));
    if (index >= HOT_REPLICAS) return null;
    return { node, info, key: info.key, strategy: strategy as Strategy, role, index, dataBytes, shardBytes: dataBytes, coldHash: typeof hash === 'string' ? hash : null, coldHash64: null, ...compression };
  }
  if (role !== 'shard') return null;
  const { index, dataBytes, shardBytes } = meta as { index: unknown; dataBytes: unknown; shardBytes: unknown };
  const hash = meta['coldHash'];
  if (!Number.isSafeInteger(index) || (index as number) < 0 || (index as number) >= EC_TOTAL_SHARDS) return null;
  if (!Number.isSafeInteger(dataBytes) || !Number.isSafeInteger(shardBytes)) return null;
  if (info.part !== `shard-${index as number}`) return null;
  return {
    node,
    info,
    key: info.key,
    strategy: strategy as Strategy,
    role: 'shard',
    index: index as number,
    dataBytes: dataBytes as number,
    shardBytes: shardBytes as number,
    coldHash: typeof hash === 'string' ? hash : null,
    coldHash64: null,
    ...compression,
  };
}

/**
 * A format-2 blob found through its descriptor (manifest/blob-descriptor.ts): whole for replicas and copies, or
 * the description decoded from the fragments of its write's shards. Null when the description does not fit the
 * blob's part (a damaged or foreign blob).
 */
function foundFromDescription(node: string, info: BlobInfo, d: BlobDescription, ec: ErasureCode | null): FoundBlob | null {
  const cold = d.cold ?? null;
  const base = {
    node,
    info,
    key: d.key,
    strategy: d.strategy,
    coldHash: null,
    coldHash64: cold?.coldHash64 ?? null,
    codec: cold?.codec ?? ('identity' as ColdCodec),
    textBytes: cold?.textBytes ?? null,
  };
  if (d.role === 'hot' && /^hot-[0-9]+$/.test(info.part)) {
    return { ...base, role: 'hot', index: Number(info.part.slice(4)), dataBytes: 0, shardBytes: 0, codec: 'identity', textBytes: null };
  }
  if (cold === null) return null;
  if (d.role === 'cold' && /^cold-[0-9]$/.test(info.part)) {
    const index = Number(info.part.slice('cold-'.length));
    if (index >= HOT_REPLICAS || cold.dataBytes !== info.size) return null;
    return { ...base, role: 'cold', index, dataBytes: cold.dataBytes, shardBytes: cold.dataBytes };
  }
  if (d.role === 'shard' && ec !== null && /^shard-[0-5]$/.test(info.part)) {
    const shardBytes = ec.shardBytesFor(cold.dataBytes);
    if (info.size !== shardBytes) return null;
    return { ...base, role: 'shard', index: Number(info.part.slice('shard-'.length)), dataBytes: cold.dataBytes, shardBytes };
  }
  return null;
}

/**
 * Groups listed blobs by key and write id (rule 1). Format-1 blobs and format-2 replicas and copies name their key
 * themselves; a format-2 shard carries only a fragment of its write's description, so shards wait, grouped by write
 * id, until `resolve` decodes each group's description from any four of them.
 */
export class BlobGrouper {
  readonly byKey = new Map<string, Map<string, WriteSet>>();
  private readonly fragments = new Map<string, { node: string; info: BlobInfo }[]>();
  unparseable = 0;

  /** False when the blob cannot be read as part of a document (left out and counted). */
  add(node: string, info: BlobInfo): boolean {
    if (info.corrupt) return this.refuse();
    if (info.format !== 2) {
      const found = parseFound(node, info);
      if (found === null) return this.refuse();
      add(this.byKey, found);
      return true;
    }
    const descriptor = info.descriptor;
    if (descriptor === undefined) return this.refuse();
    if (descriptor.kind === 'fragment') {
      let group = this.fragments.get(info.writeId);
      if (!group) this.fragments.set(info.writeId, (group = []));
      group.push({ node, info });
      return true;
    }
    let d: BlobDescription;
    try {
      d = decodeWholeDescriptor(descriptor.bytes);
    } catch {
      return this.refuse();
    }
    const found = foundFromDescription(node, info, d, null);
    if (found === null) return this.refuse();
    add(this.byKey, found);
    return true;
  }

  /**
   * Decodes the description of every write's format-2 shards and files them; shards of a write with fewer than four
   * readable fragments cannot name their key (nor could they be read) and are counted unparseable. `keep` limits
   * which keys are filed (the healer's per-key rebuild).
   */
  async resolve(ec: ErasureCode, keep: (key: string) => boolean = () => true): Promise<void> {
    for (const [, blobs] of this.fragments) {
      const byIndex: (Uint8Array | null)[] = new Array(EC_TOTAL_SHARDS).fill(null);
      for (const { info } of blobs) {
        const index = Number(info.part.slice('shard-'.length));
        if (/^shard-[0-5]$/.test(info.part) && byIndex[index] === null) byIndex[index] = info.descriptor!.bytes;
      }
      let d: BlobDescription | null = null;
      try {
        d = await decodeDescriptorFragments(byIndex);
      } catch {
        d = null;
      }
      if (d === null || d.role !== 'shard') {
        this.unparseable += blobs.length;
        continue;
      }
      if (!keep(d.key)) continue;
      for (const { node, info } of blobs) {
        const found = foundFromDescription(node, info, d, ec);
        if (found === null) this.unparseable++;
        else add(this.byKey, found);
      }
    }
    this.fragments.clear();
  }

  private refuse(): false {
    this.unparseable++;
    return false;
  }
}

/** The codec fields of a cold blob's meta (absent: uncompressed), or null when they are malformed. */
function codecOf(meta: Record<string, unknown>): { codec: ColdCodec; textBytes: number | null } | null {
  const codec = meta['codec'];
  if (codec === undefined) return { codec: 'identity', textBytes: null };
  const textBytes = meta['textBytes'];
  if ((codec !== 'brotli' && codec !== 'deflate') || !Number.isSafeInteger(textBytes) || (textBytes as number) < 1) return null;
  return { codec, textBytes: textBytes as number };
}

function add(byKey: Map<string, Map<string, WriteSet>>, found: FoundBlob): void {
  let writes = byKey.get(found.key);
  if (!writes) byKey.set(found.key, (writes = new Map()));
  let set = writes.get(found.info.writeId);
  if (!set) {
    set = { writeId: found.info.writeId, strategy: found.strategy, hot: [], shards: new Array(EC_TOTAL_SHARDS).fill(null), copies: [] };
    writes.set(found.info.writeId, set);
  }
  if (found.role === 'hot') {
    if (!set.hot.some((h) => h.info.part === found.info.part)) set.hot.push(found);
    set.hot.sort((a, b) => a.index - b.index);
  } else if (found.role === 'cold') {
    if (!set.copies.some((c) => c.info.part === found.info.part)) set.copies.push(found);
    set.copies.sort((a, b) => a.index - b.index);
  } else if (set.shards[found.index] === null) {
    set.shards[found.index] = found;
  }
}

const shardCount = (w: WriteSet): number => w.shards.filter(Boolean).length;
/** Whether the write stored a cold part at all (shards or copies), and whether enough of it was durable. */
const storedCold = (w: WriteSet): boolean => shardCount(w) > 0 || w.copies.length > 0;
const coldAtQuorum = (w: WriteSet): boolean => shardCount(w) >= EC_WRITE_QUORUM || w.copies.length >= HOT_WRITE_QUORUM;
const coldReadable = (w: WriteSet): boolean => shardCount(w) >= EC_DATA_SHARDS || w.copies.length >= 1;

function meetsQuorum(w: WriteSet): boolean {
  if (w.strategy === 'replication') return w.hot.length >= HOT_WRITE_QUORUM;
  if (w.strategy === 'ec') return coldAtQuorum(w);
  // field_hybrid: a full write (cold, plus hot replicas when the document has hot members) or a pure hot update.
  if (!storedCold(w)) return w.hot.length >= HOT_WRITE_QUORUM;
  return coldAtQuorum(w) && (w.hot.length === 0 || w.hot.length >= HOT_WRITE_QUORUM);
}

function readable(w: WriteSet): boolean {
  if (w.strategy === 'replication') return w.hot.length >= 1;
  if (w.strategy === 'ec') return coldReadable(w);
  if (!storedCold(w)) return w.hot.length >= 1;
  return coldReadable(w);
}

/**
 * Whether the nodes hold a write of the key newer than `writeId` (the write id of the manifest or tombstone the
 * store has) that met its quorum. Write ids are ULIDs, which sort by creation time.
 */
function hasNewerQuorumWrite(writes: Map<string, WriteSet>, writeId: string): boolean {
  for (const w of writes.values()) if (w.writeId > writeId && meetsQuorum(w)) return true;
  return false;
}

/**
 * The manifest of one key rebuilt from its writes (rules 2 to 5; grouped by addBlob), for the healer's online repair
 * of a damaged record: the newest write that met its quorum, else the newest readable one. Writes in
 * `excludeWriteIds` (known never to have committed) are not candidates. The version is left '0' for the store to
 * assign. Throws when no write can be read back.
 */
export function rebuildKeyManifest(
  deps: KeyRebuildDeps,
  key: string,
  writes: ReadonlyMap<string, WriteSet>,
  excludeWriteIds: ReadonlySet<string> = new Set(),
): Promise<Manifest> {
  const kept = new Map([...writes].filter(([writeId]) => !excludeWriteIds.has(writeId)));
  return rebuildKey(deps, key, kept);
}

/**
 * The manifest of the key's newest recoverable write. With `newerThan` (merging into a store that has the key),
 * only writes newer than that write id that met their quorum are candidates: a readable but incomplete newer write
 * may never have committed, whereas the store's manifest did.
 */
async function rebuildKey(deps: KeyRebuildDeps, key: string, writes: ReadonlyMap<string, WriteSet>, newerThan: string | null = null): Promise<Manifest> {
  const newestFirst = [...writes.values()].sort((a, b) => (a.writeId < b.writeId ? 1 : a.writeId > b.writeId ? -1 : 0));
  const candidates =
    newerThan === null
      ? [...newestFirst.filter(meetsQuorum), ...newestFirst.filter((w) => !meetsQuorum(w) && readable(w))]
      : newestFirst.filter((w) => w.writeId > newerThan && meetsQuorum(w));
  const failures: string[] = [];
  for (const w of candidates) {
    try {
      return await manifestOf(deps, key, w, newestFirst);
    } catch (error) {
      failures.push(`${w.writeId}: ${(error as Error).message}`);
    }
  }
  throw new Error(candidates.length === 0 ? 'no write of this key has enough blobs left to read' : failures.join('; '));
}

async function manifestOf(deps: KeyRebuildDeps, key: string, w: WriteSet, newestFirst: WriteSet[]): Promise<Manifest> {
  const nodeIds = deps.nodes.map((n) => n.nodeId);
  const hotPayload = w.hot.length > 0 ? await fetchAny(deps, w.hot) : null;
  const hotRefs = w.hot.length > 0 ? completeHot(key, w, hotPayload!, nodeIds) : [];
  const base = {
    formatVersion: 1 as const,
    key,
    version: '0',
    writeId: w.writeId,
    deleted: false,
    strategy: w.strategy,
  };
  const when = new Date(Math.max(...[...w.hot, ...w.shards, ...w.copies].filter((b): b is FoundBlob => b !== null).map((b) => b.info.createdAtMs))).toISOString();

  if (w.strategy === 'replication') {
    const size = hotPayload!.length;
    return finish({ ...base, hotFields: [], hotPaths: [], coldEmptyOffsets: [], bytes: { logical: size, hot: size, cold: 0, physical: 0 }, coldHash: null, cold_layout: null, hot: hotRefs, cold: [], dirty: false, createdAt: when, updatedAt: when });
  }

  // The cold set (shards or copies): the write's own, or for a field_hybrid pure hot update the newest older one
  // that pairs.
  const shardSets = storedCold(w)
    ? [w]
    : newestFirst.filter((s) => s.writeId < w.writeId && s.strategy === 'field_hybrid' && coldReadable(s));
  // A pure hot update's replicas name the cold part they reused (format 2): an older write that stored cold blobs
  // but never committed cannot be taken for it, however well its text merges.
  const reusedHash64 = storedCold(w) ? null : (w.hot.find((h) => h.coldHash64 !== null)?.coldHash64 ?? null);
  const problems: string[] = [];
  for (const s of shardSets) {
    try {
      const { coldText, refs: coldRefs, first, layout } = await readColdSet(deps, key, s, nodeIds);
      const textHash = hashCold(coldText);
      if (first.coldHash !== null && textHash !== first.coldHash) throw new Error(`cold blobs of ${s.writeId} do not hash to their coldHash`);
      if (first.coldHash64 !== null && !textHash.startsWith(first.coldHash64)) throw new Error(`cold blobs of ${s.writeId} do not hash to their coldHash`);
      if (reusedHash64 !== null && !textHash.startsWith(reusedHash64)) throw new Error(`cold blobs of ${s.writeId} are not the cold part ${w.writeId} reused`);
      const coldHash = first.coldHash ?? textHash;
      if (w.strategy === 'ec') {
        return finish({ ...base, hotFields: [], hotPaths: [], coldEmptyOffsets: [], bytes: { logical: coldText.length, hot: 0, cold: coldText.length, physical: 0 }, coldHash, cold_layout: layout, hot: [], cold: coldRefs, dirty: false, createdAt: when, updatedAt: when });
      }
      const hot: DecodedHot[] = hotPayload ? decodeHotBlob(hotPayload) : [];
      checkMerge(coldText, hot);
      const emptyOffsets = emptyParentOffsets(coldText, hot);
      const hotBytes = hotBytesOf(hot, emptyOffsets);
      const hotPaths = hot.map((h) => h.pointer);
      return finish({
        ...base,
        hotFields: hotPaths,
        hotPaths,
        coldEmptyOffsets: emptyOffsets,
        bytes: { logical: hotBytes + coldText.length, hot: hotBytes, cold: coldText.length, physical: 0 },
        coldHash,
        cold_layout: layout,
        hot: hotRefs,
        cold: coldRefs,
        dirty: false,
        createdAt: when,
        updatedAt: when,
      });
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  throw new Error(shardSets.length === 0 ? 'a pure hot update whose reused shards are gone' : problems.join('; '));
}

function finish(m: Manifest): Manifest {
  const refs = [...m.hot, ...m.cold];
  m.bytes.physical = refs.reduce((sum, r) => sum + r.size, 0);
  m.dirty = refs.some((r) => r.state !== 'ok');
  return m;
}

/** The merged document must be one JSON object: proves the hot blob's offsets belong to this cold text. */
function checkMerge(coldText: Buffer, hot: readonly DecodedHot[]): void {
  for (const h of hot) if (h.offset > coldText.length) throw new Error(`hot offset ${h.offset} is beyond the cold text`);
  const merged = mergeDocument(coldText, hot);
  const doc = parseJson(merged, { depthMax: NESTING_DEPTH_HARD_MAX, membersMax: Number.MAX_SAFE_INTEGER, what: 'rebuilt document' });
  if (!isJsonObject(doc)) throw new Error('hot and cold parts do not merge into an object');
}

async function fetchAny(deps: KeyRebuildDeps, blobs: readonly FoundBlob[]): Promise<Buffer> {
  let last: unknown = null;
  for (const b of blobs) {
    const client = deps.nodes.find((n) => n.nodeId === b.node)!;
    try {
      return await client.get(b.info.id, callOptions(deps));
    } catch (error) {
      last = error;
    }
  }
  throw new Error(`no hot replica could be read: ${(last as Error | null)?.message ?? 'none found'}`);
}

function refOf(b: FoundBlob): BlobRef {
  return { part: b.info.part, node: b.node, blob: b.info.id, writeId: b.info.writeId, size: b.info.size, checksum: b.info.checksum, state: 'ok' };
}

/** Found replicas, plus a 'missing' ref for each replica part not found (same bytes as its siblings). */
function completeHot(key: string, w: WriteSet, payload: Buffer, nodeIds: string[]): BlobRef[] {
  const refs = w.hot.map(refOf);
  const template = refs[0]!;
  const spare = spareNodes(`${key}/hot`, nodeIds, new Set(refs.map((r) => r.node)));
  for (let i = 0; i < HOT_REPLICAS; i++) {
    const part = `hot-${i}`;
    if (refs.some((r) => r.part === part)) continue;
    const node = spare.shift();
    if (node === undefined) continue;
    refs.push({ ...template, part, node, blob: `${w.writeId}.${part}`, size: payload.length, state: 'missing' });
  }
  return refs.sort((a, b) => (a.part < b.part ? -1 : 1));
}

interface ColdSet {
  coldText: Buffer;
  refs: BlobRef[];
  /** The blob whose meta describes the set. */
  first: FoundBlob;
  layout: ColdLayout;
}

/** The cold text of a write's shards or copies (decompressed when stored compressed), with its refs and layout. */
async function readColdSet(deps: KeyRebuildDeps, key: string, s: WriteSet, nodeIds: string[]): Promise<ColdSet> {
  const copies = shardCount(s) === 0;
  const { stored, refs, first } = copies ? await readCopies(deps, key, s, nodeIds) : await readShards(deps, key, s, nodeIds);
  const layout: ColdLayout = { dataBytes: first.dataBytes, shardBytes: first.shardBytes };
  if (copies) layout.placement = 'with_replicas';
  if (first.codec !== 'identity') {
    layout.codec = first.codec;
    layout.textBytes = first.textBytes!;
  }
  const coldText = await decompressCold(stored, first.codec, first.textBytes ?? stored.length);
  return { coldText, refs, first, layout };
}

/** Reads one good cold copy and completes missing copies' refs (same bytes as their siblings, on hot placement). */
async function readCopies(deps: KeyRebuildDeps, key: string, s: WriteSet, nodeIds: string[]): Promise<{ stored: Buffer; refs: BlobRef[]; first: FoundBlob }> {
  const first = s.copies[0]!;
  const stored = await fetchAny(deps, s.copies);
  if (stored.length !== first.dataBytes) throw new Error(`cold copy of ${s.writeId} has ${stored.length} bytes, not ${first.dataBytes}`);
  const refs = s.copies.map(refOf);
  const spare = spareNodes(`${key}/hot`, nodeIds, new Set(refs.map((r) => r.node)));
  for (let i = 0; i < HOT_REPLICAS; i++) {
    const part = `cold-${i}`;
    if (refs.some((r) => r.part === part)) continue;
    const node = spare.shift();
    if (node === undefined) continue;
    refs.push({ ...refs[0]!, part, node, blob: `${s.writeId}.${part}`, state: 'missing' });
  }
  return { stored, refs: refs.sort((a, b) => (a.part < b.part ? -1 : 1)), first };
}

/** Reads the shard set, reconstructs the stored cold bytes, and completes missing shards' refs (checksums from a rebuild). */
async function readShards(deps: KeyRebuildDeps, key: string, s: WriteSet, nodeIds: string[]): Promise<{ stored: Buffer; refs: BlobRef[]; first: FoundBlob }> {
  const first = s.shards.find((b): b is FoundBlob => b !== null)!;
  const data: (Buffer | null)[] = await Promise.all(
    s.shards.map(async (b) => {
      if (!b) return null;
      try {
        const buf = await deps.nodes.find((n) => n.nodeId === b.node)!.get(b.info.id, callOptions(deps));
        return buf.length === first.shardBytes ? buf : null;
      } catch {
        return null;
      }
    }),
  );
  if (data.filter(Boolean).length < EC_DATA_SHARDS) throw new Error(`fewer than ${EC_DATA_SHARDS} shards of ${s.writeId} could be read`);
  const stored = await deps.ec.reconstruct(data, first.dataBytes);
  const all = data.some((d) => d === null) ? await deps.ec.rebuildShards(data, first.dataBytes) : (data as Buffer[]);
  const used = new Set(s.shards.filter((b): b is FoundBlob => b !== null && data[b.index] !== null).map((b) => b.node));
  const spare = spareNodes(`${key}/cold`, nodeIds, used);
  const refs: BlobRef[] = [];
  for (let i = 0; i < EC_TOTAL_SHARDS; i++) {
    const b = s.shards[i];
    if (b && data[i] !== null) {
      refs.push(refOf(b));
      continue;
    }
    const part = `shard-${i}`;
    const node = b?.node ?? spare.shift() ?? nodeIds[i % nodeIds.length]!;
    // A format-2 set records 64-bit checksums, as the write that made it did.
    const checksum = first.info.format === 2 ? checksum64Of(all[i]!) : checksumOf(all[i]!);
    refs.push({ part, node, blob: `${s.writeId}.${part}`, writeId: s.writeId, size: first.shardBytes, checksum, state: 'missing' });
  }
  return { stored, refs, first };
}

function spareNodes(seed: string, nodeIds: string[], used: ReadonlySet<string>): string[] {
  return rankNodes(seed, nodeIds.map((id) => ({ id, healthy: true })))
    .map((n) => n.id)
    .filter((id) => !used.has(id));
}

function callOptions(deps: KeyRebuildDeps): { timeoutMs: number } {
  return { timeoutMs: deps.timeoutMs ?? 10_000 };
}

/** Manifests scanned per page by tombstoneVanished. */
const SCAN_PAGE_KEYS = 256;

/**
 * Rule 9: a live manifest of the store (a restored backup) none of whose blobs is on any node, with no newer write
 * of its key there either, belongs to a key deleted after the backup: a delete releases the blobs at once. Left
 * alone, it would read as 503 forever and be listed; it becomes a tombstone (with a new version) instead. Only done
 * when every node was listed: an unreachable node may hold the blobs.
 */
async function tombstoneVanished(
  deps: RebuildDeps,
  byKey: Map<string, Map<string, WriteSet>>,
  report: RebuildReport,
  progress: (line: string) => void,
): Promise<void> {
  if (report.nodesUnreachable.length > 0) {
    progress(`not looking for keys deleted since the backup: ${report.nodesUnreachable.join(', ')} could not be listed`);
    return;
  }
  let after: string | null = null;
  for (;;) {
    const page = await deps.metadata.scan(after, SCAN_PAGE_KEYS);
    for (const stored of page) {
      const m = stored.manifest;
      if (m.deleted) continue;
      const referenced = new Set([...m.hot, ...m.cold].map((r) => r.writeId));
      if (referenced.size === 0) continue;
      const found = byKey.get(m.key);
      if (found && [...found.keys()].some((writeId) => referenced.has(writeId) || writeId > m.writeId)) continue;
      const tombstone = tombstoneManifest(m.key, newWriteId(), m, Date.now());
      try {
        const result = await deps.metadata.commit({ key: m.key, expectedModRevision: stored.modRevision, writeId: tombstone.writeId, manifest: tombstone, assignVersion: true });
        if (!result.ok) throw new Error(`commit refused (${result.reason})`);
        report.tombstoned++;
      } catch (error) {
        report.unrecoverable.push({ key: m.key, reason: `its blobs are gone (deleted since the backup?) but no tombstone could be written: ${(error as Error).message}` });
      }
    }
    if (page.length < SCAN_PAGE_KEYS) return;
    after = page[page.length - 1]!.manifest.key;
  }
}
