/**
 * The stored form of a cold part (README.md beside this file): which codec, and where its bytes live. A cold
 * part of at most `withReplicasBytesMax` stored bytes is kept as three whole copies on the hot replicas' nodes
 * (`placement: 'with_replicas'`, parts cold-0..cold-2); a larger one as six Reed-Solomon shards. Three copies of
 * a tiny payload cost less than six shards, each with its own needle head and index entry, plus their padding.
 */
import { coldHashMatches } from '../json/split.js';
import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import { DATA_FORMAT_V2 } from '../core/data-format.js';
import { EC_DATA_SHARDS, EC_TOTAL_SHARDS, HOT_REPLICAS } from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import type { ColdCodec, ColdLayout, ColdPlacement, Manifest } from '../manifest/manifest.js';
import { compressCold, decompressCold, type CompressionSettings } from './cold-codec.js';

export interface ColdStorageSettings extends CompressionSettings {
  /**
   * Stored cold parts of at most this many bytes are copied beside the hot replicas instead of sharded; 0 = never.
   * Null: whichever of the two costs fewer bytes on disk (coldCopiesCheaper).
   */
  withReplicasBytesMax: number | null;
}

/**
 * Defaults, chosen from measurements (README "Storage overhead", docs/decisions.md 14): brotli at quality 1, kept
 * only when it saves 30 % (base64 of random bytes saves 25 % by entropy coding alone and stays raw), and copies or
 * shards by cost.
 */
export const COLD_STORAGE_DEFAULTS: Readonly<ColdStorageSettings> = Object.freeze({
  codec: 'brotli',
  minSavingShare: 0.3,
  withReplicasBytesMax: null,
});

/**
 * Format 1 (a needle head repeats key, ids and meta JSON, ~290 B; an index entry ~55 B; a manifest entry ~190 B):
 * copies cost fewer bytes up to about 1 KiB, measured (decision 14).
 */
export const FORMAT_1_WITH_REPLICAS_BYTES_MAX = 1024;

/**
 * Bytes a format-2 blob costs beyond its payload, for the layout choice: needle framing (head, data CRC, average
 * padding), its index checkpoint entry and its share of the manifest row, plus the key bytes its descriptor
 * carries (docs/design/compact-formats.md, section 5): a copy holds the key whole and shares one checksum in the
 * manifest; a shard holds a quarter of it in an 8-byte-aligned fragment and has a checksum of its own.
 * `npm run verify:storage` measures the real figures.
 */
export const LAYOUT_COST_V2 = { copyBlobBytes: 76, shardBlobBytes: 75, keyBytesPerCopy: 1, keyBytesPerShard: 0.25 } as const;

/** Bytes on disk of a cold part of `storedBytes` kept as three copies, and as six shards, in format 2. */
export function coldLayoutCosts(storedBytes: number, keyBytes: number): { copies: number; shards: number } {
  const c = LAYOUT_COST_V2;
  const shardBytes = Math.ceil(Math.ceil(storedBytes / EC_DATA_SHARDS) / 8) * 8;
  return {
    copies: HOT_REPLICAS * (storedBytes + c.copyBlobBytes + c.keyBytesPerCopy * keyBytes),
    shards: EC_TOTAL_SHARDS * (shardBytes + c.shardBlobBytes + c.keyBytesPerShard * keyBytes),
  };
}

/** Whether three copies of a stored cold part cost no more than six shards of it. */
export function coldCopiesCheaper(storedBytes: number, keyBytes: number, format: number): boolean {
  if (format < DATA_FORMAT_V2) return storedBytes <= FORMAT_1_WITH_REPLICAS_BYTES_MAX;
  const { copies, shards } = coldLayoutCosts(storedBytes, keyBytes);
  return copies <= shards;
}

/** What the layout choice depends on besides the settings: the key and the format the blobs are written in. */
export interface ColdLayoutContext {
  keyBytes: number;
  format: number;
}

/** The part names of the whole copies of a cold part kept with the replicas. */
export function coldCopyPart(index: number): string {
  return `cold-${index}`;
}

export function coldPlacementOf(layout: ColdLayout | null | undefined): ColdPlacement {
  return layout?.placement ?? 'shards';
}

export function coldCodecOf(layout: ColdLayout | null | undefined): ColdCodec {
  return layout?.codec ?? 'identity';
}

/** Bytes of the canonical cold text the layout stores. */
export function coldTextBytesOf(layout: ColdLayout): number {
  return layout.textBytes ?? layout.dataBytes;
}

export function hasColdCopies(manifest: Manifest): boolean {
  return coldPlacementOf(manifest.cold_layout) === 'with_replicas';
}

export interface StoredColdPart {
  layout: ColdLayout;
  /** Payload of each cold blob: six shards, or HOT_REPLICAS copies of the stored bytes. */
  payloads: Buffer[];
}

/** Compresses (when worth it) and lays out one cold text. */
export async function storeColdText(
  ec: ErasureCode,
  text: Buffer,
  settings: ColdStorageSettings,
  context: ColdLayoutContext,
): Promise<StoredColdPart> {
  const compressed = await compressCold(text, settings);
  const data = compressed.data;
  // Fields beyond dataBytes and shardBytes appear only when they differ from what an old manifest meant.
  const extra: Partial<ColdLayout> = {};
  if (compressed.codec !== 'identity') {
    extra.codec = compressed.codec;
    extra.textBytes = text.length;
  } else if (compressed.tried) {
    extra.codec = 'identity';
  }
  const copies =
    settings.withReplicasBytesMax === null
      ? coldCopiesCheaper(data.length, context.keyBytes, context.format)
      : data.length <= settings.withReplicasBytesMax;
  if (copies) {
    const layout: ColdLayout = { dataBytes: data.length, shardBytes: data.length, placement: 'with_replicas', ...extra };
    return { layout, payloads: Array.from({ length: HOT_REPLICAS }, () => data) };
  }
  const shards = await ec.encode(data);
  return { layout: { dataBytes: data.length, shardBytes: ec.shardBytesFor(data.length), ...extra }, payloads: shards };
}

/**
 * The cold text from the stored bytes of `manifest` (reassembled from shards or read from one copy, already
 * checked against their blob checksums). A compressed part is decompressed within its recorded size and its
 * text checked against the cold hash, so the checksums cover both the stored and the logical bytes.
 */
export async function coldTextFrom(manifest: Manifest, stored: Buffer): Promise<Buffer> {
  const layout = manifest.cold_layout;
  assert(layout !== null, 'a document with a cold part has a cold layout');
  const codec = coldCodecOf(layout);
  if (codec === 'identity') return stored;
  const text = await decompressCold(stored, codec, coldTextBytesOf(layout));
  if (manifest.coldHash !== null && !coldHashMatches(manifest.coldHash, text)) {
    throw new StrataError('BLOB_CORRUPT', `the cold part of "${manifest.key}" decompresses to a text that does not match its cold hash`);
  }
  return text;
}
