/**
 * Merging small sealed volumes (internal/blobstore/volume/merge.ts): the number of volume files and of open file
 * descriptors stays within the documented bound however often the active volume is sealed early; a merge is crash
 * safe (power loss at every file-system operation of one: nothing acknowledged lost, no delete back, no garbage
 * that is never reclaimed, no leftover file, also after a full rebuild of the index); and reads, deletes and
 * repairs racing a merge get right answers, and deletes applied while it copied stay deleted through later
 * compactions and a rebuild. SIGKILL during paced background merges: volume-merge-crash.test.ts.
 */
import { readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VolumeBlobStore, VOLUME_STORE_CHECKPOINT_FILE, type VolumeBlobStoreOptions } from '../../internal/blobstore/volume/volume-blob-store.js';
import { makeTempDir } from '../contracts/blob-fixtures.js';
import { PowerLossFs } from './volume-harness/power-loss-fs.js';
import { blobIdFor, checkAfterCrash, headerFor, newLedger, payloadFor, type Ledger } from './volume-harness/workload.js';

const DIR = '/strata/node-1';
const KIB = 1024;

/** Open file descriptors of this process on files under `dir` (Linux: /proc/self/fd). */
async function openFdsUnder(dir: string): Promise<number> {
  let count = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(path.join('/proc/self/fd', fd)).catch(() => '');
    if (target.startsWith(dir + path.sep)) count += 1;
  }
  return count;
}

async function volumeFiles(fs: PowerLossFs | null, dir: string): Promise<string[]> {
  const names = fs === null ? await readdir(path.join(dir, 'volumes')) : await fs.readdir(path.join(dir, 'volumes'));
  return names.sort();
}

/** After a full compaction nothing is reclaimable and the files hold only live needles and superblocks. */
async function expectNoGarbageLeft(store: VolumeBlobStore): Promise<void> {
  await store.compact({ sealActive: true });
  const usage = await store.usage();
  expect(usage.reclaimableBytes).toBe(0);
  expect(usage.fileBytes).toBe(usage.bytesUsed + 64 * usage.volumes);
}

describe('VolumeBlobStore merging small volumes', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const opened: VolumeBlobStore[] = [];
  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('vbs-merge'));
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close().catch(() => undefined);
    await remove();
  });

  it('keeps the volume files and open descriptors within the bound while static documents and overwrites seal hundreds of small volumes', async () => {
    // Default volume size, merge limits and pacing; only the garbage minimum is lowered so that each round of
    // overwrites seals the active volume early, leaving its static documents behind in a small live volume.
    const options: VolumeBlobStoreOptions = { dir, compactGarbageBytesMin: 1, onMaintenanceError: () => undefined };
    const store = await VolumeBlobStore.open(options);
    opened.push(store);
    const statics: string[] = [];
    const rounds = 200;
    for (let round = 0; round < rounds; round++) {
      const fresh = Array.from({ length: 6 }, (_, i) => blobIdFor(`s${round}x`, i));
      const scratch = Array.from({ length: 6 }, (_, i) => blobIdFor(`t${round}x`, i));
      await Promise.all([...fresh, ...scratch].map((id) => store.put(headerFor(id), payloadFor(id))));
      await Promise.all(scratch.map((id) => store.delete(id)));
      statics.push(...fresh);
    }
    // Each round sealed a volume: without merges there would be one volume (and one descriptor) per round.
    expect(store.stats().rotations).toBeGreaterThanOrEqual(rounds / 2);
    // The bound (README, "Merging"): at most mergeAfterSealedVolumes sealed volumes, since all of them together
    // hold far less than mergeBytesMax, plus the active one.
    const filesMax = 16 + 1;
    await vi.waitFor(
      async () => {
        expect((await volumeFiles(null, dir)).filter((name) => name.endsWith('.vol')).length).toBeLessThanOrEqual(filesMax);
        expect(await openFdsUnder(dir)).toBeLessThanOrEqual(filesMax);
      },
      { timeout: 120_000, interval: 100 },
    );
    expect(store.stats().merges).toBeGreaterThan(0);
    expect((await store.usage()).volumes).toBeLessThanOrEqual(filesMax);
    for (const id of statics) expect((await store.get(id)).data.equals(payloadFor(id))).toBe(true);
    await store.close();
    const reopened = await VolumeBlobStore.open({ ...options, autoCompact: false });
    opened.push(reopened);
    expect(reopened.stats().recovery.checkpoint).toBe('loaded');
    const ledger = newLedger();
    for (const id of statics) ledger.put.add(id);
    await checkAfterCrash(reopened, ledger);
  }, 240_000);

  it('reads merges at no more than compactBytesPerSecMax in the background', async () => {
    const first = await VolumeBlobStore.open({ dir, volumeBytesMax: 32 * KIB, autoCompact: false });
    for (let n = 0; n < 120; n++) {
      const id = blobIdFor('r', n);
      await first.put(headerFor(id), payloadFor(id));
    }
    const { fileBytes, volumes } = await first.usage();
    expect(volumes).toBeGreaterThan(4);
    await first.close();
    const sleepsMs: number[] = [];
    let nowMs = 1_700_000_000_000;
    // Time moves only by sleeping, and every sleep is recorded, so the rate can be checked.
    const clock = {
      nowMs: () => nowMs,
      sleep: async (ms: number) => {
        sleepsMs.push(ms);
        nowMs += ms;
      },
    };
    const rate = 256 * KIB;
    const store = await VolumeBlobStore.open({
      dir,
      clock,
      volumeBytesMax: 32 * KIB,
      compactBytesPerSecMax: rate,
      mergeAfterSealedVolumes: 1,
      mergeBytesMax: 4 * 1024 * KIB,
    });
    opened.push(store);
    // Opened with more sealed volumes than the limit: the background merges them without any write.
    await vi.waitFor(() => expect(store.stats()).toMatchObject({ volumes: 2, mergedVolumes: volumes - 2 }), {
      timeout: 60_000,
      interval: 20,
    });
    // Runs after the merges in the maintenance chain.
    await store.checkpoint();
    // Every sealed volume was read once (the merge takes them all): at least that much time was slept, less one
    // needle's worth of the last pacing step; the active volume was not read.
    const pacedMs = sleepsMs.reduce((a, b) => a + b, 0);
    expect(pacedMs).toBeGreaterThanOrEqual(((fileBytes - 32 * KIB - 64 * volumes - 48 * KIB) / rate) * 1000);
    expect(pacedMs).toBeLessThanOrEqual((fileBytes / rate) * 1000);
  }, 120_000);
});

