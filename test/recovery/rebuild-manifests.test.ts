/**
 * Disaster recovery: the metadata store is lost (its SQLite files deleted) and every manifest is rebuilt from
 * the storage nodes' self-describing blobs (internal/recovery/rebuild-manifests.ts). Every document must read
 * back byte-exact; blobs lost on one node give dirty manifests that the healer then repairs.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import { acceptEmptyNode } from '../../internal/datadir/cluster-directory.js';
import { rebuildManifests } from '../../internal/recovery/rebuild-manifests.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const HOT = '&hot_fields=likes,/stats/views';

interface Written {
  key: string;
  body: string;
}

async function ok(res: Response, what: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  expect(res.status, `${what}: ${text}`).toBe(200);
  return JSON.parse(text) as Record<string, unknown>;
}

/** Documents of all three strategies, with full rewrites, pure hot updates and both kinds of patch. */
async function writeDocuments(cluster: TestCluster): Promise<Written[]> {
  const keys: string[] = [];
  const big = 'x'.repeat(5000);
  for (const strategy of ['replication', 'ec', 'field_hybrid'] as const) {
    for (let i = 0; i < 4; i++) {
      const key = `dr/${strategy}/${i} ü`;
      keys.push(key);
      const doc = `{"id":12345678901234567890,"likes":${i},"stats":{"views":${i * 10},"x":1.50},"blob":"${big}","n":[1,2,{"a":null}]}`;
      await ok(await cluster.write(key, doc, `&strategy=${strategy}${HOT}`), `write ${key}`);
    }
    const base = `dr/${strategy}/`;
    // A pure hot update (field_hybrid: only hot blobs; others: a rewrite).
    await ok(await cluster.write(`${base}1 ü`, `{"id":12345678901234567890,"likes":99,"stats":{"views":7,"x":1.50},"blob":"${big}","n":[1,2,{"a":null}]}`, HOT), 'hot update');
    // Two hot-only updates in a row: the newest hot write still pairs with the original shards.
    await ok(await cluster.write(`${base}2 ü`, `{"id":12345678901234567890,"likes":5,"stats":{"views":20,"x":1.50},"blob":"${big}","n":[1,2,{"a":null}]}`, HOT), 'hot update 1');
    const pure = await ok(await cluster.write(`${base}2 ü`, `{"id":12345678901234567890,"likes":6,"stats":{"views":21,"x":1.50},"blob":"${big}","n":[1,2,{"a":null}]}`, HOT), 'hot update 2');
    if (strategy === 'field_hybrid') expect(pure['is_pure_hot_update']).toBe(true);
    // Merge patch (hot only) then JSON patch (cold change).
    const merged = await ok(
      await cluster.fetch(`/patch/${encodeURIComponent(`${base}3 ü`)}`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: '{"likes":1000}' }),
      'merge patch',
    );
    if (strategy === 'field_hybrid') expect(merged['is_pure_hot_update']).toBe(true);
    await ok(
      await cluster.fetch(`/patch/${encodeURIComponent(`${base}0 ü`)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: '[{"op":"add","path":"/extra","value":{"deep":[1,2,3]}},{"op":"replace","path":"/likes","value":-1}]',
      }),
      'json patch',
    );
  }
  // A document with no hot members at all, and one whose hot member empties its parent.
  await ok(await cluster.write('dr/nohot', '{"a":1}', '&strategy=field_hybrid&hot_fields=zzz'), 'no hot');
  await ok(await cluster.write('dr/emptyparent', '{"stats":{"views":3},"b":2}', `&strategy=field_hybrid${HOT}`), 'empty parent');
  keys.push('dr/nohot', 'dr/emptyparent');
  const out: Written[] = [];
  for (const key of keys) {
    const res = await cluster.read(key);
    expect(res.status).toBe(200);
    out.push({ key, body: await res.text() });
  }
  return out;
}

async function loseMetadata(cluster: TestCluster, alsoWipeNode?: string): Promise<TestCluster> {
  await cluster.stop();
  await rm(path.join(cluster.dataDir, 'metadata'), { recursive: true, force: true });
  if (alsoWipeNode) {
    await rm(path.join(cluster.dataDir, 'nodes', alsoWipeNode), { recursive: true, force: true });
    // An emptied node directory stays down at start-up until the operator accepts it (internal/datadir).
    await acceptEmptyNode(cluster.dataDir, alsoWipeNode, Date.now());
  }
  return startTestCluster({ dataDir: cluster.dataDir });
}

describe('rebuilding manifests after the metadata store is lost', () => {
  const toDestroy: TestCluster[] = [];
  afterEach(async () => {
    const dataDirs = new Set(toDestroy.map((c) => c.dataDir));
    for (const c of toDestroy.splice(0)) await c.stop().catch(() => undefined);
    for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
  });

  it('reads every document back byte-exact after the metadata files are deleted', async () => {
    const first = await startTestCluster({ dataDir: await tmpDir() });
    toDestroy.push(first);
    const written = await writeDocuments(first);
    const versionBefore = await first.metadata.currentRevision();
    const second = await loseMetadata(first);
    toDestroy.push(second);
    expect((await second.read(written[0]!.key)).status).toBe(404);

    const lines: string[] = [];
    const report = await rebuildManifests({
      nodes: second.nodes.map((n) => n.client),
      metadata: second.metadata,
      ec: new ReedSolomonCode(),
      progress: (l) => lines.push(l),
    });
    expect(report.unrecoverable).toEqual([]);
    expect(report.rebuilt).toBe(written.length);
    expect(report.dirty).toBe(0);
    expect(lines.at(-1)).toMatch(/^done: /);
    for (const { key, body } of written) {
      const res = await second.read(key);
      expect(res.status, key).toBe(200);
      expect(await res.text(), key).toBe(body);
      const stat = (await (await second.fetch(`/stat/${encodeURIComponent(key)}`)).json()) as { dirty: boolean; version: string };
      expect(stat.dirty).toBe(false);
      expect(Number(stat.version)).toBeGreaterThan(0);
    }
    expect(versionBefore).toBeGreaterThan(0);
    // The healer finds nothing to repair and collects nothing that is referenced.
    await second.healer.runOnce({ forceAudit: true });
    for (const { key, body } of written) expect(await (await second.read(key)).text()).toBe(body);
    // Hot-only reads and writes keep working on the rebuilt manifests.
    const hybrid = written.find((w) => w.key.startsWith('dr/field_hybrid/1'))!;
    await ok(await second.write(hybrid.key, JSON.stringify({ ...JSON.parse(hybrid.body), likes: 100 })), 'write after rebuild');
  });

  it('gives dirty manifests when one node lost its blobs, and the healer repairs them', async () => {
    const first = await startTestCluster({ dataDir: await tmpDir() });
    toDestroy.push(first);
    const written = await writeDocuments(first);
    const second = await loseMetadata(first, 'node-3');
    toDestroy.push(second);
    const report = await rebuildManifests({ nodes: second.nodes.map((n) => n.client), metadata: second.metadata, ec: new ReedSolomonCode() });
    expect(report.unrecoverable).toEqual([]);
    expect(report.rebuilt).toBe(written.length);
    expect(report.dirty).toBeGreaterThan(0);
    for (const { key, body } of written) expect(await (await second.read(key)).text(), key).toBe(body);
    await second.healer.runOnce({ forceAudit: true });
    for (const { key, body } of written) {
      const stat = (await (await second.fetch(`/stat/${encodeURIComponent(key)}`)).json()) as { dirty: boolean; hot: unknown[]; cold: unknown[] };
      expect(stat.dirty, key).toBe(false);
      expect(await (await second.read(key)).text(), key).toBe(body);
    }
  });

  it('leaves keys that already have a manifest alone', async () => {
    const cluster = await startTestCluster({ dataDir: await tmpDir() });
    toDestroy.push(cluster);
    await ok(await cluster.write('kept', '{"a":1}'), 'write');
    const before = await cluster.metadata.get('kept');
    const report = await rebuildManifests({ nodes: cluster.nodes.map((n) => n.client), metadata: cluster.metadata, ec: new ReedSolomonCode() });
    expect(report.skippedExisting).toBe(1);
    expect(report.rebuilt).toBe(0);
    expect((await cluster.metadata.get('kept'))!.modRevision).toBe(before!.modRevision);
  });
});

async function tmpDir(): Promise<string> {
  const { mkdtemp } = await import('node:fs/promises');
  const os = await import('node:os');
  return mkdtemp(path.join(os.tmpdir(), 'strata-dr-'));
}
