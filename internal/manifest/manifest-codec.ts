/**
 * The binary manifest, format 2 (docs/design/compact-formats.md section 3.6; byte layout in README.md beside this
 * file). Everything above the metadata stores keeps working on the `Manifest` object; the stores call this codec
 * at their boundary. The compact form stores each fact once: blob ids derived from (write id, part), node names and
 * hot-field lists as numbers from the store's own dictionary, checksums as raw bytes, equal sizes and checksums
 * once per group, dates as millisecond deltas from the write id's time.
 *
 * Lossless by construction: after encoding, the result is decoded and compared with the input; a manifest the
 * compact form cannot carry exactly (an id that is not derived, a non-canonical date, a property this codec does
 * not know, a node without a number...) is written in the escape form instead, `0x02 0x01` then the v1 JSON text.
 */
import { StrataError } from '../core/errors.js';
import { ULID_BYTES, ulidFromBytes } from '../core/derived-ids.js';
import {
  ByteReader,
  ByteWriter,
  ManifestDecodeError,
  NotCompactable,
  bytesToLowerHex,
  hexBytes,
  isoDateOfMs,
  indexIn,
  ulidBytesOf,
  utf8Bytes,
  utf8Text,
} from './manifest-bytes.js';
import { STRATEGIES, baseHotRefs, type BlobRef, type ColdCodec, type ColdLayout, type ColdPlacement, type Manifest } from './manifest.js';
import { decodeGroup, encodeGroup } from './manifest-ref-group.js';

export { ManifestDecodeError } from './manifest-bytes.js';

/** First byte of a binary manifest; a JSON (v1) one starts with '{'. */
export const MANIFEST_BINARY_FORMAT = 2;
/**
 * The same layout with a 128-bit cold hash (16 bytes instead of 32): written only for a manifest whose coldHash
 * has 32 hex digits, which the write path makes only at data format 3 (core/data-format.ts), so a release that
 * reads format 2 alone never meets it before the cluster's bump; if it did, it would fail closed on the first byte.
 */
export const MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH = 3;
const JSON_FIRST_BYTE = 0x7b; // '{'

/**
 * Lookups only: encoding never assigns numbers. The store assigns a number to every node and hot-field list that
 * dictionaryNeeds() names before it encodes (in the same transaction where it can), and never reuses one. Hot-field
 * set ids start at 1: 0 stands for the empty list and is never looked up.
 */
export interface ManifestDictionary {
  nodeNumber(name: string): number | undefined;
  nodeName(n: number): string | undefined;
  hotFieldSetId(fields: readonly string[]): number | undefined;
  hotFieldSet(id: number): readonly string[] | undefined;
}

// Flags byte A (offset 1).
const A_ESCAPE = 0x01; // the rest is the v1 JSON text; no other bit may be set
const A_DELETED = 0x02;
const A_DIRTY = 0x04;
const A_STRATEGY_SHIFT = 3; // 2 bits: index in STRATEGIES
const A_VERSION = 0x20; // version stored: it differs from the row's mod_revision
const A_DATES_TEXT = 0x40; // updatedAt and createdAt as text (not canonical toISOString() output)
const A_COLD_LAYOUT = 0x80;
// Flags byte B (offset 2).
const B_HOT_FIELDS_SOURCE_SHIFT = 0; // 2 bits: SOURCES index
const B_STRATEGY_SOURCE_SHIFT = 2; // 2 bits
const B_EXPIRES = 0x10;
const B_EXTRA_REPLICAS = 0x20;
const B_EMPTY_OFFSETS = 0x40;
const B_COLD_HASH = 0x80;
// cold_layout flags.
const L_PLACEMENT_MASK = 0x03; // PLACEMENTS index
const L_CODEC_SHIFT = 2; // 2 bits: CODECS index
const L_TEXT_BYTES = 0x10;
const L_SHARD_BYTES = 0x20; // stored: not what the format's rule derives

