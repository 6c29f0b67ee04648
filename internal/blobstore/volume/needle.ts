/**
 * The needle: one blob (or one tombstone) inside a volume file, format versions 1 and 2. README.md in this folder
 * documents both byte by byte; keep the two in step. Version 2 (magic "STR2") is the compact one: the id as 16
 * ULID bytes and a part code, an opaque descriptor instead of key, write id, part and meta, a 64-bit checksum, no
 * sequence number (only tombstones need one, and tombstones are always version 1), createdAt in seconds. Encoding asserts its inputs (the store validated them);
 * decoding treats every deviation as corruption, because the bytes came from a disk that may have rotted or from
 * a write that a crash tore.
 *
 * A needle is self-describing (key, write id, part and meta travel with the bytes, as architecture.md asks), and
 * it carries two CRC-32C sums: one over the head, so that a scan can trust the lengths it reads before it trusts
 * the data, and one over the data, so that a torn or rotted payload is found on every read.
 */
import { assert } from '../../core/assert.js';
import { ULID_BYTES, derivedBlobId, parseDerivedBlobId, partOfCode } from '../../core/derived-ids.js';
import { isValidBlobId } from '../../core/ids.js';
import { LIMITS } from '../../core/limits.js';
import { BLOB_DESCRIPTOR_BYTES_MAX, blobIdNames, type BlobDescriptor } from '../blob-store.js';
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
/** The most a needle's head can take: fixed part, CRC and every variable field at its limit (version 1 is longer). */
export const NEEDLE_HEAD_BYTES_MAX =
  NEEDLE_FIXED_BYTES + 3 * NEEDLE_NAME_BYTES_MAX + LIMITS.keyBytesMax + LIMITS.blobMetaBytesMax + CRC_BYTES;

/** "STR2": Strata needle, version 2. */
export const NEEDLE_V2_MAGIC = 0x53545232;
/** Bytes of a version-2 head before the id. */
export const NEEDLE_V2_FIXED_BYTES = 28;
/** Version 2 flag bit 1: the id is spelled out as text (its length in byte 5) instead of ULID bytes + part code. */
const NEEDLE_V2_FLAG_TEXT_ID = 2;
/** Version 2 flag bits 2-3: the descriptor kind (0 none, 1 whole, 2 fragment). */
const NEEDLE_V2_DESCRIPTOR_SHIFT = 2;
const NEEDLE_V2_DESCRIPTOR_MASK = 3 << NEEDLE_V2_DESCRIPTOR_SHIFT;
const DESCRIPTOR_KIND_CODES = { whole: 1, fragment: 2 } as const;
/** Bytes of the version-2 checksum: the first 64 bits of the payload's sha256. */
export const NEEDLE_V2_CHECKSUM_BYTES = 8;
const CHECKSUM64_HEX_PATTERN = /^[0-9a-f]{16}$/;
/** Version 2 keeps createdAt in whole seconds (u32, until 2106); a read reports it in milliseconds. */
const MS_PER_SECOND = 1000;
const U32_MAX = 0xffffffff;
/** The longest version-2 head: a text id of NEEDLE_NAME_BYTES_MAX and the longest descriptor. */
export const NEEDLE_V2_HEAD_BYTES_MAX = NEEDLE_V2_FIXED_BYTES + NEEDLE_NAME_BYTES_MAX + BLOB_DESCRIPTOR_BYTES_MAX + CRC_BYTES;
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
  /**
   * 2 for a version-2 needle, whose head differs as follows: key and meta are '', writeId and part are what the
   * id names (blobIdNames), checksum is 16 hex digits (64 bits of sha256), createdAtMs is whole seconds, seq is 0
   * (version-2 puts carry none). Absent for version 1.
   */
  format?: 2;
  /** Version 2: the descriptor, if any (absent from scans, which do not decode it). */
  descriptor?: BlobDescriptor;
  /** Version 2: the data CRC-32C, which this version keeps in the head. */
  dataCrc?: number;
}

