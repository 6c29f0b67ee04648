/**
 * Index checkpoints (internal/blobstore/volume/index-checkpoint.ts): format 2 round-trips both runs and costs about
 * 18 bytes per derived id; format 1 (the previous release's) still loads and is rewritten as format 2; a damaged,
 * cut or unknown checkpoint is refused with a reason, so that the store rebuilds its index from the volumes, and
 * never read as something else.
 */
import { cp, open as openFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crc32c } from '../../internal/blobstore/volume/crc32c.js';
import {
  CHECKPOINT_VERSION,
  decodeCheckpoint,
  encodeCheckpoint,
  sealCheckpoint,
  type Checkpoint,
  type CheckpointVolume,
} from '../../internal/blobstore/volume/index-checkpoint.js';
import { NeedleIndex, type NeedleLocation } from '../../internal/blobstore/volume/needle-index.js';
import { VolumeBlobStore, VOLUME_STORE_CHECKPOINT_FILE } from '../../internal/blobstore/volume/volume-blob-store.js';
import { header, makeTempDir, payload } from '../contracts/blob-fixtures.js';
import { prng } from './volume-harness/power-loss-fs.js';
import { encodeFormat1Checkpoint, mixedIds, needleLocation, oddLocation, ulidAt } from './volume-harness/index-fixtures.js';

const VOLUMES: CheckpointVolume[] = [1, 2, 3, 4, 5].map((volume) => ({ volume, revision: volume % 2, coveredBytes: 2 ** 33 + volume }));
const PREVIOUS_RELEASE_NODE = path.join(import.meta.dirname, '../fixtures/previous-release/data/nodes/node-1');

function mixedIndex(count: number, seed: number): NeedleIndex {
  const random = prng(seed);
  const index = new NeedleIndex({ deltaEntriesMax: 64 });
  mixedIds(count, random).forEach((id, n) => index.set(id, n % 17 === 0 ? oddLocation(n) : needleLocation(n, random, n % 11 === 0)));
  return index;
}

async function sealed(index: NeedleIndex, extra: Partial<Checkpoint> = {}): Promise<Buffer> {
  const encoded = encodeCheckpoint({ nextSeq: 987_654_321, createdAtMs: 1_765_000_000_123, volumes: VOLUMES, run: index.exportRun(), ...extra });
  await sealCheckpoint(encoded);
  return encoded;
}

function entries(index: NeedleIndex): Array<{ id: string; location: NeedleLocation }> {
  return index.after(null, Number.MAX_SAFE_INTEGER);
}

function loaded(buf: Buffer): Checkpoint {
  const decoded = decodeCheckpoint(buf);
  if (typeof decoded === 'string') throw new Error(`checkpoint refused: ${decoded}`);
  return decoded;
}

function reseal(buf: Buffer): void {
  buf.writeUInt32LE(crc32c(buf, 0, 0, buf.length - 4), buf.length - 4);
}

