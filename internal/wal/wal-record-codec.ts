import { hash } from 'node:crypto';
import { ULID_BYTES, ULID_TEXT_LENGTH, ulidFromBytes, ulidToBytes } from '../core/derived-ids.js';
import type { WalBlob, WalRecord } from './write-ahead-log.js';

/**
 * WAL records in format 2: a self-contained binary form of an intent or an outcome, about a fifth of the sealed
 * JSON of format 1 (./README.md "Record formats" has the byte table and the sizes). A WAL is read without the
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

// ---- varints (LEB128, up to 2^53) ---------------------------------------------------------------------------

class Writer {
  private bytes: number[] = [];
  byte(b: number): void {
    this.bytes.push(b);
  }
  raw(bytes: Uint8Array): void {
    for (const b of bytes) this.bytes.push(b);
  }
  varint(n: number): void {
    let v = n;
    while (v >= 0x80) {
      this.bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.bytes.push(v);
  }
  text(bytes: Uint8Array): void {
    this.varint(bytes.length);
    this.raw(bytes);
  }
  /** The record with its checksum appended (a Buffer: what SQLite binds as a BLOB and kafkajs sends as is). */
  sealed(): Buffer {
    const out = Buffer.alloc(this.bytes.length + WAL_RECORD_CHECKSUM_BYTES);
    out.set(this.bytes);
    out.set(checksumOf(out.subarray(0, this.bytes.length)), this.bytes.length);
    return out;
  }
}

