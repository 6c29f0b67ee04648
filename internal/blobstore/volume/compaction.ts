/**
 * Compaction: a sealed volume whose garbage (dead needles, tombstones) passes a threshold is rewritten with only
 * what must stay, under the same volume number, and swapped in atomically.
 *
 * Crash safety, step by step (README.md, "Compaction"):
 * 1. Live needles (those the index points at) and the tombstones that must stay are copied, in their order, into
 *    `<n>.vol.compact`, behind a superblock with revision + 1; the copy is fsynced. A crash here leaves the temp
 *    file, which open() deletes: the old volume is untouched.
 * 2. The copy is renamed over `<n>.vol` and the directory fsynced. A crash before the directory fsync leaves either
 *    the old or the new file under the name: both hold the same live needles with the same sequence numbers, so
 *    nothing is lost and nothing is duplicated (compaction never moves a needle to another volume). The index
 *    checkpoint still names the old revision, so the next open rebuilds the index from the volumes.
 * 3. The index is repointed in one synchronous step, reads pinned to the old file finish on it, and a new
 *    checkpoint is written.
 * A volume left with nothing to keep is deleted instead (unlink, directory fsync).
 *
 * Which tombstones must stay. A tombstone hides the needle it deleted, in its *target* volume, from the scan that
 * rebuilds the index. It can go once that needle is gone for good: when the target is this very volume (the dead
 * needle goes in the same copy), when the target volume no longer exists, or when the target was compacted after
 * the tombstone took effect. "After" is told by sequence numbers: each compaction records in its superblock the
 * store's applied sequence number when it began (`compactedBeforeSeq`); every tombstone below it was already in
 * the index then, so the needle it deleted was not live and was not copied. A tombstone that the failed copy of a
 * volume in a corrupt put replaced is kept the same way, so an old corrupt copy can never come back either.
 */
import path from 'node:path';
import { assert } from '../../core/assert.js';
import { errnoCode } from '../durable-fs.js';
import type { NeedleIndex } from './needle-index.js';
import { NEEDLE_V2_MAGIC, decodeNeedleHead, needleDataIntact, type NeedleHead } from './needle.js';
import { scanVolume } from './volume-scan.js';
import { SUPERBLOCK_BYTES, VOLUME_COMPACT_SUFFIX, Volume, encodeSuperblock, volumeFileName, type Superblock } from './volume.js';
import type { VolumeFile, VolumeFs } from './volume-fs.js';

/** Bytes gathered before each write of the copy. */
const COPY_CHUNK_BYTES = 4 * 1024 * 1024;

export interface CompactionPolicy {
  /** A sealed volume is compacted when its reclaimable bytes reach this share of its needle bytes... */
  garbageRatioMin: number;
  /** ...and at least this many bytes. */
  garbageBytesMin: number;
}

export interface CompactionContext {
  fs: VolumeFs;
  volumesDir: string;
  index: NeedleIndex;
  volumes: Map<number, Volume>;
  nowMs: () => number;
  /**
   * Called as the copy pass moves through the old file, with the bytes scanned so far; background compactions
   * sleep in it to hold their I/O to a rate (reclamation.ts). Compactions a caller waits for are not paced.
   */
  pace?: (bytesScanned: number) => Promise<void>;
}

export type CompactionOutcome =
  | { kind: 'aborted' }
  | { kind: 'deleted'; volume: number; reclaimedBytes: number }
  | { kind: 'swapped'; volume: number; reclaimedBytes: number; keptTombstoneBytes: number; corruptNeedles: number };

/**
 * Bytes a compaction of `volume` could give back. Tombstones the last compaction had to keep are not counted,
 * unless an older volume was compacted since, which may have made them droppable.
 */
export function reclaimableBytes(volume: Volume, volumes: ReadonlyMap<number, Volume>): number {
  const sb = volume.superblock;
  if (sb === null) return volume.garbageBytes;
  let pinnedMayBeStale = false;
  for (const other of volumes.values()) {
    if (other.number < volume.number && (other.superblock?.compactedBeforeSeq ?? 0) > sb.compactedBeforeSeq) {
      pinnedMayBeStale = true;
      break;
    }
  }
  return Math.max(0, volume.garbageBytes - (pinnedMayBeStale ? 0 : sb.pinnedBytes));
}

