import { describe, expect, it } from 'vitest';
import { blobIdOf, newWriteId } from '../../internal/core/ids.js';
import {
  derivedBlobId,
  parseDerivedBlobId,
  partCode,
  partOfCode,
  ulidFromBytes,
  ulidToBytes,
} from '../../internal/core/derived-ids.js';

const PARTS = ['cold-0', 'cold-1', 'cold-2', 'hot-0', 'hot-1', 'hot-2', 'hot-9', 'shard-0', 'shard-3', 'shard-5'];

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

describe('derived blob ids', () => {
  it('round-trips write ids through 16 bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const id = newWriteId(Date.now() + i * 7919);
      const bytes = ulidToBytes(id);
      expect(bytes).not.toBeNull();
      expect(ulidFromBytes(bytes!)).toBe(id);
    }
    expect(ulidFromBytes(new Uint8Array(16).fill(0xff))).toBe('7ZZZZZZZZZZZZZZZZZZZZZZZZZ');
    expect(ulidToBytes('7ZZZZZZZZZZZZZZZZZZZZZZZZZ')).toEqual(new Uint8Array(16).fill(0xff));
    expect(ulidToBytes('00000000000000000000000000')).toEqual(new Uint8Array(16));
  });

  it('refuses text that would not come back the same', () => {
    expect(ulidToBytes('8ZZZZZZZZZZZZZZZZZZZZZZZZZ')).toBeNull(); // over 128 bits
    expect(ulidToBytes('01arz3ndektsv4rrffq69g5fav')).toBeNull(); // lower case
    expect(ulidToBytes('01ARZ3NDEKTSV4RRFFQ69G5FAU')).toBeNull(); // U is not Crockford
    expect(ulidToBytes('01ARZ3NDEKTSV4RRFFQ69G5FA')).toBeNull(); // short
    expect(parseDerivedBlobId('01ARZ3NDEKTSV4RRFFQ69G5FAV.hot-10')).toBeNull();
    expect(parseDerivedBlobId('01ARZ3NDEKTSV4RRFFQ69G5FAV.shard-1.r2k')).toBeNull();
    expect(parseDerivedBlobId('01ARZ3NDEKTSV4RRFFQ69G5FAV-hot-1')).toBeNull();
    expect(parseDerivedBlobId('blob-1')).toBeNull();
  });

  it('takes apart and rebuilds every coded part', () => {
    const writeId = newWriteId();
    for (const part of PARTS) {
      const parsed = parseDerivedBlobId(blobIdOf(writeId, part));
      expect(parsed).toMatchObject({ writeId, part, partCode: partCode(part) });
      expect(derivedBlobId(parsed!.writeIdBytes, parsed!.partCode)).toBe(blobIdOf(writeId, part));
      expect(partOfCode(parsed!.partCode)).toBe(part);
    }
    expect(partCode('hot-10')).toBeNull();
    expect(partOfCode(0x30)).toBeNull();
    expect(() => derivedBlobId(new Uint8Array(16), 0x7f)).toThrow(RangeError);
  });

  it('orders (bytes, part code) exactly as the ids order as text', () => {
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const writeId = newWriteId(1_700_000_000_000 + Math.floor(Math.random() * 1e9));
      for (const part of PARTS) ids.push(blobIdOf(writeId, part));
    }
    const key = (id: string): Uint8Array => {
      const p = parseDerivedBlobId(id)!;
      return Uint8Array.from([...p.writeIdBytes, p.partCode]);
    };
    const byText = [...ids].sort();
    const byBytes = [...ids].sort((a, b) => compareBytes(key(a), key(b)));
    expect(byBytes).toEqual(byText);
  });
});
