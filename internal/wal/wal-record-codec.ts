import { hash } from 'node:crypto';
import { ULID_BYTES, ULID_TEXT_LENGTH, ulidFromBytes, ulidToBytes } from '../core/derived-ids.js';
import type { WalBlob, WalRecord } from './write-ahead-log.js';

/**
 * WAL records in format 2: a self-contained binary form of an intent or an outcome, about a fifth of the sealed
 * JSON of format 1 (./README.md "Format 2 (binary)" has the byte table and the sizes). A WAL is read without the
 * metadata store (the intent resolver runs when the store may be behind), so nothing here refers to a dictionary:
 * node names travel in the record, each distinct name once.
 *
 * The form carries only what it can give back exactly; `encodeWalRecordBinary` proves that by decoding its own
 * output and returns null when the record differs (ids that are not `<write id>.<part>[suffix]`, blobs out of
 * part order, a fractional time, names that are not valid UTF-16...): the caller then writes format 1.
 *
 * Checksum: the first 64 bits of SHA-256 over every byte before it, at the end of the record. Not CRC-32C + a
 * length: an intent names blobs the resolver may delete, so it gets the same 64-bit checksum as every other record
 * that decides a delete (the record envelope, decision 18), where a CRC-32C would miss one random corruption in
 * 2^32; it costs 4 bytes more, and Node hashes ~70 bytes natively in about a microsecond, nothing beside the fsync
 * an append waits for (Node has no native CRC-32C). No length field: the stored value (SQLite BLOB, Kafka message
 * value) has its length, a truncated record loses the checksum it is compared with, and the decoder must end
 * exactly at the checksum.
 */

/** The first byte of a format-2 record. Format 1 (sealed JSON) starts with `s`, the previous release's JSON with `{`. */
export const WAL_RECORD_FORMAT_BINARY = 2;

/** Bytes of the checksum that ends a format-2 record. */
export const WAL_RECORD_CHECKSUM_BYTES = 8;

/**
 * The parts a bitmap can name, bit i for part i: the parts one write creates (hot replicas, cold copies, shards),
 * in the order the write service lists them, so that the usual lists need no order of their own.
 */
const BITMAP_PARTS = ['hot-0', 'hot-1', 'hot-2', 'cold-0', 'cold-1', 'cold-2', 'shard-0', 'shard-1', 'shard-2', 'shard-3', 'shard-4', 'shard-5'];
const BIT_OF_PART = new Map(BITMAP_PARTS.map((part, bit) => [part, bit]));

/** Distinct node names in one record packed 4 bits per reference; more take a byte each. */
const NIBBLE_NAMES_MAX = 16;
/** Distinct node names one record can carry (a byte per reference); a record naming more stays format 1. */
const NAMES_MAX = 256;

/** The record kind byte (byte 1). */
const KIND = { intentWrite: 1, intentDelete: 2, outcomeCommitted: 3, outcomeFailed: 4 } as const;

/** A format-2 record that cannot be read: damaged, truncated, or not a record. */
export class WalRecordDecodeError extends Error {
  constructor(readonly why: string) {
    super(why);
    this.name = 'WalRecordDecodeError';
  }
}

// ---- bytes, varints (LEB128, up to 2^53) and text --------------------------------------------------------------
//
// Written and read in place: keys and node names are nearly always ASCII and records are small, so converting
// strings by hand, without a typed array per field, is most of what keeps a record cheaper to build than its JSON.

/** Bytes a writer starts with: an intent of a short key and 9 blobs needs under 100. */
const WRITER_INITIAL_BYTES = 256;

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

