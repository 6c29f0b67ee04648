/**
 * Data outlives releases: a data directory written by an earlier release (test/fixtures/previous-release,
 * release-823285a: data format 1, release-eb874c0: data format 2, and release-a96b6f4: data format 3; each made by
 * test/fixtures/previous-release/make-fixture.ts on the commit its expected.json names) opens with this release and reads back exactly, its deletes stay deleted, its idempotency
 * records still replay, and it takes new writes and a healer round without losing anything. The fixture is copied
 * first: opening a directory may upgrade what is in it.
 */
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import { rebuildManifests } from '../../internal/recovery/rebuild-manifests.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { ManualClock } from '../helpers/manual-clock.js';

const FIXTURES = ['previous-release', 'release-823285a', 'release-eb874c0', 'release-a96b6f4'];

type Expected =
  | { body: string; version: string }
  | { sha256: string; bytes: number; version: string }
  | { deleted: true; version: string };

interface Fixture {
  madeBy: string;
  madeAtMs: number;
  idempotent: { key: string; token: string; body: string };
  documents: Record<string, Expected>;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function expectExact(cluster: TestCluster, key: string, want: Expected): Promise<void> {
  const res = await cluster.read(key);
  const text = await res.text();
  if ('deleted' in want) {
    expect(res.status, `${key} stays deleted`).toBe(404);
    return;
  }
  expect(res.status, `${key}: ${text.slice(0, 200)}`).toBe(200);
  expect(res.headers.get('x-strata-version'), key).toBe(want.version);
  if ('body' in want) expect(text, key).toBe(want.body);
  else expect({ bytes: Buffer.byteLength(text), sha256: sha256(text) }, key).toEqual({ bytes: want.bytes, sha256: want.sha256 });
}

describe.each(FIXTURES)('a data directory written by an earlier release (%s)', (name) => {
  const fixtureDir = path.resolve(import.meta.dirname, '../fixtures', name);
  let fixture: Fixture;
  let workDir: string;
  let clock: ManualClock;
  let cluster: TestCluster | null = null;

  beforeAll(async () => {
    fixture = JSON.parse(await readFile(path.join(fixtureDir, 'expected.json'), 'utf8')) as Fixture;
    workDir = await mkdtemp(path.join(os.tmpdir(), 'strata-upgrade-'));
    await cp(path.join(fixtureDir, 'data'), path.join(workDir, 'data'), { recursive: true });
    // The fixture's records (idempotency tokens, tombstones) are as fresh as on the day it was made.
    clock = new ManualClock(fixture.madeAtMs + 60_000);
  });
  afterAll(async () => {
    await cluster?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  async function open(): Promise<TestCluster> {
    cluster = await startTestCluster({ dataDir: path.join(workDir, 'data'), clock });
    return cluster;
  }

  it('opens and reads every document back exactly, with its version, and deleted keys stay deleted', async () => {
    const c = await open();
    for (const [key, want] of Object.entries(fixture.documents)) await expectExact(c, key, want);
    const list = await c.fetch('/list?prefix=fixture%2F');
    expect(list.status).toBe(200);
    const listed = JSON.stringify(await list.json());
    for (const [key, want] of Object.entries(fixture.documents)) {
      expect(listed.includes(JSON.stringify(key)), `${key} listed`).toBe(!('deleted' in want));
    }
  });

  it('replays an idempotent write made by the previous release instead of applying it again', async () => {
    const c = cluster!;
    const { key, token, body } = fixture.idempotent;
    const retry = await c.write(key, body, '', { 'idempotency-key': token });
    expect(retry.status).toBe(200);
    const answer = (await retry.json()) as { version: string };
    expect(answer.version).toBe(fixture.documents[key]!.version);
  });

  it('takes new writes beside the old data, and a healer round and a restart lose nothing', async () => {
    const c = cluster!;
    const write = await c.write('fixture/new-after-upgrade', { like_count: 1, text: 'x'.repeat(3000) });
    expect(write.status).toBe(200);
    const written = await (await c.read('fixture/new-after-upgrade')).text();
    // Past every grace period, so that the healer would collect anything it took for garbage.
    clock.advance(7 * 24 * 3600_000);
    await c.healer.runOnce();
    await c.stop();
    cluster = null;
    const reopened = await open();
    for (const [key, want] of Object.entries(fixture.documents)) {
      if (key === fixture.idempotent.key) continue; // its token has expired by now; the document has not
      await expectExact(reopened, key, want);
    }
    await expectExact(reopened, fixture.idempotent.key, fixture.documents[fixture.idempotent.key]!);
    expect(await (await reopened.read('fixture/new-after-upgrade')).text()).toBe(written);
  });

  it('a hot-field overwrite of an old field_hybrid document keeps its cold blobs, twice, and reads back exactly', async () => {
    const c = cluster!;
    const key = 'fixture/hybrid-sharded';
    const before = (await c.metadata.get(key))!.manifest;
    let text = await (await c.read(key)).text();
    for (const likes of [100, 101]) {
      text = text.replace(/"like_count":\d+/, `"like_count":${likes}`);
      expect((await c.write(key, text)).status).toBe(200);
      const after = (await c.metadata.get(key))!.manifest;
      // The cold part is the same text, whatever length of cold hash each manifest keeps: no cold byte rewritten.
      expect(after.cold.map((r) => r.blob)).toEqual(before.cold.map((r) => r.blob));
      expect(await (await c.read(key)).text()).toBe(text);
    }
  });
});

describe.each(FIXTURES)('the blobs an earlier release wrote (%s), after the metadata store is lost', (name) => {
  const fixtureDir = path.resolve(import.meta.dirname, '../fixtures', name);
  let workDir: string;
  let cluster: TestCluster | null = null;

  afterAll(async () => {
    await cluster?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('give back every document exactly through a manifest rebuild, and deleted keys stay deleted', async () => {
    const fixture = JSON.parse(await readFile(path.join(fixtureDir, 'expected.json'), 'utf8')) as Fixture;
    workDir = await mkdtemp(path.join(os.tmpdir(), 'strata-upgrade-rebuild-'));
    await cp(path.join(fixtureDir, 'data'), path.join(workDir, 'data'), { recursive: true });
    await rm(path.join(workDir, 'data', 'metadata'), { recursive: true, force: true });
    cluster = await startTestCluster({ dataDir: path.join(workDir, 'data'), clock: new ManualClock(fixture.madeAtMs + 60_000) });
    const report = await rebuildManifests({ nodes: cluster.nodes.map((n) => n.client), metadata: cluster.metadata, ec: new ReedSolomonCode() });
    expect(report.unrecoverable).toEqual([]);
    for (const [key, want] of Object.entries(fixture.documents)) {
      const res = await cluster.read(key);
      // Rebuilt manifests get new versions (rebuild rule 6); the bytes are what the old release served.
      await expectExact(cluster, key, { ...want, version: res.headers.get('x-strata-version') ?? '' });
    }
  });
});
