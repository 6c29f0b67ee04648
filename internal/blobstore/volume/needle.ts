/**
 * The needle: one blob (or one tombstone) inside a volume file, format version 1. README.md in this folder
 * documents it byte by byte; keep the two in step. Encoding asserts its inputs (the store validated them);
 * decoding treats every deviation as corruption, because the bytes came from a disk that may have rotted or from
 * a write that a crash tore.
 *
 * A needle is self-describing (key, write id, part and meta travel with the bytes, as architecture.md asks), and
 * it carries two CRC-32C sums: one over the head, so that a scan can trust the lengths it reads before it trusts
 * the data, and one over the data, so that a torn or rotted payload is found on every read.
 */
import { assert } from '../../core/assert.js';
import { isValidBlobId } from '../../core/ids.js';
import { LIMITS } from '../../core/limits.js';
import { crc32c } from './crc32c.js';

/** "STRN": Strata needle. */
export const NEEDLE_MAGIC = 0x5354524e;
export const NEEDLE_VERSION = 1;
/** Bytes before the variable-length fields. */
export const NEEDLE_FIXED_BYTES = 72;
/** Needles start at multiples of this, so that offsets can be kept divided by it (see needle-index.ts). */
export const NEEDLE_ALIGN_BYTES = 8;
/** Bytes of the head CRC and of the data CRC. */
const CRC_BYTES = 4;
/** Bytes of `id`, `writeId` and `part` in a needle: each has a one-byte length. */
export const NEEDLE_NAME_BYTES_MAX = 128;
/** Flag bit 0: the needle deletes its id instead of storing it. */
export const NEEDLE_FLAG_TOMBSTONE = 1;
const SHA256_BYTES = 32;
const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;
const ZERO_SHA256_HEX = '0'.repeat(64);
/** The most a needle's head can take: fixed part, CRC and every variable field at its limit. */
export const NEEDLE_HEAD_BYTES_MAX =
  NEEDLE_FIXED_BYTES + 3 * NEEDLE_NAME_BYTES_MAX + LIMITS.keyBytesMax + LIMITS.blobMetaBytesMax + CRC_BYTES;
/** The longest needle a volume can hold; a needle header claiming more is corrupt. */
export const NEEDLE_BYTES_MAX = alignUp(NEEDLE_HEAD_BYTES_MAX + LIMITS.blobBytesMax + CRC_BYTES);

/** What a needle says about its blob. Tombstones have empty key, writeId, part and meta, size 0. */
export interface NeedleHead {
  tombstone: boolean;
  id: string;
  key: string;
  writeId: string;
  part: string;
  meta: string;
  /** Payload bytes. */
  size: number;
  /** sha256 of the payload, 64 lowercase hex digits (zeros in a tombstone). */
  checksum: string;
  createdAtMs: number;
  /** Position in the store's history: every needle ever appended has a larger one than all before it. */
  seq: number;
  /** Tombstones: the volume that held the needle being deleted (compaction.ts says why). Puts: 0. */
  targetVolume: number;
}

