/**
 * Checks on what callers hand the volume store: options (assertions: a bad option is a programmer error in the
 * wiring), blob ids and headers (StrataErrors: bad input from a request), and the mapping of a full disk to
 * DISK_FULL. The rules and messages are FileBlobStore's, so that the two stores answer alike.
 */
import { assert } from '../../core/assert.js';
import { StrataError } from '../../core/errors.js';
import { LIMITS } from '../../core/limits.js';
import { BLOB_DESCRIPTOR_BYTES_MAX, blobIdNames, type BlobHeader } from '../blob-store.js';
import { requireValidId, validateHeader as validateSharedHeader } from '../blob-input.js';
import { errnoCode } from '../durable-fs.js';
import { VOLUME_OFFSET_BYTES_MAX } from './needle-index.js';
import { NEEDLE_BYTES_MAX, NEEDLE_NAME_BYTES_MAX } from './needle.js';
import { SUPERBLOCK_BYTES } from './volume.js';
import type { VolumeBlobStoreOptions } from './volume-blob-store.js';

/** Offsets are kept in 32 bits of 8-byte units (needle-index.ts); a volume may overshoot its limit by one needle. */
export const VOLUME_BYTES_MAX_LIMIT = VOLUME_OFFSET_BYTES_MAX - NEEDLE_BYTES_MAX;

export function validateOptions(options: VolumeBlobStoreOptions): void {
  assert(typeof options.dir === 'string' && options.dir.length > 0, 'options.dir is a non-empty path');
  const { capacityBytes, volumeBytesMax, blobBytesMax } = options;
  assert(capacityBytes === undefined || (Number.isSafeInteger(capacityBytes) && capacityBytes >= 0), 'capacityBytes >= 0');
  assert(
    volumeBytesMax === undefined ||
      (Number.isSafeInteger(volumeBytesMax) && volumeBytesMax > SUPERBLOCK_BYTES && volumeBytesMax <= VOLUME_BYTES_MAX_LIMIT),
    'volumeBytesMax in (SUPERBLOCK_BYTES, VOLUME_BYTES_MAX_LIMIT]',
  );
  assert(
    blobBytesMax === undefined || (Number.isSafeInteger(blobBytesMax) && blobBytesMax >= 0 && blobBytesMax <= LIMITS.blobBytesMax),
    'blobBytesMax in [0, LIMITS.blobBytesMax]',
  );
  const ratio = options.compactGarbageRatioMin;
  assert(ratio === undefined || (ratio >= 0 && ratio <= 1), 'compactGarbageRatioMin in [0, 1]');
  const bytesMin = options.compactGarbageBytesMin;
  assert(bytesMin === undefined || (Number.isSafeInteger(bytesMin) && bytesMin >= 0), 'compactGarbageBytesMin >= 0');
  const idleRatio = options.idleGarbageRatioMin;
  assert(idleRatio === undefined || (idleRatio >= 0 && idleRatio <= 1), 'idleGarbageRatioMin in [0, 1]');
  const idleBytesMin = options.idleGarbageBytesMin;
  assert(idleBytesMin === undefined || (Number.isSafeInteger(idleBytesMin) && idleBytesMin >= 0), 'idleGarbageBytesMin >= 0');
  const rate = options.compactBytesPerSecMax;
  assert(rate === undefined || (rate > 0 && !Number.isNaN(rate)), 'compactBytesPerSecMax > 0');
  const mergeAfter = options.mergeAfterSealedVolumes;
  assert(mergeAfter === undefined || (Number.isSafeInteger(mergeAfter) && mergeAfter >= 0), 'mergeAfterSealedVolumes >= 0');
  const mergeBytes = options.mergeBytesMax;
  assert(
    mergeBytes === undefined || (Number.isSafeInteger(mergeBytes) && mergeBytes >= 0 && mergeBytes <= VOLUME_BYTES_MAX_LIMIT),
    'mergeBytesMax in [0, VOLUME_BYTES_MAX_LIMIT]',
  );
  for (const field of ['checkpointEveryOps', 'checkpointEveryBytes', 'idleCompactAfterMs'] as const) {
    const value = options[field];
    assert(value === undefined || (Number.isSafeInteger(value) && value >= 1), `${field} >= 1`);
  }
}

/** The file system is out of space (or quota): an operating condition with its own code, not an I/O failure. */
export function diskFullOr(err: unknown): unknown {
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StrataError('DISK_FULL', `no space left on the device (${code})`);
  return err;
}

export { requireValidId };

export function validateHeader(header: BlobHeader): void {
  validateSharedHeader(header, NEEDLE_NAME_BYTES_MAX);
  const format: unknown = header.format;
  if (format === undefined) {
    if (header.descriptor !== undefined) throw new StrataError('INVALID_REQUEST', 'a descriptor needs header.format 2');
    return;
  }
  if (format !== 2) throw new StrataError('INVALID_REQUEST', `header.format ${String(format)} is not 2 (or absent for format 1)`);
  // Format 2 stores none of these: accepting them would hand back a BlobInfo that differs from what was put.
  if (header.key !== '' || header.meta !== '') {
    throw new StrataError('INVALID_REQUEST', 'format 2 stores no key or meta: pass "" (the descriptor carries them)');
  }
  const names = blobIdNames(header.id);
  for (const field of ['writeId', 'part'] as const) {
    if (header[field] !== '' && header[field] !== names[field]) {
      throw new StrataError('INVALID_REQUEST', `format 2: header.${field} must be "" or ${JSON.stringify(names[field])}, what the id names`);
    }
  }
  const descriptor: unknown = header.descriptor;
  if (descriptor === undefined) return;
  const { kind, bytes } = descriptor as { kind?: unknown; bytes?: unknown };
  if ((kind !== 'whole' && kind !== 'fragment') || !(bytes instanceof Uint8Array)) {
    throw new StrataError('INVALID_REQUEST', 'header.descriptor is not { kind: "whole" | "fragment", bytes }');
  }
  if (bytes.length === 0) throw new StrataError('INVALID_REQUEST', 'header.descriptor is empty: omit it instead');
  if (bytes.length > BLOB_DESCRIPTOR_BYTES_MAX) {
    throw new StrataError('BLOB_TOO_LARGE', `descriptor is ${bytes.length} bytes; at most ${BLOB_DESCRIPTOR_BYTES_MAX}`);
  }
}
