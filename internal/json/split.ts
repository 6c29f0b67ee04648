/**
 * The field-level split, the heart of field_hybrid: a document becomes a cold text (the canonical compact
 * document minus its hot members, erasure coded) and hot entries (each hot member's value and the byte offset in
 * the cold text where it goes back, replicated). Reading the whole document splices the hot members back into
 * the cold bytes without parsing them, so an 8 MiB document costs one memcpy. The formats are described in
 * README.md beside this file.
 */
import { createHash } from 'node:crypto';
import { assert } from '../core/assert.js';
import { StrataError, isStrataError } from '../core/errors.js';
import { parseJson } from './parse.js';
import { formatPointer, parseJsonPointer } from './pointer.js';
import { serializeJson } from './serialize.js';
import { JsonNumber, NESTING_DEPTH_HARD_MAX, isJsonObject, type JsonObject, type JsonValue } from './value.js';

export interface HotEntry {
  /** Canonical JSON Pointer of the member ('/stats/views'). */
  pointer: string;
  segments: string[];
  /** Byte offset in the cold text where `"name":value` is re-inserted: just after the parent's '{' or after
   * the value of the cold member that precedes it in the original document. */
  offset: number;
  /** Canonical compact text of the member's value. */
  valueText: string;
}

export interface SplitResult {
  /** Canonical compact UTF-8 of the document without its hot members (empty parents stay as `{}`). */
  coldText: Buffer;
  /** Hot members present in the document, in document order (so offsets never decrease). */
  hot: HotEntry[];
  /** Bytes of serializeJson(doc) in UTF-8: api.md's `logical` size. */
  logicalBytes: number;
}

export interface DecodedHot extends HotEntry {
  value: JsonValue;
}

/** What mergeDocument needs of a hot entry. */
export interface HotSplice {
  offset: number;
  segments: readonly string[];
  valueText: string;
}

/**
 * Splits a document. A hot path is taken when each segment but the last names a member whose value is an
 * object (we descend through objects only, never arrays) and the last segment is a member of that object;
 * absent paths are skipped. A hot path below another hot path is carried by the ancestor. The input is not
 * mutated.
 */
export function splitDocument(doc: JsonObject, hotPaths: readonly (readonly string[])[]): SplitResult {
  const splitter = new Splitter();
  splitter.object(doc, buildTrie(hotPaths), []);
  const coldText = splitter.finish();
  return { coldText, hot: splitter.hot, logicalBytes: coldText.length + splitter.hotBytes };
}

interface PathTrie {
  /** The path ending here is hot (and its subtree is carried whole, so it has no children). */
  hot: boolean;
  children: Map<string, PathTrie>;
}

function buildTrie(paths: readonly (readonly string[])[]): PathTrie {
  const root: PathTrie = { hot: false, children: new Map() };
  for (const path of paths) {
    assert(path.length > 0, 'split: a hot path names a member');
    let node = root;
    for (const segment of path) {
      if (node.hot) break; // an ancestor is hot already
      let child = node.children.get(segment);
      if (child === undefined) {
        child = { hot: false, children: new Map() };
        node.children.set(segment, child);
      }
      node = child;
    }
    node.hot = true;
    node.children.clear(); // a descendant listed earlier is carried by this ancestor
  }
  return root;
}

/**
 * Writes the cold text. Cold pieces are collected as strings and encoded to UTF-8 in one go whenever a byte
 * offset is needed (at each hot member) and at the end, so each byte is encoded once and never measured
 * separately, however many small members the document has.
 */
class Splitter {
  readonly hot: HotEntry[] = [];
  /** Bytes the hot members add back: their `"name":value` fragments and the commas they need. */
  hotBytes = 0;
  private pending: string[] = [];
  private readonly chunks: Buffer[] = [];
  private encodedBytes = 0;

  private emit(text: string): void {
    this.pending.push(text);
  }

  /** Bytes of cold text written so far. */
  private offset(): number {
    if (this.pending.length > 0) {
      const chunk = Buffer.from(this.pending.join(''), 'utf8');
      this.pending = [];
      this.chunks.push(chunk);
      this.encodedBytes += chunk.length;
    }
    return this.encodedBytes;
  }