// hotPaths mode, the low 2 bits of the varint that carries the hot-field set id.
const PATHS_NONE = 0;
const PATHS_BITMAP = 1; // the set's fields in the set's order, those present marked
const PATHS_INDEXES = 2; // indexes into the set, in hotPaths order
const PATHS_TEXT = 3; // spelled out

const SOURCES = [undefined, 'policy', 'request'] as const;
const PLACEMENTS: readonly (ColdPlacement | undefined)[] = [undefined, 'shards', 'with_replicas'];
const CODECS: readonly (ColdCodec | undefined)[] = [undefined, 'identity', 'brotli', 'deflate'];

/** Bytes of the cold hash by first byte: sha256 whole, or its first 128 bits. */
const COLD_HASH_BYTES = { [MANIFEST_BINARY_FORMAT]: 32, [MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH]: 16 } as const;
/** Milliseconds a Date can hold either side of the epoch (ECMAScript). */
const DATE_MS_MAX = 8.64e15;

/** Which node numbers and hot-field set ids the compact encoding of `m` looks up. */
export function dictionaryNeeds(m: Manifest): { nodes: string[]; hotFieldSets: string[][] } {
  const nodes = new Set<string>();
  for (const ref of [...(m.hot ?? []), ...(m.cold ?? [])]) nodes.add(ref.node);
  const hotFieldSets = Array.isArray(m.hotFields) && m.hotFields.length > 0 ? [[...m.hotFields]] : [];
  return { nodes: [...nodes], hotFieldSets };
}

/**
 * The binary form of `m` as the row stored at `modRevision` (the key is the row's; the version is left out when
 * it equals modRevision). Always succeeds for a JSON-representable manifest: see the file comment.
 */
export function encodeManifestBinary(m: Manifest, modRevision: number, dict: ManifestDictionary): Uint8Array {
  return encodeManifestRecord(m, modRevision, dict).bytes;
}

/**
 * As encodeManifestBinary, with the manifest a read of those bytes returns: the decode that proved the encoding
 * lossless, so a store hands back what it stored without copying or decoding it a second time. It shares no
 * objects with `m`.
 */
export function encodeManifestRecord(m: Manifest, modRevision: number, dict: ManifestDictionary): { bytes: Uint8Array; manifest: Manifest } {
  let compact: Uint8Array | null = null;
  try {
    compact = encodeCompact(m, modRevision, dict);
  } catch {
    // NotCompactable, or an exotic manifest that breaks an assumption of the compact encoder (a member missing, a
    // number where text goes): either way the escape form below stores it exactly.
    compact = null;
  }
  const decoded = compact === null ? null : decodedBackTo(compact, m, modRevision, dict);
  if (compact !== null && decoded !== null) return { bytes: compact, manifest: decoded };
  const escaped = escapeForm(m);
  return { bytes: escaped, manifest: parseJsonManifest(escaped, 2) };
}

/** True when `first` (a record's first byte) names a binary manifest format this release reads. */
export function isBinaryManifestFormat(first: number | undefined): first is 2 | 3 {
  return first === MANIFEST_BINARY_FORMAT || first === MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH;
}

/** The binary formats this release reads, for messages. */
export const BINARY_MANIFEST_FORMATS_TEXT = `${MANIFEST_BINARY_FORMAT} and ${MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH}`;

/** True when `bytes` (a stored record) is in a format this release reads, without decoding it. */
export function isReadableManifestFormat(bytes: Uint8Array): boolean {
  return isBinaryManifestFormat(bytes[0]) || bytes[0] === JSON_FIRST_BYTE;
}

/**
 * The manifest a stored record holds. `bytes` may also be a v1 JSON manifest (first byte '{'), returned as parsed.
 * Throws ManifestDecodeError for a damaged or truncated record, and StrataError FORMAT_UNSUPPORTED for a format
 * this release does not know (a newer release wrote it: nothing may act on it).
 */