describe('index checkpoint format 2', () => {
  it('round-trips derived and text ids, their locations and corrupt marks, the volumes and the header fields', async () => {
    const index = mixedIndex(600, 3);
    const buf = await sealed(index);
    expect(buf.readUInt16LE(4)).toBe(CHECKPOINT_VERSION);
    const checkpoint = loaded(buf);
    expect(checkpoint).toMatchObject({ nextSeq: 987_654_321, createdAtMs: 1_765_000_000_123, volumes: VOLUMES });
    const reloaded = new NeedleIndex({ run: checkpoint.run });
    expect(entries(reloaded)).toEqual(entries(index));
    expect(reloaded.memoryBreakdown()).toEqual(index.memoryBreakdown());
    expect([reloaded.size, reloaded.payloadBytes, reloaded.needleBytes]).toEqual([index.size, index.payloadBytes, index.needleBytes]);
    // What recovery.ts checks every entry with: each run's entries, needle lengths recomputed for the main run.
    const flat = entries(index).map((e) => `${e.location.volume}:${e.location.offset / 8}:${e.location.needleBytes}`).sort();
    const run = checkpoint.run;
    const fromRun = Array.from({ length: run.count }, (_, i) => `${run.volume[i]}:${run.offset8[i]}:${run.needleBytes[i]}`).sort();
    expect(fromRun).toEqual(flat);
  });

  it('costs at most 20 bytes per derived id written in id order', async () => {
    const random = prng(5);
    const index = new NeedleIndex();
    const n = 20_000;
    let offset = 64;
    for (let i = 0; i < n; i++) {
      const size = 900 + Math.floor(random() * 300);
      const needleBytes = Math.ceil((36 + 48 + size + 4) / 8) * 8;
      index.set(`${ulidAt(1_765_000_000_000 + 7 * i, random)}.${['hot-0', 'cold-1', 'shard-4'][i % 3]}`, {
        volume: 1 + Math.floor(i / 5000),
        offset: i % 5000 === 0 ? (offset = 64) : offset,
        needleBytes,
        size,
        corrupt: false,
      });
      offset += needleBytes;
    }
    const buf = await sealed(index, { volumes: [] });
    const perEntry = buf.length / n;
    expect(perEntry).toBeLessThanOrEqual(20);
    expect(entries(new NeedleIndex({ run: loaded(buf).run }))).toEqual(entries(index));
    console.log(`index checkpoint: ${perEntry.toFixed(2)} B per derived id (${n} ids in id order, 1 KiB blobs)`);
  });

  it('refuses every single-bit flip and every truncation', async () => {
    const buf = await sealed(mixedIndex(40, 8));
    for (let bit = 0; bit < 8 * buf.length; bit++) {
      const flipped = Buffer.from(buf);
      flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
      expect(typeof decodeCheckpoint(flipped), `bit ${bit}`).toBe('string');
    }
    for (let length = 0; length < buf.length; length++) {
      expect(typeof decodeCheckpoint(Buffer.from(buf.subarray(0, length))), `length ${length}`).toBe('string');
    }
  });

  it('never crashes on a CRC-valid checkpoint with damaged entries, and what it accepts is a well-formed index', async () => {
    // A checkpoint written by a buggy build passes its CRC: the decoder checks what the index relies on.
    const buf = await sealed(mixedIndex(20, 9));
    const entriesAt = 48 + 16 * VOLUMES.length;
    let accepted = 0;
    for (let bit = 8 * entriesAt; bit < 8 * (buf.length - 4); bit++) {
      const flipped = Buffer.from(buf);
      flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
      reseal(flipped);
      const decoded = decodeCheckpoint(flipped);
      if (typeof decoded === 'string') continue;
      accepted += 1;
      const index = new NeedleIndex({ run: decoded.run });
      const ids = entries(index).map((e) => e.id);
      expect(ids.length).toBe(decoded.run.count);
      expect([...ids].sort()).toEqual(ids);
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of ids.slice(0, 3)) expect(index.get(id)).toBeDefined();
    }
    // Most flips land in sizes and offsets, which any value can be; the structure around them is checked.
    expect(accepted).toBeGreaterThan(0);
  }, 180_000);

  it('refuses a format it does not know, naming it', async () => {
    const buf = await sealed(mixedIndex(10, 4));
    buf.writeUInt16LE(3, 4);
    reseal(buf);
    expect(decodeCheckpoint(buf)).toMatch(/format 3 is not one this release reads/);
  });
});

