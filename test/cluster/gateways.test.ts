/**
 * Several gateways on one cluster (architecture.md, "Read": linearizable per key; "Guarantees": no update is
 * lost between concurrent writers). Each request goes to one gateway's own address, not through nginx, so which
 * gateway wrote and which one read is known.
 */
import { describe, expect, it } from 'vitest';
import { healerLeader, healerProcOf, mergePatch, nodeInventory, readDoc, request, statDoc, useLocalCluster, waitFor, writeDoc } from './cluster-support.js';

/** Patches each of the two gateways sends, and how many of them it keeps in flight at once. */
const PATCHES_PER_GATEWAY = 24;
const IN_FLIGHT_PER_GATEWAY = 4;

/** Runs `tasks` with at most `limit` of them in flight. */
async function inParallel<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return results;
}

describe('several gateways', () => {
  const cluster = useLocalCluster('gateways');

  it('report one cluster: etcd and Kafka, six nodes in three zones, one healer leader', async () => {
    // The healers campaign by themselves as they start; one of them leads within a round or two.
    const leader = await waitFor('a healer to lead', () => healerLeader(cluster().gateways[0]!.address!), 30_000);
    expect(healerProcOf(cluster(), leader), `${leader} is one of the cluster's healers`).toBeDefined();
    const views = await Promise.all(cluster().gateways.map(async (g) => (await request(g.address!, '/cluster')).json));
    for (const view of views) {
      expect(view.metadata_backend).toMatch(/^etcd /);
      expect(view.wal_backend).toMatch(/^kafka /);
      expect(view.nodes.map((n: { id: string; zone: string; state: string }) => [n.id, n.zone, n.state])).toEqual([
        ['node-1', 'zone-a', 'healthy'],
        ['node-2', 'zone-a', 'healthy'],
        ['node-3', 'zone-b', 'healthy'],
        ['node-4', 'zone-b', 'healthy'],
        ['node-5', 'zone-c', 'healthy'],
        ['node-6', 'zone-c', 'healthy'],
      ]);
    }
    expect(views.map((v) => v.healer_leader)).toEqual(views.map(() => leader));
  });

  for (const strategy of ['field_hybrid', 'replication', 'ec'] as const) {
    it(`loses no update when two gateways merge-patch one ${strategy} key concurrently`, async () => {
      const [a, b] = cluster().gateways;
      const key = `concurrent/${strategy}`;
      const created = await writeDoc(a!.address!, key, { like_count: 0, title: 'shared', body: 'cold '.repeat(2000) }, `&strategy=${strategy}`);
      expect(created.status, created.text).toBe(200);

      const patches = (gateway: string, prefix: string) =>
        Array.from({ length: PATCHES_PER_GATEWAY }, (_, i) => () => mergePatch(gateway, key, { [`${prefix}-${i}`]: i }));
      const [fromA, fromB] = await Promise.all([
        inParallel(patches(a!.address!, 'a'), IN_FLIGHT_PER_GATEWAY),
        inParallel(patches(b!.address!, 'b'), IN_FLIGHT_PER_GATEWAY),
      ]);
      const answers = [...fromA, ...fromB];
      for (const answer of answers) expect(answer.status, answer.text).toBe(200);

      // Every patch committed its own version, and the last one is what every gateway reads.
      const versions = answers.map((answer) => BigInt(answer.json.version as string));
      expect(new Set(versions).size).toBe(answers.length);
      const last = versions.reduce((max, v) => (v > max ? v : max));
      const read = await readDoc(cluster().gateways[2]!.address!, key);
      expect(read.status).toBe(200);
      expect(read.headers.get('x-strata-version')).toBe(String(last));
      const doc = read.json as Record<string, unknown>;
      for (let i = 0; i < PATCHES_PER_GATEWAY; i++) {
        expect(doc[`a-${i}`], `a-${i}`).toBe(i);
        expect(doc[`b-${i}`], `b-${i}`).toBe(i);
      }
      expect(doc['title']).toBe('shared');
    });
  }

  it('reads on one gateway what another one has just acknowledged: writes, patches and deletes', async () => {
    const gateways = cluster().gateways.map((g) => g.address!);
    for (let i = 0; i < 30; i++) {
      const writer = gateways[i % gateways.length]!;
      const reader = gateways[(i + 1) % gateways.length]!;
      const key = `ryw/${i % 5}`;
      const written = await writeDoc(writer, key, { like_count: i, body: `version ${i} `.repeat(100) });
      expect(written.status, written.text).toBe(200);
      const read = await readDoc(reader, key);
      expect(read.status).toBe(200);
      expect(read.headers.get('x-strata-version')).toBe(written.json.version);
      expect(read.json.like_count).toBe(i);

      const patched = await mergePatch(reader, key, { like_count: i + 1000 });
      expect(patched.status, patched.text).toBe(200);
      const again = await readDoc(writer, key);
      expect(again.headers.get('x-strata-version')).toBe(patched.json.version);
      expect(again.json.like_count).toBe(i + 1000);
    }
    const deleted = await request(gateways[0]!, `/delete/${encodeURIComponent('ryw/0')}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    for (const gateway of gateways) expect((await readDoc(gateway, 'ryw/0')).status).toBe(404);
  });
  // Last in this file: from here on the cluster writes the compact formats.
  it('after the data format bump, every gateway writes format-2 blobs, and documents written before and after read back exactly', async () => {
    const gateways = cluster().gateways.map((g) => g.address!);
    const docs = new Map<string, Record<string, unknown>>();
    const writeAll = async (phase: string): Promise<void> => {
      for (const [i, strategy] of (['replication', 'ec', 'field_hybrid'] as const).entries()) {
        for (const size of [200, 20_000]) {
          const key = `bump/${phase}/${strategy}/${size}`;
          const doc = { like_count: i, note: `${phase} ${strategy}`, body: 'b'.repeat(size) };
          const written = await writeDoc(gateways[i % gateways.length]!, key, doc, `&strategy=${strategy}`);
          expect(written.status, written.text).toBe(200);
          docs.set(key, doc);
        }
      }
    };
    await writeAll('before');
    const admin = { authorization: `Bearer ${cluster().token}`, 'content-type': 'application/json' };
    const bumped = await request(gateways[0]!, '/admin/format-version', { method: 'POST', headers: admin, body: '{"to":2}' });
    expect(bumped.status, bumped.text).toBe(200);
    // Every gateway follows the record within its watch (or its poll).
    for (const gateway of gateways) {
      await waitFor(`${gateway} to write format 2`, async () => {
        const report = await request(gateway, '/admin/format-version', { headers: admin });
        return report.json?.data_format === 2;
      }, 30_000);
    }
    await writeAll('after');
    for (const [key, doc] of docs) {
      for (const gateway of gateways) {
        const read = await readDoc(gateway, key);
        expect(read.status, `${key} on ${gateway}`).toBe(200);
        expect(read.json, key).toEqual(doc);
      }
    }
    // The new documents' blobs are format 2 (no key in their headers), the old ones' format 1.
    const blobs = (await Promise.all(cluster().nodes.filter((n) => n.running).map((n) => nodeInventory(cluster(), n)))).flat();
    const after = await statDoc(gateways[0]!, 'bump/after/ec/20000');
    const before = await statDoc(gateways[0]!, 'bump/before/ec/20000');
    const ofWrite = (writeId: string) => blobs.filter((b) => b.writeId === writeId);
    expect(ofWrite(after.json.write_id).length).toBeGreaterThanOrEqual(3); // copies or shards: the body compresses
    for (const b of ofWrite(after.json.write_id)) expect([b.key, (b as { format?: number }).format]).toEqual(['', 2]);
    for (const b of ofWrite(before.json.write_id)) expect(b.key).toBe('bump/before/ec/20000');
  });
});
