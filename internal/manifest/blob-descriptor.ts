/**
 * The self-description a format-2 blob carries instead of format 1's key and meta JSON: enough for
 * `recover:manifests` to rebuild a document's manifest from the nodes alone (architecture.md, "Blob").
 *
 * - A hot replica or a cold copy carries a *whole* descriptor: any one survivor names its key, as in format 1.
 * - A shard carries a *fragment*: the whole descriptor padded to a multiple of 32 bytes and Reed-Solomon coded 4+2
 *   with the document's own code, fragment i on shard i. Any four shards give it back: exactly the shards that can
 *   rebuild the cold part at all. So a key is stored once and a half across six shards instead of six times.
 *
 * Whole descriptor, byte by byte (varints are unsigned LEB128):
 *
 * | bytes | field |
 * |---|---|
 * | 1 | kind: bits 0-1 strategy (0 replication, 1 ec, 2 field_hybrid), bits 2-3 role (0 hot, 1 cold copy, 2 shard), bits 4-5 codec (0 identity, 1 brotli, 2 deflate), bit 6 has cold facts, bit 7 (with bit 6 only, data format 4) no cold hash |
 * | varint + n | key, UTF-8 |
 * | varint | with cold facts: dataBytes (stored cold bytes) |
 * | varint | with cold facts and a codec other than identity: textBytes |
 * | 8 | with cold facts, unless bit 7: the first 64 bits of the cold hash (sha256 of the canonical cold text) |
 *
 * Cold facts ride on cold copies, shards, and the hot replicas of a field_hybrid pure hot update: its cold blobs
 * belong to an older write, and the hash names which one (blob-meta.ts `descriptionOf`). Hot replicas written
 * before that rule carry them for every field_hybrid write; readers take both.
 */
import { ReedSolomonCode } from '../ec/reed-solomon.js';
import type { ColdCodec, Strategy } from './manifest.js';

/** A descriptor longer than this does not fit a format-2 needle head; such a blob is written in format 1. */
export const BLOB_DESCRIPTOR_BYTES_MAX = 255;
/** The whole descriptor is padded to a multiple of this before it is Reed-Solomon coded into fragments. */
const FRAGMENT_PAD_BYTES = 32;
const COLD_HASH_PREFIX_BYTES = 8;

const STRATEGY_CODES: readonly Strategy[] = ['replication', 'ec', 'field_hybrid'];
const ROLE_CODES = ['hot', 'cold', 'shard'] as const;
const CODEC_CODES: readonly ColdCodec[] = ['identity', 'brotli', 'deflate'];
const FLAG_COLD_FACTS = 0x40;
/**
 * Cold facts without the hash: what an `ec` document's blobs carry from data format 4 on. The hash exists to pair a
 * pure hot update with the cold set it reused, and no hot update reuses an ec document's cold part. A release
 * before format 4 refuses the bit (an unknown kind), which is why only a cluster at format 4 writes it.
 */
const FLAG_NO_COLD_HASH = 0x80;

export type BlobRole = (typeof ROLE_CODES)[number];

export interface BlobDescription {
  strategy: Strategy;
  role: BlobRole;
  key: string;
  /** Present on cold copies, shards and field_hybrid hot replicas of a document with a cold part. */
  cold?: {
    codec: ColdCodec;
    dataBytes: number;
    /** Only for a codec other than identity. */
    textBytes?: number;
    /** The cold hash's first 16 hex digits; absent on the blobs of an ec document from data format 4 on. */
    coldHash64?: string;
  };
}

export class DescriptorError extends Error {
  constructor(readonly why: string) {
    super(`blob descriptor: ${why}`);
  }
}

/** The whole descriptor of a blob. */
export function encodeWholeDescriptor(d: BlobDescription): Uint8Array {
  const key = Buffer.from(d.key, 'utf8');
  const codec = d.cold?.codec ?? 'identity';
  const facts = d.cold === undefined ? 0 : d.cold.coldHash64 === undefined ? FLAG_COLD_FACTS | FLAG_NO_COLD_HASH : FLAG_COLD_FACTS;
  const kind = STRATEGY_CODES.indexOf(d.strategy) | (ROLE_CODES.indexOf(d.role) << 2) | (CODEC_CODES.indexOf(codec) << 4) | facts;
  const out: number[] = [kind];
  pushVarint(out, key.length);
  for (const b of key) out.push(b);
  if (d.cold) {
    pushVarint(out, d.cold.dataBytes);
    if (codec !== 'identity') pushVarint(out, d.cold.textBytes ?? d.cold.dataBytes);
    if (d.cold.coldHash64 !== undefined) {
      const hash = Buffer.from(d.cold.coldHash64, 'hex');
      if (hash.length !== COLD_HASH_PREFIX_BYTES) throw new RangeError('coldHash64 is 16 hex digits');
      for (const b of hash) out.push(b);
    }
  }
  return Uint8Array.from(out);
}

