/**
 * Continuous reclamation (internal/blobstore/volume/reclamation.ts): garbage that overwrites and deletes leave in
 * the active volume as well as sealed ones is given back once the store goes quiet, the disk then holds little more
 * than the live needles (measured as allocated blocks, as `du` does), the reclaimable figure is exactly what a full
 * compaction gives back, garbage found after a restart is reclaimed too, background compaction keeps to its rate,
 * and compaction never makes a read, a repair put or a delete answer wrong.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../internal/core/clock.js';
import { VolumeBlobStore, type VolumeBlobStoreOptions } from '../../internal/blobstore/volume/volume-blob-store.js';
import { header, makeTempDir, payload } from '../contracts/blob-fixtures.js';
import { allocatedBytes, atRestBoundBytes, liveNeedBytes } from '../helpers/disk-usage.js';
import { ManualClock } from '../helpers/manual-clock.js';

const IDLE_MS = 30_000;
const MIB = 1024 * 1024;
/** Documents rewritten the way the write protocol does it: the new blob under a new id, then the old one deleted. */
async function rewriteDocuments(store: VolumeBlobStore, docs: number, rounds: number, bytes: number, live: Map<number, string>): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await Promise.all(
      Array.from({ length: docs }, async (_, doc) => {
        const id = `D${String(doc).padStart(3, '0')}R${String(round).padStart(4, '0')}.shard-${doc % 6}`;
        await store.put(header(id), payload(bytes, doc * 1000 + round));
        const previous = live.get(doc);
        live.set(doc, id);
        if (previous !== undefined) await store.delete(previous);
      }),
    );
  }
}

