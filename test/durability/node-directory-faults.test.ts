/**
 * Start-up isolates a node whose directory cannot be opened or is not its own (internal/datadir): that node starts
 * down with the reason in GET /cluster, nothing in its directory is changed, and the other five serve every
 * document written before; writes succeed, marked partial. An emptied directory of a node that held data stays
 * down until the operator accepts it (`npm run node:accept-empty`), after which the healer refills it. A data
 * directory of the release before identity files opens and reads back.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat as fsStat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acceptEmptyNode } from '../../internal/datadir/cluster-directory.js';
import { CLUSTER_IDENTITY_FILE, NODE_IDENTITY_FILE } from '../../internal/datadir/identity.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { STRATEGIES, docText, fullInventory, json, refNames, stat } from './durability-helpers.js';

interface Written {
  key: string;
  text: string;
  version: string;
}

interface ClusterNodeView {
  id: string;
  state: string;
  last_error: string | null;
}

const dirs: string[] = [];
const clusters: TestCluster[] = [];

afterEach(async () => {
  for (const c of clusters.splice(0)) await c.stop().catch(() => undefined);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A stopped all-in-one's data directory holding one document of each strategy, small and large. */
async function preparedDataDir(): Promise<{ dataDir: string; docs: Written[] }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-nodedir-'));
  dirs.push(dataDir);
  const cluster = await startTestCluster({ dataDir });
  const docs: Written[] = [];
  for (const [i, strategy] of STRATEGIES.entries()) {
    for (const size of [300, 80_000]) {
      const key = `nodedir/${strategy}/${size}`;
      const text = docText(i * 7 + size, size);
      const body = await json(await cluster.write(key, text, `&strategy=${strategy}`));
      expect(body.partial, key).toBe(false);
      docs.push({ key, text, version: body.version });
    }
  }
  await cluster.stop();
  return { dataDir, docs };
}

async function restart(dataDir: string): Promise<TestCluster> {
  const cluster = await startTestCluster({ dataDir });
  clusters.push(cluster);
  return cluster;
}

async function clusterNode(cluster: TestCluster, id: string): Promise<ClusterNodeView> {
  const body = (await json(await cluster.fetch('/cluster'))) as { nodes: ClusterNodeView[] };
  return body.nodes.find((n) => n.id === id)!;
}

async function expectAllReadable(cluster: TestCluster, docs: Written[]): Promise<void> {
  for (const doc of docs) {
    const res = await cluster.read(doc.key);
    expect(res.status, doc.key).toBe(200);
    expect(await res.text(), doc.key).toBe(doc.text);
    expect(res.headers.get('x-strata-version'), doc.key).toBe(doc.version);
  }
}

/** Every file under `dir` with its size, mode and content hash: to show that nothing in it was changed. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      const rel = path.relative(dir, p);
      // The lock file is taken (and left) by every opener; it holds nothing.
      if (rel === 'LOCK') continue;
      if (entry.isDirectory()) {
        out.set(rel, 'dir');
        await walk(p);
      } else {
        const s = await fsStat(p);
        out.set(rel, `${s.size}:${s.mode}:${createHash('sha256').update(await readFile(p)).digest('hex')}`);
      }
    }
  };
  await walk(dir);
  return out;
}

async function expectDownWithReason(cluster: TestCluster, id: string, reason: RegExp): Promise<void> {
  const node = cluster.nodes.find((n) => n.id === id)!;
  expect(node.running).toBe(false);
  expect(node.downReason).toMatch(reason);
  const view = await clusterNode(cluster, id);
  expect(view.state).toBe('down');
  expect(view.last_error).toMatch(reason);
  expect(cluster.pool.healthyCount()).toBe(5);
}

/** Writes succeed with node-3 down; those that needed all six nodes say `partial: true`. */
async function expectWritesPartial(cluster: TestCluster): Promise<void> {
  for (const strategy of STRATEGIES) {
    const key = `nodedir/after/${strategy}`;
    const text = docText(99, 50_000);
    const body = await json(await cluster.write(key, text, `&strategy=${strategy}`));
    expect(body.status, key).toBe('ok');
    // Six shards need six nodes: with five, the shards are written partial; three replicas still fit.
    expect(body.partial, key).toBe(strategy !== 'replication');
    expect(await (await cluster.read(key)).text()).toBe(text);
  }
}

