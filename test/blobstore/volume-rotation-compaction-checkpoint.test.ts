/**
 * Volume rotation, compaction and index checkpoints each happen here, on a real directory, and every blob is read
 * back and compared after each of them, after a reopen, and after a rebuild of the index from the volumes alone.
 */
import { open as openFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VolumeBlobStore, VOLUME_STORE_CHECKPOINT_FILE, type VolumeBlobStoreOptions } from '../../internal/blobstore/volume/volume-blob-store.js';
import { expectCode, header, makeTempDir, payload } from '../contracts/blob-fixtures.js';
import { waitUntil } from '../helpers/wait.js';

const id = (i: number): string => `R${String(i).padStart(4, '0')}.shard-${i % 6}`;

describe('VolumeBlobStore rotation, compaction and checkpoints', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const opened: VolumeBlobStore[] = [];
  const openStore = async (options: Partial<VolumeBlobStoreOptions> = {}): Promise<VolumeBlobStore> => {
    const store = await VolumeBlobStore.open({ dir, volumeBytesMax: 16 * 1024, autoCompact: false, ...options });
    opened.push(store);
    return store;
  };
  /** Every blob in `live` reads back with its bytes; every id in `gone` is absent. */
  const expectBlobs = async (store: VolumeBlobStore, live: number[], gone: number[] = []): Promise<void> => {
    for (const i of live) expect((await store.get(id(i))).data.equals(payload(700 + i, i)), id(i)).toBe(true);
    for (const i of gone) expect(await store.stat(id(i)), id(i)).toBeNull();
    expect((await store.list(null, 1000)).map((b) => b.id)).toEqual(live.map(id).sort());
  };
  const volumeFiles = async (): Promise<string[]> => (await readdir(path.join(dir, 'volumes'))).sort();

  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('vbs-maint'));
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await remove();
  });

  it('rotates to a new volume when the active one is full and reads from every volume, also after a reopen', async () => {
    const store = await openStore();
    const all = Array.from({ length: 60 }, (_, i) => i);
    for (const i of all) await store.put(header(id(i)), payload(700 + i, i));
    const stats = store.stats();
    expect(stats.rotations).toBeGreaterThanOrEqual(3);
    expect(await volumeFiles()).toHaveLength(stats.volumes);
    for (const file of await volumeFiles()) {
      // A volume may pass its limit by one needle at most.
      expect((await stat(path.join(dir, 'volumes', file))).size).toBeLessThan(16 * 1024 + 2000);
    }
    await expectBlobs(store, all);
    await store.close();
    const reopened = await openStore();
    expect(reopened.stats().recovery).toMatchObject({ checkpoint: 'loaded', bytesScanned: 0 });
    await expectBlobs(reopened, all);
  });

  it('compacts volumes with garbage: gives the bytes back, keeps live blobs, and deleted ones stay deleted', async () => {
    const store = await openStore();
    const all = Array.from({ length: 80 }, (_, i) => i);
    for (const i of all) await store.put(header(id(i)), payload(700 + i, i));
    const deleted = all.filter((i) => i % 3 !== 0);
    for (const i of deleted) expect(await store.delete(id(i))).toBe(true);
    const live = all.filter((i) => i % 3 === 0);
    const before = await store.usage();
    expect(before.garbageBytes).toBeGreaterThan(0);
    // Deleted bytes count as free at once, before any compaction.
    expect(before.bytesUsed).toBe(live.reduce((sum, i) => sum + (store.locate(id(i))?.needleBytes ?? 0), 0));

    const outcomes = await store.compact({ sealActive: true });
    expect(outcomes.length).toBeGreaterThan(0);
    const after = await store.usage();
    expect(after.fileBytes).toBeLessThan(before.fileBytes - before.garbageBytes / 2);
    expect(after.bytesUsed).toBe(before.bytesUsed);
    expect(await volumeFiles()).not.toContainEqual(expect.stringMatching(/\.compact$/));
    await expectBlobs(store, live, deleted);
    await store.close();

    const reopened = await openStore();
    expect(reopened.stats().recovery.checkpoint).toBe('loaded');
    await expectBlobs(reopened, live, deleted);
    await reopened.close();
    // The volumes alone must say the same: no deleted blob comes back, no live one is lost or doubled.
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    const rebuilt = await openStore();
    expect(rebuilt.stats().recovery).toMatchObject({ checkpoint: 'absent', fullRebuild: true });
    await expectBlobs(rebuilt, live, deleted);
  });

  it('compacts in the background once garbage passes the threshold', async () => {
    const store = await openStore({ autoCompact: true, compactGarbageRatioMin: 0.5, compactGarbageBytesMin: 1 });
    const all = Array.from({ length: 60 }, (_, i) => i);
    for (const i of all) await store.put(header(id(i)), payload(700 + i, i));
    const deleted = all.filter((i) => i < 40);
    for (const i of deleted) await store.delete(id(i));
    for (let i = 60; i < 80; i++) await store.put(header(id(i)), payload(700 + i, i));
    await waitUntil('a background compaction', () => store.stats().compactions > 0);
    const live = Array.from({ length: 40 }, (_, i) => i + 40);
    await expectBlobs(store, live, deleted);
  });

  it('keeps a tombstone while the volume it deleted from is uncompacted, and drops it after', async () => {
    const store = await openStore();
    await store.put(header(id(1)), payload(701, 1));
    for (let i = 2; i < 40; i++) await store.put(header(id(i)), payload(700 + i, i));
    const victim = store.locate(id(1))?.volume as number;
    expect(store.stats().activeVolume).toBeGreaterThan(victim);
    await store.delete(id(1));
    const tombstoneVolume = store.stats().activeVolume;
    for (let i = 40; i < 60; i++) await store.put(header(id(i)), payload(700 + i, i));
    const [kept] = await store.compact({ sealActive: true, volume: tombstoneVolume });
    expect(kept?.kind === 'swapped' && kept.keptTombstoneBytes > 0).toBe(true);
    expect(store.stats().compactions).toBe(1);
    const live = Array.from({ length: 58 }, (_, i) => i + 2);
    // Only the tombstone's volume was compacted: the tombstone must have stayed, or the rebuild resurrects id(1).
    await store.close();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    let reopened = await openStore();
    await expectBlobs(reopened, live, [1]);
    // Compact the victim's volume, then the tombstone's again: now the tombstone can go, and still nothing returns.
    const first = await reopened.compact({ volume: victim });
    expect(first).toMatchObject([{ kind: 'swapped' }]);
    const second = await reopened.compact({ volume: tombstoneVolume });
    expect(second[0]).toMatchObject({ keptTombstoneBytes: 0 });
    await reopened.close();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    reopened = await openStore();
    await expectBlobs(reopened, live, [1]);
  });

  it('checkpoints the index, and a restart without close scans only what came after the checkpoint', async () => {
    const first = await openStore({ checkpointEveryOps: 25, volumeBytesMax: 1024 * 1024 });
    const all = Array.from({ length: 110 }, (_, i) => i);
    for (const i of all) await first.put(header(id(i)), payload(700 + i, i));
    await first.delete(id(5));
    await waitUntil('four index checkpoints', () => first.stats().checkpoints >= 4);
    // No close: the second instance sees only what is on disk, as after a crash.
    const second = await VolumeBlobStore.open({ dir, autoCompact: false });
    opened.push(second);
    const recovery = second.stats().recovery;
    expect(recovery.checkpoint).toBe('loaded');
    expect(recovery.needlesApplied).toBeLessThan(30);
    expect(recovery.bytesScanned).toBeLessThan((await second.usage()).fileBytes / 3);
    await expectBlobs(second, all.filter((i) => i !== 5), [5]);
  });

  it('rebuilds the index from the volumes when the checkpoint is damaged', async () => {
    let store = await openStore();
    const all = Array.from({ length: 40 }, (_, i) => i);
    for (const i of all) await store.put(header(id(i)), payload(700 + i, i));
    await store.delete(id(3));
    await store.close();
    const file = await openFile(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE), 'r+');
    await file.write(Buffer.from([0x55]), 0, 1, 100);
    await file.close();
    store = await openStore();
    expect(store.stats().recovery).toMatchObject({ fullRebuild: true, checkpoint: expect.stringMatching(/CRC/) });
    await expectBlobs(store, all.filter((i) => i !== 3), [3]);
  });

  it('cuts a torn tail off on reopen and appends after it', async () => {
    let store = await openStore({ volumeBytesMax: 1024 * 1024 });
    for (let i = 0; i < 5; i++) await store.put(header(id(i)), payload(700 + i, i));
    const where = store.locate(id(4));
    await store.close();
    // The start of a needle's bytes, as a crash in the middle of an append leaves them.
    const volumePath = where?.file as string;
    const handle = await openFile(volumePath, 'r+');
    const { size } = await handle.stat();
    const torn = Buffer.alloc(300);
    await handle.read(torn, 0, 300, where?.offset as number);
    await handle.write(torn, 0, 300, size);
    await handle.close();
    store = await openStore({ volumeBytesMax: 1024 * 1024 });
    expect(store.stats().recovery.tornBytesTruncated).toBe(300);
    expect((await stat(volumePath)).size).toBe(size);
    await store.put(header(id(5)), payload(705, 5));
    await store.close();
    store = await openStore({ volumeBytesMax: 1024 * 1024 });
    expect(store.stats().recovery.tornBytesTruncated).toBe(0);
    await expectBlobs(store, [0, 1, 2, 3, 4, 5]);
  });

  it('ignores files it did not write and deletes the temp files of interrupted work on open', async () => {
    let store = await openStore();
    await store.put(header(id(1)), payload(701, 1));
    await store.close();
    await writeFile(path.join(dir, 'volumes', 'notes.txt'), 'hello');
    await writeFile(path.join(dir, 'volumes', '00000001.vol.compact'), 'half a compaction');
    await writeFile(path.join(dir, 'volumes', '00000009.vol.new'), 'half a volume');
    store = await openStore();
    await expectBlobs(store, [1]);
    expect(await volumeFiles()).toEqual(['00000001.vol', 'notes.txt']);
    await expectCode(store.get(id(2)), 'BLOB_NOT_FOUND');
  });
});
