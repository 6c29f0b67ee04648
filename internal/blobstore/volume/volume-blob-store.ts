/**
 * A BlobStore on Haystack-style volumes (README.md in this folder has the formats and the protocols):
 *
 * - put appends a needle to the active volume through group commit: concurrent puts share one write and one
 *   fsync, and each resolves only after the fsync that covers it;
 * - get is one positioned read of the whole needle at the offset the in-memory index gives, checked against the
 *   needle's CRCs before a byte is returned; a mismatch is BLOB_CORRUPT and is remembered in the index;
 * - delete appends a durable tombstone needle; the blob's bytes count as reclaimable at once;
 * - compaction rewrites sealed volumes whose garbage passes a threshold, crash-safely (compaction.ts);
 * - merging rewrites adjacent small sealed volumes as one, so that the volume files stay bounded (merge.ts);
 * - the index is checkpointed so that a restart scans only what was appended since (recovery.ts);
 * - scrub re-checks every needle at a bounded rate (scrub.ts).
 *
 * `VolumeBlobStore.open({ dir, clock, capacityBytes })` is a drop-in for `FileBlobStore.open`, with the same
 * `dir`, `scrub` and ScrubReport, and the same errors for the same conditions.
 */
import path from 'node:path';
import { assert } from '../../core/assert.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { StrataError } from '../../core/errors.js';
import { KeyedMutex } from '../../core/keyed-mutex.js';
import { LIMITS } from '../../core/limits.js';
import { sha256Hex } from '../blob-file-format.js';
import { blobIdNames, type BlobHeader, type BlobInfo, type BlobStore, type StoreUsage } from '../blob-store.js';
import type { ScrubOptions, ScrubReport } from '../file-blob-store.js';
import {
  compactVolume,
  compactionCandidates,
  fullCompactionReclaimBytes,
  fullCompactionVolumes,
  reclaimableBytes,
  type CompactionContext,
  type CompactionOutcome,
  type CompactionPolicy,
} from './compaction.js';
import { crc32c } from './crc32c.js';
import {
  MERGE_AFTER_SEALED_VOLUMES_DEFAULT,
  mergeCandidates,
  mergeCopyBytesMax,
  mergeVolumes,
  removeVolumeFiles,
  type MergeOutcome,
  type MergePolicy,
} from './merge.js';
import { GroupCommit, type FlushOutcome } from './group-commit.js';
import { CHECKPOINT_FILE, encodeCheckpoint, sealCheckpoint, writeCheckpointFile } from './index-checkpoint.js';
import type { NeedleIndex, NeedleLocation } from './needle-index.js';
import { readNeedleHead, readWholeNeedle, type ReadCounter } from './needle-read.js';
import {
  NEEDLE_V2_CHECKSUM_BYTES,
  createdAtSecOf,
  encodeNeedleHead,
  encodeNeedleTail,
  encodeNeedleV2Head,
  encodeNeedleV2Tail,
  encodeTombstone,
  needleBytes,
  needleHeadBytes,
  needleV2Bytes,
  needleV2HeadBytes,
  needleV2IdBytes,
  type NeedleHead,
} from './needle.js';
import {
  COMPACT_BYTES_PER_SEC_DEFAULT,
  IDLE_CHECK_SLICE_MS,
  IDLE_COMPACT_AFTER_MS_DEFAULT,
  IDLE_GARBAGE_BYTES_MIN_DEFAULT,
  IDLE_GARBAGE_RATIO_DEFAULT,
  compactionPacer,
  garbagePasses,
  sleepUnlessAborted,
} from './reclamation.js';
import { recoverStore, type RecoveryReport } from './recovery.js';
import { runScrub } from './scrub.js';
import { diskFullOr, requireValidId, validateHeader, validateOptions } from './store-input.js';
import { SUPERBLOCK_BYTES, VOLUME_NUMBER_MAX, Volume, volumeFileName } from './volume.js';
import { nodeVolumeFs, type VolumeFs } from './volume-fs.js';
import { sameBlob } from '../blob-input.js';

export { VOLUME_BYTES_MAX_LIMIT } from './store-input.js';

/** A volume is sealed, and the next one opened, once an append would take it past this. */
export const VOLUME_BYTES_MAX_DEFAULT = 1024 * 1024 * 1024;
export const COMPACT_GARBAGE_RATIO_DEFAULT = 0.3;
export const COMPACT_GARBAGE_BYTES_MIN_DEFAULT = 1024 * 1024;
/** A checkpoint is written after this many puts and deletes since the last one... */
export const CHECKPOINT_EVERY_OPS_DEFAULT = 100_000;
/** ...or this many appended bytes, whichever comes first: the most a restart has to scan. */
export const CHECKPOINT_EVERY_BYTES_DEFAULT = 256 * 1024 * 1024;
/** Needle heads read in parallel for one list() page. */
export const LIST_READ_CONCURRENCY = 16;

export interface VolumeBlobStoreOptions {
  /** Data directory; created when absent. The store owns `volumes/` and `index.ckpt*` under it. */
  dir: string;
  clock?: Clock;
  /**
   * When set, a put that would take the volume files past it fails with DISK_FULL (after reclaiming garbage if
   * that would make room), and usage().bytesFree is computed from it. Lets tests simulate a full disk.
   */
  capacityBytes?: number;
  volumeBytesMax?: number;
  /** Largest payload accepted (BLOB_TOO_LARGE beyond); at most LIMITS.blobBytesMax, which is the default. */
  blobBytesMax?: number;
  /** Under load: a volume (the active one is sealed first) is compacted once its garbage passes both. */
  compactGarbageRatioMin?: number;
  compactGarbageBytesMin?: number;
  /** Compact in the background when a volume passes the thresholds, and when idle (default true). */
  autoCompact?: boolean;
  /** Read rate of background compactions (reclamation.ts); default COMPACT_BYTES_PER_SEC_DEFAULT. */
  compactBytesPerSecMax?: number;
  /**
   * Merging (merge.ts): while more sealed volumes than `mergeAfterSealedVolumes` exist, adjacent ones holding at
   * most `mergeBytesMax` needle bytes together are merged into one, in the background at compactBytesPerSecMax.
   * Defaults: MERGE_AFTER_SEALED_VOLUMES_DEFAULT, and volumeBytesMax / 2.
   */
  mergeAfterSealedVolumes?: number;
  mergeBytesMax?: number;
  /** Quiet time after the last put or delete before the idle pass (reclamation.ts). */
  idleCompactAfterMs?: number;
  /** The idle pass's thresholds, much lower than the load ones. */
  idleGarbageRatioMin?: number;
  idleGarbageBytesMin?: number;
  checkpointEveryOps?: number;
  checkpointEveryBytes?: number;
  indexDeltaEntriesMax?: number;
  commitBatchEntriesMax?: number;
  commitBatchBytesMax?: number;
  /** The file layer; tests inject faults here. */
  fs?: VolumeFs;
  /** Told about a background compaction or checkpoint that failed (they are retried later). */
  onMaintenanceError?: (err: unknown) => void;
  /**
   * Awaited once before the store's first format-3 volume is created (the first format-2 put), so that the node's
   * directory can say first that an older release must not open it (datadir raiseNodeIdentityFormat). If it
   * fails, the put fails and nothing is written.
   */
  beforeFirstV2Volume?: () => Promise<void>;
  /** Told about every group-commit fsync (metrics); the store works the same without one. */
  observer?: VolumeStoreObserver;
  /**
   * Asked before a compaction copies a volume: may `copyBytes` of scratch space be used on this filesystem now?
   * The data directory's reserve (internal/reserve) answers, so that on a full disk compactions run one that fits
   * at a time instead of several failing together and taking the room deletes need. Yes is a lease, released when
   * the copy has ended (the scratch counts until then); null is no.
   */
  scratchRoom?: (copyBytes: number) => ScratchGrant | null;
}

