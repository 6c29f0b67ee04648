/**
 * The on-disk format of one blob file, version 1. README.md in this folder documents it byte by byte; keep the
 * two in step. Encoding asserts its inputs (the store validated them); decoding treats every deviation as
 * corruption, because the bytes came from a disk that may have rotted.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { assert } from '../core/assert.js';
import { LIMITS } from '../core/limits.js';

/** "STRB": Strata blob. */
export const BLOB_FILE_MAGIC = Buffer.from('STRB', 'ascii');
export const BLOB_FILE_VERSION = 1;
/** magic (4) + version (2) + reserved (2) + header length (4) + header CRC-32 (4). */
export const BLOB_FILE_PREFIX_BYTES = 16;
/**
 * Header JSON, bytes. Valid headers stay far below it: a key (1 KiB), meta (8 KiB) and two names of 128 bytes,
 * even if JSON escaping grew every byte sixfold (`\u0001`), plus the fixed fields, are under 58 KiB.
 */
export const BLOB_FILE_HEADER_BYTES_MAX = 64 * 1024;
/** A file longer than this cannot be a blob; reading it would only waste memory. */
export const BLOB_FILE_BYTES_MAX = BLOB_FILE_PREFIX_BYTES + BLOB_FILE_HEADER_BYTES_MAX + LIMITS.blobBytesMax;

/** The self-describing header stored in front of the payload. */
export interface StoredHeader {
  id: string;
  key: string;
  writeId: string;
  part: string;
  meta: string;
  /** Payload bytes. */
  size: number;
  /** sha256 of the payload, lowercase hex. */
  checksum: string;
  createdAtMs: number;
}

/** The bytes on disk do not form a valid blob file. `reason` is the violated condition. */
export class BlobFormatError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'BlobFormatError';
  }
}

const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Prefix and header JSON: everything in the file before the payload. */
export function encodeBlobHead(header: StoredHeader): Buffer {
  assert(Number.isSafeInteger(header.size) && header.size >= 0, 'header.size is a non-negative integer');
  assert(SHA256_HEX_PATTERN.test(header.checksum), 'header.checksum is sha256 hex');
  // Fixed member order, so that equal headers are equal bytes.
  const json = Buffer.from(
    JSON.stringify({
      id: header.id,
      key: header.key,
      writeId: header.writeId,
      part: header.part,
      meta: header.meta,
      size: header.size,
      checksum: header.checksum,
      createdAtMs: header.createdAtMs,
    }),
    'utf8',
  );
  assert(json.length <= BLOB_FILE_HEADER_BYTES_MAX, 'header JSON bytes <= BLOB_FILE_HEADER_BYTES_MAX');
  const head = Buffer.alloc(BLOB_FILE_PREFIX_BYTES + json.length);
  BLOB_FILE_MAGIC.copy(head, 0);
  head.writeUInt16BE(BLOB_FILE_VERSION, 4);
  head.writeUInt16BE(0, 6);
  head.writeUInt32BE(json.length, 8);
  head.writeUInt32BE(crc32(json), 12);
  json.copy(head, BLOB_FILE_PREFIX_BYTES);
  return head;
}

export interface DecodedPrefix {
  headerBytes: number;
  headerCrc32: number;
}

export function decodeBlobPrefix(prefix: Buffer): DecodedPrefix {
  if (prefix.length < BLOB_FILE_PREFIX_BYTES) throw new BlobFormatError('file shorter than the 16-byte prefix');
  if (!prefix.subarray(0, 4).equals(BLOB_FILE_MAGIC)) throw new BlobFormatError('magic != "STRB"');
  const version = prefix.readUInt16BE(4);
  if (version !== BLOB_FILE_VERSION) throw new BlobFormatError(`format version ${version} != ${BLOB_FILE_VERSION}`);
  if (prefix.readUInt16BE(6) !== 0) throw new BlobFormatError('reserved prefix bytes != 0');
  const headerBytes = prefix.readUInt32BE(8);
  if (headerBytes > BLOB_FILE_HEADER_BYTES_MAX) {
    throw new BlobFormatError(`header length ${headerBytes} > BLOB_FILE_HEADER_BYTES_MAX`);
  }
  return { headerBytes, headerCrc32: prefix.readUInt32BE(12) };
}

/** Parses and checks the header JSON; `expectedId` is the file's name, which the header must repeat. */
export function decodeBlobHeader(json: Buffer, prefix: DecodedPrefix, expectedId: string): StoredHeader {
  if (json.length !== prefix.headerBytes) throw new BlobFormatError('header shorter than its length field');
  if (crc32(json) !== prefix.headerCrc32) throw new BlobFormatError('header CRC-32 mismatch');
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch {
    throw new BlobFormatError('header is not valid JSON');
  }
  if (typeof value !== 'object' || value === null) throw new BlobFormatError('header is not a JSON object');
  const h = value as Record<string, unknown>;
  for (const field of ['id', 'key', 'writeId', 'part', 'meta', 'checksum'] as const) {
    if (typeof h[field] !== 'string') throw new BlobFormatError(`header.${field} is not a string`);
  }
  const size = h['size'];
  const createdAtMs = h['createdAtMs'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > LIMITS.blobBytesMax) {
    throw new BlobFormatError('header.size is not an integer in [0, blobBytesMax]');
  }
  if (typeof createdAtMs !== 'number' || !Number.isFinite(createdAtMs)) {
    throw new BlobFormatError('header.createdAtMs is not a number');
  }
  if (!SHA256_HEX_PATTERN.test(h['checksum'] as string)) throw new BlobFormatError('header.checksum is not sha256 hex');
  if (h['id'] !== expectedId) throw new BlobFormatError(`header.id != file name ${expectedId}`);
  return {
    id: h['id'] as string,
    key: h['key'] as string,
    writeId: h['writeId'] as string,
    part: h['part'] as string,
    meta: h['meta'] as string,
    size,
    checksum: h['checksum'] as string,
    createdAtMs,
  };
}

/** Total file bytes for a header of `headerBytes` and a payload of `size`. */
export function blobFileBytes(headerBytes: number, size: number): number {
  return BLOB_FILE_PREFIX_BYTES + headerBytes + size;
}
