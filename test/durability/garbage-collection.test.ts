/**
 * Guarantees: no blob is left behind forever by a failed or crashed write, no blob a manifest references is ever
 * deleted, and the space of deleted and superseded versions is reclaimed (architecture.md, "Abort, rollback and
 * garbage collection", "Guarantees"). The grace period is made tiny so that every pass is as aggressive as it can be.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import { Healer } from '../../internal/healer/healer.js';
import { healerOptions } from '../../internal/wiring/healer.js';
import { silentLogger } from '../../internal/log/logger.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { yieldToEventLoop } from '../helpers/wait.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import {
  STRATEGIES,
  blobsOfKey,
  blobsOfWrite,
  docText,
  fullInventory,
  json,
  putOrphan,
  recordAborts,
  refNames,
  stat,
} from './durability-helpers.js';

// The clusters run on an AdvancingClock, which the tests move past the grace periods when they mean to. The GC
// grace is also every write's commit deadline (architecture.md), so it is long: no write of a test's own ever
// reaches it, however slow the machine.
const GRACE_MS = 60_000;
const INTENT_TIMEOUT_MS = 30_000;
const ENV = {
  STRATA_INTENT_TIMEOUT_MS: String(INTENT_TIMEOUT_MS),
  STRATA_GC_GRACE_MS: String(GRACE_MS),
  STRATA_TOMBSTONE_GRACE_MS: String(GRACE_MS),
};

/** A cluster of the describe block's own on an AdvancingClock, started before its tests and destroyed after. */
function useCluster(): { readonly cluster: TestCluster; clock: AdvancingClock } {
  const clock = new AdvancingClock();
  const state = { cluster: null as TestCluster | null };
  beforeAll(async () => {
    state.cluster = await startTestCluster({ clock, env: ENV });
  });
  afterAll(async () => {
    await state.cluster?.destroy();
  });
  return {
    clock,
    get cluster(): TestCluster {
      return state.cluster!;
    },
  };
}

