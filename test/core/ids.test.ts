import { describe, expect, it } from 'vitest';
import { blobIdOf, isValidBlobId, newWriteId } from '../../internal/core/ids.js';

describe('write ids', () => {
  it('are 26-character ULIDs that encode the time', () => {
    const id = newWriteId(Date.UTC(2026, 10, 22));
    expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    let ms = 0;
    for (const c of id.slice(0, 10)) ms = ms * 32 + '0123456789ABCDEFGHJKMNPQRSTVWXYZ'.indexOf(c);
    expect(ms).toBe(Date.UTC(2026, 10, 22));
  });

  it('never repeat and sort in creation order, also within one millisecond', () => {
    const ids = Array.from({ length: 50_000 }, () => newWriteId(1_800_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('stay monotonic when the clock steps back', () => {
    const a = newWriteId(1_900_000_000_000);
    const b = newWriteId(1_899_999_999_000);
    expect(b > a).toBe(true);
  });

  it('make blob ids that a node accepts as file names', () => {
    const id = blobIdOf(newWriteId(), 'shard-5');
    expect(isValidBlobId(id)).toBe(true);
    expect(isValidBlobId('../x')).toBe(false);
    expect(isValidBlobId('a/b')).toBe(false);
  });
});
