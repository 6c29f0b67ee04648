/**
 * The space reserve of one data directory: room that writes never get, so that deleting, compacting and opening
 * the databases still work when the disk is full. It is held as a ballast file (`reserve.ballast`, zeros written
 * out, so the blocks are really allocated) that is released the moment the disk counts as full and re-made once
 * compaction has given enough space back. Writes are measured against the free space *minus* what the reserve is
 * owed, so releasing the ballast never lets a write in: only deletes, compaction and the databases use it.
 *
 *   free       = the filesystem's free bytes for this user (statfs bavail x bsize)
 *   owed       = reserve target - ballast bytes on disk (0 while the ballast is whole)
 *   room       = free - owed - bytes admitted since the last measurement
 *   writable   = ballast whole and room >= WRITE_HEADROOM_BYTES; a put or write needs room >= its bytes + headroom
 *
 * The target is sized from what is stored (reserve-sizing.ts) and re-measured every refresh. See README.md.
 */
import { open, rm, statfs, stat } from 'node:fs/promises';
import path from 'node:path';
import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { deleteShareBytes, RESERVE_LIMITS, reserveTargetBytes, type StoredFootprint } from './reserve-sizing.js';

export const BALLAST_FILE = 'reserve.ballast';

/** Filesystem figures the reserve needs; injected in tests to fake a full disk. */
export interface FsSpace {
  /** Bytes this process may still allocate (statfs bavail x bsize). */
  freeBytes: number;
  /** Size of the filesystem (statfs blocks x bsize). */
  totalBytes: number;
}

export type MeasureSpace = (dir: string) => Promise<FsSpace>;

/** Scratch space granted to one compaction or merge; it counts until `release()` (the copy has ended either way). */
export interface ScratchLease {
  readonly bytes: number;
  /** Idempotent. */
  release(): void;
}

export async function statfsSpace(dir: string): Promise<FsSpace> {
  const s = await statfs(dir);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}

export interface CapacityStatus {
  writable: boolean;
  /** Why writes are refused (what is full and how to free space); null while writable. */
  reason: string | null;
}

export interface ReserveView extends CapacityStatus {
  dir: string;
  freeBytes: number;
  totalBytes: number;
  /** What the reserve should hold now (sizing formula, bounded). */
  reserveBytes: number;
  /** Bytes of the ballast file on disk: reserveBytes while writable, 0 while released for deletes and compaction. */
  ballastBytes: number;
  /** Free bytes writes may still use before they are refused. */
  writableBytes: number;
}

export interface DiskReserveOptions {
  /** The data directory; the ballast lives in it (same filesystem as everything it protects). */
  dir: string;
  /** What is stored there now, for sizing; called on every refresh. */
  footprint: () => Promise<StoredFootprint>;
  /** Names the directory in messages ("the data directory /data", "storage node-3's directory /data/n3"). */
  label?: string;
  log?: Logger;
  refreshIntervalMs?: number;
  /** Tests inject a fake filesystem here. */
  measureSpace?: MeasureSpace;
  /** Upper bound on the reserve (STRATA_DISK_RESERVE_BYTES_MAX); 0 turns the ballast off (writes still stop at the headroom). */
  reserveBytesMax?: number;
}

export class DiskReserve {
  private ballastBytes = 0;
  private targetBytes = 0;
  /** The ballast was given up because the disk was full; writes wait until it is re-made. */
  private released = false;
  private space: FsSpace = { freeBytes: Number.MAX_SAFE_INTEGER, totalBytes: Number.MAX_SAFE_INTEGER };
  private admittedBytes = 0;
  /**
   * Scratch granted to compactions still running, in full until each ends: a measurement taken during a copy sees
   * only the part already written, so forgetting a grant at the next measurement would give its unwritten part away
   * a second time.
   */
  private readonly scratchLeases = new Set<ScratchLease>();
  /** What the space deletes need (reserve-sizing.ts deleteShareBytes): never granted to scratch on a full disk. */
  private deleteShare = 0;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  private closed = false;
  private readonly ballastPath: string;
  private readonly label: string;
  private readonly measureSpace: MeasureSpace;

  private constructor(private readonly options: DiskReserveOptions) {
    this.ballastPath = path.join(options.dir, BALLAST_FILE);
    this.label = options.label ?? `the data directory ${options.dir}`;
    this.measureSpace = options.measureSpace ?? statfsSpace;
  }