class Reader {
  at = 0;
  constructor(private readonly bytes: Uint8Array, private readonly end: number) {}
  byte(what: string): number {
    if (this.at >= this.end) throw new WalRecordDecodeError(`it ends inside its ${what}`);
    return this.bytes[this.at++]!;
  }
  raw(n: number, what: string): Uint8Array {
    if (this.end - this.at < n) throw new WalRecordDecodeError(`it ends inside its ${what}`);
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
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
  text(what: string): Uint8Array {
    return this.raw(this.varint(`${what} length`), what);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

function utf8Text(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new WalRecordDecodeError(`its ${what} is not UTF-8`);
  }
}

function checksumOf(bytes: Uint8Array): Uint8Array {
  return hash('sha256', bytes, 'buffer').subarray(0, WAL_RECORD_CHECKSUM_BYTES);
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

// ---- encode -------------------------------------------------------------------------------------------------

/** Blobs of one earlier write that a write reuses: `<write id>.<part><suffix>`, listed in part order. */
interface ReuseGroup {
  writeIdBytes: Uint8Array;
  bits: number[];
  /** The text after `<write id>.<part>` (a repair's `.r<rev>`), by bit; '' for most. */
  suffixes: Map<number, string>;
}

/** `<canonical ULID>.<bitmap part><suffix>` taken apart, or null. */
function parseReusedId(blob: string, part: string): { writeIdBytes: Uint8Array; bit: number; suffix: string } | null {
  const bit = BIT_OF_PART.get(part);
  const partAt = ULID_TEXT_LENGTH + 1;
  if (bit === undefined || blob.charCodeAt(ULID_TEXT_LENGTH) !== 0x2e || !blob.startsWith(part, partAt)) return null;
  const writeIdBytes = ulidToBytes(blob.slice(0, ULID_TEXT_LENGTH));
  if (writeIdBytes === null) return null;
  return { writeIdBytes, bit, suffix: blob.slice(partAt + part.length) };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function bitmapOf(bits: readonly number[]): number {
  return bits.reduce((map, bit) => map + 2 ** bit, 0);
}

/**
 * The format-2 bytes of `record`, or null when that form cannot carry it exactly (the caller then writes the
 * sealed JSON of format 1).
 */
export function encodeWalRecordBinary(record: WalRecord): Buffer | null {
  const bytes = encodeUnchecked(record);
  if (bytes === null) return null;
  // The form is lossless for what it accepts; decoding proves it for this record (a few microseconds) rather
  // than trusting every rule above to have caught every case.
  try {
    return sameRecord(decodeWalRecordBinary(bytes), record) ? bytes : null;
  } catch {
    return null;
  }
}

function encodeUnchecked(record: WalRecord): Buffer | null {
  const writeIdBytes = ulidToBytes(record.writeId);
  if (writeIdBytes === null || !Number.isSafeInteger(record.atMs)) return null;
  const deltaMs = record.atMs - ulidTimeMs(writeIdBytes);
  if (!Number.isSafeInteger(zigzag(deltaMs))) return null;
  const w = new Writer();
  w.byte(WAL_RECORD_FORMAT_BINARY);
  if (record.type === 'outcome') w.byte(record.outcome === 'committed' ? KIND.outcomeCommitted : KIND.outcomeFailed);
  else w.byte(record.op === 'write' ? KIND.intentWrite : KIND.intentDelete);
  w.raw(writeIdBytes);
  w.text(encoder.encode(record.key));
  w.varint(zigzag(deltaMs));
  if (record.type === 'outcome') return w.sealed();

  // Created blobs: `<this write id>.<part>`, parts in bitmap order, so the bitmap alone lists them.
  const createdBits: number[] = [];
  for (const blob of record.creates) {
    const bit = BIT_OF_PART.get(blob.part);
    if (bit === undefined || blob.blob !== `${record.writeId}.${blob.part}`) return null;
    if (createdBits.length > 0 && bit <= createdBits[createdBits.length - 1]!) return null;
    createdBits.push(bit);
  }
  w.varint(bitmapOf(createdBits));

  // Reused blobs: runs of one earlier write's blobs in part order, each run its write id and a bitmap.
  const groups: ReuseGroup[] = [];
  for (const blob of record.reuses) {
    const parsed = parseReusedId(blob.blob, blob.part);
    if (parsed === null) return null;
    const last = groups[groups.length - 1];
    if (last !== undefined && sameBytes(last.writeIdBytes, parsed.writeIdBytes) && parsed.bit > last.bits[last.bits.length - 1]!) {
      last.bits.push(parsed.bit);
      if (parsed.suffix !== '') last.suffixes.set(parsed.bit, parsed.suffix);
    } else {
      groups.push({
        writeIdBytes: parsed.writeIdBytes,
        bits: [parsed.bit],
        suffixes: new Map(parsed.suffix === '' ? [] : [[parsed.bit, parsed.suffix]]),
      });
    }
  }
  w.varint(groups.length);
  for (const group of groups) {
    w.raw(group.writeIdBytes);
    // The low bit says whether a suffix bitmap and suffixes follow (repaired or moved blobs).
    w.varint(bitmapOf(group.bits) * 2 + (group.suffixes.size > 0 ? 1 : 0));
    if (group.suffixes.size > 0) {
      const suffixed = group.bits.filter((bit) => group.suffixes.has(bit));
      w.varint(bitmapOf(suffixed));
      for (const bit of suffixed) w.text(encoder.encode(group.suffixes.get(bit)!));
    }
  }

  // Node names: each distinct one once, sorted and front-coded (names of one cluster share their start), then
  // every blob's node as an index into them, created blobs first.
  const blobs = [...record.creates, ...record.reuses];
  const names = [...new Set(blobs.map((b) => b.node))].sort();
  if (names.length > NAMES_MAX) return null;
  w.varint(names.length);
  let previous = new Uint8Array(0);
  for (const name of names) {
    const bytes = encoder.encode(name);
    let shared = 0;
    while (shared < previous.length && shared < bytes.length && previous[shared] === bytes[shared]) shared++;
    w.varint(shared);
    w.text(bytes.subarray(shared));
    previous = bytes;
  }
  const indexOf = new Map(names.map((name, i) => [name, i]));
  const indexes = blobs.map((b) => indexOf.get(b.node)!);
  if (names.length <= NIBBLE_NAMES_MAX) {
    for (let i = 0; i < indexes.length; i += 2) w.byte((indexes[i]! << 4) | (indexes[i + 1] ?? 0));
  } else {
    for (const index of indexes) w.byte(index);
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
  if (!sameBytes(checksumOf(bytes.subarray(0, end)), bytes.subarray(end))) {
    throw new WalRecordDecodeError('its checksum does not match its content');
  }
  const r = new Reader(bytes, end);
  r.at = 1;
  const kind = r.byte('kind');
  if (kind < KIND.intentWrite || kind > KIND.outcomeFailed) throw new WalRecordDecodeError(`its kind ${kind} is unknown`);
  const writeIdBytes = r.raw(ULID_BYTES, 'write id');
  const writeId = ulidFromBytes(writeIdBytes);
  const key = utf8Text(r.text('key'), 'key');
  const atMs = ulidTimeMs(writeIdBytes) + unzigzag(r.varint('time'));
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
      const groupWriteId = ulidFromBytes(r.raw(ULID_BYTES, 'reused write id'));
      const header = r.varint('reused parts');
      const bits = bitsOf(Math.floor(header / 2), 'reused parts');
      if (bits.length === 0) throw new WalRecordDecodeError('it has an empty reuse group');
      const suffixes = new Map<number, string>();
      if (header % 2 === 1) {
        for (const bit of bitsOf(r.varint('suffixed parts'), 'suffixed parts')) {
          if (!bits.includes(bit)) throw new WalRecordDecodeError('it has a suffix for a part it does not reuse');
          suffixes.set(bit, utf8Text(r.text('blob id suffix'), 'blob id suffix'));
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
    let previous = new Uint8Array(0);
    for (let i = 0; i < nameCount; i++) {
      const shared = r.varint('node name');
      if (shared > previous.length) throw new WalRecordDecodeError('its node names are malformed');
      const rest = r.text('node name');
      const bytes = new Uint8Array(shared + rest.length);
      bytes.set(previous.subarray(0, shared));
      bytes.set(rest, shared);
      names.push(utf8Text(bytes, 'node name'));
      previous = bytes;
    }
    if (parts.length > 0 && nameCount === 0) throw new WalRecordDecodeError('it names blobs but no nodes');
    const nodeAt = (index: number): string => {
      const name = names[index];
      if (name === undefined) throw new WalRecordDecodeError('it refers to a node it does not name');
      return name;
    };
    const nodes: string[] = [];
    if (nameCount <= NIBBLE_NAMES_MAX) {
      for (let i = 0; i < parts.length; i += 2) {
        const b = r.byte('node references');
        nodes.push(nodeAt(b >> 4));
        if (i + 1 < parts.length) nodes.push(nodeAt(b & 0x0f));
        else if ((b & 0x0f) !== 0) throw new WalRecordDecodeError('its node references are malformed');
      }
    } else {
      for (let i = 0; i < parts.length; i++) nodes.push(nodeAt(r.byte('node references')));
    }
    const blobs: WalBlob[] = parts.map((p, i) => ({ part: p.part, node: nodes[i]!, blob: p.blob }));
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
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i]!;
      return Object.keys(y).length === 3 && x.part === y.part && x.node === y.node && x.blob === y.blob;
    })
  );
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