class Writer {
  buf = Buffer.allocUnsafe(WRITER_INITIAL_BYTES);
  at = 0;
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.at++] = b;
  }
  varint(n: number): void {
    let v = n;
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
  }
  /** A canonical ULID's 16 bytes; false (nothing written) for any other text. */
  ulid(text: string): boolean {
    this.room(ULID_BYTES);
    if (ulidToBytes(text, this.buf, this.at) === null) return false;
    this.at += ULID_BYTES;
    return true;
  }
  /** Its UTF-8 length as a varint, then its UTF-8 bytes. */
  text(text: string): void {
    let ascii = true;
    for (let i = 0; i < text.length && ascii; i++) ascii = text.charCodeAt(i) < 0x80;
    if (!ascii) {
      const bytes = encoder.encode(text);
      this.varint(bytes.length);
      this.room(bytes.length);
      this.buf.set(bytes, this.at);
      this.at += bytes.length;
      return;
    }
    this.varint(text.length);
    this.room(text.length);
    for (let i = 0; i < text.length; i++) this.buf[this.at++] = text.charCodeAt(i);
  }
  /** The record with its checksum appended (a Buffer: what SQLite binds as a BLOB and kafkajs sends as is). */
  sealed(): Buffer {
    const out = Buffer.allocUnsafe(this.at + WAL_RECORD_CHECKSUM_BYTES);
    this.buf.copy(out, 0, 0, this.at);
    checksumOf(out, this.at).copy(out, this.at, 0, WAL_RECORD_CHECKSUM_BYTES);
    return out;
  }
}

class Reader {
  at = 0;
  constructor(private readonly bytes: Uint8Array, private readonly end: number) {}
  private need(n: number, what: string): void {
    if (this.end - this.at < n) throw new WalRecordDecodeError(`it ends inside its ${what}`);
  }
  byte(what: string): number {
    this.need(1, what);
    return this.bytes[this.at++]!;
  }
  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = this.byte(what);
      value += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 49) throw new WalRecordDecodeError(`its ${what} is too large`);
    }
    if (!Number.isSafeInteger(value)) throw new WalRecordDecodeError(`its ${what} is too large`);
    return value;
  }
  /** The text of 16 ULID bytes, and the time they start with. */
  ulid(what: string): { text: string; timeMs: number } {
    this.need(ULID_BYTES, what);
    const at = this.at;
    this.at += ULID_BYTES;
    return { text: ulidFromBytes(this.bytes, at), timeMs: ulidTimeMs(this.bytes, at) };
  }
  /** A varint UTF-8 length and that many bytes, as text. */
  text(what: string): string {
    const length = this.varint(`${what} length`);
    this.need(length, what);
    const start = this.at;
    this.at += length;
    let out = '';
    for (let i = start; i < this.at; i++) {
      const b = this.bytes[i]!;
      if (b >= 0x80) {
        try {
          return utf8.decode(this.bytes.subarray(start, this.at));
        } catch {
          throw new WalRecordDecodeError(`its ${what} is not UTF-8`);
        }
      }
      out += String.fromCharCode(b);
    }
    return out;
  }
}

/** The first 64 bits of SHA-256 of `bytes[0, end)`. */
function checksumOf(bytes: Uint8Array, end: number): Buffer {
  return hash('sha256', bytes.subarray(0, end), 'buffer');
}

/** Milliseconds of a ULID's 48-bit time (its first 6 bytes, big-endian). */
function ulidTimeMs(bytes: Uint8Array, offset = 0): number {
  let ms = 0;
  for (let i = 0; i < 6; i++) ms = ms * 256 + bytes[offset + i]!;
  return ms;
}

function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function unzigzag(n: number): number {
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/** Leading characters `a` and `b` share, counting only ASCII ones (one byte each in UTF-8). */
function sharedAsciiPrefix(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a.charCodeAt(n) === b.charCodeAt(n) && a.charCodeAt(n) < 0x80) n++;
  return n;
}

function bitmapOf(bits: readonly number[]): number {
  let map = 0;
  for (const bit of bits) map += 2 ** bit;
  return map;
}

// ---- encode -------------------------------------------------------------------------------------------------

