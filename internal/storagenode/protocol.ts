/**
 * The storage-node HTTP protocol, version 1: paths, header names and the shapes of JSON answers, shared by the
 * node (app.ts) and its client (internal/nodeclient/http-node-client.ts) so the two cannot drift apart.
 * docs: internal/storagenode/README.md.
 */
import type { BlobInfo, StoreUsage } from '../blobstore/blob-store.js';

export const NODE_API_PREFIX = '/v1';

export const NODE_HEADERS = {
  /** Blob header fields on PUT, each percent-encoded UTF-8 (encodeURIComponent). */
  key: 'x-strata-key',
  writeId: 'x-strata-write-id',
  part: 'x-strata-part',
  meta: 'x-strata-meta',
  /** sha256 hex of the payload: checked by the node on PUT, sent by the node on GET. */
  checksum: 'x-strata-checksum',
  /** Payload bytes, on GET and HEAD. */
  size: 'x-strata-size',
} as const;

/**
 * How long a node keeps an idle keep-alive connection open. Clients close theirs well before (the HTTP node client's
 * idle timeout is a tenth of this at most), so a client never reuses a socket the node is closing: with Node's
 * default of 5 s against clients' 4 s, a client whose event loop stalled for a second got a connection reset from a
 * healthy node.
 */
export const NODE_SERVER_KEEP_ALIVE_MS = 65_000;

/**
 * Request header block a node accepts, bytes. Larger than the gateway's (16 KiB) because a PUT carries the key
 * (1 KiB) and meta (8 KiB) percent-encoded, which can triple them.
 */
export const NODE_HEADER_BYTES_MAX = 64 * 1024;

/** Body of an error answer (`{"error":{"code","message"}}`) a client reads at most. */
export const NODE_ERROR_BODY_BYTES_MAX = 64 * 1024;

export function blobPath(id: string): string {
  return `${NODE_API_PREFIX}/blobs/${encodeURIComponent(id)}`;
}

export interface ListAnswer {
  blobs: BlobInfo[];
  next: string | null;
}

/** Checks the shape of a BlobInfo from the wire; null when it is not one. */
export function parseBlobInfo(value: unknown): BlobInfo | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  for (const field of ['id', 'key', 'writeId', 'part', 'meta', 'checksum'] as const) {
    if (typeof v[field] !== 'string') return null;
  }
  if (typeof v['size'] !== 'number' || typeof v['createdAtMs'] !== 'number') return null;
  if (v['corrupt'] !== undefined && typeof v['corrupt'] !== 'boolean') return null;
  const info: BlobInfo = {
    id: v['id'] as string,
    key: v['key'] as string,
    writeId: v['writeId'] as string,
    part: v['part'] as string,
    meta: v['meta'] as string,
    size: v['size'],
    checksum: v['checksum'] as string,
    createdAtMs: v['createdAtMs'],
  };
  if (v['corrupt'] === true) info.corrupt = true;
  return info;
}

export function parseStoreUsage(value: unknown): StoreUsage | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const { blobs, payloadBytes, bytesUsed, bytesFree } = v;
  if (typeof blobs !== 'number' || typeof bytesUsed !== 'number' || typeof bytesFree !== 'number') return null;
  const usage: StoreUsage = { blobs, bytesUsed, bytesFree };
  if (typeof payloadBytes === 'number') usage.payloadBytes = payloadBytes;
  if (typeof v['reclaimableBytes'] === 'number') usage.reclaimableBytes = v['reclaimableBytes'];
  if (typeof v['reclaimedBytes'] === 'number') usage.reclaimedBytes = v['reclaimedBytes'];
  return usage;
}

export type VerifyResult = 'ok' | 'corrupt' | 'missing';

export function parseVerifyResult(value: unknown): VerifyResult | null {
  if (typeof value !== 'object' || value === null) return null;
  const result = (value as Record<string, unknown>)['result'];
  return result === 'ok' || result === 'corrupt' || result === 'missing' ? result : null;
}