export function decodeManifestBinary(bytes: Uint8Array, key: string, modRevision: number, dict: ManifestDictionary): Manifest {
  if (bytes.length === 0) throw new ManifestDecodeError('the record is empty');
  const format = bytes[0]!;
  if (format === JSON_FIRST_BYTE) return parseJsonManifest(bytes, 0);
  if (!isBinaryManifestFormat(format)) {
    throw new StrataError(
      'FORMAT_UNSUPPORTED',
      `the manifest of ${JSON.stringify(key)} is in format 0x${format.toString(16).padStart(2, '0')}, which this release ` +
        `cannot read (it reads JSON and formats ${BINARY_MANIFEST_FORMATS_TEXT}): a newer release wrote it; upgrade this process`,
    );
  }
  const r = new ByteReader(bytes, 1);
  const a = r.u8('the flags');
  if ((a & A_ESCAPE) !== 0) {
    if (a !== A_ESCAPE) throw new ManifestDecodeError(`the escape flag comes with other flags (0x${a.toString(16)})`);
    return parseJsonManifest(bytes, 2);
  }
  return decodeCompact(r, a, key, modRevision, dict, COLD_HASH_BYTES[format]);
}

// ---- the escape form -------------------------------------------------------------------------------------------

function escapeForm(m: Manifest): Uint8Array {
  const json = utf8Bytes(JSON.stringify(m));
  const out = new Uint8Array(2 + json.length);
  out[0] = MANIFEST_BINARY_FORMAT;
  out[1] = A_ESCAPE;
  out.set(json, 2);
  return out;
}

function parseJsonManifest(bytes: Uint8Array, offset: number): Manifest {
  const text = utf8Text(bytes.subarray(offset), 'the JSON manifest');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ManifestDecodeError(`the JSON manifest does not parse (${(error as Error).message}): truncated or damaged`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ManifestDecodeError('the JSON manifest is not an object');
  }
  return value as Manifest;
}

// ---- lossless check ----------------------------------------------------------------------------------------------

/** The decode of `bytes` when it equals `m` as a JSON value, else null. */
function decodedBackTo(bytes: Uint8Array, m: Manifest, modRevision: number, dict: ManifestDictionary): Manifest | null {
  try {
    const decoded = decodeManifestBinary(bytes, m.key, modRevision, dict);
    return sameJson(decoded, m) ? decoded : null;
  } catch {
    // A decoder that cannot read what the encoder wrote is a codec bug; the escape form still stores m exactly.
    return null;
  }
}