/** Blobs of one earlier write that a write reuses: `<write id>.<part><suffix>`, listed in part order. */
interface ReuseGroup {
  writeId: string;
  bits: number[];
  /** The text after `<write id>.<part>` (a repair's `.r<rev>`), by bit, for the blobs that have one. */
  suffixes: Map<number, string>;
}

/**
 * The format-2 bytes of `record`, or null when that form cannot carry it exactly (the caller then writes the
 * sealed JSON of format 1).
 */
export function encodeWalRecordBinary(record: WalRecord): Buffer | null {
  const bytes = encodeUnchecked(record);
  if (bytes === null) return null;
  // The form is lossless for what it accepts; decoding proves it for this record (it costs about what building
  // it did) rather than trusting every rule above to have caught every case.
  try {
    return sameRecord(decodeVerified(bytes), record) ? bytes : null;
  } catch {
    return null;
  }
}

function encodeUnchecked(record: WalRecord): Buffer | null {
  if (!Number.isSafeInteger(record.atMs)) return null;
  const w = new Writer();
  w.byte(WAL_RECORD_FORMAT_BINARY);
  if (record.type === 'outcome') w.byte(record.outcome === 'committed' ? KIND.outcomeCommitted : KIND.outcomeFailed);
  else w.byte(record.op === 'write' ? KIND.intentWrite : KIND.intentDelete);
  if (!w.ulid(record.writeId)) return null;
  const deltaMs = record.atMs - ulidTimeMs(w.buf, w.at - ULID_BYTES);
  if (!Number.isSafeInteger(zigzag(deltaMs))) return null;
  w.text(record.key);
  w.varint(zigzag(deltaMs));
  if (record.type === 'outcome') return w.sealed();

  // Created blobs: `<this write id>.<part>`, parts in bitmap order, so the bitmap alone lists them.
  let createdBitmap = 0;
  let lastBit = -1;
  for (const blob of record.creates) {
    const bit = BIT_OF_PART.get(blob.part);
    if (bit === undefined || bit <= lastBit) return null;
    const id = blob.blob;
    if (id.length !== ULID_TEXT_LENGTH + 1 + blob.part.length || !id.startsWith(record.writeId) || !id.endsWith(blob.part)) return null;
    if (id.charCodeAt(ULID_TEXT_LENGTH) !== 0x2e) return null;
    createdBitmap += 2 ** bit;
    lastBit = bit;
  }
  w.varint(createdBitmap);

  // Reused blobs: runs of one earlier write's blobs in part order, each run its write id and a bitmap.
  const groups: ReuseGroup[] = [];
  const partAt = ULID_TEXT_LENGTH + 1;
  for (const blob of record.reuses) {
    const bit = BIT_OF_PART.get(blob.part);
    const id = blob.blob;
    if (bit === undefined || id.charCodeAt(ULID_TEXT_LENGTH) !== 0x2e || !id.startsWith(blob.part, partAt)) return null;
    const writeId = id.slice(0, ULID_TEXT_LENGTH);
    const suffix = id.slice(partAt + blob.part.length);
    const last = groups[groups.length - 1];
    if (last !== undefined && last.writeId === writeId && bit > last.bits[last.bits.length - 1]!) {
      last.bits.push(bit);
      if (suffix !== '') last.suffixes.set(bit, suffix);
    } else {
      groups.push({ writeId, bits: [bit], suffixes: new Map(suffix === '' ? [] : [[bit, suffix]]) });
    }
  }
  w.varint(groups.length);
  for (const group of groups) {
    if (!w.ulid(group.writeId)) return null;
    // The low bit says whether a suffix bitmap and suffixes follow (repaired or moved blobs).
    w.varint(bitmapOf(group.bits) * 2 + (group.suffixes.size > 0 ? 1 : 0));
    if (group.suffixes.size > 0) {
      const suffixed = group.bits.filter((bit) => group.suffixes.has(bit));
      w.varint(bitmapOf(suffixed));
      for (const bit of suffixed) w.text(group.suffixes.get(bit)!);
    }
  }

  // Node names: each distinct one once, sorted and front-coded (names of one cluster share their start), then
  // every blob's node as an index into them, created blobs first.
  const indexOf = new Map<string, number>();
  for (const blob of record.creates) indexOf.set(blob.node, 0);
  for (const blob of record.reuses) indexOf.set(blob.node, 0);
  if (indexOf.size > NAMES_MAX) return null;
  const names = [...indexOf.keys()].sort();
  w.varint(names.length);
  let previous = '';
  for (const [i, name] of names.entries()) {
    const shared = sharedAsciiPrefix(previous, name);
    w.varint(shared);
    w.text(name.slice(shared));
    indexOf.set(name, i);
    previous = name;
  }
  const count = record.creates.length + record.reuses.length;
  const nodeIndex = (i: number): number => indexOf.get((i < record.creates.length ? record.creates[i] : record.reuses[i - record.creates.length])!.node)!;
  if (names.length <= NIBBLE_NAMES_MAX) {
    for (let i = 0; i < count; i += 2) w.byte((nodeIndex(i) << 4) | (i + 1 < count ? nodeIndex(i + 1) : 0));
  } else {
    for (let i = 0; i < count; i++) w.byte(nodeIndex(i));
  }
  return w.sealed();
}