/**
 * Bytes of volume files that a full compaction (`compact({ sealActive: true })`: the active volume sealed, then
 * every volume holding garbage compacted, oldest first) gives back: the garbage of each volume, and the whole file
 * of a volume left with nothing live. Exact, not an estimate: in a pass that goes oldest first, the volume a
 * tombstone's deleted needle lies in holds that dead needle as garbage, so it is compacted before the tombstone's
 * own volume, and every tombstone can then go (mustKeepTombstone). The new active volume's superblock that the
 * seal creates is not subtracted.
 */
export function fullCompactionReclaimBytes(volumes: ReadonlyMap<number, Volume>): number {
  let total = 0;
  for (const volume of volumes.values()) {
    if (volume.garbageBytes === 0 && volume.superblock !== null) continue;
    total += volume.liveBytes === 0 ? volume.fileBytes : volume.garbageBytes;
  }
  return total;
}

/** Volumes a full compaction rewrites: every one that is not the active one and holds garbage, oldest first. */
export function fullCompactionVolumes(volumes: ReadonlyMap<number, Volume>, active: Volume): Volume[] {
  return [...volumes.values()]
    .filter((v) => v !== active && v.number < active.number && (v.garbageBytes > 0 || v.superblock === null))
    .sort((a, b) => a.number - b.number);
}

/** Sealed volumes worth compacting, oldest first (so that targets go before the tombstones that point at them). */
export function compactionCandidates(volumes: ReadonlyMap<number, Volume>, active: Volume, policy: CompactionPolicy): Volume[] {
  const out: Volume[] = [];
  for (const volume of volumes.values()) {
    if (volume === active || volume.number > active.number) continue;
    // A superblock that did not decode is rewritten by the copy: compact it whatever its garbage.
    if (volume.superblock === null) {
      out.push(volume);
      continue;
    }
    const reclaimable = reclaimableBytes(volume, volumes);
    const needleBytes = volume.fileBytes - SUPERBLOCK_BYTES;
    if (reclaimable >= policy.garbageBytesMin && reclaimable > 0 && reclaimable >= policy.garbageRatioMin * needleBytes) {
      out.push(volume);
    }
  }
  return out.sort((a, b) => a.number - b.number);
}

/**
 * Compacts one sealed volume (steps 1 to 3 above). The caller runs compactions one at a time and passes the
 * applied sequence number as `watermarkSeq`.
 */
