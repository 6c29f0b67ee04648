/**
 * joinCluster (internal/datadir/cluster-membership.ts) on a real embedded metadata store and real directories: what
 * a storage-node process decides about its directory from the cluster identity, including the cases the cluster
 * test does not reach (a directory of the previous release, an identity without a cluster id, a cluster identity
 * lost with the metadata store, a damaged record, and a metadata store that does not answer).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StrataError, isStrataError } from '../../internal/core/errors.js';
import { CLUSTER_JOIN_LIMITS, acceptEmptyClusterNode, joinCluster, type ClusterIdentityStore } from '../../internal/datadir/cluster-membership.js';
import { DirLock } from '../../internal/datadir/dir-lock.js';
import { NODE_IDENTITY_FILE, clusterIdentity, nodeIdentity, writeClusterIdentity, writeNodeIdentity } from '../../internal/datadir/identity.js';
import { SqliteMetadataStore } from '../../internal/metadata/sqlite-metadata-store.js';
import { ManualClock } from '../helpers/manual-clock.js';

const dirs: string[] = [];
const stores: SqliteMetadataStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function setup(): Promise<{ dataDir: string; store: SqliteMetadataStore; clock: ManualClock; join: (nodeId: string, store?: ClusterIdentityStore) => ReturnType<typeof joinCluster> }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-join-'));
  dirs.push(dataDir);
  const clock = new ManualClock();
  const store = await SqliteMetadataStore.open({ path: path.join(dataDir, 'metadata', 'strata.db'), clock });
  stores.push(store);
  // As a storage node does: the directory's lock first (which creates it), then the check.
  const join = async (nodeId: string, using: ClusterIdentityStore = store) => {
    const nodeDir = path.join(dataDir, 'nodes', nodeId);
    const lock = DirLock.acquire(nodeDir);
    try {
      return await joinCluster({ store: using, storeName: 'the test store', dataDir, nodeDir, nodeId, clock });
    } finally {
      lock.release();
    }
  };
  return { dataDir, store, clock, join };
}

async function errorOf(promise: Promise<unknown>): Promise<StrataError> {
  const outcome = await promise.then(
    () => null,
    (err: unknown) => err,
  );
  if (!isStrataError(outcome)) throw new Error(`expected a StrataError, got ${String(outcome)}`);
  return outcome;
}

describe('joinCluster', () => {
  it('creates the cluster identity on the first start, initialises new nodes and records them', async () => {
    const { dataDir, store, join } = await setup();
    const first = await join('node-1');
    const second = await join('node-2');
    expect(first.directory).toBe('initialised');
    expect(second.clusterId).toBe(first.clusterId);
    expect(await store.getClusterIdentity()).toMatchObject({ clusterId: first.clusterId, nodes: ['node-1', 'node-2'], acceptedEmpty: [] });
    const written = JSON.parse(await readFile(path.join(dataDir, 'nodes', 'node-2', NODE_IDENTITY_FILE), 'utf8')) as Record<string, unknown>;
    expect(written).toMatchObject({ nodeId: 'node-2', clusterId: first.clusterId });
    expect((await join('node-1')).directory).toBe('verified');
  });

  it('refuses an emptied directory of an initialised node until the operator accepts it, once', async () => {
    const { dataDir, store, join } = await setup();
    await join('node-3');
    const dir = path.join(dataDir, 'nodes', 'node-3');
    await rm(dir, { recursive: true });
    const refused = await errorOf(join('node-3'));
    expect(refused.code).toBe('DATA_DIR_UNUSABLE');
    expect(refused.message).toMatch(/is empty but node-3 held data: .*npm run node:accept-empty -- node-3.*STRATA_ETCD_ENDPOINTS/);
    expect(await readdir(dir)).not.toContain(NODE_IDENTITY_FILE);

    expect(await acceptEmptyClusterNode(store, 'node-3')).toMatchObject({ acceptance: 'accepted' });
    expect((await join('node-3')).directory).toBe('initialised');
    expect((await store.getClusterIdentity())?.acceptedEmpty).toEqual([]);
    await rm(dir, { recursive: true });
    expect((await errorOf(join('node-3'))).message).toContain('is empty but node-3 held data');
  });

  it('the acceptance is not needed for a node the cluster never initialised, and refused for a running one', async () => {
    const { store, join } = await setup();
    await join('node-1');
    expect(await acceptEmptyClusterNode(store, 'node-9')).toMatchObject({ acceptance: 'not-needed' });
    await store.registerNode({ id: 'node-1', address: 'http://127.0.0.1:1' }, 60_000);
    expect((await errorOf(acceptEmptyClusterNode(store, 'node-1'))).message).toContain('node-1 is running');
    expect((await store.getClusterIdentity())?.acceptedEmpty).toEqual([]);
  });

  it("refuses a directory of another cluster, naming both ids, and leaves it as it was", async () => {
    const { dataDir, join } = await setup();
    const { clusterId } = await join('node-1');
    const dir = path.join(dataDir, 'nodes', 'node-2');
    await mkdir(path.join(dir, 'volumes'), { recursive: true });
    await writeNodeIdentity(dir, nodeIdentity('node-2', 'other-cluster', 0));
    const before = await readFile(path.join(dir, NODE_IDENTITY_FILE), 'utf8');
    const refused = await errorOf(join('node-2'));
    expect(refused.message).toContain(`${dir}: belongs to cluster other-cluster, not this cluster ${clusterId}`);
    expect(await readFile(path.join(dir, NODE_IDENTITY_FILE), 'utf8')).toBe(before);
  });

  it("adopts a previous release's directory (data, no identity) and an identity without a cluster id", async () => {
    const { dataDir, join } = await setup();
    const old = path.join(dataDir, 'nodes', 'node-1');
    await mkdir(path.join(old, 'volumes'), { recursive: true });
    await writeFile(path.join(old, 'volumes', 'volume-000001.dat'), 'blobs');
    const clusterless = path.join(dataDir, 'nodes', 'node-2');
    await mkdir(clusterless, { recursive: true });
    await writeNodeIdentity(clusterless, nodeIdentity('node-2', null, 0));

    const first = await join('node-1');
    expect(first.directory).toBe('adopted');
    expect(await readFile(path.join(old, 'volumes', 'volume-000001.dat'), 'utf8')).toBe('blobs');
    expect((await join('node-2')).directory).toBe('adopted');
    const ids = await Promise.all(['node-1', 'node-2'].map(async (n) => JSON.parse(await readFile(path.join(dataDir, 'nodes', n, NODE_IDENTITY_FILE), 'utf8')).clusterId));
    expect(ids).toEqual([first.clusterId, first.clusterId]);
  });

  it("recreates a lost cluster identity with the id the directories name, not a new one", async () => {
    const { dataDir, clock, join } = await setup();
    await mkdir(path.join(dataDir, 'nodes', 'node-1'), { recursive: true });
    await writeNodeIdentity(path.join(dataDir, 'nodes', 'node-1'), nodeIdentity('node-1', 'kept-cluster', 0));
    expect((await join('node-1')).clusterId).toBe('kept-cluster');

    // An all-in-one's data directory run as separate processes: its cluster-identity.json names the cluster.
    const other = await setup();
    await writeClusterIdentity(other.dataDir, clusterIdentity('all-in-one-cluster', ['node-1'], clock.nowMs()));
    expect((await other.join('node-5')).clusterId).toBe('all-in-one-cluster');
  });

  it('refuses to start on a damaged cluster identity, saying what to do', async () => {
    const { join } = await setup();
    const damaged: ClusterIdentityStore = {
      getClusterIdentity: () => Promise.reject(new StrataError('METADATA_CORRUPT', 'the cluster-identity record failed verification')),
      createClusterIdentity: () => Promise.reject(new Error('not called')),
      updateClusterNodes: () => Promise.reject(new Error('not called')),
    };
    const refused = await errorOf(join('node-1', damaged));
    expect(refused.code).toBe('METADATA_CORRUPT');
    expect(refused.message).toMatch(/does not start on trust.*cluster-identity/);
  });

  it('waits for a metadata store that does not answer, then starts when it does', async () => {
    const { store, clock, join } = await setup();
    let failures = 3;
    const flaky: ClusterIdentityStore = {
      getClusterIdentity: () => (failures-- > 0 ? Promise.reject(new StrataError('METADATA_UNAVAILABLE', 'etcd is down')) : store.getClusterIdentity()),
      createClusterIdentity: (p) => store.createClusterIdentity(p),
      updateClusterNodes: (u) => store.updateClusterNodes(u),
    };
    const joined = join('node-1', flaky);
    await vi.waitFor(
      () => {
        clock.advance(CLUSTER_JOIN_LIMITS.retryDelayMsMax);
        expect(failures).toBeLessThan(0);
      },
      { timeout: 30_000, interval: 10 },
    );
    expect((await joined).directory).toBe('initialised');
  });

  it('refuses to start when the metadata store does not answer within the bound, and writes nothing', async () => {
    const { dataDir, clock, join } = await setup();
    const down: ClusterIdentityStore = {
      getClusterIdentity: () => Promise.reject(new StrataError('METADATA_UNAVAILABLE', 'etcd is down')),
      createClusterIdentity: () => Promise.reject(new StrataError('METADATA_UNAVAILABLE', 'etcd is down')),
      updateClusterNodes: () => Promise.reject(new StrataError('METADATA_UNAVAILABLE', 'etcd is down')),
    };
    let settled = false;
    const joined = errorOf(join('node-1', down)).finally(() => (settled = true));
    await vi.waitFor(
      () => {
        clock.advance(CLUSTER_JOIN_LIMITS.retryDelayMsMax);
        expect(settled).toBe(true);
      },
      { timeout: 30_000, interval: 10 },
    );
    const refused = await joined;
    expect(refused.code).toBe('METADATA_UNAVAILABLE');
    expect(refused.message).toContain(`did not answer within ${CLUSTER_JOIN_LIMITS.metadataWaitMs} ms`);
    expect(refused.message).toContain('STRATA_ETCD_ENDPOINTS');
    expect(await readdir(path.join(dataDir, 'nodes', 'node-1'))).not.toContain(NODE_IDENTITY_FILE);
  });
});