// ---- decode -------------------------------------------------------------------------------------------------

/** The bits set in a bitmap, lowest first; throws for bits no part has. */
function bitsOf(bitmap: number, what: string): number[] {
  const bits: number[] = [];
  let rest = bitmap;
  for (let bit = 0; rest > 0; bit++) {
    if (bit >= BITMAP_PARTS.length) throw new WalRecordDecodeError(`its ${what} names an unknown part`);
    if (rest % 2 === 1) bits.push(bit);
    rest = Math.floor(rest / 2);
  }
  return bits;
}

/** A format-2 record, verified (checksum, then structure); throws WalRecordDecodeError saying why it is not one. */
export function decodeWalRecordBinary(bytes: Uint8Array): WalRecord {
  if (bytes.length < 1 + WAL_RECORD_CHECKSUM_BYTES) throw new WalRecordDecodeError('it is too short to be a format-2 record');
  if (bytes[0] !== WAL_RECORD_FORMAT_BINARY) throw new WalRecordDecodeError(`its format byte is ${bytes[0]}, not ${WAL_RECORD_FORMAT_BINARY}`);
  const end = bytes.length - WAL_RECORD_CHECKSUM_BYTES;
  const checksum = checksumOf(bytes, end);
  for (let i = 0; i < WAL_RECORD_CHECKSUM_BYTES; i++) {
    if (checksum[i] !== bytes[end + i]) throw new WalRecordDecodeError('its checksum does not match its content');
  }
  return decodeVerified(bytes);
}

