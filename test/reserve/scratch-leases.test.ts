/**
 * While the disk is full, the space deletes need is never given to compaction's scratch.
 *
 * Seen on a busy machine (test/cluster/disk-full-tmpfs.test.ts): after the ballast was released, a delete failed in
 * the WAL's SQLite with the disk full. Six volume stores share the all-in-one's disk, and each compaction's grant was
 * forgotten at the next measurement (every second) while its copy was still running, so the stores were granted
 * scratch the disk did not have; the grants also kept only the databases' -wal growth, not the tombstones.
 *
 * The disk here is a fake (free bytes computed from what the simulated compactions wrote, less the ballast really on
 * disk), measured only when the test says so: no timers, no sleeps.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BALLAST_FILE, DiskReserve, type FsSpace } from '../../internal/reserve/disk-reserve.js';
import { RESERVE_LIMITS, type StoredFootprint } from '../../internal/reserve/reserve-sizing.js';

const MIB = 1024 * 1024;
const NEVER_MS = 3_600_000;
/** As the tmpfs test's: the reserve is bounded at a quarter of it (16 MiB), below what the formula wants. */
const FS_BYTES = 64 * MIB;
const STORES = 6;
/** Each store compacts its volumes one after another: live bytes copied, then the old file (live + garbage) removed. */
const VOLUMES_PER_STORE = 3;
const LIVE_BYTES = 4 * MIB;
const VOLUME_FILE_BYTES = 10 * MIB;
/** Bytes store i's copy writes between two measurements: (i + 1) x this (the stores' copies run at different paces). */
const COPY_STEP_BYTES = 512 * 1024;

const FOOTPRINT: StoredFootprint = { keys: 100, blobs: 300, compactionScratchBytes: STORES * LIVE_BYTES, sqliteFiles: 2 };
/**
 * What a delete needs before anything else: the databases' -wal and -shm growth (strata.db and wal.db), without
 * which no delete commits. The bounded reserve shares the rest between tombstones and scratch (deleteShareBytes).
 */
const DELETES_NEED = FOOTPRINT.sqliteFiles * RESERVE_LIMITS.sqliteFileGrowthBytes;

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

interface FakeDisk {
  reserve: DiskReserve;
  /** Bytes everything but the ballast takes; the test moves it. */
  used: { bytes: number };
  free(): Promise<number>;
}

/** A fake filesystem whose free space is FS_BYTES less `used` less the ballast file really on disk. */
async function fakeDisk(): Promise<FakeDisk> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-scratch-'));
  dirs.push(dir);
  const used = { bytes: 0 };
  const ballast = path.join(dir, BALLAST_FILE);
  const free = async (): Promise<number> => FS_BYTES - used.bytes - (await stat(ballast).then((s) => s.size, () => 0));
  const reserve = await DiskReserve.open({
    dir,
    footprint: async () => FOOTPRINT,
    measureSpace: async (): Promise<FsSpace> => ({ freeBytes: await free(), totalBytes: FS_BYTES }),
    refreshIntervalMs: NEVER_MS,
  });
  return { reserve, used, free };
}

/** Fills the disk to just under the headroom beyond the whole ballast: the next measurement releases it. */
async function fillUntilReleased(disk: FakeDisk): Promise<void> {
  expect(disk.reserve.view().ballastBytes).toBeGreaterThan(DELETES_NEED);
  disk.used.bytes += (await disk.free()) - RESERVE_LIMITS.writeHeadroomBytes / 2;
  await disk.reserve.refresh();
  expect(disk.reserve.status().writable).toBe(false);
  expect(disk.reserve.view().ballastBytes).toBe(0);
}

describe('compaction scratch on a full disk', () => {
  it('never grants the space deletes need, across measurements taken while copies are still running', async () => {
    const disk = await fakeDisk();
    try {
      await fillUntilReleased(disk);
      const running = new Map<number, { written: number; release: () => void }>();
      const compacted = new Array<number>(STORES).fill(0);
      const done = new Set<number>();
      for (let round = 0; round < 200 && done.size < STORES; round++) {
        // Every store without a compaction running asks for its scratch (as its idle pass does, repeatedly).
        for (let store = 0; store < STORES; store++) {
          if (running.has(store) || done.has(store)) continue;
          const lease = disk.reserve.claimScratch(LIVE_BYTES);
          if (lease) running.set(store, { written: 0, release: () => lease.release() });
        }
        // What the running copies will still write must fit beside what deletes need while the disk is full, and
        // beside the ballast while it is whole.
        const stillToWrite = [...running.values()].reduce((sum, c) => sum + LIVE_BYTES - c.written, 0);
        const free = await disk.free();
        const kept = disk.reserve.status().writable ? 0 : DELETES_NEED;
        expect(free - stillToWrite, `round ${round}: free bytes left to deletes once the copies end`).toBeGreaterThanOrEqual(kept);
        // The copies move on; a finished one removes its old volume file and gives its scratch back.
        for (const [store, copy] of running) {
          const step = Math.min((store + 1) * COPY_STEP_BYTES, LIVE_BYTES - copy.written);
          copy.written += step;
          disk.used.bytes += step;
          if (copy.written < LIVE_BYTES) continue;
          disk.used.bytes -= VOLUME_FILE_BYTES;
          copy.release();
          running.delete(store);
          compacted[store] = (compacted[store] ?? 0) + 1;
          if (compacted[store] === VOLUMES_PER_STORE) done.add(store);
        }
        // The periodic measurement, between every step of the copies.
        await disk.reserve.refresh();
      }
      // One at a time, every store got to compact, and the space came back: the ballast is whole again.
      expect(done.size).toBe(STORES);
      await disk.reserve.refresh();
      expect(disk.reserve.status().writable).toBe(true);
    } finally {
      await disk.reserve.close();
    }
  });

  it('grants nothing more on a full disk while a compaction that started before the disk filled is still copying', async () => {
    const disk = await fakeDisk();
    try {
      const early = disk.reserve.claimScratch(LIVE_BYTES);
      expect(early).not.toBeNull();
      await fillUntilReleased(disk);
      // Plenty of free space beyond what deletes need, but the early copy's unwritten part is not counted in it.
      expect((await disk.free()) - 2 * LIVE_BYTES).toBeGreaterThan(DELETES_NEED);
      expect(disk.reserve.claimScratch(LIVE_BYTES)).toBeNull();
      await disk.reserve.refresh();
      expect(disk.reserve.claimScratch(LIVE_BYTES)).toBeNull();
      early?.release();
      const next = disk.reserve.claimScratch(LIVE_BYTES);
      expect(next).not.toBeNull();
      next?.release();
    } finally {
      await disk.reserve.close();
    }
  });

  it('keeps the ballast released while a granted copy could still fill the space it would take back', async () => {
    const disk = await fakeDisk();
    try {
      await fillUntilReleased(disk);
      const lease = disk.reserve.claimScratch(LIVE_BYTES);
      expect(lease).not.toBeNull();
      // Deletes elsewhere free just enough for the ballast and the resume margin, but not for the copy still to come.
      disk.used.bytes -= RESERVE_LIMITS.resumeMarginBytes + RESERVE_LIMITS.writeHeadroomBytes;
      await disk.reserve.refresh();
      expect(disk.reserve.status().writable).toBe(false);
      expect(disk.reserve.view().ballastBytes).toBe(0);
      lease?.release();
      await disk.reserve.refresh();
      expect(disk.reserve.status().writable).toBe(true);
    } finally {
      await disk.reserve.close();
    }
  });
});