/**
 * Reads a whole descriptor; bytes after it must be zeros (the padding of a decoded fragment set), so a damaged
 * descriptor is refused rather than misread.
 */
export function decodeWholeDescriptor(bytes: Uint8Array): BlobDescription {
  let at = 0;
  const need = (n: number): void => {
    if (at + n > bytes.length) throw new DescriptorError(`truncated at byte ${at}`);
  };
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      need(1);
      const b = bytes[at++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    throw new DescriptorError('a length is too long');
  };
  need(1);
  const kind = bytes[at++]!;
  const strategy = STRATEGY_CODES[kind & 3];
  const role = ROLE_CODES[(kind >> 2) & 3];
  const codec = CODEC_CODES[(kind >> 4) & 3];
  const withoutHash = (kind & FLAG_NO_COLD_HASH) !== 0;
  if (strategy === undefined || role === undefined || codec === undefined || (withoutHash && (kind & FLAG_COLD_FACTS) === 0)) {
    throw new DescriptorError(`unknown kind byte 0x${kind.toString(16)}`);
  }
  const keyBytes = varint();
  need(keyBytes);
  const key = Buffer.from(bytes.subarray(at, at + keyBytes)).toString('utf8');
  at += keyBytes;
  const d: BlobDescription = { strategy, role, key };
  if ((kind & FLAG_COLD_FACTS) !== 0) {
    const dataBytes = varint();
    const textBytes = codec !== 'identity' ? varint() : undefined;
    d.cold = { codec, dataBytes, ...(textBytes !== undefined ? { textBytes } : {}) };
    if (!withoutHash) {
      need(COLD_HASH_PREFIX_BYTES);
      d.cold.coldHash64 = Buffer.from(bytes.subarray(at, at + COLD_HASH_PREFIX_BYTES)).toString('hex');
      at += COLD_HASH_PREFIX_BYTES;
    }
  } else if (codec !== 'identity') {
    throw new DescriptorError('a codec without cold facts');
  }
  for (; at < bytes.length; at++) if (bytes[at] !== 0) throw new DescriptorError('non-zero bytes after the descriptor');
  return d;
}

/**
 * The Reed-Solomon 4+2 code of descriptors: the cluster's one code (any instance codes alike), kept apart from the
 * process's instrumented one so that the encode and decode metrics count documents' cold parts, not descriptors.
 */
let descriptorCode: ReedSolomonCode | null = null;
function code(): ReedSolomonCode {
  descriptorCode ??= new ReedSolomonCode();
  return descriptorCode;
}

/** The six fragments of a shard set's descriptor (index = shard number). */
export async function encodeDescriptorFragments(d: BlobDescription): Promise<Uint8Array[]> {
  const whole = encodeWholeDescriptor(d);
  const padded = Buffer.alloc(Math.ceil(whole.length / FRAGMENT_PAD_BYTES) * FRAGMENT_PAD_BYTES);
  padded.set(whole);
  return (await code().encode(padded)).map((b) => new Uint8Array(b));
}

/**
 * The descriptor from the fragments of at least `ec.dataShards` shards of one write (null = shard not found). All
 * fragments present must be of one length; four of them rebuild the padded descriptor.
 */
export async function decodeDescriptorFragments(fragments: (Uint8Array | null)[]): Promise<BlobDescription> {
  const ec = code();
  const present = fragments.filter((f): f is Uint8Array => f !== null);
  if (present.length < ec.dataShards) throw new DescriptorError(`only ${present.length} fragments; ${ec.dataShards} are needed`);
  const length = present[0]!.length;
  if (present.some((f) => f.length !== length)) throw new DescriptorError('fragments of different lengths');
  const paddedBytes = length * ec.dataShards;
  const whole = await ec.reconstruct(
    fragments.map((f) => (f === null ? null : Buffer.from(f))),
    paddedBytes,
  );
  return decodeWholeDescriptor(whole);
}

/** The fragment length of a descriptor, for size arithmetic (LAYOUT_COST). */
export function fragmentBytesFor(wholeBytes: number): number {
  return code().shardBytesFor(Math.ceil(wholeBytes / FRAGMENT_PAD_BYTES) * FRAGMENT_PAD_BYTES);
}

function pushVarint(out: number[], value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint of ${value}`);
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}
