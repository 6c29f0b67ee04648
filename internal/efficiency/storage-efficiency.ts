/**
 * The storage-efficiency report of GET /storage_usage (README.md beside this file): per strategy and per key
 * prefix, the bytes stored against the logical bytes, what that saves against keeping three copies of
 * everything, the cold parts that were compressed and those that stayed raw, and the fixed per-document overhead
 * (needle heads, index entries, the manifest) apart from the payload.
 *
 * Everything is computed from the manifests alone: payload bytes are the sizes of the referenced blobs (so the
 * totals equal the sum of /stat `bytes.physical`), and the needle and index bytes follow from the volume format
 * (internal/blobstore/volume/README.md) and each blob's header, which the manifest determines.
 */
import { baseHotRefs } from '../manifest/manifest.js';
import { coldCodecOf, coldPlacementOf, coldTextBytesOf } from '../coldpart/cold-layout.js';
import { headerFor } from '../manifest/blob-meta.js';
import { STRATEGIES, type BlobRef, type Manifest, type Strategy } from '../manifest/manifest.js';

export const EFFICIENCY_LIMITS = {
  /** `prefix_depth`: at most this many key segments name a prefix. */
  prefixDepthMax: 8,
  prefixDepthDefault: 1,
  /** Prefixes reported one by one; the rest (the smallest by bytes stored) are summed under OTHER_PREFIXES. */
  prefixesMax: 100,
  /** Prefixes tracked while scanning, before the smallest are folded into OTHER_PREFIXES. */
  prefixesTrackedMax: 10_000,
} as const;

/** The group of keys beyond EFFICIENCY_LIMITS.prefixesMax. */
export const OTHER_PREFIXES = '(other)';

/** Bytes of one needle besides its payload: 72 fixed, id, key, write id, part, meta, head CRC, data CRC, padding. */
export function needleOverheadBytes(header: { id: string; key: string; writeId: string; part: string; meta: string }, payloadBytes: number): number {
  const head = 72 + byteLength(header.id) + byteLength(header.key) + byteLength(header.writeId) + byteLength(header.part) + byteLength(header.meta) + 4;
  const needle = Math.ceil((head + payloadBytes + 4) / 8) * 8;
  return needle - payloadBytes;
}

/** Bytes of one blob's entry in a storage node's index checkpoint: 21 fixed plus the id (index-checkpoint.ts). */
export function indexEntryBytes(blobId: string): number {
  return 21 + byteLength(blobId);
}

export interface GroupUsage {
  documents: number;
  logical_bytes: number;
  /** Payload bytes of the blobs the documents reference (missing blobs excluded), as /stat `bytes.physical`. */
  physical_bytes: number;
  amplification: number;
  /** 3 x logical - physical: what this layout saves against three full copies (negative: costs more). */
  saved_vs_replication_bytes: number;
  /** Needle heads and padding, index entries and manifests of these documents. */
  overhead_bytes: number;
}

export interface ColdUsage {
  documents: number;
  /** Canonical cold text bytes. */
  text_bytes: number;
  /** Bytes of the stored (possibly compressed) cold parts, before sharding or copying. */
  stored_bytes: number;
}

export interface OverheadUsage {
  /** Needle bytes beyond the payloads: heads, CRCs, padding. */
  needle_bytes: number;
  /** Index checkpoint entries of the referenced blobs. */
  index_bytes: number;
  /** The manifests as JSON. */
  manifest_bytes: number;
  /** The three above per live document. */
  per_document_bytes: number;
}

export interface EfficiencyReport {
  prefix_depth: number;
  logical_bytes: number;
  physical_bytes: number;
  replication_3x_bytes: number;
  saved_vs_replication_bytes: number;
  overhead: OverheadUsage;
  cold: {
    /** Stored compressed (brotli or deflate). */
    compressed: ColdUsage & { saved_bytes: number };
    /** Compression was tried and saved too little: stored as written. */
    incompressible: ColdUsage;
    /** Compression was not tried (too small, turned off, or written before compression existed). */
    uncompressed: ColdUsage;
    /** Kept as three whole copies beside the hot replicas. */
    with_replicas: ColdUsage;
    /** Erasure coded into six shards. */
    shards: ColdUsage;
  };
  per_strategy: Record<Strategy, GroupUsage>;
  per_prefix: Record<string, GroupUsage>;
}

interface Totals {
  documents: number;
  logical: number;
  physical: number;
  overhead: number;
}

const emptyTotals = (): Totals => ({ documents: 0, logical: 0, physical: 0, overhead: 0 });
const emptyCold = (): ColdUsage => ({ documents: 0, text_bytes: 0, stored_bytes: 0 });

/**
 * Prefix of `key` for the report: its first `depth` segments, each ending at a `/` or `:` (kept), e.g. depth 1
 * gives `user:` for `user:1001` and `iot/` for `iot/dev-7/log`. A key with fewer separators is its own prefix
 * up to its last separator, and a key with none is grouped under the empty prefix "".
 */
export function keyPrefix(key: string, depth: number): string {
  let end = 0;
  for (let i = 0, found = 0; i < key.length && found < depth; i++) {
    const c = key.charCodeAt(i);
    if (c === 0x2f /* / */ || c === 0x3a /* : */) {
      found++;
      end = i + 1;
    }
  }
  return key.slice(0, end);
}