describe('inventory garbage collection', () => {
  const setup = useCluster();
  const { clock } = setup;
  let cluster: TestCluster;
  beforeAll(() => {
    cluster = setup.cluster;
  });

  it('deletes an unreferenced blob once it is older than the grace period, and not before', async () => {
    const orphan = await putOrphan(cluster, 'node-2', 'gc/orphan');
    const writeId = orphan.split('.')[0]!;
    await cluster.healer.runOnce({ forceAudit: true });
    expect((await fullInventory(cluster)).has(`node-2/${orphan}`), 'a young blob may belong to a write in flight').toBe(true);
    clock.advance(GRACE_MS + 1);
    const aborted = recordAborts(cluster);
    const report = await cluster.healer.runOnce({ forceAudit: true });
    expect(report.garbageDeleted).toBeGreaterThanOrEqual(1);
    expect((await fullInventory(cluster)).has(`node-2/${orphan}`)).toBe(false);
    // Deleted through the abort rule: that write id can never commit now.
    expect(aborted.has(writeId)).toBe(true);
  });

  it('deletes an unreferenced blob of a live key and leaves the key whole', async () => {
    const key = 'gc/live';
    const text = docText(1, 50_000);
    expect((await cluster.write(key, text, '&strategy=field_hybrid')).status).toBe(200);
    const before = await stat(cluster, key);
    const orphans = await Promise.all(cluster.nodes.map((n) => putOrphan(cluster, n.id, key)));
    clock.advance(GRACE_MS + 1);
    await cluster.healer.runOnce({ forceAudit: true });
    const inv = await fullInventory(cluster);
    for (const [i, id] of orphans.entries()) expect(inv.has(`${cluster.nodes[i]!.id}/${id}`)).toBe(false);
    expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(before).sort());
    expect(await (await cluster.read(key)).text()).toBe(text);
  });

  it('blobs a release could not delete on a stopped node are collected once it returns', async () => {
    const updated = 'gc/release-missed/update';
    const deleted = 'gc/release-missed/delete';
    expect((await cluster.write(updated, docText(5, 40_000), '&strategy=field_hybrid')).status).toBe(200);
    expect((await cluster.write(deleted, docText(6, 40_000), '&strategy=ec')).status).toBe(200);
    const old = await stat(cluster, updated);
    // The deleted document's blobs are found by its write id: a lone shard of a format-2 write does not name its key.
    const deletedWrite = (await stat(cluster, deleted)).write_id;
    // A node that holds one of the old hot replicas (so the release has something to miss there).
    const downId = old.hot[0]!.node;
    const down = cluster.nodes.find((n) => n.id === downId)!;
    await down.stop();
    const next = docText(7, 40_000);
    expect((await cluster.write(updated, next)).status).toBe(200); // a cold change: everything old is released
    expect((await cluster.fetch(`/delete/${encodeURIComponent(deleted)}`, { method: 'DELETE' })).status).toBe(200);
    await cluster.gateway.writes.drain();
    await down.start();
    await cluster.pool.probe();
    const current = await stat(cluster, updated);
    const left = [...(await blobsOfKey(cluster, updated))].filter((n) => !refNames(current).includes(n));
    expect(left.length, 'the release missed the stopped node').toBeGreaterThan(0);
    expect((await blobsOfWrite(cluster, deletedWrite)).length, 'the delete missed the stopped node').toBeGreaterThan(0);

    // Format-2 blobs record their creation in whole seconds, rounded up (never older than they are): a second more.
    clock.advance(GRACE_MS + 1_000);
    await cluster.healer.runOnce({ forceAudit: true });
    expect([...(await blobsOfKey(cluster, updated))].sort()).toEqual(refNames(await stat(cluster, updated)).sort());
    expect([...(await blobsOfKey(cluster, deleted))]).toEqual([]);
    expect(await blobsOfWrite(cluster, deletedWrite)).toEqual([]);
    expect(await (await cluster.read(updated)).text()).toBe(next);
    expect((await cluster.read(deleted)).status).toBe(404);
  });

  it('never deletes a referenced blob: many passes over a populated cluster while writers keep writing', async () => {
    // Documents of every strategy, some updated pure hot (their shards are old, reused by a young manifest).
    const latest = new Map<string, string>();
    for (const strategy of STRATEGIES) {
      for (let i = 0; i < 4; i++) {
        const key = `gc/pop/${strategy}/${i}`;
        const text = docText(i, i % 2 === 0 ? 2_000 : 60_000);
        expect((await cluster.write(key, text, `&strategy=${strategy}`)).status).toBe(200);
        latest.set(key, text);
      }
    }
    clock.advance(GRACE_MS + 1); // every blob written so far is now older than the grace period

    // Writers on the same keys, racing the GC passes: pure hot updates and cold rewrites. Each pass moves the clock
    // a quarter of the grace period on, so blobs of the racing writes themselves pass the grace (and become GC
    // candidates) four passes after they were written, and a write still in flight two passes after its intent (the
    // intent timeout) is judged stalled and rolled back. The writers' rounds are counted, and the passes go on until the
    // writers are done, so how much each side gets done does not depend on the machine's speed.
    const WRITER_ROUNDS = 12;
    let acknowledged = 0;
    let aborted = 0;
    let writersDone = false;
    const writers = Promise.all(
      [...latest.keys()].map(async (key, w) => {
        for (let round = 1; round <= WRITER_ROUNDS; round++) {
          const text = round % 3 === 0 ? docText(100 + round, w % 2 === 0 ? 2_000 : 60_000) : docText(w % 4, w % 2 === 0 ? 2_000 : 60_000, { like_count: round });
          const res = await cluster.write(key, text);
          const body = await json(res);
          if (res.status === 200) {
            latest.set(key, text);
            acknowledged++;
          } else {
            // A write the healer judged stalled is rolled back, never half-applied; nothing else may fail.
            expect(res.status, JSON.stringify(body)).toBe(503);
            expect(['WRITE_ABORTED', 'METADATA_UNAVAILABLE']).toContain(body.error.code);
            aborted++;
          }
          await yieldToEventLoop(); // let a GC pass interleave
        }
      }),
    ).finally(() => {
      writersDone = true;
    });
    for (let pass = 0; pass < 10 || !writersDone; pass++) {
      await cluster.healer.runOnce({ forceAudit: true });
      clock.advance(GRACE_MS / 4);
      await yieldToEventLoop();
    }
    await writers;
    await cluster.gateway.writes.drain();
    for (let pass = 0; pass < 3; pass++) {
      clock.advance(GRACE_MS / 2);
      await cluster.healer.runOnce({ forceAudit: true });
    }
    expect(acknowledged).toBeGreaterThan(20);

    const inv = await fullInventory(cluster);
    for (const [key, text] of latest) {
      const s = await stat(cluster, key);
      for (const name of refNames(s)) expect(inv.has(name), `${key}: ${name} is referenced and must be stored`).toBe(true);
      expect(s.dirty, key).toBe(false);
      const read = await cluster.read(key);
      expect(read.status, key).toBe(200);
      expect(await read.text() === text, `${key} reads back its last acknowledged version`).toBe(true);
      // Superseded versions and rolled-back writes of this key left nothing behind.
      expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(s).sort());
    }
    expect(acknowledged + aborted).toBeGreaterThan(0);
  });
});

