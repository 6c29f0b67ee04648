/**
 * Guarantee: release never deletes a blob the new manifest still references (architecture.md, "Write" step 8:
 * "never the reused ones"), and superseded blobs do go. Concurrent pure hot and cold updates of one key race
 * their commits and releases; whatever wins, the final manifest must point only at blobs that exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { blobsOfKey, docText, fullInventory, json, refNames, stat } from './durability-helpers.js';

/**
 * The storm's 40 writes go through one gateway in turn while four readers read as fast as they can: about 10 s on
 * an idle 2-core machine over HTTP, nearly a minute on a busy one. Its own timeout leaves room for that.
 */
const STORM_TIMEOUT_MS = 180_000;

for (const transport of ['local', 'http'] as const) {
  describe(`release of superseded blobs (${transport} transport)`, () => {
    let cluster: TestCluster;
    beforeAll(async () => {
      cluster = await startTestCluster({ transport });
    });
    afterAll(async () => {
      await cluster.destroy();
    });

    it('a pure hot update releases the old replicas and keeps every reused shard on its node', async () => {
      const key = 'release/pure';
      expect((await cluster.write(key, docText(1, 30_000), '&strategy=field_hybrid')).status).toBe(200);
      const first = await stat(cluster, key);
      let previous = first;
      for (let i = 0; i < 3; i++) {
        const next = docText(1, 30_000, { like_count: 100 + i });
        const res = await cluster.write(key, next);
        expect((await json(res)).is_pure_hot_update).toBe(true);
        await cluster.gateway.writes.drain();
        const current = await stat(cluster, key);
        const inv = await fullInventory(cluster);
        // Reused shards: the same blobs as the first write, all still stored.
        expect(current.cold.map((r) => r.blob)).toEqual(first.cold.map((r) => r.blob));
        for (const name of refNames(current)) expect(inv.has(name), `${name} is stored`).toBe(true);
        // Superseded replicas: gone.
        for (const r of previous.hot) expect(inv.has(`${r.node}/${r.blob}`), `old replica ${r.blob} released`).toBe(false);
        // Nothing else of this key is left behind.
        expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(current).sort());
        expect(await (await cluster.read(key)).text()).toBe(next);
        previous = current;
      }
    });

    it('a cold update after pure hot updates releases the reused shards exactly once', async () => {
      const key = 'release/cold-after-hot';
      expect((await cluster.write(key, docText(2, 30_000), '&strategy=field_hybrid')).status).toBe(200);
      expect((await json(await cluster.write(key, docText(2, 30_000, { like_count: 9 })))).is_pure_hot_update).toBe(true);
      const beforeCold = await stat(cluster, key);
      const next = docText(3, 30_000);
      const res = await cluster.write(key, next);
      expect((await json(res)).is_pure_hot_update).toBe(false);
      await cluster.gateway.writes.drain();
      const after = await stat(cluster, key);
      const inv = await fullInventory(cluster);
      for (const name of refNames(beforeCold)) expect(inv.has(name)).toBe(false);
      expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(after).sort());
      expect(await (await cluster.read(key)).text()).toBe(next);
    });

    it('40 concurrent pure hot and cold updates of one key never leave the manifest pointing at a released blob', async () => {
      const key = 'release/storm';
      const coldA = (like: number) => docText(4, 30_000, { like_count: like });
      const coldB = (like: number) => docText(5, 30_000, { like_count: like });
      expect((await cluster.write(key, coldA(0), '&strategy=field_hybrid')).status).toBe(200);

      type Outcome = { kind: 'write-a' | 'write-b' | 'patch'; like: number; status: number; body: any };
      let acknowledged = 0n;
      const note = (o: Outcome): Outcome => {
        if (o.status === 200 && BigInt(o.body.version) > acknowledged) acknowledged = BigInt(o.body.version);
        return o;
      };
      const requests: Promise<Outcome>[] = [];
      for (let i = 1; i <= 40; i++) {
        const like = 1000 + i;
        if (i % 3 === 0) {
          requests.push(
            cluster
              .fetch(`/patch/${encodeURIComponent(key)}`, {
                method: 'PATCH',
                headers: { 'content-type': 'application/merge-patch+json' },
                body: JSON.stringify({ like_count: like }),
              })
              .then(async (r) => note({ kind: 'patch' as const, like, status: r.status, body: await json(r) })),
          );
        } else {
          const kind = i % 3 === 1 ? ('write-a' as const) : ('write-b' as const);
          const text = kind === 'write-a' ? coldA(like) : coldB(like);
          requests.push(cluster.write(key, text).then(async (r) => note({ kind, like, status: r.status, body: await json(r) })));
        }
      }
      // Readers run through the storm: a read answers the whole of some written version, or 503; never bad bytes.
      const valid = (text: string): boolean => {
        const like = Number(/"like_count":(\d+)/.exec(text)?.[1]);
        return text === coldA(like) || text === coldB(like);
      };
      let writing = true;
      const readStatuses: number[] = [];
      const readers = Array.from({ length: 4 }, async () => {
        while (writing) {
          const floor = acknowledged;
          const r = await cluster.read(key);
          const text = await r.text();
          readStatuses.push(r.status);
          if (r.status === 200) {
            expect(valid(text), 'a read during the storm returns one whole written version').toBe(true);
            // Linearizable: never older than a write acknowledged before the read began.
            expect(BigInt(r.headers.get('x-strata-version')!)).toBeGreaterThanOrEqual(floor);
          }
          else {
            expect(r.status, text).toBe(503);
            expect(JSON.parse(text).error.code).toBe('INSUFFICIENT_NODES');
          }
        }
      });
      const outcomes = await Promise.all(requests);
      writing = false;
      await Promise.all(readers);
      expect(readStatuses.filter((x) => x === 200).length).toBeGreaterThan(0);

      const succeeded = outcomes.filter((o) => o.status === 200);
      // One gateway takes writes to one key in turn, so none of them loses a race and every one succeeds.
      for (const o of outcomes) expect(o.status, JSON.stringify(o.body)).toBe(200);
      const versions = succeeded.map((o) => BigInt(o.body.version));
      expect(new Set(versions).size).toBe(versions.length);
      expect(succeeded.some((o) => o.body.is_pure_hot_update === true)).toBe(true);
      expect(succeeded.some((o) => o.body.is_pure_hot_update === false)).toBe(true);

      await cluster.gateway.writes.drain();
      const final = await stat(cluster, key);
      const inv = await fullInventory(cluster);
      for (const name of refNames(final)) expect(inv.has(name), `${name} referenced by the final manifest is stored`).toBe(true);
      // Every superseded or conflicting blob of the storm is gone.
      expect([...(await blobsOfKey(cluster, key))].sort()).toEqual(refNames(final).sort());

      const last = succeeded.reduce((a, b) => (BigInt(a.body.version) > BigInt(b.body.version) ? a : b));
      expect(final.version).toBe(last.body.version);
      const read = await cluster.read(key);
      expect(read.status).toBe(200);
      expect(read.headers.get('x-strata-version')).toBe(last.body.version);
      const text = await read.text();
      expect(valid(text)).toBe(true);
      expect(text).toContain(`"like_count":${last.like}`);
      if (last.kind === 'write-a') expect(text).toBe(coldA(last.like));
      if (last.kind === 'write-b') expect(text).toBe(coldB(last.like));
    }, STORM_TIMEOUT_MS);
  });
}
