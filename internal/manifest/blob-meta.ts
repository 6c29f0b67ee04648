import type { BlobHeader } from '../blobstore/blob-store.js';
import type { ColdLayout, Manifest, Strategy } from './manifest.js';

/**
 * The self-describing part of a blob's header beyond key, write id and part: enough to rebuild a manifest from
 * the nodes alone (strategy, and for shards their geometry and the cold hash).
 */
export function blobMeta(
  strategy: Strategy,
  part: string,
  cold: (ColdLayout & { coldHash: string | null }) | null,
): string {
  // Codec and text size only when the cold part is compressed, so that uncompressed blobs keep their old meta.
  const codec = cold?.codec !== undefined && cold.codec !== 'identity' ? { codec: cold.codec, textBytes: cold.textBytes } : {};
  if (part.startsWith('shard-') && cold) {
    return JSON.stringify({
      strategy,
      role: 'shard',
      index: Number(part.slice('shard-'.length)),
      dataBytes: cold.dataBytes,
      shardBytes: cold.shardBytes,
      coldHash: cold.coldHash,
      ...codec,
    });
  }
  if (part.startsWith('cold-') && cold) {
    // A whole copy of a small cold part kept beside the hot replicas (internal/coldpart/README.md).
    return JSON.stringify({ strategy, role: 'cold', dataBytes: cold.dataBytes, coldHash: cold.coldHash, ...codec });
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
