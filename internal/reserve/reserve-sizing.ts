/**
 * How big a data directory's reserve is: enough to delete everything stored and to compact what is left, bounded.
 *
 *   reserve = clamp(fixed + scratch + keys x perKeyDelete + blobs x perBlobTombstone,
 *                   RESERVE_BYTES_MIN, min(reserveBytesMax, filesystem / 4))
 *
 *   fixed            databases that live in the directory: each SQLite file's -wal grows to its auto-checkpoint
 *                    size (1000 pages of 4 KiB) and its -shm needs 32 KiB before the first statement runs
 *   scratch          compaction copies a volume's live needles into a new file before the old one goes: for each
 *                    node, min(its volume size limit, its live bytes) (all nodes may compact at once)
 *   perKeyDelete     a tombstone manifest and its index entries in strata.db, and the delete's intent and outcome
 *                    records in wal.db, with SQLite's page overhead
 *   perBlobTombstone a tombstone needle (header, id, key, padding) and its index-delta entry on the node
 *
 * keys: when the caller cannot count them, blobs / 3 bounds them (every live document has at least three blobs:
 * three hot replicas or three cold copies, or six shards).
 *
 * The bounds keep a small disk usable (at most a quarter of it is held back) and a huge one from holding more than
 * the operator allows. Above the bound the reserve still always allows deleting and compacting in steps: deletes
 * need perKeyDelete each, and a compaction that does not fit waits until deletes have made its volume mostly
 * garbage.
 */
import { assert } from '../core/assert.js';

const KIB = 1024;
const MIB = 1024 * KIB;

export const RESERVE_LIMITS = {
  /** Never less than this (SQLite's files, index checkpoints, a few deletes). */
  reserveBytesMin: 2 * MIB,
  /** Default bound (STRATA_DISK_RESERVE_BYTES_MAX). */
  reserveBytesMax: 4 * 1024 * MIB,
  /** The reserve is at most this share of the filesystem. */
  filesystemShareMax: 1 / 4,
  /** SQLite -wal growth to the auto-checkpoint (1000 x 4 KiB pages) plus -shm (32 KiB), per database file. */
  sqliteFileGrowthBytes: 4 * MIB + 32 * KIB,
  perKeyDeleteBytes: 3 * KIB,
  perBlobTombstoneBytes: 512,
  /** Free bytes (beyond the reserve) below which writes are refused: covers writes in flight between measurements. */
  writeHeadroomBytes: 1 * MIB,
  /**
   * Below this much room (beyond the headroom) every write is admitted against a fresh measurement: the estimate of
   * a write's bytes is short by tens of KiB while SQLite's -wal files grow, and the shortfall adds up between
   * measurements faster than the headroom covers on a busy machine.
   */
  freshMeasureBelowBytes: 16 * MIB,
  /** After a release, writes resume once this much more than the headroom is free again. */
  resumeMarginBytes: 2 * MIB,
  /** How often the disk is measured and the ballast resized. */
  refreshIntervalMs: 1_000,
  /** Zeros written per write call when the ballast is made. */
  ballastChunkBytes: 1 * MIB,
} as const;

export interface StoredFootprint {
  /** Documents (live or tombstoned) whose deletion writes metadata here; null: estimate from blobs. */
  keys: number | null;
  /** Blobs on the nodes whose directories are on this filesystem. */
  blobs: number;
  /** Compaction's scratch space: for each node, min(volume size limit, live bytes). */
  compactionScratchBytes: number;
  /** SQLite database files in the directory (strata.db, wal.db: 2 in the all-in-one; 0 on a storage node). */
  sqliteFiles: number;
}

export function reserveTargetBytes(footprint: StoredFootprint, filesystemBytes: number, reserveBytesMax: number): number {
  assert(footprint.blobs >= 0 && footprint.compactionScratchBytes >= 0, 'footprint is non-negative');
  if (reserveBytesMax === 0) return 0;
  const keys = footprint.keys ?? Math.ceil(footprint.blobs / 3);
  const wanted =
    footprint.sqliteFiles * RESERVE_LIMITS.sqliteFileGrowthBytes +
    footprint.compactionScratchBytes +
    keys * RESERVE_LIMITS.perKeyDeleteBytes +
    footprint.blobs * RESERVE_LIMITS.perBlobTombstoneBytes;
  const bound = Math.min(reserveBytesMax, Math.floor(filesystemBytes * RESERVE_LIMITS.filesystemShareMax));
  return Math.max(Math.min(RESERVE_LIMITS.reserveBytesMin, bound), Math.min(wanted, bound));
}

/**
 * The part of the reserve deletes need (the databases' -wal growth, tombstone manifests and WAL records, the nodes'
 * tombstone needles): on a full disk it is never granted to compaction's scratch. When the reserve is bounded below
 * what the formula wants, deletes and scratch share it in the formula's proportions (so that compactions of volumes
 * deletes have made mostly garbage still fit), but the databases always keep their files' growth, without which no
 * delete commits at all.
 */
export function deleteShareBytes(footprint: StoredFootprint, reserveBytes: number): number {
  const keys = footprint.keys ?? Math.ceil(footprint.blobs / 3);
  const databases = footprint.sqliteFiles * RESERVE_LIMITS.sqliteFileGrowthBytes;
  const deletes = databases + keys * RESERVE_LIMITS.perKeyDeleteBytes + footprint.blobs * RESERVE_LIMITS.perBlobTombstoneBytes;
  const wanted = deletes + footprint.compactionScratchBytes;
  const proportional = wanted <= reserveBytes ? deletes : Math.floor((deletes * reserveBytes) / wanted);
  return Math.max(databases, proportional);
}

/** The footprint of storage nodes from their usage reports (internal/blobstore StoreUsage). */
export function nodesFootprint(
  usages: readonly { blobs: number; fileBytes?: number; bytesUsed: number; garbageBytes?: number }[],
  volumeBytesMax: number,
  sqliteFiles: number,
): StoredFootprint {
  let blobs = 0;
  let scratch = 0;
  for (const u of usages) {
    blobs += u.blobs;
    const live = Math.max(0, (u.fileBytes ?? u.bytesUsed) - (u.garbageBytes ?? 0));
    scratch += Math.min(volumeBytesMax, live);
  }
  return { keys: null, blobs, compactionScratchBytes: scratch, sqliteFiles };
}
