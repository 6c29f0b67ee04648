/**
 * Planning a write: turning a document into the payloads of its blobs. Pure functions of the document, the
 * strategy, the hot fields and the current manifest; no I/O (compression and erasure coding happen in
 * write-service.ts, through internal/coldpart).
 */
import { assert } from '../core/assert.js';
import { coldTextBytesOf } from '../coldpart/cold-layout.js';
import type { JsonObject } from '../json/value.js';
import { serializeJson } from '../json/serialize.js';
import { splitDocument, encodeHotBlob, coldHash, sameColdHash, type HotEntry } from '../json/split.js';
import type { Manifest, Strategy } from '../manifest/manifest.js';

export interface DocumentPlan {
  strategy: Strategy;
  hotFields: string[];
  /** Pointers of the hot members present (field_hybrid). */
  hotPaths: string[];
  /** Offsets in the cold text where the cold parent object is empty (see hotBytesOf). */
  emptyOffsets: number[];
  /** Payload of each hot replica, or null when the document has no hot part. */
  hotPayload: Buffer | null;
  /** Canonical cold text, or null without a cold part. */
  coldText: Buffer | null;
  coldHash: string | null;
  logicalBytes: number;
  hotBytes: number;
  coldBytes: number;
}

export function planDocument(
  doc: JsonObject,
  strategy: Strategy,
  hotFields: readonly string[],
  hotSegments: readonly string[][],
): DocumentPlan {
  if (strategy !== 'field_hybrid') {
    const text = Buffer.from(serializeJson(doc), 'utf8');
    const base = { strategy, hotFields: [...hotFields], hotPaths: [], emptyOffsets: [], logicalBytes: text.length };
    if (strategy === 'replication') {
      return { ...base, hotPayload: text, coldText: null, coldHash: null, hotBytes: text.length, coldBytes: 0 };
    }
    return { ...base, hotPayload: null, coldText: text, coldHash: coldHash(text), hotBytes: 0, coldBytes: text.length };
  }
  const split = splitDocument(doc, hotSegments as string[][]);
  const emptyOffsets = emptyParentOffsets(split.coldText, split.hot);
  const hotBytes = hotBytesOf(split.hot.map((h) => ({ segments: h.segments, offset: h.offset, valueText: h.valueText })), emptyOffsets);
  assert(hotBytes + split.coldText.length === split.logicalBytes, 'hot and cold bytes add up to the logical size');
  return {
    strategy,
    hotFields: [...hotFields],
    hotPaths: split.hot.map((h) => h.pointer),
    emptyOffsets,
    hotPayload: split.hot.length > 0 ? encodeHotBlob(split.hot) : null,
    coldText: split.coldText,
    coldHash: coldHash(split.coldText),
    logicalBytes: split.logicalBytes,
    hotBytes,
    coldBytes: split.coldText.length,
  };
}

/** Offsets at which a hot member goes back into an object whose cold part is `{}`. */
export function emptyParentOffsets(coldText: Buffer, hot: readonly Pick<HotEntry, 'offset'>[]): number[] {
  const out = new Set<number>();
  for (const h of hot) {
    if (coldText[h.offset - 1] === 0x7b /* { */ && coldText[h.offset] === 0x7d /* } */) out.add(h.offset);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * Bytes the hot members add to the compact document: each member's `"name":value` plus one comma, except
 * that the members re-inserted into an object whose cold part is empty need one comma fewer. This lets a
 * hot-only patch compute the document size without touching the cold text.
 */
export function hotBytesOf(
  hot: readonly { segments: readonly string[]; offset: number; valueText: string }[],
  emptyOffsets: readonly number[],
): number {
  if (hot.length === 0) return 0;
  let bytes = 0;
  const groupsInEmptyParents = new Set<number>();
  const empty = new Set(emptyOffsets);
  for (const h of hot) {
    const name = h.segments[h.segments.length - 1]!;
    bytes += Buffer.byteLength(JSON.stringify(name)) + 1 + Buffer.byteLength(h.valueText) + 1;
    if (empty.has(h.offset)) groupsInEmptyParents.add(h.offset);
  }
  return bytes - groupsInEmptyParents.size;
}

/**
 * A write may reuse the current cold blobs (shards or copies, compressed or not) when the cold part is
 * byte-for-byte the same canonical text: the stored form is kept as it is, never re-compressed or re-laid out.
 */
export function canReuseCold(current: Manifest | null, plan: DocumentPlan): boolean {
  return (
    current !== null &&
    !current.deleted &&
    current.strategy === plan.strategy &&
    plan.strategy === 'field_hybrid' &&
    sameColdHash(current.coldHash, plan.coldHash) &&
    current.cold_layout !== null &&
    coldTextBytesOf(current.cold_layout) === plan.coldBytes &&
    current.cold.length > 0
  );
}
