/**
 * Limits and the write and read paths' promises: a full disk gives DISK_FULL and nothing half-written, a payload
 * over the limit gives BLOB_TOO_LARGE, concurrent puts share fsyncs and are answered only after theirs, and a get
 * is one positioned read.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VolumeBlobStore, type VolumeBlobStoreOptions } from '../../internal/blobstore/volume/volume-blob-store.js';
import type { VolumeFile, VolumeFs } from '../../internal/blobstore/volume/volume-fs.js';
import { nodeVolumeFs } from '../../internal/blobstore/volume/volume-fs.js';
import { expectCode, header, makeTempDir, payload } from '../contracts/blob-fixtures.js';

describe('VolumeBlobStore limits, group commit and reads', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const opened: VolumeBlobStore[] = [];
  const openStore = async (options: Partial<VolumeBlobStoreOptions> = {}): Promise<VolumeBlobStore> => {
    const store = await VolumeBlobStore.open({ dir, ...options });
    opened.push(store);
    return store;
  };

  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('vbs-limits'));
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await remove();
  });

  it('fails a put with DISK_FULL at capacity, leaves nothing behind, and has room again after a delete', async () => {
    const store = await openStore({ capacityBytes: 4000 });
    await store.put(header('D1.hot-0'), payload(2500, 1));
    const before = await store.usage();
    await expectCode(store.put(header('D1.hot-1'), payload(2500, 2)), 'DISK_FULL');
    expect((await store.list(null, 10)).map((b) => b.id)).toEqual(['D1.hot-0']);
    expect(await store.usage()).toEqual(before);
    expect(before.bytesFree).toBe(4000 - before.fileBytes);
    await store.delete('D1.hot-0');
    // The deleted bytes count as free at once; the put that needs them reclaims them by compaction.
    expect((await store.usage()).bytesFree).toBeGreaterThanOrEqual(before.bytesFree + 2500);
    await store.put(header('D1.hot-1'), payload(2500, 2));
    expect((await store.get('D1.hot-1')).data.equals(payload(2500, 2))).toBe(true);
    expect((await store.usage()).fileBytes).toBeLessThanOrEqual(4000);
  });

  it('does not let concurrent puts overshoot the capacity together', async () => {
    // Each needle takes 2,120 bytes: four fit behind the superblock, five do not.
    const store = await openStore({ capacityBytes: 9_500 });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.put(header(`D2.hot-${i}`), payload(2000, i))));
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(4);
    expect((await store.usage()).fileBytes).toBeLessThanOrEqual(9_500);
  });

  it('answers DISK_FULL when the file system runs out of space, and appends cleanly once it has room', async () => {
    let full = false;
    const fs: VolumeFs = {
      ...nodeVolumeFs,
      async open(file, mode) {
        const real = await nodeVolumeFs.open(file, mode);
        const wrapped: VolumeFile = {
          read: (...args) => real.read(...args),
          writev: async (buffers, position) => {
            // Volumes are created under a temp name (`.vol.new`) and keep that handle after the rename.
            if (full && /\.vol(\.new)?$/.test(file)) {
              // Half the batch reaches the disk before the device fills up.
              await real.writev([Buffer.concat(buffers).subarray(0, 100)], position);
              throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
            }
            return real.writev(buffers, position);
          },
          datasync: () => real.datasync(),
          truncate: (length) => real.truncate(length),
          size: () => real.size(),
          close: () => real.close(),
        };
        return wrapped;
      },
    };
    const store = await openStore({ fs });
    await store.put(header('D3.hot-0'), payload(1000, 1));
    full = true;
    await expectCode(store.put(header('D3.hot-1'), payload(1000, 2)), 'DISK_FULL');
    full = false;
    await store.put(header('D3.hot-2'), payload(1000, 3));
    await store.close();
    const reopened = await openStore();
    expect(reopened.stats().recovery.tornBytesTruncated).toBe(0);
    expect((await reopened.list(null, 10)).map((b) => b.id)).toEqual(['D3.hot-0', 'D3.hot-2']);
    expect((await reopened.get('D3.hot-2')).data.equals(payload(1000, 3))).toBe(true);
  });

  it('seals a volume whose fsync failed and keeps every acknowledged blob', async () => {
    let failNextFsync = false;
    const fs: VolumeFs = {
      ...nodeVolumeFs,
      async open(file, mode) {
        const real = await nodeVolumeFs.open(file, mode);
        return {
          read: (...args) => real.read(...args),
          writev: (buffers, position) => real.writev(buffers, position),
          datasync: async () => {
            if (failNextFsync) {
              failNextFsync = false;
              throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
            }
            return real.datasync();
          },
          truncate: (length) => real.truncate(length),
          size: () => real.size(),
          close: () => real.close(),
        };
      },
    };
    const store = await openStore({ fs });
    await store.put(header('F1.hot-0'), payload(1000, 1));
    failNextFsync = true;
    await expect(store.put(header('F1.hot-1'), payload(1000, 2))).rejects.toThrow(/EIO/);
    expect(await store.stat('F1.hot-1')).toBeNull();
    // After a failed fsync nothing more is appended to that volume: the next put opens a new one.
    await store.put(header('F1.hot-2'), payload(1000, 3));
    expect(store.locate('F1.hot-2')?.volume).toBe(2);
    await store.close();
    const reopened = await openStore();
    for (const [i, seed] of [[0, 1], [2, 3]] as const) {
      expect((await reopened.get(`F1.hot-${i}`)).data.equals(payload(1000, seed))).toBe(true);
    }
  });

  it('refuses a payload over the configured blobBytesMax with BLOB_TOO_LARGE', async () => {
    const store = await openStore({ blobBytesMax: 1000 });
    await expectCode(store.put(header('T1.hot-0'), payload(1001)), 'BLOB_TOO_LARGE');
    await store.put(header('T1.hot-1'), payload(1000));
    expect((await store.list(null, 10)).map((b) => b.id)).toEqual(['T1.hot-1']);
  });

  it('makes concurrent puts durable with one fsync per batch, each answered only after its fsync', async () => {
    let fsyncs = 0;
    const answeredBeforeFsync: string[] = [];
    const durable = new Set<string>();
    const pending = new Set<string>();
    const fs: VolumeFs = {
      ...nodeVolumeFs,
      async open(file, mode) {
        const real = await nodeVolumeFs.open(file, mode);
        return {
          read: (...args) => real.read(...args),
          writev: (buffers, position) => real.writev(buffers, position),
          datasync: async () => {
            const covered = [...pending];
            await real.datasync();
            fsyncs += 1;
            for (const id of covered) durable.add(id);
          },
          truncate: (length) => real.truncate(length),
          size: () => real.size(),
          close: () => real.close(),
        };
      },
    };
    const store = await openStore({ fs });
    const fsyncsBefore = fsyncs;
    await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const id = `G1.shard-${i}`;
        pending.add(id);
        await store.put(header(id), payload(1024, i));
        if (!durable.has(id)) answeredBeforeFsync.push(id);
      }),
    );
    expect(answeredBeforeFsync).toEqual([]);
    expect(fsyncs - fsyncsBefore).toBeLessThanOrEqual(4);
    expect(store.stats().batchedAppends / store.stats().batches).toBeGreaterThanOrEqual(16);
  });

  it('reads a blob with exactly one positioned read per get, small or large', async () => {
    const store = await openStore();
    const sizes = [0, 1024, 64 * 1024, 5 * 1024 * 1024];
    for (const [i, size] of sizes.entries()) await store.put(header(`G2.hot-${i}`), payload(size, i));
    const before = store.stats();
    for (let round = 0; round < 5; round++) {
      for (const [i, size] of sizes.entries()) expect((await store.get(`G2.hot-${i}`)).data.equals(payload(size, i))).toBe(true);
    }
    const after = store.stats();
    expect(after.gets - before.gets).toBe(20);
    expect(after.getReads - before.getReads).toBe(20);
  });

  it('refuses calls after close with NODE_UNAVAILABLE, and close waits for a put in flight', async () => {
    const store = await VolumeBlobStore.open({ dir });
    const put = store.put(header('X2.hot-0'), payload(1024 * 1024));
    await store.close();
    await put;
    await expectCode(store.get('X2.hot-0'), 'NODE_UNAVAILABLE');
    await expectCode(store.put(header('X2.hot-1'), payload(10)), 'NODE_UNAVAILABLE');
    await expectCode(store.list(null, 1), 'NODE_UNAVAILABLE');
    const reopened = await openStore();
    expect(await reopened.verify('X2.hot-0')).toBe('ok');
    expect(reopened.stats().recovery).toMatchObject({ checkpoint: 'loaded', bytesScanned: 0 });
    expect((await readdir(dir)).sort()).toEqual(['index.ckpt', 'volumes']);
    expect(await readdir(path.join(dir, 'volumes'))).toEqual(['00000001.vol']);
  });
});
