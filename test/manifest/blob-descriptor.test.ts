import { describe, expect, it } from 'vitest';
import {
  BLOB_DESCRIPTOR_BYTES_MAX,
  DescriptorError,
  decodeDescriptorFragments,
  decodeWholeDescriptor,
  encodeDescriptorFragments,
  encodeWholeDescriptor,
  fragmentBytesFor,
  type BlobDescription,
} from '../../internal/manifest/blob-descriptor.js';

const KEY = 'users/00001234';

const SHAPES: BlobDescription[] = [
  { strategy: 'replication', role: 'hot', key: KEY },
  { strategy: 'field_hybrid', role: 'hot', key: 'ключ/é', cold: { codec: 'identity', dataBytes: 180, coldHash64: '0123456789abcdef' } },
  { strategy: 'ec', role: 'cold', key: KEY, cold: { codec: 'identity', dataBytes: 200, coldHash64: 'ffffffffffffffff' } },
  { strategy: 'ec', role: 'shard', key: KEY, cold: { codec: 'brotli', dataBytes: 40_000, textBytes: 123_456, coldHash64: '00000000000000aa' } },
  { strategy: 'field_hybrid', role: 'shard', key: '', cold: { codec: 'deflate', dataBytes: 2 ** 32 + 5, textBytes: 7, coldHash64: 'a1b2c3d4e5f60718' } },
  // Data format 4: an ec document's blobs without the cold hash.
  { strategy: 'ec', role: 'cold', key: KEY, cold: { codec: 'identity', dataBytes: 100 } },
  { strategy: 'ec', role: 'shard', key: KEY, cold: { codec: 'brotli', dataBytes: 40_000, textBytes: 99_999 } },
];

describe('blob descriptors', () => {
  it('round-trips every shape whole', () => {
    for (const d of SHAPES) expect(decodeWholeDescriptor(encodeWholeDescriptor(d))).toEqual(d);
  });

  it('costs a hot replica of a 14-byte key 16 bytes and a shard set 8 bytes a shard', async () => {
    expect(encodeWholeDescriptor(SHAPES[0]!).length).toBe(1 + 1 + 14);
    const shard: BlobDescription = { strategy: 'ec', role: 'shard', key: KEY, cold: { codec: 'identity', dataBytes: 4000, coldHash64: '0123456789abcdef' } };
    expect(encodeWholeDescriptor(shard).length).toBe(1 + 1 + 14 + 2 + 8);
    const fragments = await encodeDescriptorFragments(shard);
    expect(fragments.map((f) => f.length)).toEqual([8, 8, 8, 8, 8, 8]);
    expect(fragmentBytesFor(26)).toBe(8);
  });

  it('rebuilds a shard set descriptor from any four fragments, and refuses three', async () => {
    for (const d of SHAPES.filter((s) => s.role === 'shard')) {
      const fragments = await encodeDescriptorFragments(d);
      for (let a = 0; a < 6; a++) {
        for (let b = a + 1; b < 6; b++) {
          const some = fragments.map((f, i) => (i === a || i === b ? null : f));
          expect(await decodeDescriptorFragments(some)).toEqual(d);
        }
      }
      await expect(decodeDescriptorFragments(fragments.map((f, i) => (i < 3 ? null : f)))).rejects.toThrow(DescriptorError);
    }
  });

  it('refuses every truncation and trailing garbage instead of misreading', () => {
    for (const d of SHAPES) {
      const bytes = encodeWholeDescriptor(d);
      for (let n = 0; n < bytes.length; n++) {
        expect(() => decodeWholeDescriptor(bytes.subarray(0, n)), `${d.role} cut at ${n}`).toThrow(DescriptorError);
      }
      expect(() => decodeWholeDescriptor(Uint8Array.from([...bytes, 1]))).toThrow(DescriptorError);
    }
    expect(() => decodeWholeDescriptor(Uint8Array.from([0x80, 0]))).toThrow(/kind/);
    expect(() => decodeWholeDescriptor(Uint8Array.from([0x0f, 0]))).toThrow(/kind/);
  });

  it('fits a key of up to 240 bytes in a whole descriptor of a format-2 needle', () => {
    const long: BlobDescription = { strategy: 'ec', role: 'cold', key: 'k'.repeat(240), cold: { codec: 'brotli', dataBytes: 100, textBytes: 300, coldHash64: '0123456789abcdef' } };
    expect(encodeWholeDescriptor(long).length).toBeLessThanOrEqual(BLOB_DESCRIPTOR_BYTES_MAX);
  });
});
