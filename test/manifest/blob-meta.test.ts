import { describe, expect, it } from 'vitest';
import { DATA_FORMAT_MAX, DATA_FORMAT_V3, DATA_FORMAT_V4 } from '../../internal/core/data-format.js';
import { decodeWholeDescriptor } from '../../internal/manifest/blob-descriptor.js';
import { blobHeaders, descriptionOf, type DocumentSelf } from '../../internal/manifest/blob-meta.js';

const WRITE = '01J9Z8Q4W6HN5R7T2XQ3K8M1VA';
const OLDER = '01J9Z8Q4W6HN5R7T2XQ3K8M1V0';
const COLD = { placement: 'shards' as const, dataBytes: 975, shardBytes: 248, codec: 'identity' as const, coldHash: 'b9ac706381f7c4de9e2afe23e65337d7' };

function hybrid(coldWriteId: string): DocumentSelf {
  return { key: 'users/00000001', strategy: 'field_hybrid', cold: { ...COLD, writeId: coldWriteId } };
}

describe('what a blob says about its document', () => {
  it('leaves cold facts off the hot replicas of a write that stored its own cold part', async () => {
    const [hot] = await blobHeaders(DATA_FORMAT_MAX, hybrid(WRITE), [{ blob: `${WRITE}.hot-0`, writeId: WRITE, part: 'hot-0' }]);
    expect(hot?.descriptor?.kind).toBe('whole');
    const d = decodeWholeDescriptor(hot!.descriptor!.bytes);
    expect(d).toEqual({ strategy: 'field_hybrid', role: 'hot', key: 'users/00000001' });
    expect(hot!.descriptor!.bytes.length).toBe(1 + 1 + 14);
  });

  it('names the reused cold part on the hot replicas of a pure hot update', () => {
    expect(descriptionOf(hybrid(OLDER), 'hot-1', WRITE, DATA_FORMAT_MAX).cold).toEqual({ codec: 'identity', dataBytes: 975, coldHash64: COLD.coldHash.slice(0, 16) });
  });

  it('keeps cold facts on every cold copy and shard, whichever write stored them', () => {
    for (const part of ['cold-0', 'shard-3']) {
      expect(descriptionOf(hybrid(WRITE), part, WRITE, DATA_FORMAT_MAX).cold?.coldHash64, part).toBe(COLD.coldHash.slice(0, 16));
      expect(descriptionOf({ ...hybrid(WRITE), strategy: 'ec' }, part, WRITE, DATA_FORMAT_MAX).cold?.dataBytes, part).toBe(975);
    }
  });

  it('leaves the cold hash off an ec document\'s blobs from data format 4 on, and only there', async () => {
    const ec: DocumentSelf = { ...hybrid(WRITE), strategy: 'ec' };
    expect(descriptionOf(ec, 'cold-0', WRITE, DATA_FORMAT_V4).cold).toEqual({ codec: 'identity', dataBytes: 975 });
    expect(descriptionOf(ec, 'cold-0', WRITE, DATA_FORMAT_V3).cold?.coldHash64).toBe(COLD.coldHash.slice(0, 16));
    expect(descriptionOf(hybrid(WRITE), 'shard-0', WRITE, DATA_FORMAT_V4).cold?.coldHash64).toBe(COLD.coldHash.slice(0, 16));
    const [copy] = await blobHeaders(DATA_FORMAT_V4, ec, [{ blob: `${WRITE}.cold-0`, writeId: WRITE, part: 'cold-0' }]);
    // kind, key length, the 14-byte key, dataBytes (2 bytes for 975): 8 bytes less than with the hash.
    expect(copy!.descriptor!.bytes.length).toBe(1 + 1 + 14 + 2);
    expect(decodeWholeDescriptor(copy!.descriptor!.bytes).cold).toEqual({ codec: 'identity', dataBytes: 975 });
  });
});
