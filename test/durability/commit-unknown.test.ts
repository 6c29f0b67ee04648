/**
 * Guarantee: when the metadata store cannot say whether a commit happened (a timeout after the request left), the
 * gateway reads the key back: a commit that did happen is acknowledged (200), one that did not answers 504
 * COMMIT_UNKNOWN and stays invisible, and its blobs are later rolled back by the healer (architecture.md, "Write"
 * step 7). The store is wrapped so that it throws COMMIT_UNKNOWN after, or instead of, really committing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { StrataError } from '../../internal/core/errors.js';
import type { CommitRequest } from '../../internal/metadata/metadata-store.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { blobsOfKey, blobsOfWrite, docText, json, recordAborts, refNames, stat } from './durability-helpers.js';

const INTENT_TIMEOUT_MS = 30_000;

describe('commit outcome unknown', () => {
  let cluster: TestCluster;
  let aborted: Set<string>;
  const clock = new AdvancingClock();
  beforeAll(async () => {
    // The GC grace is also a write's commit deadline, so both periods are long (no write of the tests reaches
    // them, however slow the machine); the tests move the cluster's clock past the intent timeout when the healer
    // should settle a lost commit.
    cluster = await startTestCluster({
      clock,
      env: { STRATA_INTENT_TIMEOUT_MS: String(INTENT_TIMEOUT_MS), STRATA_GC_GRACE_MS: '60000' },
    });
    aborted = recordAborts(cluster);
  });
  afterAll(async () => {
    await cluster.destroy();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** The next gateway commit times out: after it was applied (`applied`) or before it reached the store. */
  function nextCommitUnknown(applied: boolean): { writeIds: string[] } {
    const original = cluster.metadata.commit.bind(cluster.metadata);
    const seen = { writeIds: [] as string[] };
    vi.spyOn(cluster.metadata, 'commit').mockImplementationOnce(async (request: CommitRequest) => {
      seen.writeIds.push(request.writeId);
      if (applied) await original(request);
      throw new StrataError('COMMIT_UNKNOWN', 'simulated: the commit request timed out');
    });
    return seen;
  }

  it('a commit that was applied although the store timed out answers 200, and the read-back confirms it', async () => {
    const key = 'unknown/applied';
    const text = docText(1, 50_000);
    nextCommitUnknown(true);
    const res = await cluster.write(key, text, '&strategy=field_hybrid');
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    const read = await cluster.read(key);
    expect(read.headers.get('x-strata-version')).toBe(body.version);
    expect(await read.text()).toBe(text);
  });

  it('an applied update after a timeout releases the superseded blobs and keeps the reused ones', async () => {
    const key = 'unknown/applied-update';
    expect((await cluster.write(key, docText(2, 50_000), '&strategy=field_hybrid')).status).toBe(200);
    const next = docText(2, 50_000, { like_count: 3 });
    nextCommitUnknown(true);
    const body = await json(await cluster.write(key, next));
    expect(body.is_pure_hot_update).toBe(true);
    await cluster.gateway.writes.drain();
    const s = await stat(cluster, key);
    expect(s.version).toBe(body.version);
    expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(s).sort());
    expect(await (await cluster.read(key)).text()).toBe(next);
  });

  it('a commit that never reached the store answers 504 COMMIT_UNKNOWN, stays invisible, and is rolled back', async () => {
    const key = 'unknown/lost';
    const seen = nextCommitUnknown(false);
    const res = await cluster.write(key, docText(3, 50_000), '&strategy=field_hybrid');
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(504);
    expect(body.error.code).toBe('COMMIT_UNKNOWN');
    expect((await cluster.read(key)).status).toBe(404);
    const writeId = seen.writeIds[0]!;
    // Its blobs are kept (the commit might still land); the healer settles it after the intent timeout.
    expect((await blobsOfWrite(cluster, writeId)).length).toBe(9);
    clock.advance(INTENT_TIMEOUT_MS + 1);
    await cluster.healer.runOnce();
    expect(aborted.has(writeId)).toBe(true);
    expect(await blobsOfWrite(cluster, writeId)).toEqual([]);
    expect((await cluster.read(key)).status).toBe(404);
  });

  it('a lost pure hot update answers 504, the old version stays, and rollback spares the reused shards', async () => {
    const key = 'unknown/lost-update';
    const original = docText(4, 50_000);
    expect((await cluster.write(key, original, '&strategy=field_hybrid')).status).toBe(200);
    const before = await stat(cluster, key);
    const seen = nextCommitUnknown(false);
    const res = await cluster.write(key, docText(4, 50_000, { like_count: 99 }));
    expect(res.status).toBe(504);
    const read = await cluster.read(key);
    expect(read.headers.get('x-strata-version')).toBe(before.version);
    expect(await read.text()).toBe(original);
    clock.advance(INTENT_TIMEOUT_MS + 1);
    await cluster.healer.runOnce();
    expect(await blobsOfWrite(cluster, seen.writeIds[0]!)).toEqual([]);
    expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(before).sort());
    expect(await (await cluster.read(key)).text()).toBe(original);
  });

  it('a delete applied although the store timed out answers 200 and the key is gone', async () => {
    const key = 'unknown/delete';
    expect((await cluster.write(key, docText(5, 5_000), '&strategy=ec')).status).toBe(200);
    nextCommitUnknown(true);
    const res = await cluster.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    await cluster.gateway.writes.drain();
    expect((await cluster.read(key)).status).toBe(404);
    expect([...(await blobsOfKey(cluster, key))]).toEqual([]);
  });
});
