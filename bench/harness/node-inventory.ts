/**
 * What the storage nodes themselves hold, listed through their HTTP API (the same one the healer uses): the
 * benchmarks count cold bytes written by pure hot updates and check that a healed cluster is fully protected from
 * it, rather than from what the gateway says.
 */
import type { BlobInfo } from '../../internal/blobstore/blob-store.js';
import { HttpNodeClient } from '../../internal/nodeclient/http-node-client.js';
import type { BenchTarget } from './target.js';

/** Blobs per inventory page. */
const LIST_PAGE = 1000;
const CALL_TIMEOUT_MS = 30_000;

export type Inventory = Map<string, BlobInfo[]>;

function clients(target: BenchTarget): { id: string; client: HttpNodeClient }[] {
  return target.nodes.map((n) => ({ id: n.id, client: new HttpNodeClient({ nodeId: n.id, address: n.address, token: target.token, timeoutMs: CALL_TIMEOUT_MS }) }));
}

/** Every node's blobs, by node id; a node that does not answer is left out. */
export async function listInventories(target: BenchTarget): Promise<Inventory> {
  const out: Inventory = new Map();
  await Promise.all(
    clients(target).map(async ({ id, client }) => {
      try {
        const blobs: BlobInfo[] = [];
        let after: string | null = null;
        for (;;) {
          const page = await client.list(after, LIST_PAGE);
          blobs.push(...page);
          if (page.length < LIST_PAGE) break;
          after = page[page.length - 1]!.id;
        }
        out.set(id, blobs);
      } catch {
        // a stopped node has no inventory to offer
      }
    }),
  );
  return out;
}

/**
 * Bytes of erasure-coded shards (`shard-*` parts) of writes that had none of their blobs in `before`: cold bytes
 * written. A write is acknowledged once a quorum of its blobs is durable and its last shards may land a moment
 * later, so a shard of a write that `before` already knew is the tail of an earlier write, not new cold work.
 */
export function newShardBytes(before: Inventory, after: Inventory): number {
  const knownWrites = new Set<string>();
  for (const blobs of before.values()) for (const blob of blobs) knownWrites.add(blob.writeId);
  let bytes = 0;
  for (const blobs of after.values()) {
    for (const blob of blobs) if (blob.part.startsWith('shard-') && !knownWrites.has(blob.writeId)) bytes += blob.size;
  }
  return bytes;
}

/** Payload bytes each node holds (its usage report). */
export async function payloadBytesByNode(target: BenchTarget): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await Promise.all(
    clients(target).map(async ({ id, client }) => {
      try {
        const usage = await client.usage();
        out.set(id, usage.payloadBytes ?? usage.bytesUsed);
      } catch {
        // down
      }
    }),
  );
  return out;
}
