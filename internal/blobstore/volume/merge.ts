/**
 * Merging: several adjacent small sealed volumes are rewritten as one, so that the number of volume files (and
 * of open file descriptors, one per volume) stays bounded however many times the active volume is sealed early
 * (README.md, "Merging"). Compaction alone cannot do it: it rewrites a volume under its own number.
 *
 * The sources are volumes A < ... < C that are *adjacent*: no other volume exists with a number between A and C.
 * Their live needles and the tombstones that must stay are copied, source after source and each in offset order,
 * into `<C>.vol.merge`, behind a superblock for volume C with revision + 1 and `firstVolume` = A (the lowest
 * volume number the sources stood for). Because nothing else lies between A and C, the merged file keeps the
 * needles in sequence-number order at C's place in volume order: a scan of the volumes in number order still
 * replays history in order, and the needles keep their sequence numbers.
 *
 * Crash safety, step by step:
 * 1. The copy is written and fsynced. A crash leaves the temp file, which open() deletes: nothing changed.
 * 2. The copy is renamed over `<C>.vol` and the directory fsynced: this is the commit point. A crash before the
 *    directory fsync leaves either the old `<C>.vol` with every source (nothing changed) or the merged one.
 * 3. The index is repointed into C and the other sources leave the store, in one synchronous step; then their files
 *    are unlinked and the directory fsynced. A crash before that leaves some sources beside the merged C: open()
 *    deletes every volume numbered in [firstVolume, C) of a merged volume before it reads anything (recovery.ts),
 *    so the merge completes. This is what lets the copy drop a tombstone whose target is another source: the dead
 *    needle it hides can never be read again, since its file never outlives the commit point in a replay.
 * The index checkpoint written before the merge names the sources: it no longer matches (a source is gone, and C
 * has a new revision), so the next open rebuilds the index; a new checkpoint is written right after the merge.
 *
 * Which tombstones stay is compaction's rule (compaction.ts, mustKeepTombstone) with the merged range in place of
 * one volume number, and a tombstone anywhere whose target was merged away is judged by the merged volume's
 * `compactedBeforeSeq`: the merge records there the applied sequence number when it began, so a delete applied
 * while the copy ran (whose needle may have been copied) keeps its tombstone until C is compacted again.
 */
import path from 'node:path';
import { assert } from '../../core/assert.js';
import { errnoCode } from '../durable-fs.js';
import { copyNeeded, liveNeedlesOf, type CompactionContext, type CopySource } from './compaction.js';
import { SUPERBLOCK_BYTES, VOLUME_MERGE_SUFFIX, Volume, encodeSuperblock, volumeFileName, type PinnedFile, type Superblock } from './volume.js';
import type { VolumeFile, VolumeFs } from './volume-fs.js';

/** Merges run while more sealed volumes than this exist. */
export const MERGE_AFTER_SEALED_VOLUMES_DEFAULT = 16;
/** A merge takes at most this many sources, so that one merge's pins and copy stay bounded. */
export const MERGE_SOURCES_MAX = 64;

export interface MergePolicy {
  /** Merge while more sealed volumes than this exist... */
  afterSealedVolumes: number;
  /** ...and two adjacent ones hold at most this many needle bytes together (the merged file's bound). */
  bytesMax: number;
}

export type MergeOutcome =
  | { kind: 'aborted' }
  | {
      kind: 'merged';
      volume: number;
      /** The volumes merged, ascending; the last is `volume`. */
      sources: number[];
      reclaimedBytes: number;
      keptTombstoneBytes: number;
      corruptNeedles: number;
    };

/** Bytes a merge copies at most from `volume`: its needles (live, dead and tombstones; the copy keeps a part). */
export function mergeCopyBytesMax(volume: Volume): number {
  return volume.fileBytes - SUPERBLOCK_BYTES;
}

