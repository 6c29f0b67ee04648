import type { BlobHeader, BlobInfo, StoreUsage } from '../blobstore/blob-store.js';

/**
 * How gateways and healers reach one storage node. Implementations: HTTP with pooled keep-alive connections
 * (http-node-client.ts) and in-process (local-node-client.ts, used by the all-in-one mode for speed).
 *
 * Operating errors are StrataErrors: NODE_UNAVAILABLE (down, refused, timed out), BLOB_NOT_FOUND,
 * BLOB_CORRUPT, BLOB_EXISTS, BLOB_TOO_LARGE, DISK_FULL.
 */
export interface NodeClient {
  readonly nodeId: string;
  readonly address: string;
  put(header: BlobHeader, data: Buffer, options?: CallOptions): Promise<BlobInfo>;
  get(id: string, options?: CallOptions): Promise<Buffer>;
  stat(id: string, options?: CallOptions): Promise<BlobInfo | null>;
  delete(id: string, options?: CallOptions): Promise<boolean>;
  list(after: string | null, limit: number, options?: CallOptions): Promise<BlobInfo[]>;
  verify(id: string, options?: CallOptions): Promise<'ok' | 'corrupt' | 'missing'>;
  usage(options?: CallOptions): Promise<StoreUsage>;
  /** True when the node answers its health check within the timeout. */
  ping(options?: CallOptions): Promise<boolean>;
  /**
   * The health check with the node's capacity report: whether it takes new blobs (false when its disk is down to
   * its reserve, internal/reserve) and why not. Pools probe with it when a client has it.
   */
  probe?(options?: CallOptions): Promise<NodeProbe>;
  close(): Promise<void>;
}

export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface NodeProbe {
  up: boolean;
  /** Takes new blobs; a node that is up but not writable still serves reads and deletes. */
  writable: boolean;
  reason: string | null;
}