/** What a version-2 needle is encoded from. */
export interface NeedleV2Put {
  id: string;
  size: number;
  /** The first 64 bits of the payload's sha256, 16 lowercase hex digits. */
  checksum: string;
  dataCrc: number;
  /** Stored rounded up to whole seconds (a blob never looks older than it is: GC grace only lengthens). */
  createdAtMs: number;
  descriptor?: BlobDescriptor;
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

/**
 * The head of a version-2 needle (fixed part, id, descriptor, head CRC); the data and the padding follow it. A
 * derived id (`<ULID>.<coded part>`) is stored as 16 bytes + part code, any other id as text.
 */
export function encodeNeedleV2Head(put: NeedleV2Put): Buffer {
  assert(isValidBlobId(put.id), 'needle id is a valid blob id');
  assert(Number.isSafeInteger(put.size) && put.size >= 0 && put.size <= LIMITS.blobBytesMax, 'size in range');
  assert(CHECKSUM64_HEX_PATTERN.test(put.checksum), 'checksum is 64 bits of sha256 in hex');
  assert(Number.isInteger(put.dataCrc) && put.dataCrc >= 0 && put.dataCrc <= U32_MAX, 'dataCrc is u32');
  const createdAtSec = createdAtSecOf(put.createdAtMs);
  assert(createdAtSec <= U32_MAX, 'createdAt fits in u32 seconds');
  const descriptor = put.descriptor;
  assert(descriptor === undefined || descriptor.bytes.length <= BLOB_DESCRIPTOR_BYTES_MAX, 'descriptor <= 255 bytes');
  const derived = parseDerivedBlobId(put.id);
  const idBytes = derived === null ? put.id.length : ULID_BYTES;
  const descriptorBytes = descriptor?.bytes.length ?? 0;
  const out = Buffer.alloc(needleV2HeadBytes(idBytes, descriptorBytes));
  out.writeUInt32BE(NEEDLE_V2_MAGIC, 0);
  const kindCode = descriptor === undefined ? 0 : DESCRIPTOR_KIND_CODES[descriptor.kind];
  assert(kindCode !== undefined, 'descriptor kind is whole or fragment');
  out.writeUInt8((derived === null ? NEEDLE_V2_FLAG_TEXT_ID : 0) | (kindCode << NEEDLE_V2_DESCRIPTOR_SHIFT), 4);
  out.writeUInt8(derived === null ? put.id.length : derived.partCode, 5);
  out.writeUInt8(descriptorBytes, 6);
  out.writeUInt8(0, 7);
  out.writeUInt32BE(put.size, 8);
  out.writeUInt32BE(createdAtSec, 12);
  out.writeUInt32BE(put.dataCrc >>> 0, 16);
  out.write(put.checksum, 20, NEEDLE_V2_CHECKSUM_BYTES, 'hex');
  let at = NEEDLE_V2_FIXED_BYTES;
  if (derived === null) at += out.write(put.id, at, 'latin1');
  else {
    out.set(derived.writeIdBytes, at);
    at += ULID_BYTES;
  }
  if (descriptor !== undefined) {
    out.set(descriptor.bytes, at);
    at += descriptorBytes;
  }
  out.writeUInt32BE(crc32c(out, 0, 0, at), at);
  return out;
}

/** The zero padding that ends a version-2 needle (its data CRC is in the head). */
export function encodeNeedleV2Tail(headBytes: number, size: number): Buffer {
  return Buffer.alloc(needleV2Bytes(headBytes, size) - headBytes - size);
}

export function needleV2HeadBytes(idBytes: number, descriptorBytes: number): number {
  return NEEDLE_V2_FIXED_BYTES + idBytes + descriptorBytes + CRC_BYTES;
}

/** Bytes of a whole version-2 needle on disk: head, data, padding to NEEDLE_ALIGN_BYTES. */
export function needleV2Bytes(headBytes: number, size: number): number {
  return alignUp(headBytes + size);
}

/** Bytes a version-2 id takes in the head: 16 for a derived id, its length for a text one. */
export function needleV2IdBytes(id: string): number {
  return parseDerivedBlobId(id) === null ? id.length : ULID_BYTES;
}

/** Milliseconds to the stored whole seconds, rounded up. */
export function createdAtSecOf(createdAtMs: number): number {
  assert(Number.isSafeInteger(createdAtMs) && createdAtMs >= 0, 'createdAtMs is a non-negative integer');
  return Math.ceil(createdAtMs / MS_PER_SECOND);
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
  if (end - at >= 4 && buf.readUInt32BE(at) === NEEDLE_V2_MAGIC) return decodeNeedleV2Head(buf, at, end, withText);
  if (end - at < NEEDLE_FIXED_BYTES) return { state: 'short', bytesNeeded: NEEDLE_FIXED_BYTES };
  if (buf.readUInt32BE(at) !== NEEDLE_MAGIC) return { state: 'invalid', reason: 'magic is neither "STRN" nor "STR2"' };
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

/** The version-2 head at `buf[at..]`: decodeNeedleHead's checks, for this layout (README.md). */
function decodeNeedleV2Head(buf: Buffer, at: number, end: number, withText: boolean): HeadDecode {
  if (end - at < NEEDLE_V2_FIXED_BYTES) return { state: 'short', bytesNeeded: NEEDLE_V2_FIXED_BYTES };
  const flags = buf.readUInt8(at + 4);
  if ((flags & ~(NEEDLE_V2_FLAG_TEXT_ID | NEEDLE_V2_DESCRIPTOR_MASK)) !== 0) return { state: 'invalid', reason: `unknown flags ${flags}` };
  const kindCode = (flags & NEEDLE_V2_DESCRIPTOR_MASK) >> NEEDLE_V2_DESCRIPTOR_SHIFT;
  if (kindCode === 3) return { state: 'invalid', reason: 'unknown descriptor kind 3' };
  const textId = (flags & NEEDLE_V2_FLAG_TEXT_ID) !== 0;
  const idOrPart = buf.readUInt8(at + 5);
  const descriptorBytes = buf.readUInt8(at + 6);
  if (buf.readUInt8(at + 7) !== 0) return { state: 'invalid', reason: 'reserved head byte != 0' };
  if ((kindCode === 0) !== (descriptorBytes === 0)) return { state: 'invalid', reason: 'descriptor kind and length disagree' };
  if (textId ? idOrPart < 1 || idOrPart > NEEDLE_NAME_BYTES_MAX : partOfCode(idOrPart) === null) {
    return { state: 'invalid', reason: textId ? 'id length out of range' : `unknown part code ${idOrPart}` };
  }
  const size = buf.readUInt32BE(at + 8);
  if (size > LIMITS.blobBytesMax) return { state: 'invalid', reason: 'data length out of range' };
  const idBytes = textId ? idOrPart : ULID_BYTES;
  const headBytes = needleV2HeadBytes(idBytes, descriptorBytes);
  if (end - at < headBytes) return { state: 'short', bytesNeeded: headBytes };
  const crcAt = at + headBytes - CRC_BYTES;
  if (crc32c(buf, 0, at, crcAt) !== buf.readUInt32BE(crcAt)) return { state: 'invalid', reason: 'head CRC-32C mismatch' };
  const idAt = at + NEEDLE_V2_FIXED_BYTES;
  let id: string;
  if (textId) {
    id = buf.toString('latin1', idAt, idAt + idBytes);
    if (!isValidBlobId(id)) return { state: 'invalid', reason: 'needle id is not a valid blob id' };
    // A derived id is always written in the short form: a text one that parses as derived is not what was written.
    if (parseDerivedBlobId(id) !== null) return { state: 'invalid', reason: 'a derived id spelled out as text' };
  } else {
    // Any 16 bytes spell a canonical ULID, and the part code was checked above.
    id = derivedBlobId(buf, idOrPart, idAt);
  }
  const names = blobIdNames(id);
  const descriptorAt = idAt + idBytes;
  const head: NeedleHead = {
    tombstone: false,
    id,
    key: '',
    writeId: names.writeId,
    part: names.part,
    meta: '',
    size,
    checksum: withText ? buf.toString('hex', at + 20, at + 20 + NEEDLE_V2_CHECKSUM_BYTES) : '',
    createdAtMs: buf.readUInt32BE(at + 12) * MS_PER_SECOND,
    seq: 0,
    targetVolume: 0,
    format: 2,
    dataCrc: buf.readUInt32BE(at + 16),
  };
  if (withText && kindCode !== 0) {
    head.descriptor = {
      kind: kindCode === 1 ? 'whole' : 'fragment',
      bytes: new Uint8Array(buf.subarray(descriptorAt, descriptorAt + descriptorBytes)),
    };
  }
  return { state: 'ok', head, headBytes, needleBytes: needleV2Bytes(headBytes, size) };
}

/** True when the data CRC of the needle at `buf[at..]` (head already decoded) matches its data. */
export function needleDataIntact(buf: Buffer, at: number, headBytes: number, head: Pick<NeedleHead, 'size' | 'format' | 'dataCrc'>): boolean {
  const dataAt = at + headBytes;
  const size = head.size;
  if (head.format === 2) {
    if (buf.length < dataAt + size) return false;
    return crc32c(buf, 0, dataAt, dataAt + size) === head.dataCrc;
  }
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
