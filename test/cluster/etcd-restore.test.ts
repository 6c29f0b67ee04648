/**
 * Backing up etcd and restoring it, exactly as README "Backup and recovery" tells an operator to: `etcdctl snapshot
 * save` while the cluster serves; later etcd is lost (stopped, its data directory wiped); gateways and healers are
 * stopped, the snapshot is restored with `etcdctl snapshot restore` into a fresh data directory, etcd is started on
 * it, `npm run recover:manifests` (scripts/rebuild-manifests.ts) merges what the storage nodes hold into it, and the
 * gateways and healers are started again. Every document committed before the snapshot reads back, every write,
 * patch and delete made after it is recovered, and keys deleted before it stay deleted.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { etcdSnapshotRestore, etcdSnapshotSave, etcdSnapshotStatus } from '../../scripts/infra/etcd-backup.js';
import { ETCD_MEMBER_NAME } from '../../scripts/infra/etcd.js';
import { runScript } from '../helpers/processes.js';
import { request, useLocalCluster, waitFor, writeDoc } from './cluster-support.js';

describe('etcd backup and restore', () => {
  const cluster = useLocalCluster('etcd-restore', { env: { STRATA_HEALER_INTERVAL_MS: '1000', STRATA_AUDIT_INTERVAL_MS: '5000' } });

  it('restores a snapshot, and the manifest rebuild recovers every write made after it', async () => {
    const c = cluster();
    const url = c.url;
    const big = 'z'.repeat(8000);
    const docOf = (n: number, note = ''): Record<string, unknown> => ({ like_count: n, view_count: n, note, body: `${big}${n}` });
    const strategies = ['replication', 'ec', 'field_hybrid'];
    /** The document every key must hold at the end, or null for deleted. */
    const expected = new Map<string, Record<string, unknown> | null>();
    const put = async (key: string, doc: Record<string, unknown>, query = ''): Promise<void> => {
      const answer = await writeDoc(url, key, doc, query);
      expect(answer.status, answer.text).toBe(200);
      expected.set(key, doc);
    };
    const remove = async (key: string): Promise<void> => {
      const answer = await request(url, `/delete/${encodeURIComponent(key)}`, { method: 'DELETE' });
      expect(answer.status, answer.text).toBe(200);
      expected.set(key, null);
    };

    // Before the snapshot.
    for (const s of strategies) for (let i = 0; i < 5; i++) await put(`doc/${s}/${i}`, docOf(i), `&strategy=${s}`);
    await put('gone-before', docOf(50));
    await put('back-after', docOf(51));
    await remove('gone-before');
    await remove('back-after');

    const snapshot = path.join(c.dataDir, 'etcd-snapshot.db');
    await etcdSnapshotSave(c.etcd.address!, snapshot);
    const status = await etcdSnapshotStatus(snapshot);
    expect(status.totalKeys).toBeGreaterThan(0);

    // After the snapshot: overwrites, a pure hot update, patches of both kinds, deletes, new keys, a re-created key.
    for (const s of strategies) {
      await put(`doc/${s}/0`, docOf(100, 'rewritten after the snapshot'));
      await put(`doc/${s}/1`, { ...docOf(1), like_count: 101 });
      const merge = await request(url, `/patch/${encodeURIComponent(`doc/${s}/2`)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json' },
        body: JSON.stringify({ like_count: 102 }),
      });
      expect(merge.status, merge.text).toBe(200);
      expected.set(`doc/${s}/2`, { ...docOf(2), like_count: 102 });
      const jsonPatch = await request(url, `/patch/${encodeURIComponent(`doc/${s}/3`)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: JSON.stringify([{ op: 'add', path: '/added', value: [1, 2, 3] }]),
      });
      expect(jsonPatch.status, jsonPatch.text).toBe(200);
      expected.set(`doc/${s}/3`, { ...docOf(3), added: [1, 2, 3] });
      await remove(`doc/${s}/4`);
      await put(`new/${s}`, docOf(200), `&strategy=${s}`);
    }
    await put('back-after', docOf(300));

    // etcd is lost. Gateways and healers stop first (a healer would collect the blobs of writes the restored store
    // does not know yet); the storage nodes keep running.
    await Promise.all([...c.gateways, ...c.healers].map((p) => p.stop()));
    const etcdDir = path.join(c.dataDir, 'etcd');
    await c.etcd.stop();
    await rm(etcdDir, { recursive: true, force: true });

    // Restore the snapshot for the same member (name and peer URL) and start etcd on it.
    const { etcd: ports } = JSON.parse(await readFile(path.join(c.dataDir, 'cluster.json'), 'utf8')) as { etcd: { peerPort: number } };
    await etcdSnapshotRestore({ file: snapshot, dataDir: etcdDir, name: ETCD_MEMBER_NAME, peerUrl: `http://127.0.0.1:${ports.peerPort}` });
    await c.etcd.start();

    // Merge what the nodes hold into the restored store (npm run recover:manifests, run as an operator runs it).
    const gatewayEnv = c.gatewayEnv();
    const rebuilt = await runScript('scripts/rebuild-manifests.ts', [], {
      STRATA_ETCD_ENDPOINTS: c.etcd.address!,
      STRATA_NODES: gatewayEnv['STRATA_NODES']!,
      STRATA_CLUSTER_TOKEN: c.token,
      STRATA_DATA_DIR: c.dataDir,
    });
    expect(rebuilt.code, rebuilt.output).toBe(0);
    const report = JSON.parse(rebuilt.output.slice(rebuilt.output.indexOf('\n{') + 1)) as { rebuilt: number; merged: number; tombstoned: number; unrecoverable: unknown[] };
    expect(report.unrecoverable).toEqual([]);
    expect(report.rebuilt).toBe(3);
    expect(report.merged).toBe(3 * 4 + 1);
    expect(report.tombstoned).toBe(3);

    await Promise.all([...c.gateways, ...c.healers].map((p) => p.start()));
    for (const [key, doc] of expected) {
      const read = await waitFor(`a definite answer for ${key}`, async () => {
        const answer = await request(url, `/read/${encodeURIComponent(key)}`);
        return answer.status === 200 || answer.status === 404 ? answer : null;
      }, 30_000);
      if (doc === null) expect(read.status, `${key} stays deleted`).toBe(404);
      else {
        expect(read.status, `${key}: ${read.text}`).toBe(200);
        expect(read.json, key).toEqual(doc);
      }
    }
    const listed = await request(url, '/list?limit=1000');
    expect((listed.json.keys as string[]).sort()).toEqual([...expected].filter(([, d]) => d !== null).map(([k]) => k).sort());
    // Writes go on as usual on the restored cluster.
    const after = await writeDoc(url, 'doc/ec/0', docOf(400), '');
    expect(after.status, after.text).toBe(200);
  }, 240_000);
});
