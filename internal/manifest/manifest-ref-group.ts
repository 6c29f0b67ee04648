/**
 * A group of blob refs (a manifest's `hot` or its `cold`) in the binary manifest (manifest-codec.ts; layout in
 * README.md, "Ref group"). What the refs of a group share is stored once: the write that made them, the size and
 * the checksum when equal (replicas and copies hold the same bytes by construction), and each ref's part and blob id
 * follow from its position. What a ref does not share (a healer's `.r`/`.m`/`.x` id, a part out of sequence, an
 * id of its own) goes in an exception record.
 */
import { ULID_BYTES, ulidFromBytes } from '../core/derived-ids.js';
import { ByteReader, ByteWriter, ManifestDecodeError, NotCompactable, bytesToLowerHex, hexBytes, indexIn, ulidBytesOf } from './manifest-bytes.js';
import type { BlobRef, BlobState } from './manifest.js';

/** The node half of the store's dictionary (ManifestDictionary). */
export interface NodeNumbers {
  nodeNumber(name: string): number | undefined;
  nodeName(n: number): string | undefined;
}

// Group flags (one byte after a non-zero ref count).
const G_SIZE_MASK = 0x03; // G_SIZE_*
const G_CHECKSUM_SHIFT = 2; // 2 bits: G_CHECKSUM_*
const G_CHECKSUM_LONG = 0x10; // checksums are 64 hex digits (32 B) rather than 16 (8 B)
const G_WRITE_ID = 0x20; // the group's write id differs from the manifest's: 16 bytes follow
const G_STATES = 0x40; // some ref is not 'ok': 2 bits of state per ref follow
const G_EXCEPTIONS = 0x80; // some ref has a blob id, write id or part of its own
const G_SIZE_PER_REF = 0;
const G_SIZE_ONE = 1;
const G_SIZE_DERIVED = 2; // hot: bytes.hot; cold: cold_layout.shardBytes
const G_CHECKSUM_PER_REF = 0;
const G_CHECKSUM_ONE = 1;
const G_CHECKSUM_COLD_HASH = 2; // cold only: the checksum is coldHash (or its first 16 hex digits)
// Exception record flags (one per ref marked in the exception bitmap).
const X_SUFFIX_MASK = 0x03; // SUFFIX_KINDS index; 0 = none
const X_WRITE_ID = 0x04;
const X_PART = 0x08;
const X_BLOB_TEXT = 0x10; // the blob id spelled out (neither derived nor a known healer form)
const STATES: readonly BlobState[] = ['ok', 'missing', 'corrupt', 'unknown'];
/** The healer's blob id forms `<writeId>.<part>.<kind><modRevision in base 36>` (repairer, blob-mover, extra-replicas). */
const SUFFIX_KINDS = [undefined, 'r', 'm', 'x'] as const;
const SUFFIX = /^\.([rmx])(0|[1-9a-z][0-9a-z]*)$/;
const SHORT_CHECKSUM_BYTES = 8;
const LONG_CHECKSUM_BYTES = 32;

export interface GroupContext {
  what: 'hot' | 'cold';
  /** The manifest's write id: a group whose blobs another write made stores its own. */
  writeId: string;
  dict: NodeNumbers;
  /** The part a ref at position i has unless it says otherwise. */
  partOf: (i: number) => string;
  /** A size every ref of the group has by construction (G_SIZE_DERIVED), when the manifest says it elsewhere. */
  derivedSize: number | null;
  coldHash: string | null;
}

