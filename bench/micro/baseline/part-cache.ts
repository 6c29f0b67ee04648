// Baseline for bench/micro/caches.bench.ts: internal/readservice/part-cache.ts as it was before its LRU moved to lru-cache, kept
// unchanged (imports aside) so that the comparison can be run again. Not used by the product.
/**
 * A bounded cache of document parts the gateway has already fetched and verified: a hot part's payload and a cold
 * part's text. Blobs are immutable and named by the write that created them, so a part is cached under the
 * identity of its blobs and can never be stale: a newer write has new blob ids, and the manifest (always read
 * fresh, linearizably) decides which blobs a read wants. The cache only saves node I/O, decoding and
 * decompression for documents read again; it changes no answer.
 *
 * Bounded in bytes (least recently used out first); parts bigger than a share of the bound are never cached, so
 * one large document cannot flush the small hot ones.
 */
import type { BlobRef } from '../../../internal/manifest/manifest.js';

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
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private readonly partBytesMax: number;

  constructor(private readonly bytesMax: number) {
    this.partBytesMax = Math.floor(bytesMax * PART_CACHE_LIMITS.partShareMax);
  }

  get enabled(): boolean {
    return this.bytesMax > 0;
  }

  /**
   * The cached bytes of the part made of `refs`, or `load()`'s (then cached). `tier` keeps a hot payload and a
   * cold text apart even if they shared a blob id.
   */
  async get(tier: 'hot' | 'cold', refs: readonly BlobRef[], load: () => Promise<Buffer>): Promise<Buffer> {
    if (!this.enabled || refs.length === 0) return load();
    const key = partKey(tier, refs);
    const cached = this.entries.get(key);
    if (cached !== undefined) {
      // Most recently used last: Map keeps insertion order, so re-inserting moves it to the end.
      this.entries.delete(key);
      this.entries.set(key, cached);
      this.hits++;
      return cached;
    }
    this.misses++;
    const data = await load();
    this.put(key, data);
    return data;
  }

  stats(): PartCacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.entries.size, bytes: this.bytes, bytesMax: this.bytesMax };
  }

  private put(key: string, data: Buffer): void {
    if (data.length > this.partBytesMax || this.entries.has(key)) return;
    this.entries.set(key, data);
    this.bytes += data.length + key.length + PART_CACHE_LIMITS.entryOverheadBytes;
    for (const [oldKey, old] of this.entries) {
      if (this.bytes <= this.bytesMax) break;
      this.entries.delete(oldKey);
      this.bytes -= old.length + oldKey.length + PART_CACHE_LIMITS.entryOverheadBytes;
    }
  }
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
