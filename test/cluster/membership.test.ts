/**
 * Membership changes (issue 3): a storage node added at runtime takes new writes at once; the healer rebalances
 * existing blobs onto it at a bounded rate until its usage is within the tolerance of the average; a node is
 * drained without any document ever dropping below full protection, and is then removed.
 *
 * In-process parts: the all-in-one test cluster (gateway, six nodes, healer on the embedded metadata store)
 * plus a seventh storage node started beside it. Membership goes through the node registry of the cluster's
 * SqliteMetadataStore exactly as in the separate-process mode: nodes register, and the pool is synced from the
 * registry (here by the test, between steps, instead of every second).
 */
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HttpNodeClient } from '../../internal/nodeclient/http-node-client.js';
import type { NodeClient } from '../../internal/nodeclient/node-client.js';
import type { RegisteredNode } from '../../internal/metadata/metadata-store.js';
import { MEMBERSHIP_LIMITS } from '../../internal/healer/membership.js';
import { chooseNodes, type PlacementNode } from '../../internal/placement/rendezvous.js';
import { startStorageNode, type StorageNode } from '../../internal/storagenode/server.js';
import { docText, json, stat, type StatBody } from '../durability/durability-helpers.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';

/** Rebalance moves per healer round in this test: small, so that the bound is visible. */
const BLOBS_PER_ROUND = 6;
/** Registrations outlive the test: liveness is the subject of the etcd test, not of this one. */
const TTL_MS = 10 * 60_000;
const STRATEGY_CYCLE = ['field_hybrid', 'ec', 'replication'] as const;

