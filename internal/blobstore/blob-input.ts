/**
 * Checks every BlobStore makes on what it is handed (ids and headers from a request): StrataErrors with the same
 * codes and messages whichever store answers.
 */
import { StrataError } from '../core/errors.js';
import { BLOB_ID_PATTERN, isValidBlobId } from '../core/ids.js';
import { LIMITS } from '../core/limits.js';
import type { BlobHeader } from './blob-store.js';

export function requireValidId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !isValidBlobId(id)) {
    const shown = typeof id === 'string' ? JSON.stringify(id.slice(0, 140)) : typeof id;
    throw new StrataError(
      'INVALID_REQUEST',
      `blob id ${shown} is invalid: it must match ${BLOB_ID_PATTERN.source} and not contain ".."`,
    );
  }
}

/** `nameBytesMax`: the longest write id and part the store's on-disk format holds. */
export function validateHeader(header: BlobHeader, nameBytesMax: number): void {
  if (typeof header !== 'object' || header === null) throw new StrataError('INVALID_REQUEST', 'header is missing');
  requireValidId(header.id);
  for (const field of ['key', 'writeId', 'part', 'meta'] as const) {
    if (typeof header[field] !== 'string') throw new StrataError('INVALID_REQUEST', `header.${field} is not a string`);
  }
  const keyBytes = Buffer.byteLength(header.key, 'utf8');
  if (keyBytes > LIMITS.keyBytesMax) {
    throw new StrataError('INVALID_KEY', `key is ${keyBytes} bytes; keyBytesMax is ${LIMITS.keyBytesMax}`);
  }
  for (const field of ['writeId', 'part'] as const) {
    const bytes = Buffer.byteLength(header[field], 'utf8');
    if (bytes > nameBytesMax) {
      throw new StrataError('INVALID_REQUEST', `${field} is ${bytes} bytes; at most ${nameBytesMax}`);
    }
  }
  const metaBytes = Buffer.byteLength(header.meta, 'utf8');
  if (metaBytes > LIMITS.blobMetaBytesMax) {
    throw new StrataError('BLOB_TOO_LARGE', `meta is ${metaBytes} bytes; blobMetaBytesMax is ${LIMITS.blobMetaBytesMax}`);
  }
}

/** What a store keeps of a blob that a re-put must match to count as the same blob (an idempotent retry). */
export interface StoredIdentity {
  checksum: string;
  size: number;
  key: string;
  writeId: string;
  part: string;
  meta: string;
}

export function sameBlob(stored: StoredIdentity, header: BlobHeader, checksum: string, size: number): boolean {
  return (
    stored.checksum === checksum &&
    stored.size === size &&
    stored.key === header.key &&
    stored.writeId === header.writeId &&
    stored.part === header.part &&
    stored.meta === header.meta
  );
}