/** Scratch space granted to one compaction or merge until `release()`. */
export interface ScratchGrant {
  release(): void;
}

const UNCOUNTED_SCRATCH: ScratchGrant = { release: () => undefined };

export interface VolumeStoreObserver {
  /** One write + fsync made `appends` puts and deletes (`bytes` in all) durable; the fsync took `fsyncSeconds`. */
  fsynced(appends: number, bytes: number, fsyncSeconds: number): void;
  /** What a full compaction would give back now (usage().reclaimableBytes), after each batch and compaction. */
  reclaimable?(bytes: number): void;
  /** A compaction gave `bytes` of volume files back. */
  compacted?(bytes: number): void;
}

export interface VolumeStoreUsage extends StoreUsage {
  /** Bytes of dead needles, tombstones and torn tails: reclaimable, and counted in bytesFree. */
  garbageBytes: number;
  /** Bytes of volume files a full compaction would give back now (compaction.ts, fullCompactionReclaimBytes). */
  reclaimableBytes: number;
  /** Bytes of volume files compactions gave back since the store was opened. */
  reclaimedBytes: number;
  /** Bytes of the volume files on disk. */
  fileBytes: number;
  volumes: number;
}

export interface VolumeStoreStats {
  gets: number;
  /** Positioned reads made by get(): exactly one per get on a healthy disk. */
  getReads: number;
  /** Positioned reads by every operation (get, stat, list, verify, scrub, put of an existing id). */
  reads: number;
  puts: number;
  deletes: number;
  /** Group-commit batches flushed, and the appends they carried. */
  batches: number;
  batchedAppends: number;
  fsyncs: number;
  rotations: number;
  compactions: number;
  /** Bytes given back by compactions and merges. */
  compactionReclaimedBytes: number;
  merges: number;
  /** Volumes that merges absorbed (each merge removes all its sources but the last). */
  mergedVolumes: number;
  checkpoints: number;
  maintenanceErrors: number;
  volumes: number;
  activeVolume: number;
  blobs: number;
  indexMemoryBytes: number;
  recovery: RecoveryReport;
}

type PendingNeedle =
  | {
      kind: 'put';
      header: BlobHeader;
      data: Buffer;
      /** sha256 hex (version 1) or its first 64 bits (version 2): what the head stores. */
      checksum: string;
      dataCrc: number;
      createdAtMs: number;
      headBytes: number;
      needleBytes: number;
    }
  | { kind: 'tombstone'; id: string; targetVolume: number; createdAtMs: number; needleBytes: number };

/** One caller's append: its needles go into the same write, in order. */
interface AppendOp {
  needles: PendingNeedle[];
  bytes: number;
  /** Where each needle went; filled in by the flush. */
  locations: NeedleLocation[];
}

export class VolumeBlobStore implements BlobStore {
  readonly dir: string;
  private readonly volumesDir: string;
  private readonly fs: VolumeFs;
  private readonly clock: Clock;
  private readonly capacityBytes: number | undefined;
  private readonly scratchRoom: ((copyBytes: number) => ScratchGrant | null) | undefined;
  private readonly beforeFirstV2Volume: (() => Promise<void>) | undefined;
  private readonly volumeBytesMax: number;
  private readonly blobBytesMax: number;
  private readonly policy: CompactionPolicy;
  private readonly idlePolicy: CompactionPolicy;
  private readonly mergePolicy: MergePolicy;
  /** Files of volumes a merge absorbed that could not be removed yet: removed before any compaction or merge. */
  private leftoverVolumes: number[] = [];
  private readonly autoCompact: boolean;
  private readonly compactBytesPerSecMax: number;
  private readonly idleCompactAfterMs: number;
  /** When the last put or delete was applied, or the last idle pass ended: the idle pass waits from here. */
  private quietSinceMs: number;
  private idleWatching = false;
  private readonly checkpointEveryOps: number;
  private readonly checkpointEveryBytes: number;
  private readonly onMaintenanceError: (err: unknown) => void;
  private readonly volumes: Map<number, Volume>;
  private readonly index: NeedleIndex;
  private active!: Volume;
  /** The sequence number the next needle gets. */
  private nextSeq: number;
  /** Every needle with a smaller sequence number that was acknowledged is in the index. */
  private appliedSeqEnd: number;
  private readonly commit: GroupCommit<AppendOp>;
  private readonly locks = new KeyedMutex();
  /** Compactions and checkpoints run one at a time, in this chain. */
  private maintenanceTail: Promise<unknown> = Promise.resolve();
  private maintenanceScheduled = false;
  private readonly stopMaintenance = new AbortController();
  private rotateRequested = false;
  /** An append or fsync failed on the active volume: its tail is in doubt, so the next flush seals it. */
  private activeInDoubt = false;
  /**
   * New volumes are format 3 (may hold version-2 needles) once any volume is: set by the first version-2 put, or
   * found at open. Until then every volume stays readable by the previous release.
   */
  private writesV2Volumes = false;
  private reservedBytes = 0;
  private opsSinceCheckpoint = 0;
  private bytesSinceCheckpoint = 0;
  private closed = false;
  private readonly counters = {
    gets: 0,
    getReads: 0,
    reads: 0,
    puts: 0,
    deletes: 0,
    fsyncs: 0,
    rotations: 0,
    compactions: 0,
    compactionReclaimedBytes: 0,
    merges: 0,
    mergedVolumes: 0,
    checkpoints: 0,
    maintenanceErrors: 0,
  };
  private readonly recovery: RecoveryReport;
  private readonly observer: VolumeStoreObserver | undefined;