/** Adds up live manifests one at a time (bounded memory: prefixes are capped), then reports. */
export class EfficiencyAccumulator {
  private readonly total = emptyTotals();
  private needle = 0;
  private index = 0;
  private manifestBytes = 0;
  private readonly strategies = new Map<Strategy, Totals>(STRATEGIES.map((s) => [s, emptyTotals()]));
  private readonly prefixes = new Map<string, Totals>();
  private readonly cold = {
    compressed: emptyCold(),
    incompressible: emptyCold(),
    uncompressed: emptyCold(),
    with_replicas: emptyCold(),
    shards: emptyCold(),
  };

  constructor(readonly prefixDepth: number = EFFICIENCY_LIMITS.prefixDepthDefault) {}

  add(manifest: Manifest): void {
    if (manifest.deleted) return;
    // Extra replicas of read-heavy documents are temporary and reported apart (/storage_usage extra_replica_bytes).
    const refs = [...baseHotRefs(manifest), ...manifest.cold].filter((r) => r.state !== 'missing');
    const physical = refs.reduce((sum, r) => sum + r.size, 0);
    const needle = refs.reduce((sum, r) => sum + this.needleOverhead(manifest, r), 0);
    const index = refs.reduce((sum, r) => sum + indexEntryBytes(r.blob), 0);
    const manifestBytes = byteLength(JSON.stringify(manifest));
    this.needle += needle;
    this.index += index;
    this.manifestBytes += manifestBytes;
    const overhead = needle + index + manifestBytes;
    for (const t of [this.total, this.strategies.get(manifest.strategy)!, this.prefixTotals(keyPrefix(manifest.key, this.prefixDepth))]) {
      t.documents++;
      t.logical += manifest.bytes.logical;
      t.physical += physical;
      t.overhead += overhead;
    }
    const layout = manifest.cold_layout;
    if (layout && manifest.cold.length > 0) {
      const codec = coldCodecOf(layout);
      const text = coldTextBytesOf(layout);
      const kind = codec !== 'identity' ? 'compressed' : layout.codec === 'identity' ? 'incompressible' : 'uncompressed';
      for (const c of [this.cold[kind], this.cold[coldPlacementOf(layout)]]) {
        c.documents++;
        c.text_bytes += text;
        c.stored_bytes += layout.dataBytes;
      }
    }
  }

  report(): EfficiencyReport {
    const perPrefix: Record<string, GroupUsage> = {};
    const ranked = [...this.prefixes.entries()].sort((a, b) => b[1].physical - a[1].physical || (a[0] < b[0] ? -1 : 1));
    const other = emptyTotals();
    ranked.forEach(([prefix, totals], i) => {
      if (i < EFFICIENCY_LIMITS.prefixesMax && prefix !== OTHER_PREFIXES) perPrefix[prefix] = group(totals);
      else merge(other, totals);
    });
    if (other.documents > 0) perPrefix[OTHER_PREFIXES] = group(other);
    const perStrategy = Object.fromEntries(STRATEGIES.map((s) => [s, group(this.strategies.get(s)!)])) as Record<Strategy, GroupUsage>;
    const compressed = this.cold.compressed;
    return {
      prefix_depth: this.prefixDepth,
      logical_bytes: this.total.logical,
      physical_bytes: this.total.physical,
      replication_3x_bytes: 3 * this.total.logical,
      saved_vs_replication_bytes: 3 * this.total.logical - this.total.physical,
      overhead: {
        needle_bytes: this.needle,
        index_bytes: this.index,
        manifest_bytes: this.manifestBytes,
        per_document_bytes: this.total.documents > 0 ? Math.round(this.total.overhead / this.total.documents) : 0,
      },
      cold: {
        compressed: { ...compressed, saved_bytes: compressed.text_bytes - compressed.stored_bytes },
        incompressible: { ...this.cold.incompressible },
        uncompressed: { ...this.cold.uncompressed },
        with_replicas: { ...this.cold.with_replicas },
        shards: { ...this.cold.shards },
      },
      per_strategy: perStrategy,
      per_prefix: perPrefix,
    };
  }

  private prefixTotals(prefix: string): Totals {
    let totals = this.prefixes.get(prefix);
    if (totals) return totals;
    if (this.prefixes.size >= EFFICIENCY_LIMITS.prefixesTrackedMax) {
      // Too many distinct prefixes to track one by one: later new ones are counted together.
      totals = this.prefixes.get(OTHER_PREFIXES);
      if (!totals) this.prefixes.set(OTHER_PREFIXES, (totals = emptyTotals()));
      return totals;
    }
    this.prefixes.set(prefix, (totals = emptyTotals()));
    return totals;
  }

  private needleOverhead(manifest: Manifest, ref: BlobRef): number {
    return needleOverheadBytes(headerFor(manifest, ref), ref.size);
  }
}

function group(t: Totals): GroupUsage {
  return {
    documents: t.documents,
    logical_bytes: t.logical,
    physical_bytes: t.physical,
    amplification: t.logical > 0 ? Math.round((t.physical / t.logical) * 1000) / 1000 : 0,
    saved_vs_replication_bytes: 3 * t.logical - t.physical,
    overhead_bytes: t.overhead,
  };
}

function merge(into: Totals, from: Totals): void {
  into.documents += from.documents;
  into.logical += from.logical;
  into.physical += from.physical;
  into.overhead += from.overhead;
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}
