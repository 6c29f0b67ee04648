import { mkdir, readFile, readdir, truncate, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blobFilePath, FileBlobStore } from '../../internal/blobstore/file-blob-store.js';
import { systemClock, type Clock } from '../../internal/core/clock.js';
import { runBlobStoreContract } from '../contracts/blob-store.contract.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { waitUntil } from '../helpers/wait.js';
import { INVALID_IDS, expectCode, flipByteOnDisk, header, makeTempDir, payload, sha256 } from '../contracts/blob-fixtures.js';

runBlobStoreContract('FileBlobStore', async () => {
  const tmp = await makeTempDir('fbs');
  const store = await FileBlobStore.open({ dir: tmp.dir });
  return {
    store,
    dir: tmp.dir,
    cleanup: async () => {
      await store.close();
      await tmp.remove();
    },
  };
});

/** A clock that never moves by itself and counts the sleeps begun on it. */
class SleepCountingClock extends ManualClock {
  sleeps = 0;

  override sleep(ms: number): Promise<void> {
    this.sleeps++;
    return super.sleep(ms);
  }
}

/** Time moves only by sleeping; sleeps resolve at once and are recorded, so rate limits can be measured exactly. */
class RecordingClock implements Clock {
  readonly sleepsMs: number[] = [];
  constructor(private currentMs = 1_700_000_000_000) {}
  nowMs(): number {
    return this.currentMs;
  }
  async sleep(ms: number): Promise<void> {
    this.sleepsMs.push(ms);
    this.currentMs += ms;
  }
}

