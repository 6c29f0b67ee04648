/**
 * Guarantee: a mutation retried with the same Idempotency-Key is applied once, whatever happened to the attempt
 * before (api.md "Idempotency-Key", docs/decisions.md 15): a gateway that died after the commit (the retry replays
 * the committed outcome), one that died before it (the retry runs the operation once its lease lapsed, and the dead
 * attempt can never commit afterwards), a commit whose outcome was unknown (applied or still in flight), and a retry
 * that races the first attempt (409 with Retry-After, then the replay).
 *
 * Two gateways share the cluster's metadata store and nodes, as two gateway processes would. Each mutation appends
 * its token to an array, so a second application would show. The cluster's clock can be moved ahead (the store
 * judges leases by it; it never goes back); gateway B shares it unless a test gives it one that lags behind.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../internal/core/clock.js';
import { StrataError } from '../../internal/core/errors.js';
import { systemClock } from '../../internal/core/clock.js';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import { idempotencyLeaseMs } from '../../internal/api/idempotency.js';
import { silentLogger } from '../../internal/log/logger.js';
import type { CommitRequest, CommitResult } from '../../internal/metadata/metadata-store.js';
import { buildGateway } from '../../internal/wiring/gateway.js';
import { serveApp, type HttpServerHandle } from '../../internal/wiring/http-server.js';
import type { WriteHooks } from '../../internal/writeservice/write-service.js';
import { waitUntil } from '../helpers/wait.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { blobsOfWrite, json } from './durability-helpers.js';

// The GC grace is also every write's commit deadline: long, so that no write of a busy machine reaches it by
// itself; the tests move the cluster's clock past the lease (which is longer still) when they mean to.
const GC_GRACE_MS = 60_000;
const LEASE_MS = idempotencyLeaseMs(GC_GRACE_MS);

type Hook = ((writeId: string, key: string) => Promise<void>) | null;

/** A gate that a paused write waits on. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('a mutation retried with the same Idempotency-Key is applied once', () => {
  let cluster: TestCluster;
  /** Stops gateway B when a test started one. */
  let stopGatewayB: (() => Promise<void>) | null = null;
  /** How far the cluster's clock (and so the metadata store's) runs ahead of real time. */
  let shiftMs = 0;
  const clusterClock: Clock = { nowMs: () => Date.now() + shiftMs, sleep: (ms) => systemClock.sleep(ms) };
  let beforeCommitA: Hook = null;
  let beforeCommitB: Hook = null;
  const releases: (() => void)[] = [];

  beforeAll(async () => {
    cluster = await startTestCluster({
      clock: clusterClock,
      hooks: { beforeCommit: async (writeId, key) => beforeCommitA?.(writeId, key) },
      env: { STRATA_INTENT_TIMEOUT_MS: '30000', STRATA_GC_GRACE_MS: String(GC_GRACE_MS) },
    });
  });
  afterAll(async () => {
    await cluster.destroy();
  });
  beforeEach(() => {
    beforeCommitA = null;
    beforeCommitB = null;
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const release of releases.splice(0)) release();
    await stopGatewayB?.();
    stopGatewayB = null;
  });

  /** Gateway B on the same store and nodes, on the cluster's clock unless given another. */
  async function startGatewayB(clock: Clock = clusterClock): Promise<string> {
    const hooks: WriteHooks = { beforeCommit: async (writeId, key) => beforeCommitB?.(writeId, key) };
    const gateway = buildGateway({
      config: cluster.config,
      metadata: cluster.metadata,
      wal: cluster.wal,
      pool: cluster.pool,
      ec: new ReedSolomonCode(),
      clock,
      log: silentLogger,
      backends: { metadata: 'embedded', wal: 'embedded' },
      hooks,
    });
    const server: HttpServerHandle = await serveApp(gateway.app, '127.0.0.1', 0);
    stopGatewayB = async () => {
      // Its paused requests are let go first, so that closing does not wait for them.
      for (const release of releases.splice(0)) release();
      await gateway.writes.drain();
      await server.close();
      await gateway.manifests.close();
      await gateway.tiering.stop();
    };
    return server.address;
  }

  /** A document whose `items` record every application of a patch. */
  async function seed(key: string): Promise<void> {
    expect((await cluster.write(key, { items: [], body: 'b'.repeat(4000) })).status).toBe(200);
  }

  function appendItem(base: string, key: string, token: string, signal?: AbortSignal): Promise<Response> {
    return fetch(`${base}/patch/${encodeURIComponent(key)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json-patch+json', 'idempotency-key': token },
      body: JSON.stringify([{ op: 'add', path: '/items/-', value: token }]),
      ...(signal ? { signal } : {}),
    });
  }

  async function items(key: string): Promise<string[]> {
    return ((await (await cluster.read(key)).json()) as { items: string[] }).items;
  }

  /** Pauses the next commit of a gateway at beforeCommit; resolves the write id once it is there. */
  function pauseNextCommit(set: (hook: Hook) => void): { writeId: () => string | null; resume: () => void } {
    const g = gate();
    let paused: string | null = null;
    releases.push(g.open);
    set(async (writeId) => {
      set(null);
      paused = writeId;
      await g.wait;
    });
    return { writeId: () => paused, resume: g.open };
  }

  it('replays the committed outcome through another gateway when the first died after its commit, before answering', async () => {
    const key = 'idem/died-after-commit';
    await seed(key);
    const b = await startGatewayB();
    // Gateway B commits, then never answers (it died there): its commit call does not return.
    const original = cluster.metadata.commit.bind(cluster.metadata);
    const hang = gate();
    releases.push(hang.open);
    let committed: CommitResult | null = null;
    vi.spyOn(cluster.metadata, 'commit').mockImplementationOnce(async (request: CommitRequest) => {
      committed = await original(request);
      await hang.wait;
      return committed;
    });
    const client = new AbortController();
    const first = appendItem(b, key, 'tok-a', client.signal).catch(() => null);
    await waitUntil('the commit of the first attempt', () => committed !== null);
    client.abort(); // the client gives up on the dead gateway
    expect(await first).toBeNull();

    const retry = await appendItem(cluster.url, key, 'tok-a');
    const body = await json(retry);
    expect(retry.status, JSON.stringify(body)).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    const result = committed as CommitResult | null;
    expect(result?.ok).toBe(true);
    if (!result?.ok) return;
    expect(body.version).toBe(result.manifest.version);
    expect(retry.headers.get('etag')).toBe(`"${result.manifest.version}"`);
    expect(await items(key)).toEqual(['tok-a']);
  });

  for (const firstClock of ['its own clock', 'the shared clock'] as const) {
    it(`runs the operation once after the lease of a gateway that died before its commit lapsed, and the dead attempt never commits (${firstClock})`, async () => {
      const variant = firstClock === 'its own clock' ? 'own' : 'shared';
      const key = `idem/died-before-commit/${variant}`;
      const token = `tok-b-${variant}`;
      await seed(key);
      // Its own clock: one that stays where the shared clock is now, so that it lags once time moves on.
      const lagBy = shiftMs;
      const ownClock: Clock = { nowMs: () => Date.now() + lagBy, sleep: (ms) => systemClock.sleep(ms) };
      const b = await startGatewayB(firstClock === 'its own clock' ? ownClock : clusterClock);
      const paused = pauseNextCommit((hook) => (beforeCommitB = hook));
      const first = appendItem(b, key, token);
      await waitUntil('the first attempt to reach its commit', () => paused.writeId() !== null);
      const deadWriteId = paused.writeId()!;

      // While its lease runs, a retry is told to wait.
      const early = await appendItem(cluster.url, key, token);
      expect(early.status).toBe(409);
      expect((await json(early)).error.code).toBe('IDEMPOTENCY_IN_PROGRESS');

      // Time passes beyond the lease (by the store's clock): the retry takes the token over and applies once.
      shiftMs += LEASE_MS + 1_000;
      const retry = await appendItem(cluster.url, key, token);
      const body = await json(retry);
      expect(retry.status, JSON.stringify(body)).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      expect(await items(key)).toEqual([token]);

      // The first attempt wakes up and tries to commit: refused, whether its own clock says its deadline passed
      // (the shared clock) or not (its own clock lags: the claim it holds was taken over).
      paused.resume();
      const late = await first;
      const lateBody = await json(late);
      expect(late.status, JSON.stringify(lateBody)).toBe(firstClock === 'its own clock' ? 409 : 503);
      expect(lateBody.error.code).toBe(firstClock === 'its own clock' ? 'IDEMPOTENCY_IN_PROGRESS' : 'WRITE_ABORTED');
      expect(await items(key)).toEqual([token]);
      if (firstClock === 'its own clock') expect(await blobsOfWrite(cluster, deadWriteId)).toEqual([]);

      // Every later retry, through either gateway, replays the one outcome.
      for (const base of [b, cluster.url]) {
        const again = await appendItem(base, key, token);
        expect(again.status).toBe(200);
        expect(again.headers.get('idempotent-replayed')).toBe('true');
        expect((await json(again)).version).toBe(body.version);
      }
      expect(await items(key)).toEqual([token]);
    });
  }

  it('replays a commit that was applied although its outcome was unknown (504), instead of applying it again', async () => {
    const key = 'idem/unknown-applied';
    await seed(key);
    const originalCommit = cluster.metadata.commit.bind(cluster.metadata);
    const originalGet = cluster.metadata.get.bind(cluster.metadata);
    let applied = false;
    let readBackFailed = false;
    vi.spyOn(cluster.metadata, 'commit').mockImplementationOnce(async (request: CommitRequest) => {
      await originalCommit(request);
      applied = true;
      throw new StrataError('COMMIT_UNKNOWN', 'simulated: the commit request timed out after it was applied');
    });
    // The gateway's read-back cannot reach the store either, so it cannot tell: 504.
    vi.spyOn(cluster.metadata, 'get').mockImplementation(async (k: string) => {
      if (applied && !readBackFailed) {
        readBackFailed = true;
        throw new StrataError('METADATA_UNAVAILABLE', 'simulated: the store is unreachable');
      }
      return originalGet(k);
    });
    const first = await appendItem(cluster.url, key, 'tok-c');
    expect(first.status).toBe(504);
    expect((await json(first)).error.code).toBe('COMMIT_UNKNOWN');

    const retry = await appendItem(cluster.url, key, 'tok-c');
    const body = await json(retry);
    expect(retry.status, JSON.stringify(body)).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.headers.get('x-strata-version')).toBe(body.version);
    expect(await items(key)).toEqual(['tok-c']);
    expect((await cluster.read(key)).headers.get('x-strata-version')).toBe(body.version);
  });

  it('applies once when a commit of unknown outcome (504) lands late, while the retry is about to commit', async () => {
    const key = 'idem/unknown-late';
    await seed(key);
    const original = cluster.metadata.commit.bind(cluster.metadata);
    let inFlight: CommitRequest | null = null;
    vi.spyOn(cluster.metadata, 'commit').mockImplementationOnce(async (request: CommitRequest) => {
      inFlight = request; // still on its way to the store
      throw new StrataError('COMMIT_UNKNOWN', 'simulated: the commit request timed out before it was applied');
    });
    const first = await appendItem(cluster.url, key, 'tok-d');
    expect(first.status).toBe(504);
    expect(await items(key)).toEqual([]);

    // The retry runs; just before its commit, the first attempt's commit request reaches the store.
    const paused = pauseNextCommit((hook) => (beforeCommitA = hook));
    const retry = appendItem(cluster.url, key, 'tok-d');
    await waitUntil('the retry to reach its commit', () => paused.writeId() !== null);
    // Its claim was released when it answered 504: it can no longer commit.
    expect(await original(inFlight!)).toEqual({ ok: false, reason: 'superseded' });
    paused.resume();
    const answer = await retry;
    const body = await json(answer);
    expect(answer.status, JSON.stringify(body)).toBe(200);
    expect(await items(key)).toEqual(['tok-d']);
    const replay = await appendItem(cluster.url, key, 'tok-d');
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await json(replay)).version).toBe(body.version);
  });

  it('tells a retry racing the first attempt to wait (409 with Retry-After from the lease), then replays the outcome', async () => {
    const key = 'idem/racing';
    await seed(key);
    const b = await startGatewayB();
    const paused = pauseNextCommit((hook) => (beforeCommitA = hook));
    const first = appendItem(cluster.url, key, 'tok-e');
    await waitUntil('the first attempt to reach its commit', () => paused.writeId() !== null);

    const racing = await appendItem(b, key, 'tok-e');
    expect(racing.status).toBe(409);
    expect((await json(racing)).error.code).toBe('IDEMPOTENCY_IN_PROGRESS');
    const retryAfterS = Number(racing.headers.get('retry-after'));
    expect(retryAfterS).toBeGreaterThan(1);
    expect(retryAfterS).toBeLessThanOrEqual(Math.ceil(LEASE_MS / 1000));

    paused.resume();
    const answer = await first;
    const body = await json(answer);
    expect(answer.status, JSON.stringify(body)).toBe(200);
    const replay = await appendItem(b, key, 'tok-e');
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await json(replay)).toEqual(body);
    expect(await items(key)).toEqual(['tok-e']);
  });
});
