/**
 * Tiering end to end on an in-process cluster with a manual clock: the learned hot fields, re-tiering of stored
 * documents, the lifecycle (idle -> ec), time to live, extra replicas of read-heavy documents, and client writes
 * racing re-tiering. The gateway's statistics are flushed and the healer is run by the test, so every step is
 * deterministic.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestCluster, inventory, type TestCluster } from '../helpers/cluster.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';

const minute = 60_000;
const bigText = 'lorem ipsum '.repeat(400);

let cluster: TestCluster;
let clock: ManualClock;

beforeAll(async () => {
  clock = new ManualClock();
  cluster = await startTestCluster({
    clock,
    env: {
      STRATA_TIERING_HALF_LIFE_MS: String(minute),
      STRATA_TIERING_FLUSH_INTERVAL_MS: '0',
      STRATA_TIERING_PROMOTE_SCORE: '10',
      STRATA_TIERING_DEMOTE_SCORE: '2',
      STRATA_TIERING_DWELL_MS: String(minute),
      STRATA_HOT_FIELDS: 'like_count',
      STRATA_DEFAULT_STRATEGY: 'replication',
      STRATA_RETIER_DOCS_PER_ROUND_MAX: '4',
      STRATA_READ_HEAVY_READS_MIN: '20',
      STRATA_READ_HEAVY_FACTOR: '4',
    },
  });
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

async function json(path: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await cluster.fetch(path, init);
  return { status: res.status, body: await res.json() };
}

async function stat(key: string) {
  return (await json(`/stat/${encodeURIComponent(key)}`)).body;
}

async function readText(key: string): Promise<string> {
  const res = await cluster.read(key);
  expect(res.status).toBe(200);
  return res.text();
}

function patch(key: string, body: unknown, query = '') {
  return cluster.fetch(`/patch/${encodeURIComponent(key)}${query}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify(body),
  });
}

async function putPolicy(prefix: string, body: unknown) {
  return json(`/policy/${encodeURIComponent(prefix)}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Healer rounds until re-tiering has nothing left (bounded, so a bug fails instead of hanging). */
async function healUntilSettled(rounds = 20): Promise<number> {
  for (let i = 0; i < rounds; i++) {
    const before = { ...cluster.healer.tiering!.counters };
    await cluster.healer.runOnce();
    const after = cluster.healer.tiering!.counters;
    if (after.retiered === before.retiered && after.movedToEc === before.movedToEc && after.gaveWay === before.gaveWay) return i + 1;
  }
  return rounds;
}