  private constructor(options: VolumeBlobStoreOptions, recovered: Awaited<ReturnType<typeof recoverStore>>) {
    this.dir = path.resolve(options.dir);
    this.volumesDir = path.join(this.dir, 'volumes');
    this.fs = options.fs ?? nodeVolumeFs;
    this.clock = options.clock ?? systemClock;
    this.capacityBytes = options.capacityBytes;
    this.scratchRoom = options.scratchRoom;
    this.beforeFirstV2Volume = options.beforeFirstV2Volume;
    this.volumeBytesMax = options.volumeBytesMax ?? VOLUME_BYTES_MAX_DEFAULT;
    this.blobBytesMax = options.blobBytesMax ?? LIMITS.blobBytesMax;
    this.policy = {
      garbageRatioMin: options.compactGarbageRatioMin ?? COMPACT_GARBAGE_RATIO_DEFAULT,
      garbageBytesMin: options.compactGarbageBytesMin ?? COMPACT_GARBAGE_BYTES_MIN_DEFAULT,
    };
    this.idlePolicy = {
      garbageRatioMin: options.idleGarbageRatioMin ?? IDLE_GARBAGE_RATIO_DEFAULT,
      garbageBytesMin: options.idleGarbageBytesMin ?? IDLE_GARBAGE_BYTES_MIN_DEFAULT,
    };
    this.mergePolicy = {
      afterSealedVolumes: options.mergeAfterSealedVolumes ?? MERGE_AFTER_SEALED_VOLUMES_DEFAULT,
      bytesMax: options.mergeBytesMax ?? Math.floor(this.volumeBytesMax / 2),
    };
    this.autoCompact = options.autoCompact ?? true;
    this.compactBytesPerSecMax = options.compactBytesPerSecMax ?? COMPACT_BYTES_PER_SEC_DEFAULT;
    this.idleCompactAfterMs = options.idleCompactAfterMs ?? IDLE_COMPACT_AFTER_MS_DEFAULT;
    this.quietSinceMs = this.clock.nowMs();
    this.checkpointEveryOps = options.checkpointEveryOps ?? CHECKPOINT_EVERY_OPS_DEFAULT;
    this.checkpointEveryBytes = options.checkpointEveryBytes ?? CHECKPOINT_EVERY_BYTES_DEFAULT;
    this.observer = options.observer;
    this.onMaintenanceError =
      options.onMaintenanceError ?? ((err: unknown) => console.error(`volume store ${this.dir}: maintenance failed:`, err));
    this.volumes = recovered.volumes;
    this.writesV2Volumes = [...recovered.volumes.values()].some((v) => v.holdsV2Needles);
    this.index = recovered.index;
    this.nextSeq = recovered.nextSeq;
    this.appliedSeqEnd = recovered.nextSeq;
    this.recovery = recovered.report;
    // Needles replayed from volume tails are not in any checkpoint yet: they count towards the next one.
    this.opsSinceCheckpoint = recovered.report.needlesApplied;
    this.commit = new GroupCommit<AppendOp>({
      flush: (batch) => this.flush(batch),
      bytesOf: (op) => op.bytes,
      ...(options.commitBatchEntriesMax !== undefined ? { batchEntriesMax: options.commitBatchEntriesMax } : {}),
      ...(options.commitBatchBytesMax !== undefined ? { batchBytesMax: options.commitBatchBytesMax } : {}),
    });
    // Garbage found on disk (deletes before a restart) is reclaimed like fresh garbage, after the quiet time.
    if (this.garbageBytesTotal() > 0) this.armIdlePass();
    this.observer?.reclaimable?.(fullCompactionReclaimBytes(this.volumes));
  }

  /**
   * Opens (creating if needed) the store in `options.dir`: recovers the index (checkpoint plus tail scan, or a
   * full rebuild), cuts torn tails off, and opens a fresh active volume when the last one cannot take appends.
   */
  static async open(options: VolumeBlobStoreOptions): Promise<VolumeBlobStore> {
    validateOptions(options);
    const fs = options.fs ?? nodeVolumeFs;
    const clock = options.clock ?? systemClock;
    const dir = path.resolve(options.dir);
    const volumesDir = path.join(dir, 'volumes');
    const created = await fs.mkdirp(dir);
    // A fresh data directory must itself survive a crash, or the volumes put into it would vanish with it.
    if (created !== undefined) await fs.fsyncDir(path.dirname(created));
    await fs.mkdirp(volumesDir);
    await fs.fsyncDir(dir);
    const recovered = await recoverStore(fs, dir, volumesDir, options.indexDeltaEntriesMax, () => clock.nowMs());
    const store = new VolumeBlobStore(options, recovered);
    try {
      await store.openActiveVolume();
      // A rebuilt index (or a long tail) is checkpointed now, so that the next restart is quick again.
      const { fullRebuild, needlesApplied, bytesScanned } = recovered.report;
      if ((fullRebuild && needlesApplied > 0) || bytesScanned >= store.checkpointEveryBytes) {
        await store.exclusive(() => store.writeCheckpoint());
      }
      // A directory with more sealed volumes than the merge limit (written before merges existed) is merged down.
      if (mergeCandidates(store.volumes, store.active, store.mergePolicy) !== null) store.scheduleMaintenance();
    } catch (err) {
      await Promise.all([...store.volumes.values()].map((v) => v.close()));
      throw err;
    }
    return store;
  }

  async put(header: BlobHeader, data: Buffer): Promise<BlobInfo> {
    this.assertOpen();
    validateHeader(header);
    assert(Buffer.isBuffer(data), 'data is a Buffer');
    if (data.length > this.blobBytesMax) {
      throw new StrataError('BLOB_TOO_LARGE', `blob is ${data.length} bytes; blobBytesMax is ${this.blobBytesMax}`);
    }
    // The caller must not change `data` until put resolves (as with fs.write): it is written from this Buffer.
    const sha256 = sha256Hex(data);
    const checksum = header.format === 2 ? sha256.slice(0, NEEDLE_V2_CHECKSUM_BYTES * 2) : sha256;
    const dataCrc = crc32c(data);
    return this.locks.run(header.id, () => this.putLocked(header, data, checksum, dataCrc));
  }

  // A put or delete that was accepted before close() still completes: close waits for it.
  private async putLocked(header: BlobHeader, data: Buffer, checksum: string, dataCrc: number): Promise<BlobInfo> {
    const existing = this.index.get(header.id);
    const needles: PendingNeedle[] = [];
    const v2 = header.format === 2;
    // Version 2 keeps whole seconds: the answer says what a later stat will.
    const createdAtMs = v2 ? createdAtSecOf(this.nowMs()) * 1000 : this.nowMs();
    if (existing !== undefined) {
      // Check the stored copy first: a corrupt copy is replaced, a good one decides between retry and conflict.
      const stored = existing.corrupt ? null : await this.readChecked(header.id, existing);
      if (stored !== null) {
        if (v2 ? sameV2Blob(stored, header, checksum, data.length) : stored.format !== 2 && sameBlob(stored, header, checksum, data.length)) {
          return infoOf(stored, false);
        }
        throw new StrataError('BLOB_EXISTS', `blob ${header.id} exists with different bytes or header`);
      }
      // The corrupt copy gets a tombstone first, so that no later rebuild of the index can bring it back.
      needles.push(tombstoneFor(header.id, existing.volume, createdAtMs));
    }
    const headBytes = v2
      ? needleV2HeadBytes(needleV2IdBytes(header.id), header.descriptor?.bytes.length ?? 0)
      : needleHeadBytes(
          header.id.length,
          Buffer.byteLength(header.key, 'utf8'),
          Buffer.byteLength(header.writeId, 'utf8'),
          Buffer.byteLength(header.part, 'utf8'),
          Buffer.byteLength(header.meta, 'utf8'),
        );
    const put: PendingNeedle = {
      kind: 'put',
      header,
      data,
      checksum,
      dataCrc,
      createdAtMs,
      headBytes,
      needleBytes: v2 ? needleV2Bytes(headBytes, data.length) : needleBytes(headBytes, data.length),
    };
    needles.push(put);
    const op = appendOp(needles);
    await this.reserveCapacity(header.id, op.bytes);
    try {
      await this.commit.submit(op);
    } finally {
      this.reservedBytes -= op.bytes;
    }
    this.counters.puts += 1;
    if (v2) return v2Info(header.id, data.length, checksum, dataCrc, createdAtMs, header.descriptor);
    return {
      id: header.id,
      key: header.key,
      writeId: header.writeId,
      part: header.part,
      meta: header.meta,
      size: data.length,
      checksum,
      createdAtMs,
    };
  }

