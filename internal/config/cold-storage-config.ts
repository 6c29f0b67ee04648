/**
 * The cold-part storage settings (read by config.ts, which owns process.env): compression codec, the share it
 * must save, and the size up to which a cold part is kept with the replicas (internal/coldpart/README.md).
 */
import { COLD_STORAGE_DEFAULTS } from '../coldpart/cold-layout.js';
import type { CompressionSetting } from '../coldpart/cold-codec.js';

/** A cold part kept with the replicas is copied three times; beyond this that would cost more than shards. */
export const COLD_WITH_REPLICAS_BYTES_MAX_LIMIT = 1024 * 1024;

export interface ColdStorageConfig {
  /** STRATA_COLD_COMPRESSION: `brotli`, `deflate` or `off`. */
  coldCompression: CompressionSetting;
  /** STRATA_COMPRESSION_MIN_SAVING: share of bytes (0 to 1) compression must save to be stored compressed. */
  compressionMinSaving: number;
  /**
   * STRATA_INLINE_COLD_BYTES_MAX: stored cold parts up to this size are kept as copies beside the hot replicas.
   * Unset (null): copies or shards, whichever costs fewer bytes on disk (internal/coldpart/README.md).
   */
  inlineColdBytesMax: number | null;
}

type Env = Record<string, string | undefined>;

export function coldStorageSettings(env: Env, error: (message: string) => Error): ColdStorageConfig {
  const codec = env['STRATA_COLD_COMPRESSION'] || COLD_STORAGE_DEFAULTS.codec;
  if (codec !== 'brotli' && codec !== 'deflate' && codec !== 'off') {
    throw error(`STRATA_COLD_COMPRESSION must be brotli, deflate or off, got "${codec}"`);
  }
  let minSaving: number = COLD_STORAGE_DEFAULTS.minSavingShare;
  const rawSaving = env['STRATA_COMPRESSION_MIN_SAVING']?.trim();
  if (rawSaving) {
    // A share (0.3) or a percentage (30%): both are common ways to write it.
    const percent = rawSaving.endsWith('%');
    const value = Number(percent ? rawSaving.slice(0, -1) : rawSaving) / (percent ? 100 : 1);
    if (!/^\d+(\.\d+)?%?$/.test(rawSaving) || !(value >= 0 && value < 1)) {
      throw error(`STRATA_COMPRESSION_MIN_SAVING must be a share from 0 to below 1 (like 0.3) or a percentage (like 30%), got "${rawSaving}"`);
    }
    minSaving = value;
  }
  const rawInline = env['STRATA_INLINE_COLD_BYTES_MAX']?.trim();
  let inline: number | null = COLD_STORAGE_DEFAULTS.withReplicasBytesMax;
  if (rawInline) {
    if (!/^\d+$/.test(rawInline) || Number(rawInline) > COLD_WITH_REPLICAS_BYTES_MAX_LIMIT) {
      throw error(`STRATA_INLINE_COLD_BYTES_MAX must be a whole number of bytes from 0 to ${COLD_WITH_REPLICAS_BYTES_MAX_LIMIT}, got "${rawInline}"`);
    }
    inline = Number(rawInline);
  }
  return { coldCompression: codec, compressionMinSaving: minSaving, inlineColdBytesMax: inline };
}
