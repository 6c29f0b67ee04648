/**
 * The efficiency report of GET /storage_usage (internal/efficiency): per strategy and per key prefix, bytes saved
 * against three copies, compressed and incompressible cold bytes, and the fixed per-document overhead, all
 * consistent with the totals the route already answered and with /stat of every key.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { json } from '../durability/durability-helpers.js';

interface Group {
  documents: number;
  logical_bytes: number;
  physical_bytes: number;
  amplification: number;
  saved_vs_replication_bytes: number;
  overhead_bytes: number;
}
interface Cold {
  documents: number;
  text_bytes: number;
  stored_bytes: number;
}
interface Usage {
  total_system_size: number;
  logical_bytes: number;
  live_keys: number;
  efficiency: {
    prefix_depth: number;
    logical_bytes: number;
    physical_bytes: number;
    replication_3x_bytes: number;
    saved_vs_replication_bytes: number;
    overhead: { needle_bytes: number; index_bytes: number; manifest_bytes: number; per_document_bytes: number };
    cold: { compressed: Cold & { saved_bytes: number }; incompressible: Cold; uncompressed: Cold; with_replicas: Cold; shards: Cold };
    per_strategy: Record<string, Group>;
    per_prefix: Record<string, Group>;
  };
}

const noise = (bytes: number): string => randomBytes(bytes).toString('base64').slice(0, bytes);
const text = (bytes: number): string => Array.from({ length: Math.ceil(bytes / 12) }, (_, i) => `word${(i * 7919) % 9973}`).join(' ');

describe('GET /storage_usage efficiency', () => {
  let cluster: TestCluster;
  const keys: string[] = [];
  beforeAll(async () => {
    cluster = await startTestCluster();
    const put = async (key: string, body: string, query: string) => {
      const res = await cluster.write(key, body, query);
      expect(res.status, JSON.stringify(await json(res.clone()))).toBe(200);
      keys.push(key);
    };
    await put('user:1', `{"like_count":1,"bio":"${text(20_000)}"}`, '&strategy=field_hybrid');
    await put('user:2', '{"like_count":2,"bio":"tiny"}', '&strategy=field_hybrid');
    await put('user:3', `{"like_count":3,"bio":"${text(3000)}"}`, '&strategy=replication');
    await put('iot/dev-1/log', `{"device_id":"d","sensor_raw_log":"${noise(50_000)}"}`, '&strategy=ec');
    await put('iot/dev-2/log', `{"device_id":"d","sensor_raw_log":"${noise(50_000)}"}`, '&strategy=field_hybrid');
    await put('plain', '{"a":1}', '&strategy=ec');
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  async function usage(query = ''): Promise<Usage> {
    const res = await cluster.fetch(`/storage_usage${query}`);
    expect(res.status).toBe(200);
    return (await res.json()) as Usage;
  }

  it('adds up per strategy and per prefix to the totals, which equal the sum of /stat over the keys', async () => {
    const u = await usage();
    const e = u.efficiency;
    let physical = 0;
    let logical = 0;
    for (const key of keys) {
      const s = (await json(await cluster.fetch(`/stat/${encodeURIComponent(key)}`))) as { bytes: { physical: number; logical: number } };
      physical += s.bytes.physical;
      logical += s.bytes.logical;
    }
    expect(e.physical_bytes).toBe(physical);
    expect(e.physical_bytes).toBe(u.total_system_size);
    expect(e.logical_bytes).toBe(logical);
    expect(e.replication_3x_bytes).toBe(3 * logical);
    expect(e.saved_vs_replication_bytes).toBe(3 * logical - physical);
    const sum = (groups: Record<string, Group>, field: keyof Group) => Object.values(groups).reduce((s, g) => s + g[field], 0);
    for (const groups of [e.per_strategy, e.per_prefix]) {
      expect(sum(groups, 'documents')).toBe(keys.length);
      expect(sum(groups, 'physical_bytes')).toBe(physical);
      expect(sum(groups, 'logical_bytes')).toBe(logical);
    }
    expect(e.per_strategy['replication']!.amplification).toBeCloseTo(3, 3);
    expect(e.per_strategy['replication']!.saved_vs_replication_bytes).toBe(0);
    expect(Object.keys(e.per_prefix).sort()).toEqual(['', 'iot/', 'user:']);
    expect(e.per_prefix['user:']!.documents).toBe(3);
  });

  it('reports compressed, incompressible and small cold parts apart, and the per-document overhead', async () => {
    const e = (await usage()).efficiency;
    // user:1's prose is compressed; the two sensor logs were tried and stayed raw; the tiny ones were not tried.
    expect(e.cold.compressed.documents).toBe(1);
    expect(e.cold.compressed.saved_bytes).toBe(e.cold.compressed.text_bytes - e.cold.compressed.stored_bytes);
    expect(e.cold.compressed.saved_bytes).toBeGreaterThan(0);
    expect(e.cold.incompressible.documents).toBe(2);
    expect(e.cold.incompressible.stored_bytes).toBe(e.cold.incompressible.text_bytes);
    expect(e.cold.uncompressed.documents).toBe(2);
    expect(e.cold.with_replicas.documents + e.cold.shards.documents).toBe(5);
    expect(e.cold.with_replicas.documents).toBeGreaterThanOrEqual(2);
    const o = e.overhead;
    expect(o.needle_bytes).toBeGreaterThan(0);
    expect(o.index_bytes).toBeGreaterThan(0);
    expect(o.manifest_bytes).toBeGreaterThan(0);
    expect(o.per_document_bytes).toBe(Math.round((o.needle_bytes + o.index_bytes + o.manifest_bytes) / keys.length));
  });

  it('groups by deeper prefixes with prefix_depth, and refuses a bad one with 400 INVALID_REQUEST', async () => {
    const e = (await usage('?prefix_depth=2')).efficiency;
    expect(e.prefix_depth).toBe(2);
    expect(Object.keys(e.per_prefix).sort()).toEqual(['', 'iot/dev-1/', 'iot/dev-2/', 'user:']);
    for (const bad of ['0', '9', 'x', '-1']) {
      const res = await cluster.fetch(`/storage_usage?prefix_depth=${bad}`);
      expect(res.status).toBe(400);
      expect((await json(res)).error.code).toBe('INVALID_REQUEST');
    }
  });
});