  async get(id: string): Promise<{ info: BlobInfo; data: Buffer }> {
    this.assertOpen();
    requireValidId(id);
    this.counters.gets += 1;
    const location = this.index.get(id);
    if (location === undefined) throw notFound(id);
    const counter: ReadCounter = { reads: 0 };
    // A blob already known to be corrupt is also checked against its sha256, so that only a full check clears it.
    const result = await this.readPinned(location, (pinned) =>
      readWholeNeedle(pinned, location, id, counter, { sha256: location.corrupt }),
    );
    this.counters.getReads += counter.reads;
    this.counters.reads += counter.reads;
    if (result.state === 'corrupt') {
      this.index.markCorrupt(id, location, true);
      throw new StrataError('BLOB_CORRUPT', `blob ${id} is corrupt: ${result.reason}`);
    }
    if (location.corrupt) this.index.markCorrupt(id, location, false);
    const { head, raw, headBytes } = result;
    return { info: infoOf(head, false), data: raw.subarray(headBytes, headBytes + head.size) };
  }

  async stat(id: string): Promise<BlobInfo | null> {
    this.assertOpen();
    requireValidId(id);
    const location = this.index.get(id);
    if (location === undefined) return null;
    return this.headInfo(id, location);
  }

  async delete(id: string): Promise<boolean> {
    this.assertOpen();
    requireValidId(id);
    return this.locks.run(id, async () => {
      const location = this.index.get(id);
      if (location === undefined) return false;
      // Tombstones are not held to capacityBytes: deleting is how a full node makes room.
      await this.commit.submit(appendOp([tombstoneFor(id, location.volume, this.nowMs())]));
      this.counters.deletes += 1;
      return true;
    });
  }

