/**
 * Blob transfers shared by the write path, the read path and the healer: parallel puts with a quorum, replica
 * reads with a hedge, shard reads that fall back to parity. Every byte read is checked against the checksum
 * the manifest recorded, so a node that returns wrong bytes is treated exactly like a node that returns none.
 */
import type { NodePool } from '../cluster/node-pool.js';
import { StrataError, isStrataError } from '../core/errors.js';
import type { BlobRef } from '../manifest/manifest.js';
import type { BlobHeader } from '../blobstore/blob-store.js';
import { checksumMatches, checksumOf } from './checksum.js';

export interface PutTarget {
  node: string;
  header: BlobHeader;
  data: Buffer;
}

export interface PutOutcome {
  target: PutTarget;
  ok: boolean;
  error?: unknown;
}

/** Puts every target in parallel and reports each outcome; never throws. */
export async function putAll(pool: NodePool, targets: readonly PutTarget[], timeoutMs: number): Promise<PutOutcome[]> {
  return Promise.all(
    targets.map(async (target): Promise<PutOutcome> => {
      const client = pool.client(target.node);
      if (!client) return { target, ok: false, error: new StrataError('NODE_UNAVAILABLE', `unknown node ${target.node}`) };
      if (!pool.isHealthy(target.node)) {
        // Known down: do not wait for a timeout; the write is partial and the healer completes it.
        return { target, ok: false, error: new StrataError('NODE_UNAVAILABLE', `node ${target.node} is down`) };
      }
      try {
        await client.put(target.header, target.data, { timeoutMs });
        pool.observe(target.node, null);
        return { target, ok: true };
      } catch (error) {
        pool.observe(target.node, error);
        return { target, ok: false, error };
      }
    }),
  );
}

/** Deletes blobs best-effort (garbage left by a failure here is collected by the healer's inventory pass). */
export async function deleteAll(pool: NodePool, refs: readonly { node: string; blob: string }[], timeoutMs: number): Promise<number> {
  let deleted = 0;
  await Promise.all(
    refs.map(async (ref) => {
      const client = pool.client(ref.node);
      if (!client) return;
      try {
        if (await client.delete(ref.blob, { timeoutMs })) deleted++;
        pool.observe(ref.node, null);
      } catch (error) {
        pool.observe(ref.node, error);
      }
    }),
  );
  return deleted;
}

export type FetchProblem = { ref: BlobRef; kind: 'missing' | 'corrupt' | 'unavailable' };

/** Reads one blob and checks it end to end. */
export async function fetchVerified(pool: NodePool, ref: BlobRef, timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
  const client = pool.client(ref.node);
  if (!client) throw new StrataError('NODE_UNAVAILABLE', `unknown node ${ref.node}`);
  let data: Buffer;
  try {
    data = await client.get(ref.blob, signal ? { timeoutMs, signal } : { timeoutMs });
    pool.observe(ref.node, null);
  } catch (error) {
    pool.observe(ref.node, error);
    throw error;
  }
  if (data.length !== ref.size || !checksumMatches(ref.checksum, checksumOf(data))) {
    throw new StrataError('BLOB_CORRUPT', `blob ${ref.blob} on ${ref.node} does not match its checksum`);
  }
  return data;
}

export function problemKind(error: unknown): FetchProblem['kind'] {
  if (isStrataError(error, 'BLOB_NOT_FOUND')) return 'missing';
  if (isStrataError(error, 'BLOB_CORRUPT')) return 'corrupt';
  return 'unavailable';
}

/**
 * One good copy of a replicated blob: asks the replicas in order (healthy ones first), and when the current
 * one has not answered within `hedgeAfterMs` also asks the next, taking whichever verified answer comes first.
 */
