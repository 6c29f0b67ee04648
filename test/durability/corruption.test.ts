/**
 * Guarantee: reads never return bytes that fail a checksum; a corrupt copy is skipped (another replica, or a
 * parity shard, stands in), reported for repair, and rewritten by the healer (architecture.md, "Read" and
 * "Healer"). Corruption is injected by flipping a payload byte of a blob file on disk, behind the node's back.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { waitUntil } from '../helpers/wait.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { docText, flipPayloadByte, json, refsOf, stat, storeOf, type StatRef } from './durability-helpers.js';

for (const transport of ['local', 'http'] as const) {
  describe(`corrupt blobs on disk (${transport} transport)`, () => {
    let cluster: TestCluster;
    let hinted: string[];
    beforeAll(async () => {
      cluster = await startTestCluster({ transport });
    });
    afterAll(async () => {
      await cluster.destroy();
    });
    afterEach(() => {
      vi.restoreAllMocks();
    });

    /** Writes a document, runs a full audit (so the next plain round only repairs reported keys), spies on hints. */
    async function prepare(key: string, strategy: string, seed: number): Promise<string> {
      const text = docText(seed, 100_000);
      const res = await cluster.write(key, text, `&strategy=${strategy}`);
      expect(res.status).toBe(200);
      await cluster.healer.runOnce({ forceAudit: true });
      hinted = [];
      const original = cluster.metadata.addRepairHint.bind(cluster.metadata);
      vi.spyOn(cluster.metadata, 'addRepairHint').mockImplementation(async (k: string) => {
        await original(k);
        hinted.push(k);
      });
      return text;
    }

    async function expectRepaired(key: string, text: string, refs: StatRef[]): Promise<void> {
      const s = await stat(cluster, key);
      expect(s.dirty).toBe(false);
      for (const r of refsOf(s)) expect(r.state, `${r.blob} on ${r.node}`).toBe('ok');
      for (const ref of refs) {
        // Rewritten on the same (healthy) node under a new blob id of the same write and part: the corrupt copy
        // is no longer referenced (garbage for the next GC pass), the new one verifies.
        const now = refsOf(s).find((r) => (ref.part !== undefined ? r.part === ref.part : r.index === ref.index))!;
        expect(now.node).toBe(ref.node);
        expect(now.blob).not.toBe(ref.blob);
        expect(now.blob.startsWith(`${ref.blob.split('.')[0]}.`)).toBe(true);
        expect(await storeOf(cluster, now.node).verify(now.blob), `${now.blob} on ${now.node}`).toBe('ok');
        expect(refsOf(s).some((r) => r.node === ref.node && r.blob === ref.blob)).toBe(false);
      }
      const read = await cluster.read(key);
      expect(await read.text()).toBe(text);
    }

    for (const strategy of ['ec', 'field_hybrid'] as const) {
      it(`a flipped byte in a data shard of a ${strategy} document is skipped, reported and rewritten by the healer`, async () => {
        const key = `corrupt/shard/${strategy}`;
        const text = await prepare(key, strategy, 1);
        const s = await stat(cluster, key);
        const victim = s.cold[1]!; // a data shard: always among the first four asked
        await flipPayloadByte(cluster, victim.node, victim.blob);

        const read = await cluster.read(key);
        expect(read.status).toBe(200);
        expect(await read.text()).toBe(text);
        await waitUntil('the repair hint', () => hinted.includes(key));
        expect(await storeOf(cluster, victim.node).verify(victim.blob)).toBe('corrupt');

        const report = await cluster.healer.runOnce();
        expect(report.audited).toBe(0); // the plain round: only the reported key was looked at
        expect(report.repaired).toBe(1);
        await expectRepaired(key, text, [victim]);
      });
    }

    for (const strategy of ['replication', 'field_hybrid'] as const) {
      it(`a flipped byte in a hot replica of a ${strategy} document is skipped, reported and rewritten by the healer`, async () => {
        const key = `corrupt/hot/${strategy}`;
        const text = await prepare(key, strategy, 2);
        const s = await stat(cluster, key);
        const victim = s.hot[0]!;
        await flipPayloadByte(cluster, victim.node, victim.blob);

        // Reads rotate over the replicas; within three reads the corrupt one is asked first at least once.
        for (let i = 0; i < 3; i++) {
          const read = await cluster.read(key);
          expect(read.status).toBe(200);
          expect(await read.text()).toBe(text);
          if (strategy === 'field_hybrid') {
            const hot = await cluster.read(key, '?fields=like_count');
            expect(await hot.text()).toBe('{"like_count":2}');
          }
        }
        await waitUntil('the repair hint', () => hinted.includes(key));

        const report = await cluster.healer.runOnce();
        expect(report.repaired).toBe(1);
        await expectRepaired(key, text, [victim]);
      });
    }

    it('two corrupt shards and a corrupt replica of one document: exact reads, all three rewritten', async () => {
      const key = 'corrupt/many';
      const text = await prepare(key, 'field_hybrid', 3);
      const s = await stat(cluster, key);
      const victims = [s.cold[0]!, s.cold[3]!, s.hot[1]!];
      for (const v of victims) await flipPayloadByte(cluster, v.node, v.blob);
      for (let i = 0; i < 3; i++) expect(await (await cluster.read(key)).text()).toBe(text);
      await waitUntil('the repair hint', () => hinted.includes(key));
      await cluster.healer.runOnce();
      await expectRepaired(key, text, victims);
    });

    it('a corrupt shard plus a stopped node still reads back exactly', async () => {
      const key = 'corrupt/plus-down';
      const text = await prepare(key, 'ec', 4);
      const s = await stat(cluster, key);
      await flipPayloadByte(cluster, s.cold[0]!.node, s.cold[0]!.blob);
      const down = cluster.nodes.find((n) => n.id === s.cold[2]!.node)!;
      await down.stop();
      try {
        const read = await cluster.read(key);
        expect(read.status).toBe(200);
        expect(await read.text()).toBe(text);
        // A third loss is one too many: 503, never the corrupt bytes.
        const other = cluster.nodes.find((n) => n.id === s.cold[1]!.node)!;
        await other.stop();
        const res = await cluster.read(key);
        expect(res.status).toBe(503);
        expect((await json(res)).error.code).toBe('INSUFFICIENT_NODES');
        await other.start();
      } finally {
        await down.start();
        await cluster.pool.probe();
      }
      await cluster.healer.runOnce({ forceAudit: true });
      await expectRepaired(key, text, [s.cold[0]!]);
    });

    it('more bad shards than parity: the audit gives up without hanging, and reads answer 503, never wrong bytes', async () => {
      const key = 'corrupt/beyond-parity';
      await prepare(key, 'ec', 6);
      const s = await stat(cluster, key);
      // Two shards vanish and a third rots unnoticed: the inventory still lists four shards as good.
      for (const v of [s.cold[4]!, s.cold[5]!]) expect(await storeOf(cluster, v.node).delete(v.blob)).toBe(true);
      await flipPayloadByte(cluster, s.cold[0]!.node, s.cold[0]!.blob);
      // A healer that hung here would fail the test at its timeout (vitest.config.ts); a shorter real-time bound
      // would also fail a slow pass on a loaded machine.
      const report = await cluster.healer.runOnce({ forceAudit: true });
      expect(report.repaired).toBe(0);
      expect(report.backlog).toBeGreaterThanOrEqual(1);
      const res = await cluster.read(key);
      expect(res.status).toBe(503);
      expect((await json(res)).error.code).toBe('INSUFFICIENT_NODES');
      expect((await stat(cluster, key)).dirty).toBe(true);
    });

    it('the full audit repairs corruption no read saw once the node scrub marked it', async () => {
      const key = 'corrupt/scrubbed';
      const text = await prepare(key, 'field_hybrid', 5);
      const s = await stat(cluster, key);
      const victims = [s.cold[2]!, s.hot[2]!];
      for (const v of victims) await flipPayloadByte(cluster, v.node, v.blob);
      // No read: nothing is reported. The nodes' own scrub finds the bad bytes and marks them in the inventory.
      for (const v of victims) {
        const report = await storeOf(cluster, v.node).scrub({ bytesPerSecMax: 1e12 });
        expect(report.corrupt).toContain(v.blob);
      }
      expect(hinted).toEqual([]);
      const report = await cluster.healer.runOnce({ forceAudit: true });
      expect(report.repaired).toBeGreaterThanOrEqual(1);
      await expectRepaired(key, text, victims);
    });
  });
}
