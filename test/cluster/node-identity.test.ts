/**
 * Node directories that know their cluster, in cluster mode: separate storage-node processes on a real etcd check
 * their directory against the cluster identity in etcd when they start (internal/datadir/cluster-membership.ts).
 * - an emptied node directory (a wiped or replaced disk) is refused with the reason and what to do while the other
 *   nodes serve; the operator's `npm run node:accept-empty -- node-3` (recorded in etcd) brings the node back as a
 *   new empty node, and the healer refills it;
 * - a node directory from another cluster is refused and left exactly as it was;
 * - a fresh node id joins, is recorded as initialised, and from then on an emptied directory of it is refused too.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../internal/core/clock.js';
import { EtcdMetadataStore } from '../../internal/metadata/etcd-metadata-store.js';
import { StrataProc } from '../../scripts/cluster/proc.js';
import { freePort } from '../../scripts/infra/process-utils.js';
import { runScript } from '../helpers/processes.js';
import { docOf, nodeInventory, readDoc, useLocalCluster, waitFor, writeDoc } from './cluster-support.js';

/** The healer's audit finds and rebuilds an empty node's shards; a few audit rounds on a busy machine. */
const REFILL_TIMEOUT_MS = 180_000;
const TEST_TIMEOUT_MS = 400_000;
const DOCS = 6;

/** Every file under `dir` with a hash of its content (directories as such), to show that nothing changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const file = path.join(dir, name);
    out[name] = (await stat(file)).isDirectory() ? 'dir' : createHash('sha256').update(await readFile(file)).digest('hex');
  }
  return out;
}

async function startError(proc: StrataProc): Promise<string> {
  return proc.start().then(
    () => 'started',
    (err: Error) => err.message,
  );
}

describe('node directories in cluster mode (identity in etcd)', () => {
  const cluster = useLocalCluster('node-identity', {
    gateways: 1,
    healers: 1,
    env: { STRATA_HEALER_INTERVAL_MS: '1000', STRATA_AUDIT_INTERVAL_MS: '2000' },
  });
  let store: EtcdMetadataStore | null = null;
  const identityRecord = async () => {
    store ??= await EtcdMetadataStore.open({ endpoints: [cluster().etcd.address!], prefix: 'strata/', clock: systemClock });
    return store.getClusterIdentity();
  };
  afterAll(async () => {
    await store?.close();
  });
  const nodeDir = (name: string): string => path.join(cluster().dataDir, 'nodes', name);
  const nodeIdentity = async (name: string) =>
    JSON.parse(await readFile(path.join(nodeDir(name), 'node-identity.json'), 'utf8')) as { nodeId: string; clusterId: string };

  it('every node is initialised with the cluster id that etcd keeps', async () => {
    const record = await identityRecord();
    expect(record?.nodes).toEqual(cluster().nodes.map((n) => n.name).sort());
    for (const node of cluster().nodes) expect(await nodeIdentity(node.name)).toMatchObject({ nodeId: node.name, clusterId: record!.clusterId });
  }, TEST_TIMEOUT_MS);

  it('refuses an emptied node directory with the reason while the others serve; after the operator accepts it the healer refills it', async () => {
    const c = cluster();
    for (let i = 0; i < DOCS; i++) expect((await writeDoc(c.url, `emptied/${i}`, docOf(i), '&strategy=ec')).status).toBe(200);
    const node3 = c.nodes[2]!;
    const held = (await nodeInventory(c, node3)).filter((b) => b.key.startsWith('emptied/')).length;
    expect(held).toBeGreaterThanOrEqual(DOCS);

    // The disk is wiped while the node is stopped.
    await node3.stop();
    await rm(nodeDir('node-3'), { recursive: true, force: true });
    const refused = await startError(node3);
    expect(refused).toContain(`${nodeDir('node-3')}: is empty but node-3 held data`);
    expect(refused).toContain('npm run node:accept-empty -- node-3');
    expect(node3.running).toBe(false);
    await expect(stat(path.join(nodeDir('node-3'), 'node-identity.json'))).rejects.toThrow(/ENOENT/);
    // The other five serve every document.
    for (let i = 0; i < DOCS; i++) {
      const read = await readDoc(c.url, `emptied/${i}`);
      expect(read.status, read.text).toBe(200);
      expect(read.json).toEqual(docOf(i));
    }

    // The operator's command (npm run node:accept-empty), run as an operator runs it.
    const accepted = await runScript('scripts/accept-empty-node.ts', ['node-3'], { STRATA_ETCD_ENDPOINTS: c.etcd.address!, STRATA_DATA_DIR: c.dataDir });
    expect(accepted.code, accepted.output).toBe(0);
    expect(accepted.output).toContain("node-3's empty directory is accepted");
    expect((await identityRecord())?.acceptedEmpty).toEqual(['node-3']);

    await node3.start();
    const record = await identityRecord();
    expect(await nodeIdentity('node-3')).toMatchObject({ nodeId: 'node-3', clusterId: record!.clusterId });
    // The acceptance is used up: a second wipe would be refused again.
    expect(record?.acceptedEmpty).toEqual([]);
    await waitFor(
      'the healer to refill node-3',
      async () => (await nodeInventory(c, node3)).filter((b) => b.key.startsWith('emptied/')).length >= held,
      REFILL_TIMEOUT_MS,
      1000,
    );
  }, TEST_TIMEOUT_MS);

  it('refuses a node directory from another cluster and leaves it untouched', async () => {
    const c = cluster();
    const node4 = c.nodes[3]!;
    const clusterId = (await identityRecord())!.clusterId;
    await node4.stop();
    // node-4's disk is swapped for one that node-4 of another cluster wrote.
    const identityFile = path.join(nodeDir('node-4'), 'node-identity.json');
    const own = await readFile(identityFile, 'utf8');
    await writeFile(identityFile, own.replace(clusterId, 'another-cluster-0123456789'));
    const before = await snapshot(nodeDir('node-4'));

    const refused = await startError(node4);
    expect(refused).toContain(`${nodeDir('node-4')}: belongs to cluster another-cluster-0123456789, not this cluster ${clusterId}`);
    expect(refused).toContain('nothing in it was changed');
    expect(await snapshot(nodeDir('node-4'))).toEqual(before);
    expect((await readDoc(c.url, 'emptied/0')).status).toBe(200);

    // The right disk back: the node starts as itself.
    await writeFile(identityFile, own);
    await node4.start();
    expect(await nodeIdentity('node-4')).toMatchObject({ clusterId });
  }, TEST_TIMEOUT_MS);

  it('a fresh node id joins and is recorded; an emptied directory of it is refused from then on', async () => {
    const c = cluster();
    const port = await freePort();
    const node7 = new StrataProc({
      name: 'node-7',
      kind: 'storage-node',
      port,
      logFile: path.join(c.dataDir, 'logs', 'node-7.log'),
      env: { ...c.nodes[0]!.env, STRATA_NODE_ID: 'node-7', STRATA_PORT: String(port) },
    });
    try {
      await node7.start();
      const record = await identityRecord();
      expect(record?.nodes).toContain('node-7');
      expect(await nodeIdentity('node-7')).toMatchObject({ nodeId: 'node-7', clusterId: record!.clusterId });

      await node7.stop();
      await rm(nodeDir('node-7'), { recursive: true, force: true });
      expect(await startError(node7)).toContain(`${nodeDir('node-7')}: is empty but node-7 held data`);
    } finally {
      await node7.stop();
    }
  }, TEST_TIMEOUT_MS);
});