describe('learned hot fields', () => {
  const keys = ['acct:1', 'acct:2', 'acct:3', 'acct:4'];
  const texts = new Map<string, string>();

  it('makes fields read by projection (a, b) and patched (c) hot within a bounded number of operations', async () => {
    for (const [i, key] of keys.entries()) {
      const text = `{"a":${i},"b":"b${i}","c":0,"n":12345678901234567890,"price":1.10,"big":"${bigText}"}`;
      expect((await cluster.write(key, text, '&strategy=field_hybrid')).status).toBe(200);
      texts.set(key, text);
    }
    expect((await stat('acct:1')).hot_fields).toEqual([]);
    let ops = 0;
    let hot: string[] = [];
    while (ops < 60) {
      const key = keys[ops % keys.length]!;
      expect((await cluster.read(key, '?fields=a,b')).status).toBe(200);
      const c = ops + 1;
      expect((await patch(key, { c })).status).toBe(200);
      texts.set(key, texts.get(key)!.replace(/"c":\d+/, `"c":${c}`));
      ops++;
      if (ops % 4 === 0) {
        clock.advance(1000);
        await cluster.gateway.tiering.flush();
        hot = (await json('/policy/acct%3A')).body.hot_fields;
        if (['a', 'b', 'c'].every((f) => hot.includes(f))) break;
      }
    }
    // Promote score 10: each field gets one event per operation, so about 10 operations (plus one flush interval).
    expect(hot).toEqual(expect.arrayContaining(['a', 'b', 'c']));
    expect(ops).toBeLessThanOrEqual(16);
    const policy = (await json('/policy/acct%3A')).body;
    expect(policy.learned.find((l: any) => l.field === 'a').reason).toMatch(/promoted: score/);
    expect(policy.fields.find((f: any) => f.field === 'c').changes).toBeGreaterThan(0);
    expect(policy.thresholds).toMatchObject({ promote_score: 10, demote_score: 2 });
  });

  it('re-tiers the stored documents to the new split at a bounded rate, keeping content and versions', async () => {
    const versions = new Map<string, string>();
    for (const key of keys) versions.set(key, (await stat(key)).version);
    const before = cluster.healer.tiering!.counters.retiered;
    await cluster.healer.runOnce();
    expect(cluster.healer.tiering!.counters.retiered - before).toBeLessThanOrEqual(4);
    await healUntilSettled();
    for (const key of keys) {
      const s = await stat(key);
      expect(s.hot_fields).toEqual(expect.arrayContaining(['a', 'b', 'c']));
      expect(s.version).toBe(versions.get(key));
      expect(await readText(key)).toBe(texts.get(key));
      const projection = await cluster.read(key, '?fields=a,b');
      expect(projection.headers.get('x-strata-cold-read')).toBe('0');
    }
  });

  it('keeps fields that stop being used hot while moving them would write more than keeping them costs', async () => {
    // Only b is still read; a and c fall silent. Ten half-lives later their scores are near zero, but their values
    // are a few bytes each: keeping them hot costs far less per half-life than re-encoding the four cold parts
    // would, so the policy leaves them (a move that pays is tested in move-cost.test.ts).
    const retiered = cluster.healer.tiering!.counters.retiered;
    for (let i = 0; i < 10; i++) {
      clock.advance(minute);
      for (const key of keys) await cluster.read(key, '?fields=b');
      await cluster.gateway.tiering.flush();
      await cluster.healer.runOnce();
    }
    const policy = (await json('/policy/acct%3A')).body;
    expect(policy.hot_fields).toEqual(expect.arrayContaining(['a', 'b', 'c']));
    const a = policy.fields.find((f: any) => f.field === 'a');
    expect(a.score).toBeLessThan(2);
    expect(a.cost_bytes - a.benefit_bytes).toBeLessThan(a.move_bytes);
    await healUntilSettled();
    expect(cluster.healer.tiering!.counters.retiered).toBe(retiered);
    for (const key of keys) {
      expect((await stat(key)).hot_fields).toEqual(expect.arrayContaining(['a', 'b', 'c']));
      expect(await readText(key)).toBe(texts.get(key));
    }
  });

  it('pins fields by hand through PUT /policy, and refuses bad input with stable codes', async () => {
    const put = await putPolicy('acct:', { pins: ['/a', 'price'] });
    expect(put.status).toBe(200);
    expect(put.body.pins.api).toEqual(['a', 'price']);
    expect(put.body.hot_fields.slice(0, 2)).toEqual(['a', 'price']);
    expect((await putPolicy('acct:', { pins: 'a' })).body.error.code).toBe('INVALID_POLICY');
    expect((await putPolicy('acct:', { pins: [''] })).body.error.code).toBe('INVALID_POLICY');
    expect((await putPolicy('acct:', { color: 'red' })).body.error.code).toBe('INVALID_POLICY');
    expect((await putPolicy('acct:', { idle_to_ec_after_ms: -1 })).body.error.code).toBe('INVALID_POLICY');
    const badPrefix = await putPolicy('acct', { pins: [] });
    expect([badPrefix.status, badPrefix.body.error.code]).toEqual([400, 'INVALID_PREFIX']);
    const wrongType = await cluster.fetch('/policy/acct%3A', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: '{}' });
    expect(wrongType.status).toBe(415);
    const list = (await json('/policy')).body.prefixes.map((p: any) => p.prefix);
    expect(list).toContain('acct:');
    const root = await json('/policy/');
    expect([root.status, root.body.prefix, root.body.hot_fields]).toEqual([200, '', ['like_count']]);
    expect((await json('/policy/a%3Ab%3A')).body.error.code).toBe('INVALID_PREFIX');
    await healUntilSettled();
    expect((await stat('acct:1')).hot_fields).toEqual(expect.arrayContaining(['a', 'price']));
    expect(await readText('acct:1')).toBe(texts.get('acct:1'));
  });
});

