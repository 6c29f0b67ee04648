/**
 * Which document each listed blob belongs to. A format-1 blob names its key in its header. A format-2 blob names
 * it in its descriptor (manifest/blob-descriptor.ts): a hot replica or cold copy whole, a shard only as one
 * Reed-Solomon fragment of its write's description, which takes four shards of the write to read. Since every blob
 * of a write belongs to the same key, the key found for a write id (from any whole descriptor, else from the
 * shards' fragments) is the key of all its blobs.
 *
 * Garbage collection decides from this key whether a blob is still referenced. A shard whose key cannot be found
 * has fewer than four shards of its write left on the listed nodes: no manifest can read that set (four are needed
 * to rebuild anything of it), so once every node was listed and the grace period is over it is collected as
 * unreadable garbage (a deleted document whose release missed a stopped node leaves exactly that). Otherwise, and
 * for any other blob whose descriptor names nothing, it is held.
 */
import type { BlobInfo } from '../blobstore/blob-store.js';
import { EC_DATA_SHARDS, EC_TOTAL_SHARDS } from '../core/limits.js';
import { decodeDescriptorFragments, decodeWholeDescriptor } from '../manifest/blob-descriptor.js';
import type { Inventory } from './repairer.js';

/** The key of a listed blob, or null when its blobs do not name one. */
export type BlobKeyOf = (info: BlobInfo) => string | null;

export interface BlobKeys {
  keyOf: BlobKeyOf;
  /** Distinct shards of a format-2 write found on the listed nodes (0 for a write with none). */
  shardsOf(writeId: string): number;
}

export async function blobKeys(inventories: ReadonlyMap<string, Inventory>): Promise<BlobKeyOf> {
  return (await findBlobKeys(inventories)).keyOf;
}

export async function findBlobKeys(inventories: ReadonlyMap<string, Inventory>): Promise<BlobKeys> {
  const keyOfWrite = new Map<string, string>();
  const fragments = new Map<string, (Uint8Array | null)[]>();
  const shardsFound = new Map<string, Set<string>>();
  for (const inventory of inventories.values()) {
    if (inventory === null) continue;
    for (const info of inventory.values()) {
      if (info.format !== 2 || info.descriptor === undefined) continue;
      if (info.descriptor.kind === 'fragment') {
        let parts = shardsFound.get(info.writeId);
        if (!parts) shardsFound.set(info.writeId, (parts = new Set()));
        parts.add(info.part);
      }
      if (keyOfWrite.has(info.writeId)) continue;
      if (info.descriptor.kind === 'whole') {
        try {
          keyOfWrite.set(info.writeId, decodeWholeDescriptor(info.descriptor.bytes).key);
          fragments.delete(info.writeId);
        } catch {
          // An unreadable descriptor names nothing; another blob of the write may.
        }
        continue;
      }
      const index = /^shard-[0-5]$/.test(info.part) ? Number(info.part.slice('shard-'.length)) : -1;
      if (index < 0) continue;
      let set = fragments.get(info.writeId);
      if (!set) fragments.set(info.writeId, (set = new Array<Uint8Array | null>(EC_TOTAL_SHARDS).fill(null)));
      set[index] ??= info.descriptor.bytes;
    }
  }
  for (const [writeId, set] of fragments) {
    if (keyOfWrite.has(writeId) || set.filter((f) => f !== null).length < EC_DATA_SHARDS) continue;
    try {
      keyOfWrite.set(writeId, (await decodeDescriptorFragments(set)).key);
    } catch {
      // Fragments that do not decode name nothing: the shards stay keyless.
    }
  }
  return {
    keyOf: (info) => (info.format === 2 ? (keyOfWrite.get(info.writeId) ?? null) : info.key),
    shardsOf: (writeId) => shardsFound.get(writeId)?.size ?? 0,
  };
}
