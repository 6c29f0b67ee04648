/**
 * Shared pieces of the cluster tests (test/cluster/*.test.ts): one local cluster per file (scripts/local-cluster.ts:
 * real etcd, Kafka, nginx and separate Strata processes), HTTP helpers, the storage nodes' inventories through
 * their own HTTP API, and bounded waiting. Everything here goes through the processes' public interfaces; nothing
 * reaches into a process.
 *
 * A file whose tests failed keeps its cluster's data directory (every process's log is in `<dir>/logs`) and says
 * where; STRATA_TEST_KEEP_CLUSTER=1 keeps it always.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, vi } from 'vitest';
import { startLocalCluster, type LocalCluster, type LocalClusterOptions, type Proc } from '../../scripts/local-cluster.js';
import { fetchOnFreshConnection } from '../helpers/fresh-connection.js';

export const CLUSTER_TEST_LIMITS = {
  /** Starting etcd, Kafka, nginx and eleven Strata processes; about 10 s alone on 2 cores, more beside other tests. */
  startTimeoutMs: 150_000,
  /** Stopping them all: each Strata process has 15 s to drain, SIGKILL after 20 s (scripts/cluster/proc.ts). */
  stopTimeoutMs: 90_000,
  /** One HTTP request of a test. */
  requestTimeoutMs: 30_000,
} as const;

/**
 * Starts a local cluster for the file before its tests and stops it after them. Returns a getter (the cluster
 * exists only once beforeAll has run).
 */
export function useLocalCluster(name: string, options: Omit<LocalClusterOptions, 'dataDir'> = {}): () => LocalCluster {
  let cluster: LocalCluster | null = null;
  let dataDir: string | null = null;
  let failed = false;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), `strata-cluster-${name}-`));
    cluster = await startLocalCluster({ ...options, dataDir });
  }, CLUSTER_TEST_LIMITS.startTimeoutMs);
  afterEach((context) => {
    if (context.task.result?.state === 'fail') failed = true;
  });
  afterAll(async () => {
    await cluster?.stop();
    if (dataDir === null) return;
    if (failed || process.env['STRATA_TEST_KEEP_CLUSTER'] === '1') {
      process.stderr.write(`${name}: the cluster's data and logs are kept in ${dataDir}\n`);
    } else {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, CLUSTER_TEST_LIMITS.stopTimeoutMs);
  return () => {
    if (cluster === null) throw new Error('the local cluster has not started (beforeAll failed or has not run)');
    return cluster;
  };
}

// ---- HTTP ----------------------------------------------------------------------------------------------------

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body, or null when the body is not JSON. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** One request with a deadline, on a connection of its own (see fetchOnFreshConnection); the body is read whole. */
export async function request(base: string, pathAndQuery: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetchOnFreshConnection(`${base}${pathAndQuery}`, { signal: AbortSignal.timeout(CLUSTER_TEST_LIMITS.requestTimeoutMs), ...init });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export function writeDoc(base: string, key: string, doc: unknown, query = '', headers: Record<string, string> = {}): Promise<Answer> {
  return request(base, `/write?key=${encodeURIComponent(key)}${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof doc === 'string' ? doc : JSON.stringify(doc),
  });
}

export function mergePatch(base: string, key: string, patch: unknown): Promise<Answer> {
  return request(base, `/patch/${encodeURIComponent(key)}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify(patch),
  });
}

export function readDoc(base: string, key: string): Promise<Answer> {
  return request(base, `/read/${encodeURIComponent(key)}`);
}

export function statDoc(base: string, key: string): Promise<Answer> {
  return request(base, `/stat/${encodeURIComponent(key)}`);
}

/**
 * A document with a cold part large enough to be erasure coded into real shards. The body is incompressible (a
 * base64 hash chain, deterministic per document): compressible text would be compressed, and shrink so far that it
 * is kept as copies beside the replicas instead of shards (internal/coldpart).
 */
export function docOf(i: number, coldBytes = 20_000): Record<string, unknown> {
  const chunks: Buffer[] = [];
  let block = createHash('sha256').update(`document ${i}`).digest();
  for (let size = 0; size < coldBytes; size += 44) {
    chunks.push(block);
    block = createHash('sha256').update(block).digest();
  }
  return { like_count: i, view_count: i * 2, title: `document ${i}`, body: Buffer.concat(chunks).toString('base64').slice(0, coldBytes) };
}

// ---- storage nodes -------------------------------------------------------------------------------------------

/** A blob as a storage node lists it (internal/storagenode/README.md, "BlobInfo"). */
export interface NodeBlob {
  id: string;
  key: string;
  writeId: string;
  part: string;
  size: number;
  createdAtMs: number;
}

/** Every blob `node` holds, through its HTTP API (GET /v1/blobs, paged) with the cluster token. */
export async function nodeInventory(cluster: LocalCluster, node: Proc): Promise<NodeBlob[]> {
  const out: NodeBlob[] = [];
  let after: string | null = null;
  for (;;) {
    const query: string = after === null ? 'limit=1000' : `limit=1000&after=${encodeURIComponent(after)}`;
    const answer = await request(node.address!, `/v1/blobs?${query}`, { headers: { authorization: `Bearer ${cluster.token}` } });
    if (answer.status !== 200) throw new Error(`GET /v1/blobs on ${node.name}: ${answer.status} ${answer.text}`);
    const page = answer.json as { blobs: NodeBlob[]; next: string | null };
    out.push(...page.blobs);
    if (page.next === null) return out;
    after = page.next;
  }
}

/** `node-id/blob-id` of every blob of `key` on every running node. */
export async function blobsOfKey(cluster: LocalCluster, key: string): Promise<Map<string, NodeBlob>> {
  const out = new Map<string, NodeBlob>();
  for (const node of cluster.nodes) {
    if (!node.running) continue;
    for (const blob of await nodeInventory(cluster, node)) if (blob.key === key) out.set(`${node.name}/${blob.id}`, blob);
  }
  return out;
}

// ---- waiting -------------------------------------------------------------------------------------------------

/**
 * Polls `probe` until it returns something other than null, undefined or false, and returns that; fails after
 * `timeoutMs` with `what` and the last value or error seen.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs: number, intervalMs = 250): Promise<T> {
  let last: unknown = 'nothing yet';
  try {
    return await vi.waitFor(
      async () => {
        let value: T | null | undefined | false;
        try {
          value = await probe();
        } catch (err) {
          last = err;
          throw err;
        }
        if (value === null || value === undefined || value === false) {
          last = value;
          throw new Error('not yet');
        }
        return value;
      },
      { timeout: timeoutMs, interval: intervalMs },
    );
  } catch {
    const shown = last instanceof Error ? last.message : JSON.stringify(last);
    throw new Error(`waited ${timeoutMs} ms for ${what}; last: ${shown}`);
  }
}

/** The healer holder id /cluster names as leader (`healer-<pid>-<hex>`), or null. */
export async function healerLeader(base: string): Promise<string | null> {
  const answer = await request(base, '/cluster');
  if (answer.status !== 200) return null;
  return (answer.json as { healer_leader: string | null }).healer_leader;
}

/** The healer process a holder id belongs to (holder ids start with the process id: internal/wiring/healer.ts). */
export function healerProcOf(cluster: LocalCluster, holder: string): Proc | undefined {
  return cluster.healers.find((h) => h.pid !== null && holder.startsWith(`healer-${h.pid}-`));
}