/** The record of format-2 bytes whose checksum is verified (or that were just sealed). */
function decodeVerified(bytes: Uint8Array): WalRecord {
  const end = bytes.length - WAL_RECORD_CHECKSUM_BYTES;
  const r = new Reader(bytes, end);
  r.at = 1;
  const kind = r.byte('kind');
  if (kind < KIND.intentWrite || kind > KIND.outcomeFailed) throw new WalRecordDecodeError(`its kind ${kind} is unknown`);
  const { text: writeId, timeMs } = r.ulid('write id');
  const key = r.text('key');
  const atMs = timeMs + unzigzag(r.varint('time'));
  let record: WalRecord;
  if (kind === KIND.outcomeCommitted || kind === KIND.outcomeFailed) {
    record = { type: 'outcome', key, writeId, outcome: kind === KIND.outcomeCommitted ? 'committed' : 'failed', atMs };
  } else {
    const parts: Array<{ part: string; blob: string }> = [];
    for (const bit of bitsOf(r.varint('created parts'), 'created parts')) {
      parts.push({ part: BITMAP_PARTS[bit]!, blob: `${writeId}.${BITMAP_PARTS[bit]!}` });
    }
    const createdCount = parts.length;
    const groupCount = r.varint('reuse groups');
    for (let g = 0; g < groupCount; g++) {
      const groupWriteId = r.ulid('reused write id').text;
      const header = r.varint('reused parts');
      const bits = bitsOf(Math.floor(header / 2), 'reused parts');
      if (bits.length === 0) throw new WalRecordDecodeError('it has an empty reuse group');
      const suffixes = new Map<number, string>();
      if (header % 2 === 1) {
        for (const bit of bitsOf(r.varint('suffixed parts'), 'suffixed parts')) {
          if (!bits.includes(bit)) throw new WalRecordDecodeError('it has a suffix for a part it does not reuse');
          suffixes.set(bit, r.text('blob id suffix'));
        }
      }
      for (const bit of bits) {
        const part = BITMAP_PARTS[bit]!;
        parts.push({ part, blob: `${groupWriteId}.${part}${suffixes.get(bit) ?? ''}` });
      }
    }
    const nameCount = r.varint('node name count');
    if (nameCount > NAMES_MAX) throw new WalRecordDecodeError('it names too many nodes');
    const names: string[] = [];
    let previous = '';
    for (let i = 0; i < nameCount; i++) {
      const shared = r.varint('node name');
      if (shared > sharedAsciiPrefix(previous, previous)) throw new WalRecordDecodeError('its node names are malformed');
      previous = previous.slice(0, shared) + r.text('node name');
      names.push(previous);
    }
    if (parts.length > 0 && nameCount === 0) throw new WalRecordDecodeError('it names blobs but no nodes');
    const nodeAt = (index: number): string => {
      const name = names[index];
      if (name === undefined) throw new WalRecordDecodeError('it refers to a node it does not name');
      return name;
    };
    const blobs: WalBlob[] = [];
    const nibbles = nameCount <= NIBBLE_NAMES_MAX;
    for (let i = 0; i < parts.length; i += nibbles ? 2 : 1) {
      const b = r.byte('node references');
      if (!nibbles) {
        blobs.push({ part: parts[i]!.part, node: nodeAt(b), blob: parts[i]!.blob });
        continue;
      }
      blobs.push({ part: parts[i]!.part, node: nodeAt(b >> 4), blob: parts[i]!.blob });
      if (i + 1 < parts.length) blobs.push({ part: parts[i + 1]!.part, node: nodeAt(b & 0x0f), blob: parts[i + 1]!.blob });
      else if ((b & 0x0f) !== 0) throw new WalRecordDecodeError('its node references are malformed');
    }
    record = {
      type: 'intent',
      key,
      writeId,
      op: kind === KIND.intentWrite ? 'write' : 'delete',
      creates: blobs.slice(0, createdCount),
      reuses: blobs.slice(createdCount),
      atMs,
    };
  }
  if (r.at !== end) throw new WalRecordDecodeError(`it has ${end - r.at} bytes after its content`);
  return record;
}

// ---- exactness ----------------------------------------------------------------------------------------------

function sameBlobs(a: readonly WalBlob[], b: readonly WalBlob[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.part !== y.part || x.node !== y.node || x.blob !== y.blob || Object.keys(y).length !== 3) return false;
  }
  return true;
}

/** True when `decoded` is `original` field for field (and `original` has no field the binary form drops). */
function sameRecord(decoded: WalRecord, original: WalRecord): boolean {
  if (Object.keys(decoded).length !== Object.keys(original).length) return false;
  if (decoded.type !== original.type || decoded.key !== original.key || decoded.writeId !== original.writeId) return false;
  if (decoded.atMs !== original.atMs) return false;
  if (decoded.type === 'outcome') return original.type === 'outcome' && decoded.outcome === original.outcome;
  return (
    original.type === 'intent' &&
    decoded.op === original.op &&
    sameBlobs(decoded.creates, original.creates) &&
    sameBlobs(decoded.reuses, original.reuses)
  );
}
