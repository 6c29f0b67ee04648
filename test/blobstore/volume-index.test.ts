/**
 * The in-memory needle index (internal/blobstore/volume/needle-index.ts): a sorted packed run plus a delta, checked
 * against a plain Map model under random operations, and held to its memory budget.
 */
import { describe, expect, it } from 'vitest';
import { NeedleIndex, type NeedleLocation } from '../../internal/blobstore/volume/needle-index.js';
import { newWriteId } from '../../internal/core/ids.js';
import { prng } from './volume-harness/power-loss-fs.js';

function location(n: number, corrupt = false): NeedleLocation {
  return { volume: 1 + (n % 5), offset: 64 + 8 * n, needleBytes: 8 * (1 + (n % 100)), size: n % 700, corrupt };
}

describe('NeedleIndex', () => {
  it('agrees with a Map under random sets, removes, corrupt marks and listings, through many merges', () => {
    const random = prng(7);
    const index = new NeedleIndex({ deltaEntriesMax: 16 });
    const model = new Map<string, NeedleLocation>();
    const ids = Array.from({ length: 400 }, (_, i) => `id${String((i * 7919) % 400).padStart(4, '0')}.hot-${i % 3}`);
    for (let step = 0; step < 20_000; step++) {
      const id = ids[Math.floor(random() * ids.length)] as string;
      const r = random();
      if (r < 0.45) {
        const loc = location(step);
        expect(index.set(id, loc)).toEqual(model.get(id));
        model.set(id, loc);
      } else if (r < 0.75) {
        expect(index.remove(id)).toEqual(model.get(id));
        model.delete(id);
      } else if (r < 0.8) {
        const current = model.get(id);
        if (current !== undefined) {
          index.markCorrupt(id, current, true);
          current.corrupt = true;
        }
      } else if (r < 0.83) {
        index.merge();
      } else {
        expect(index.get(id)).toEqual(model.get(id));
        const cursor = random() < 0.2 ? null : random() < 0.5 ? id : id.slice(0, 4);
        const limit = 1 + Math.floor(random() * 30);
        const expected = [...model.keys()].sort().filter((k) => cursor === null || k > cursor).slice(0, limit);
        expect(index.after(cursor, limit).map((e) => e.id)).toEqual(expected);
      }
      expect(index.size).toBe(model.size);
    }
    let payload = 0;
    let bytes = 0;
    for (const loc of model.values()) {
      payload += loc.size;
      bytes += loc.needleBytes;
    }
    expect(index.payloadBytes).toBe(payload);
    expect(index.needleBytes).toBe(bytes);
  });

  it('moves a volume\'s entries on relocate and marks a needle corrupt by its place', () => {
    const index = new NeedleIndex({ deltaEntriesMax: 2 });
    index.set('a.hot-0', { volume: 2, offset: 64, needleBytes: 16, size: 1, corrupt: false });
    index.set('b.hot-0', { volume: 2, offset: 80, needleBytes: 16, size: 1, corrupt: false });
    index.set('c.hot-0', { volume: 3, offset: 64, needleBytes: 16, size: 1, corrupt: false });
    index.set('d.hot-0', { volume: 2, offset: 200, needleBytes: 16, size: 1, corrupt: false });
    index.relocate(2, (offset) => offset - 8 * (offset === 64 ? 0 : 1));
    expect(index.get('a.hot-0')?.offset).toBe(64);
    expect(index.get('b.hot-0')?.offset).toBe(72);
    expect(index.get('d.hot-0')?.offset).toBe(192);
    expect(index.get('c.hot-0')?.offset).toBe(64);
    index.markCorruptAt(2, 192);
    expect(index.get('d.hot-0')?.corrupt).toBe(true);
    expect(index.volumeTotals().get(2)).toEqual({ liveBytes: 48, blobs: 3 });
  });

  it('holds a million-scale index in at most 64 bytes of RAM per blob with real blob ids', () => {
    const n = 300_000;
    const index = new NeedleIndex();
    for (let i = 0; i < n; i++) {
      const id = `${newWriteId(1_700_000_000_000 + i)}.${i % 2 === 0 ? `shard-${i % 6}` : `hot-${i % 3}`}`;
      index.set(id, location(i));
    }
    index.exportRun();
    const perBlob = index.memoryBytes() / n;
    expect(perBlob).toBeLessThanOrEqual(64);
    console.log(`needle index: ${perBlob.toFixed(1)} bytes of RAM per blob (${n} blobs, ids like ${index.after(null, 1)[0]?.id})`);
  });
});