describe('storage-node membership through the node registry', () => {
  let cluster: TestCluster;
  let token: string;
  let node7: StorageNode | null = null;
  const docs = new Map<string, string>();

  const makeClient = (n: RegisteredNode): NodeClient =>
    // Generous: a call that times out on a busy machine marks its node down. Stopped nodes refuse at once.
    new HttpNodeClient({ nodeId: n.id, address: n.address, token, timeoutMs: CONDITION_TIMEOUT_MS });

  async function syncPool(): Promise<void> {
    cluster.pool.syncFromRegistry(await cluster.metadata.listNodes(), makeClient);
  }

  async function write(key: string, text: string, strategy: string): Promise<void> {
    const res = await cluster.write(key, text, `&strategy=${strategy}`);
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.partial).toBe(false);
    docs.set(key, text);
  }

  /** Bytes and blobs each node stores, from the nodes' own inventories. */
  async function usage(ids: readonly string[]): Promise<Map<string, { bytes: number; blobs: number }>> {
    const out = new Map<string, { bytes: number; blobs: number }>();
    for (const id of ids) {
      const client = cluster.pool.client(id)!;
      let bytes = 0;
      let blobs = 0;
      let after: string | null = null;
      for (;;) {
        const page = await client.list(after, 1000);
        for (const info of page) {
          bytes += info.size;
          blobs++;
        }
        if (page.length < 1000) break;
        after = page[page.length - 1]!.id;
      }
      out.set(id, { bytes, blobs });
    }
    return out;
  }

  /** Every document reads back byte for byte. */
  async function expectAllReadable(context: string): Promise<void> {
    for (const [key, text] of docs) {
      const res = await cluster.read(key);
      expect(res.status, `${context}: read ${key}`).toBe(200);
      expect(await res.text(), `${context}: read ${key}`).toBe(text);
    }
  }

  /** Full protection: 3 ok replicas and every cold blob ok (where the document has them), all on live members. */
  function expectFullyProtected(s: StatBody, context: string): void {
    const okAlive = (refs: readonly { node: string; state: string }[]) =>
      refs.filter((r) => r.state === 'ok' && cluster.pool.isHealthy(r.node)).length;
    if (s.hot.length > 0) expect(okAlive(s.hot), `${context}: ok replicas of ${s.key}`).toBe(3);
    // Six shards, or three copies of a small cold part kept beside the replicas (internal/coldpart): all ok.
    expect([0, 3, 6], `${context}: cold blobs of ${s.key}`).toContain(s.cold.length);
    expect(okAlive(s.cold), `${context}: ok cold blobs of ${s.key}`).toBe(s.cold.length);
    expect(new Set(s.hot.map((r) => r.node)).size, `${context}: distinct replica nodes of ${s.key}`).toBe(s.hot.length);
    expect(new Set(s.cold.map((r) => r.node)).size, `${context}: distinct shard nodes of ${s.key}`).toBe(s.cold.length);
  }

  function placement(ids: readonly string[]): PlacementNode[] {
    return ids.map((id) => ({ id, healthy: true }));
  }

  beforeAll(async () => {
    cluster = await startTestCluster({
      env: {
        STRATA_REBALANCE_BLOBS_PER_ROUND_MAX: String(BLOBS_PER_ROUND),
        // The documents here are small; rebalance as soon as the tolerance is exceeded.
        STRATA_REBALANCE_DEFICIT_BYTES_MIN: '0',
      },
    });
    token = (await readFile(path.join(cluster.dataDir, 'cluster-token'), 'utf8')).trim();
    // The six nodes join the registry with the addresses the pool already has, so their clients are kept.
    for (const node of cluster.nodes) await cluster.metadata.registerNode({ id: node.id, address: node.address }, TTL_MS);
    await syncPool();
    for (let i = 0; i < 36; i++) {
      await write(`doc/${String(i).padStart(2, '0')}`, docText(i, 2_000 + (i % 6) * 4_000), STRATEGY_CYCLE[i % 3]!);
    }
  });

  afterAll(async () => {
    await node7?.stop();
    await cluster?.destroy();
  });

  it('a seventh node registered at runtime takes new writes at once', async () => {
    const dataDir = path.join(cluster.dataDir, 'nodes', 'node-7');
    await mkdir(dataDir, { recursive: true });
    node7 = await startStorageNode({ nodeId: 'node-7', dataDir, host: '127.0.0.1', port: 0, token, onError: () => undefined });
    await cluster.metadata.registerNode({ id: 'node-7', address: node7.address }, TTL_MS);
    await syncPool();
    expect(cluster.pool.isHealthy('node-7')).toBe(true);
    expect(cluster.pool.placementNodes().map((n) => n.id)).toContain('node-7');

    // Keys whose placement over the seven nodes includes node-7, for each tier.
    const seven = placement([...cluster.nodes.map((n) => n.id), 'node-7']);
    const keyFor = (tier: 'hot' | 'cold', count: number): string => {
      for (let i = 0; ; i++) {
        const key = `new/${tier}/${i}`;
        if (chooseNodes(`${key}/${tier}`, seven, count).includes('node-7')) return key;
      }
    };
    const hotKey = keyFor('hot', 3);
    const coldKey = keyFor('cold', 6);
    await write(hotKey, docText(100, 3_000), 'replication');
    await write(coldKey, docText(101, 20_000), 'ec');
    expect((await stat(cluster, hotKey)).hot.find((r) => r.node === 'node-7')?.state).toBe('ok');
    expect((await stat(cluster, coldKey)).cold.find((r) => r.node === 'node-7')?.state).toBe('ok');
    await expectAllReadable('after node-7 joined');
  });

  it('the healer rebalances onto the new node at the bounded rate until it is within the tolerance', async () => {
    const ids = [...cluster.nodes.map((n) => n.id), 'node-7'];
    const before = (await usage(['node-7'])).get('node-7')!;
    let previous = before.blobs;
    let rounds = 0;
    let totalMoved = 0;
    for (;;) {
      rounds++;
      expect(rounds, 'rebalancing settles within 30 rounds').toBeLessThanOrEqual(30);
      const report = await cluster.healer.runOnce({ forceAudit: true });
      expect(report.leader).toBe(true);
      expect(report.backlog).toBe(0);
      expect(report.rebalanced).toBeLessThanOrEqual(BLOBS_PER_ROUND);
      const now = (await usage(['node-7'])).get('node-7')!.blobs;
      // Moves onto node-7 only come from the rebalancer, at most its per-round limit.
      expect(now - previous).toBeLessThanOrEqual(BLOBS_PER_ROUND);
      expect(now).toBeGreaterThanOrEqual(previous);
      previous = now;
      totalMoved += report.rebalanced;
      if (rounds > 1 && report.rebalanced === 0 && report.rebalancePlanned === 0) break;
    }
    expect(totalMoved).toBeGreaterThan(BLOBS_PER_ROUND); // it took several rounds: the bound was in force
    expect(previous).toBeGreaterThan(before.blobs);

    const all = await usage(ids);
    const total = [...all.values()].reduce((sum, u) => sum + u.bytes, 0);
    const average = total / ids.length;
    expect(all.get('node-7')!.bytes).toBeGreaterThanOrEqual(average * (1 - MEMBERSHIP_LIMITS.rebalanceToleranceRatio));
    for (const key of docs.keys()) expectFullyProtected(await stat(cluster, key), 'after rebalancing');
    await expectAllReadable('after rebalancing');
  });

  it('draining a node moves everything off it with every document readable and fully protected at each round', async () => {
    const res = await cluster.fetch('/admin/nodes/node-3/drain', { method: 'POST' });
    expect(res.status).toBe(200);
    expect((await json(res)).node).toMatchObject({ id: 'node-3', state: 'draining' });
    await syncPool();
    expect(cluster.pool.isDraining('node-3')).toBe(true);

    // Six active nodes are left: draining one more would leave too few for a cold write.
    const another = await cluster.fetch('/admin/nodes/node-4/drain', { method: 'POST' });
    expect(another.status).toBe(409);
    expect((await json(another)).error.code).toBe('TOO_FEW_ACTIVE_NODES');
    // Not removable yet: it still holds referenced blobs; an active node is never removable.
    const early = await cluster.fetch('/admin/nodes/node-3', { method: 'DELETE' });
    expect(early.status).toBe(409);
    expect((await json(early)).error.code).toBe('NODE_NOT_EMPTY');
    const active = await cluster.fetch('/admin/nodes/node-1', { method: 'DELETE' });
    expect(active.status).toBe(409);
    expect((await json(active)).error.code).toBe('NODE_NOT_DRAINED');
    expect((await cluster.fetch('/admin/nodes/node-99', { method: 'DELETE' })).status).toBe(404);
    expect((await cluster.fetch('/admin/nodes/node-99/drain', { method: 'POST' })).status).toBe(404);

    // New writes avoid the draining node at once, whatever their key's ranking says.
    for (let i = 0; i < 4; i++) {
      const key = `during-drain/${i}`;
      await write(key, docText(200 + i, 12_000), 'field_hybrid');
      const s = await stat(cluster, key);
      expect([...s.hot, ...s.cold].map((r) => r.node)).not.toContain('node-3');
    }

    // Inside a round, every healer commit must point only at copies that already exist with the recorded bytes,
    // and the copies the previous manifest pointed at must still exist then (copy, commit, and only then delete).
    const problems: string[] = [];
    const commit = cluster.metadata.commit.bind(cluster.metadata);
    const spy = vi.spyOn(cluster.metadata, 'commit').mockImplementation(async (request) => {
      if (!request.assignVersion) {
        const previous = await cluster.metadata.get(request.key);
        const refs = [...request.manifest.hot, ...request.manifest.cold, ...(previous ? [...previous.manifest.hot, ...previous.manifest.cold] : [])];
        for (const ref of refs) {
          const info = await cluster.pool.client(ref.node)?.stat(ref.blob);
          if (!info || info.checksum !== ref.checksum) problems.push(`${request.key}: ${ref.part} on ${ref.node} absent at commit`);
        }
      }
      return commit(request);
    });
    let rounds = 0;
    for (;;) {
      rounds++;
      expect(rounds, 'the drain completes within 5 rounds').toBeLessThanOrEqual(5);
      const report = await cluster.healer.runOnce({ forceAudit: true });
      expect(report.backlog).toBe(0);
      for (const key of docs.keys()) expectFullyProtected(await stat(cluster, key), `after drain round ${rounds}`);
      await expectAllReadable(`after drain round ${rounds}`);
      if (report.drainComplete.includes('node-3')) break;
    }
    const healerCommits = spy.mock.calls.filter(([request]) => !request.assignVersion).length;
    spy.mockRestore();
    expect(healerCommits).toBeGreaterThan(0);
    expect(problems).toEqual([]);
    for (const key of docs.keys()) {
      const s = await stat(cluster, key);
      expect([...s.hot, ...s.cold].map((r) => r.node), key).not.toContain('node-3');
    }
    // The moved copies were deleted from the drained node as soon as each move committed.
    expect((await usage(['node-3'])).get('node-3')!.blobs).toBe(0);
  });

  it('a drained node is removed, and everything still reads back exactly without it', async () => {
    const res = await cluster.fetch('/admin/nodes/node-3', { method: 'DELETE' });
    expect(res.status, JSON.stringify(await res.clone().json())).toBe(200);
    expect((await cluster.metadata.listNodes()).map((n) => n.id)).not.toContain('node-3');
    await syncPool();
    expect(cluster.pool.ids()).not.toContain('node-3');
    // The node's process is then stopped; nothing depends on it.
    await cluster.nodes.find((n) => n.id === 'node-3')!.stop();

    const report = await cluster.healer.runOnce({ forceAudit: true });
    expect(report.backlog).toBe(0);
    expect(report.repaired).toBe(0);
    for (const key of docs.keys()) expectFullyProtected(await stat(cluster, key), 'after removal');
    await expectAllReadable('after removal');
    await write('after-removal', docText(300, 10_000), 'field_hybrid');
    expect((await cluster.read('after-removal')).status).toBe(200);

    const listed = await json(await cluster.fetch('/admin/nodes'));
    expect(listed.nodes.map((n: { id: string }) => n.id)).toEqual(['node-1', 'node-2', 'node-4', 'node-5', 'node-6', 'node-7']);
  });
});

