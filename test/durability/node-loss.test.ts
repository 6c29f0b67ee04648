/**
 * Guarantee: an acknowledged non-partial write survives the loss of any two storage nodes; reads of data that
 * cannot be reached answer 503 INSUFFICIENT_NODES, never 404 and never wrong bytes; a partial write (one node
 * down) is completed by the healer; a write below quorum (two nodes down) changes nothing a reader can see and
 * leaves no blob behind (architecture.md, "Write" steps 6-7, "Guarantees").
 *
 * Nodes are stopped for real: their server closes and their store is closed, as a crash would leave them.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { chooseNodes } from '../../internal/placement/rendezvous.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import {
  STRATEGIES,
  blobsOfKey,
  docText,
  fullInventory,
  json,
  refNames,
  stat,
  type StrategyName,
} from './durability-helpers.js';

const SIZES = { small: 300, large: 300 * 1024 } as const;

interface Doc {
  key: string;
  strategy: StrategyName;
  text: string;
  version: string;
  /** docText's seed (title, view_count) and the like_count it was written with. */
  seed: number;
  like: number;
}

function nodeIds(): string[] {
  return Array.from({ length: 6 }, (_, i) => `node-${i + 1}`);
}

function pairs(): [string, string][] {
  const ids = nodeIds();
  const out: [string, string][] = [];
  for (let i = 0; i < ids.length; i++) for (let j = i + 1; j < ids.length; j++) out.push([ids[i]!, ids[j]!]);
  return out;
}

/** Where the gateway puts a key's hot replicas when every node is healthy. */
function hotPlacement(key: string): string[] {
  return chooseNodes(`${key}/hot`, nodeIds().map((id) => ({ id, healthy: true })), 3);
}

async function stopNodes(cluster: TestCluster, ids: readonly string[]): Promise<void> {
  await Promise.all(ids.map((id) => cluster.nodes.find((n) => n.id === id)!.stop()));
}

async function startAll(cluster: TestCluster): Promise<void> {
  await Promise.all(cluster.nodes.map((n) => n.start()));
  await cluster.pool.probe();
}

async function writeDocs(cluster: TestCluster): Promise<Doc[]> {
  const docs: Doc[] = [];
  let seed = 1;
  for (const strategy of STRATEGIES) {
    for (const [size, bytes] of Object.entries(SIZES)) {
      const key = `loss/${strategy}/${size}`;
      const text = docText(seed, bytes);
      const res = await cluster.write(key, text, `&strategy=${strategy}`);
      const body = await json(res);
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(body.partial).toBe(false);
      docs.push({ key, strategy, text, version: body.version, seed, like: seed });
      seed++;
    }
  }
  return docs;
}

async function expectReadable(cluster: TestCluster, doc: Doc, context: string): Promise<void> {
  const res = await cluster.read(doc.key);
  const text = await res.text();
  expect(res.status, `${context}: ${doc.key} ${text.slice(0, 200)}`).toBe(200);
  expect(res.headers.get('x-strata-version')).toBe(doc.version);
  expect(text === doc.text, `${context}: ${doc.key} reads back byte-exact`).toBe(true);
  if (doc.strategy === 'field_hybrid') {
    const hot = await cluster.read(doc.key, '?fields=like_count,view_count');
    expect(hot.status, `${context}: hot projection of ${doc.key}`).toBe(200);
    expect(hot.headers.get('x-strata-cold-read')).toBe('0');
    expect(await hot.text()).toBe(`{"like_count":${doc.like},"view_count":${doc.seed * 10}}`);
    const cold = await cluster.read(doc.key, '?fields=title,price');
    expect(cold.status, `${context}: cold projection of ${doc.key}`).toBe(200);
    expect(await cold.text()).toBe(`{"title":"doc ${doc.seed} héllo 😀","price":19.90}`);
  }
}

for (const transport of ['local', 'http'] as const) {
  describe(`reads with storage nodes stopped (${transport} transport)`, () => {
    let cluster: TestCluster;
    let docs: Doc[];
    beforeAll(async () => {
      cluster = await startTestCluster({ transport });
      docs = await writeDocs(cluster);
    });
    afterAll(async () => {
      await cluster.destroy();
    });

    it('every document reads back byte-exact with any two of six nodes stopped (all 15 pairs)', async () => {
      for (const pair of pairs()) {
        await stopNodes(cluster, pair);
        for (const doc of docs) await expectReadable(cluster, doc, `${pair.join('+')} down`);
        await startAll(cluster);
      }
    });

    it('answers 503 INSUFFICIENT_NODES, never 404 or other bytes, when three nodes holding a document are stopped', async () => {
      for (const doc of docs) {
        const s = await stat(cluster, doc.key);
        // Three nodes that hold a replication document's every replica, or three of an erasure-coded one's shards.
        const down = doc.strategy === 'replication' ? s.hot.map((r) => r.node) : s.cold.slice(0, 3).map((r) => r.node);
        await stopNodes(cluster, down);
        const res = await cluster.read(doc.key);
        const body = await json(res);
        expect(res.status, `${doc.key} with ${down.join('+')} down`).toBe(503);
        expect(body.error.code).toBe('INSUFFICIENT_NODES');
        expect(res.headers.get('retry-after')).not.toBeNull();
        // Every other document either reads back exactly or is 503: never a 404, never wrong bytes.
        for (const other of docs) {
          const r = await cluster.read(other.key);
          const text = await r.text();
          expect([200, 503], `${other.key} with ${down.join('+')} down`).toContain(r.status);
          if (r.status === 200) expect(text === other.text).toBe(true);
          else expect(JSON.parse(text).error.code).toBe('INSUFFICIENT_NODES');
        }
        await startAll(cluster);
        await expectReadable(cluster, doc, 'after the nodes returned');
      }
    });
  });
}