describe('VolumeBlobStore continuous reclamation', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const opened: VolumeBlobStore[] = [];
  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('vbs-reclaim'));
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close().catch(() => undefined);
    await remove();
  });

  async function open(options: Partial<VolumeBlobStoreOptions> = {}): Promise<VolumeBlobStore> {
    const store = await VolumeBlobStore.open({ dir, compactBytesPerSecMax: Number.POSITIVE_INFINITY, ...options });
    opened.push(store);
    return store;
  }

  it('gives back the garbage of overwrites in the active volume once idle: du is at most 1.3x the live need + 4 MiB', async () => {
    const clock = new ManualClock();
    // The default 1 GiB volumes: nothing here fills one, so only the active-volume path can reclaim.
    const store = await open({ clock });
    const live = new Map<number, string>();
    await rewriteDocuments(store, 20, 20, 48 * 1024, live);
    await vi.waitFor(
      async () => {
        // Time goes on while the test waits, a quiet period per second: a pass that leaves work due (a compaction
        // that was busy) tries again after another quiet period, as it would on the system clock.
        clock.advance(IDLE_MS);
        const need = await liveNeedBytes(store, dir);
        expect(await allocatedBytes(dir)).toBeLessThanOrEqual(atRestBoundBytes(need));
      },
      { timeout: 60_000, interval: 1_000 },
    );
    for (const [doc, id] of live) {
      const { data } = await store.get(id);
      expect(data.equals(payload(48 * 1024, doc * 1000 + 19))).toBe(true);
    }
  }, 120_000);

  it('returns the disk to near-empty after everything is deleted', async () => {
    const clock = new ManualClock();
    const store = await open({ clock });
    const live = new Map<number, string>();
    await rewriteDocuments(store, 12, 10, 100 * 1024, live);
    for (const id of live.values()) await store.delete(id);
    await vi.waitFor(
      async () => {
        clock.advance(IDLE_MS); // as above: every check is another quiet period later
        const usage = await store.usage();
        // The deletes' tombstones in the fresh active volume stay below the idle threshold (256 KiB by default).
        expect(usage).toMatchObject({ blobs: 0, volumes: 1 });
        expect(usage.reclaimableBytes).toBeLessThan(256 * 1024);
        expect(await allocatedBytes(dir)).toBeLessThanOrEqual(64 * 1024);
      },
      { timeout: 60_000, interval: 1_000 },
    );
  }, 120_000);

  it('seals the active volume under load once its garbage passes the thresholds, before it fills up', async () => {
    const store = await open({ compactGarbageRatioMin: 0.3, compactGarbageBytesMin: 256 * 1024 });
    await rewriteDocuments(store, 8, 20, 32 * 1024, new Map());
    await vi.waitFor(() => expect(store.stats().compactions).toBeGreaterThan(0), { timeout: 60_000, interval: 50 });
    expect(store.stats().rotations).toBeGreaterThan(0);
  }, 120_000);

  it('reports as reclaimable exactly what a full compaction gives back, and counts what was reclaimed', async () => {
    // Small volumes, no background compaction: garbage spread over sealed volumes, tombstones pointing into older
    // volumes, and garbage in the active one.
    const store = await open({ volumeBytesMax: 64 * 1024, autoCompact: false });
    const live = new Map<number, string>();
    await rewriteDocuments(store, 6, 12, 3000, live);
    for (let i = 0; i < 30; i++) await store.put(header(`K${String(i).padStart(3, '0')}.hot-0`), payload(1500, i));
    for (let i = 0; i < 30; i += 3) await store.delete(`K${String(i).padStart(3, '0')}.hot-0`);
    const before = await store.usage();
    expect(before.reclaimableBytes).toBeGreaterThan(0);
    expect(before.reclaimedBytes).toBe(0);
    const outcomes = await store.compact({ sealActive: true });
    const given = outcomes.reduce((sum, o) => sum + (o.kind === 'aborted' ? 0 : o.reclaimedBytes), 0);
    expect(given).toBe(before.reclaimableBytes);
    const after = await store.usage();
    expect(after.reclaimableBytes).toBe(0);
    expect(after.reclaimedBytes).toBe(before.reclaimableBytes);
    // What is left is the live needles and one superblock per volume.
    expect(after.fileBytes).toBe(after.bytesUsed + 64 * after.volumes);
  });

  it('reclaims garbage that was on disk when the store was opened', async () => {
    const first = await open({ autoCompact: false });
    const live = new Map<number, string>();
    await rewriteDocuments(first, 10, 8, 50 * 1024, live);
    for (const id of [...live.values()].slice(0, 5)) await first.delete(id);
    await first.close();
    const clock = new ManualClock();
    const store = await open({ clock });
    const reopened = await store.usage();
    expect(reopened.reclaimableBytes).toBeGreaterThan(MIB);
    clock.advance(IDLE_MS);
    await vi.waitFor(
      async () => expect((await store.usage()).reclaimedBytes).toBeGreaterThanOrEqual(reopened.reclaimableBytes - 256 * 1024),
      { timeout: 60_000, interval: 50 },
    );
    const need = await liveNeedBytes(store, dir);
    expect(await allocatedBytes(dir)).toBeLessThanOrEqual(atRestBoundBytes(need));
  }, 120_000);

  it('reads a background compaction at no more than compactBytesPerSecMax', async () => {
    const first = await open({ autoCompact: false });
    const live = new Map<number, string>();
    await rewriteDocuments(first, 8, 6, 200 * 1024, live);
    await first.close();
    const sleepsMs: number[] = [];
    let nowMs = 1_700_000_000_000;
    // Time moves only by sleeping, and every sleep is recorded, so the rate can be checked exactly.
    const clock: Clock = {
      nowMs: () => nowMs,
      sleep: async (ms) => {
        sleepsMs.push(ms);
        nowMs += ms;
      },
    };
    const rate = 4 * MIB;
    const store = await open({ clock, compactBytesPerSecMax: rate, idleCompactAfterMs: IDLE_MS });
    const { fileBytes } = await store.usage();
    await vi.waitFor(() => expect(store.stats().compactions).toBeGreaterThan(0), { timeout: 60_000, interval: 50 });
    await store.checkpoint();
    // The quiet time is slept first (in slices); the rest paces the copy of the one volume, all of fileBytes.
    const pacedMs = sleepsMs.reduce((a, b) => a + b, 0) - IDLE_MS;
    const lastNeedleBytes = 210 * 1024;
    expect(pacedMs).toBeGreaterThanOrEqual(((fileBytes - 64 - lastNeedleBytes) / rate) * 1000);
    expect(pacedMs).toBeLessThanOrEqual((fileBytes / rate) * 1000);
  }, 120_000);

  it('never answers a read, a repair put or a delete wrongly while the active volume is sealed and compacted', async () => {
    const store = await open({ volumeBytesMax: 256 * 1024, compactGarbageRatioMin: 0.1, compactGarbageBytesMin: 1 });
    const ids = Array.from({ length: 60 }, (_, i) => `C${String(i).padStart(3, '0')}.shard-${i % 6}`);
    const bytesOf = (i: number): Buffer => payload(2000 + i * 37, i);
    for (const [i, id] of ids.entries()) await store.put(header(id), bytesOf(i));
    const deleted = new Set<number>();
    let stop = false;
    const problems: string[] = [];
    const reader = async (): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const i = n % ids.length;
        try {
          const { data } = await store.get(ids[i] as string);
          if (!data.equals(bytesOf(i))) problems.push(`${ids[i]} read different bytes`);
        } catch (err) {
          if (!(deleted.has(i) && (err as { code?: string }).code === 'BLOB_NOT_FOUND')) problems.push(`${ids[i]}: ${String(err)}`);
        }
      }
    };
    const readers = Array.from({ length: 4 }, reader);
    // A repair re-puts a blob it believes lost (the same bytes: a retry), the GC deletes, and filler puts and
    // deletes keep garbage coming, while compactions of the active volume run.
    for (let round = 0; round < 30; round++) {
      const i = round * 2;
      const repair = await store.put(header(ids[i] as string), bytesOf(i));
      if (repair.size !== bytesOf(i).length) problems.push(`repair of ${ids[i]} answered size ${repair.size}`);
      deleted.add(i + 1);
      if (!(await store.delete(ids[i + 1] as string))) problems.push(`delete of ${ids[i + 1]} found nothing`);
      const filler = `F${String(round).padStart(3, '0')}.hot-0`;
      await store.put(header(filler), payload(20_000, round));
      await store.delete(filler);
      await store.compact({ sealActive: true });
    }
    stop = true;
    await Promise.all(readers);
    expect(problems).toEqual([]);
    for (const [i, id] of ids.entries()) {
      if (deleted.has(i)) expect(await store.stat(id)).toBeNull();
      else expect((await store.get(id)).data.equals(bytesOf(i))).toBe(true);
    }
  }, 120_000);
});
