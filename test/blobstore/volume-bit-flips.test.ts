/**
 * Bit rot: bits flipped in volume files, in payloads and in heads, are found by get (BLOB_CORRUPT, never the bytes),
 * by verify and by scrub, stay marked in the inventory for the healer, and a put of the good bytes repairs them.
 */
import { open as openFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VolumeBlobStore, VOLUME_STORE_CHECKPOINT_FILE, type VolumeBlobStoreOptions } from '../../internal/blobstore/volume/volume-blob-store.js';
import type { Clock } from '../../internal/core/clock.js';
import { expectCode, header, makeTempDir, payload } from '../contracts/blob-fixtures.js';
import { flipPayloadByteOnDisk } from './volume-harness/flip.js';

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

async function flipBit(file: string, position: number, bit = 0): Promise<void> {
  const handle = await openFile(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = (byte[0] as number) ^ (1 << bit);
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}

describe('VolumeBlobStore and flipped bits', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const opened: VolumeBlobStore[] = [];
  const openStore = async (options: Partial<VolumeBlobStoreOptions> = {}): Promise<VolumeBlobStore> => {
    const store = await VolumeBlobStore.open({ dir, autoCompact: false, ...options });
    opened.push(store);
    return store;
  };
  /** Flips bit 3 of the byte at `at(needleBytes)` in the blob's needle. */
  const flipInNeedle = async (store: VolumeBlobStore, id: string, at: (needleBytes: number) => number): Promise<void> => {
    const where = store.locate(id);
    if (where === null) throw new Error(`${id} is not stored`);
    await flipBit(where.file, where.offset + at(where.needleBytes), 3);
  };

  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('vbs-rot'));
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await remove();
  });

  it('answers BLOB_CORRUPT for a flipped payload bit, never the bytes, and lists the blob as corrupt', async () => {
    const store = await openStore();
    await store.put(header('C1.hot-0'), payload(4096));
    await store.put(header('C1.hot-1'), payload(4096, 2));
    await flipInNeedle(store, 'C1.hot-0', (n) => n - 2000);
    await expectCode(store.get('C1.hot-0'), 'BLOB_CORRUPT');
    expect((await store.list(null, 10)).map((b) => [b.id, b.corrupt])).toEqual([
      ['C1.hot-0', true],
      ['C1.hot-1', undefined],
    ]);
    expect((await store.stat('C1.hot-0'))?.corrupt).toBe(true);
    expect((await store.get('C1.hot-1')).data.equals(payload(4096, 2))).toBe(true);
  });

  it('detects every single-bit flip anywhere in a needle on read', async () => {
    const store = await openStore();
    const data = payload(40, 9);
    await store.put(header('B1.hot-0', { key: 'k', meta: '{}' }), data);
    const where = store.locate('B1.hot-0');
    if (where === null) throw new Error('not stored');
    // Padding bytes carry nothing, so a flip there is harmless and not an error: stop before them.
    const meaningful = where.needleBytes - ((where.needleBytes - (72 + 8 + 1 + 2 + 5 + 2 + 4 + 40 + 4)) % 8);
    for (let byte = 0; byte < meaningful; byte++) {
      for (const bit of [0, 5]) {
        await flipBit(where.file, where.offset + byte, bit);
        await expectCode(store.get('B1.hot-0'), 'BLOB_CORRUPT');
        await flipBit(where.file, where.offset + byte, bit);
      }
    }
    expect((await store.get('B1.hot-0')).data.equals(data)).toBe(true);
  });

  it('finds flipped bits with verify and with scrub, which reports exactly the corrupt ids in id order', async () => {
    const store = await openStore();
    for (let i = 0; i < 8; i++) await store.put(header(`C3.hot-${i}`), payload(2000, i));
    await flipPayloadByteOnDisk(store, 'C3.hot-6', 1);
    await flipInNeedle(store, 'C3.hot-1', () => 30); // in the head: the sha256 field
    expect(await store.verify('C3.hot-6')).toBe('corrupt');
    expect(await store.verify('C3.hot-0')).toBe('ok');
    const report = await store.scrub({ bytesPerSecMax: 1e12 });
    expect(report).toMatchObject({ corrupt: ['C3.hot-1', 'C3.hot-6'], blobsChecked: 8, aborted: false });
    expect((await store.list(null, 10)).filter((b) => b.corrupt).map((b) => b.id)).toEqual(['C3.hot-1', 'C3.hot-6']);
  });

  it('scrubs at no more than bytesPerSecMax, and stops when its signal aborts', async () => {
    const clock = new RecordingClock();
    const store = await openStore({ clock });
    for (let i = 0; i < 10; i++) await store.put(header(`S1.hot-${i}`), payload(10_000, i));
    const { bytesUsed } = await store.usage();
    const report = await store.scrub({ bytesPerSecMax: 50_000 });
    expect(report.bytesChecked).toBe(bytesUsed);
    const sleptMs = clock.sleepsMs.reduce((a, b) => a + b, 0);
    expect(sleptMs).toBeCloseTo((bytesUsed / 50_000) * 1000, 0);
    expect(Math.max(...clock.sleepsMs)).toBeLessThanOrEqual(250);

    const controller = new AbortController();
    controller.abort();
    expect(await store.scrub({ bytesPerSecMax: 1, signal: controller.signal })).toMatchObject({ aborted: true, blobsChecked: 0 });
  });

  it('replaces a corrupt copy on put, and the old copy stays hidden when the index is rebuilt', async () => {
    let store = await openStore();
    await store.put(header('C6.hot-0'), payload(500, 1));
    await store.put(header('C6.hot-1'), payload(500, 1));
    await flipInNeedle(store, 'C6.hot-0', (n) => n - 20);
    await flipInNeedle(store, 'C6.hot-1', (n) => n - 20);
    // Not yet known to be corrupt: the put checks the stored copy before deciding between retry and conflict.
    await store.put(header('C6.hot-0'), payload(500, 1));
    expect(await store.verify('C6.hot-0')).toBe('ok');
    expect(await store.verify('C6.hot-1')).toBe('corrupt');
    await store.put(header('C6.hot-1'), payload(500, 2));
    expect((await store.get('C6.hot-1')).data.equals(payload(500, 2))).toBe(true);
    expect((await store.stat('C6.hot-1'))?.corrupt).toBeUndefined();
    await store.delete('C6.hot-1');
    await store.close();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    store = await openStore();
    expect((await store.list(null, 10)).map((b) => [b.id, b.corrupt])).toEqual([['C6.hot-0', undefined]]);
    expect((await store.get('C6.hot-0')).data.equals(payload(500, 1))).toBe(true);
  });

  it('copies a corrupt needle through compaction as it is, still reported corrupt', async () => {
    const store = await openStore({ volumeBytesMax: 8 * 1024 });
    for (let i = 0; i < 12; i++) await store.put(header(`C7.hot-${i}`), payload(1500, i));
    await flipInNeedle(store, 'C7.hot-1', (n) => n - 30);
    await store.delete('C7.hot-0');
    const [outcome] = await store.compact({ volume: store.locate('C7.hot-1')?.volume as number });
    expect(outcome).toMatchObject({ kind: 'swapped', corruptNeedles: 1 });
    expect((await store.stat('C7.hot-1'))?.corrupt).toBe(true);
    await expectCode(store.get('C7.hot-1'), 'BLOB_CORRUPT');
    expect((await store.get('C7.hot-2')).data.equals(payload(1500, 2))).toBe(true);
  });

  it('keeps the needles after a rotted head when the index is rebuilt, and lists a rotted payload as corrupt', async () => {
    let store = await openStore();
    for (let i = 0; i < 6; i++) await store.put(header(`C8.hot-${i}`), payload(3000, i));
    await flipInNeedle(store, 'C8.hot-2', () => 10); // a length field: this needle's extent is lost
    await flipInNeedle(store, 'C8.hot-4', (n) => n - 100); // payload: the needle is still found, and is corrupt
    await store.close();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    store = await openStore();
    const recovery = store.stats().recovery;
    expect(recovery).toMatchObject({ fullRebuild: true, corruptNeedles: 1 });
    expect(recovery.garbageBytes).toBeGreaterThan(3000);
    expect((await store.list(null, 10)).map((b) => [b.id, b.corrupt])).toEqual([
      ['C8.hot-0', undefined],
      ['C8.hot-1', undefined],
      ['C8.hot-3', undefined],
      ['C8.hot-4', true],
      ['C8.hot-5', undefined],
    ]);
    for (const i of [0, 1, 3, 5]) expect((await store.get(`C8.hot-${i}`)).data.equals(payload(3000, i))).toBe(true);
  });
});
