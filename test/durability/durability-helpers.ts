/**
 * Shared pieces of the durability tests: documents whose exact bytes are known, views of /stat and of the nodes'
 * inventories, and the failures the tests inject (a flipped byte on disk, a blob no manifest knows).
 */
import path from 'node:path';
import { flipPayloadByteOnDisk } from '../blobstore/volume-harness/flip.js';
import { blobIdOf, newWriteId } from '../../internal/core/ids.js';
import type { BlobInfo } from '../../internal/blobstore/blob-store.js';
import { blobKeys } from '../../internal/healer/blob-keys.js';
import type { WalRecord } from '../../internal/wal/write-ahead-log.js';
import { inventory, type TestCluster } from '../helpers/cluster.js';
import { CONDITION_TIMEOUT_MS, waitUntil } from '../helpers/wait.js';

export const STRATEGIES = ['replication', 'ec', 'field_hybrid'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

export interface StatRef {
  node: string;
  blob: string;
  state: string;
  part?: string;
  index?: number;
  size: number;
}

export interface StatBody {
  key: string;
  version: string;
  strategy: StrategyName;
  dirty: boolean;
  write_id: string;
  hot: StatRef[];
  cold: StatRef[];
}

/** The parsed JSON body of a response (the tests know its shape). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function json(res: Response): Promise<any> {
  return res.json();
}

export async function stat(cluster: TestCluster, key: string): Promise<StatBody> {
  const res = await cluster.fetch(`/stat/${encodeURIComponent(key)}`);
  if (res.status !== 200) throw new Error(`stat ${key}: ${res.status} ${await res.text()}`);
  return (await res.json()) as StatBody;
}

export function refsOf(s: StatBody): StatRef[] {
  return [...s.hot, ...s.cold];
}

/** `node/blob` of every blob a manifest references. */
export function refNames(s: StatBody): string[] {
  return refsOf(s).map((r) => `${r.node}/${r.blob}`);
}

/** Every blob on every running node, with its header (key, write id, part), keyed `node/blob`. */
export async function fullInventory(cluster: TestCluster): Promise<Map<string, BlobInfo & { node: string }>> {
  const out = new Map<string, BlobInfo & { node: string }>();
  for (const node of cluster.nodes) {
    if (!node.server) continue;
    let after: string | null = null;
    for (;;) {
      const page = await node.server.store.list(after, 1000);
      for (const b of page) out.set(`${node.id}/${b.id}`, { ...b, node: node.id });
      if (page.length < 1000) break;
      after = page[page.length - 1]!.id;
    }
  }
  return out;
}

/**
 * Every blob on every running node, `node/blob` -> the key it belongs to: the header's (format 1) or the one its
 * descriptors name (format 2), as garbage collection finds it; '' when they name none.
 */
export async function inventoryKeys(cluster: TestCluster): Promise<Map<string, string>> {
  const all = await fullInventory(cluster);
  const byNode = new Map<string, Map<string, BlobInfo>>();
  for (const info of all.values()) {
    if (!byNode.has(info.node)) byNode.set(info.node, new Map());
    byNode.get(info.node)!.set(info.id, info);
  }
  const keyOf = await blobKeys(byNode);
  return new Map([...all].map(([name, info]) => [name, keyOf(info) ?? '']));
}

/** The inventory entries (`node/blob`) that belong to `key` (inventoryKeys). */
export async function blobsOfKey(cluster: TestCluster, key: string): Promise<Set<string>> {
  return new Set([...(await inventoryKeys(cluster))].filter(([, k]) => k === key).map(([name]) => name));
}

/** Inventory entries whose blob id belongs to `writeId`. */
export async function blobsOfWrite(cluster: TestCluster, writeId: string): Promise<string[]> {
  return [...(await inventory(cluster)).values()].filter((b) => b.id.startsWith(`${writeId}.`)).map((b) => `${b.node}/${b.id}`);
}

/**
 * A compact JSON document of about `targetBytes` with hot members `like_count` and `view_count` (the default hot
 * fields), nested objects, unicode, and number text that JavaScript numbers could not keep. Reading it back must
 * give exactly these bytes.
 */
export function docText(seed: number, targetBytes: number, hot: { like_count?: number; view_count?: number; views?: number } = {}): string {
  const like = hot.like_count ?? seed;
  const view = hot.view_count ?? seed * 10;
  const head = `{"id":1234567890123456789${seed % 10},"like_count":${like},"title":"doc ${seed} héllo 😀","price":19.90,` +
    `"stats":{"views":${hot.views ?? seed},"ratio":1.0E-7},"items":[`;
  const tail = `],"view_count":${view},"done":true}`;
  // The number of items depends on targetBytes alone, so documents that differ only in hot values differ only there.
  const items: string[] = [];
  const count = Math.max(1, Math.round(targetBytes / 62));
  for (let i = 0; i < count; i++) {
    items.push(`{"i":${i},"s":${seed},"v":"${'abcdefghij'.repeat(3)}-${(i * 7919 + seed) % 100003}","n":${i}.50}`);
  }
  return head + items.join(',') + tail;
}

/** Flips one payload byte of a blob in its volume file on disk, behind the store's back (bit rot). */
export async function flipPayloadByte(cluster: TestCluster, nodeId: string, blobId: string): Promise<void> {
  const node = cluster.nodes.find((n) => n.id === nodeId)!;
  if (!node.server) throw new Error(`${nodeId} is not running`);
  await flipPayloadByteOnDisk(node.server.store, blobId);
}

export function storeOf(cluster: TestCluster, nodeId: string) {
  const node = cluster.nodes.find((n) => n.id === nodeId)!;
  if (!node.server) throw new Error(`${nodeId} is not running`);
  return node.server.store;
}

/** Puts a blob that no write intent and no manifest knows, as a crashed gateway from long ago would leave. */
export async function putOrphan(cluster: TestCluster, nodeId: string, key: string): Promise<string> {
  const writeId = newWriteId();
  const id = blobIdOf(writeId, 'hot-0');
  const node = cluster.nodes.find((n) => n.id === nodeId)!;
  await node.client.put({ id, key, writeId, part: 'hot-0', meta: '{"strategy":"replication","role":"hot"}' }, Buffer.from('{"orphan":true}'));
  return id;
}

/** Every record in the WAL, read by a consumer group of its own (so the healer's position is not disturbed). */
export async function walRecords(cluster: TestCluster, group: string): Promise<WalRecord[]> {
  const consumer = await cluster.wal.consumer(group);
  const out: WalRecord[] = [];
  try {
    for (;;) {
      const entries = await consumer.poll(1000, 0);
      out.push(...entries.flatMap((e) => (e.record === null ? [] : [e.record])));
      if (entries.length < 1000) break;
    }
  } finally {
    await consumer.close();
  }
  return out;
}

/** Polls `check` until it returns true; fails after `timeoutMs` (generous by default: see test/helpers/wait.ts). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = CONDITION_TIMEOUT_MS, what = 'condition'): Promise<void> {
  await waitUntil(what, check, timeoutMs);
}

export function dataDirOf(cluster: TestCluster): string {
  return path.resolve(cluster.dataDir);
}

/**
 * Records every write id the cluster's metadata store accepts an abort record for, from now on. Abort records
 * expire after the GC grace period, and tests move their clock past it, so "was this write aborted" is answered
 * from what was written, not from a record that may be gone.
 */
export function recordAborts(cluster: TestCluster): Set<string> {
  const aborted = new Set<string>();
  const metadata = cluster.metadata;
  const abort = metadata.abort.bind(metadata);
  metadata.abort = async (request) => {
    const accepted = await abort(request);
    if (accepted) aborted.add(request.writeId);
    return accepted;
  };
  return aborted;
}
