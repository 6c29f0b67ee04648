/**
 * The needle index's two runs (internal/blobstore/volume/needle-index.ts): derived ids in the 32-byte main run,
 * every other id in the text run, one listing in text order across both, checked against a Map model; and the
 * 32-bytes-per-blob budget for the ids the write path creates.
 */
import { describe, expect, it } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint, sealCheckpoint } from '../../internal/blobstore/volume/index-checkpoint.js';
import { NeedleIndex, type NeedleLocation } from '../../internal/blobstore/volume/needle-index.js';
import { newWriteId } from '../../internal/core/ids.js';
import { prng } from './volume-harness/power-loss-fs.js';
import { mixedIds, needleLocation, oddLocation } from './volume-harness/index-fixtures.js';

/** The index as a restart gets it back: through a format 2 checkpoint. */
async function throughCheckpoint(index: NeedleIndex, deltaEntriesMax: number): Promise<NeedleIndex> {
  const encoded = encodeCheckpoint({ nextSeq: 1, createdAtMs: 0, volumes: [], run: index.exportRun() });
  await sealCheckpoint(encoded);
  const decoded = decodeCheckpoint(encoded);
  if (typeof decoded === 'string') throw new Error(decoded);
  return new NeedleIndex({ deltaEntriesMax, run: decoded.run });
}

describe('NeedleIndex with derived and text ids', () => {
  it('agrees with a Map under random operations on mixed ids, listing both runs in text order, through merges and checkpoints', async () => {
    const random = prng(13);
    let index = new NeedleIndex({ deltaEntriesMax: 16 });
    const model = new Map<string, NeedleLocation>();
    const ids = mixedIds(500, random);
    for (let step = 0; step < 10_000; step++) {
      const id = ids[Math.floor(random() * ids.length)] as string;
      const r = random();
      if (r < 0.42) {
        const loc = random() < 0.05 ? oddLocation(step) : needleLocation(step, random);
        expect(index.set(id, loc)).toEqual(model.get(id));
        model.set(id, loc);
      } else if (r < 0.7) {
        expect(index.remove(id)).toEqual(model.get(id));
        model.delete(id);
      } else if (r < 0.75) {
        const current = model.get(id);
        if (current !== undefined) {
          const corrupt = random() < 0.7;
          index.markCorrupt(id, current, corrupt);
          current.corrupt = corrupt;
        }
      } else if (r < 0.78) {
        index.merge();
      } else if (r < 0.785) {
        index = await throughCheckpoint(index, 16);
      } else {
        expect(index.get(id)).toEqual(model.get(id));
        const cursors = [null, id, id.slice(0, 4), id.slice(0, 27), `${id.slice(0, 26)}.hot-1`, `${id}.`, ''];
        const cursor = cursors[Math.floor(random() * cursors.length)] as string | null;
        const limit = 1 + Math.floor(random() * 40);
        const expected = [...model.keys()].sort().filter((k) => cursor === null || k > cursor).slice(0, limit);
        const page = index.after(cursor, limit);
        expect(page.map((e) => e.id)).toEqual(expected);
        for (const e of page) expect(e.location).toEqual(model.get(e.id));
      }
      expect(index.size).toBe(model.size);
    }
    const all = index.after(null, Number.MAX_SAFE_INTEGER);
    expect(all.map((e) => e.id)).toEqual([...model.keys()].sort());
    let payload = 0;
    let bytes = 0;
    for (const loc of model.values()) {
      payload += loc.size;
      bytes += loc.needleBytes;
    }
    expect(index.payloadBytes).toBe(payload);
    expect(index.needleBytes).toBe(bytes);
    const totals = index.volumeTotals();
    for (let volume = 1; volume <= 5; volume++) {
      const live = [...model.values()].filter((l) => l.volume === volume);
      const t = totals.get(volume);
      expect(t?.blobs ?? 0).toBe(live.length);
      expect(t?.liveBytes ?? 0).toBe(live.reduce((sum, l) => sum + l.needleBytes, 0));
    }
  }, 180_000);

  it('lists a write id\'s coded parts, uncoded parts and healer suffixes in text order across the two runs', () => {
    const index = new NeedleIndex({ deltaEntriesMax: 1 });
    const w = '01HF7YAT00Y60PAT1HKDBP5XCX';
    const ids = [`${w}.hot-2`, `${w}.hot-10`, `${w}.hot-1`, `${w}.hot-1.r5`, `${w}.cold-0`, `${w}.shard-0`, `${w}.shard-6`, `${w}`];
    ids.forEach((id, i) => index.set(id, { volume: 1, offset: 8 * i, needleBytes: 64, size: 8, corrupt: false }));
    expect(index.memoryBreakdown().mainRun).toBe(32 * 4);
    expect(index.after(null, 100).map((e) => e.id)).toEqual([...ids].sort());
    expect(index.after(`${w}.hot-1`, 3).map((e) => e.id)).toEqual([`${w}.hot-1.r5`, `${w}.hot-10`, `${w}.hot-2`]);
  });

  it('keeps a derived id whose needle framing does not fit 16 bits in the text run, and moves it back when it does', () => {
    const index = new NeedleIndex({ deltaEntriesMax: 1 });
    const id = '01HF7YAT00Y60PAT1HKDBP5XCX.shard-2';
    const small = { volume: 1, offset: 64, needleBytes: 1112, size: 1024, corrupt: false };
    const huge = { volume: 1, offset: 2048, needleBytes: 70_000, size: 8, corrupt: false };
    index.set(id, small);
    expect(index.memoryBreakdown()).toMatchObject({ mainRun: 32, textRun: 0 });
    expect(index.set(id, huge)).toEqual(small);
    index.merge();
    expect(index.memoryBreakdown()).toMatchObject({ mainRun: 0, textRun: 21 + id.length });
    expect(index.get(id)).toEqual(huge);
    expect(index.remove(id)).toEqual(huge);
    expect(index.set(id, small)).toBeUndefined();
    expect(index.get(id)).toEqual(small);
    expect(index.after(null, 10)).toEqual([{ id, location: small }]);
  });

  it('holds 100,000 blobs with derived ids in at most 32 bytes of RAM each', () => {
    const n = 100_000;
    const index = new NeedleIndex();
    let offset = 64;
    for (let i = 0; i < n; i++) {
      const id = `${newWriteId(1_750_000_000_000 + i)}.${['hot-0', 'hot-1', 'hot-2', 'cold-0', 'shard-0', 'shard-5'][i % 6]}`;
      const size = 200 + (i % 3000);
      const needleBytes = Math.ceil((36 + 40 + size + 4) / 8) * 8;
      index.set(id, { volume: 1 + Math.floor(i / 20_000), offset, needleBytes, size, corrupt: false });
      offset += needleBytes;
    }
    const withDelta = index.memoryBytes();
    index.exportRun();
    const { mainRun, textRun, total } = index.memoryBreakdown();
    expect(textRun).toBe(0);
    expect(mainRun / n).toBeLessThanOrEqual(32);
    expect(total / n).toBeLessThanOrEqual(32);
    console.log(
      `needle index: ${(mainRun / n).toFixed(1)} B per blob in the main run (${n} derived ids); ` +
        `${(withDelta / n).toFixed(1)} B per blob including the delta before its merge`,
    );
  });
});