describe('a storage node down longer than STRATA_NODE_DOWN_GRACE_MS', () => {
  // The clusters run on an AdvancingClock, which the tests move past the grace when they mean to: a short real grace
  // could also pass before the "briefly down" check on a busy machine.
  const GRACE_MS = 60_000;

  async function writeDocs(cluster: TestCluster, count: number): Promise<Map<string, string>> {
    const docs = new Map<string, string>();
    for (let i = 0; i < count; i++) {
      const key = `long-down/${i}`;
      const text = docText(400 + i, 3_000 + i * 1_500);
      const res = await cluster.write(key, text, `&strategy=${STRATEGY_CYCLE[i % 3]}`);
      expect(res.status).toBe(200);
      docs.set(key, text);
    }
    return docs;
  }

  it('has its blobs rebuilt on spare active nodes, and only once the grace period is over', async () => {
    const clock = new AdvancingClock();
    const cluster = await startTestCluster({
      clock,
      env: { STRATA_NODE_COUNT: '7', STRATA_NODE_DOWN_GRACE_MS: String(GRACE_MS) },
    });
    try {
      const docs = await writeDocs(cluster, 12);
      const onVictim = async () => {
        let refs = 0;
        for (const key of docs.keys()) {
          const s = await stat(cluster, key);
          refs += [...s.hot, ...s.cold].filter((r) => r.node === 'node-2').length;
        }
        return refs;
      };
      const before = await onVictim();
      expect(before).toBeGreaterThan(0);
      await cluster.nodes.find((n) => n.id === 'node-2')!.stop();

      // Briefly down: nothing moves, the documents wait for the node.
      const early = await cluster.healer.runOnce({ forceAudit: true });
      expect(early.backlog).toBeGreaterThan(0);
      expect(await onVictim()).toBe(before);

      clock.advance(GRACE_MS + 1);
      const late = await cluster.healer.runOnce({ forceAudit: true });
      expect(late.repaired).toBeGreaterThan(0);
      expect(late.backlog).toBe(0);
      expect(await onVictim()).toBe(0);
      for (const [key, text] of docs) {
        const s = await stat(cluster, key);
        expect(s.dirty).toBe(false);
        for (const ref of [...s.hot, ...s.cold]) {
          expect(ref.state).toBe('ok');
          expect(cluster.pool.isHealthy(ref.node)).toBe(true);
        }
        expect(await (await cluster.read(key)).text()).toBe(text);
      }
    } finally {
      await cluster.destroy();
    }
  });

  it('stays where it is when fewer than six active nodes would remain to rebuild on', async () => {
    const clock = new AdvancingClock();
    const cluster = await startTestCluster({ clock, env: { STRATA_NODE_DOWN_GRACE_MS: String(GRACE_MS) } });
    try {
      const docs = await writeDocs(cluster, 6);
      await cluster.nodes.find((n) => n.id === 'node-2')!.stop();
      await cluster.healer.runOnce({ forceAudit: true });
      clock.advance(GRACE_MS + 1);
      const report = await cluster.healer.runOnce({ forceAudit: true });
      expect(report.repaired).toBe(0);
      expect(report.backlog).toBeGreaterThan(0);
      for (const [key, text] of docs) {
        const s = await stat(cluster, key);
        for (const ref of [...s.hot, ...s.cold].filter((r) => r.node === 'node-2')) expect(ref.state).not.toBe('missing');
        expect(await (await cluster.read(key)).text()).toBe(text);
      }
    } finally {
      await cluster.destroy();
    }
  });
});