/** The head (fixed part, variable fields, head CRC) of a needle; the data and the tail follow it on disk. */
export function encodeNeedleHead(head: NeedleHead): Buffer {
  assert(isValidBlobId(head.id), 'needle id is a valid blob id');
  assert(Number.isSafeInteger(head.size) && head.size >= 0 && head.size <= LIMITS.blobBytesMax, 'size in range');
  assert(Number.isSafeInteger(head.seq) && head.seq >= 1, 'seq >= 1');
  assert(Number.isSafeInteger(head.createdAtMs) && head.createdAtMs >= 0, 'createdAtMs is a non-negative integer');
  assert(Number.isInteger(head.targetVolume) && head.targetVolume >= 0 && head.targetVolume <= 0xffffffff, 'targetVolume is u32');
  assert(SHA256_HEX_PATTERN.test(head.checksum), 'checksum is sha256 hex');
  const id = Buffer.from(head.id, 'latin1');
  const key = Buffer.from(head.key, 'utf8');
  const writeId = Buffer.from(head.writeId, 'utf8');
  const part = Buffer.from(head.part, 'utf8');
  const meta = Buffer.from(head.meta, 'utf8');
  assert(writeId.length <= NEEDLE_NAME_BYTES_MAX && part.length <= NEEDLE_NAME_BYTES_MAX, 'names <= 128 bytes');
  assert(key.length <= LIMITS.keyBytesMax && meta.length <= LIMITS.blobMetaBytesMax, 'key and meta within limits');
  if (head.tombstone) {
    assert(head.size === 0 && key.length + writeId.length + part.length + meta.length === 0, 'tombstone is bare');
  }
  const bytes = needleHeadBytes(id.length, key.length, writeId.length, part.length, meta.length);
  const out = Buffer.alloc(bytes);
  out.writeUInt32BE(NEEDLE_MAGIC, 0);
  out.writeUInt8(NEEDLE_VERSION, 4);
  out.writeUInt8(head.tombstone ? NEEDLE_FLAG_TOMBSTONE : 0, 5);
  out.writeUInt8(id.length, 6);
  out.writeUInt8(writeId.length, 7);
  out.writeUInt8(part.length, 8);
  out.writeUInt8(0, 9);
  out.writeUInt16BE(key.length, 10);
  out.writeUInt16BE(meta.length, 12);
  out.writeUInt16BE(0, 14);
  out.writeUInt32BE(head.size, 16);
  out.writeUInt32BE(head.targetVolume, 20);
  writeU64(out, head.seq, 24);
  writeU64(out, head.createdAtMs, 32);
  out.write(head.checksum, 40, SHA256_BYTES, 'hex');
  let at = NEEDLE_FIXED_BYTES;
  for (const field of [id, key, writeId, part, meta]) at += field.copy(out, at);
  out.writeUInt32BE(crc32c(out, 0, 0, at), at);
  return out;
}

/** The data CRC and the zero padding that end a needle whose head is `headBytes` long. */
export function encodeNeedleTail(dataCrc: number, headBytes: number, size: number): Buffer {
  const tail = Buffer.alloc(needleBytes(headBytes, size) - headBytes - size);
  tail.writeUInt32BE(dataCrc >>> 0, 0);
  return tail;
}

/** A tombstone for `id`, whose live needle was in volume `targetVolume`: head and tail in one Buffer. */
export function encodeTombstone(id: string, seq: number, createdAtMs: number, targetVolume: number): Buffer {
  const head = encodeNeedleHead({
    tombstone: true,
    id,
    key: '',
    writeId: '',
    part: '',
    meta: '',
    size: 0,
    checksum: ZERO_SHA256_HEX,
    createdAtMs,
    seq,
    targetVolume,
  });
  return Buffer.concat([head, encodeNeedleTail(crc32c(Buffer.alloc(0)), head.length, 0)]);
}

export function needleHeadBytes(idBytes: number, keyBytes: number, writeIdBytes: number, partBytes: number, metaBytes: number): number {
  return NEEDLE_FIXED_BYTES + idBytes + keyBytes + writeIdBytes + partBytes + metaBytes + CRC_BYTES;
}

/** Bytes of a whole needle on disk: head, data, data CRC, padding to NEEDLE_ALIGN_BYTES. */
export function needleBytes(headBytes: number, size: number): number {
  return alignUp(headBytes + size + CRC_BYTES);
}

export function alignUp(bytes: number): number {
  return Math.ceil(bytes / NEEDLE_ALIGN_BYTES) * NEEDLE_ALIGN_BYTES;
}

export type HeadDecode =
  | { state: 'ok'; head: NeedleHead; headBytes: number; needleBytes: number }
  /** Not enough bytes to decide: at least `bytesNeeded` from `at` are required. */
  | { state: 'short'; bytesNeeded: number }
  | { state: 'invalid'; reason: string };

/**
 * Decodes the head of the needle at `buf[at..]`, of which `end - at` bytes are available. Checks magic, version,
 * flags, reserved bytes, every length against its limit, the head CRC and the id's syntax: a head that passes can
 * be trusted to say where the needle ends. Scans, which need only the id and the lengths, pass `withText: false`
 * and get empty key, writeId, part, meta and checksum (decoding them is a good part of a scan's time).
 */
