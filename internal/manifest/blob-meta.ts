import type { BlobHeader } from '../blobstore/blob-store.js';
import type { Manifest, Strategy } from './manifest.js';

/**
 * The self-describing part of a blob's header beyond key, write id and part: enough to rebuild a manifest from
 * the nodes alone (strategy, and for shards their geometry and the cold hash).
 */
export function blobMeta(
  strategy: Strategy,
  part: string,
  cold: { dataBytes: number; shardBytes: number; coldHash: string | null } | null,
): string {
  if (part.startsWith('shard-') && cold) {
    return JSON.stringify({
      strategy,
      role: 'shard',
      index: Number(part.slice('shard-'.length)),
      dataBytes: cold.dataBytes,
      shardBytes: cold.shardBytes,
      coldHash: cold.coldHash,
    });
  }
  return JSON.stringify({ strategy, role: 'hot' });
}

/** The header a blob of `manifest` was (or is to be re-)written with. */
export function headerFor(manifest: Manifest, ref: { blob: string; writeId: string; part: string }): BlobHeader {
  const cold = manifest.cold_layout ? { ...manifest.cold_layout, coldHash: manifest.coldHash } : null;
  return {
    id: ref.blob,
    key: manifest.key,
    writeId: ref.writeId,
    part: ref.part,
    meta: blobMeta(manifest.strategy, ref.part, cold),
  };
}
