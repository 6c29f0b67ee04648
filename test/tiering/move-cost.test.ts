/**
 * Re-tiering pays for its own moves: the learned policy moves a field only when what the move saves over one
 * half-life exceeds the bytes it writes (every document's cold part re-encoded, its hot replicas rewritten).
 * In-process cluster with the default hot-field list, a manual clock, statistics flushed and the healer run by
 * the test. Cold bytes written are counted as the bench counts them: the bytes of cold blobs (shards or copies)
 * the nodes received that they did not hold before.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inventory, startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { ManualClock } from '../helpers/manual-clock.js';

const halfLifeMs = 60_000;
const dwellMs = 2 * halfLifeMs;

let cluster: TestCluster;
let clock: ManualClock;

beforeAll(async () => {
  clock = new ManualClock();
  cluster = await startTestCluster({
    clock,
    env: {
      STRATA_TIERING_HALF_LIFE_MS: String(halfLifeMs),
      STRATA_TIERING_FLUSH_INTERVAL_MS: '0',
      STRATA_TIERING_DWELL_MS: String(dwellMs),
    },
  });
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

type Blobs = Awaited<ReturnType<typeof inventory>>;

/** Bytes of cold blobs (erasure-coded shards or cold copies) in `after` that `before` did not hold. */
function newColdBytes(before: Blobs, after: Blobs): number {
  let bytes = 0;
  for (const [name, blob] of after) {
    if (!before.has(name) && (blob.part.startsWith('shard-') || blob.part.startsWith('cold-'))) bytes += blob.size;
  }
  return bytes;
}

async function policyOf(prefix: string): Promise<{ hot_fields: string[]; learned: { field: string; hot: boolean; reason: string }[] }> {
  const res = await cluster.fetch(`/policy/${encodeURIComponent(prefix)}`);
  expect(res.status).toBe(200);
  return (await res.json()) as any;
}

async function hotFieldsOf(key: string): Promise<string[]> {
  const res = await cluster.fetch(`/stat/${encodeURIComponent(key)}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { hot_fields: string[] }).hot_fields;
}

describe('re-tiering pays for its own moves', () => {
  it('rewrites no cold bytes while 200 hot updates of battery_level run through several half-lives and dwell times', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `iot:${i}`);
    // 800 KiB of incompressible text per document: what re-encoding one cold part costs.
    const logs = new Map(keys.map((key) => [key, randomBytes(600 * 1024).toString('base64')]));
    const render = (key: string, n: number) =>
      JSON.stringify({
        device_id: key,
        battery_level: n % 101,
        status_code: 200,
        is_active: true,
        last_sync_ts: 1_700_000_000_000,
        firmware_version: '4.2.1',
        sensor_raw_log: logs.get(key),
      });
    for (const key of keys) expect((await cluster.write(key, render(key, 0))).status).toBe(200);
    const initialHot = await hotFieldsOf('iot:0');
    expect(initialHot).toEqual(expect.arrayContaining(['device_id', 'battery_level', 'status_code', 'is_active', 'last_sync_ts', 'firmware_version']));
    await cluster.gateway.writes.drain();
    const before = await inventory(cluster);

    // 10 rounds of one update per document: each round a half-life apart, so the run spans 10 half-lives and 5
    // dwell times, with the statistics shared and the healer's tiering job run after every round.
    let notPure = 0;
    let update = 0;
    for (let round = 0; round < 10; round++) {
      for (const key of keys) {
        const res = await cluster.write(key, render(key, ++update));
        expect(res.status).toBe(200);
        if (!((await res.json()) as { is_pure_hot_update: boolean }).is_pure_hot_update) notPure++;
      }
      clock.advance(halfLifeMs);
      await cluster.gateway.tiering.flush();
      await cluster.healer.runOnce();
    }
    expect(update).toBe(200);
    await cluster.gateway.writes.drain();
    const after = await inventory(cluster);

    expect(notPure).toBe(0);
    expect(newColdBytes(before, after)).toBe(0);
    const policy = await policyOf('iot:');
    // Moving a four-byte value out of the hot tier would re-encode 20 cold parts of 800 KiB: it stays where it is.
    expect(policy.learned.filter((d) => !d.hot)).toEqual([]);
    for (const key of keys) expect(await hotFieldsOf(key)).toEqual(initialHot);
  }, 300_000);

  it('still promotes a field read heavily by projections when the documents are small enough for the move to pay', async () => {
    const keys = ['card:1', 'card:2', 'card:3', 'card:4'];
    const body = 'lorem ipsum '.repeat(300);
    for (const [i, key] of keys.entries()) {
      expect((await cluster.write(key, { title: `card ${i}`, body, n: i })).status).toBe(200);
    }
    expect(await hotFieldsOf('card:1')).toEqual([]);
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 10; i++) for (const key of keys) expect((await cluster.read(key, '?fields=title')).status).toBe(200);
      clock.advance(halfLifeMs / 4);
      await cluster.gateway.tiering.flush();
      await cluster.healer.runOnce();
    }
    const policy = await policyOf('card:');
    expect(policy.hot_fields).toContain('title');
    expect(policy.learned.find((d) => d.field === 'title')?.reason).toMatch(/promoted: .*move/);
    for (let i = 0; i < 5; i++) await cluster.healer.runOnce();
    for (const key of keys) {
      expect(await hotFieldsOf(key)).toEqual(['title']);
      const projection = await cluster.read(key, '?fields=title');
      expect(projection.headers.get('x-strata-cold-read')).toBe('0');
    }
  }, 60_000);

  it('demotes a large field once every update of its document rewriting it in the hot tier costs more than the move', async () => {
    const keys = ['feed:1', 'feed:2', 'feed:3', 'feed:4'];
    for (const key of keys) {
      const doc = { like_count: 0, preview: randomBytes(2250).toString('base64'), body: randomBytes(9000).toString('base64') };
      expect((await cluster.write(key, doc)).status).toBe(200);
    }
    // Read by projections: the 3 kB preview is promoted (each projection would otherwise read a 12 kB cold part).
    for (let i = 0; i < 10; i++) for (const key of keys) expect((await cluster.read(key, '?fields=preview')).status).toBe(200);
    clock.advance(halfLifeMs / 4);
    await cluster.gateway.tiering.flush();
    for (let i = 0; i < 3; i++) await cluster.healer.runOnce();
    expect(await hotFieldsOf('feed:1')).toEqual(expect.arrayContaining(['like_count', 'preview']));

    // Then nobody reads it, while like_count is patched ten times per document per half-life: every patch writes
    // the 3 kB preview three times, more than moving it out once costs.
    let likes = 0;
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 10; i++) {
        for (const key of keys) {
          const res = await cluster.fetch(`/patch/${encodeURIComponent(key)}`, {
            method: 'PATCH',
            headers: { 'content-type': 'application/merge-patch+json' },
            body: JSON.stringify({ like_count: ++likes }),
          });
          expect(res.status).toBe(200);
        }
      }
      clock.advance(halfLifeMs);
      await cluster.gateway.tiering.flush();
      await cluster.healer.runOnce();
    }
    const policy = await policyOf('feed:');
    expect(policy.hot_fields).toContain('like_count');
    expect(policy.hot_fields).not.toContain('preview');
    expect(policy.learned.find((d) => d.field === 'preview')?.reason).toMatch(/demoted: .*move/);
    for (let i = 0; i < 3; i++) await cluster.healer.runOnce();
    for (const key of keys) expect(await hotFieldsOf(key)).toEqual(['like_count']);
  }, 60_000);
});