describe('lifecycle', () => {
  it('moves documents neither read nor written for the idle time to ec, keeps explicit choices, and amplification drops', async () => {
    expect((await putPolicy('logs:', { idle_to_ec_after_ms: 2 * minute })).status).toBe(200);
    const docs = new Map<string, string>();
    // Written without a strategy: the cluster's default (replication here) applies, a choice the lifecycle may revise.
    for (const name of ['idle1', 'idle2', 'busy']) {
      // Incompressible, so that the figures measure the layout and not compression.
      const text = `{"level":"info","n":1.0E3,"body":"${randomBytes(6000).toString('base64')}"}`;
      expect((await cluster.write(`logs:${name}`, text)).status).toBe(200);
      docs.set(`logs:${name}`, text);
    }
    const explicitText = `{"level":"warn","body":"${bigText}"}`;
    expect((await cluster.write('logs:explicit', explicitText, '&strategy=replication')).status).toBe(200);
    const physical = async (keys: string[]) => {
      let logical = 0;
      let stored = 0;
      for (const key of keys) {
        const s = await stat(key);
        logical += s.bytes.logical;
        stored += s.bytes.physical;
      }
      return stored / logical;
    };
    const moved = ['logs:idle1', 'logs:idle2'];
    const before = await physical(moved);
    expect(before).toBeGreaterThan(2.9);
    const versions = await Promise.all(moved.map(async (k) => (await stat(k)).version));

    clock.advance(90_000);
    await readText('logs:busy');
    await cluster.gateway.tiering.flush();
    clock.advance(40_000);
    await cluster.healer.runOnce();

    for (const [i, key] of moved.entries()) {
      const s = await stat(key);
      expect(s.strategy).toBe('ec');
      expect(s.version).toBe(versions[i]);
      expect(await readText(key)).toBe(docs.get(key));
    }
    expect((await stat('logs:busy')).strategy).toBe('replication');
    expect((await stat('logs:explicit')).strategy).toBe('replication');
    const after = await physical(moved);
    // 3x as replicas; about 1.5x as RS 4+2 shards (plus padding).
    expect(after).toBeGreaterThan(1.4);
    expect(after).toBeLessThan(1.7);

    // override_explicit moves the explicit one too.
    await putPolicy('logs:', { override_explicit: true });
    await cluster.healer.runOnce();
    expect((await stat('logs:explicit')).strategy).toBe('ec');
    expect(await readText('logs:explicit')).toBe(explicitText);
  });
});

