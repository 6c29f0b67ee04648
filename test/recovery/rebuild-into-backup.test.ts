/**
 * Restoring a metadata backup, then rebuilding from the nodes (README "Backup and recovery"): the backup knows the
 * keys as they were when it was taken; the rebuild must bring in what happened after it. Regression test for the
 * rebuild leaving every key the backup knows alone: a key overwritten or patched after the backup kept the backup's
 * manifest, whose blobs the overwrite had already released (unreadable, and the newer document lost), and a key
 * deleted after the backup came back as an unreadable manifest.
 *
 * The embedded store is backed up as the README says (copy data/metadata/ while Strata is stopped); the same rules
 * run against a restored etcd snapshot in test/cluster/etcd-restore.test.ts.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import { rebuildManifests } from '../../internal/recovery/rebuild-manifests.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const BIG = 'y'.repeat(6000);
const docOf = (n: number, extra = ''): string => `{"likes":${n},"id":12345678901234567890,"text":"${BIG}${extra}","n":${n}.50}`;

async function expectOk(res: Response, what: string): Promise<void> {
  expect(res.status, `${what}: ${await res.clone().text()}`).toBe(200);
}

describe('rebuilding manifests into a restored backup', () => {
  const dirs: string[] = [];
  const clusters: TestCluster[] = [];
  afterEach(async () => {
    for (const c of clusters.splice(0)) await c.stop().catch(() => undefined);
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('brings back every write made after the backup, keeps deletes, and tombstones keys deleted after it', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-restore-'));
    const backupDir = await mkdtemp(path.join(os.tmpdir(), 'strata-backup-'));
    dirs.push(dataDir, backupDir);
    let cluster = await startTestCluster({ dataDir, env: { STRATA_HOT_FIELDS: 'likes' } });
    clusters.push(cluster);
    const strategies = ['replication', 'ec', 'field_hybrid'] as const;
    /** What every key must read as at the end: its text, or null for "deleted". */
    const expected = new Map<string, string | null>();
    const write = async (key: string, body: string, query = ''): Promise<void> => {
      await expectOk(await cluster.write(key, body, query), `write ${key}`);
      expected.set(key, body);
    };

    // Before the backup: three documents per strategy, one key deleted, one deleted to be written again later.
    for (const s of strategies) for (let i = 0; i < 5; i++) await write(`k/${s}/${i}`, docOf(i), `&strategy=${s}`);
    await write('deleted-before', docOf(9));
    await write('recreated', docOf(8));
    for (const key of ['deleted-before', 'recreated']) {
      await expectOk(await cluster.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE' }), `delete ${key}`);
      expected.set(key, null);
    }
    await cluster.gateway.writes.drain();
    await cluster.stop();
    await cp(path.join(dataDir, 'metadata'), backupDir, { recursive: true });

    // After the backup: overwrites, a pure hot update, patches, deletes, new keys and a re-created key.
    cluster = await startTestCluster({ dataDir, env: { STRATA_HOT_FIELDS: 'likes' } });
    clusters.push(cluster);
    for (const s of strategies) {
      await write(`k/${s}/0`, docOf(100, ' rewritten'));
      await write(`k/${s}/1`, docOf(101)); // only the hot member changed: a pure hot update for field_hybrid
      await expectOk(
        await cluster.fetch(`/patch/${encodeURIComponent(`k/${s}/2`)}`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: '{"extra":[1,2]}' }),
        'merge patch',
      );
      expected.set(`k/${s}/2`, await (await cluster.read(`k/${s}/2`)).text());
      await expectOk(await cluster.fetch(`/delete/${encodeURIComponent(`k/${s}/3`)}`, { method: 'DELETE' }), 'delete');
      expected.set(`k/${s}/3`, null);
      await write(`new/${s}`, docOf(200), `&strategy=${s}`);
    }
    await write('recreated', docOf(300));
    await cluster.gateway.writes.drain(); // superseded and deleted blobs are released, as they would be by the time of a loss

    // The metadata is lost and the backup restored.
    await cluster.stop();
    await rm(path.join(dataDir, 'metadata'), { recursive: true, force: true });
    await cp(backupDir, path.join(dataDir, 'metadata'), { recursive: true });
    cluster = await startTestCluster({ dataDir, env: { STRATA_HOT_FIELDS: 'likes' } });
    clusters.push(cluster);
    // Without the rebuild the restored store is behind: the overwritten keys point at released blobs.
    expect((await cluster.read('k/ec/0')).status).not.toBe(200);

    const report = await rebuildManifests({ nodes: cluster.nodes.map((n) => n.client), metadata: cluster.metadata, ec: new ReedSolomonCode() });
    expect(report.unrecoverable).toEqual([]);
    expect(report.rebuilt).toBe(3); // new/<strategy>
    expect(report.merged).toBe(3 * 3 + 1); // k/<s>/0..2 and the re-created key
    expect(report.tombstoned).toBe(3); // k/<s>/3
    for (const [key, body] of expected) {
      const res = await cluster.read(key);
      if (body === null) {
        expect(res.status, `${key} stays deleted`).toBe(404);
      } else {
        expect(res.status, key).toBe(200);
        expect(await res.text(), key).toBe(body);
      }
    }
    const listed = (await (await cluster.fetch('/list?limit=1000')).json()) as { keys: string[] };
    expect(listed.keys.sort()).toEqual([...expected].filter(([, body]) => body !== null).map(([key]) => key).sort());
    // A second run changes nothing.
    const again = await rebuildManifests({ nodes: cluster.nodes.map((n) => n.client), metadata: cluster.metadata, ec: new ReedSolomonCode() });
    expect([again.rebuilt, again.merged, again.tombstoned]).toEqual([0, 0, 0]);
  });
});
