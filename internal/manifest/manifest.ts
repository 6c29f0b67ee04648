/**
 * The manifest: the metadata record of one key, and the truth about what a key is (architecture.md, "Data
 * model"). It is stored as JSON by every MetadataStore implementation, so it holds only plain JSON values.
 */

export type Strategy = 'replication' | 'ec' | 'field_hybrid';
export const STRATEGIES: readonly Strategy[] = ['replication', 'ec', 'field_hybrid'];

/** As last seen by a gateway or the healer. */
export type BlobState = 'ok' | 'missing' | 'corrupt' | 'unknown';

/** One blob a manifest references: the bytes of one part, on one node. */
export interface BlobRef {
  /** `hot-0`..`hot-2` for replicas, `shard-0`..`shard-5` for erasure-coded shards. */
  part: string;
  node: string;
  blob: string;
  /** The write that created the bytes (a pure hot update reuses cold shards of an earlier write). */
  writeId: string;
  /** Payload bytes. */
  size: number;
  /** sha256 of the payload, hex; checked end to end by the gateway on every read. */
  checksum: string;
  state: BlobState;
}

export interface ColdLayout {
  /** Bytes of the cold text before padding. */
  dataBytes: number;
  /** Bytes of each shard (a multiple of 8, as the Reed-Solomon codec requires). */
  shardBytes: number;
}

export interface Manifest {
  formatVersion: 1;
  key: string;
  /** Decimal string of the commit revision that created this version; never changed by the healer. */
  version: string;
  /** The write (or patch or delete) that produced this version. */
  writeId: string;
  /** A tombstone: the key was deleted at `version`. Holds no blobs. */
  deleted: boolean;
  strategy: Strategy;
  /** The hot field paths in force for this write (as requested or configured). */
  hotFields: string[];
  /** Hot member paths the document actually has (field_hybrid only). */
  hotPaths: string[];
  /** Offsets in the cold text whose enclosing object has no cold members (lets hot-only patches size the document). */
  coldEmptyOffsets: number[];
  bytes: { logical: number; hot: number; cold: number; physical: number };
  /** sha256 of the canonical cold text; equal hash means the cold shards can be reused. Null without cold part. */
  coldHash: string | null;
  cold_layout: ColdLayout | null;
  /** Hot replicas (replication: the whole document; field_hybrid: the hot members). */
  hot: BlobRef[];
  /** Cold shards in shard order (index = position), empty for replication. */
  cold: BlobRef[];
  /** A target was missed at write time or a blob was found bad: the healer must complete it. */
  dirty: boolean;
  createdAt: string;
  updatedAt: string;
}

/** A manifest as stored, with the store revision of its last change (the compare-and-set token). */
export interface StoredManifest {
  manifest: Manifest;
  modRevision: number;
}

export function referencesWrite(manifest: Manifest, writeId: string): boolean {
  if (manifest.writeId === writeId) return true;
  for (const ref of manifest.hot) if (ref.writeId === writeId) return true;
  for (const ref of manifest.cold) if (ref.writeId === writeId) return true;
  return false;
}

export function referencesBlob(manifest: Manifest, node: string, blob: string): boolean {
  for (const ref of manifest.hot) if (ref.node === node && ref.blob === blob) return true;
  for (const ref of manifest.cold) if (ref.node === node && ref.blob === blob) return true;
  return false;
}

export function allRefs(manifest: Manifest): BlobRef[] {
  return [...manifest.hot, ...manifest.cold];
}
