/**
 * The all-in-one process's /metrics (gateway, six nodes and the healer in one registry), scraped and parsed as
 * Prometheus would: every metric the issue asks for moves when the work it measures happens.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { scrape, sumOf, type Scrape } from '../helpers/prometheus-text.js';

/** A document whose cold part is large and incompressible, so it is erasure-coded (not kept whole on the replicas). */
function coldDoc(like: number): Record<string, unknown> {
  return { like_count: like, blob: randomBytes(24 * 1024).toString('hex') };
}

describe('metrics on /metrics move with the work', () => {
  let cluster: TestCluster;
  const metrics = (): Promise<Scrape> => scrape(`${cluster.url}/metrics`);

  beforeAll(async () => {
    cluster = await startTestCluster();
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('serves the Prometheus text format with HELP and TYPE lines', async () => {
    const response = await cluster.fetch('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain('# TYPE strata_http_requests_total counter');
    expect(text).toContain('# TYPE strata_http_request_duration_seconds histogram');
  });

  it('counts a write under its route template and strategy, and times it in the latency histogram', async () => {
    const before = await metrics();
    const labels = { route: '/write', method: 'POST', status: '200', strategy: 'ec' };
    const res = await cluster.write('metrics/ec-doc', coldDoc(1), '&strategy=ec');
    expect(res.status).toBe(200);
    const after = await metrics();
    expect(sumOf(after, 'strata_http_requests_total', labels) - sumOf(before, 'strata_http_requests_total', labels)).toBe(1);
    const durationCount = (s: Scrape) => sumOf(s, 'strata_http_request_duration_seconds_count', { route: '/write', strategy: 'ec' });
    expect(durationCount(after) - durationCount(before)).toBe(1);
    expect(sumOf(after, 'strata_ec_encode_seconds_count') - sumOf(before, 'strata_ec_encode_seconds_count')).toBe(1);
    expect(sumOf(after, 'strata_commits_total', { strategy: 'ec', kind: 'create' })).toBeGreaterThanOrEqual(1);
    // Never a raw key in a label.
    for (const sample of after.samples) expect(Object.values(sample.labels).join(' ')).not.toContain('metrics/ec-doc');
  });

  it('observes the group-commit fsyncs of the nodes that stored blobs', async () => {
    const before = await metrics();
    await cluster.write('metrics/fsync', coldDoc(2), '&strategy=field_hybrid');
    const after = await metrics();
    const batches = (s: Scrape) => sumOf(s, 'strata_blobstore_fsync_batch_appends_count');
    const appends = (s: Scrape) => sumOf(s, 'strata_blobstore_fsync_batch_appends_sum');
    // Three hot replicas and six shards: nine appends, in at least six fsyncs (one per node at least).
    expect(appends(after) - appends(before)).toBe(9);
    expect(batches(after) - batches(before)).toBeGreaterThanOrEqual(6);
    expect(sumOf(after, 'strata_blobstore_fsync_seconds_count') - sumOf(before, 'strata_blobstore_fsync_seconds_count')).toBe(
      batches(after) - batches(before),
    );
    const nodesSeen = new Set(after.samples.filter((s) => s.name === 'strata_blobstore_fsync_batch_appends_count').map((s) => s.labels['node']));
    expect(nodesSeen.size).toBe(6);
  });

  it('counts a pure hot update as an update and as a pure hot update; a cold change only as an update', async () => {
    const key = 'metrics/hot';
    expect((await cluster.write(key, coldDoc(1))).status).toBe(200);
    const before = await metrics();
    const patch = (body: unknown) =>
      cluster.fetch(`/patch/${encodeURIComponent(key)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json' },
        body: JSON.stringify(body),
      });
    const hot = await patch({ like_count: 2 });
    expect(((await hot.json()) as { is_pure_hot_update: boolean }).is_pure_hot_update).toBe(true);
    const mid = await metrics();
    expect(sumOf(mid, 'strata_pure_hot_updates_total') - sumOf(before, 'strata_pure_hot_updates_total')).toBe(1);
    expect(sumOf(mid, 'strata_updates_total') - sumOf(before, 'strata_updates_total')).toBe(1);

    const cold = await patch({ blob: 'changed' });
    expect(((await cold.json()) as { is_pure_hot_update: boolean }).is_pure_hot_update).toBe(false);
    const after = await metrics();
    expect(sumOf(after, 'strata_pure_hot_updates_total') - sumOf(mid, 'strata_pure_hot_updates_total')).toBe(0);
    expect(sumOf(after, 'strata_updates_total') - sumOf(mid, 'strata_updates_total')).toBe(1);
    expect(sumOf(after, 'strata_http_requests_total', { method: 'PATCH', status: '200', strategy: 'field_hybrid' })).toBeGreaterThanOrEqual(2);
  });

  it('counts a degraded read when a data shard\'s node is down, and times the decode', async () => {
    const key = 'metrics/degraded';
    expect((await cluster.write(key, coldDoc(3), '&strategy=ec')).status).toBe(200);
    const stat = (await (await cluster.fetch(`/stat/${encodeURIComponent(key)}`)).json()) as { cold: { node: string; index: number }[] };
    const victim = stat.cold.find((r) => r.index === 0)!.node;
    const before = await metrics();
    expect(sumOf(before, 'strata_degraded_reads_total', { tier: 'cold' })).toBe(0);
    const node = cluster.nodes.find((n) => n.id === victim)!;
    await node.stop();
    try {
      expect((await cluster.read(key)).status).toBe(200);
    } finally {
      await node.start();
    }
    const after = await metrics();
    expect(sumOf(after, 'strata_degraded_reads_total', { tier: 'cold' })).toBe(1);
    const decodes = (s: Scrape) => sumOf(s, 'strata_ec_decode_seconds_count', { op: 'reconstruct' });
    expect(decodes(after) - decodes(before)).toBe(1);
  });

  it('counts manifest cache hits and misses', async () => {
    const before = await metrics();
    await cluster.read('metrics/ec-doc');
    await cluster.read('metrics/ec-doc');
    const after = await metrics();
    const reads = (s: Scrape) =>
      sumOf(s, 'strata_manifest_cache_hits_total') + sumOf(s, 'strata_manifest_cache_misses_total') + sumOf(s, 'strata_manifest_cache_bypasses_total');
    expect(reads(after) - reads(before)).toBe(2);
    expect(sumOf(after, 'strata_manifest_cache_hits_total')).toBeGreaterThan(sumOf(before, 'strata_manifest_cache_hits_total'));
  });

  it('counts the healer\'s repair of a document that lost a shard, and what its audit found', async () => {
    const key = 'metrics/repair';
    expect((await cluster.write(key, coldDoc(4), '&strategy=ec')).status).toBe(200);
    const stat = (await (await cluster.fetch(`/stat/${encodeURIComponent(key)}`)).json()) as { cold: { node: string; blob: string }[] };
    // The shard's blob vanishes from its node (a lost file): the next audit finds it missing and rebuilds it.
    const lost = stat.cold[2]!;
    expect(await cluster.nodes.find((n) => n.id === lost.node)!.server!.store.delete(lost.blob)).toBe(true);
    await cluster.pool.probe();
    const before = await metrics();
    const report = await cluster.healer.runOnce({ forceAudit: true });
    expect(report.repaired).toBeGreaterThanOrEqual(1);
    const after = await metrics();
    expect(sumOf(after, 'strata_healer_repairs_total') - sumOf(before, 'strata_healer_repairs_total')).toBe(report.repaired);
    expect(sumOf(after, 'strata_healer_blobs_repaired_total')).toBeGreaterThan(sumOf(before, 'strata_healer_blobs_repaired_total'));
    expect(sumOf(after, 'strata_healer_objects_below_full_protection')).toBe(report.belowFullProtection);
    expect(report.belowFullProtection).toBeGreaterThanOrEqual(1);
    expect(sumOf(after, 'strata_healer_repair_backlog')).toBe(0);
    expect(sumOf(after, 'strata_healer_leader')).toBe(1);
    // Every intent of the writes so far has its outcome: nothing is left unresolved.
    expect(sumOf(after, 'strata_healer_wal_unresolved_intents')).toBe(0);
    expect(sumOf(after, 'strata_healer_wal_entries_read_total')).toBeGreaterThan(0);
  });

  it('reports the storage nodes by state', async () => {
    const s = await metrics();
    expect(sumOf(s, 'strata_storage_nodes', { state: 'healthy' })).toBe(6);
    expect(sumOf(s, 'strata_storage_nodes', { state: 'down' })).toBe(0);
  });

  it('counts requests no route answered under one bounded label', async () => {
    const before = await metrics();
    for (const path of ['/no-such-thing', '/another/unknown/path', '/x%2Fy']) expect((await cluster.fetch(path)).status).toBe(404);
    const after = await metrics();
    const unmatched = (s: Scrape) => sumOf(s, 'strata_http_requests_total', { route: 'unmatched', status: '404' });
    expect(unmatched(after) - unmatched(before)).toBe(3);
    expect(after.samples.some((sample) => sample.labels['route']?.includes('no-such-thing'))).toBe(false);
  });
});