describe('writes with storage nodes stopped', () => {
  const GC_GRACE_MS = 60_000;
  const clock = new AdvancingClock();
  let cluster: TestCluster;
  beforeAll(async () => {
    // The GC grace is also every write's commit deadline: long, so that no write here reaches it however slow the
    // machine; the test moves the cluster's clock past it when the blobs of refused writes should be collected.
    cluster = await startTestCluster({ clock, env: { STRATA_INTENT_TIMEOUT_MS: '30000', STRATA_GC_GRACE_MS: String(GC_GRACE_MS) } });
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  it('a write with one node down is partial, and the healer completes it once the node is back', async () => {
    const written: Doc[] = [];
    for (const strategy of STRATEGIES) {
      const key = `partial/${strategy}`;
      const down = hotPlacement(key)[0]!;
      await stopNodes(cluster, [down]);
      // The gateway has not noticed the crash yet (no probe since), so it still places blobs on the node.
      cluster.pool.observe(down, null);
      const text = docText(20, 100_000);
      const res = await cluster.write(key, text, `&strategy=${strategy}`);
      const body = await json(res);
      expect(res.status, JSON.stringify(body)).toBe(200);
      const s = await stat(cluster, key);
      const onDown = [...s.hot, ...s.cold].filter((r) => r.node === down);
      // Partial exactly when a target was the stopped node; each such ref is recorded missing.
      expect(body.partial).toBe(onDown.length > 0);
      if (strategy !== 'replication') expect(body.partial).toBe(true);
      expect(s.dirty).toBe(body.partial);
      for (const r of onDown) expect(r.state).toBe('missing');
      expect(await (await cluster.read(key)).text()).toBe(text);
      written.push({ key, strategy, text, version: body.version, seed: 20, like: 20 });

      await startAll(cluster);
      await cluster.healer.runOnce({ forceAudit: true });
      const healed = await stat(cluster, key);
      expect(healed.dirty).toBe(false);
      expect(healed.version).toBe(body.version);
      for (const r of [...healed.hot, ...healed.cold]) expect(r.state, `${r.blob} on ${r.node}`).toBe('ok');
      const inv = await fullInventory(cluster);
      for (const name of refNames(healed)) expect(inv.has(name), `${name} was repaired`).toBe(true);
    }
    // Completed writes now survive any two losses, including the node that missed them plus another.
    for (const pair of pairs()) {
      await stopNodes(cluster, pair);
      for (const doc of written) await expectReadable(cluster, doc, `${pair.join('+')} down after repair`);
      await startAll(cluster);
    }
  });

  it('two nodes whose disks are lost come back empty: documents read back and the healer restores full protection', async () => {
    const docs: Doc[] = [];
    for (const [i, strategy] of STRATEGIES.entries()) {
      const key = `disk-loss/${strategy}`;
      const text = docText(50 + i, 120_000);
      const body = await json(await cluster.write(key, text, `&strategy=${strategy}`));
      expect(body.partial).toBe(false);
      docs.push({ key, strategy, text, version: body.version, seed: 50 + i, like: 50 + i });
    }
    // The replication document's first two replica holders lose everything.
    const lost = (await stat(cluster, docs[0]!.key)).hot.slice(0, 2).map((r) => r.node);
    await stopNodes(cluster, lost);
    for (const id of lost) await rm(cluster.nodes.find((n) => n.id === id)!.dataDir, { recursive: true, force: true });
    await startAll(cluster);
    for (const doc of docs) await expectReadable(cluster, doc, `${lost.join('+')} wiped`);

    await cluster.healer.runOnce({ forceAudit: true });
    const inv = await fullInventory(cluster);
    for (const doc of docs) {
      const s = await stat(cluster, doc.key);
      expect(s.dirty, doc.key).toBe(false);
      expect(s.version).toBe(doc.version);
      for (const name of refNames(s)) expect(inv.has(name), `${name} restored`).toBe(true);
    }
    // Fully protected again: any two further losses are survivable.
    for (const pair of pairs()) {
      await stopNodes(cluster, pair);
      for (const doc of docs) await expectReadable(cluster, doc, `${pair.join('+')} down after the rebuild`);
      await startAll(cluster);
    }
  });

  it('a pure hot update of a partial document keeps it dirty until the healer completes it', async () => {
    const key = 'partial/then-hot';
    const down = 'node-3';
    await stopNodes(cluster, [down]);
    cluster.pool.observe(down, null);
    const first = await json(await cluster.write(key, docText(21, 60_000), '&strategy=field_hybrid'));
    expect(first.partial).toBe(true);
    await startAll(cluster);
    // The node is back but not yet repaired: its shard is still missing, and the update reuses that shard.
    const next = docText(21, 60_000, { like_count: 22 });
    const res = await json(await cluster.write(key, next));
    expect(res.is_pure_hot_update).toBe(true);
    expect(res.partial).toBe(true);
    const s = await stat(cluster, key);
    expect(s.dirty).toBe(true);
    expect(s.cold.filter((r) => r.state === 'missing').map((r) => r.node)).toEqual([down]);
    await cluster.healer.runOnce({ forceAudit: true });
    const healed = await stat(cluster, key);
    expect(healed.dirty).toBe(false);
    const inv = await fullInventory(cluster);
    for (const name of refNames(healed)) expect(inv.has(name), name).toBe(true);
    for (const pair of pairs()) {
      await stopNodes(cluster, pair);
      await expectReadable(cluster, { key, strategy: 'field_hybrid', text: next, version: res.version, seed: 21, like: 22 }, pair.join('+'));
      await startAll(cluster);
    }
  });

  it('a node that hangs does not stall reads: a second replica or a parity shard answers', async () => {
    const keys = ['hang/replication', 'hang/ec'];
    const texts = [docText(40, 20_000), docText(41, 20_000)];
    expect((await cluster.write(keys[0]!, texts[0]!, '&strategy=replication')).status).toBe(200);
    expect((await cluster.write(keys[1]!, texts[1]!, '&strategy=ec')).status).toBe(200);
    const hung = [(await stat(cluster, keys[0]!)).hot[0]!.node, (await stat(cluster, keys[1]!)).cold[0]!.node];
    // The hung node never answers and has no deadline of its own (the client's is mocked away with it): a read that
    // waited for it would never finish, and the test would fail at its timeout. Each hung call must instead be
    // cancelled by the read that answered from another node.
    const hungCalls: { cancelled: boolean }[] = [];
    for (const id of new Set(hung)) {
      const node = cluster.nodes.find((n) => n.id === id)!;
      vi.spyOn(node.client, 'get').mockImplementation(
        (_id, options) =>
          new Promise((_resolve, reject) => {
            const call = { cancelled: false };
            hungCalls.push(call);
            options?.signal?.addEventListener('abort', () => {
              call.cancelled = true;
              reject(options.signal!.reason);
            });
          }),
      );
    }
    try {
      for (const [i, key] of keys.entries()) {
        for (let attempt = 0; attempt < 3; attempt++) {
          const read = await cluster.read(key);
          expect(await read.text()).toBe(texts[i]);
        }
      }
      expect(hungCalls.length, 'the reads asked the hung nodes first at least once').toBeGreaterThan(0);
      expect(hungCalls.filter((c) => !c.cancelled), 'every call to a hung node was cancelled by its read').toEqual([]);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('a write with two nodes down answers 503 INSUFFICIENT_NODES, changes nothing and leaves no blob after GC', async () => {
    const existing = 'belowquorum/existing';
    const original = docText(30, 50_000);
    expect((await cluster.write(existing, original, '&strategy=field_hybrid')).status).toBe(200);
    const before = await stat(cluster, existing);

    const attempts: { key: string; strategy: StrategyName }[] = [
      ...STRATEGIES.map((strategy) => ({ key: `belowquorum/new/${strategy}`, strategy })),
      { key: existing, strategy: 'field_hybrid' },
    ];
    for (const { key, strategy } of attempts) {
      // Two nodes the write must use: two of a replication key's three replicas, and always two of six shards.
      const down = hotPlacement(key).slice(0, 2);
      await stopNodes(cluster, down);
      // Not yet noticed by the gateway: the write really sends its blobs, and must clean up after itself.
      for (const id of down) cluster.pool.observe(id, null);
      const res = await cluster.write(key, docText(31, 50_000), `&strategy=${strategy}`);
      const body = await json(res);
      expect(res.status, `${key}: ${JSON.stringify(body)}`).toBe(503);
      expect(body.error.code).toBe('INSUFFICIENT_NODES');
      if (key === existing) {
        const read = await cluster.read(key);
        expect(read.headers.get('x-strata-version')).toBe(before.version);
        expect(await read.text()).toBe(original);
      } else {
        expect((await cluster.read(key)).status).toBe(404);
        expect((await cluster.fetch(`/stat/${encodeURIComponent(key)}`)).status).toBe(404);
      }
      await startAll(cluster);
    }

    clock.advance(GC_GRACE_MS + 1); // past the GC grace period
    await cluster.healer.runOnce({ forceAudit: true });
    for (const { key } of attempts) {
      if (key === existing) continue;
      expect([...(await blobsOfKey(cluster, key))], `${key} left no blob`).toEqual([]);
      expect((await cluster.read(key)).status).toBe(404);
    }
    expect([...(await blobsOfKey(cluster, existing))].sort()).toEqual(refNames(before).sort());
    expect(await (await cluster.read(existing)).text()).toBe(original);
  });
});
