/**
 * The stored form of a cold part (README.md beside this file): which codec, and where its bytes live. A cold
 * part of at most `withReplicasBytesMax` stored bytes is kept as three whole copies on the hot replicas' nodes
 * (`placement: 'with_replicas'`, parts cold-0..cold-2); a larger one as six Reed-Solomon shards. Three copies of
 * a tiny payload cost less than six shards, each with its own needle head and index entry, plus their padding.
 */
import { createHash } from 'node:crypto';
import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import { HOT_REPLICAS } from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import type { ColdCodec, ColdLayout, ColdPlacement, Manifest } from '../manifest/manifest.js';
import { compressCold, decompressCold, type CompressionSettings } from './cold-codec.js';

export interface ColdStorageSettings extends CompressionSettings {
  /** Stored cold parts of at most this many bytes are copied beside the hot replicas instead of sharded; 0 = never. */
  withReplicasBytesMax: number;
}

/**
 * Defaults, chosen from measurements (README "Storage overhead", docs/decisions.md 14): brotli at quality 1, kept
 * only when it saves 30 % (base64 of random bytes saves 25 % by entropy coding alone and stays raw), and cold parts
 * of up to 1 KiB kept with the replicas.
 */
export const COLD_STORAGE_DEFAULTS: Readonly<ColdStorageSettings> = Object.freeze({
  codec: 'brotli',
  minSavingShare: 0.3,
  withReplicasBytesMax: 1024,
});

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
export async function storeColdText(ec: ErasureCode, text: Buffer, settings: ColdStorageSettings): Promise<StoredColdPart> {
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
  if (data.length <= settings.withReplicasBytesMax) {
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
  if (manifest.coldHash !== null && createHash('sha256').update(text).digest('hex') !== manifest.coldHash) {
    throw new StrataError('BLOB_CORRUPT', `the cold part of "${manifest.key}" decompresses to a text that does not match its cold hash`);
  }
  return text;
}