  /**
   * Measures the disk and makes or releases the ballast before anything else in the directory is opened: on a
   * full disk the ballast is released at once, which is what lets SQLite create its -wal and -shm files.
   */
  static async open(options: DiskReserveOptions): Promise<DiskReserve> {
    const reserve = new DiskReserve(options);
    reserve.ballastBytes = await fileBytes(reserve.ballastPath);
    await reserve.refresh();
    const intervalMs = options.refreshIntervalMs ?? RESERVE_LIMITS.refreshIntervalMs;
    assert(intervalMs > 0, 'refreshIntervalMs <= 0');
    reserve.timer = setInterval(() => {
      reserve.refresh().catch((err) => reserve.options.log?.warn({ err, dir: reserve.options.dir }, 'disk reserve refresh failed'));
    }, intervalMs);
    reserve.timer.unref();
    return reserve;
  }

  status(): CapacityStatus {
    const room = this.room();
    if (this.released || room < RESERVE_LIMITS.writeHeadroomBytes) {
      return { writable: false, reason: this.fullMessage() };
    }
    return { writable: true, reason: null };
  }

  view(): ReserveView {
    return {
      dir: this.options.dir,
      ...this.status(),
      freeBytes: this.space.freeBytes,
      totalBytes: this.space.totalBytes,
      reserveBytes: this.targetBytes,
      ballastBytes: this.ballastBytes,
      writableBytes: Math.max(0, this.room() - RESERVE_LIMITS.writeHeadroomBytes),
    };
  }

  /**
   * Lets a write of about `bytes` in, or refuses it with DISK_FULL before it changes anything. Admitted bytes
   * count against the room until the next measurement sees them on disk.
   *
   * Near the edge (less than `freshMeasureBelowBytes` of room left after this write) the disk is measured again
   * before deciding. A write's bytes are an estimate (SQLite's -wal files grow by more pages than a write's
   * metadata allowance until they reach their checkpoint size, volume files by needle padding), and the error adds
   * up over every write admitted between measurements: on a busy machine, with measurements late, it can outgrow the
   * headroom, and the disk then fills while the ballast is still whole (SQLite meets a full disk at the commit).
   */
  async admit(bytes: number, what: string): Promise<void> {
    assert(Number.isSafeInteger(bytes) && bytes >= 0, 'bytes is a non-negative integer');
    if (!this.released && this.room() - bytes < RESERVE_LIMITS.writeHeadroomBytes + RESERVE_LIMITS.freshMeasureBelowBytes) {
      // A failed measurement leaves the last one to decide by (the periodic refresh logs it).
      await this.refresh().catch(() => undefined);
    }
    const status = this.status();
    if (!status.writable || this.room() - bytes < RESERVE_LIMITS.writeHeadroomBytes) {
      // A refusal is the disk being full for writes: readiness says so at once, and the next measurement releases
      // the ballast to deletes unless there is clearly room (a refused write much larger than the rest).
      this.released = true;
      void this.refresh().catch(() => undefined);
      throw new StrataError('DISK_FULL', `${what} refused: ${status.reason ?? this.fullMessage()}`, { dir: this.options.dir });
    }
    this.admittedBytes += bytes;
  }

  /**
   * May a compaction use `copyBytes` of scratch space now? A lease when yes (release it when the copy ends, however it
   * ends), null when not. Copies that fit beside the whole ballast, with the copies already granted, run together.
   * Any other (the disk full, or the copy needing more than the room writes have) runs alone across every store on
   * the disk (none while another's lease is held, even one granted before the disk filled), and only when the free
   * space less `copyBytes` still holds what deletes need (the databases' growth and the tombstones, deleteShareBytes):
   * that share is never given to scratch.
   */
  claimScratch(copyBytes: number): ScratchLease | null {
    assert(Number.isSafeInteger(copyBytes) && copyBytes >= 0, 'copyBytes is a non-negative integer');
    const besideBallast = this.status().writable && this.room() - this.scratchLeasedBytes() - copyBytes >= RESERVE_LIMITS.writeHeadroomBytes;
    if (!besideBallast) {
      if (this.scratchLeases.size > 0) return null;
      if (this.space.freeBytes - copyBytes < this.deleteShare) return null;
    }
    const leases = this.scratchLeases;
    const lease: ScratchLease = {
      bytes: copyBytes,
      release: () => {
        leases.delete(lease);
      },
    };
    leases.add(lease);
    return lease;
  }