describe('FileBlobStore', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const open: FileBlobStore[] = [];
  const openStore = async (options: { capacityBytes?: number; clock?: Clock } = {}): Promise<FileBlobStore> => {
    const store = await FileBlobStore.open({ dir, ...options });
    open.push(store);
    return store;
  };

  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('fbs'));
  });
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    await remove();
  });

  it('lays a blob file out as documented in README.md', async () => {
    const store = await openStore({ clock: new RecordingClock(1234) });
    const data = payload(300);
    await store.put(header('L1.hot-0', { key: 'k', meta: '{}' }), data);
    const file = await readFile(blobFilePath(dir, 'L1.hot-0'));
    expect(path.dirname(blobFilePath(dir, 'L1.hot-0'))).toBe(
      path.join(dir, 'blobs', sha256(Buffer.from('L1.hot-0')).slice(0, 2)),
    );
    expect(file.subarray(0, 4).toString('ascii')).toBe('STRB');
    expect(file.readUInt16BE(4)).toBe(1);
    expect(file.readUInt16BE(6)).toBe(0);
    const headerBytes = file.readUInt32BE(8);
    const json = file.subarray(16, 16 + headerBytes);
    expect(file.readUInt32BE(12)).toBe(crc32(json));
    expect(JSON.parse(json.toString('utf8'))).toEqual({
      id: 'L1.hot-0',
      key: 'k',
      writeId: 'L1',
      part: 'hot-0',
      meta: '{}',
      size: 300,
      checksum: sha256(data),
      createdAtMs: 1234,
    });
    expect(file.subarray(16 + headerBytes).equals(data)).toBe(true);
    expect((await store.usage()).bytesUsed).toBe(file.length);
  });

  it('detects a corrupted payload byte on read, marks the blob corrupt in the inventory', async () => {
    const store = await openStore();
    await store.put(header('C1.hot-0'), payload(4096));
    await flipByteOnDisk(dir, 'C1.hot-0', 100);
    await expectCode(store.get('C1.hot-0'), 'BLOB_CORRUPT');
    expect((await store.list(null, 10))[0]).toMatchObject({ id: 'C1.hot-0', corrupt: true });
    expect((await store.stat('C1.hot-0'))?.corrupt).toBe(true);
  });

  it('detects a corrupted payload byte with verify', async () => {
    const store = await openStore();
    await store.put(header('C2.hot-0'), payload(3 * 1024 * 1024));
    expect(await store.verify('C2.hot-0')).toBe('ok');
    await flipByteOnDisk(dir, 'C2.hot-0', 1);
    expect(await store.verify('C2.hot-0')).toBe('corrupt');
    expect((await store.stat('C2.hot-0'))?.corrupt).toBe(true);
  });

  it('detects corrupted bytes with scrub and reports exactly the corrupt ids', async () => {
    const store = await openStore();
    for (let i = 0; i < 6; i++) await store.put(header(`C3.hot-${i}`), payload(2000, i));
    await flipByteOnDisk(dir, 'C3.hot-1', 5);
    await flipByteOnDisk(dir, 'C3.hot-4', 1999);
    const report = await store.scrub({ bytesPerSecMax: 1e12 });
    expect(report).toMatchObject({ corrupt: ['C3.hot-1', 'C3.hot-4'], blobsChecked: 6, aborted: false });
    expect((await store.list(null, 10)).filter((b) => b.corrupt).map((b) => b.id)).toEqual(['C3.hot-1', 'C3.hot-4']);
  });

  it('detects a corrupted header byte (CRC-32) and a header that is not JSON after reopen', async () => {
    let store = await openStore();
    await store.put(header('C4.hot-0', { key: 'abcdef' }), payload(100));
    await store.put(header('C4.hot-1'), payload(100));
    await store.close();
    await flipByteOnDisk(dir, 'C4.hot-0', 100 + 10); // inside the header JSON
    await writeFile(blobFilePath(dir, 'C4.hot-1'), Buffer.from('garbage that is not a blob file'));
    store = await openStore();
    const listed = await store.list(null, 10);
    expect(listed.map((b) => [b.id, b.corrupt])).toEqual([
      ['C4.hot-0', true],
      ['C4.hot-1', true],
    ]);
    await expectCode(store.get('C4.hot-0'), 'BLOB_CORRUPT');
    expect(await store.verify('C4.hot-1')).toBe('corrupt');
  });

  it('treats a truncated blob file as corrupt', async () => {
    let store = await openStore();
    await store.put(header('C5.hot-0'), payload(1000));
    await store.close();
    await truncate(blobFilePath(dir, 'C5.hot-0'), 500);
    store = await openStore();
    expect((await store.stat('C5.hot-0'))?.corrupt).toBe(true);
    await expectCode(store.get('C5.hot-0'), 'BLOB_CORRUPT');
  });

  it('replaces a corrupt copy when the blob is put again, with the same or different bytes', async () => {
    const store = await openStore();
    await store.put(header('C6.hot-0'), payload(500, 1));
    await store.put(header('C6.hot-1'), payload(500, 1));
    await flipByteOnDisk(dir, 'C6.hot-0');
    await flipByteOnDisk(dir, 'C6.hot-1');
    // Not yet known to be corrupt: the put checks the stored copy before deciding between retry and conflict.
    await store.put(header('C6.hot-0'), payload(500, 1));
    expect(await store.verify('C6.hot-0')).toBe('ok');
    expect((await store.get('C6.hot-0')).data.equals(payload(500, 1))).toBe(true);
    expect(await store.verify('C6.hot-1')).toBe('corrupt');
    await store.put(header('C6.hot-1'), payload(500, 2));
    expect((await store.get('C6.hot-1')).data.equals(payload(500, 2))).toBe(true);
    expect((await store.stat('C6.hot-1'))?.corrupt).toBeUndefined();
  });

  it('ignores and removes a temp file left by a crash mid-put on reopen', async () => {
    let store = await openStore();
    await store.put(header('T1.hot-0'), payload(100));
    await store.close();
    // A crash after writing part of a temp file and before its rename.
    await writeFile(path.join(dir, 'tmp', 'T1.hot-1.0123456789abcdef.tmp'), payload(37));
    store = await openStore();
    expect((await store.list(null, 10)).map((b) => b.id)).toEqual(['T1.hot-0']);
    await expectCode(store.get('T1.hot-1'), 'BLOB_NOT_FOUND');
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
    // The interrupted put can be retried.
    await store.put(header('T1.hot-1'), payload(100, 2));
    expect((await store.get('T1.hot-1')).data.equals(payload(100, 2))).toBe(true);
  });

  it('keeps every blob, header and byte across a reopen without close (crash)', async () => {
    const clock = new RecordingClock(42);
    const first = await FileBlobStore.open({ dir, clock });
    const infos = [];
    for (let i = 0; i < 40; i++) infos.push(await first.put(header(`R${i}.shard-${i % 6}`), payload(i * 37, i)));
    await first.delete('R7.shard-1');
    const usage = await first.usage();
    // No close: the second instance sees only what is on disk.
    const second = await openStore();
    const expected = infos.filter((i) => i.id !== 'R7.shard-1').sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(await second.list(null, 100)).toEqual(expected);
    // bytesFree comes from the (shared) file system and moves on its own.
    expect(await second.usage()).toMatchObject({ blobs: usage.blobs, bytesUsed: usage.bytesUsed, payloadBytes: usage.payloadBytes });
    for (let i = 0; i < 40; i += 9) expect((await second.get(`R${i}.shard-${i % 6}`)).data.equals(payload(i * 37, i))).toBe(true);
    await first.close();
  });

  it('fails a put with DISK_FULL when capacity would be exceeded, leaves nothing behind, and has room after a delete', async () => {
    const store = await openStore({ capacityBytes: 4000 });
    await store.put(header('D1.hot-0'), payload(2500, 1));
    await expectCode(store.put(header('D1.hot-1'), payload(2500, 2)), 'DISK_FULL');
    expect((await store.list(null, 10)).map((b) => b.id)).toEqual(['D1.hot-0']);
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
    const usage = await store.usage();
    expect(usage.bytesFree).toBe(4000 - usage.bytesUsed);
    await store.delete('D1.hot-0');
    await store.put(header('D1.hot-1'), payload(2500, 2));
  });

  it('does not let concurrent puts overshoot the capacity together', async () => {
    const store = await openStore({ capacityBytes: 10_000 });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => store.put(header(`D2.hot-${i}`), payload(2000, i))),
    );
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(4);
    expect((await store.usage()).bytesUsed).toBeLessThanOrEqual(10_000);
  });

  it('refuses ids with "/" or ".." and creates nothing outside its directory', async () => {
    const inner = path.join(dir, 'store');
    const store = await FileBlobStore.open({ dir: inner });
    open.push(store);
    for (const id of [...INVALID_IDS, '../../outside', 'blobs/../../x']) {
      await expectCode(store.put(header(id), payload(10)), 'INVALID_REQUEST');
    }
    expect((await readdir(dir)).sort()).toEqual(['store']);
    expect(await readdir(path.join(inner, 'tmp'))).toEqual([]);
  });

  it('reports a blob whose file was deleted behind its back as missing', async () => {
    const store = await openStore();
    await store.put(header('M1.hot-0'), payload(10));
    await unlink(blobFilePath(dir, 'M1.hot-0'));
    expect(await store.verify('M1.hot-0')).toBe('missing');
    expect(await store.stat('M1.hot-0')).toBeNull();
  });

  it('ignores files it did not write in its shard directories', async () => {
    let store = await openStore();
    await store.close();
    await mkdir(path.join(dir, 'blobs', '00'), { recursive: true });
    await writeFile(path.join(dir, 'blobs', '00', 'not a blob'), 'x');
    await writeFile(path.join(dir, 'blobs', '00', 'A1.hot-0'), 'in the wrong shard directory');
    await mkdir(path.join(dir, 'blobs', 'zz'));
    store = await openStore();
    expect(await store.list(null, 10)).toEqual([]);
  });

  it('scrubs at no more than bytesPerSecMax', async () => {
    const clock = new RecordingClock();
    const store = await openStore({ clock });
    for (let i = 0; i < 10; i++) await store.put(header(`S1.hot-${i}`), payload(10_000, i));
    const { bytesUsed } = await store.usage();
    const report = await store.scrub({ bytesPerSecMax: 50_000 });
    expect(report.bytesChecked).toBe(bytesUsed);
    // Reading takes no time on this clock, so the pass must have slept for all of bytes / rate.
    const sleptMs = clock.sleepsMs.reduce((a, b) => a + b, 0);
    expect(sleptMs).toBeCloseTo((bytesUsed / 50_000) * 1000, 0);
    expect(Math.max(...clock.sleepsMs)).toBeLessThanOrEqual(250);
  });

  it('stops a scrub when its signal aborts', async () => {
    const controller = new AbortController();
    // Real time, and the signal aborts as soon as the pass first waits for its rate limit (about 5 s of waiting at
    // this rate in all).
    const clock: Clock = {
      nowMs: () => systemClock.nowMs(),
      sleep: (ms) => {
        controller.abort();
        return systemClock.sleep(ms);
      },
    };
    const store = await openStore({ clock });
    for (let i = 0; i < 5; i++) await store.put(header(`S2.hot-${i}`), payload(1000, i));
    const report = await store.scrub({ bytesPerSecMax: 1000, signal: controller.signal });
    expect(report.aborted).toBe(true);
    expect(report.blobsChecked).toBeLessThan(5);
  });

  it('stops a scrub sleeping on a clock that never moves when its signal aborts', async () => {
    const clock = new SleepCountingClock();
    const store = await openStore({ clock });
    await store.put(header('S3.hot-0'), payload(1000));
    await store.put(header('S3.hot-1'), payload(1000));
    const controller = new AbortController();
    const pass = store.scrub({ bytesPerSecMax: 1, signal: controller.signal });
    // A pass that did not stop until its sleep ended would never end: the clock never moves.
    await waitUntil('the scrub to sleep for its rate limit', () => clock.sleeps > 0);
    controller.abort();
    expect(await pass).toMatchObject({ aborted: true, blobsChecked: 1 });
  });

  it('refuses calls after close with NODE_UNAVAILABLE', async () => {
    const store = await FileBlobStore.open({ dir });
    await store.put(header('X1.hot-0'), payload(10));
    await store.close();
    await expectCode(store.get('X1.hot-0'), 'NODE_UNAVAILABLE');
    await expectCode(store.put(header('X1.hot-1'), payload(10)), 'NODE_UNAVAILABLE');
    await expectCode(store.list(null, 1), 'NODE_UNAVAILABLE');
  });

  it('waits for a put in flight before close resolves', async () => {
    const store = await FileBlobStore.open({ dir });
    const put = store.put(header('X2.hot-0'), payload(1024 * 1024));
    await store.close();
    await put;
    const reopened = await openStore();
    expect(await reopened.verify('X2.hot-0')).toBe('ok');
  });
});
