/**
 * A storage node whose disk is full refuses puts with DISK_FULL (a 503 from the node); gateways then place new
 * blobs on other nodes for a while instead of missing the same target on every write.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StrataError } from '../../internal/core/errors.js';
import { NodePool } from '../../internal/cluster/node-pool.js';
import { chooseNodes, requireRoom, type PlacementNode } from '../../internal/placement/rendezvous.js';
import { LocalNodeClient } from '../../internal/nodeclient/local-node-client.js';
import { VolumeBlobStore } from '../../internal/blobstore/volume/volume-blob-store.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

describe('a node with a full disk', () => {
  it('is left out of placement after it refused a put, and tried again later', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-full-'));
    const store = await VolumeBlobStore.open({ dir });
    try {
      const clock = new ManualClock();
      const clients = Array.from({ length: 7 }, (_, i) => new LocalNodeClient({ nodeId: `node-${i + 1}`, store }));
      const pool = new NodePool(clients.map((client) => ({ client })), { clock, probeIntervalMs: 1000, probeTimeoutMs: 100 });
      pool.observe('node-3', new StrataError('DISK_FULL', 'node-3: disk full'));
      const chosen = (): string[] => chooseNodes('some-key/cold', pool.placementNodes(), 6);
      expect(chosen()).not.toContain('node-3');
      // A successful read from it does not make it a write target again before the pause is over.
      pool.observe('node-3', null);
      expect(chosen()).not.toContain('node-3');
      clock.advance(31_000);
      expect(chosen()).toContain('node-3');
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('writes when a node refuses with DISK_FULL', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ transport: 'http' });
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  it('answer cleanly (partial, then placed around the full node), and every document reads back', async () => {
    const full = cluster.nodes[0]!;
    const original = full.client.put.bind(full.client);
    full.client.put = async () => {
      throw new StrataError('DISK_FULL', `${full.id}: no space left on device`);
    };
    try {
      const outcomes: { partial: boolean }[] = [];
      // Incompressible and above the inline threshold, so that the cold part is six shards, not three copies.
      const docs = Array.from({ length: 12 }, (_, i) => ({ like_count: i, body: randomBytes(2250).toString('base64') }));
      for (let i = 0; i < 12; i++) {
        const res = await cluster.write(`full/${i}`, docs[i], '&strategy=field_hybrid');
        expect(res.status).toBe(200);
        outcomes.push((await res.json()) as { partial: boolean });
      }
      // Every write of a field_hybrid document uses all six nodes for its shards, so with six nodes the full one
      // cannot be avoided for the cold tier: each write is partial, never failed, and reads back exactly.
      expect(outcomes.every((o) => o.partial)).toBe(true);
      for (let i = 0; i < 12; i++) {
        expect(await (await cluster.read(`full/${i}`)).json()).toEqual(docs[i]);
      }
    } finally {
      full.client.put = original;
    }
    // With room again the healer completes every partial write.
    await cluster.healer.runOnce({ forceAudit: true });
    for (let i = 0; i < 12; i++) {
      const stat = (await (await cluster.fetch(`/stat/${encodeURIComponent(`full/${i}`)}`)).json()) as { dirty: boolean };
      expect(stat.dirty).toBe(false);
    }
  });
});

describe('placement with full nodes', () => {
  const nodes = (full: string[]): PlacementNode[] =>
    Array.from({ length: 7 }, (_, i) => ({ id: `node-${i + 1}`, healthy: true, ...(full.includes(`node-${i + 1}`) ? { full: true } : {}) }));

  it('never gives a full node a new blob while enough others have room', () => {
    for (let k = 0; k < 200; k++) {
      expect(chooseNodes(`doc-${k}/cold`, nodes(['node-2']), 6)).not.toContain('node-2');
      expect(chooseNodes(`doc-${k}/hot`, nodes(['node-2', 'node-5']), 3)).not.toContain('node-2');
    }
  });

  it('refuses with DISK_FULL (507) when fewer nodes than the quorum have room, naming the reason', () => {
    expect(() => requireRoom(nodes(['node-1', 'node-2', 'node-3']), 5, 'erasure-coded shards', ['node-1: disk full'])).toThrow(
      expect.objectContaining({ code: 'DISK_FULL', status: 507 }),
    );
    expect(() => requireRoom(nodes(['node-1', 'node-2']), 5, 'erasure-coded shards')).not.toThrow();
  });

  it('takes a node out of placement while its capacity report says it is full, and back once it has room', async () => {
    const clock = new ManualClock();
    let writable = false;
    const clients = Array.from({ length: 6 }, (_, i) => ({
      nodeId: `node-${i + 1}`,
      address: `local://node-${i + 1}`,
      ping: async () => true,
      probe: async () => ({ up: true, writable: i !== 0 || writable, reason: i === 0 && !writable ? 'node-1: disk full' : null }),
      close: async () => undefined,
    }));
    const pool = new NodePool(clients.map((client) => ({ client: client as unknown as LocalNodeClient })), { clock, probeIntervalMs: 1000, probeTimeoutMs: 100 });
    await pool.probe();
    expect(pool.placementNodes().find((n) => n.id === 'node-1')?.full).toBe(true);
    expect(pool.views().find((v) => v.id === 'node-1')).toMatchObject({ writable: false, fullReason: 'node-1: disk full' });
    expect(pool.capacity()).toEqual({ nodesWithRoom: 5, nodesUp: 6 });
    writable = true;
    await pool.probe();
    expect(pool.placementNodes().find((n) => n.id === 'node-1')?.full).toBeUndefined();
  });
});