export function encodeGroup(w: ByteWriter, refs: BlobRef[], ctx: GroupContext): void {
  w.varint(refs.length, `the ${ctx.what} refs`);
  if (refs.length === 0) return;
  const groupWriteId = refs[0]!.writeId;
  const sizeMode = refs.every((r) => r.size === refs[0]!.size)
    ? refs[0]!.size === ctx.derivedSize
      ? G_SIZE_DERIVED
      : G_SIZE_ONE
    : G_SIZE_PER_REF;
  const checksums = refs.map((r) => r.checksum);
  const long = checksums[0]!.length === 2 * LONG_CHECKSUM_BYTES;
  const checksumBytes = long ? LONG_CHECKSUM_BYTES : SHORT_CHECKSUM_BYTES;
  const sameChecksum = checksums.every((c) => c === checksums[0]);
  const fromColdHash = ctx.coldHash !== null && checksums[0] === ctx.coldHash.slice(0, 2 * checksumBytes);
  const checksumMode = sameChecksum ? (fromColdHash ? G_CHECKSUM_COLD_HASH : G_CHECKSUM_ONE) : G_CHECKSUM_PER_REF;
  const states = refs.map((r) => indexIn(STATES, r.state, `the state of a ${ctx.what} ref`));
  const exceptions = refs.map((r, i) => exceptionOf(r, ctx.partOf(i), groupWriteId));
  const hasExceptions = exceptions.some((x) => x !== null);

  w.u8(
    sizeMode |
      (checksumMode << G_CHECKSUM_SHIFT) |
      (long ? G_CHECKSUM_LONG : 0) |
      (groupWriteId !== ctx.writeId ? G_WRITE_ID : 0) |
      (states.some((s) => s !== 0) ? G_STATES : 0) |
      (hasExceptions ? G_EXCEPTIONS : 0),
  );
  if (groupWriteId !== ctx.writeId) w.raw(ulidBytesOf(groupWriteId, `the ${ctx.what} refs' write id`));
  for (const r of refs) {
    const n = ctx.dict.nodeNumber(r.node);
    if (n === undefined) throw new NotCompactable(`node ${r.node} (no dictionary number)`);
    w.varint(n, 'a node number');
  }
  if (states.some((s) => s !== 0)) {
    const packed = new Uint8Array(Math.ceil(refs.length / 4));
    states.forEach((s, i) => (packed[i >> 2]! |= s << ((i & 3) * 2)));
    w.raw(packed);
  }
  if (sizeMode === G_SIZE_ONE) w.varint(refs[0]!.size, 'a blob size');
  if (sizeMode === G_SIZE_PER_REF) for (const r of refs) w.varint(r.size, 'a blob size');
  if (checksumMode === G_CHECKSUM_ONE) w.raw(hexBytes(checksums[0]!, checksumBytes, 'a checksum'));
  if (checksumMode === G_CHECKSUM_PER_REF) for (const c of checksums) w.raw(hexBytes(c, checksumBytes, 'a checksum'));
  if (hasExceptions) {
    const bitmap = new Uint8Array(Math.ceil(refs.length / 8));
    exceptions.forEach((x, i) => {
      if (x !== null) bitmap[i >> 3]! |= 1 << (i & 7);
    });
    w.raw(bitmap);
    for (const x of exceptions) if (x !== null) x(w);
  }
}

/** The record of what a ref does not share with its group (null: nothing), as a function that writes it. */
function exceptionOf(ref: BlobRef, part: string, groupWriteId: string): ((w: ByteWriter) => void) | null {
  const ownWriteId = ref.writeId !== groupWriteId;
  const ownPart = ref.part !== part;
  const base = `${ref.writeId}.${ref.part}`;
  let suffixKind = 0;
  let revision = 0;
  let blobText = false;
  if (typeof ref.blob !== 'string') throw new NotCompactable('a blob id');
  if (ref.blob !== base) {
    const match = ref.blob.startsWith(base) ? SUFFIX.exec(ref.blob.slice(base.length)) : null;
    const rev = match ? parseInt(match[2]!, 36) : NaN;
    if (match && Number.isSafeInteger(rev) && rev.toString(36) === match[2]) {
      suffixKind = SUFFIX_KINDS.indexOf(match[1] as 'r' | 'm' | 'x');
      revision = rev;
    } else {
      blobText = true;
    }
  }
  if (!ownWriteId && !ownPart && suffixKind === 0 && !blobText) return null;
  return (w) => {
    w.u8(suffixKind | (ownWriteId ? X_WRITE_ID : 0) | (ownPart ? X_PART : 0) | (blobText ? X_BLOB_TEXT : 0));
    if (ownWriteId) w.raw(ulidBytesOf(ref.writeId, "a ref's write id"));
    if (ownPart) w.text(ref.part);
    if (suffixKind !== 0) w.varint(revision, 'a blob id suffix');
    if (blobText) w.text(ref.blob);
  };
}

/**
 * What each field of a group is called in a decode error, built once: the decoder reads them for every field of every
 * manifest a scan lists, where building the text each time showed in profiles.
 */
const DECODE_LABELS = Object.fromEntries(
  (['hot', 'cold'] as const).map((what) => [
    what,
    {
      refs: `${what} refs`,
      flags: `the ${what} group flags`,
      writeId: `the ${what} refs' write id`,
      nodeNumber: `a ${what} node number`,
      states: `the ${what} states`,
      size: `the ${what} size`,
      checksum: `the ${what} checksum`,
      exceptions: `the ${what} exception bitmap`,
    },
  ]),
) as Record<'hot' | 'cold', Record<'refs' | 'flags' | 'writeId' | 'nodeNumber' | 'states' | 'size' | 'checksum' | 'exceptions', string>>;