export async function fetchReplica(
  pool: NodePool,
  refs: readonly BlobRef[],
  options: { timeoutMs: number; hedgeAfterMs: number; startIndex?: number },
): Promise<{ data: Buffer; problems: FetchProblem[] }> {
  const ordered = orderByHealth(pool, refs, options.startIndex ?? 0);
  const problems: FetchProblem[] = [];
  if (ordered.length === 0) throw new StrataError('INSUFFICIENT_NODES', 'the document has no replicas to read');
  const controller = new AbortController();
  return new Promise((resolve, reject) => {
    let next = 0;
    let inFlight = 0;
    let done = false;
    let hedgeTimer: NodeJS.Timeout | null = null;
    const launch = (): void => {
      if (done || next >= ordered.length) return;
      const ref = ordered[next++]!;
      inFlight++;
      if (hedgeTimer) clearTimeout(hedgeTimer);
      hedgeTimer = setTimeout(launch, options.hedgeAfterMs);
      fetchVerified(pool, ref, options.timeoutMs, controller.signal).then(
        (data) => {
          inFlight--;
          if (done) return;
          done = true;
          if (hedgeTimer) clearTimeout(hedgeTimer);
          controller.abort();
          resolve({ data, problems });
        },
        (error) => {
          inFlight--;
          if (done) return;
          problems.push({ ref, kind: problemKind(error) });
          if (next < ordered.length) launch();
          else if (inFlight === 0) {
            done = true;
            if (hedgeTimer) clearTimeout(hedgeTimer);
            reject(Object.assign(
              new StrataError('INSUFFICIENT_NODES', `no replica of the document could be read (${describe(problems)})`),
              { problems },
            ));
          }
        },
      );
    };
    launch();
  });
}

/**
 * Enough shards to rebuild the cold part: the data shards first (no decoding needed when all four arrive),
 * parity shards as soon as one fails or is slower than `hedgeAfterMs`. Resolves with `need` verified shards.
 */
export async function fetchShards(
  pool: NodePool,
  refs: readonly BlobRef[],
  options: { timeoutMs: number; hedgeAfterMs: number; need: number },
): Promise<{ shards: (Buffer | null)[]; problems: FetchProblem[] }> {
  const shards: (Buffer | null)[] = refs.map(() => null);
  const problems: FetchProblem[] = [];
  const controller = new AbortController();
  // Healthy nodes first, then by shard index, so data shards are preferred.
  const order = refs
    .map((ref, index) => ({ ref, index }))
    .sort((a, b) => Number(!pool.isHealthy(a.ref.node)) - Number(!pool.isHealthy(b.ref.node)) || a.index - b.index);
  return new Promise((resolve, reject) => {
    let next = 0;
    let inFlight = 0;
    let good = 0;
    let done = false;
    let hedgeTimer: NodeJS.Timeout | null = null;
    const finish = (error?: StrataError): void => {
      done = true;
      if (hedgeTimer) clearTimeout(hedgeTimer);
      controller.abort();
      if (error) reject(Object.assign(error, { problems }));
      else resolve({ shards, problems });
    };
    const giveUpIfExhausted = (): void => {
      // Every shard has been asked and answered, and too few were good. This must be checked after a success
      // as well as after a failure: when the last answer to arrive is a good shard that still leaves the count
      // below `need`, nothing else would ever settle the promise and the read would hang.
      if (done || good >= options.need || next < order.length || inFlight > 0) return;
      finish(new StrataError(
        'INSUFFICIENT_NODES',
        `only ${good} of ${refs.length} shards could be read, ${options.need} are needed (${describe(problems)})`,
      ));
    };
    const launchOne = (): void => {
      const item = order[next++]!;
      inFlight++;
      fetchVerified(pool, item.ref, options.timeoutMs, controller.signal).then(
        (data) => {
          inFlight--;
          if (done) return;
          shards[item.index] = data;
          good++;
          if (good >= options.need) finish();
          else giveUpIfExhausted();
        },
        (error) => {
          inFlight--;
          if (done) return;
          problems.push({ ref: item.ref, kind: problemKind(error) });
          if (next < order.length) launchOne();
          else giveUpIfExhausted();
        },
      );
    };
    const initial = Math.min(options.need, order.length);
    for (let i = 0; i < initial; i++) launchOne();
    const hedge = (): void => {
      if (done || next >= order.length) return;
      launchOne();
      hedgeTimer = setTimeout(hedge, options.hedgeAfterMs);
    };
    hedgeTimer = setTimeout(hedge, options.hedgeAfterMs);
    if (initial < options.need) finish(new StrataError('INSUFFICIENT_NODES', `the document has only ${refs.length} shards`));
  });
}

function orderByHealth(pool: NodePool, refs: readonly BlobRef[], start: number): BlobRef[] {
  const rotated = refs.map((_, i) => refs[(i + start) % refs.length]!);
  return rotated.sort((a, b) => Number(!pool.isHealthy(a.node)) - Number(!pool.isHealthy(b.node)));
}

function describe(problems: readonly FetchProblem[]): string {
  if (problems.length === 0) return 'no answers';
  return problems.map((p) => `${p.ref.part} on ${p.ref.node}: ${p.kind}`).join(', ');
}
