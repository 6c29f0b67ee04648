/**
 * The efficiency accumulator (internal/efficiency/storage-efficiency.ts) on hand-made manifests: key prefixes,
 * manifests written before compression and copies existed (no new fields) counted as uncompressed shards, the
 * needle and index overhead as the volume format lays it out, and the bound on tracked prefixes.
 */
import { describe, expect, it } from 'vitest';
import {
  EFFICIENCY_LIMITS,
  EfficiencyAccumulator,
  OTHER_PREFIXES,
  indexEntryBytes,
  keyPrefix,
  needleOverheadBytes,
} from '../../internal/efficiency/storage-efficiency.js';
import type { Manifest } from '../../internal/manifest/manifest.js';
import { makeManifest } from '../helpers/manifest-fixture.js';

const WRITE = '01J9Z8Q4W6HN5R7T2XQ3K8M1VA';

function ecManifest(key: string, layout: Manifest['cold_layout'], logical: number): Manifest {
  const parts = layout?.placement === 'with_replicas' ? ['cold-0', 'cold-1', 'cold-2'] : [0, 1, 2, 3, 4, 5].map((i) => `shard-${i}`);
  return makeManifest(key, WRITE, {
    strategy: 'ec',
    hot: [],
    bytes: { logical, hot: 0, cold: logical, physical: parts.length * layout!.shardBytes },
    coldHash: 'ab'.repeat(32),
    cold_layout: layout,
    cold: parts.map((part, i) => ({ part, node: `node-${i}`, blob: `${WRITE}.${part}`, writeId: WRITE, size: layout!.shardBytes, checksum: 'cd'.repeat(32), state: 'ok' as const })),
  });
}

describe('storage efficiency report', () => {
  it('names prefixes by key segments ending at / or :', () => {
    expect(keyPrefix('user:1001', 1)).toBe('user:');
    expect(keyPrefix('iot/dev-7/log', 1)).toBe('iot/');
    expect(keyPrefix('iot/dev-7/log', 2)).toBe('iot/dev-7/');
    expect(keyPrefix('iot/dev-7/log', 5)).toBe('iot/dev-7/');
    expect(keyPrefix('tenant:a/doc', 2)).toBe('tenant:a/');
    expect(keyPrefix('plain', 1)).toBe('');
  });

  it('counts a manifest without the new cold_layout fields as uncompressed shards, as it always was', () => {
    const acc = new EfficiencyAccumulator();
    acc.add(ecManifest('old/1', { dataBytes: 1000, shardBytes: 256 }, 1000));
    acc.add(ecManifest('new/1', { dataBytes: 300, shardBytes: 300, placement: 'with_replicas', codec: 'brotli', textBytes: 3000 }, 3000));
    acc.add(ecManifest('new/2', { dataBytes: 5000, shardBytes: 1256, codec: 'identity' }, 5000));
    const r = acc.report();
    expect(r.cold.uncompressed).toEqual({ documents: 1, text_bytes: 1000, stored_bytes: 1000 });
    expect(r.cold.compressed).toEqual({ documents: 1, text_bytes: 3000, stored_bytes: 300, saved_bytes: 2700 });
    expect(r.cold.incompressible).toEqual({ documents: 1, text_bytes: 5000, stored_bytes: 5000 });
    expect(r.cold.shards.documents).toBe(2);
    expect(r.cold.with_replicas).toEqual({ documents: 1, text_bytes: 3000, stored_bytes: 300 });
    expect(r.physical_bytes).toBe(6 * 256 + 3 * 300 + 6 * 1256);
    expect(r.per_strategy['ec']).toMatchObject({ documents: 3, logical_bytes: 9000, saved_vs_replication_bytes: 27_000 - r.physical_bytes });
    expect(Object.keys(r.per_prefix).sort()).toEqual(['new/', 'old/']);
  });

  it('computes needle and index bytes as the volume format lays them out', () => {
    // The example of internal/blobstore/volume/README.md: 166 bytes of head, 1,024 of data, 4 of CRC, 6 of padding.
    const header = { id: '01J9Z8Q4W6HN5R7T2XQ3K8M1VA.shard-3', key: 'users/1001', writeId: '01J9Z8Q4W6HN5R7T2XQ3K8M1VA', part: 'shard-3', meta: '{"k":4,"m":2}' };
    expect(needleOverheadBytes(header, 1024)).toBe(1200 - 1024);
    expect(indexEntryBytes(header.id)).toBe(21 + 34);
    const acc = new EfficiencyAccumulator();
    const m = makeManifest('k', WRITE);
    acc.add(m);
    const r = acc.report();
    expect(r.overhead.manifest_bytes).toBe(Buffer.byteLength(JSON.stringify(m)));
    expect(r.overhead.index_bytes).toBe(3 * indexEntryBytes(`${WRITE}.hot-0`));
    expect(r.overhead.per_document_bytes).toBe(r.overhead.needle_bytes + r.overhead.index_bytes + r.overhead.manifest_bytes);
  });

  it('lists the largest prefixes and sums the rest under (other), with bounded memory', () => {
    const acc = new EfficiencyAccumulator();
    const count = EFFICIENCY_LIMITS.prefixesMax + 20;
    for (let i = 0; i < count; i++) acc.add(makeManifest(`p${String(i).padStart(4, '0')}:doc`, WRITE));
    const r = acc.report();
    expect(Object.keys(r.per_prefix)).toHaveLength(EFFICIENCY_LIMITS.prefixesMax + 1);
    expect(r.per_prefix[OTHER_PREFIXES]!.documents).toBe(20);
    expect(Object.values(r.per_prefix).reduce((s, g) => s + g.documents, 0)).toBe(count);
  });
});