  /** Scratch granted and not yet released. */
  scratchLeasedBytes(): number {
    let total = 0;
    for (const lease of this.scratchLeases) total += lease.bytes;
    return total;
  }

  /** Measures again: resizes, releases or re-makes the ballast. Concurrent calls share one measurement. */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.refreshing?.catch(() => undefined);
  }

  private async refreshOnce(): Promise<void> {
    if (this.closed) return;
    const footprint = await this.options.footprint().catch(() => null);
    // Bytes admitted while the disk is being measured may not be on it yet: they keep counting.
    const admittedBefore = this.admittedBytes;
    this.space = await this.measureSpace(this.options.dir);
    this.admittedBytes = Math.max(0, this.admittedBytes - admittedBefore);
    if (footprint !== null) {
      this.targetBytes = reserveTargetBytes(footprint, this.space.totalBytes, this.options.reserveBytesMax ?? RESERVE_LIMITS.reserveBytesMax);
      this.deleteShare = deleteShareBytes(footprint, this.targetBytes);
    }
    const owed = this.targetBytes - this.ballastBytes;
    const room = this.space.freeBytes - owed;
    // After a release (or a refusal), writes resume only with a margin, so that the ballast does not flap, and only
    // once the compactions running on the released space could finish their copies beside the re-made ballast.
    const resumeRoom = room - this.scratchLeasedBytes();
    const full = room < RESERVE_LIMITS.writeHeadroomBytes || (this.released && resumeRoom < RESERVE_LIMITS.writeHeadroomBytes + RESERVE_LIMITS.resumeMarginBytes);
    if (full) {
      // Hand the ballast to deletes, compaction and the databases. Writes stay refused (room is unchanged).
      this.released = true;
      if (this.ballastBytes > 0) await this.resizeBallast(0, 'released');
      return;
    }
    this.released = false;
    if (this.ballastBytes !== this.targetBytes) await this.resizeBallast(this.targetBytes, this.ballastBytes === 0 ? 'made' : 'resized');
  }

  private room(): number {
    return this.space.freeBytes - (this.targetBytes - this.ballastBytes) - this.admittedBytes;
  }

  private async resizeBallast(bytes: number, how: string): Promise<void> {
    const before = this.ballastBytes;
    if (bytes === 0) {
      await rm(this.ballastPath, { force: true });
      this.ballastBytes = 0;
    } else {
      this.ballastBytes = await writeBallast(this.ballastPath, before, bytes);
    }
    if (this.ballastBytes !== before) {
      this.space = { ...this.space, freeBytes: this.space.freeBytes - (this.ballastBytes - before) };
      this.options.log?.info({ dir: this.options.dir, ballastBytes: this.ballastBytes, targetBytes: this.targetBytes }, `disk reserve ${how}`);
    }
  }

  private fullMessage(): string {
    return (
      `${this.label} is full (${mib(this.space.freeBytes)} free of ${mib(this.space.totalBytes)}, ` +
      `${mib(this.targetBytes)} kept in reserve so that deletes and compaction always work); ` +
      'reads and deletes still work: free space by deleting documents (compaction gives the space back within ' +
      'about a minute, then writes resume), or grow the filesystem'
    );
  }
}

/** Grows (appending zeros) or truncates the ballast to `bytes`, fsynced; on ENOSPC it keeps what it has. */
async function writeBallast(file: string, fromBytes: number, bytes: number): Promise<number> {
  const handle = await open(file, fromBytes === 0 ? 'w' : 'r+');
  try {
    if (bytes < fromBytes) {
      await handle.truncate(bytes);
      await handle.sync();
      return bytes;
    }
    const chunk = Buffer.alloc(RESERVE_LIMITS.ballastChunkBytes);
    let size = fromBytes;
    try {
      while (size < bytes) {
        const n = Math.min(chunk.length, bytes - size);
        const { bytesWritten } = await handle.write(chunk, 0, n, size);
        size += bytesWritten;
      }
      await handle.sync();
    } catch (err) {
      // Another writer took the space first: keep the ballast as it was; the next refresh tries again.
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      await handle.truncate(fromBytes).catch(() => undefined);
      return fromBytes;
    }
    return size;
  } finally {
    await handle.close();
  }
}

async function fileBytes(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
