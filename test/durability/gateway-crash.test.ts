/**
 * Guarantee: a write is visible exactly when its commit succeeds, and no blob is left behind forever by a gateway
 * that crashed or stalled between writing its blobs and committing (architecture.md, "Write" step 7 and "Abort,
 * rollback and garbage collection"). The crash is played with the write service's hooks: `beforeCommit` throws (the
 * process died there) or blocks (the process is paused, e.g. a long GC or a network partition).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { StrataError } from '../../internal/core/errors.js';
import type { WriteHooks } from '../../internal/writeservice/write-service.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { waitUntil } from '../helpers/wait.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import {
  STRATEGIES,
  blobsOfKey,
  blobsOfWrite,
  docText,
  json,
  recordAborts,
  refNames,
  stat,
  walRecords,
} from './durability-helpers.js';

/**
 * The cluster runs on an AdvancingClock: the tests move it past the intent timeout and the GC grace period (which
 * is also every write's commit deadline) when they mean to, so both can be long enough that no write of the tests'
 * own setup ever reaches them, however slow the machine.
 */
const INTENT_TIMEOUT_MS = 30_000;
const GC_GRACE_MS = 60_000;

describe('gateway crash between blobs and commit', () => {
  let cluster: TestCluster;
  let aborted: Set<string>;
  let beforeCommit: ((writeId: string, key: string) => Promise<void>) | null = null;
  let afterIntent: ((writeId: string, key: string) => Promise<void>) | null = null;
  let inspections = 0;
  const clock = new AdvancingClock();
  const hooks: WriteHooks = {
    beforeCommit: async (writeId, key) => beforeCommit?.(writeId, key),
    afterIntent: async (writeId, key) => afterIntent?.(writeId, key),
  };

  beforeAll(async () => {
    cluster = await startTestCluster({
      clock,
      hooks,
      env: { STRATA_INTENT_TIMEOUT_MS: String(INTENT_TIMEOUT_MS), STRATA_GC_GRACE_MS: String(GC_GRACE_MS) },
    });
    aborted = recordAborts(cluster);
  });
  afterAll(async () => {
    await cluster.destroy();
  });
  beforeEach(() => {
    beforeCommit = null;
    afterIntent = null;
  });

  /** The WAL as it stands: does `writeId` have an intent, and an outcome? */
  async function walState(writeId: string): Promise<{ intent: boolean; outcome: string | null }> {
    const records = await walRecords(cluster, `inspect-${inspections++}`);
    const intent = records.some((r) => r.type === 'intent' && r.writeId === writeId);
    const outcome = records.find((r) => r.type === 'outcome' && r.writeId === writeId);
    return { intent, outcome: outcome?.type === 'outcome' ? outcome.outcome : null };
  }

  for (const strategy of STRATEGIES) {
    it(`a gateway that dies before committing a ${strategy} write leaves nothing visible, and the healer rolls it back`, async () => {
      const key = `crash/${strategy}`;
      let crashed: string | null = null;
      beforeCommit = async (writeId) => {
        crashed = writeId;
        throw new Error('simulated gateway crash before the commit');
      };
      const res = await cluster.write(key, docText(1, 50_000), `&strategy=${strategy}`);
      expect(res.status).toBeGreaterThanOrEqual(500);
      beforeCommit = null;
      const writeId = crashed as string | null;
      expect(writeId).not.toBeNull();

      expect((await cluster.read(key)).status).toBe(404);
      expect((await cluster.fetch(`/stat/${encodeURIComponent(key)}`)).status).toBe(404);
      const expectedBlobs = strategy === 'replication' ? 3 : strategy === 'ec' ? 6 : 9;
      expect((await blobsOfWrite(cluster, writeId!)).length).toBe(expectedBlobs);
      expect(await walState(writeId!)).toEqual({ intent: true, outcome: null });
      expect(await cluster.metadata.isAborted(writeId!)).toBe(false);

      clock.advance(INTENT_TIMEOUT_MS + 1);
      await cluster.healer.runOnce();
      expect(aborted.has(writeId!)).toBe(true);
      expect(await blobsOfWrite(cluster, writeId!)).toEqual([]);
      expect((await cluster.read(key)).status).toBe(404);
    });
  }

  it('blobs a rollback failed to delete (the healer died after its abort record) are removed by the inventory pass', async () => {
    const key = 'crash/rollback-interrupted';
    let crashed: string | null = null;
    beforeCommit = async (writeId) => {
      crashed = writeId;
      throw new Error('simulated gateway crash before the commit');
    };
    expect((await cluster.write(key, docText(8, 30_000), '&strategy=field_hybrid')).status).toBeGreaterThanOrEqual(500);
    beforeCommit = null;
    const writeId = crashed as string | null;
    clock.advance(INTENT_TIMEOUT_MS + 1);
    // The healer writes the abort record, then every delete it sends is lost (it died, or the nodes were cut off).
    const spies = cluster.nodes.map((n) =>
      vi.spyOn(n.client, 'delete').mockRejectedValue(new StrataError('NODE_UNAVAILABLE', 'simulated: healer died mid-rollback')),
    );
    try {
      await cluster.healer.runOnce();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(aborted.has(writeId!)).toBe(true);
    expect((await blobsOfWrite(cluster, writeId!)).length).toBe(9);

    clock.advance(GC_GRACE_MS + 1); // past the GC grace period
    await cluster.healer.runOnce({ forceAudit: true });
    expect(await blobsOfWrite(cluster, writeId!)).toEqual([]);
    expect((await cluster.read(key)).status).toBe(404);
  });

  it('a crashed pure hot update is rolled back without touching the cold shards it reused', async () => {
    const key = 'crash/pure-hot';
    const original = docText(2, 50_000);
    expect((await cluster.write(key, original, '&strategy=field_hybrid')).status).toBe(200);
    const before = await stat(cluster, key);
    let crashed: string | null = null;
    beforeCommit = async (writeId) => {
      crashed = writeId;
      throw new Error('simulated gateway crash before the commit');
    };
    const res = await cluster.write(key, docText(2, 50_000, { like_count: 3 }));
    expect(res.status).toBeGreaterThanOrEqual(500);
    beforeCommit = null;
    const writeId = crashed as string | null;
    expect((await blobsOfWrite(cluster, writeId!)).length).toBe(3); // hot replicas only

    clock.advance(INTENT_TIMEOUT_MS + 1);
    await cluster.healer.runOnce();
    expect(await blobsOfWrite(cluster, writeId!)).toEqual([]);
    expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(before).sort());
    const read = await cluster.read(key);
    expect(read.headers.get('x-strata-version')).toBe(before.version);
    expect(await read.text()).toBe(original);
  });

  it('a gateway that dies right after its intent leaves nothing, and the intent is resolved', async () => {
    const key = 'crash/after-intent';
    let crashed: string | null = null;
    afterIntent = async (writeId) => {
      crashed = writeId;
      throw new Error('simulated gateway crash after the intent');
    };
    expect((await cluster.write(key, docText(3, 5_000))).status).toBeGreaterThanOrEqual(500);
    afterIntent = null;
    const writeId = crashed as string | null;
    expect(await walState(writeId!)).toEqual({ intent: true, outcome: null });
    clock.advance(INTENT_TIMEOUT_MS + 1);
    await cluster.healer.runOnce();
    expect(aborted.has(writeId!)).toBe(true);
    expect((await cluster.read(key)).status).toBe(404);
    expect(await blobsOfWrite(cluster, writeId!)).toEqual([]);
  });

  for (const existing of [false, true]) {
    it(`a gateway that resumes after the healer aborted its write cannot commit (${existing ? 'existing' : 'absent'} key)`, async () => {
      const key = `crash/paused/${existing ? 'existing' : 'absent'}`;
      const original = docText(4, 50_000);
      if (existing) expect((await cluster.write(key, original, '&strategy=field_hybrid')).status).toBe(200);
      const before = existing ? await stat(cluster, key) : null;

      let paused: string | null = null;
      let resume!: () => void;
      const gate = new Promise<void>((resolve) => (resume = resolve));
      beforeCommit = async (writeId) => {
        paused = writeId;
        await gate;
      };
      const pending = cluster.write(key, docText(5, 50_000), '&strategy=field_hybrid');
      await waitUntil('the write to reach its commit', () => paused !== null);
      const writeId = paused as string | null;
      beforeCommit = null;

      // While it is paused: not visible, blobs stored, intent without outcome.
      const whilePaused = await cluster.read(key);
      if (existing) expect(await whilePaused.text()).toBe(original);
      else expect(whilePaused.status).toBe(404);
      expect((await blobsOfWrite(cluster, writeId!)).length).toBe(9);
      expect(await walState(writeId!)).toEqual({ intent: true, outcome: null });

      clock.advance(INTENT_TIMEOUT_MS + 1);
      await cluster.healer.runOnce();
      expect(aborted.has(writeId!)).toBe(true);
      expect(await blobsOfWrite(cluster, writeId!)).toEqual([]);

      resume();
      const res = await pending;
      const body = await json(res);
      expect(res.status, JSON.stringify(body)).toBe(503);
      expect(body.error.code).toBe('WRITE_ABORTED');
      if (existing) {
        const after = await cluster.read(key);
        expect(after.headers.get('x-strata-version')).toBe(before!.version);
        expect(await after.text()).toBe(original);
        expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(before!).sort());
      } else {
        expect((await cluster.read(key)).status).toBe(404);
        expect([...(await blobsOfKey(cluster, key))]).toEqual([]);
      }
      expect((await walState(writeId!)).outcome).toBe('failed');
    });
  }

  it('a gateway that resumes after its abort record expired still cannot commit', async () => {
    const key = 'crash/paused-past-grace';
    let paused: string | null = null;
    let resume!: () => void;
    const gate = new Promise<void>((resolve) => (resume = resolve));
    beforeCommit = async (writeId) => {
      paused = writeId;
      await gate;
    };
    const pending = cluster.write(key, docText(7, 20_000), '&strategy=field_hybrid');
    await waitUntil('the write to reach its commit', () => paused !== null);
    beforeCommit = null;
    const writeId = paused as string | null;
    clock.advance(INTENT_TIMEOUT_MS + 1);
    await cluster.healer.runOnce();
    expect(aborted.has(writeId!)).toBe(true);
    expect(await blobsOfWrite(cluster, writeId!)).toEqual([]);
    // Abort records expire after the GC grace period; the paused gateway is still paused.
    clock.advance(GC_GRACE_MS + 1);
    await cluster.healer.runOnce({ forceAudit: true });
    expect(await cluster.metadata.isAborted(writeId!)).toBe(false);

    resume();
    const res = await pending;
    const body = await json(res);
    // Committing now would publish a manifest whose blobs were deleted: the write must be refused.
    expect(res.status, JSON.stringify(body)).toBe(503);
    expect(body.error.code).toBe('WRITE_ABORTED');
    expect((await cluster.read(key)).status).toBe(404);
    expect((await cluster.fetch(`/stat/${encodeURIComponent(key)}`)).status).toBe(404);
  });

  it('a delete that resumes after the healer aborted it cannot commit: the key stays readable', async () => {
    const key = 'crash/paused-delete';
    const original = docText(6, 20_000);
    expect((await cluster.write(key, original, '&strategy=ec')).status).toBe(200);
    const before = await stat(cluster, key);
    let paused: string | null = null;
    let resume!: () => void;
    const gate = new Promise<void>((resolve) => (resume = resolve));
    beforeCommit = async (writeId) => {
      paused = writeId;
      await gate;
    };
    const pending = cluster.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE' });
    await waitUntil('the delete to reach its commit', () => paused !== null);
    beforeCommit = null;
    clock.advance(INTENT_TIMEOUT_MS + 1);
    await cluster.healer.runOnce();
    resume();
    const res = await pending;
    expect(res.status).toBe(503);
    expect((await json(res)).error.code).toBe('WRITE_ABORTED');
    const read = await cluster.read(key);
    expect(read.headers.get('x-strata-version')).toBe(before.version);
    expect(await read.text()).toBe(original);
    expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(before).sort());
  });
});