/**
 * The sources of the next merge, ascending, or null when none is due: while more than `afterSealedVolumes`
 * sealed volumes exist, the adjacent pair with the fewest needle bytes together (at most `bytesMax`; the oldest on
 * a tie), extended on both sides by neighbours no larger than what it gathered so far while the total stays within
 * `bytesMax`. Merging the smallest first keeps the bytes each needle is copied over its life small (a needle is
 * copied again only when its volume at least doubles); the extension merges a row of equally small volumes at once.
 */
export function mergeCandidates(volumes: ReadonlyMap<number, Volume>, active: Volume, policy: MergePolicy): Volume[] | null {
  const sealed = [...volumes.values()].filter((v) => v.number < active.number).sort((a, b) => a.number - b.number);
  if (sealed.length <= policy.afterSealedVolumes) return null;
  let best = -1;
  let bestBytes = Number.POSITIVE_INFINITY;
  for (let i = 0; i + 1 < sealed.length; i++) {
    const a = sealed[i] as Volume;
    const b = sealed[i + 1] as Volume;
    // A volume whose superblock did not decode is compacted first (which rewrites the superblock); never merged.
    if (a.superblock === null || b.superblock === null) continue;
    const bytes = mergeCopyBytesMax(a) + mergeCopyBytesMax(b);
    if (bytes <= policy.bytesMax && bytes < bestBytes) {
      best = i;
      bestBytes = bytes;
    }
  }
  if (best < 0) return null;
  let from = best;
  let to = best + 1;
  let bytes = bestBytes;
  const fits = (v: Volume | undefined): v is Volume =>
    v !== undefined && v.superblock !== null && mergeCopyBytesMax(v) <= bytes && bytes + mergeCopyBytesMax(v) <= policy.bytesMax;
  while (to - from + 1 < MERGE_SOURCES_MAX) {
    const before = sealed[from - 1];
    const after = sealed[to + 1];
    if (fits(before) && (!fits(after) || mergeCopyBytesMax(before) <= mergeCopyBytesMax(after))) {
      from -= 1;
      bytes += mergeCopyBytesMax(before);
    } else if (fits(after)) {
      to += 1;
      bytes += mergeCopyBytesMax(after);
    } else break;
  }
  return sealed.slice(from, to + 1);
}

/**
 * Merges `sources` (adjacent sealed volumes, ascending) into the last of them (steps 1 to 3 above), except the
 * removal of the other sources' files, which the caller does with removeVolumeFiles (and retries until it works,
 * before any other compaction or merge: a compaction must not delete the merged volume whole while they exist,
 * since they would then be read as volumes of their own; open() removes them in any case). The caller runs merges
 * and compactions one at a time and passes the applied sequence number as `watermarkSeq`.
 */