describe('space of deleted keys', () => {
  const setup = useCluster();
  const { clock } = setup;
  let cluster: TestCluster;
  beforeAll(() => {
    cluster = setup.cluster;
  });

  it('reclaims every blob of deleted keys and reports total_system_size 0 once every key is deleted', async () => {
    const keys: string[] = [];
    for (const strategy of STRATEGIES) {
      for (const size of [500, 80_000]) {
        const key = `del/${strategy}/${size}`;
        expect((await cluster.write(key, docText(size, size), `&strategy=${strategy}`)).status).toBe(200);
        // A second version (pure hot where the strategy has a hot tier) so that released and reused blobs mix.
        expect((await cluster.write(key, docText(size, size, { like_count: 7 }))).status).toBe(200);
        keys.push(key);
      }
    }
    await putOrphan(cluster, 'node-4', 'del/orphan');
    const usage = await json(await cluster.fetch('/storage_usage'));
    expect(usage.total_system_size).toBeGreaterThan(0);

    for (const key of keys) {
      const res = await cluster.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE' });
      expect(res.status).toBe(200);
    }
    await cluster.gateway.writes.drain();
    for (const key of keys) {
      expect((await cluster.read(key)).status).toBe(404);
      expect([...(await blobsOfKey(cluster, key))], `${key} blobs released by the delete`).toEqual([]);
    }
    const afterDelete = await json(await cluster.fetch('/storage_usage'));
    expect(afterDelete.total_system_size).toBe(0);
    expect(afterDelete.logical_bytes).toBe(0);

    clock.advance(GRACE_MS + 1_000); // format-2 creation times are whole seconds, rounded up
    await cluster.healer.runOnce({ forceAudit: true });
    expect(await fullInventory(cluster)).toEqual(new Map());
    const afterGc = await json(await cluster.fetch('/storage_usage'));
    expect(afterGc.total_system_size).toBe(0);
    expect(afterGc.pending_gc_bytes).toBe(0);
    // Tombstones past their grace are purged; the keys stay deleted.
    for (const key of keys) expect((await cluster.read(key)).status).toBe(404);
  });

  it('a key re-created after its tombstone was purged gets a higher version than any before', async () => {
    const key = 'del/recreate';
    const first = await json(await cluster.write(key, docText(1, 1_000), '&strategy=field_hybrid'));
    const deleted = await json(await cluster.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE' }));
    expect(BigInt(deleted.version)).toBeGreaterThan(BigInt(first.version));
    clock.advance(GRACE_MS + 1);
    await cluster.healer.runOnce({ forceAudit: true });
    expect(await cluster.metadata.get(key)).toBeNull(); // purged
    expect((await cluster.read(key)).status).toBe(404);
    const again = await json(await cluster.write(key, docText(2, 1_000)));
    expect(BigInt(again.version)).toBeGreaterThan(BigInt(deleted.version));
  });
});

describe('tombstone purge after an audit', () => {
  const setup = useCluster();
  const { clock } = setup;
  let cluster: TestCluster;
  beforeAll(() => {
    cluster = setup.cluster;
  });

  it('purges every tombstone past its grace, also when there are more than one audit remembers', async () => {
    const keys = ['purge/a', 'purge/b', 'purge/c', 'purge/d'];
    for (const key of keys) {
      expect((await cluster.write(key, docText(1, 2_000))).status).toBe(200);
      expect((await cluster.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE' })).status).toBe(200);
    }
    await cluster.gateway.writes.drain();
    clock.advance(GRACE_MS + 1_000);
    const healer = new Healer({
      metadata: cluster.metadata,
      wal: cluster.wal,
      pool: cluster.pool,
      ec: new ReedSolomonCode(),
      clock,
      log: silentLogger,
      options: { ...healerOptions(cluster.config, 'healer-purge-test'), tombstonesRememberedMax: 1 },
    });
    expect((await healer.runOnce({ forceAudit: true })).leader).toBe(true);
    for (const key of keys) expect(await cluster.metadata.get(key), `${key}'s tombstone`).toBeNull();
    for (const key of keys) expect((await cluster.read(key)).status).toBe(404);
  });
});