/**
 * Equal as JSON values: the same members (a member whose value is undefined counts as absent, as JSON drops it),
 * the same array elements in order, the same primitives. Member order is not compared: it carries no meaning.
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keysA = definedKeys(a);
  const keysB = definedKeys(b);
  if (keysA.length !== keysB.length) return false;
  for (const k of keysA) if (!Object.prototype.hasOwnProperty.call(b, k) || !sameJson(a[k], b[k])) return false;
  return true;
}

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function definedKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).filter((k) => o[k] !== undefined);
}

// ---- the compact form: encode ------------------------------------------------------------------------------------

function encodeCompact(m: Manifest, modRevision: number, dict: ManifestDictionary): Uint8Array {
  if (m.formatVersion !== 1) throw new NotCompactable('formatVersion');
  const writeIdBytes = ulidBytesOf(m.writeId, 'the write id');
  const writeIdMs = ulidMs(writeIdBytes, 0);
  const strategy = STRATEGIES.indexOf(m.strategy);
  if (strategy < 0) throw new NotCompactable('strategy');
  const versionStored = m.version !== String(modRevision);
  const updatedMs = canonicalDateMs(m.updatedAt);
  const createdMs = canonicalDateMs(m.createdAt);
  // Deltas from the write id's time; text when a date is not canonical or too far from it for a zigzag varint.
  const updatedDelta = updatedMs === null ? null : zigzagFits(updatedMs - writeIdMs);
  const createdDelta = updatedMs === null || createdMs === null ? null : zigzagFits(updatedMs - createdMs);
  const datesText = updatedDelta === null || createdDelta === null;
  const layout = m.cold_layout;

  // A short cold hash picks format 3; any other manifest is format 2, as the previous release wrote it.
  const shortColdHash = m.coldHash !== null && m.coldHash.length === 2 * COLD_HASH_BYTES[MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH];
  const format = shortColdHash ? MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH : MANIFEST_BINARY_FORMAT;
  const w = new ByteWriter();
  w.u8(format);
  w.u8(
    (m.deleted ? A_DELETED : 0) |
      (m.dirty ? A_DIRTY : 0) |
      (strategy << A_STRATEGY_SHIFT) |
      (versionStored ? A_VERSION : 0) |
      (datesText ? A_DATES_TEXT : 0) |
      (layout !== null ? A_COLD_LAYOUT : 0),
  );
  w.u8(
    (indexIn(SOURCES, m.hotFieldsSource, 'hotFieldsSource') << B_HOT_FIELDS_SOURCE_SHIFT) |
      (indexIn(SOURCES, m.strategySource, 'strategySource') << B_STRATEGY_SOURCE_SHIFT) |
      (m.expiresAtMs !== undefined ? B_EXPIRES : 0) |
      (m.extraReplicas !== undefined ? B_EXTRA_REPLICAS : 0) |
      (m.coldEmptyOffsets.length > 0 ? B_EMPTY_OFFSETS : 0) |
      (m.coldHash !== null ? B_COLD_HASH : 0),
  );
  w.raw(writeIdBytes);
  if (versionStored) w.varint(decimal(m.version), 'the version');
  if (datesText) {
    w.text(m.updatedAt);
    w.text(m.createdAt);
  } else {
    w.signed(updatedDelta!, 'updatedAt');
    w.signed(createdDelta!, 'createdAt');
  }
  encodeHotFields(w, m.hotFields, m.hotPaths, dict);
  if (m.coldEmptyOffsets.length > 0) {
    w.varint(m.coldEmptyOffsets.length, 'coldEmptyOffsets');
    let previous = 0;
    for (const offset of m.coldEmptyOffsets) {
      w.signed(offset - previous, 'coldEmptyOffsets');
      previous = offset;
    }
  }
  w.varint(m.bytes.logical, 'bytes.logical');
  w.varint(m.bytes.hot, 'bytes.hot');
  w.varint(m.bytes.cold, 'bytes.cold');
  // 0: the sum of the blob sizes (what the write path records); otherwise physical + 1.
  w.varint(m.bytes.physical === physicalOf(m.hot, m.cold, m.extraReplicas) ? 0 : m.bytes.physical + 1, 'bytes.physical');
  if (layout !== null) encodeColdLayout(w, layout);
  if (m.coldHash !== null) w.raw(hexBytes(m.coldHash, COLD_HASH_BYTES[format], 'coldHash'));
  const groupBase = { writeId: m.writeId, dict };
  encodeGroup(w, m.hot, { ...groupBase, what: 'hot', partOf: (i) => `hot-${i}`, derivedSize: m.bytes.hot, coldHash: null });
  encodeGroup(w, m.cold, {
    ...groupBase,
    what: 'cold',
    partOf: coldPartOf(layout),
    derivedSize: layout?.shardBytes ?? null,
    coldHash: m.coldHash,
  });
  if (m.expiresAtMs !== undefined) w.signed(m.expiresAtMs - writeIdMs, 'expiresAtMs');
  if (m.extraReplicas !== undefined) w.varint(m.extraReplicas, 'extraReplicas');
  return w.finish();
}



/** The 48-bit millisecond time at the front of a ULID. */
function ulidMs(bytes: Uint8Array, offset: number): number {
  let ms = 0;
  for (let i = 0; i < 6; i++) ms = ms * 256 + bytes[offset + i]!;
  return ms;
}

/** The ms of a date only when toISOString() gives back exactly the same text. */
function canonicalDateMs(text: string): number | null {
  if (typeof text !== 'string') return null;
  const ms = Date.parse(text);
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== text) return null;
  return ms;
}

/** The value when its zigzag form is a safe integer, else null. */
function zigzagFits(value: number): number | null {
  return Number.isSafeInteger(value) && Number.isSafeInteger(Math.abs(value) * 2) ? value : null;
}

