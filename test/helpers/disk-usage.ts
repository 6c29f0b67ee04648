/**
 * What a storage node's directory holds on disk against what it needs to hold, for the reclamation bound
 * (internal/blobstore/volume/README.md, "Reclamation"): at rest, the allocated bytes of a node directory are at
 * most 1.3x its live need + 4 MiB, where the live need is the needle bytes of its live blobs plus the index
 * checkpoint that lists them.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { VolumeBlobStore } from '../../internal/blobstore/volume/volume-blob-store.js';
import type { AllInOne } from '../../internal/wiring/all-in-one.js';

const MIB = 1024 * 1024;
/** The bound the store promises at rest: allocated bytes <= 1.3 x live need + 4 MiB. */
export const AT_REST_RATIO_MAX = 1.3;
export const AT_REST_SLACK_BYTES = 4 * MIB;

/** The most a directory whose live need is `needBytes` may have allocated at rest. */
export function atRestBoundBytes(needBytes: number): number {
  return AT_REST_RATIO_MAX * needBytes + AT_REST_SLACK_BYTES;
}

/**
 * Bytes allocated to every file under `dir` (st_blocks x 512, what `du` counts). A file that goes between the listing
 * and its stat (a store's temporary file renamed or removed by its background work) holds nothing: it counts 0.
 */
export async function allocatedBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await allocatedBytes(full);
    else total += ((await stat(full).catch(ignoreGone))?.blocks ?? 0) * 512;
  }
  return total;
}

function ignoreGone(error: NodeJS.ErrnoException): null {
  if (error.code === 'ENOENT') return null;
  throw error;
}

/** The size of the store's index checkpoint in `dir` (0 while it has none). */
export async function indexCheckpointBytes(dir: string): Promise<number> {
  return (await stat(path.join(dir, 'index.ckpt')).catch(() => null))?.size ?? 0;
}

/** The live need of a store: the needle bytes of its live blobs (usage().bytesUsed) plus its index checkpoint. */
export async function liveNeedBytes(store: VolumeBlobStore, dir: string): Promise<number> {
  return (await store.usage()).bytesUsed + (await indexCheckpointBytes(dir));
}

export interface NodeBytes {
  node: string;
  allocated: number;
  /** Needle bytes of the blobs counted as live on the node plus its index checkpoint. */
  need: number;
}

/**
 * Per node of an in-process cluster: its directory's allocated bytes and its live need. The needle bytes counted
 * are `liveNeedleBytes(node, store)` when given (e.g. only the blobs a live manifest references), else every live
 * blob the store holds (usage().bytesUsed).
 */
export async function nodeDirectoryBytes(
  cluster: AllInOne,
  liveNeedleBytes?: (node: string, store: VolumeBlobStore) => number | Promise<number>,
): Promise<NodeBytes[]> {
  return Promise.all(
    cluster.nodes.map(async (node) => {
      const store = node.server?.store;
      if (store === undefined) throw new Error(`${node.id} is not running`);
      const needles = liveNeedleBytes ? await liveNeedleBytes(node.id, store) : (await store.usage()).bytesUsed;
      const checkpoint = await indexCheckpointBytes(node.dataDir);
      return { node: node.id, allocated: await allocatedBytes(node.dataDir), need: needles + checkpoint };
    }),
  );
}

export function withinAtRestBound(n: NodeBytes): boolean {
  return n.allocated <= atRestBoundBytes(n.need);
}

/** One line per node, for failure messages. */
export function describeNodeBytes(all: NodeBytes[]): string {
  return all.map((n) => `${n.node}: ${(n.allocated / MIB).toFixed(2)} MiB allocated, need ${(n.need / MIB).toFixed(2)} MiB`).join('; ');
}