describe('index checkpoint format 1', () => {
  it('loads what the previous release wrote, with derived ids in the main run, and rewrites it as format 2', async () => {
    const source = mixedIndex(300, 6);
    source.merge();
    const format1 = encodeFormat1Checkpoint(entries(source), VOLUMES.map((v) => ({ ...v, coveredBytes: v.volume * 1000 })), 42, 1_765_000_000_000);
    const checkpoint = loaded(format1);
    expect(checkpoint).toMatchObject({ nextSeq: 42, createdAtMs: 1_765_000_000_000 });
    expect(checkpoint.volumes.map((v) => v.coveredBytes)).toEqual([1000, 2000, 3000, 4000, 5000]);
    const index = new NeedleIndex({ run: checkpoint.run });
    expect(entries(index)).toEqual(entries(source));
    expect(index.memoryBreakdown()).toEqual(source.memoryBreakdown());
    const rewritten = await sealed(index);
    expect(rewritten.readUInt16LE(4)).toBe(2);
    expect(entries(new NeedleIndex({ run: loaded(rewritten).run }))).toEqual(entries(source));
  });

  it('reads the previous release\'s own checkpoint file', async () => {
    const checkpoint = loaded(await readFile(path.join(PREVIOUS_RELEASE_NODE, 'index.ckpt')));
    const index = new NeedleIndex({ run: checkpoint.run });
    expect(index.size).toBeGreaterThan(0);
    expect(index.memoryBreakdown().mainRun).toBe(32 * index.size);
  });
});

describe('VolumeBlobStore and its checkpoint formats', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const opened: VolumeBlobStore[] = [];
  const open = async (): Promise<VolumeBlobStore> => {
    const store = await VolumeBlobStore.open({ dir, autoCompact: false });
    opened.push(store);
    return store;
  };
  const listing = async (store: VolumeBlobStore): Promise<string[]> => (await store.list(null, 1000)).map((b) => b.id);

  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('vbs-ckpt'));
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    await remove();
  });

  it('opens a previous-release node from its format 1 checkpoint and writes its next checkpoint as format 2', async () => {
    await cp(PREVIOUS_RELEASE_NODE, dir, { recursive: true });
    const store = await open();
    expect(store.stats().recovery).toMatchObject({ checkpoint: 'loaded', fullRebuild: false });
    const ids = await listing(store);
    expect(ids.length).toBeGreaterThan(0);
    const blobs = await Promise.all(ids.map(async (id) => (await store.get(id)).data));
    await store.checkpoint();
    const file = await readFile(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    expect(file.readUInt16LE(4)).toBe(2);
    await store.close();
    const reopened = await open();
    expect(reopened.stats().recovery).toMatchObject({ checkpoint: 'loaded', fullRebuild: false });
    expect(await listing(reopened)).toEqual(ids);
    for (const [i, id] of ids.entries()) expect((await reopened.get(id)).data.equals(blobs[i] as Buffer)).toBe(true);
  });

  it('rebuilds from the volumes when its format 2 checkpoint is cut short or of an unknown format', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `${ulidAt(1_765_000_000_000 + i, prng(i))}.${i % 2 === 0 ? 'hot-1' : 'hot-1.r7'}`);
    let store = await open();
    for (const [i, id] of ids.entries()) await store.put(header(id), payload(300 + i, i));
    await store.close();
    const file = path.join(dir, VOLUME_STORE_CHECKPOINT_FILE);
    const whole = await readFile(file);
    expect(whole.readUInt16LE(4)).toBe(2);

    await writeFile(file, whole.subarray(0, whole.length - 9));
    store = await open();
    expect(store.stats().recovery).toMatchObject({ fullRebuild: true, checkpoint: expect.stringMatching(/CRC|length/) });
    expect(await listing(store)).toEqual([...ids].sort());
    await store.close();

    const unknown = Buffer.from(whole);
    unknown.writeUInt16LE(9, 4);
    reseal(unknown);
    const handle = await openFile(file, 'w');
    await handle.write(unknown);
    await handle.close();
    store = await open();
    expect(store.stats().recovery).toMatchObject({ fullRebuild: true, checkpoint: expect.stringMatching(/format 9/) });
    for (const [i, id] of ids.entries()) expect((await store.get(id)).data.equals(payload(300 + i, i))).toBe(true);
  });
});
