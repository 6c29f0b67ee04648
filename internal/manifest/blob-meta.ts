import { BLOB_DESCRIPTOR_BYTES_MAX, type BlobHeader } from '../blobstore/blob-store.js';
import { CHECKSUM64_HEX_DIGITS } from '../blobio/checksum.js';
import { DATA_FORMAT_V2, DATA_FORMAT_V4 } from '../core/data-format.js';
import { encodeDescriptorFragments, encodeWholeDescriptor, type BlobDescription } from './blob-descriptor.js';
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

/** What a document's blobs say about it: the facts both blob formats carry, from a manifest or a write's plan. */
export interface DocumentSelf {
  key: string;
  strategy: Strategy;
  /**
   * The document's cold part (its own or the one a pure hot update reuses) and the write that stored it; null
   * without one.
   */
  cold: (ColdLayout & { coldHash: string | null; writeId: string }) | null;
}

export function documentSelfOf(manifest: Manifest): DocumentSelf {
  const cold = manifest.cold_layout
    ? { ...manifest.cold_layout, coldHash: manifest.coldHash, writeId: manifest.cold[0]?.writeId ?? manifest.writeId }
    : null;
  return { key: manifest.key, strategy: manifest.strategy, cold };
}

/**
 * What the blob of `part`, written by `writeId`, describes of its document (blob-descriptor.ts): cold facts where
 * rebuilding needs them. Cold copies and shards carry them always. A field_hybrid hot replica carries them only
 * when its cold part was stored by another write (a pure hot update): they name which of the older cold sets it
 * reused. Beside cold blobs of its own write they would repeat what those blobs say (24 bytes per document).
 */
export function descriptionOf(doc: DocumentSelf, part: string, writeId: string, format: number): BlobDescription {
  const role = part.startsWith('shard-') ? 'shard' : part.startsWith('cold-') ? 'cold' : 'hot';
  const d: BlobDescription = { strategy: doc.strategy, role, key: doc.key };
  const carriesCold = role !== 'hot' || (doc.strategy === 'field_hybrid' && doc.cold !== null && doc.cold.writeId !== writeId);
  if (carriesCold && doc.cold !== null && doc.cold.coldHash !== null) {
    const codec = doc.cold.codec ?? 'identity';
    d.cold = {
      codec,
      dataBytes: doc.cold.dataBytes,
      // Format 4 leaves the hash off an ec document's blobs: nothing pairs with its cold part (blob-descriptor.ts).
      ...(format >= DATA_FORMAT_V4 && doc.strategy === 'ec' ? {} : { coldHash64: doc.cold.coldHash.slice(0, CHECKSUM64_HEX_DIGITS) }),
      ...(codec !== 'identity' ? { textBytes: doc.cold.textBytes ?? doc.cold.dataBytes } : {}),
    };
  }
  return d;
}

/**
 * The headers of blobs of one document in `format`. Format 2 writes a descriptor instead of key and meta: whole for
 * replicas and copies, a Reed-Solomon fragment for each shard (all shards of a write share one fragment set, so
 * `refs` holding several shards pays one encoding). A blob whose descriptor would not fit a format-2 needle (a key
 * of more than about 230 bytes) is written in format 1, which every release reads.
 */
export async function blobHeaders(
  format: number,
  doc: DocumentSelf,
  refs: readonly { blob: string; writeId: string; part: string }[],
): Promise<BlobHeader[]> {
  const v1 = (ref: { blob: string; writeId: string; part: string }): BlobHeader => ({
    id: ref.blob,
    key: doc.key,
    writeId: ref.writeId,
    part: ref.part,
    meta: blobMeta(doc.strategy, ref.part, doc.cold),
  });
  if (format < DATA_FORMAT_V2) return refs.map(v1);
  let fragments: Uint8Array[] | null = null;
  const headers: BlobHeader[] = [];
  for (const ref of refs) {
    const description = descriptionOf(doc, ref.part, ref.writeId, format);
    let descriptor: BlobHeader['descriptor'];
    if (description.role === 'shard') {
      fragments ??= await encodeDescriptorFragments(description);
      const bytes = fragments[Number(ref.part.slice('shard-'.length))];
      descriptor = bytes === undefined ? undefined : { kind: 'fragment', bytes };
    } else {
      descriptor = { kind: 'whole', bytes: encodeWholeDescriptor(description) };
    }
    if (descriptor === undefined || descriptor.bytes.length > BLOB_DESCRIPTOR_BYTES_MAX) {
      headers.push(v1(ref));
      continue;
    }
    headers.push({ id: ref.blob, key: '', writeId: ref.writeId, part: ref.part, meta: '', format: 2, descriptor });
  }
  return headers;
}

/**
 * The format a blob of `ref` is (re)written in by the healer: format 2 when the manifest records a 64-bit
 * checksum for it, which only a cluster at data format 2 writes, so every node reads it; format 1 otherwise, whose
 * full sha256 is what a format-1 manifest checks.
 */
export function blobFormatFor(ref: { checksum: string }): number {
  return ref.checksum.length === CHECKSUM64_HEX_DIGITS ? DATA_FORMAT_V2 : 1;
}

/** The header a blob of `manifest` is (re)written with by the healer (repairs, moves, extra replicas). */
export async function healerHeaderFor(
  manifest: Manifest,
  ref: { blob: string; writeId: string; part: string; checksum: string },
): Promise<BlobHeader> {
  const [header] = await blobHeaders(blobFormatFor(ref), documentSelfOf(manifest), [ref]);
  return header!;
}