// ---- power loss and races, on the fault-injecting file system ------------------------------------------------

function powerLossOptions(fs: PowerLossFs): VolumeBlobStoreOptions {
  return {
    dir: DIR,
    fs,
    // Small volumes fill after a few needles; nothing happens in the background: the test calls merge() itself.
    volumeBytesMax: 12 * KIB,
    autoCompact: false,
    mergeAfterSealedVolumes: 1,
    mergeBytesMax: 8 * 1024 * KIB,
    onMaintenanceError: () => undefined,
  };
}

/**
 * The same history every time, spread over many volumes: puts, deletes of needles a few volumes back (tombstones
 * in one source hiding needles in another), and deletes of old needles after more volumes were filled.
 */
async function writeHistory(store: VolumeBlobStore, ledger: Ledger): Promise<void> {
  const del = async (id: string): Promise<void> => {
    ledger.deleting.add(id);
    expect(await store.delete(id)).toBe(true);
    ledger.deleted.add(id);
  };
  for (let n = 0; n < 60; n++) {
    const id = blobIdFor('h', n);
    await store.put(headerFor(id), payloadFor(id));
    ledger.put.add(id);
    if (n % 4 === 3) await del(blobIdFor('h', n - 9 < 0 ? n - 3 : n - 9));
  }
  for (let n = 1; n < 60; n += 8) if (!ledger.deleted.has(blobIdFor('h', n))) await del(blobIdFor('h', n));
}

describe('VolumeBlobStore merge after a power loss', () => {
  it('loses nothing, brings no delete back and leaves no garbage or file behind when the power goes at any step of a merge', async () => {
    // A first run without a crash counts the operations of the merge.
    const dry = new PowerLossFs(7);
    const dryStore = await VolumeBlobStore.open(powerLossOptions(dry));
    await writeHistory(dryStore, newLedger());
    const volumesBefore = dryStore.stats().volumes;
    expect(volumesBefore).toBeGreaterThan(6);
    const mergeStartOps = dry.ops;
    const outcomes = await dryStore.merge();
    const mergeOps = dry.ops - mergeStartOps;
    expect(outcomes.length).toBeGreaterThan(0);
    expect(dryStore.stats().volumes).toBe(2);
    await dryStore.close();

    const crashedAt: string[] = [];
    for (let step = 1; step <= mergeOps; step++) {
      const fs = new PowerLossFs(7);
      const ledger = newLedger();
      const store = await VolumeBlobStore.open(powerLossOptions(fs));
      await writeHistory(store, ledger);
      fs.crashAtOp = fs.ops + step;
      await store.merge().catch(() => undefined);
      await store.close().catch(() => undefined);
      fs.powerLoss();
      const note = `${fs.crashNote?.op ?? '?'} [${(fs.crashNote?.files ?? []).filter((f) => /\.(merge|vol)$/.test(f)).length} files]`;
      crashedAt.push(fs.crashNote?.op ?? '?');
      let rebooted = fs.afterPowerLoss(step);
      try {
        let recovered = await VolumeBlobStore.open({ ...powerLossOptions(rebooted), autoCompact: false });
        try {
          await checkAfterCrash(recovered, ledger);
          expect(await volumeFiles(rebooted, DIR)).not.toContainEqual(expect.stringMatching(/\.(compact|new|merge)$/));
          await expectNoGarbageLeft(recovered);
          await checkAfterCrash(recovered, ledger);
        } finally {
          await recovered.close();
        }
        // Without the checkpoint the index is rebuilt from the needles alone: every tombstone the merge and the
        // compactions dropped must have been droppable.
        await rebooted.unlink(path.join(DIR, VOLUME_STORE_CHECKPOINT_FILE));
        await rebooted.fsyncDir(DIR);
        rebooted = rebooted.afterPowerLoss(step + 1);
        recovered = await VolumeBlobStore.open({ ...powerLossOptions(rebooted), autoCompact: false });
        try {
          expect(recovered.stats().recovery.fullRebuild).toBe(true);
          await checkAfterCrash(recovered, ledger);
        } finally {
          await recovered.close();
        }
      } catch (err) {
        throw new Error(`power lost at step ${step} of ${mergeOps} (${note}): ${(err as Error).message}`);
      }
    }
    // The crash points covered the copy, its fsync, the commit (rename) and the removal of the sources.
    const ops = crashedAt.join(' ');
    for (const op of ['write', 'fsync', 'rename', 'fsyncDir', 'unlink']) expect(ops).toContain(op);
  }, 600_000);
});