export async function mergeVolumes(
  ctx: CompactionContext,
  sources: readonly Volume[],
  watermarkSeq: number,
  signal: AbortSignal | undefined,
): Promise<MergeOutcome> {
  assert(sources.length >= 2, 'a merge has two sources at least');
  const target = sources[sources.length - 1] as Volume;
  const first = sources[0] as Volume;
  for (let i = 0; i < sources.length; i++) {
    const source = sources[i] as Volume;
    assert(ctx.volumes.get(source.number) === source && source.superblock !== null, 'merge sources are open and whole');
    assert(i === 0 || source.number > (sources[i - 1] as Volume).number, 'merge sources ascend');
  }
  for (const number of ctx.volumes.keys()) {
    assert(number < first.number || number > target.number || sources.some((s) => s.number === number), 'merge sources are adjacent');
  }
  const finalPath = path.join(ctx.volumesDir, volumeFileName(target.number));
  const tempPath = finalPath + VOLUME_MERGE_SUFFIX;
  const oldBytes = sources.reduce((sum, v) => sum + v.fileBytes, 0);
  const range = { first: Math.min(...sources.map((v) => v.firstVolume)), last: target.number };
  const pins: PinnedFile[] = [];
  let out: VolumeFile | null = null;
  let swapped = false;
  let outcome: MergeOutcome;
  try {
    const copySources: CopySource[] = sources.map((volume) => {
      const pinned = volume.pin();
      pins.push(pinned);
      return { volume, file: pinned.file, known: liveNeedlesOf(ctx.index, volume.number) };
    });
    await ctx.fs.unlink(tempPath).catch((err: unknown) => ignoreMissing(err));
    out = await ctx.fs.open(tempPath, 'wx');
    const copy = await copyNeeded(ctx, copySources, range, out, signal);
    if (copy === null) return { kind: 'aborted' };
    const superblock: Superblock = {
      volume: target.number,
      revision: Math.max(0, target.revision) + 1,
      createdAtSeq: Math.min(...sources.map((v) => v.superblock?.createdAtSeq ?? 0)),
      compactedBeforeSeq: watermarkSeq,
      pinnedBytes: copy.keptTombstoneBytes,
      createdAtMs: Math.floor(ctx.nowMs()),
      firstVolume: range.first,
      // Format 3 when any source was (or a version-2 needle was copied): compaction.ts says why.
      ...(sources.some((v) => v.holdsV2Needles) || copy.v2Needles ? { v2Needles: true } : {}),
    };
    await out.writev([encodeSuperblock(superblock)], 0);
    await out.datasync();
    if (signal?.aborted === true) return { kind: 'aborted' };
    await ctx.fs.rename(tempPath, finalPath);
    await ctx.fs.fsyncDir(ctx.volumesDir);
    // The commit point has passed. From here to the end of this block nothing awaits: no read or write sees a
    // half-merged store.
    const numbers = new Set(sources.map((v) => v.number));
    let liveBytes = 0;
    for (const source of sources) liveBytes += source.liveBytes;
    ctx.index.relocateInto(numbers, target.number, (volume, offset) => {
      const moved = copy.newOffsets.get(volume)?.get(offset);
      assert(moved !== undefined, 'every live needle of a merged volume was copied');
      return moved;
    });
    target.replaceFile(out, superblock, copy.endBytes);
    target.liveBytes = liveBytes;
    out = null;
    for (const source of sources) if (source !== target) ctx.volumes.delete(source.number);
    swapped = true;
    for (const offset of copy.corruptOffsets) ctx.index.markCorruptAt(target.number, offset);
    outcome = {
      kind: 'merged',
      volume: target.number,
      sources: [...numbers],
      reclaimedBytes: oldBytes - copy.endBytes,
      keptTombstoneBytes: copy.keptTombstoneBytes,
      corruptNeedles: copy.corruptOffsets.length,
    };
  } finally {
    sources.forEach((volume, i) => {
      const pinned = pins[i];
      if (pinned !== undefined) volume.unpin(pinned);
    });
    if (out !== null) await out.close().catch(() => undefined);
    if (!swapped) await ctx.fs.unlink(tempPath).catch(() => undefined);
  }
  // Reads pinned to a source finish on its open file; the file is closed after the last of them.
  await Promise.all(sources.filter((v) => v !== target).map((v) => v.close()));
  return outcome;
}

/** Unlinks the files of volumes a merge absorbed (lowest first; already gone is fine), then fsyncs the directory. */
export async function removeVolumeFiles(fs: VolumeFs, volumesDir: string, numbers: readonly number[]): Promise<void> {
  if (numbers.length === 0) return;
  for (const number of [...numbers].sort((a, b) => a - b)) {
    await fs.unlink(path.join(volumesDir, volumeFileName(number))).catch((err: unknown) => ignoreMissing(err));
  }
  await fs.fsyncDir(volumesDir);
}

/**
 * Volumes that a merged volume stands for but that are still on disk (a crash between a merge's commit point and
 * the removal of its sources): every volume numbered in [firstVolume, number) of a merged volume.
 */
export function mergedAway(volumes: ReadonlyMap<number, Volume>): number[] {
  const out: number[] = [];
  for (const volume of volumes.values()) {
    for (const other of volumes.values()) {
      if (other.number >= volume.firstVolume && other.number < volume.number) out.push(other.number);
    }
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

function ignoreMissing(err: unknown): void {
  if (errnoCode(err) !== 'ENOENT') throw err;
}