function decimal(text: string): number {
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]*)$/.test(text)) throw new NotCompactable('the version');
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new NotCompactable('the version');
  return n;
}


/** A hot field (a top-level name or a JSON Pointer, internal/json/pointer.ts) as the pointer hotPaths holds. */
function pointerOfField(field: string): string {
  return field.startsWith('/') ? field : '/' + field.replace(/~/g, '~0').replace(/\//g, '~1');
}

function encodeHotFields(w: ByteWriter, fields: string[], paths: string[], dict: ManifestDictionary): void {
  let setId = 0;
  if (fields.length > 0) {
    const id = dict.hotFieldSetId(fields);
    if (id === undefined || !Number.isSafeInteger(id) || id < 1) throw new NotCompactable('the hot-field set (no dictionary id)');
    setId = id;
  }
  const pointers = fields.map(pointerOfField);
  const indexes = paths.map((p) => pointers.indexOf(p));
  const ascending = indexes.every((i, n) => i >= 0 && (n === 0 || i > indexes[n - 1]!));
  const mode =
    paths.length === 0 ? PATHS_NONE : ascending ? PATHS_BITMAP : indexes.every((i) => i >= 0) ? PATHS_INDEXES : PATHS_TEXT;
  w.varint(setId * 4 + mode, 'the hot-field set id');
  if (mode === PATHS_BITMAP) {
    const bitmap = new Uint8Array(Math.ceil(fields.length / 8));
    for (const i of indexes) bitmap[i >> 3]! |= 1 << (i & 7);
    w.raw(bitmap);
  } else if (mode === PATHS_INDEXES) {
    w.varint(indexes.length, 'hotPaths');
    for (const i of indexes) w.varint(i, 'hotPaths');
  } else if (mode === PATHS_TEXT) {
    w.varint(paths.length, 'hotPaths');
    for (const p of paths) w.text(p);
  }
}

function encodeColdLayout(w: ByteWriter, layout: ColdLayout): void {
  const placement = indexIn(PLACEMENTS, layout.placement, 'cold_layout.placement');
  const shardBytesStored = layout.shardBytes !== derivedShardBytes(layout.placement, layout.dataBytes);
  w.u8(
    placement |
      (indexIn(CODECS, layout.codec, 'cold_layout.codec') << L_CODEC_SHIFT) |
      (layout.textBytes !== undefined ? L_TEXT_BYTES : 0) |
      (shardBytesStored ? L_SHARD_BYTES : 0),
  );
  w.varint(layout.dataBytes, 'cold_layout.dataBytes');
  if (shardBytesStored) w.varint(layout.shardBytes, 'cold_layout.shardBytes');
  if (layout.textBytes !== undefined) w.varint(layout.textBytes, 'cold_layout.textBytes');
}

/**
 * shardBytes as format 2 derives it: copies hold the whole stored part; shards are a quarter of it rounded up to
 * a multiple of 8 and at least 8 (internal/ec/reed-solomon.ts shardBytesFor). Fixed for this format: were the
 * codec's rule to change, its manifests would store shardBytes (L_SHARD_BYTES) rather than derive it.
 */
function derivedShardBytes(placement: ColdPlacement | undefined, dataBytes: number): number {
  if (placement === 'with_replicas') return dataBytes;
  const quarter = Math.ceil(dataBytes / 4);
  return Math.max(8, Math.ceil(quarter / 8) * 8);
}

const hotPartOf = (i: number): string => `hot-${i}`;
const coldCopyPartOf = (i: number): string => `cold-${i}`;
const shardPartOf = (i: number): string => `shard-${i}`;

function coldPartOf(layout: ColdLayout | null): (i: number) => string {
  return layout?.placement === 'with_replicas' ? coldCopyPartOf : shardPartOf;
}

/** What `bytes.physical` is at write time: the sizes of every blob but the extra replicas. */
function physicalOf(hot: BlobRef[], cold: BlobRef[], extraReplicas: number | undefined): number {
  const base = baseHotRefs({ hot, extraReplicas } as Manifest);
  let sum = 0;
  for (const ref of [...base, ...cold]) sum += ref.size;
  return sum;
}


// ---- the compact form: decode ------------------------------------------------------------------------------------

function decodeCompact(r: ByteReader, a: number, key: string, modRevision: number, dict: ManifestDictionary, coldHashBytes: number): Manifest {
  const strategy = STRATEGIES[(a >> A_STRATEGY_SHIFT) & 3];
  if (strategy === undefined) throw new ManifestDecodeError(`strategy number ${(a >> A_STRATEGY_SHIFT) & 3} is not one this release knows`);
  const b = r.u8('the second flags byte');
  const hotFieldsSource = sourceAt(b >> B_HOT_FIELDS_SOURCE_SHIFT, 'hotFieldsSource');
  const strategySource = sourceAt(b >> B_STRATEGY_SOURCE_SHIFT, 'strategySource');
  const writeIdBytes = r.raw(ULID_BYTES, 'the write id');
  const writeId = ulidFromBytes(writeIdBytes);
  const writeIdMs = ulidMs(writeIdBytes, 0);
  const version = (a & A_VERSION) !== 0 ? String(r.varint('the version')) : String(modRevision);
  let updatedAt: string;
  let createdAt: string;
  if ((a & A_DATES_TEXT) !== 0) {
    updatedAt = r.text('updatedAt');
    createdAt = r.text('createdAt');
  } else {
    const updatedMs = writeIdMs + r.signed('updatedAt');
    const createdMs = updatedMs - r.signed('createdAt');
    updatedAt = isoDate(updatedMs, 'updatedAt');
    createdAt = isoDate(createdMs, 'createdAt');
  }
  const { hotFields, hotPaths } = decodeHotFields(r, dict);
  const coldEmptyOffsets: number[] = [];
  if ((b & B_EMPTY_OFFSETS) !== 0) {
    const n = r.count('coldEmptyOffsets');
    let previous = 0;
    for (let i = 0; i < n; i++) coldEmptyOffsets.push((previous += r.signed('coldEmptyOffsets')));
  }
  const logical = r.varint('bytes.logical');
  const hotBytes = r.varint('bytes.hot');
  const coldBytes = r.varint('bytes.cold');
  const physical = r.varint('bytes.physical');
  const coldLayout = (a & A_COLD_LAYOUT) !== 0 ? decodeColdLayout(r) : null;
  const coldHash = (b & B_COLD_HASH) !== 0 ? bytesToLowerHex(r.raw(coldHashBytes, 'coldHash')) : null;
  const hot = decodeGroup(r, { writeId, dict, what: 'hot', partOf: hotPartOf, derivedSize: hotBytes, coldHash: null });
  const cold = decodeGroup(r, {
    writeId,
    dict,
    what: 'cold',
    partOf: coldPartOf(coldLayout),
    derivedSize: coldLayout?.shardBytes ?? null,
    coldHash,
  });
  const expiresAtMs = (b & B_EXPIRES) !== 0 ? writeIdMs + r.signed('expiresAtMs') : undefined;
  const extraReplicas = (b & B_EXTRA_REPLICAS) !== 0 ? r.varint('extraReplicas') : undefined;
  r.end();

  const manifest: Manifest = {
    formatVersion: 1,
    key,
    version,
    writeId,
    deleted: (a & A_DELETED) !== 0,
    strategy,
    hotFields,
    hotPaths,
    coldEmptyOffsets,
    bytes: { logical, hot: hotBytes, cold: coldBytes, physical: physical === 0 ? physicalOf(hot, cold, extraReplicas) : physical - 1 },
    coldHash,
    cold_layout: coldLayout,
    hot,
    cold,
    dirty: (a & A_DIRTY) !== 0,
    createdAt,
    updatedAt,
  };
  if (hotFieldsSource !== undefined) manifest.hotFieldsSource = hotFieldsSource;
  if (strategySource !== undefined) manifest.strategySource = strategySource;
  if (expiresAtMs !== undefined) manifest.expiresAtMs = expiresAtMs;
  if (extraReplicas !== undefined) manifest.extraReplicas = extraReplicas;
  return manifest;
}

function sourceAt(bits: number, what: string): 'policy' | 'request' | undefined {
  const i = bits & 3;
  if (i >= SOURCES.length) throw new ManifestDecodeError(`${what} number ${i} is not one this release knows`);
  return SOURCES[i];
}

function isoDate(ms: number, what: string): string {
  if (!Number.isSafeInteger(ms) || Math.abs(ms) > DATE_MS_MAX) throw new ManifestDecodeError(`${what} (${ms} ms) is not a date`);
  return isoDateOfMs(ms);
}

function decodeHotFields(r: ByteReader, dict: ManifestDictionary): { hotFields: string[]; hotPaths: string[] } {
  const head = r.varint('the hot-field set id');
  const setId = Math.floor(head / 4);
  const mode = head % 4;
  let hotFields: string[] = [];
  if (setId !== 0) {
    const set = dict.hotFieldSet(setId);
    if (set === undefined) {
      throw new ManifestDecodeError(`hot-field set ${setId} is not in this store's dictionary (a damaged record or dictionary)`);
    }
    hotFields = [...set];
  }
  const pointers = hotFields.map(pointerOfField);
  const hotPaths: string[] = [];
  if (mode === PATHS_BITMAP) {
    if (hotFields.length === 0) throw new ManifestDecodeError('hotPaths is a bitmap over an empty hot-field set');
    const bitmap = r.raw(Math.ceil(hotFields.length / 8), 'the hotPaths bitmap');
    for (let i = 0; i < bitmap.length * 8; i++) {
      if ((bitmap[i >> 3]! & (1 << (i & 7))) === 0) continue;
      if (i >= hotFields.length) throw new ManifestDecodeError(`the hotPaths bitmap marks field ${i} of a set of ${hotFields.length}`);
      hotPaths.push(pointers[i]!);
    }
  } else if (mode === PATHS_INDEXES) {
    const n = r.count('hotPaths');
    for (let k = 0; k < n; k++) {
      const i = r.varint('a hotPaths index');
      if (i >= pointers.length) throw new ManifestDecodeError(`a hotPaths index (${i}) is past the hot-field set (${pointers.length})`);
      hotPaths.push(pointers[i]!);
    }
  } else if (mode === PATHS_TEXT) {
    const n = r.count('hotPaths');
    for (let k = 0; k < n; k++) hotPaths.push(r.text('a hot path'));
  }
  return { hotFields, hotPaths };
}

function decodeColdLayout(r: ByteReader): ColdLayout {
  const flags = r.u8('the cold_layout flags');
  if ((flags & ~(L_PLACEMENT_MASK | (3 << L_CODEC_SHIFT) | L_TEXT_BYTES | L_SHARD_BYTES)) !== 0) {
    throw new ManifestDecodeError(`the cold_layout flags (0x${flags.toString(16)}) have bits this release does not know`);
  }
  const placementIndex = flags & L_PLACEMENT_MASK;
  if (placementIndex >= PLACEMENTS.length) throw new ManifestDecodeError(`cold placement number ${placementIndex} is not one this release knows`);
  const placement = PLACEMENTS[placementIndex];
  const codec = CODECS[(flags >> L_CODEC_SHIFT) & 3];
  const dataBytes = r.varint('cold_layout.dataBytes');
  const shardBytes = (flags & L_SHARD_BYTES) !== 0 ? r.varint('cold_layout.shardBytes') : derivedShardBytes(placement, dataBytes);
  const layout: ColdLayout = { dataBytes, shardBytes };
  if (placement !== undefined) layout.placement = placement;
  if (codec !== undefined) layout.codec = codec;
  if ((flags & L_TEXT_BYTES) !== 0) layout.textBytes = r.varint('cold_layout.textBytes');
  return layout;
}