describe('VolumeBlobStore merge racing reads, deletes and repairs', () => {
  it('answers every read, delete and repair put rightly during a merge, and deletes made during it stay deleted through compaction and a rebuild', async () => {
    let fs = new PowerLossFs(11);
    const ledger = newLedger();
    const store = await VolumeBlobStore.open(powerLossOptions(fs));
    await writeHistory(store, ledger);
    const live = [...ledger.put].filter((id) => !ledger.deleted.has(id));
    // One blob's payload rots on disk: the healer's repair (a put of the good bytes) must win over the merge.
    const rotten = live.find((id) => payloadFor(id).length > 100) as string;
    const where = store.locate(rotten);
    expect(where).not.toBeNull();
    const bytes = fs.fileBytes(where?.file ?? '') as Buffer;
    const at = (where?.offset ?? 0) + (where?.needleBytes ?? 0) - 12;
    bytes[at] = (bytes[at] as number) ^ 0xff;
    const activeBefore = store.stats().activeVolume;

    const merging = store.merge();
    const toDelete = live.filter((id, i) => i % 3 === 0 && id !== rotten);
    const toRead = live.filter((id, i) => i % 3 !== 0 && id !== rotten);
    const repair = (async () => {
      await expect(store.get(rotten)).rejects.toMatchObject({ code: 'BLOB_CORRUPT' });
      await store.put(headerFor(rotten), payloadFor(rotten));
    })();
    const deletes = toDelete.map(async (id) => {
      ledger.deleting.add(id);
      expect(await store.delete(id)).toBe(true);
      ledger.deleted.add(id);
    });
    const reads = toRead.map(async (id) => {
      for (let i = 0; i < 3; i++) {
        const { data } = await store.get(id);
        expect(data.equals(payloadFor(id))).toBe(true);
        expect((await store.stat(id))?.size).toBe(payloadFor(id).length);
      }
    });
    const [outcomes] = await Promise.all([merging, repair, ...deletes, ...reads]);
    expect(outcomes.some((o) => o.kind === 'merged')).toBe(true);
    expect((await store.get(rotten)).data.equals(payloadFor(rotten))).toBe(true);
    for (const id of toDelete) expect(await store.stat(id)).toBeNull();
    await checkAfterCrash(store, ledger);

    // The deletes' tombstones name volumes the merge absorbed. Compacting only the volume that holds them (after
    // sealing it) must keep those whose needles the merge may have copied: a rebuild then still hides them.
    await store.compact({ sealActive: true, volume: activeBefore });
    await store.close();
    await fs.unlink(path.join(DIR, VOLUME_STORE_CHECKPOINT_FILE));
    await fs.fsyncDir(DIR);
    fs = fs.afterPowerLoss(12);
    const rebuilt = await VolumeBlobStore.open({ ...powerLossOptions(fs), autoCompact: false });
    try {
      expect(rebuilt.stats().recovery.fullRebuild).toBe(true);
      await checkAfterCrash(rebuilt, ledger);
      expect((await rebuilt.get(rotten)).data.equals(payloadFor(rotten))).toBe(true);
      await expectNoGarbageLeft(rebuilt);
      await checkAfterCrash(rebuilt, ledger);
    } finally {
      await rebuilt.close();
    }
  }, 120_000);
});