  finish(): Buffer {
    const total = this.offset();
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, total);
  }

  object(obj: JsonObject, trie: PathTrie, path: string[]): void {
    // Recursion follows the hot path trie, whose depth is bounded by the length of a field path.
    assert(path.length < NESTING_DEPTH_HARD_MAX, 'split: hot path depth within the nesting ceiling');
    this.emit('{');
    let coldMembers = 0;
    let hotMembers = 0;
    for (const [name, value] of obj) {
      const child = trie.children.get(name);
      const nameText = JSON.stringify(name);
      if (child?.hot) {
        const segments = [...path, name];
        const valueText = serializeJson(value);
        this.hot.push({ pointer: formatPointer(segments), segments, offset: this.offset(), valueText });
        this.hotBytes += Buffer.byteLength(nameText, 'utf8') + 1 + Buffer.byteLength(valueText, 'utf8');
        hotMembers++;
        continue;
      }
      // The comma goes before the next cold member, so a hot offset always lies right after a cold value.
      this.emit(coldMembers > 0 ? `,${nameText}:` : `${nameText}:`);
      coldMembers++;
      if (child !== undefined && isJsonObject(value)) this.object(value, child, [...path, name]);
      else this.emit(serializeJson(value));
    }
    // n members need n-1 commas: each hot member adds one, except when no cold member is left to follow.
    if (hotMembers > 0) this.hotBytes += coldMembers > 0 ? hotMembers : hotMembers - 1;
    this.emit('}');
  }
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const COMMA = 0x2c;

/**
 * Rebuilds serializeJson(original) by splicing each hot member into the cold bytes at its offset. Entries at
 * one offset keep their given order. The comma rule needs only the two bytes around the offset: after the
 * parent's '{' the member leads (and needs a comma after it unless the object is otherwise empty); after a
 * value it follows (and needs a comma before it). The cold text is never parsed. With no hot entries the cold
 * Buffer itself is returned (treat it as read-only).
 */
export function mergeDocument(coldText: Buffer, hot: readonly HotSplice[]): Buffer {
  if (hot.length === 0) return coldText;
  const entries = isSortedByOffset(hot) ? hot : [...hot].sort((a, b) => a.offset - b.offset); // stable
  const pieces: Buffer[] = [];
  let total = 0;
  let copied = 0;
  for (let i = 0; i < entries.length; ) {
    const offset = entries[i]!.offset;
    const fragments: string[] = [];
    for (; i < entries.length && entries[i]!.offset === offset; i++) {
      const e = entries[i]!;
      const name = e.segments[e.segments.length - 1];
      if (name === undefined) throw corrupt(`hot entry at offset ${offset} names no member`);
      fragments.push(`${JSON.stringify(name)}:${e.valueText}`);
    }
    const leads = checkSpliceOffset(coldText, offset);
    const joined = fragments.join(',');
    const text = leads ? (coldText[offset] === CLOSE_BRACE ? joined : `${joined},`) : `,${joined}`;
    const insert = Buffer.from(text, 'utf8');
    pieces.push(coldText.subarray(copied, offset), insert);
    total += offset - copied + insert.length;
    copied = offset;
  }
  pieces.push(coldText.subarray(copied));
  total += coldText.length - copied;
  return Buffer.concat(pieces, total);
}

function isSortedByOffset(hot: readonly HotSplice[]): boolean {
  for (let i = 1; i < hot.length; i++) if (hot[i]!.offset < hot[i - 1]!.offset) return false;
  return true;
}

/**
 * Checks that an offset can be a splice point: right after '{' (the member leads; returns true) or right
 * after the end of a value (returns false), and before ',', '}' or a member name. This catches hot and cold
 * blobs that do not belong together without parsing the cold text.
 */
function checkSpliceOffset(cold: Buffer, offset: number): boolean {
  if (!Number.isInteger(offset) || offset < 1 || offset >= cold.length) {
    throw corrupt(`hot offset ${offset} lies outside the cold text of ${cold.length} bytes`);
  }
  const before = cold[offset - 1]!;
  const after = cold[offset]!;
  if (before === OPEN_BRACE) {
    if (after === CLOSE_BRACE || after === QUOTE) return true;
  } else if (endsValue(before) && (after === COMMA || after === CLOSE_BRACE)) {
    return false;
  }
  throw corrupt(`hot offset ${offset} is not a member boundary of the cold text`);
}

