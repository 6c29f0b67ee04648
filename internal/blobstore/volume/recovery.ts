/**
 * Opening a store directory after a clean stop or a crash: what README.md calls "Restart".
 *
 * 1. Every volume is opened and its superblock decoded (one of a later format stops the open: FORMAT_UNSUPPORTED,
 *    nothing touched). Temp files of volume creations, compactions and merges that a crash interrupted are then
 *    deleted: none of them was ever swapped in, so nothing refers to them.
 * 2. Volumes that a merged volume stands for (numbered in its [firstVolume, number)) are left over from a merge
 *    that passed its commit point: they are deleted before anything is read (merge.ts).
 * 3. The index checkpoint is loaded if it matches the volumes (same revisions, every offset inside its volume).
 *    Otherwise the index is rebuilt from every needle of every volume: slower, always right.
 * 4. What the checkpoint does not cover (the tail of each volume) is scanned in volume order, which is the order
 *    the needles were written in, and applied: a put points its id at the needle, a tombstone removes the id.
 *    A torn tail (a crash mid-append) is cut off. Such a needle was never acknowledged: its fsync never finished.
 */
import path from 'node:path';
import { assert } from '../../core/assert.js';
import { errnoCode } from '../durable-fs.js';
import { readCheckpointFile, type Checkpoint } from './index-checkpoint.js';
import { mergedAway } from './merge.js';
import { NeedleIndex } from './needle-index.js';
import { scanVolume } from './volume-scan.js';
import {
  SUPERBLOCK_BYTES,
  VOLUME_COMPACT_SUFFIX,
  VOLUME_MERGE_SUFFIX,
  VOLUME_NEW_SUFFIX,
  Volume,
  parseVolumeFileName,
  volumeFileName,
} from './volume.js';
import type { VolumeFs } from './volume-fs.js';

export interface RecoveryReport {
  /** 'loaded', 'absent', or why the checkpoint could not be used. */
  checkpoint: string;
  /** The index was rebuilt from every volume. */
  fullRebuild: boolean;
  volumes: number;
  bytesScanned: number;
  needlesApplied: number;
  /** Bytes cut off the end of volumes: needles a crash tore. */
  tornBytesTruncated: number;
  /** Needles whose head verified but whose data did not, followed by valid needles: listed as corrupt. */
  corruptNeedles: number;
  /** Bytes between needles that are not needles (rot in a head, or a write torn out of order). */
  garbageBytes: number;
  /** Superblocks that did not decode (their volumes are read all the same, and compacted first). */
  badSuperblocks: number;
  /** Volumes deleted because a merged volume stands for them (a crash interrupted the merge after its commit). */
  mergedVolumesRemoved: number;
  durationMs: number;
}

export interface RecoveredStore {
  volumes: Map<number, Volume>;
  index: NeedleIndex;
  /** Larger than every sequence number on disk and every compaction watermark. */
  nextSeq: number;
  report: RecoveryReport;
}

export async function recoverStore(
  fs: VolumeFs,
  storeDir: string,
  volumesDir: string,
  indexDeltaEntriesMax: number | undefined,
  nowMs: () => number,
): Promise<RecoveredStore> {
  const startedMs = nowMs();
  const { numbers, temps } = await listVolumesDir(fs, volumesDir);
  const volumes = new Map<number, Volume>();
  let badSuperblocks = 0;
  try {
    // Every superblock is read before anything is deleted: a volume of a later format (FORMAT_UNSUPPORTED) stops
    // the open with the directory exactly as that release left it.
    for (const number of numbers) {
      const { volume, superblockError } = await Volume.open(fs, volumesDir, number);
      volumes.set(number, volume);
      if (superblockError !== undefined) badSuperblocks += 1;
    }
    for (const name of temps) await fs.unlink(path.join(volumesDir, name));
    if (temps.length > 0) await fs.fsyncDir(volumesDir);
    const leftovers = mergedAway(volumes);
    for (const number of leftovers) {
      await volumes.get(number)?.close();
      volumes.delete(number);
      await fs.unlink(path.join(volumesDir, volumeFileName(number)));
    }
    if (leftovers.length > 0) await fs.fsyncDir(volumesDir);
    const loaded = await readCheckpointFile(fs, storeDir);
    let checkpoint: Checkpoint | null = null;
    let checkpointState = 'absent';
    if (typeof loaded === 'string') checkpointState = loaded;
    else if (loaded !== null) {
      const problem = checkpointProblem(loaded, volumes);
      if (problem === null) {
        checkpoint = loaded;
        checkpointState = 'loaded';
      } else checkpointState = problem;
    }

    const report: RecoveryReport = {
      checkpoint: checkpointState,
      fullRebuild: checkpoint === null,
      volumes: volumes.size,
      bytesScanned: 0,
      needlesApplied: 0,
      tornBytesTruncated: 0,
      corruptNeedles: 0,
      garbageBytes: 0,
      badSuperblocks,
      mergedVolumesRemoved: leftovers.length,
      durationMs: 0,
    };
    const index = new NeedleIndex({
      ...(indexDeltaEntriesMax !== undefined ? { deltaEntriesMax: indexDeltaEntriesMax } : {}),
      ...(checkpoint !== null ? { run: checkpoint.run } : {}),
    });
    const covered = new Map((checkpoint?.volumes ?? []).map((v) => [v.volume, v.coveredBytes]));
    let maxSeq = 0;
    for (const volume of volumes.values()) {
      const from = covered.get(volume.number) ?? SUPERBLOCK_BYTES;
      maxSeq = Math.max(maxSeq, await replayTail(fs, volume, from, index, report));
      const sb = volume.superblock;
      if (sb !== null) maxSeq = Math.max(maxSeq, sb.createdAtSeq - 1, sb.compactedBeforeSeq - 1);
    }
    for (const [number, totals] of index.volumeTotals()) {
      const volume = volumes.get(number);
      // The checkpoint was checked against the volumes and tails only add entries for scanned volumes.
      assert(volume !== undefined, 'every index entry points into an existing volume');
      volume.liveBytes = totals.liveBytes;
    }
    // Version-2 puts store no sequence number (they count as 0 here): the counter needs only to pass every
    // tombstone's and every compaction watermark's, which compaction's keep rule compares (README.md).
    const nextSeq = Math.max(1, maxSeq + 1, checkpoint?.nextSeq ?? 1);
    report.durationMs = nowMs() - startedMs;
    return { volumes, index, nextSeq, report };
  } catch (err) {
    await Promise.all([...volumes.values()].map((v) => v.close()));
    throw err;
  }
}