export function decodeGroup(r: ByteReader, ctx: GroupContext): BlobRef[] {
  const label = DECODE_LABELS[ctx.what];
  // Each ref takes at least its node number's byte.
  const n = r.count(label.refs);
  if (n === 0) return [];
  const flags = r.u8(label.flags);
  const sizeMode = flags & G_SIZE_MASK;
  const checksumMode = (flags >> G_CHECKSUM_SHIFT) & 3;
  if (sizeMode > G_SIZE_DERIVED) throw new ManifestDecodeError(`the ${ctx.what} group's size mode ${sizeMode} is not one this release knows`);
  if (checksumMode > G_CHECKSUM_COLD_HASH) {
    throw new ManifestDecodeError(`the ${ctx.what} group's checksum mode ${checksumMode} is not one this release knows`);
  }
  const groupWriteId = (flags & G_WRITE_ID) !== 0 ? ulidFromBytes(r.raw(ULID_BYTES, label.writeId)) : ctx.writeId;
  const nodes: string[] = [];
  for (let i = 0; i < n; i++) {
    const number = r.varint(label.nodeNumber);
    const name = ctx.dict.nodeName(number);
    if (name === undefined) throw new ManifestDecodeError(`node number ${number} is not in this store's dictionary (a damaged record or dictionary)`);
    nodes.push(name);
  }
  const states: BlobState[] = new Array<BlobState>(n).fill('ok');
  if ((flags & G_STATES) !== 0) {
    const packed = r.raw(Math.ceil(n / 4), label.states);
    for (let i = 0; i < n; i++) states[i] = STATES[(packed[i >> 2]! >> ((i & 3) * 2)) & 3]!;
  }
  let sizes: number[];
  if (sizeMode === G_SIZE_DERIVED) {
    if (ctx.derivedSize === null) throw new ManifestDecodeError(`the ${ctx.what} sizes are said to be derived, from a cold_layout the record does not have`);
    sizes = new Array<number>(n).fill(ctx.derivedSize);
  } else if (sizeMode === G_SIZE_ONE) {
    sizes = new Array<number>(n).fill(r.varint(label.size));
  } else {
    sizes = [];
    for (let i = 0; i < n; i++) sizes.push(r.varint(label.size));
  }
  const checksumBytes = (flags & G_CHECKSUM_LONG) !== 0 ? LONG_CHECKSUM_BYTES : SHORT_CHECKSUM_BYTES;
  let checksums: string[];
  if (checksumMode === G_CHECKSUM_COLD_HASH) {
    if (ctx.coldHash === null) throw new ManifestDecodeError(`the ${ctx.what} checksums are said to be the cold hash, which the record does not have`);
    checksums = new Array<string>(n).fill(ctx.coldHash.slice(0, 2 * checksumBytes));
  } else if (checksumMode === G_CHECKSUM_ONE) {
    checksums = new Array<string>(n).fill(bytesToLowerHex(r.raw(checksumBytes, label.checksum)));
  } else {
    checksums = [];
    for (let i = 0; i < n; i++) checksums.push(bytesToLowerHex(r.raw(checksumBytes, label.checksum)));
  }
  const refs: BlobRef[] = [];
  for (let i = 0; i < n; i++) {
    const part = ctx.partOf(i);
    refs.push({ part, node: nodes[i]!, blob: `${groupWriteId}.${part}`, writeId: groupWriteId, size: sizes[i]!, checksum: checksums[i]!, state: states[i]! });
  }
  if ((flags & G_EXCEPTIONS) !== 0) {
    const bitmap = r.raw(Math.ceil(n / 8), label.exceptions);
    for (let i = 0; i < bitmap.length * 8; i++) {
      if ((bitmap[i >> 3]! & (1 << (i & 7))) === 0) continue;
      if (i >= n) throw new ManifestDecodeError(`the ${ctx.what} exception bitmap marks ref ${i} of ${n}`);
      applyException(r, refs[i]!, ctx.what);
    }
  }
  return refs;
}

function applyException(r: ByteReader, ref: BlobRef, what: string): void {
  const flags = r.u8(`a ${what} ref's exception flags`);
  if ((flags & ~(X_SUFFIX_MASK | X_WRITE_ID | X_PART | X_BLOB_TEXT)) !== 0) {
    throw new ManifestDecodeError(`a ${what} ref's exception flags (0x${flags.toString(16)}) have bits this release does not know`);
  }
  if ((flags & X_WRITE_ID) !== 0) ref.writeId = ulidFromBytes(r.raw(ULID_BYTES, `a ${what} ref's write id`));
  if ((flags & X_PART) !== 0) ref.part = r.text(`a ${what} ref's part`);
  ref.blob = `${ref.writeId}.${ref.part}`;
  const suffix = SUFFIX_KINDS[flags & X_SUFFIX_MASK];
  if (suffix !== undefined) ref.blob += `.${suffix}${r.varint(`a ${what} ref's blob id suffix`).toString(36)}`;
  if ((flags & X_BLOB_TEXT) !== 0) {
    if (suffix !== undefined) throw new ManifestDecodeError(`a ${what} ref has both a blob id suffix and a spelled-out blob id`);
    ref.blob = r.text(`a ${what} ref's blob id`);
  }
}
