/**
 * The storage-node HTTP protocol, version 1: paths, header names and the shapes of JSON answers, shared by the
 * node (app.ts) and its client (internal/nodeclient/http-node-client.ts) so the two cannot drift apart.
 * docs: internal/storagenode/README.md.
 */
import { BLOB_DESCRIPTOR_BYTES_MAX, type BlobDescriptor, type BlobInfo, type StoreUsage } from '../blobstore/blob-store.js';

export const NODE_API_PREFIX = '/v1';

export const NODE_HEADERS = {
  /** Blob header fields on PUT, each percent-encoded UTF-8 (encodeURIComponent). */
  key: 'x-strata-key',
  writeId: 'x-strata-write-id',
  part: 'x-strata-part',
  meta: 'x-strata-meta',
  /**
   * sha256 hex of the payload: checked by the node on PUT. Sent by the node on GET: the checksum the blob keeps
   * (format 1: all 64 digits; format 2: the first 16), which the client checks the payload against.
   */
  checksum: 'x-strata-checksum',
  /** `2` on a PUT of a format-2 blob (absent: format 1, with key and meta). */
  format: 'x-strata-format',
  /** A format-2 blob's descriptor: `whole:<base64url>` or `fragment:<base64url>` (absent: none). */
  descriptor: 'x-strata-descriptor',
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
  blobs: WireBlobInfo[];
  next: string | null;
}

/** A BlobInfo as JSON: a descriptor's bytes travel as base64url. */
export type WireBlobInfo = Omit<BlobInfo, 'descriptor'> & { descriptor?: { kind: BlobDescriptor['kind']; bytes: string } };

export function wireBlobInfo(info: BlobInfo): WireBlobInfo {
  if (info.descriptor === undefined) return info as WireBlobInfo;
  return { ...info, descriptor: { kind: info.descriptor.kind, bytes: Buffer.from(info.descriptor.bytes).toString('base64url') } };
}

/** The header value of a descriptor. */
export function descriptorHeaderValue(descriptor: BlobDescriptor): string {
  return `${descriptor.kind}:${Buffer.from(descriptor.bytes).toString('base64url')}`;
}

const BASE64URL_PATTERN = /^[A-Za-z0-9_-]*$/;

/** A descriptor from its header value or wire form, or null when it is not one. */
export function parseDescriptor(kind: unknown, bytes: unknown): BlobDescriptor | null {
  if ((kind !== 'whole' && kind !== 'fragment') || typeof bytes !== 'string' || !BASE64URL_PATTERN.test(bytes)) return null;
  if (bytes.length > Math.ceil((BLOB_DESCRIPTOR_BYTES_MAX * 4) / 3)) return null;
  const decoded = Buffer.from(bytes, 'base64url');
  if (decoded.length > BLOB_DESCRIPTOR_BYTES_MAX) return null;
  return { kind, bytes: new Uint8Array(decoded) };
}

export function parseDescriptorHeader(value: string): BlobDescriptor | null {
  const colon = value.indexOf(':');
  return colon < 0 ? null : parseDescriptor(value.slice(0, colon), value.slice(colon + 1));
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
  if (v['format'] !== undefined) {
    if (v['format'] !== 2) return null;
    info.format = 2;
  }
  if (v['descriptor'] !== undefined) {
    const d = v['descriptor'] as Record<string, unknown> | null;
    const descriptor = typeof d === 'object' && d !== null ? parseDescriptor(d['kind'], d['bytes']) : null;
    if (descriptor === null) return null;
    info.descriptor = descriptor;
  }
  if (v['crc32c'] !== undefined) {
    if (typeof v['crc32c'] !== 'number' || !Number.isInteger(v['crc32c'])) return null;
    info.crc32c = v['crc32c'];
  }
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