/** The volume numbers present, ascending, and the temp files of interrupted creations and compactions. */
async function listVolumesDir(fs: VolumeFs, volumesDir: string): Promise<{ numbers: number[]; temps: string[] }> {
  const numbers: number[] = [];
  const temps: string[] = [];
  for (const name of await fs.readdir(volumesDir)) {
    if (name.endsWith(VOLUME_NEW_SUFFIX) || name.endsWith(VOLUME_COMPACT_SUFFIX) || name.endsWith(VOLUME_MERGE_SUFFIX)) {
      const base = name.slice(0, name.lastIndexOf('.'));
      if (parseVolumeFileName(base) !== null) temps.push(name);
      continue;
    }
    const number = parseVolumeFileName(name);
    // Anything else was not written by this store; it is left alone rather than guessed at.
    if (number !== null) numbers.push(number);
  }
  return { numbers: numbers.sort((a, b) => a - b), temps };
}

/** Why `checkpoint` cannot be trusted with these volumes, or null when it can. */
function checkpointProblem(checkpoint: Checkpoint, volumes: Map<number, Volume>): string | null {
  let highest = 0;
  const listed = new Set<number>();
  for (const v of checkpoint.volumes) {
    const volume = volumes.get(v.volume);
    if (volume === undefined) return `checkpoint names volume ${v.volume}, which is gone`;
    if (volume.revision !== v.revision) return `volume ${v.volume} is at revision ${volume.revision}, checkpoint has ${v.revision}`;
    if (volume.fileBytes < v.coveredBytes) return `volume ${v.volume} is shorter than the checkpoint covers`;
    listed.add(v.volume);
    highest = Math.max(highest, v.volume);
  }
  for (const number of volumes.keys()) {
    // Volumes created after the checkpoint have higher numbers; a lower unlisted one means the two disagree.
    if (!listed.has(number) && number < highest) return `volume ${number} exists but the checkpoint does not name it`;
  }
  const coveredBytes = new Map(checkpoint.volumes.map((v) => [v.volume, v.coveredBytes]));
  const run = checkpoint.run;
  for (let i = 0; i < run.count; i++) {
    const covered = coveredBytes.get(run.volume[i] as number);
    const end = (run.offset8[i] as number) * 8 + (run.needleBytes[i] as number);
    if (covered === undefined || end > covered) return `checkpoint entry ${i} points outside what it covers`;
  }
  return null;
}

/** Applies the needles of `volume` from `from` on; returns the largest sequence number seen. */
async function replayTail(
  fs: VolumeFs,
  volume: Volume,
  from: number,
  index: NeedleIndex,
  report: RecoveryReport,
): Promise<number> {
  let maxSeq = 0;
  const end = volume.fileBytes;
  if (from >= end) return maxSeq;
  report.bytesScanned += end - from;
  for await (const item of scanVolume(volume.file, from, end)) {
    if (item.kind === 'needle') {
      maxSeq = Math.max(maxSeq, item.head.seq);
      report.needlesApplied += 1;
      if (item.head.tombstone) {
        // A tombstone's head is all there is to it: a verified head is enough for it to take effect.
        index.remove(item.head.id);
      } else {
        if (!item.dataIntact) report.corruptNeedles += 1;
        index.set(item.head.id, {
          volume: volume.number,
          offset: item.offset,
          needleBytes: item.needleBytes,
          size: item.head.size,
          corrupt: !item.dataIntact,
        });
      }
    } else if (item.kind === 'garbage') {
      report.garbageBytes += item.bytes;
    } else if (item.kind === 'torn') {
      await truncateTorn(volume, item.offset);
      report.tornBytesTruncated += end - item.offset;
    }
  }
  volume.appliedBytes = volume.fileBytes;
  return maxSeq;
}

/** Cuts a torn tail off, so that the next append follows the last whole needle. */
async function truncateTorn(volume: Volume, offset: number): Promise<void> {
  try {
    await volume.file.truncate(offset);
    await volume.file.datasync();
  } catch (err) {
    throw Object.assign(new Error(`cannot truncate the torn tail of volume ${volume.number}: ${String(err)}`), {
      code: errnoCode(err),
    });
  }
  volume.fileBytes = offset;
}
