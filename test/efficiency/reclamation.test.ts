/**
 * Space comes back on the storage nodes (internal/blobstore/volume/README.md, "Reclamation"): documents
 * overwritten and deleted through the API leave garbage on the nodes' disks that GET /storage_usage reports as
 * reclaimable; once the store is quiet for the idle time it is given back, and each node directory's allocated
 * bytes (what `du` counts) come within 1.3x its live need + 4 MiB; deleting everything empties the nodes; garbage
 * left by deletes before a restart is still reported and reclaimed after it.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { atRestBoundBytes, nodeDirectoryBytes } from '../helpers/disk-usage.js';

/** The store's default quiet time before its idle pass, plus a margin. */
const PAST_IDLE_MS = 31_000;
const MIB = 1024 * 1024;
const DOCS = 8;
/** Enough rewrites that, unreclaimed, each node would hold several times the 4 MiB slack in garbage. */
const ROUNDS = 20;

interface Usage {
  live_keys: number;
  reclaimable_bytes: number;
  reclaimed_bytes: number;
  per_node: Record<string, { reclaimable_bytes: number | null; reclaimed_bytes: number | null }>;
}

/** An iot-like document whose log is incompressible, so that what is stored is what was written. */
function document(n: number): string {
  return JSON.stringify({ device_id: `dev-${n}`, battery_level: n % 100, log: randomBytes(120 * 1024).toString('base64') });
}

async function usage(cluster: TestCluster): Promise<Usage> {
  const res = await cluster.fetch('/storage_usage');
  expect(res.status).toBe(200);
  return (await res.json()) as Usage;
}

async function rewrite(cluster: TestCluster, keys: string[], rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await Promise.all(
      keys.map(async (key, i) => {
        for (const strategy of ['ec', 'replication']) {
          const res = await cluster.write(`${key}/${strategy}`, document(round * 100 + i), `&strategy=${strategy}`);
          expect(res.status).toBe(200);
        }
      }),
    );
  }
}

describe('reclamation on the storage nodes', () => {
  const clusters: TestCluster[] = [];
  afterEach(async () => {
    for (const cluster of clusters.splice(0)) await cluster.destroy();
  });

  it('gives back overwritten documents once idle: every node within 1.3x its live need + 4 MiB, and reported', async () => {
    const clock = new AdvancingClock();
    const cluster = await startTestCluster({ clock });
    clusters.push(cluster);
    const keys = Array.from({ length: DOCS }, (_, i) => `iot/${i}`);
    await rewrite(cluster, keys, ROUNDS);
    const before = await usage(cluster);
    expect(before.reclaimable_bytes).toBeGreaterThan(MIB);
    for (const node of Object.values(before.per_node)) expect(node.reclaimable_bytes).toEqual(expect.any(Number));

    clock.advance(PAST_IDLE_MS);
    await vi.waitFor(
      async () => {
        for (const n of await nodeDirectoryBytes(cluster)) expect(n.allocated, n.node).toBeLessThanOrEqual(atRestBoundBytes(n.need));
      },
      { timeout: 60_000, interval: 200 },
    );
    await vi.waitFor(async () => expect((await usage(cluster)).reclaimed_bytes).toBeGreaterThan(8 * MIB), { timeout: 60_000, interval: 200 });
    for (const key of keys) expect((await cluster.read(`${key}/ec`)).status).toBe(200);

    // Deleting everything returns the nodes to near-empty.
    for (const key of keys) for (const strategy of ['ec', 'replication']) expect((await cluster.fetch(`/delete/${encodeURIComponent(`${key}/${strategy}`)}`, { method: 'DELETE' })).status).toBe(200);
    clock.advance(PAST_IDLE_MS);
    await vi.waitFor(
      async () => {
        for (const n of await nodeDirectoryBytes(cluster)) expect(n.allocated, n.node).toBeLessThanOrEqual(512 * 1024);
      },
      { timeout: 60_000, interval: 200 },
    );
  }, 180_000);

  it('reports and reclaims after a restart the garbage that deletes left before it', async () => {
    const first = await startTestCluster({ clock: new AdvancingClock() });
    const keys = Array.from({ length: DOCS }, (_, i) => `gone/${i}`);
    await rewrite(first, keys, 2);
    for (const key of keys) for (const strategy of ['ec', 'replication']) expect((await first.fetch(`/delete/${encodeURIComponent(`${key}/${strategy}`)}`, { method: 'DELETE' })).status).toBe(200);
    await first.stop();
    const clock = new AdvancingClock();
    const cluster = await startTestCluster({ clock, dataDir: first.dataDir });
    clusters.push(cluster);
    const reopened = await usage(cluster);
    expect(reopened.live_keys).toBe(0);
    expect(reopened.reclaimable_bytes).toBeGreaterThan(MIB);
    clock.advance(PAST_IDLE_MS);
    await vi.waitFor(
      async () => {
        const u = await usage(cluster);
        expect(u.reclaimed_bytes).toBeGreaterThan(0);
        for (const n of await nodeDirectoryBytes(cluster)) expect(n.allocated, n.node).toBeLessThanOrEqual(512 * 1024);
      },
      { timeout: 60_000, interval: 200 },
    );
  }, 180_000);
});
