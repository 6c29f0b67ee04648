import type { Manifest } from '../../internal/manifest/manifest.js';

/** A small, valid manifest for metadata tests; `overrides` replace top-level fields. */
export function makeManifest(key: string, writeId: string, overrides: Partial<Manifest> = {}): Manifest {
  const at = '2024-01-01T00:00:00.000Z';
  return {
    formatVersion: 1,
    key,
    version: '0',
    writeId,
    deleted: false,
    strategy: 'replication',
    hotFields: [],
    hotPaths: [],
    coldEmptyOffsets: [],
    bytes: { logical: 2, hot: 2, cold: 0, physical: 6 },
    coldHash: null,
    cold_layout: null,
    hot: [0, 1, 2].map((i) => ({
      part: `hot-${i}`,
      node: `node-${i}`,
      blob: `${writeId}.hot-${i}`,
      writeId,
      size: 2,
      checksum: '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
      state: 'ok' as const,
    })),
    cold: [],
    dirty: false,
    createdAt: at,
    updatedAt: at,
    ...overrides,
  };
}

/** A tombstone manifest: the key deleted by `writeId`. */
export function makeTombstone(key: string, writeId: string): Manifest {
  return makeManifest(key, writeId, { deleted: true, hot: [], cold: [], bytes: { logical: 0, hot: 0, cold: 0, physical: 0 } });
}
