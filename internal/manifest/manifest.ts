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
  /** `hot-0`..`hot-2` for replicas, `shard-0`..`shard-5` for erasure-coded shards, `cold-0`..`cold-2` for cold copies. */
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

/** How the cold bytes are kept: six Reed-Solomon shards, or three whole copies beside the hot replicas. */
export type ColdPlacement = 'shards' | 'with_replicas';
/** Compression of the stored cold bytes (internal/coldpart/README.md); `identity` = the cold text itself. */
export type ColdCodec = 'identity' | 'brotli' | 'deflate';

export interface ColdLayout {
  /** Bytes of the stored cold part (the cold text, or its compressed form) before padding. */
  dataBytes: number;
  /** Bytes of each shard (a multiple of 8, as the Reed-Solomon codec requires); with_replicas: dataBytes. */
  shardBytes: number;
  /** Absent (manifests before it existed) = 'shards': `cold` holds shard-0..shard-5. */
  placement?: ColdPlacement;
  /** Absent = 'identity': the stored bytes are the canonical cold text. */
  codec?: ColdCodec;
  /** Bytes of the canonical cold text before compression; absent = dataBytes. */
  textBytes?: number;
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
  /** Cold shards in shard order (index = position), or the cold copies (cold_layout.placement), empty for replication. */
  cold: BlobRef[];
  /** A target was missed at write time or a blob was found bad: the healer must complete it. */
  dirty: boolean;
  createdAt: string;
  updatedAt: string;
  /**
   * Tiering (internal/tiering; all optional, so manifests written before them read as before):
   * `hotFieldsSource` and `strategySource` say whether the client named the hot fields / strategy on the request
   * ('request') or the gateway chose them ('policy'; absent counts as 'policy'), because re-tiering and the
   * lifecycle leave a client's explicit choice alone. `expiresAtMs`: the time to live ends then (ms since the
   * epoch); the document reads as absent from that moment and the healer deletes it. `extraReplicas`: the last
   * this-many entries of `hot` are temporary extra copies of the hot payload that the healer added because the
   * document is read far more than others (not counted in `bytes.physical`; see extraReplicaRefs).
   */
  hotFieldsSource?: 'request' | 'policy';
  strategySource?: 'request' | 'policy';
  expiresAtMs?: number;
  extraReplicas?: number;
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

/** The extra (read-heavy) hot replicas: the last `extraReplicas` entries of `hot`. */
export function extraReplicaRefs(manifest: Manifest): BlobRef[] {
  const extra = manifest.extraReplicas ?? 0;
  return extra > 0 ? manifest.hot.slice(manifest.hot.length - extra) : [];
}

/** The hot replicas a write made (all of `hot` but the extra ones). */
export function baseHotRefs(manifest: Manifest): BlobRef[] {
  const extra = manifest.extraReplicas ?? 0;
  return extra > 0 ? manifest.hot.slice(0, manifest.hot.length - extra) : manifest.hot;
}

/** A live document whose time to live has run out reads as absent (it is deleted by the healer later). */
export function isExpired(manifest: Manifest, nowMs: number): boolean {
  return !manifest.deleted && manifest.expiresAtMs !== undefined && manifest.expiresAtMs <= nowMs;
}

/**
 * The manifest of a delete: no blobs, no sizes, the deleting write's id. Strategy and creation time carry over from
 * the live document when there is one (a tombstone is still the key's history), nothing else does.
 */
export function tombstoneManifest(key: string, writeId: string, live: Manifest | null, nowMs: number): Manifest {
  const now = new Date(nowMs).toISOString();
  return {
    formatVersion: 1,
    key,
    version: '0',
    writeId,
    deleted: true,
    strategy: live?.strategy ?? 'replication',
    hotFields: [],
    hotPaths: [],
    coldEmptyOffsets: [],
    bytes: { logical: 0, hot: 0, cold: 0, physical: 0 },
    coldHash: null,
    cold_layout: null,
    hot: [],
    cold: [],
    dirty: false,
    createdAt: live?.createdAt ?? now,
    updatedAt: now,
  };
}
