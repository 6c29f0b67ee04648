/**
 * The blob store inside a storage node: immutable blobs addressed by id, durable before `put` resolves, with a
 * checksum verified on every read. Implementations: Haystack-style volumes (volume/, what storage nodes run) and the
 * first release's one file per blob (file-blob-store.ts, kept for the benchmarks' comparison).
 *
 * Every blob carries a small self-describing header (key, write id, part, and opaque `meta` JSON such as the
 * shard geometry) so that manifests can be rebuilt from the nodes if the metadata store is lost. A format-2 blob
 * carries the same facts more compactly: write id and part in its id, the rest in an opaque `descriptor`.
 */
export interface BlobStore {
  /**
   * Stores `data` under `header.id` and resolves only once it is durable (fsynced). Putting the same id again
   * with identical bytes succeeds (idempotent retry); with different bytes it throws BLOB_EXISTS, unless the
   * stored copy is corrupt, in which case it is replaced.
   */
  put(header: BlobHeader, data: Buffer): Promise<BlobInfo>;
  /** The payload; throws BLOB_NOT_FOUND, or BLOB_CORRUPT when the checksum does not match. */
  get(id: string): Promise<{ info: BlobInfo; data: Buffer }>;
  /** Metadata only, or null when absent. */
  stat(id: string): Promise<BlobInfo | null>;
  /** Removes the blob; returns false when it did not exist. Durable before it resolves. */
  delete(id: string): Promise<boolean>;
  /** Inventory in id order, strictly after `after`. */
  list(after: string | null, limit: number): Promise<BlobInfo[]>;
  /** Re-reads the blob and checks its checksum. */
  verify(id: string): Promise<'ok' | 'corrupt' | 'missing'>;
  usage(): Promise<StoreUsage>;
  close(): Promise<void>;
}

export interface BlobHeader {
  id: string;
  /** Format 2: not stored; pass ''. */
  key: string;
  /** Format 2: not stored; pass '' or what the id says (blobIdNames), which is what BlobInfo reports. */
  writeId: string;
  part: string;
  /** Opaque JSON text (at most LIMITS.blobMetaBytesMax bytes), e.g. shard geometry for recovery. Format 2: ''. */
  meta: string;
  /**
   * 2: a compact blob (needle format 2 in the volume store): key and meta are not stored, the document's
   * self-description travels in `descriptor` instead, and the checksum kept is 64 bits. Absent: format 1.
   */
  format?: 2;
  /** Format 2 only: opaque to the store, at most BLOB_DESCRIPTOR_BYTES_MAX bytes. Absent: none. */
  descriptor?: BlobDescriptor;
}

/** What a format-2 blob carries of its document (docs/design/compact-formats.md 3.3); the store never reads it. */
export interface BlobDescriptor {
  /** 'whole': the descriptor itself; 'fragment': one Reed-Solomon fragment of it (shards). */
  kind: 'whole' | 'fragment';
  bytes: Uint8Array;
}

/** A descriptor's length is one byte in needle format 2. */
export const BLOB_DESCRIPTOR_BYTES_MAX = 255;

export interface BlobInfo extends BlobHeader {
  size: number;
  /**
   * Format 1: sha256 of the payload, 64 hex digits. Format 2: its first 64 bits, 16 hex digits (the manifest's
   * 64-bit checksum; a format-1 checksum truncates to it).
   */
  checksum: string;
  /** Format 2: CRC-32C of the payload (the needle's data CRC). */
  crc32c?: number;
  createdAtMs: number;
  /** Set once a read or a scrub found the bytes no longer match the checksum. */
  corrupt?: boolean;
}

export interface StoreUsage {
  blobs: number;
  /** Bytes of blob payloads (what manifests account for), without headers. */
  payloadBytes?: number;
  bytesUsed: number;
  bytesFree: number;
  /** Bytes on disk that compaction would give back now (stores that compact: the volume store). */
  reclaimableBytes?: number;
  /** Bytes compaction gave back since the store was opened. */
  reclaimedBytes?: number;
}

/**
 * The write id and part a blob id names: `<writeId>.<part>`, optionally followed by a healer's `.<suffix>`
 * (repairs, moves, extra replicas). A format-2 blob stores neither separately, so its BlobInfo reports these.
 */
export function blobIdNames(id: string): { writeId: string; part: string } {
  const dot = id.indexOf('.');
  if (dot < 0) return { writeId: id, part: '' };
  const next = id.indexOf('.', dot + 1);
  return { writeId: id.slice(0, dot), part: id.slice(dot + 1, next < 0 ? id.length : next) };
}