describe('time to live', () => {
  it('reads an expired document as 404 at once and lets the healer delete it', async () => {
    expect((await cluster.write('ttl:a', { v: 1 }, '&ttl_ms=5000')).status).toBe(200);
    expect((await stat('ttl:a')).expires_at).toBe(new Date(clock.nowMs() + 5000).toISOString());
    expect((await cluster.read('ttl:a')).status).toBe(200);
    // A patch with a new ttl_ms extends it; one without keeps it.
    expect((await patch('ttl:a', { v: 2 }, '?ttl_ms=10000')).status).toBe(200);
    expect((await patch('ttl:a', { v: 3 })).status).toBe(200);
    clock.advance(9_999);
    expect((await cluster.read('ttl:a')).status).toBe(200);
    clock.advance(1);
    expect((await cluster.read('ttl:a')).status).toBe(404);
    expect((await cluster.fetch('/stat/ttl%3Aa')).status).toBe(404);
    expect((await patch('ttl:a', { v: 4 })).status).toBe(404);
    const blobsBefore = [...(await inventory(cluster)).values()].filter((b) => b.id.length > 0).length;
    await cluster.healer.runOnce();
    const stored = await cluster.metadata.get('ttl:a');
    expect(stored?.manifest.deleted).toBe(true);
    // The healer's own write service releases the blobs after the tombstone commits, in the background: the
    // gateway's drain does not cover it.
    await vi.waitFor(async () => {
      expect((await inventory(cluster)).size).toBeLessThan(blobsBefore);
    }, { timeout: CONDITION_TIMEOUT_MS, interval: 20 });
    // The key can be written again, as after a delete.
    expect((await cluster.write('ttl:a', { v: 5 }, '', { 'If-None-Match': '*' })).status).toBe(200);
  });

  it('refuses a malformed ttl_ms with 400 INVALID_TTL and changes nothing', async () => {
    for (const bad of ['0', '-5', 'abc', '1.5', '99999999999999999']) {
      const res = await cluster.write('ttl:bad', { v: 1 }, `&ttl_ms=${bad}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_TTL');
    }
    expect((await cluster.read('ttl:bad')).status).toBe(404);
  });
});

describe('read-heavy documents', () => {
  it('get extra hot replicas while hot, spread reads over them, and lose them when they cool', async () => {
    const text = '{"like_count":7,"title":"popular","n":-0}';
    for (const key of ['pop:hot', 'pop:a', 'pop:b']) expect((await cluster.write(key, text, '&strategy=replication')).status).toBe(200);
    for (let i = 0; i < 50; i++) await readText('pop:hot');
    await readText('pop:a');
    await readText('pop:b');
    await cluster.gateway.tiering.flush();
    await cluster.healer.runOnce();
    const s = await stat('pop:hot');
    expect(s.extra_replicas).toBe(2);
    expect(s.hot).toHaveLength(5);
    expect(new Set(s.hot.map((r: any) => r.node)).size).toBe(5);
    expect(s.bytes.physical).toBe(3 * s.bytes.logical);
    expect((await stat('pop:a')).extra_replicas).toBe(0);
    const usage = (await json('/storage_usage')).body;
    expect(usage.extra_replica_bytes).toBe(2 * s.bytes.logical);
    for (let i = 0; i < 10; i++) expect(await readText('pop:hot')).toBe(text);

    // Nobody reads it for ten half-lives: the extras are removed and their blobs deleted.
    const extraBlobs = s.hot.slice(3).map((r: any) => `${r.node}/${r.blob}`);
    clock.advance(10 * minute);
    await cluster.gateway.tiering.flush();
    await cluster.healer.runOnce();
    const cooled = await stat('pop:hot');
    expect(cooled.extra_replicas).toBe(0);
    expect(cooled.hot).toHaveLength(3);
    const held = await inventory(cluster);
    for (const blob of extraBlobs) expect(held.has(blob)).toBe(false);
    expect(await readText('pop:hot')).toBe(text);
  });
});

describe('re-tiering racing client writes', () => {
  it('never loses a concurrent client write: the client wins and re-tiering tries again', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `race:${String(i).padStart(2, '0')}`);
    for (const key of keys) expect((await cluster.write(key, { p: 1, counter: 0, body: bigText }, '&strategy=field_hybrid')).status).toBe(200);
    expect((await putPolicy('race:', { pins: ['p'] })).status).toBe(200);
    // Write backoff after a lost commit race sleeps on the manual clock: keep it moving meanwhile.
    const ticker = setInterval(() => clock.advance(5), 2);
    try {
      const patches = 6;
      const clients = keys.map(async (key) => {
        for (let i = 1; i <= patches; i++) expect((await patch(key, { counter: i })).status).toBe(200);
      });
      const healer = (async () => {
        for (let i = 0; i < 8; i++) await cluster.healer.runOnce();
      })();
      await Promise.all([...clients, healer]);
      await healUntilSettled(30);
      for (const key of keys) {
        const doc = JSON.parse(await readText(key));
        expect(doc).toEqual({ p: 1, counter: patches, body: bigText });
        expect((await stat(key)).hot_fields).toEqual(['p']);
      }
    } finally {
      clearInterval(ticker);
    }
  });
});