  async list(after: string | null, limit: number): Promise<BlobInfo[]> {
    this.assertOpen();
    if (after !== null && typeof after !== 'string') throw new StrataError('INVALID_CURSOR', 'after is not a string');
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.inventoryPageMax) {
      throw new StrataError('INVALID_LIMIT', `limit ${limit} is not an integer in [1, ${LIMITS.inventoryPageMax}]`);
    }
    const page = this.index.after(after, limit);
    const infos: Array<BlobInfo | null> = new Array<BlobInfo | null>(page.length).fill(null);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < page.length) {
        const i = next++;
        const { id } = page[i] as { id: string };
        // Looked up again: the needle may have moved (compaction) or gone (delete) since the page was taken.
        const location = this.index.get(id);
        if (location !== undefined) infos[i] = await this.headInfo(id, location);
      }
    };
    await Promise.all(Array.from({ length: Math.min(LIST_READ_CONCURRENCY, page.length) }, worker));
    return infos.filter((info): info is BlobInfo => info !== null);
  }

  async verify(id: string): Promise<'ok' | 'corrupt' | 'missing'> {
    this.assertOpen();
    requireValidId(id);
    return (await this.check(id)).state;
  }

  async usage(): Promise<VolumeStoreUsage> {
    this.assertOpen();
    const fileBytes = this.fileBytesTotal();
    const garbageBytes = this.garbageBytesTotal();
    let bytesFree: number;
    if (this.capacityBytes !== undefined) {
      bytesFree = Math.max(0, this.capacityBytes - fileBytes - this.reservedBytes) + garbageBytes;
    } else {
      bytesFree = (await this.fs.freeBytes(this.dir)) + garbageBytes;
    }
    return {
      blobs: this.index.size,
      payloadBytes: this.index.payloadBytes,
      bytesUsed: this.index.needleBytes,
      bytesFree,
      garbageBytes,
      reclaimableBytes: fullCompactionReclaimBytes(this.volumes),
      reclaimedBytes: this.counters.compactionReclaimedBytes,
      fileBytes,
      volumes: this.volumes.size,
    };
  }

  /** One pass over every blob at no more than `bytesPerSecMax` (scrub.ts); same report as FileBlobStore's. */
  scrub(options: ScrubOptions): Promise<ScrubReport> {
    return runScrub(
      {
        clock: this.clock,
        isClosed: () => this.closed,
        page: (after, limit) => this.index.after(after, limit),
        check: (id) => this.check(id),
      },
      options,
    );
  }

  /**
   * Compacts now, whatever the background thresholds and unpaced: every sealed volume holding garbage, oldest
   * first (every sealed volume with `all`; only volume `volume` when given), after sealing the active volume when
   * `sealActive` is set and it holds garbage. With `sealActive` this gives back exactly usage().reclaimableBytes.
   */
  async compact(options: { sealActive?: boolean; all?: boolean; volume?: number } = {}): Promise<CompactionOutcome[]> {
    this.assertOpen();
    if (options.sealActive === true && this.active.garbageBytes > 0) await this.requestRotation();
    return this.exclusive(async () => {
      const outcomes: CompactionOutcome[] = [];
      const sealed = [...this.volumes.values()].filter((v) => v !== this.active).sort((a, b) => a.number - b.number);
      const chosen =
        options.volume !== undefined
          ? sealed.filter((v) => v.number === options.volume)
          : options.all === true
            ? sealed
            : fullCompactionVolumes(this.volumes, this.active);
      for (const volume of chosen) {
        if (this.closed) break;
        // An earlier compaction in this loop may have deleted a volume that was empty.
        if (this.volumes.get(volume.number) !== volume) continue;
        outcomes.push(await this.compactOne(volume));
      }
      return outcomes;
    });
  }

  /**
   * Merges now, unpaced, what the background would merge (merge.ts): while more than mergeAfterSealedVolumes
   * sealed volumes exist and two adjacent ones fit in mergeBytesMax together.
   */
  async merge(): Promise<MergeOutcome[]> {
    this.assertOpen();
    return this.exclusive(() => this.mergeWhileDue({ paced: false }));
  }

  /** Writes an index checkpoint now (one is also written in the background, on close and after compaction). */
  async checkpoint(): Promise<void> {
    this.assertOpen();
    await this.exclusive(() => this.writeCheckpoint());
  }

  stats(): VolumeStoreStats {
    return {
      ...this.counters,
      batches: this.commit.batches,
      batchedAppends: this.commit.items,
      volumes: this.volumes.size,
      activeVolume: this.active.number,
      blobs: this.index.size,
      indexMemoryBytes: this.index.memoryBytes(),
      recovery: { ...this.recovery },
    };
  }

  /** Where a blob's needle is on disk (tests and tools). */
  locate(id: string): { volume: number; offset: number; needleBytes: number; file: string } | null {
    const location = this.index.get(id);
    if (location === undefined) return null;
    return {
      volume: location.volume,
      offset: location.offset,
      needleBytes: location.needleBytes,
      file: path.join(this.volumesDir, volumeFileName(location.volume)),
    };
  }

  /** Waits for puts, deletes and maintenance in progress, writes a final checkpoint, and refuses further calls. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.locks.idle();
    await this.commit.idle();
    this.stopMaintenance.abort();
    await this.maintenanceTail;
    try {
      if (this.opsSinceCheckpoint > 0 || this.bytesSinceCheckpoint > 0) await this.writeCheckpoint();
    } catch (err) {
      // The volumes are the truth; without this checkpoint the next open only scans more.
      this.reportMaintenanceError(err);
    }
    await Promise.all([...this.volumes.values()].map((v) => v.close()));
  }

  // ---- writes ------------------------------------------------------------------------------------------------

  /**
   * Group commit's flush: encodes each needle with its sequence number, writes the batch to the active volume
   * with one write and one fsync (two of each when the volume fills up in the middle), then applies it to the
   * index. Only then do the callers hear back.
   */
  private async flush(batch: AppendOp[]): Promise<FlushOutcome> {
    let done = 0;
    let group: AppendOp[] = [];
    let buffers: Buffer[] = [];
    let groupBytes = 0;
    const writeGroup = async (): Promise<void> => {
      if (group.length === 0) return;
      // A group of no-ops (a rotation request) has nothing to make durable.
      if (groupBytes > 0) await this.appendDurably(buffers, groupBytes, group.length);
      // From here to the end of the group nothing awaits: a checkpoint or a compaction that starts sees the
      // index, the applied length and the applied sequence number all before this group, or all after it.
      for (const op of group) this.apply(op);
      this.active.appliedBytes = this.active.fileBytes;
      this.appliedSeqEnd = this.nextSeq;
      this.observer?.reclaimable?.(fullCompactionReclaimBytes(this.volumes));
      done += group.length;
      group = [];
      buffers = [];
      groupBytes = 0;
    };
    try {
      if (this.activeInDoubt || (this.rotateRequested && this.active.fileBytes > SUPERBLOCK_BYTES)) await this.rotate();
      this.rotateRequested = false;
      for (const op of batch) {
        if (!this.active.holdsV2Needles && op.needles.some((n) => n.kind === 'put' && n.header.format === 2)) {
          // A version-2 needle goes only into a format-3 volume: the first one seals the active volume (written
          // by the format this store used so far), and every volume after it is format 3.
          if (!this.writesV2Volumes) await this.beforeFirstV2Volume?.();
          this.writesV2Volumes = true;
          await writeGroup();
          if (this.active.fileBytes === SUPERBLOCK_BYTES) await this.reformatEmptyActive();
          else await this.rotate();
        }
        const end = this.active.fileBytes + groupBytes;
        if (op.bytes > 0 && end > SUPERBLOCK_BYTES && end + op.bytes > this.volumeBytesMax) {
          await writeGroup();
          await this.rotate();
        }
        let at = this.active.fileBytes + groupBytes;
        for (const needle of op.needles) {
          buffers.push(...this.encode(needle));
          op.locations.push({
            volume: this.active.number,
            offset: at,
            needleBytes: needle.needleBytes,
            size: needle.kind === 'put' ? needle.data.length : 0,
            corrupt: false,
          });
          at += needle.needleBytes;
        }
        groupBytes += op.bytes;
        group.push(op);
      }
      await writeGroup();
      return { done };
    } catch (err) {
      return { done, error: diskFullOr(err) };
    }
  }

  /** The buffers of one needle, its head encoded now that it has its sequence number. */
  private encode(needle: PendingNeedle): Buffer[] {
    // Version-2 puts store no sequence number, but still take one: the counter orders tombstones against the
    // compaction watermarks (compaction.ts), which are taken from it, and it must stay where version 1 has it.
    const seq = this.nextSeq++;
    if (needle.kind === 'tombstone') return [encodeTombstone(needle.id, seq, needle.createdAtMs, needle.targetVolume)];
    const { header, data } = needle;
    if (header.format === 2) {
      const head = encodeNeedleV2Head({
        id: header.id,
        size: data.length,
        checksum: needle.checksum,
        dataCrc: needle.dataCrc,
        createdAtMs: needle.createdAtMs,
        ...(header.descriptor !== undefined ? { descriptor: header.descriptor } : {}),
      });
      assert(head.length === needle.headBytes, 'the head is as long as reserved');
      return [head, data, encodeNeedleV2Tail(needle.headBytes, data.length)];
    }
    const head = encodeNeedleHead({
      tombstone: false,
      id: header.id,
      key: header.key,
      writeId: header.writeId,
      part: header.part,
      meta: header.meta,
      size: data.length,
      checksum: needle.checksum,
      createdAtMs: needle.createdAtMs,
      seq,
      targetVolume: 0,
    });
    assert(head.length === needle.headBytes, 'the head is as long as reserved');
    return [head, data, encodeNeedleTail(needle.dataCrc, needle.headBytes, data.length)];
  }

  /**
   * Appends to the active volume and fsyncs; the caller applies the needles. On failure the tail is cut back, or
   * the volume is marked in doubt and sealed by the next flush.
   */
  private async appendDurably(buffers: Buffer[], bytes: number, appends: number): Promise<void> {
    const volume = this.active;
    const start = volume.fileBytes;
    try {
      await volume.file.writev(buffers, start);
    } catch (err) {
      try {
        await volume.file.truncate(start);
      } catch {
        this.activeInDoubt = true;
        volume.fileBytes = start + bytes;
      }
      throw err;
    }
    volume.fileBytes = start + bytes;
    const syncStartedNs = this.observer === undefined ? 0n : process.hrtime.bigint();
    try {
      await volume.file.datasync();
    } catch (err) {
      // After a failed fsync the kernel may have dropped the dirty pages: nothing in the tail can be trusted, and
      // appending after it could hide that. The next flush seals this volume; a restart scans its tail.
      this.activeInDoubt = true;
      throw err;
    }
    this.counters.fsyncs += 1;
    this.observer?.fsynced(appends, bytes, Number(process.hrtime.bigint() - syncStartedNs) / 1e9);
  }

  /** Points the index at what `op` appended; runs right after the fsync that made it durable. */
  private apply(op: AppendOp): void {
    if (op.needles.length > 0) this.quietSinceMs = this.nowMs();
    let wantMaintenance = false;
    op.needles.forEach((needle, i) => {
      const location = op.locations[i] as NeedleLocation;
      if (needle.kind === 'tombstone') {
        const previous = this.index.remove(needle.id);
        if (previous !== undefined) this.volumeOf(previous.volume).liveBytes -= previous.needleBytes;
        wantMaintenance = true;
      } else {
        const previous = this.index.set(needle.header.id, location);
        if (previous !== undefined) this.volumeOf(previous.volume).liveBytes -= previous.needleBytes;
        this.volumeOf(location.volume).liveBytes += location.needleBytes;
      }
      this.bytesSinceCheckpoint += needle.needleBytes;
    });
    this.opsSinceCheckpoint += 1;
    if (wantMaintenance && this.autoCompact) {
      // Overwrites and deletes leave their garbage mostly in the volume being written: seal it early (at the next
      // flush) so that it becomes compactable, rather than when it fills up.
      if (garbagePasses(this.active, this.active.garbageBytes, this.policy)) this.rotateRequested = true;
      this.armIdlePass();
    }
    if (wantMaintenance || this.checkpointDue()) this.scheduleMaintenance();
  }

  /** Seals the active volume by creating the next one. Runs inside a flush, so no append is in progress. */
  private async rotate(): Promise<void> {
    const number = this.active.number + 1;
    if (number > VOLUME_NUMBER_MAX) throw new StrataError('DISK_FULL', `volume numbers are exhausted (${VOLUME_NUMBER_MAX})`);
    await this.openNewActiveVolume(number);
    this.activeInDoubt = false;
    this.counters.rotations += 1;
    this.scheduleMaintenance();
  }

  /**
   * Replaces the active volume, which holds nothing yet, by a format-3 one under the same number, rather than
   * sealing it empty (a fresh store's first put would otherwise leave an empty volume 1 behind for good). The new
   * superblock is renamed over the old one: a crash leaves one or the other, both empty, both revision 0, so a
   * checkpoint that covers the old one covers the new one. Runs inside a flush: nothing is appended meanwhile, and
   * no read is pinned to a volume without needles.
   */
  private async reformatEmptyActive(): Promise<void> {
    const old = this.active;
    assert(old.fileBytes === SUPERBLOCK_BYTES && old.liveBytes === 0, 'only an empty volume is reformatted');
    try {
      await this.openNewActiveVolume(old.number);
    } catch (err) {
      // The new file may already be renamed over the old one, whose handle then writes to an unlinked file:
      // nothing more is appended through it, since the next flush seals it first.
      this.activeInDoubt = true;
      throw err;
    }
    await old.close();
  }

  /** A fresh empty volume numbered `number` becomes the one appends go to. */
  private async openNewActiveVolume(number: number): Promise<void> {
    const volume = await Volume.create(this.fs, this.volumesDir, {
      volume: number,
      revision: 0,
      createdAtSeq: this.nextSeq,
      compactedBeforeSeq: 0,
      pinnedBytes: 0,
      createdAtMs: this.nowMs(),
      firstVolume: number,
      ...(this.writesV2Volumes ? { v2Needles: true } : {}),
    });
    this.volumes.set(number, volume);
    this.active = volume;
  }

  /** Seals the active volume through the commit pipeline (the only writer), so no flush is cut in two. */
  private async requestRotation(): Promise<void> {
    this.rotateRequested = true;
    await this.commit.submit(appendOp([]));
  }

  private async openActiveVolume(): Promise<void> {
    let highest: Volume | undefined;
    for (const volume of this.volumes.values()) if (highest === undefined || volume.number > highest.number) highest = volume;
    if (highest !== undefined && highest.superblock !== null) {
      this.active = highest;
      return;
    }
    // No volume yet, or the last one's superblock did not decode: appends go to a fresh volume.
    const number = (highest?.number ?? 0) + 1;
    await this.openNewActiveVolume(number);
  }

  /**
   * Holds `bytes` of capacityBytes for a put until its flush ends, so that concurrent puts cannot overshoot it
   * together. When the disk is full but garbage would make room, the garbage is reclaimed first.
   */
  private async reserveCapacity(id: string, bytes: number): Promise<void> {
    const capacity = this.capacityBytes;
    if (capacity === undefined) {
      this.reservedBytes += bytes;
      return;
    }
    for (let attempt = 0; ; attempt++) {
      const used = this.fileBytesTotal() + this.reservedBytes;
      if (used + bytes <= capacity) {
        this.reservedBytes += bytes;
        return;
      }
      const shortfall = used + bytes - capacity;
      if (attempt > 0 || this.garbageBytesTotal() < shortfall) {
        throw new StrataError('DISK_FULL', `blob ${id} needs ${bytes} bytes; ${used} of capacity ${capacity} are used`);
      }
      await this.reclaim(shortfall);
    }
  }

  /** Compacts until `shortfall` bytes are given back or nothing more can be. */
  private async reclaim(shortfall: number): Promise<void> {
    const sealedReclaimable = (): number => {
      let total = 0;
      for (const v of this.volumes.values()) if (v !== this.active) total += reclaimableBytes(v, this.volumes);
      return total;
    };
    // Garbage in the active volume can only be compacted once the volume is sealed.
    if (sealedReclaimable() < shortfall && this.active.garbageBytes > 0) await this.requestRotation();
    await this.exclusive(async () => {
      let freed = 0;
      const candidates = compactionCandidates(this.volumes, this.active, { garbageRatioMin: 0, garbageBytesMin: 1 });
      candidates.sort((a, b) => reclaimableBytes(b, this.volumes) - reclaimableBytes(a, this.volumes));
      for (const volume of candidates) {
        if (freed >= shortfall || this.closed) break;
        const scratch = this.claimScratch(SUPERBLOCK_BYTES + volume.liveBytes + (volume.superblock?.pinnedBytes ?? 0));
        if (scratch === null) continue;
        const outcome = await this.compactOne(volume).finally(() => scratch.release());
        if (outcome.kind !== 'aborted') freed += outcome.reclaimedBytes;
      }
    });
  }

  // ---- reads -------------------------------------------------------------------------------------------------

  /** Runs `read` on the file that holds `location`, pinned so that a compaction swap cannot pull it away. */
  private async readPinned<T>(location: NeedleLocation, read: (pinned: ReturnType<Volume['pin']>) => Promise<T>): Promise<T> {
    const volume = this.volumeOf(location.volume);
    const pinned = volume.pin();
    try {
      return await read(pinned);
    } finally {
      volume.unpin(pinned);
    }
  }

  /** The stored head, whole and verified (data CRC and sha256), or null when the copy is corrupt. */
  private async readChecked(id: string, location: NeedleLocation): Promise<NeedleHead | null> {
    const counter: ReadCounter = { reads: 0 };
    const result = await this.readPinned(location, (p) => readWholeNeedle(p, location, id, counter, { sha256: true }));
    this.counters.reads += counter.reads;
    this.index.markCorrupt(id, location, result.state === 'corrupt');
    return result.state === 'ok' ? result.head : null;
  }

  /** Re-reads one blob in full, records the outcome (verify and scrub). */
  private async check(id: string): Promise<{ state: 'ok' | 'corrupt' | 'missing'; bytesRead: number }> {
    const location = this.index.get(id);
    if (location === undefined) return { state: 'missing', bytesRead: 0 };
    const head = await this.readChecked(id, location);
    return { state: head === null ? 'corrupt' : 'ok', bytesRead: location.needleBytes };
  }

  /** BlobInfo from the needle's head on disk (the index keeps only locations, to stay small). */
  private async headInfo(id: string, location: NeedleLocation): Promise<BlobInfo> {
    const counter: ReadCounter = { reads: 0 };
    const result = await this.readPinned(location, (p) => readNeedleHead(p, location, id, counter));
    this.counters.reads += counter.reads;
    if (result.state === 'ok') return infoOf(result.head, location.corrupt);
    this.index.markCorrupt(id, location, true);
    if (result.head !== undefined) return infoOf(result.head, true);
    // The head cannot be trusted, so nothing in it is reported; the id is still listed, as corrupt, so that the
    // healer repairs it from another copy.
    return { id, key: '', writeId: '', part: '', meta: '', size: location.size, checksum: '', createdAtMs: 0, corrupt: true };
  }

  // ---- maintenance -------------------------------------------------------------------------------------------

  /** Runs `task` after every compaction and checkpoint before it: they never overlap. */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.maintenanceTail.then(task);
    this.maintenanceTail = result.catch(() => undefined);
    return result;
  }

  private scheduleMaintenance(): void {
    if (this.maintenanceScheduled || this.closed) return;
    this.maintenanceScheduled = true;
    setImmediate(() => {
      this.maintenanceScheduled = false;
      if (this.closed) return;
      this.exclusive(() => this.maintain()).catch((err: unknown) => this.reportMaintenanceError(err));
    });
  }

  private async maintain(): Promise<void> {
    if (this.autoCompact) {
      // Each compaction leaves its volume below the thresholds, so this loop ends; the bound only guards that.
      for (let round = 0; round < 2 * this.volumes.size + 2; round++) {
        if (this.closed) return;
        const next = this.nextCompaction(this.policy);
        if (next === null) break;
        const outcome = await this.compactOne(next.volume, { paced: true }).finally(() => next.scratch.release());
        if (outcome.kind === 'aborted') return;
      }
      await this.mergeWhileDue({ paced: true });
    }
    if (this.checkpointDue() && !this.closed) await this.writeCheckpoint();
  }

  /** Merges while mergeCandidates finds sources (each merge removes a volume, so this ends). Runs in the chain. */
  private async mergeWhileDue(options: { paced: boolean }): Promise<MergeOutcome[]> {
    const outcomes: MergeOutcome[] = [];
    for (let round = 0; round < this.volumes.size; round++) {
      if (this.closed) break;
      const sources = mergeCandidates(this.volumes, this.active, this.mergePolicy);
      const scratch = sources === null ? null : this.scratchToMerge(sources);
      if (sources === null || scratch === null) break;
      const outcome = await this.mergeOne(sources, options).finally(() => scratch.release());
      outcomes.push(outcome);
      if (outcome.kind === 'aborted') break;
    }
    return outcomes;
  }

  /** One merge (under the maintenance chain), the removal of its sources' files, then a checkpoint. */
  private async mergeOne(sources: Volume[], options: { paced: boolean }): Promise<MergeOutcome> {
    await this.removeLeftoverVolumes();
    const outcome = await mergeVolumes(this.compactionContext(options.paced), sources, this.appliedSeqEnd, this.stopMaintenance.signal);
    if (outcome.kind === 'aborted') return outcome;
    this.counters.merges += 1;
    this.counters.mergedVolumes += outcome.sources.length - 1;
    this.counters.compactionReclaimedBytes += outcome.reclaimedBytes;
    this.observer?.compacted?.(outcome.reclaimedBytes);
    this.observer?.reclaimable?.(fullCompactionReclaimBytes(this.volumes));
    this.leftoverVolumes.push(...outcome.sources.filter((n) => n !== outcome.volume));
    await this.removeLeftoverVolumes();
    await this.writeCheckpoint();
    return outcome;
  }

  /** Removes the files of volumes a merge absorbed; throws (and keeps them listed) when that fails. */
  private async removeLeftoverVolumes(): Promise<void> {
    if (this.leftoverVolumes.length === 0) return;
    await removeVolumeFiles(this.fs, this.volumesDir, this.leftoverVolumes);
    this.leftoverVolumes = [];
  }

  /** A merge writes its sources' kept needles once more before their files go: the scratch for that, or null. */
  private scratchToMerge(sources: readonly Volume[]): ScratchGrant | null {
    return this.claimScratch(SUPERBLOCK_BYTES + sources.reduce((sum, v) => sum + mergeCopyBytesMax(v), 0));
  }

  /** Starts waiting for the store to go quiet, unless already waiting (reclamation.ts). */
  private armIdlePass(): void {
    if (!this.autoCompact || this.closed || this.idleWatching) return;
    this.idleWatching = true;
    this.watchIdle()
      .catch((err: unknown) => this.reportMaintenanceError(err))
      .finally(() => {
        this.idleWatching = false;
      });
  }

  /** Waits until nothing was applied for idleCompactAfterMs, runs the idle pass, and ends once nothing is due. */
  private async watchIdle(): Promise<void> {
    for (;;) {
      const waitMs = this.quietSinceMs + this.idleCompactAfterMs - this.nowMs();
      if (waitMs > 0) {
        await sleepUnlessAborted(this.clock, Math.min(waitMs, IDLE_CHECK_SLICE_MS), this.stopMaintenance.signal);
        if (this.closed) return;
        continue;
      }
      if (!this.idleWorkDue()) return;
      await this.idlePass();
      // Work still due after a pass (no room to copy, or a failure) is tried again after another quiet period.
      this.quietSinceMs = this.nowMs();
      if (this.closed || !this.idleWorkDue()) return;
    }
  }

  private idleWorkDue(): boolean {
    // Armed from the constructor: an open() that failed after it never set an active volume.
    if (this.closed || (this.active as Volume | undefined) === undefined) return false;
    if (garbagePasses(this.active, this.active.garbageBytes, this.idlePolicy)) return true;
    // Asking is not compacting: the grant is given back at once.
    const next = this.nextCompaction(this.idlePolicy);
    next?.scratch.release();
    return next !== null;
  }

  /**
   * The idle pass: seals the active volume when its garbage passes the idle thresholds, then compacts every volume
   * that does, oldest first (so that the volumes tombstones point into go before the tombstones), paced.
   */
  private async idlePass(): Promise<void> {
    if (garbagePasses(this.active, this.active.garbageBytes, this.idlePolicy) && !this.closed) await this.requestRotation();
    await this.exclusive(async () => {
      for (let round = 0; round < 2 * this.volumes.size + 2; round++) {
        if (this.closed) return;
        const next = this.nextCompaction(this.idlePolicy);
        if (next === null) return;
        const outcome = await this.compactOne(next.volume, { paced: true }).finally(() => next.scratch.release());
        if (outcome.kind === 'aborted') return;
      }
      await this.mergeWhileDue({ paced: true });
    });
  }

  /** One compaction (under the maintenance chain), then a checkpoint, so that a restart needs no rebuild. */
  private async compactOne(volume: Volume, options: { paced?: boolean } = {}): Promise<CompactionOutcome> {
    // A merged volume deleted whole while files it stands for are still on disk would let them be read again.
    await this.removeLeftoverVolumes();
    const outcome = await compactVolume(this.compactionContext(options.paced === true), volume, this.appliedSeqEnd, this.stopMaintenance.signal);
    if (outcome.kind === 'aborted') return outcome;
    this.counters.compactions += 1;
    this.counters.compactionReclaimedBytes += outcome.reclaimedBytes;
    this.observer?.compacted?.(outcome.reclaimedBytes);
    this.observer?.reclaimable?.(fullCompactionReclaimBytes(this.volumes));
    await this.writeCheckpoint();
    return outcome;
  }

  private compactionContext(paced: boolean): CompactionContext {
    const signal = this.stopMaintenance.signal;
    return {
      fs: this.fs,
      volumesDir: this.volumesDir,
      index: this.index,
      volumes: this.volumes,
      nowMs: () => this.nowMs(),
      ...(paced ? { pace: compactionPacer(this.clock, this.compactBytesPerSecMax, signal) } : {}),
    };
  }

  /**
   * The first candidate there is room to compact (compaction writes its live needles once more before the old file
   * goes), with its scratch grant: the caller releases it when the compaction has ended.
   */
  private nextCompaction(policy: CompactionPolicy): { volume: Volume; scratch: ScratchGrant } | null {
    for (const volume of compactionCandidates(this.volumes, this.active, policy)) {
      const scratch = this.claimScratch(SUPERBLOCK_BYTES + volume.liveBytes + (volume.superblock?.pinnedBytes ?? 0));
      if (scratch !== null) return { volume, scratch };
    }
    return null;
  }

  /** Scratch for a copy of `copyBytes`, or null when the store's capacity or the disk's reserve has no room for it. */
  private claimScratch(copyBytes: number): ScratchGrant | null {
    if (this.capacityBytes !== undefined && this.fileBytesTotal() + this.reservedBytes + copyBytes > this.capacityBytes) return null;
    if (this.scratchRoom === undefined) return UNCOUNTED_SCRATCH;
    return this.scratchRoom(copyBytes);
  }

  private checkpointDue(): boolean {
    return this.opsSinceCheckpoint >= this.checkpointEveryOps || this.bytesSinceCheckpoint >= this.checkpointEveryBytes;
  }

  /** Snapshots the index and the volumes' applied lengths in one synchronous step, then writes them. */
  private async writeCheckpoint(): Promise<void> {
    const run = this.index.exportRun();
    const volumes = [...this.volumes.values()]
      .sort((a, b) => a.number - b.number)
      .map((v) => ({ volume: v.number, revision: v.revision < 0 ? 0xffffffff : v.revision, coveredBytes: v.appliedBytes }));
    const encoded = encodeCheckpoint({ nextSeq: this.nextSeq, createdAtMs: this.nowMs(), volumes, run });
    this.opsSinceCheckpoint = 0;
    this.bytesSinceCheckpoint = 0;
    await sealCheckpoint(encoded);
    await writeCheckpointFile(this.fs, this.dir, encoded);
    this.counters.checkpoints += 1;
  }

  private reportMaintenanceError(err: unknown): void {
    this.counters.maintenanceErrors += 1;
    this.onMaintenanceError(err);
  }

  // ---- helpers -----------------------------------------------------------------------------------------------

  private volumeOf(number: number): Volume {
    const volume = this.volumes.get(number);
    assert(volume !== undefined, 'the index points only into open volumes');
    return volume;
  }

  private fileBytesTotal(): number {
    let total = 0;
    for (const v of this.volumes.values()) total += v.fileBytes;
    return total;
  }

  private garbageBytesTotal(): number {
    let total = 0;
    for (const v of this.volumes.values()) total += v.garbageBytes;
    return total;
  }

  private nowMs(): number {
    const ms = Math.floor(this.clock.nowMs());
    assert(Number.isSafeInteger(ms) && ms >= 0, 'the clock reads a non-negative time');
    return ms;
  }

  private assertOpen(): void {
    if (this.closed) throw new StrataError('NODE_UNAVAILABLE', `blob store ${this.dir} is closed`);
  }
}