describe('a storage node whose directory cannot be opened starts down; the others serve', () => {
  it('a file where node-3/volumes should be: node-3 is down with the reason, every document reads back, writes are partial', async () => {
    const { dataDir, docs } = await preparedDataDir();
    const volumes = path.join(dataDir, 'nodes', 'node-3', 'volumes');
    await rm(volumes, { recursive: true, force: true });
    await writeFile(volumes, 'not a directory\n');
    const cluster = await restart(dataDir);
    await expectDownWithReason(cluster, 'node-3', /node-3.*cannot be opened/);
    await expectAllReadable(cluster, docs);
    await expectWritesPartial(cluster);
    expect(await readFile(volumes, 'utf8')).toBe('not a directory\n');
  });

  it('a directory in place of a volume file: node-3 is down with the reason, every document reads back, writes are partial', async () => {
    const { dataDir, docs } = await preparedDataDir();
    const volumes = path.join(dataDir, 'nodes', 'node-3', 'volumes');
    const [first] = (await readdir(volumes)).sort();
    await rm(path.join(volumes, first!));
    await mkdir(path.join(volumes, first!));
    const cluster = await restart(dataDir);
    await expectDownWithReason(cluster, 'node-3', /node-3.*cannot be opened/);
    await expectAllReadable(cluster, docs);
    await expectWritesPartial(cluster);
  });

  it('a node directory of another cluster is left untouched and its node is down', async () => {
    const { dataDir, docs } = await preparedDataDir();
    const dir = path.join(dataDir, 'nodes', 'node-3');
    const identityFile = path.join(dir, NODE_IDENTITY_FILE);
    const identity = JSON.parse(await readFile(identityFile, 'utf8')) as Record<string, unknown>;
    await writeFile(identityFile, JSON.stringify({ ...identity, clusterId: 'another-cluster' }));
    const before = await snapshot(dir);
    const cluster = await restart(dataDir);
    await expectDownWithReason(cluster, 'node-3', /belongs to cluster another-cluster/);
    await expectAllReadable(cluster, docs);
    await cluster.healer.runOnce({ forceAudit: true });
    expect(await snapshot(dir)).toEqual(before);
  });

  it("a node directory holding another node's identity is left untouched and its node is down", async () => {
    const { dataDir, docs } = await preparedDataDir();
    const dir = path.join(dataDir, 'nodes', 'node-3');
    await writeFile(path.join(dir, NODE_IDENTITY_FILE), await readFile(path.join(dataDir, 'nodes', 'node-2', NODE_IDENTITY_FILE)));
    const before = await snapshot(dir);
    const cluster = await restart(dataDir);
    await expectDownWithReason(cluster, 'node-3', /belongs to node-2, not node-3/);
    await expectAllReadable(cluster, docs);
    expect(await snapshot(dir)).toEqual(before);
  });

  it('a node directory written by a newer format version fails closed: down, nothing changed', async () => {
    const { dataDir, docs } = await preparedDataDir();
    const dir = path.join(dataDir, 'nodes', 'node-3');
    const identityFile = path.join(dir, NODE_IDENTITY_FILE);
    const identity = JSON.parse(await readFile(identityFile, 'utf8')) as Record<string, unknown>;
    await writeFile(identityFile, JSON.stringify({ ...identity, formatVersion: 99 }));
    const before = await snapshot(dir);
    const cluster = await restart(dataDir);
    await expectDownWithReason(cluster, 'node-3', /newer Strata \(identity format 99/);
    await expectAllReadable(cluster, docs);
    expect(await snapshot(dir)).toEqual(before);
  });

  it('an emptied node directory stays down until the operator accepts it; then the healer refills it', async () => {
    const { dataDir, docs } = await preparedDataDir();
    const dir = path.join(dataDir, 'nodes', 'node-3');
    await rm(dir, { recursive: true, force: true });
    let cluster = await restart(dataDir);
    await expectDownWithReason(cluster, 'node-3', /is empty but node-3 held data: if its disk was replaced.*node:accept-empty/);
    await expectAllReadable(cluster, docs);
    // Not initialised behind the operator's back: no identity, no volumes.
    expect((await readdir(dir)).filter((n) => n !== 'LOCK')).toEqual([]);
    // While the all-in-one runs, the operator action is refused (the data directory is locked).
    await expect(acceptEmptyNode(dataDir, 'node-3', Date.now())).rejects.toMatchObject({ code: 'DATA_DIR_LOCKED' });
    await cluster.stop();
    clusters.splice(clusters.indexOf(cluster), 1);

    await acceptEmptyNode(dataDir, 'node-3', Date.now());
    cluster = await restart(dataDir);
    expect(cluster.nodes.find((n) => n.id === 'node-3')!.running).toBe(true);
    expect((await clusterNode(cluster, 'node-3')).state).toBe('healthy');
    await cluster.healer.runOnce({ forceAudit: true });
    const inventory = await fullInventory(cluster);
    let onNode3 = 0;
    for (const doc of docs) {
      const s = await stat(cluster, doc.key);
      expect(s.dirty, doc.key).toBe(false);
      for (const name of refNames(s)) {
        expect(inventory.has(name), `${name} restored`).toBe(true);
        if (name.startsWith('node-3/')) onNode3++;
      }
    }
    expect(onNode3).toBeGreaterThan(0);
    await expectAllReadable(cluster, docs);
  });

  it('the operator action refuses a node directory that holds data, and changes nothing', async () => {
    const { dataDir } = await preparedDataDir();
    const dir = path.join(dataDir, 'nodes', 'node-3');
    const before = await snapshot(dir);
    await expect(acceptEmptyNode(dataDir, 'node-3', Date.now())).rejects.toThrow(/already has an identity file/);
    await rm(path.join(dir, NODE_IDENTITY_FILE));
    const withoutIdentity = await snapshot(dir);
    await expect(acceptEmptyNode(dataDir, 'node-3', Date.now())).rejects.toThrow(/is not empty/);
    expect(await snapshot(dir)).toEqual(withoutIdentity);
    expect(withoutIdentity.size).toBe(before.size - 1);
  });
});

describe('data directories of the release before identity files', () => {
  it('open and read back exactly; the identity files are written', async () => {
    const { dataDir, docs } = await preparedDataDir();
    await rm(path.join(dataDir, CLUSTER_IDENTITY_FILE));
    for (let i = 1; i <= 6; i++) await rm(path.join(dataDir, 'nodes', `node-${i}`, NODE_IDENTITY_FILE));
    const cluster = await restart(dataDir);
    expect(cluster.pool.healthyCount()).toBe(6);
    await expectAllReadable(cluster, docs);
    const identity = JSON.parse(await readFile(path.join(dataDir, CLUSTER_IDENTITY_FILE), 'utf8')) as { clusterId: string; nodes: string[] };
    expect(identity.nodes).toEqual(['node-1', 'node-2', 'node-3', 'node-4', 'node-5', 'node-6']);
    for (let i = 1; i <= 6; i++) {
      const node = JSON.parse(await readFile(path.join(dataDir, 'nodes', `node-${i}`, NODE_IDENTITY_FILE), 'utf8')) as { nodeId: string; clusterId: string };
      expect(node).toMatchObject({ nodeId: `node-${i}`, clusterId: identity.clusterId });
    }
  });

  it('a lost cluster identity is rebuilt with the cluster id the nodes agree on', async () => {
    const { dataDir, docs } = await preparedDataDir();
    const before = JSON.parse(await readFile(path.join(dataDir, CLUSTER_IDENTITY_FILE), 'utf8')) as { clusterId: string };
    await rm(path.join(dataDir, CLUSTER_IDENTITY_FILE));
    const cluster = await restart(dataDir);
    expect(cluster.pool.healthyCount()).toBe(6);
    await expectAllReadable(cluster, docs);
    const after = JSON.parse(await readFile(path.join(dataDir, CLUSTER_IDENTITY_FILE), 'utf8')) as { clusterId: string };
    expect(after.clusterId).toBe(before.clusterId);
  });
});