function endsValue(byte: number): boolean {
  // '}' ']' '"', a digit, or the last letter of true/false (e) or null (l).
  return (
    byte === CLOSE_BRACE ||
    byte === CLOSE_BRACKET ||
    byte === QUOTE ||
    (byte >= 0x30 && byte <= 0x39) ||
    byte === 0x65 ||
    byte === 0x6c
  );
}

/**
 * The hot replicas' payload: a JSON array of `[pointer, offset, value]` in document order, the value inline
 * (not string-escaped), e.g. `[["/like_count",17,5],["/stats/views",40,{"d":1}]]`.
 */
export function encodeHotBlob(hot: readonly HotEntry[]): Buffer {
  const parts: string[] = [];
  let previous = 0;
  for (const e of hot) {
    assert(e.pointer === formatPointer(e.segments) && e.segments.length > 0, 'hot entry pointer matches its segments');
    assert(Number.isSafeInteger(e.offset) && e.offset >= previous, 'hot entries in document order');
    previous = e.offset;
    parts.push(`[${JSON.stringify(e.pointer)},${e.offset},${e.valueText}]`);
  }
  return Buffer.from(`[${parts.join(',')}]`, 'utf8');
}

/** Reads a hot payload back; anything not exactly of encodeHotBlob's shape is BLOB_CORRUPT. */
export function decodeHotBlob(buf: Buffer): DecodedHot[] {
  let root: JsonValue;
  try {
    root = parseJson(buf, { depthMax: NESTING_DEPTH_HARD_MAX, membersMax: Number.MAX_SAFE_INTEGER, what: 'hot blob' });
  } catch (err) {
    if (isStrataError(err)) throw corrupt(err.message);
    throw err;
  }
  if (!Array.isArray(root)) throw corrupt('it is not an array');
  let previous = 0;
  return root.map((entry, i): DecodedHot => {
    if (!Array.isArray(entry) || entry.length !== 3) throw corrupt(`entry ${i} is not [pointer, offset, value]`);
    const [pointer, offset, value] = entry as [JsonValue, JsonValue, JsonValue];
    if (typeof pointer !== 'string') throw corrupt(`entry ${i} has no pointer string`);
    let segments: string[];
    try {
      segments = parseJsonPointer(pointer, 'BLOB_CORRUPT', `entry ${i}: pointer`);
    } catch (err) {
      throw corrupt((err as Error).message);
    }
    if (segments.length === 0) throw corrupt(`entry ${i} points at the whole document`);
    if (!(offset instanceof JsonNumber) || !/^(0|[1-9][0-9]{0,15})$/.test(offset.text)) {
      throw corrupt(`entry ${i} has no non-negative integer offset`);
    }
    const at = Number(offset.text);
    if (!Number.isSafeInteger(at) || at < previous) throw corrupt(`entry ${i} offset ${offset.text} is out of order`);
    previous = at;
    return { pointer, segments, offset: at, valueText: serializeJson(value), value };
  });
}

/** sha256 hex of the canonical cold text: equal hashes mean the stored cold shards can be reused. */
export function coldHash(coldText: Buffer): string {
  return createHash('sha256').update(coldText).digest('hex');
}

/**
 * Hex digits of a stored cold hash: the whole sha256 (64, what data formats 1 and 2 store) or its first 128 bits
 * (32, data format 3 on). Either names the text: a random match of 128 bits is a 2^-128 event.
 */
export const COLD_HASH_HEX_DIGITS = { whole: 64, short: 32 } as const;

/** True when `stored` (a manifest's cold hash of either length) is the hash of `text`. */
export function coldHashMatches(stored: string, text: Buffer): boolean {
  return isStoredColdHash(stored) && coldHash(text).startsWith(stored);
}

/**
 * True when two cold hashes, of either length, name the same text: their common prefix (128 bits at least) is
 * equal. A write compares its document's whole hash with the stored one of an earlier write this way.
 */
export function sameColdHash(a: string | null, b: string | null): boolean {
  if (a === null || b === null || !isStoredColdHash(a) || !isStoredColdHash(b)) return false;
  const n = Math.min(a.length, b.length);
  return a.slice(0, n) === b.slice(0, n);
}

function isStoredColdHash(hash: string): boolean {
  return hash.length === COLD_HASH_HEX_DIGITS.whole || hash.length === COLD_HASH_HEX_DIGITS.short;
}

function corrupt(reason: string): StrataError {
  return new StrataError('BLOB_CORRUPT', `hot blob is malformed or does not match its cold text: ${reason}`);
}
