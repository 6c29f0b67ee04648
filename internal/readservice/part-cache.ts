/**
 * A bounded cache of document parts the gateway has already fetched and verified: a hot part's payload and a cold
 * part's text. Blobs are immutable and named by the write that created them, so a part is cached under the
 * identity of its blobs and can never be stale: a newer write has new blob ids, and the manifest (always read
 * fresh, linearizably) decides which blobs a read wants. The cache only saves node I/O, decoding and
 * decompression for documents read again; it changes no answer.
 *
 * Bounded in bytes (least recently used out first); parts bigger than a share of the bound are never cached, so
 * one large document cannot flush the small hot ones. The LRU itself is lru-cache's (bounded by `maxSize`, each
 * entry sized by `sizeCalculation`); the share rule and the hit and miss counts are this module's.
 */
import { LRUCache } from 'lru-cache';
import type { BlobRef } from '../manifest/manifest.js';

export const PART_CACHE_LIMITS = {
  /** A part larger than this share of the bound is not cached. */
  partShareMax: 1 / 64,
  /** Per entry bookkeeping counted against the bound (key, map slot, buffer header). */
  entryOverheadBytes: 160,
} as const;

export interface PartCacheStats {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
  bytesMax: number;
}

export class PartCache {
  /** Null when disabled (a bound of 0): lru-cache needs a positive bound. */
  private readonly entries: LRUCache<string, Buffer> | null;
  private hits = 0;
  private misses = 0;
  private readonly partBytesMax: number;

  constructor(private readonly bytesMax: number) {
    this.partBytesMax = Math.floor(bytesMax * PART_CACHE_LIMITS.partShareMax);
    // No `max` (entry count): lru-cache would allocate its slot arrays for `max` entries up front, and the number
    // of parts a byte bound holds is not known. With `maxSize` alone the arrays grow as entries come.
    this.entries =
      bytesMax > 0 ? new LRUCache<string, Buffer>({ maxSize: bytesMax, sizeCalculation: (data, key) => entryBytes(key, data) }) : null;
  }

  get enabled(): boolean {
    return this.bytesMax > 0;
  }

  /**
   * The cached bytes of the part made of `refs`, or `load()`'s (then cached). `tier` keeps a hot payload and a
   * cold text apart even if they shared a blob id.
   */
  async get(tier: 'hot' | 'cold', refs: readonly BlobRef[], load: () => Promise<Buffer>): Promise<Buffer> {
    const entries = this.entries;
    if (entries === null || refs.length === 0) return load();
    const key = partKey(tier, refs);
    // get() makes the entry the most recently used.
    const cached = entries.get(key);
    if (cached !== undefined) {
      this.hits++;
      return cached;
    }
    this.misses++;
    const data = await load();
    // The share rule looks at the part's own bytes, not its accounted size. A part that another read loaded and
    // cached meanwhile is left where it is (has() does not touch its recency).
    if (data.length <= this.partBytesMax && !entries.has(key)) entries.set(key, data);
    return data;
  }

  stats(): PartCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      entries: this.entries?.size ?? 0,
      bytes: this.entries?.calculatedSize ?? 0,
      bytesMax: this.bytesMax,
    };
  }
}

/** What an entry counts against the bound: its bytes, its key and the bookkeeping around them. */
function entryBytes(key: string, data: Buffer): number {
  return data.length + key.length + PART_CACHE_LIMITS.entryOverheadBytes;
}

/**
 * A part's identity: its first blob id and checksum. Every blob of a part comes from one write (a write id is
 * unique) and a repair or move copies the same bytes under a new id, so the first blob names the content; the
 * checksum guards against two parts ever sharing an id.
 */
function partKey(tier: 'hot' | 'cold', refs: readonly BlobRef[]): string {
  const first = refs[0]!;
  return `${tier}\n${first.writeId}\n${first.checksum}`;
}