export async function compactVolume(
  ctx: CompactionContext,
  volume: Volume,
  watermarkSeq: number,
  signal: AbortSignal | undefined,
): Promise<CompactionOutcome> {
  const known = liveNeedlesOf(ctx.index, volume.number);
  const finalPath = path.join(ctx.volumesDir, volumeFileName(volume.number));
  const tempPath = finalPath + VOLUME_COMPACT_SUFFIX;
  const oldBytes = volume.fileBytes;
  const pinned = volume.pin();
  let out: VolumeFile | null = null;
  let swapped = false;
  try {
    await ctx.fs.unlink(tempPath).catch((err: unknown) => ignoreMissing(err));
    out = await ctx.fs.open(tempPath, 'wx');
    const copy = await copyNeeded(ctx, [{ volume, file: pinned.file, known }], rangeOf(volume), out, signal);
    if (copy === null) return { kind: 'aborted' };
    if (copy.endBytes === SUPERBLOCK_BYTES) {
      // Nothing to keep: the volume goes altogether.
      await out.close();
      out = null;
      await ctx.fs.unlink(tempPath);
      assert(volume.liveBytes === 0, 'a volume with nothing live has no live bytes');
      await ctx.fs.unlink(finalPath);
      await ctx.fs.fsyncDir(ctx.volumesDir);
      ctx.volumes.delete(volume.number);
      swapped = true;
      return { kind: 'deleted', volume: volume.number, reclaimedBytes: oldBytes };
    }
    const superblock: Superblock = {
      volume: volume.number,
      revision: Math.max(0, volume.revision) + 1,
      createdAtSeq: volume.superblock?.createdAtSeq ?? 0,
      compactedBeforeSeq: watermarkSeq,
      pinnedBytes: copy.keptTombstoneBytes,
      createdAtMs: Math.floor(ctx.nowMs()),
      // A merged volume stays one: the range is what lets a restart finish an interrupted merge (merge.ts).
      firstVolume: volume.firstVolume,
      // Format 3 stays format 3 (a compaction never makes a volume unreadable to the release that wrote it, nor
      // readable by one that would misread it), and a copy that holds a version-2 needle must be format 3.
      ...(volume.holdsV2Needles || copy.v2Needles ? { v2Needles: true } : {}),
    };
    await out.writev([encodeSuperblock(superblock)], 0);
    await out.datasync();
    if (signal?.aborted === true) return { kind: 'aborted' };
    await ctx.fs.rename(tempPath, finalPath);
    await ctx.fs.fsyncDir(ctx.volumesDir);
    // From here to the end of this block nothing awaits: no read or write sees a half-swapped volume.
    const newOffsets = copy.newOffsets.get(volume.number);
    ctx.index.relocate(volume.number, (offset) => {
      const moved = newOffsets?.get(offset);
      assert(moved !== undefined, 'every live needle of a compacted volume was copied');
      return moved;
    });
    volume.replaceFile(out, superblock, copy.endBytes);
    out = null;
    swapped = true;
    for (const offset of copy.corruptOffsets) ctx.index.markCorruptAt(volume.number, offset);
    return {
      kind: 'swapped',
      volume: volume.number,
      reclaimedBytes: oldBytes - copy.endBytes,
      keptTombstoneBytes: copy.keptTombstoneBytes,
      corruptNeedles: copy.corruptOffsets.length,
    };
  } finally {
    volume.unpin(pinned);
    if (out !== null) await out.close().catch(() => undefined);
    if (!swapped) await ctx.fs.unlink(tempPath).catch(() => undefined);
    if (swapped && !ctx.volumes.has(volume.number)) await volume.close();
  }
}

interface CopyResult {
  endBytes: number;
  /** Old offset -> new offset of every live needle copied, per source volume. */
  newOffsets: Map<number, Map<number, number>>;
  /** New offsets of live needles whose bytes did not verify (copied as they are, still corrupt). */
  corruptOffsets: number[];
  keptTombstoneBytes: number;
  /** A version-2 needle was copied: the file must be written as format 3. */
  v2Needles: boolean;
}

/** A volume to copy from: its file (pinned for the copy) and the offsets of its live needles, ascending. */
export interface CopySource {
  volume: Volume;
  file: VolumeFile;
  known: ReadonlyArray<{ offset: number; needleBytes: number }>;
}

/** The live needles of `volume` in the index now, by offset: what a copy that starts now must keep. */
export function liveNeedlesOf(index: NeedleIndex, volume: number): Array<{ offset: number; needleBytes: number }> {
  const known: Array<{ offset: number; needleBytes: number }> = [];
  index.forEachInVolume(volume, (offset, needleBytes) => known.push({ offset, needleBytes }));
  return known.sort((a, b) => a.offset - b.offset);
}

/**
 * Step 1 of a compaction or a merge: copies, source after source (in volume order, each in offset order, so that
 * the copy replays history in order), the live needles and the tombstones that must stay into `out` behind where
 * its superblock goes. `range` is the volume numbers the written file will stand for (mustKeepTombstone). Null
 * when aborted.
 */
