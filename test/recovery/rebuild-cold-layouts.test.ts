/**
 * The manifest rebuild (internal/recovery) for the stored forms of internal/coldpart: cold parts kept as copies
 * beside the replicas (alone, and paired with a later pure hot update), and compressed shards. Each rebuilt
 * manifest must read back byte-exact with the same layout and codec, and one lost copy must give a dirty
 * manifest the healer completes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import { rebuildManifests } from '../../internal/recovery/rebuild-manifests.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

interface Layout {
  layout: string;
  codec: string;
  text_bytes: number;
  stored_bytes: number;
}

const words = (n: number): string => Array.from({ length: n }, (_, i) => `w${(i * 7919) % 4099}`).join(' ');

const DOCS: [key: string, body: string, query: string][] = [
  ['cl/copies-hybrid', '{"like_count":1,"name":"Ada","n":12345678901234567890}', '&strategy=field_hybrid'],
  ['cl/copies-ec', '{"a":1.0,"b":"😀"}', '&strategy=ec'],
  ['cl/copies-compressed', `{"like_count":2,"body":"${'abc'.repeat(2000)}"}`, '&strategy=field_hybrid'],
  ['cl/shards-compressed', `{"like_count":3,"body":"${words(20_000)}","e":1E400}`, '&strategy=field_hybrid'],
  ['cl/shards-ec-compressed', `{"body":"${words(20_000)}"}`, '&strategy=ec'],
  ['cl/shards-raw', `{"like_count":4,"log":"${randomBytes(30_000).toString('base64')}"}`, '&strategy=field_hybrid'],
];

async function layoutOf(cluster: TestCluster, key: string): Promise<Layout> {
  const res = await cluster.fetch(`/stat/${encodeURIComponent(key)}`);
  expect(res.status, key).toBe(200);
  return ((await res.json()) as { cold_layout: Layout }).cold_layout;
}

describe('rebuilding manifests of copies and compressed cold parts', () => {
  const dirs: string[] = [];
  const clusters: TestCluster[] = [];
  afterEach(async () => {
    for (const c of clusters.splice(0)) await c.stop().catch(() => undefined);
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('brings back each layout and codec byte-exact, and a lost copy as a dirty ref the healer rewrites', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-rebuild-cold-'));
    dirs.push(dataDir);
    const first = await startTestCluster({ dataDir });
    clusters.push(first);
    for (const [key, body, query] of DOCS) expect((await first.write(key, body, query)).status, key).toBe(200);
    // A pure hot update of a document with cold copies: the rebuild must pair it with the older copies.
    const hotOnly = '{"like_count":9,"name":"Ada","n":12345678901234567890}';
    const update = (await (await first.write('cl/copies-hybrid', hotOnly)).json()) as { is_pure_hot_update: boolean };
    expect(update.is_pure_hot_update).toBe(true);
    const expected = new Map<string, { body: string; layout: Layout }>();
    for (const [key] of DOCS) expected.set(key, { body: await (await first.read(key)).text(), layout: await layoutOf(first, key) });
    expect(expected.get('cl/copies-hybrid')!.body).toBe(hotOnly);
    expect(expected.get('cl/copies-compressed')!.layout).toMatchObject({ layout: 'with_replicas', codec: 'brotli' });
    expect(expected.get('cl/shards-compressed')!.layout).toMatchObject({ layout: 'shards', codec: 'brotli' });
    expect(expected.get('cl/shards-raw')!.layout).toMatchObject({ layout: 'shards', codec: 'identity' });

    // One copy of one document is lost along with the metadata.
    const lostRef = (await first.metadata.get('cl/copies-ec'))!.manifest.cold[0]!;
    await first.nodes.find((n) => n.id === lostRef.node)!.server!.store.delete(lostRef.blob);
    await first.stop();
    await rm(path.join(dataDir, 'metadata'), { recursive: true, force: true });
    const second = await startTestCluster({ dataDir });
    clusters.push(second);

    const report = await rebuildManifests({ nodes: second.nodes.map((n) => n.client), metadata: second.metadata, ec: new ReedSolomonCode() });
    expect(report.unrecoverable).toEqual([]);
    expect(report.rebuilt).toBe(DOCS.length);
    expect(report.dirty).toBe(1);
    for (const [key, { body, layout }] of expected) {
      expect(await (await second.read(key)).text(), key).toBe(body);
      const rebuilt = await layoutOf(second, key);
      expect({ ...rebuilt, compression_tried: undefined }, key).toMatchObject({ ...layout, compression_tried: undefined });
    }
    await second.healer.runOnce({ forceAudit: true });
    const healed = (await second.metadata.get('cl/copies-ec'))!.manifest;
    expect(healed.dirty).toBe(false);
    expect(healed.cold).toHaveLength(3);
    expect(healed.cold.every((r) => r.state === 'ok')).toBe(true);
    expect(await (await second.read('cl/copies-ec')).text()).toBe('{"a":1.0,"b":"😀"}');
  });

  it('pairs a pure hot update with the cold part it reused, not with a later write that never committed', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-rebuild-pairing-'));
    dirs.push(dataDir);
    let crash = false;
    const first = await startTestCluster({
      dataDir,
      hooks: {
        beforeCommit: async () => {
          if (crash) throw new Error('simulated gateway crash before the commit');
        },
      },
    });
    clusters.push(first);
    const key = 'cl/pairing';
    // Same shape, different bytes: either cold text merges with the hot member's offsets.
    const logA = randomBytes(30_000).toString('base64');
    const logB = randomBytes(30_000).toString('base64');
    expect((await first.write(key, `{"like_count":1,"log":"${logA}"}`, '&strategy=field_hybrid')).status).toBe(200);
    crash = true;
    expect((await first.write(key, `{"like_count":2,"log":"${logB}"}`)).status).toBeGreaterThanOrEqual(500);
    crash = false;
    const update = await first.write(key, `{"like_count":3,"log":"${logA}"}`);
    expect(((await update.json()) as { is_pure_hot_update: boolean }).is_pure_hot_update).toBe(true);
    await first.stop();
    await rm(path.join(dataDir, 'metadata'), { recursive: true, force: true });
    const second = await startTestCluster({ dataDir });
    clusters.push(second);

    const report = await rebuildManifests({ nodes: second.nodes.map((n) => n.client), metadata: second.metadata, ec: new ReedSolomonCode() });
    expect(report.unrecoverable).toEqual([]);
    expect(await (await second.read(key)).text()).toBe(`{"like_count":3,"log":"${logA}"}`);
  });
});