/** The checkpoint file's name, for tests that remove it to force a rebuild. */
export const VOLUME_STORE_CHECKPOINT_FILE = CHECKPOINT_FILE;

function appendOp(needles: PendingNeedle[]): AppendOp {
  return { needles, bytes: needles.reduce((sum, n) => sum + n.needleBytes, 0), locations: [] };
}

function tombstoneFor(id: string, targetVolume: number, createdAtMs: number): PendingNeedle {
  return { kind: 'tombstone', id, targetVolume, createdAtMs, needleBytes: needleBytes(needleHeadBytes(id.length, 0, 0, 0, 0), 0) };
}

function infoOf(head: NeedleHead, corrupt: boolean): BlobInfo {
  if (head.format === 2) {
    const info = v2Info(head.id, head.size, head.checksum, head.dataCrc ?? 0, head.createdAtMs, head.descriptor);
    if (corrupt) info.corrupt = true;
    return info;
  }
  const info: BlobInfo = {
    id: head.id,
    key: head.key,
    writeId: head.writeId,
    part: head.part,
    meta: head.meta,
    size: head.size,
    checksum: head.checksum,
    createdAtMs: head.createdAtMs,
  };
  if (corrupt) info.corrupt = true;
  return info;
}

/** The BlobInfo of a version-2 needle: no key or meta; write id and part as the id names them. */
function v2Info(
  id: string,
  size: number,
  checksum: string,
  crc32c: number,
  createdAtMs: number,
  descriptor: BlobHeader['descriptor'],
): BlobInfo {
  const info: BlobInfo = { id, key: '', ...blobIdNames(id), meta: '', format: 2, size, checksum, crc32c, createdAtMs };
  // A copy: the caller's bytes may change after put, and a BlobInfo is never shared.
  if (descriptor !== undefined) info.descriptor = { kind: descriptor.kind, bytes: new Uint8Array(descriptor.bytes) };
  return info;
}

/** A re-put of a version-2 blob is a retry when it stores the same bytes and the same descriptor. */
function sameV2Blob(stored: NeedleHead, header: BlobHeader, checksum: string, size: number): boolean {
  if (stored.format !== 2 || stored.checksum !== checksum || stored.size !== size) return false;
  const a = stored.descriptor;
  const b = header.descriptor;
  if (a === undefined || b === undefined) return a === b;
  return a.kind === b.kind && Buffer.from(a.bytes).equals(Buffer.from(b.bytes.buffer, b.bytes.byteOffset, b.bytes.length));
}

function notFound(id: string): StrataError {
  return new StrataError('BLOB_NOT_FOUND', `blob ${id} not found`);
}