export async function copyNeeded(
  ctx: CompactionContext,
  sources: readonly CopySource[],
  range: VolumeRange,
  out: VolumeFile,
  signal: AbortSignal | undefined,
): Promise<CopyResult | null> {
  const result: CopyResult = { endBytes: SUPERBLOCK_BYTES, newOffsets: new Map(), corruptOffsets: [], keptTombstoneBytes: 0, v2Needles: false };
  const chunk = Buffer.allocUnsafeSlow(COPY_CHUNK_BYTES);
  let chunkBytes = 0;
  let chunkAt = SUPERBLOCK_BYTES;
  const flush = async (): Promise<void> => {
    if (chunkBytes > 0) await out.writev([chunk.subarray(0, chunkBytes)], chunkAt);
    chunkAt += chunkBytes;
    chunkBytes = 0;
  };
  // `raw` is a view into the scan's window, which the next read overwrites: it is copied (or written) right away.
  const append = async (raw: Buffer): Promise<number> => {
    const at = result.endBytes;
    if (raw.length >= 4 && raw.readUInt32BE(0) === NEEDLE_V2_MAGIC) result.v2Needles = true;
    if (chunkBytes + raw.length > chunk.length) await flush();
    if (raw.length > chunk.length) {
      await out.writev([raw], chunkAt);
      chunkAt += raw.length;
    } else {
      chunkBytes += raw.copy(chunk, chunkBytes);
    }
    result.endBytes += raw.length;
    return at;
  };
  // Pacing counts the bytes scanned across all sources.
  let scannedBefore = 0;
  for (const source of sources) {
    const newOffsets = new Map<number, number>();
    result.newOffsets.set(source.volume.number, newOffsets);
    for await (const item of scanVolume(source.file, SUPERBLOCK_BYTES, source.volume.appliedBytes, source.known)) {
      if (signal?.aborted === true) return null;
      if (ctx.pace !== undefined) {
        await ctx.pace(scannedBefore + item.offset - SUPERBLOCK_BYTES);
        // The store may have closed while the pace slept.
        if (isAborted(signal)) return null;
      }
      if (item.kind === 'known') {
        const at = await append(item.raw);
        newOffsets.set(item.offset, at);
        if (!verifies(item.raw)) result.corruptOffsets.push(at);
      } else if (item.kind === 'needle' && item.head.tombstone && mustKeepTombstone(item.head, range, ctx.volumes)) {
        await append(item.raw);
        result.keptTombstoneBytes += item.needleBytes;
      }
      // Dead puts, droppable tombstones and garbage are what compaction is for: they are not copied.
    }
    scannedBefore += source.volume.appliedBytes - SUPERBLOCK_BYTES;
  }
  await flush();
  assert(chunkAt === result.endBytes, 'the copy wrote every byte it counted');
  return result;
}

/** The volume numbers one volume file stands for: its own, and those merged into it (merge.ts). */
export interface VolumeRange {
  first: number;
  last: number;
}

export function rangeOf(volume: Volume): VolumeRange {
  return { first: volume.firstVolume, last: volume.number };
}

/**
 * The volume whose file holds what is left of volume `number`'s needles: the volume itself, or the merged volume
 * whose range covers it; undefined when the needles are gone for good (the volume was deleted whole).
 */
export function holderOf(number: number, volumes: ReadonlyMap<number, Volume>): Volume | undefined {
  const own = volumes.get(number);
  if (own !== undefined) return own;
  for (const volume of volumes.values()) if (volume.firstVolume <= number && number < volume.number) return volume;
  return undefined;
}

/**
 * See the file comment: may the needle this tombstone deleted still be on disk, outside the file being written
 * (which stands for `range`)? A target inside `range` is in the same copy, which drops the dead needle. A target
 * merged into another volume is judged by that volume's compaction watermark, since its needles were copied there.
 */
export function mustKeepTombstone(head: NeedleHead, range: VolumeRange, volumes: ReadonlyMap<number, Volume>): boolean {
  const target = head.targetVolume;
  if (target >= range.first && target <= range.last) return false;
  const holder = holderOf(target, volumes);
  if (holder === undefined) return target > range.last; // a later volume cannot be a target; keep, to be safe
  const sb = holder.superblock;
  if (sb === null) return true;
  return sb.compactedBeforeSeq <= head.seq;
}

function verifies(raw: Buffer): boolean {
  const decoded = decodeNeedleHead(raw);
  return decoded.state === 'ok' && decoded.needleBytes === raw.length && needleDataIntact(raw, 0, decoded.headBytes, decoded.head);
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function ignoreMissing(err: unknown): void {
  if (errnoCode(err) !== 'ENOENT') throw err;
}