export function decodeNeedleHead(buf: Buffer, at = 0, end = buf.length, withText = true): HeadDecode {
  if (end - at < NEEDLE_FIXED_BYTES) return { state: 'short', bytesNeeded: NEEDLE_FIXED_BYTES };
  if (buf.readUInt32BE(at) !== NEEDLE_MAGIC) return { state: 'invalid', reason: 'magic != "STRN"' };
  const version = buf.readUInt8(at + 4);
  if (version !== NEEDLE_VERSION) return { state: 'invalid', reason: `needle version ${version} != ${NEEDLE_VERSION}` };
  const flags = buf.readUInt8(at + 5);
  if ((flags & ~NEEDLE_FLAG_TOMBSTONE) !== 0) return { state: 'invalid', reason: `unknown flags ${flags}` };
  const idLen = buf.readUInt8(at + 6);
  const writeIdLen = buf.readUInt8(at + 7);
  const partLen = buf.readUInt8(at + 8);
  const keyLen = buf.readUInt16BE(at + 10);
  const metaLen = buf.readUInt16BE(at + 12);
  const size = buf.readUInt32BE(at + 16);
  if (buf.readUInt8(at + 9) !== 0 || buf.readUInt16BE(at + 14) !== 0) {
    return { state: 'invalid', reason: 'reserved head bytes != 0' };
  }
  if (idLen < 1 || idLen > NEEDLE_NAME_BYTES_MAX || writeIdLen > NEEDLE_NAME_BYTES_MAX || partLen > NEEDLE_NAME_BYTES_MAX) {
    return { state: 'invalid', reason: 'id, writeId or part length out of range' };
  }
  if (keyLen > LIMITS.keyBytesMax || metaLen > LIMITS.blobMetaBytesMax || size > LIMITS.blobBytesMax) {
    return { state: 'invalid', reason: 'key, meta or data length out of range' };
  }
  const tombstone = (flags & NEEDLE_FLAG_TOMBSTONE) !== 0;
  if (tombstone && size + keyLen + writeIdLen + partLen + metaLen !== 0) {
    return { state: 'invalid', reason: 'tombstone with a payload or header fields' };
  }
  const headBytes = needleHeadBytes(idLen, keyLen, writeIdLen, partLen, metaLen);
  if (end - at < headBytes) return { state: 'short', bytesNeeded: headBytes };
  const crcAt = at + headBytes - CRC_BYTES;
  if (crc32c(buf, 0, at, crcAt) !== buf.readUInt32BE(crcAt)) return { state: 'invalid', reason: 'head CRC-32C mismatch' };
  const idAt = at + NEEDLE_FIXED_BYTES;
  const keyAt = idAt + idLen;
  const writeIdAt = keyAt + keyLen;
  const partAt = writeIdAt + writeIdLen;
  const metaAt = partAt + partLen;
  const id = buf.toString('latin1', idAt, keyAt);
  if (!isValidBlobId(id)) return { state: 'invalid', reason: 'needle id is not a valid blob id' };
  const key = withText ? buf.toString('utf8', keyAt, writeIdAt) : '';
  const writeId = withText ? buf.toString('utf8', writeIdAt, partAt) : '';
  const part = withText ? buf.toString('utf8', partAt, metaAt) : '';
  const meta = withText ? buf.toString('utf8', metaAt, metaAt + metaLen) : '';
  const seq = readU64(buf, at + 24);
  const createdAtMs = readU64(buf, at + 32);
  if (!Number.isSafeInteger(seq) || seq < 1) return { state: 'invalid', reason: 'seq is not an integer >= 1' };
  if (!Number.isSafeInteger(createdAtMs)) return { state: 'invalid', reason: 'createdAtMs is not a safe integer' };
  return {
    state: 'ok',
    head: {
      tombstone,
      id,
      key,
      writeId,
      part,
      meta,
      size,
      checksum: withText ? buf.toString('hex', at + 40, at + 40 + SHA256_BYTES) : '',
      createdAtMs,
      seq,
      targetVolume: buf.readUInt32BE(at + 20),
    },
    headBytes,
    needleBytes: needleBytes(headBytes, size),
  };
}

/** True when the data CRC of the needle at `buf[at..]` (head already decoded) matches its data. */
export function needleDataIntact(buf: Buffer, at: number, headBytes: number, size: number): boolean {
  const dataAt = at + headBytes;
  if (buf.length < dataAt + size + CRC_BYTES) return false;
  return crc32c(buf, 0, dataAt, dataAt + size) === buf.readUInt32BE(dataAt + size);
}

/** u64 fields hold safe integers (< 2^53); anything larger is not a value this store wrote. */
export function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at);
  buf.writeUInt32BE(value >>> 0, at + 4);
}

export function readU64(buf: Buffer, at: number): number {
  const high = buf.readUInt32BE(at);
  // 2^53 / 2^32 = 2^21: a larger high word would lose precision; report it as a value no check accepts.
  if (high >= 0x20_0000) return Number.NaN;
  return high * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
}
