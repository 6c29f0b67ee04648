/**
 * The blob store inside a storage node: immutable blobs addressed by id, durable before `put` resolves, with a
 * checksum verified on every read. Implementations: one file per blob (file-blob-store.ts); Haystack-style
 * volumes replace it in the volumes issue.
 *
 * Every blob carries a small self-describing header (key, write id, part, and opaque `meta` JSON such as the
 * shard geometry) so that manifests can be rebuilt from the nodes if the metadata store is lost.
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
  key: string;
  writeId: string;
  part: string;
  /** Opaque JSON text (at most LIMITS.blobMetaBytesMax bytes), e.g. shard geometry for recovery. */
  meta: string;
}

export interface BlobInfo extends BlobHeader {
  size: number;
  /** sha256 of the payload, hex. */
  checksum: string;
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
