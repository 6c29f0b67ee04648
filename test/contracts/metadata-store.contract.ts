import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest, StoredManifest } from '../../internal/manifest/manifest.js';
import { isStrataError } from '../../internal/core/errors.js';
import {
  HEALER_JOURNAL_LIMITS,
  type ClusterIdentityRecord,
  type CommitResult,
  type IdempotencyClaim,
  type ManifestChange,
  type MetadataStore,
  type RegisteredNode,
} from '../../internal/metadata/metadata-store.js';
import type { StrataError } from '../../internal/core/errors.js';
import { makeManifest, makeTombstone } from '../helpers/manifest-fixture.js';
import { waitUntil } from '../helpers/wait.js';

/**
 * The MetadataStore contract: every implementation (embedded SQLite, etcd) runs this suite. It tests only what
 * internal/metadata/metadata-store.ts promises, never how an implementation keeps it.
 */

/** The clock the store judges leases and idempotency expiry by. A real-time fixture may sleep in `advance`. */
export interface ContractClock {
  nowMs(): number;
  advance(ms: number): void | Promise<void>;
}

export interface MetadataStoreFixture {
  store: MetadataStore;
  clock: ContractClock;
  /** Closes the open store and opens a new one on the same data, as a restart would; returns it. */
  reopen(): Promise<MetadataStore>;
  /** Closes whatever is open and removes the data. */
  cleanup(): Promise<void>;
  /**
   * Makes the store forget its change history up to `revision`, as an operator's compaction would (etcd's
   * compact, the embedded store's compactHistory).
   */
  compactHistory(revision: number): Promise<void>;
  /**
   * Damages one stored record behind the store's back, as a flipped byte on disk would: its content changes, its
   * checksum does not. `name` is the manifest's key, the abort record's write id or the idempotency token.
   */
  tamper(kind: 'manifest' | 'abort' | 'idempotency' | 'cluster-identity', name: string): Promise<void>;
  /** A second store on the same data, as another process would open it (closed by cleanup). */
  openAnother(): Promise<MetadataStore>;
}

/** Lease length used by the leadership tests, and a step that surely outlasts it. */
const TTL_MS = 2_000;
const PAST_TTL_MS = 3_000;

type Ok = Extract<CommitResult, { ok: true }>;

function expectOk(result: CommitResult): Ok {
  if (!result.ok) throw new Error(`expected a successful commit, got ${JSON.stringify(result)}`);
  return result;
}

async function create(store: MetadataStore, key: string, writeId: string, expected = 0): Promise<Ok> {
  return expectOk(
    await store.commit({
      key,
      expectedModRevision: expected,
      writeId,
      manifest: makeManifest(key, writeId),
      assignVersion: true,
    }),
  );
}

async function remove(store: MetadataStore, key: string, writeId: string, expected: number): Promise<Ok> {
  return expectOk(
    await store.commit({
      key,
      expectedModRevision: expected,
      writeId,
      manifest: makeTombstone(key, writeId),
      assignVersion: true,
    }),
  );
}

async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (err: unknown) => (isStrataError(err) ? err.code : err),
  );
}

function nodeById(nodes: RegisteredNode[], id: string): RegisteredNode | undefined {
  return nodes.find((n) => n.id === id);
}

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function runMetadataStoreContract(name: string, makeStore: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let fx: MetadataStoreFixture;
    let store: MetadataStore;

    beforeEach(async () => {
      fx = await makeStore();
      store = fx.store;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    describe('commit', () => {
      it('returns null for a key that never existed', async () => {
        expect(await store.get('never')).toBeNull();
      });

      it('creates a key at expected revision 0 and stamps the version from the new revision', async () => {
        const before = await store.currentRevision();
        const result = await create(store, 'k', 'w1');
        expect(result.modRevision).toBeGreaterThan(before);
        expect(result.manifest.version).toBe(String(result.modRevision));
        expect(result.manifest.writeId).toBe('w1');
        expect(await store.currentRevision()).toBeGreaterThanOrEqual(result.modRevision);
        const stored = await store.get('k');
        expect(stored).toEqual({ manifest: result.manifest, modRevision: result.modRevision });
      });

      it('assigns strictly increasing versions across keys, delete and re-create', async () => {
        const a = await create(store, 'a', 'w1');
        const b = await create(store, 'b', 'w2');
        const a2 = await create(store, 'a', 'w3', a.modRevision);
        const gone = await remove(store, 'a', 'w4', a2.modRevision);
        expect(gone.manifest.deleted).toBe(true);
        const again = await create(store, 'a', 'w5', gone.modRevision);
        const versions = [a, b, a2, gone, again].map((r) => Number(r.manifest.version));
        for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1] as number);
        expect((await store.get('a'))?.manifest.writeId).toBe('w5');
      });

      it('refuses a commit on a stale revision and returns the current manifest', async () => {
        const first = await create(store, 'k', 'w1');
        const second = await create(store, 'k', 'w2', first.modRevision);
        const stale = await store.commit({
          key: 'k',
          expectedModRevision: first.modRevision,
          writeId: 'w3',
          manifest: makeManifest('k', 'w3'),
          assignVersion: true,
        });
        expect(stale).toEqual({
          ok: false,
          reason: 'conflict',
          current: { manifest: second.manifest, modRevision: second.modRevision },
        });
        const again = await store.commit({
          key: 'k',
          expectedModRevision: 0,
          writeId: 'w4',
          manifest: makeManifest('k', 'w4'),
          assignVersion: true,
        });
        expect(again).toMatchObject({ ok: false, reason: 'conflict', current: { modRevision: second.modRevision } });
        expect((await store.get('k'))?.manifest.writeId).toBe('w2');
      });

      it('reports a conflict with no current manifest when the key is absent but a revision was expected', async () => {
        const result = await store.commit({
          key: 'absent',
          expectedModRevision: 7,
          writeId: 'w1',
          manifest: makeManifest('absent', 'w1'),
          assignVersion: true,
        });
        expect(result).toEqual({ ok: false, reason: 'conflict', current: null });
        expect(await store.get('absent')).toBeNull();
      });

      it('treats a tombstone as present: re-creating needs its modRevision', async () => {
        const live = await create(store, 'k', 'w1');
        const gone = await remove(store, 'k', 'w2', live.modRevision);
        const blind = await store.commit({
          key: 'k',
          expectedModRevision: 0,
          writeId: 'w3',
          manifest: makeManifest('k', 'w3'),
          assignVersion: true,
        });
        expect(blind).toMatchObject({ ok: false, reason: 'conflict', current: { modRevision: gone.modRevision } });
        if (!blind.ok && blind.reason === 'conflict') expect(blind.current?.manifest.deleted).toBe(true);
        const stored = await store.get('k');
        expect(stored?.manifest.deleted).toBe(true);
        expect(stored?.modRevision).toBe(gone.modRevision);
      });

      it('lets a healer commit keep the version while moving modRevision', async () => {
        const user = await create(store, 'k', 'w1');
        const repaired: Manifest = { ...user.manifest, dirty: false, hot: user.manifest.hot.slice(0, 2) };
        const healer = expectOk(
          await store.commit({
            key: 'k',
            expectedModRevision: user.modRevision,
            writeId: 'repair-1',
            manifest: repaired,
            assignVersion: false,
          }),
        );
        expect(healer.modRevision).toBeGreaterThan(user.modRevision);
        expect(healer.manifest.version).toBe(user.manifest.version);
        expect(healer.manifest.hot).toHaveLength(2);
        const stored = await store.get('k');
        expect(stored?.manifest.version).toBe(user.manifest.version);
        expect(stored?.modRevision).toBe(healer.modRevision);
        const next = await create(store, 'k', 'w2', healer.modRevision);
        expect(Number(next.manifest.version)).toBeGreaterThan(healer.modRevision);
      });

      it('exactly one of 100 concurrent commits on the same revision wins', async () => {
        const base = await create(store, 'hot', 'w0');
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            store.commit({
              key: 'hot',
              expectedModRevision: base.modRevision,
              writeId: `w${i + 1}`,
              manifest: makeManifest('hot', `w${i + 1}`),
              assignVersion: true,
            }),
          ),
        );
        const winners = results.filter((r): r is Ok => r.ok);
        expect(winners).toHaveLength(1);
        const winner = winners[0] as Ok;
        for (const r of results) {
          if (r.ok) continue;
          expect(r).toMatchObject({ reason: 'conflict', current: { modRevision: winner.modRevision } });
        }
        expect((await store.get('hot'))?.manifest.writeId).toBe(winner.manifest.writeId);
      });

      it('concurrent commits to different keys all succeed with distinct versions', async () => {
        const results = await Promise.all(Array.from({ length: 100 }, (_, i) => create(store, `key-${i}`, `w${i}`)));
        const versions = new Set(results.map((r) => r.manifest.version));
        expect(versions.size).toBe(100);
        for (const r of results) expect(r.manifest.version).toBe(String(r.modRevision));
        expect((await store.get('key-42'))?.manifest.writeId).toBe('w42');
      });
    });

    describe('abort records', () => {
      it('block a later commit of the aborted write id', async () => {
        const live = await create(store, 'k', 'w1');
        expect(await store.abort({ key: 'k', writeId: 'late', expectedModRevision: live.modRevision, nowMs: 1_000 }))
          .toBe(true);
        expect(await store.isAborted('late')).toBe(true);
        expect(await store.isAborted('w1')).toBe(false);
        const result = await store.commit({
          key: 'k',
          expectedModRevision: live.modRevision,
          writeId: 'late',
          manifest: makeManifest('k', 'late'),
          assignVersion: true,
        });
        expect(result).toEqual({ ok: false, reason: 'aborted' });
        expect((await store.get('k'))?.modRevision).toBe(live.modRevision);
      });

      it('are refused when the manifest changed since the caller read it', async () => {
        const read = await create(store, 'k', 'w1');
        await create(store, 'k', 'w2', read.modRevision);
        expect(await store.abort({ key: 'k', writeId: 'w3', expectedModRevision: read.modRevision, nowMs: 1_000 }))
          .toBe(false);
        expect(await store.isAborted('w3')).toBe(false);
        expect(await store.abort({ key: 'new', writeId: 'w4', expectedModRevision: 5, nowMs: 1_000 })).toBe(false);
      });

      it('can be written for an absent key, and writing one twice is accepted', async () => {
        expect(await store.abort({ key: 'absent', writeId: 'w1', expectedModRevision: 0, nowMs: 1_000 })).toBe(true);
        await create(store, 'absent', 'w2');
        // The record already exists, so a second abort succeeds even though the key has changed.
        expect(await store.abort({ key: 'absent', writeId: 'w1', expectedModRevision: 0, nowMs: 2_000 })).toBe(true);
        expect(await store.isAborted('w1')).toBe(true);
      });

      it('expire when created before the cutoff', async () => {
        await store.abort({ key: 'a', writeId: 'old', expectedModRevision: 0, nowMs: 1_000 });
        await store.abort({ key: 'b', writeId: 'new', expectedModRevision: 0, nowMs: 5_000 });
        expect(await store.expireAbortRecords(3_000)).toBe(1);
        expect(await store.isAborted('old')).toBe(false);
        expect(await store.isAborted('new')).toBe(true);
        expect(await store.expireAbortRecords(3_000)).toBe(0);
      });
    });

    describe('fencing', () => {
      it('fails a commit fenced by a term another holder has replaced', async () => {
        const termA = await store.acquireLeadership('healer', 'A', TTL_MS);
        expect(termA).not.toBeNull();
        const fencedOk = await store.commit({
          key: 'k',
          expectedModRevision: 0,
          writeId: 'w1',
          manifest: makeManifest('k', 'w1'),
          assignVersion: false,
          fence: termA ?? undefined,
        });
        const first = expectOk(fencedOk);
        await fx.clock.advance(PAST_TTL_MS);
        const termB = await store.acquireLeadership('healer', 'B', TTL_MS);
        expect(termB?.term).toBeGreaterThan(termA?.term ?? Infinity);
        const stale = await store.commit({
          key: 'k',
          expectedModRevision: first.modRevision,
          writeId: 'w2',
          manifest: makeManifest('k', 'w2'),
          assignVersion: false,
          fence: termA ?? undefined,
        });
        expect(stale).toEqual({ ok: false, reason: 'fenced' });
        const current = await store.commit({
          key: 'k',
          expectedModRevision: first.modRevision,
          writeId: 'w3',
          manifest: makeManifest('k', 'w3'),
          assignVersion: false,
          fence: termB ?? undefined,
        });
        expect(current.ok).toBe(true);
      });

      it('fails a commit fenced by a lease that has expired', async () => {
        const term = await store.acquireLeadership('healer', 'A', TTL_MS);
        expect(term).not.toBeNull();
        await fx.clock.advance(PAST_TTL_MS);
        const result = await store.commit({
          key: 'k',
          expectedModRevision: 0,
          writeId: 'w1',
          manifest: makeManifest('k', 'w1'),
          assignVersion: false,
          fence: term ?? undefined,
        });
        expect(result).toEqual({ ok: false, reason: 'fenced' });
        expect(await store.get('k')).toBeNull();
      });
    });

    describe('listing', () => {
      it('lists keys in UTF-8 byte order, which differs from UTF-16 order', async () => {
        const keys = ['a', 'b', 'é', '中', '\u{1F600}', 'Z', '\uFF21'];
        for (const [i, key] of keys.entries()) await create(store, key, `w${i}`);
        const expected = ['Z', 'a', 'b', 'é', '中', '\uFF21', '\u{1F600}'];
        expect([...keys].sort(byUtf8)).toEqual(expected);
        // JavaScript's own order puts the surrogate pair of U+1F600 before U+FF21.
        expect([...keys].sort()).not.toEqual(expected);
        expect(await store.listKeys('', null, 100)).toEqual(expected);
        expect(await store.listKeys('', 'é', 2)).toEqual(['中', '\uFF21']);
        expect(await store.listKeys('', '\uFF21', 10)).toEqual(['\u{1F600}']);
      });

      it('filters by prefix, pages with startAfter and leaves tombstones out', async () => {
        const keys = ['use', 'user', 'user/1', 'user/2', 'user/3', 'user0', 'users', 'é', 'é/x', 'éa', 'ê'];
        const revisions = new Map<string, number>();
        for (const [i, key] of keys.entries()) revisions.set(key, (await create(store, key, `w${i}`)).modRevision);
        expect(await store.listKeys('user/', null, 2)).toEqual(['user/1', 'user/2']);
        expect(await store.listKeys('user/', 'user/2', 2)).toEqual(['user/3']);
        expect(await store.listKeys('user/', 'user/3', 2)).toEqual([]);
        expect(await store.listKeys('user/', 'a', 10)).toEqual(['user/1', 'user/2', 'user/3']);
        expect(await store.listKeys('user/', 'zzz', 10)).toEqual([]);
        expect(await store.listKeys('user', null, 10)).toEqual(['user', 'user/1', 'user/2', 'user/3', 'user0', 'users']);
        expect(await store.listKeys('é', null, 10)).toEqual(['é', 'é/x', 'éa']);
        expect(await store.listKeys('nothing', null, 10)).toEqual([]);
        await remove(store, 'user/2', 'd1', revisions.get('user/2') ?? 0);
        expect(await store.listKeys('user/', null, 10)).toEqual(['user/1', 'user/3']);
        expect(await store.listKeys('user/', 'user/1', 1)).toEqual(['user/3']);
      });

      it('scan returns every manifest, tombstones included, in byte order and pages', async () => {
        const b = await create(store, 'b', 'w1');
        await create(store, 'é', 'w2');
        await create(store, 'a', 'w3');
        await remove(store, 'b', 'w4', b.modRevision);
        const all = await store.scan(null, 10);
        expect(all.map((m) => m.manifest.key)).toEqual(['a', 'b', 'é']);
        expect(all[1]?.manifest.deleted).toBe(true);
        const page1 = await store.scan(null, 2);
        expect(page1.map((m) => m.manifest.key)).toEqual(['a', 'b']);
        const page2 = await store.scan('b', 2);
        expect(page2.map((m) => m.manifest.key)).toEqual(['é']);
        expect(page2[0]?.modRevision).toBe((await store.get('é'))?.modRevision);
      });
    });

    describe('tombstones', () => {
      it('purges a tombstone only at its modRevision, after which the key can be created afresh', async () => {
        const live = await create(store, 'k', 'w1');
        expect(await store.purgeTombstone('k', live.modRevision)).toBe(false);
        const gone = await remove(store, 'k', 'w2', live.modRevision);
        expect(await store.purgeTombstone('k', gone.modRevision - 1)).toBe(false);
        expect(await store.purgeTombstone('k', gone.modRevision)).toBe(true);
        expect(await store.get('k')).toBeNull();
        expect(await store.scan(null, 10)).toEqual([]);
        const again = await create(store, 'k', 'w3');
        expect(Number(again.manifest.version)).toBeGreaterThan(Number(gone.manifest.version));
      });
    });

    describe('idempotency records', () => {
      const response = { status: 201, body: { version: '0' }, headers: { etag: '"0"' } };
      let attempts = 0;
      /** A fresh attempt's claim on `token`: lease and retention from now by the store's clock. */
      const claim = (token: string, fingerprint: string, leaseMs = 60_000, ttlMs = 120_000): IdempotencyClaim => ({
        token,
        fingerprint,
        attemptId: `attempt-${attempts++}`,
        leaseUntilMs: fx.clock.nowMs() + leaseMs,
        expiresAtMs: fx.clock.nowMs() + ttlMs,
      });
      const idempotentCommit = (key: string, writeId: string, held: IdempotencyClaim, expected = 0) =>
        store.commit({
          key,
          expectedModRevision: expected,
          writeId,
          manifest: makeManifest(key, writeId),
          assignVersion: true,
          idempotency: { claim: held, response },
        });

      it('reserve a fresh token, report it pending with its lease, then done with the response', async () => {
        const first = claim('t1', 'fp1');
        expect(await store.reserveIdempotency(first)).toBeNull();
        expect(await store.reserveIdempotency(claim('t1', 'fp2'))).toEqual({ state: 'pending', fingerprint: 'fp1', leaseUntilMs: first.leaseUntilMs });
        expect(await store.completeIdempotency(first, response)).toBe(true);
        expect(await store.reserveIdempotency(claim('t1', 'fp1'))).toEqual({ state: 'done', fingerprint: 'fp1', response, version: null });
        // Releasing is for failed requests; it never drops a completed response.
        await store.releaseIdempotency(first);
        expect(await store.reserveIdempotency(claim('t1', 'fp1'))).toMatchObject({ state: 'done' });
      });

      it('release a pending reservation so the token can be reserved again, only by the claim holding it', async () => {
        const first = claim('t1', 'fp1');
        expect(await store.reserveIdempotency(first)).toBeNull();
        const stranger = { ...first, attemptId: 'someone-else' };
        await store.releaseIdempotency(stranger);
        expect(await store.completeIdempotency(stranger, response)).toBe(false);
        expect(await store.reserveIdempotency(claim('t1', 'fp1'))).toMatchObject({ state: 'pending' });
        await store.releaseIdempotency(first);
        expect(await store.reserveIdempotency(claim('t1', 'fp2'))).toBeNull();
        expect(await store.reserveIdempotency(claim('t1', 'fp3'))).toMatchObject({ state: 'pending', fingerprint: 'fp2' });
      });

      it('let the same request take over a pending token whose lease lapsed, and void the earlier claim', async () => {
        const first = claim('t', 'fp', 500);
        expect(await store.reserveIdempotency(first)).toBeNull();
        expect(await store.reserveIdempotency(claim('t', 'fp'))).toMatchObject({ state: 'pending', leaseUntilMs: first.leaseUntilMs });
        await fx.clock.advance(600);
        // Another request with the token is never let in, lapsed lease or not.
        expect(await store.reserveIdempotency(claim('t', 'other'))).toMatchObject({ state: 'pending', fingerprint: 'fp' });
        const retry = claim('t', 'fp');
        expect(await store.reserveIdempotency(retry)).toBeNull();
        expect(await store.reserveIdempotency(claim('t', 'fp'))).toEqual({ state: 'pending', fingerprint: 'fp', leaseUntilMs: retry.leaseUntilMs });
        // The first attempt can neither record an outcome, nor release the token, nor commit any more.
        expect(await store.completeIdempotency(first, response)).toBe(false);
        await store.releaseIdempotency(first);
        expect(await idempotentCommit('k', 'w-first', first)).toEqual({ ok: false, reason: 'superseded' });
        expect(await store.get('k')).toBeNull();
        const won = expectOk(await idempotentCommit('k', 'w-retry', retry));
        expect(await store.reserveIdempotency(claim('t', 'fp'))).toEqual({ state: 'done', fingerprint: 'fp', response, version: won.manifest.version });
      });

      it('record the outcome in the commit itself: done, with the version the commit gave the key', async () => {
        const before = await create(store, 'k', 'w1');
        const held = claim('t', 'fp');
        expect(await store.reserveIdempotency(held)).toBeNull();
        const committed = expectOk(await idempotentCommit('k', 'w2', held, before.modRevision));
        expect(committed.manifest.version).toBe(String(committed.modRevision));
        expect(await store.get('k')).toEqual({ manifest: committed.manifest, modRevision: committed.modRevision });
        const record = await store.reserveIdempotency(claim('t', 'fp'));
        expect(record).toEqual({ state: 'done', fingerprint: 'fp', response, version: committed.manifest.version });
        // The claim is spent: it cannot commit again, nor be released, nor record another outcome.
        expect(await idempotentCommit('k', 'w3', held, committed.modRevision)).toEqual({ ok: false, reason: 'superseded' });
        await store.releaseIdempotency(held);
        expect(await store.completeIdempotency(held, { status: 500, body: null, headers: {} })).toBe(false);
        expect(await store.reserveIdempotency(claim('t', 'fp'))).toEqual(record);
        expect((await store.get('k'))?.modRevision).toBe(committed.modRevision);
      });

      it('refuse a commit whose claim was released or never held, and change nothing', async () => {
        const released = claim('t', 'fp');
        expect(await store.reserveIdempotency(released)).toBeNull();
        await store.releaseIdempotency(released);
        expect(await idempotentCommit('k', 'w1', released)).toEqual({ ok: false, reason: 'superseded' });
        expect(await idempotentCommit('k', 'w2', claim('never', 'fp'))).toEqual({ ok: false, reason: 'superseded' });
        expect(await store.get('k')).toBeNull();
        expect(await store.reserveIdempotency(claim('never', 'fp'))).toBeNull();
        // Reasons in order: an aborted write id first, then the claim, then the revision.
        const held = claim('t2', 'fp');
        expect(await store.reserveIdempotency(held)).toBeNull();
        await store.abort({ key: 'k', writeId: 'dead', expectedModRevision: 0, nowMs: 1_000 });
        expect(await idempotentCommit('k', 'dead', released)).toEqual({ ok: false, reason: 'aborted' });
        expect(await idempotentCommit('k', 'w3', released, 99)).toEqual({ ok: false, reason: 'superseded' });
        expect(await idempotentCommit('k', 'w4', held, 99)).toMatchObject({ ok: false, reason: 'conflict' });
        expect(await store.reserveIdempotency(claim('t2', 'fp'))).toMatchObject({ state: 'pending' });
        expectOk(await idempotentCommit('k', 'w5', held));
      });

      it('treat an expired token as fresh and sweep expired records', async () => {
        const short = claim('short', 'fp1', 1_000, 1_000);
        expect(await store.reserveIdempotency(short)).toBeNull();
        await store.completeIdempotency(short, response);
        const long = claim('long', 'fp1', 60_000, 60_000);
        expect(await store.reserveIdempotency(long)).toBeNull();
        await fx.clock.advance(PAST_TTL_MS);
        expect(await store.reserveIdempotency(claim('short', 'fp2', 1_000, 1_000))).toBeNull();
        expect(await store.reserveIdempotency(claim('short', 'fp3'))).toMatchObject({ state: 'pending', fingerprint: 'fp2' });
        expect(await store.expireIdempotency(fx.clock.nowMs() + 10_000)).toBe(1);
        expect(await store.reserveIdempotency(claim('short', 'fp4'))).toBeNull();
        expect(await store.reserveIdempotency(claim('long', 'fp1'))).toEqual({ state: 'pending', fingerprint: 'fp1', leaseUntilMs: long.leaseUntilMs });
      });
    });

    describe('repair hints', () => {
      it('are deduplicated and taken at most `limit` at a time', async () => {
        await store.addRepairHint('a');
        await store.addRepairHint('b');
        await store.addRepairHint('a');
        await store.addRepairHint('中');
        const first = await store.takeRepairHints(2);
        expect(first).toHaveLength(2);
        const rest = await store.takeRepairHints(10);
        expect([...first, ...rest].sort()).toEqual(['a', 'b', '中']);
        expect(await store.takeRepairHints(10)).toEqual([]);
        await store.addRepairHint('a');
        expect(await store.takeRepairHints(10)).toEqual(['a']);
      });
    });

    describe('leadership', () => {
      it('is granted to one holder at a time and renewed with the same term', async () => {
        const a = await store.acquireLeadership('healer', 'A', TTL_MS);
        expect(a).toMatchObject({ name: 'healer', holder: 'A' });
        expect(await store.acquireLeadership('healer', 'B', TTL_MS)).toBeNull();
        expect(await store.currentLeader('healer')).toBe('A');
        expect(await store.currentLeader('other')).toBeNull();
        await fx.clock.advance(TTL_MS / 2);
        const renewed = await store.acquireLeadership('healer', 'A', TTL_MS);
        expect(renewed).toEqual(a);
        // The renewal extended the lease past the original expiry.
        await fx.clock.advance(TTL_MS * 0.75);
        expect(await store.currentLeader('healer')).toBe('A');
        expect(await store.acquireLeadership('healer', 'B', TTL_MS)).toBeNull();
      });

      it('passes to another holder with a higher term once the lease expired', async () => {
        const a = await store.acquireLeadership('healer', 'A', TTL_MS);
        await fx.clock.advance(PAST_TTL_MS);
        expect(await store.currentLeader('healer')).toBeNull();
        const b = await store.acquireLeadership('healer', 'B', TTL_MS);
        expect(b?.holder).toBe('B');
        expect(b?.term).toBeGreaterThan(a?.term ?? Infinity);
        expect(await store.currentLeader('healer')).toBe('B');
        expect(await store.acquireLeadership('healer', 'A', TTL_MS)).toBeNull();
      });

      it('is released only by its own term, and the next term is higher', async () => {
        const a = await store.acquireLeadership('healer', 'A', TTL_MS);
        expect(a).not.toBeNull();
        await store.releaseLeadership({ name: 'healer', holder: 'B', term: a?.term ?? 0 });
        expect(await store.currentLeader('healer')).toBe('A');
        if (a === null) throw new Error('A should lead');
        await store.releaseLeadership(a);
        expect(await store.currentLeader('healer')).toBeNull();
        const b = await store.acquireLeadership('healer', 'B', TTL_MS);
        expect(b?.term).toBeGreaterThan(a?.term ?? Infinity);
        const again = await store.acquireLeadership('healer', 'A', TTL_MS);
        expect(again).toBeNull();
      });
    });

    describe('node registry', () => {
      it('lists a registered node as active and alive with its address, zone and heartbeat time', async () => {
        const before = fx.clock.nowMs();
        await store.registerNode({ id: 'node-2', address: 'http://10.0.0.2:8101', zone: 'z1' }, TTL_MS);
        await store.registerNode({ id: 'node-1', address: 'http://10.0.0.1:8101' }, TTL_MS);
        const after = fx.clock.nowMs();
        const nodes = await store.listNodes();
        expect(nodes.map((n) => n.id)).toEqual(['node-1', 'node-2']);
        const [one, two] = nodes;
        expect(one).toMatchObject({ id: 'node-1', address: 'http://10.0.0.1:8101', state: 'active', alive: true });
        expect(one?.zone).toBeUndefined();
        expect(two).toMatchObject({ id: 'node-2', address: 'http://10.0.0.2:8101', zone: 'z1', state: 'active', alive: true });
        expect(two?.lastHeartbeatMs).toBeGreaterThanOrEqual(before);
        expect(two?.lastHeartbeatMs).toBeLessThanOrEqual(after);
      });

      it('reports a node that stops heartbeating as not alive once its ttl has passed, and alive again when it returns', async () => {
        await store.registerNode({ id: 'quiet', address: 'http://10.0.0.1:8101' }, TTL_MS);
        await store.registerNode({ id: 'busy', address: 'http://10.0.0.2:8101' }, TTL_MS);
        await fx.clock.advance(TTL_MS / 2);
        await store.registerNode({ id: 'busy', address: 'http://10.0.0.2:8101' }, TTL_MS);
        // Past the first registrations' ttl, within the refreshed one.
        await fx.clock.advance(TTL_MS * 0.75);
        const midway = await store.listNodes();
        expect(nodeById(midway, 'busy')?.alive).toBe(true);
        await fx.clock.advance(PAST_TTL_MS - TTL_MS * 0.75);
        const later = await store.listNodes();
        expect(nodeById(later, 'quiet')).toMatchObject({ alive: false, state: 'active' });
        await store.registerNode({ id: 'quiet', address: 'http://10.0.0.1:8101' }, TTL_MS);
        expect(nodeById(await store.listNodes(), 'quiet')?.alive).toBe(true);
      });

      it('reports a node that deregistered as not alive at once, keeping its entry and state, and alive again when it registers', async () => {
        await store.registerNode({ id: 'leaving', address: 'http://10.0.0.1:8101' }, TTL_MS);
        await store.registerNode({ id: 'staying', address: 'http://10.0.0.2:8101' }, TTL_MS);
        await store.setNodeState('leaving', 'draining');
        await store.deregisterNode('leaving');
        const nodes = await store.listNodes();
        expect(nodeById(nodes, 'leaving')).toMatchObject({ alive: false, state: 'draining', address: 'http://10.0.0.1:8101' });
        expect(nodeById(nodes, 'staying')?.alive).toBe(true);
        await store.deregisterNode('never-registered');
        await store.deregisterNode('not a node id!');
        await store.registerNode({ id: 'leaving', address: 'http://10.0.0.1:8101' }, TTL_MS);
        expect(nodeById(await store.listNodes(), 'leaving')).toMatchObject({ alive: true, state: 'draining' });
      });

      it('keeps the draining state across heartbeats and takes a new address on refresh', async () => {
        await store.registerNode({ id: 'n', address: 'http://10.0.0.1:8101', zone: 'a' }, TTL_MS);
        await store.setNodeState('n', 'draining');
        await store.registerNode({ id: 'n', address: 'http://10.0.0.9:8101', zone: 'b' }, TTL_MS);
        expect(nodeById(await store.listNodes(), 'n')).toMatchObject({
          address: 'http://10.0.0.9:8101',
          zone: 'b',
          state: 'draining',
          alive: true,
        });
        await store.setNodeState('n', 'active');
        expect(nodeById(await store.listNodes(), 'n')?.state).toBe('active');
      });

      it('refuses to change or remove a node that is not registered', async () => {
        expect(await codeOf(store.setNodeState('ghost', 'draining'))).toBe('NODE_NOT_FOUND');
        expect(await codeOf(store.removeNode('ghost'))).toBe('NODE_NOT_FOUND');
        expect(await codeOf(store.removeNode('not a node id!'))).toBe('NODE_NOT_FOUND');
        expect(await store.listNodes()).toEqual([]);
      });

      it('removes a node only once it is draining', async () => {
        await store.registerNode({ id: 'n', address: 'http://10.0.0.1:8101' }, TTL_MS);
        await store.registerNode({ id: 'keep', address: 'http://10.0.0.2:8101' }, TTL_MS);
        expect(await codeOf(store.removeNode('n'))).toBe('NODE_NOT_DRAINED');
        expect(nodeById(await store.listNodes(), 'n')?.state).toBe('active');
        await store.setNodeState('n', 'draining');
        await store.removeNode('n');
        expect((await store.listNodes()).map((n) => n.id)).toEqual(['keep']);
        expect(await codeOf(store.removeNode('n'))).toBe('NODE_NOT_FOUND');
        // A removed node that heartbeats again is registered afresh, as active.
        await store.registerNode({ id: 'n', address: 'http://10.0.0.1:8101' }, TTL_MS);
        expect(nodeById(await store.listNodes(), 'n')).toMatchObject({ state: 'active', alive: true });
      });

      it('keeps registrations and states across a restart', async () => {
        await store.registerNode({ id: 'a', address: 'http://10.0.0.1:8101', zone: 'z' }, 60_000);
        await store.setNodeState('a', 'draining');
        store = await fx.reopen();
        expect(await store.listNodes()).toEqual([
          expect.objectContaining({ id: 'a', address: 'http://10.0.0.1:8101', zone: 'z', state: 'draining' }),
        ]);
      });
    });

    describe('manifest watch', () => {
      interface Seen {
        changes: Array<{ key: string; version: string | null; deleted: boolean | null; revision: number }>;
        revisions: number[];
        resets: string[];
      }
      function follow(seen: Seen) {
        return {
          onChange: (key: string, stored: StoredManifest | null, revision: number) =>
            seen.changes.push({ key, version: stored?.manifest.version ?? null, deleted: stored?.manifest.deleted ?? null, revision }),
          onRevision: (revision: number) => seen.revisions.push(revision),
          onReset: (reason: string) => seen.resets.push(reason),
        };
      }
      const until = (what: string, check: () => boolean): Promise<void> => waitUntil(what, check);
      const delivered = (seen: Seen) => Math.max(-1, ...seen.revisions);

      it('reports the commits made after it started, in revision order, and catches up with currentRevision', async () => {
        const before = await create(store, 'old', 'w0');
        const seen: Seen = { changes: [], revisions: [], resets: [] };
        const watch = await store.watchManifests(await store.currentRevision(), follow(seen));
        try {
          const a = await create(store, 'a', 'w1');
          const b = await create(store, 'b', 'w2');
          const a2 = await create(store, 'a', 'w3', a.modRevision);
          const gone = await remove(store, 'b', 'w4', b.modRevision);
          const last = gone.modRevision;
          await until('the watch delivered the last commit', () => delivered(seen) >= last);
          expect(seen.changes.map((c) => [c.key, c.revision])).toEqual([
            ['a', a.modRevision],
            ['b', b.modRevision],
            ['a', a2.modRevision],
            ['b', gone.modRevision],
          ]);
          expect(seen.changes.map((c) => c.version)).toEqual([a.manifest.version, b.manifest.version, a2.manifest.version, gone.manifest.version]);
          expect(seen.changes[3]?.deleted).toBe(true);
          expect(seen.changes.some((c) => c.key === 'old' && c.revision === before.modRevision)).toBe(false);
          // Reported revisions never go back, and reach the store's revision once it stops changing.
          for (let i = 1; i < seen.revisions.length; i++) expect(seen.revisions[i]).toBeGreaterThanOrEqual(seen.revisions[i - 1]!);
          const current = await store.currentRevision();
          await until('onRevision reached currentRevision', () => delivered(seen) >= current);
          expect(seen.resets).toEqual([]);
        } finally {
          await watch.close();
        }
      });

      it('advances onRevision past changes that are not manifests, and stops reporting once closed', async () => {
        const seen: Seen = { changes: [], revisions: [], resets: [] };
        const watch = await store.watchManifests(await store.currentRevision(), follow(seen));
        await store.addRepairHint('k');
        await store.purgeTombstone('nothing', 1);
        const current = await store.currentRevision();
        await until('onRevision reached currentRevision', () => delivered(seen) >= current);
        expect(seen.changes).toEqual([]);
        await watch.close();
        const count = seen.changes.length;
        // A watch still open sees the next commit; once it has, the closed one has had every chance to report it.
        const witness: Seen = { changes: [], revisions: [], resets: [] };
        const open = await store.watchManifests(await store.currentRevision(), follow(witness));
        try {
          const later = await create(store, 'later', 'w9');
          await until('an open watch delivered the commit', () => delivered(witness) >= later.modRevision);
        } finally {
          await open.close();
        }
        expect(seen.changes.length).toBe(count);
      });

      it('reports changes since an earlier revision when started from it', async () => {
        const from = await store.currentRevision();
        const a = await create(store, 'x', 'w1');
        const seen: Seen = { changes: [], revisions: [], resets: [] };
        const watch = await store.watchManifests(from, follow(seen));
        try {
          await until('the watch delivered the earlier commit', () => delivered(seen) >= a.modRevision);
          expect(seen.changes.map((c) => [c.key, c.revision])).toEqual([['x', a.modRevision]]);
        } finally {
          await watch.close();
        }
      });
    });

    describe('change history (watchChanges)', () => {
      interface Followed {
        changes: ManifestChange[];
        ends: StrataError[];
      }
      function follower(seen: Followed) {
        return { onChange: (c: ManifestChange) => seen.changes.push(c), onEnd: (e: StrataError) => seen.ends.push(e) };
      }
      const until = (what: string, check: () => boolean): Promise<void> => waitUntil(what, check);

      it('replays every commit after the start revision, one per commit in order, then follows new ones', async () => {
        const from = await store.currentRevision();
        const a1 = await create(store, 'doc/a', 'w1');
        const a2 = await create(store, 'doc/a', 'w2', a1.modRevision);
        const b = await create(store, 'doc/b', 'w3');
        await create(store, 'other/x', 'w4');
        const gone = await remove(store, 'doc/b', 'w5', b.modRevision);
        const seen: Followed = { changes: [], ends: [] };
        const watch = await store.watchChanges('doc/', from, follower(seen));
        try {
          await until('the replay arrived', () => seen.changes.length >= 4);
          const later = await create(store, 'doc/c', 'w6');
          await until('the new commit arrived', () => seen.changes.length >= 5);
          // A last commit marks the end: changes come in revision order, so a repeat or an extra change would have
          // come before it.
          const end = await create(store, 'doc/end', 'w7');
          await until('the last commit arrived', () => seen.changes.some((c) => c.revision === end.modRevision));
          expect(seen.changes.pop()).toEqual({ key: 'doc/end', revision: end.modRevision, kind: 'put' });
          expect(seen.changes).toEqual([
            { key: 'doc/a', revision: a1.modRevision, kind: 'put' },
            { key: 'doc/a', revision: a2.modRevision, kind: 'put' },
            { key: 'doc/b', revision: b.modRevision, kind: 'put' },
            { key: 'doc/b', revision: gone.modRevision, kind: 'delete' },
            { key: 'doc/c', revision: later.modRevision, kind: 'put' },
          ]);
          // The revision of a change is the version its commit gave the key.
          expect(seen.changes.map((c) => String(c.revision))).toEqual(
            [a1, a2, b, gone, later].map((r) => r.manifest.version),
          );
          expect(seen.ends).toEqual([]);
        } finally {
          await watch.close();
        }
      });

      it('resumed from the revision of a delivered change, reports exactly the changes after it', async () => {
        const from = await store.currentRevision();
        const made: Ok[] = [];
        for (let i = 0; i < 6; i++) made.push(await create(store, `k${i}`, `w${i}`));
        const seen: Followed = { changes: [], ends: [] };
        const watch = await store.watchChanges('', made[2]!.modRevision, follower(seen));
        try {
          await until('the rest arrived', () => seen.changes.length >= 3);
          // A last commit marks the end (changes come in revision order; see above).
          const end = await create(store, 'k-end', 'w-end');
          await until('the last commit arrived', () => seen.changes.some((c) => c.revision === end.modRevision));
          expect(seen.changes.map((c) => c.revision)).toEqual([...made.slice(3), end].map((m) => m.modRevision));
          expect(from).toBeLessThan(made[0]!.modRevision);
        } finally {
          await watch.close();
        }
      });

      it('leaves out healer repairs, which keep the version, and tombstone purges', async () => {
        const from = await store.currentRevision();
        const a = await create(store, 'r', 'w1');
        const repaired = expectOk(
          await store.commit({ key: 'r', expectedModRevision: a.modRevision, writeId: 'w1', manifest: a.manifest, assignVersion: false }),
        );
        const gone = await remove(store, 'r', 'w2', repaired.modRevision);
        expect(await store.purgeTombstone('r', gone.modRevision)).toBe(true);
        const marker = await create(store, 'z', 'w3');
        const seen: Followed = { changes: [], ends: [] };
        const watch = await store.watchChanges('', from, follower(seen));
        try {
          await until('the marker arrived', () => seen.changes.some((c) => c.key === 'z'));
          expect(seen.changes.map((c) => [c.key, c.kind, c.revision])).toEqual([
            ['r', 'put', a.modRevision],
            ['r', 'delete', gone.modRevision],
            ['z', 'put', marker.modRevision],
          ]);
        } finally {
          await watch.close();
        }
      });

      it('refuses to start from a revision whose changes were compacted away, with HISTORY_COMPACTED', async () => {
        const from = await store.currentRevision();
        await create(store, 'c1', 'w1');
        const c2 = await create(store, 'c2', 'w2');
        await fx.compactHistory(c2.modRevision);
        const early: Followed = { changes: [], ends: [] };
        const started = await store.watchChanges('', from, follower(early)).then(
          async (w) => {
            // Allowed by the contract only when the compaction races the start: then onEnd says so at once.
            await until('onEnd reported the compaction', () => early.ends.length > 0);
            await w.close();
            return early.ends[0]?.code;
          },
          (err: unknown) => (isStrataError(err) ? err.code : err),
        );
        expect(started).toBe('HISTORY_COMPACTED');
        expect(early.changes).toEqual([]);
        // From the compaction point on, the history is whole again.
        const c3 = await create(store, 'c3', 'w3');
        const seen: Followed = { changes: [], ends: [] };
        const watch = await store.watchChanges('', c2.modRevision, follower(seen));
        try {
          await until('c3 arrived', () => seen.changes.length >= 1);
          expect(seen.changes).toEqual([{ key: 'c3', revision: c3.modRevision, kind: 'put' }]);
        } finally {
          await watch.close();
        }
      });

      it('ends a running watch with onEnd when the store closes, and reports nothing afterwards', async () => {
        const seen: Followed = { changes: [], ends: [] };
        await store.watchChanges('', await store.currentRevision(), follower(seen));
        store = await fx.reopen();
        await until('onEnd was called', () => seen.ends.length === 1);
        expect(seen.ends[0]?.code).toBe('METADATA_UNAVAILABLE');
        // A watch on the reopened store sees the next commit; once it has, the ended one has had every chance.
        const witness: Followed = { changes: [], ends: [] };
        const open = await store.watchChanges('', await store.currentRevision(), follower(witness));
        try {
          const after = await create(store, 'after', 'w1');
          await until('a running watch delivered the commit', () => witness.changes.some((c) => c.revision === after.modRevision));
        } finally {
          await open.close();
        }
        expect(seen.changes).toEqual([]);
      });
    });

    describe("healer's journal", () => {
      it('returns the newest actions first and keeps only the newest entriesMax', async () => {
        expect(await store.recentHealerActions(10)).toEqual([]);
        const total = HEALER_JOURNAL_LIMITS.entriesMax + 5;
        for (let start = 0; start < total; start += HEALER_JOURNAL_LIMITS.appendMax) {
          const batch = [];
          for (let i = start; i < Math.min(total, start + HEALER_JOURNAL_LIMITS.appendMax); i++) {
            batch.push({ atMs: 1_000 + i, kind: 'repaired' as const, key: `k${i}`, detail: `cold shard ${i % 6} on node-1 (missing)` });
          }
          await store.appendHealerActions(batch);
        }
        const recent = await store.recentHealerActions(3);
        expect(recent).toEqual([
          { atMs: 1_000 + total - 1, kind: 'repaired', key: `k${total - 1}`, detail: `cold shard ${(total - 1) % 6} on node-1 (missing)` },
          { atMs: 1_000 + total - 2, kind: 'repaired', key: `k${total - 2}`, detail: `cold shard ${(total - 2) % 6} on node-1 (missing)` },
          { atMs: 1_000 + total - 3, kind: 'repaired', key: `k${total - 3}`, detail: `cold shard ${(total - 3) % 6} on node-1 (missing)` },
        ]);
        const all = await store.recentHealerActions(10_000);
        expect(all).toHaveLength(HEALER_JOURNAL_LIMITS.entriesMax);
        expect(all.at(-1)?.key).toBe(`k${total - HEALER_JOURNAL_LIMITS.entriesMax}`);
      });
    });

    describe('tiering records', () => {
      it('answers null for a prefix that has no record and stores what an update returns', async () => {
        expect(await store.getTieringRecord('user:')).toBeNull();
        const stored = await store.updateTieringRecord('user:', (current) => {
          expect(current).toBeNull();
          return { format: 1, hits: 1, nested: { list: [1, 'two'] } };
        });
        expect(stored).toEqual({ format: 1, hits: 1, nested: { list: [1, 'two'] } });
        expect(await store.getTieringRecord('user:')).toEqual(stored);
      });

      it('leaves the record unchanged when the update returns null', async () => {
        await store.updateTieringRecord('a:', () => ({ v: 1 }));
        expect(await store.updateTieringRecord('a:', () => null)).toEqual({ v: 1 });
        expect(await store.getTieringRecord('a:')).toEqual({ v: 1 });
      });

      it('merges concurrent updates instead of losing any (each sees the result of the others)', async () => {
        const add = (current: unknown): unknown => ({ hits: ((current as { hits?: number } | null)?.hits ?? 0) + 1 });
        await Promise.all(Array.from({ length: 12 }, () => store.updateTieringRecord('busy:', add)));
        expect(await store.getTieringRecord('busy:')).toEqual({ hits: 12 });
      });

      it('lists records in prefix byte order, paged, the root prefix "" included', async () => {
        for (const prefix of ['b:', '', 'a/', '\u00e9:', 'a:']) await store.updateTieringRecord(prefix, () => ({ prefix }));
        const first = await store.listTieringRecords(null, 3);
        expect(first.map((r) => r.prefix)).toEqual(['', 'a/', 'a:']);
        const rest = await store.listTieringRecords('a:', 10);
        expect(rest.map((r) => r.prefix)).toEqual(['b:', '\u00e9:']);
        expect(rest[0]!.record).toEqual({ prefix: 'b:' });
      });

      it('keeps tiering records apart from manifests and key listings', async () => {
        await store.updateTieringRecord('k', () => ({ v: 1 }));
        expect(await store.get('k')).toBeNull();
        expect(await store.listKeys('', null, 10)).toEqual([]);
      });
    });

    describe('cluster identity', () => {
      const identity = (clusterId: string, nodes: string[] = []): ClusterIdentityRecord => ({
        clusterId,
        formatVersion: 1,
        createdAtMs: 1_700_000_000_000,
        nodes,
        acceptedEmpty: [],
      });

      it('answers null before it is created, then the record as created, across a restart', async () => {
        expect(await store.getClusterIdentity()).toBeNull();
        const created = await store.createClusterIdentity(identity('c1', ['node-2', 'node-1']));
        expect(created).toEqual(identity('c1', ['node-1', 'node-2']));
        store = await fx.reopen();
        expect(await store.getClusterIdentity()).toEqual(created);
      });

      it('is never overwritten: a later create gets the record that exists', async () => {
        await store.createClusterIdentity(identity('first', ['node-1']));
        expect(await store.createClusterIdentity(identity('second', ['node-9']))).toEqual(identity('first', ['node-1']));
        expect((await store.getClusterIdentity())?.clusterId).toBe('first');
      });

      it('two processes racing to create it both end with one id', async () => {
        const other = await fx.openAnother();
        const proposals = Array.from({ length: 6 }, (_, i) => identity(`racer-${i}`));
        const answers = await Promise.all(proposals.map((p, i) => (i % 2 === 0 ? store : other).createClusterIdentity(p)));
        const ids = new Set(answers.map((a) => a.clusterId));
        expect(ids.size).toBe(1);
        expect((await store.getClusterIdentity())?.clusterId).toBe([...ids][0]);
        expect((await other.getClusterIdentity())?.clusterId).toBe([...ids][0]);
      });

      it('changes only the node lists, and concurrent changes from two processes are all kept', async () => {
        await store.createClusterIdentity(identity('c1'));
        const other = await fx.openAnother();
        const add = (id: string) => (current: ClusterIdentityRecord) =>
          current.nodes.includes(id) ? null : { nodes: [...current.nodes, id], acceptedEmpty: current.acceptedEmpty };
        await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? store : other).updateClusterNodes(add(`node-${i}`))));
        const accepted = await store.updateClusterNodes((current) => ({ nodes: current.nodes, acceptedEmpty: ['node-3'] }));
        expect(accepted.clusterId).toBe('c1');
        expect(accepted.createdAtMs).toBe(1_700_000_000_000);
        expect(accepted.nodes).toEqual(Array.from({ length: 10 }, (_, i) => `node-${i}`).sort());
        expect(accepted.acceptedEmpty).toEqual(['node-3']);
        expect(await store.updateClusterNodes(() => null)).toEqual(accepted);
        expect(await other.getClusterIdentity()).toEqual(accepted);
      });

      it('refuses to change node lists when there is no record (METADATA_UNAVAILABLE) and creates none', async () => {
        expect(await codeOf(store.updateClusterNodes((c) => ({ nodes: [...c.nodes, 'node-1'], acceptedEmpty: [] })))).toBe('METADATA_UNAVAILABLE');
        expect(await store.getClusterIdentity()).toBeNull();
      });

      it('a damaged cluster identity is refused with METADATA_CORRUPT by every call, never overwritten, and reported', async () => {
        await store.createClusterIdentity(identity('c1', ['node-1']));
        await fx.tamper('cluster-identity', 'cluster');
        expect(await codeOf(store.getClusterIdentity())).toBe('METADATA_CORRUPT');
        expect(await codeOf(store.createClusterIdentity(identity('c2')))).toBe('METADATA_CORRUPT');
        expect(await codeOf(store.updateClusterNodes(() => ({ nodes: [], acceptedEmpty: [] })))).toBe('METADATA_CORRUPT');
        expect(await codeOf(store.getClusterIdentity())).toBe('METADATA_CORRUPT');
        expect(store.integrity().recent.some((s) => s.kind === 'cluster-identity')).toBe(true);
      });
    });

    describe('durability', () => {
      it('keeps everything acknowledged across a restart', async () => {
        const k = await create(store, 'k', 'w1');
        const t = await create(store, 't', 'w2');
        const gone = await remove(store, 't', 'w3', t.modRevision);
        await store.abort({ key: 'x', writeId: 'dead', expectedModRevision: 0, nowMs: 1_000 });
        const tok = { token: 'tok', fingerprint: 'fp', attemptId: 'a1', leaseUntilMs: fx.clock.nowMs() + 60_000, expiresAtMs: fx.clock.nowMs() + 60_000 };
        await store.reserveIdempotency(tok);
        await store.completeIdempotency(tok, { status: 200, body: null, headers: {} });
        const committedTok = { ...tok, token: 'committed', attemptId: 'a2' };
        await store.reserveIdempotency(committedTok);
        const u = expectOk(
          await store.commit({
            key: 'u',
            expectedModRevision: 0,
            writeId: 'w5',
            manifest: makeManifest('u', 'w5'),
            assignVersion: true,
            idempotency: { claim: committedTok, response: { status: 200, body: { version: '0' }, headers: {} } },
          }),
        );
        await store.addRepairHint('k');
        const revision = await store.currentRevision();

        store = await fx.reopen();

        expect(await store.get('k')).toEqual({ manifest: k.manifest, modRevision: k.modRevision });
        expect(await store.get('t')).toEqual({ manifest: gone.manifest, modRevision: gone.modRevision });
        expect(await store.currentRevision()).toBeGreaterThanOrEqual(revision);
        expect(await store.isAborted('dead')).toBe(true);
        const again = { token: 'tok', fingerprint: 'fp', attemptId: 'a3', leaseUntilMs: fx.clock.nowMs() + 60_000, expiresAtMs: fx.clock.nowMs() + 60_000 };
        expect(await store.reserveIdempotency(again)).toMatchObject({ state: 'done', version: null });
        expect(await store.reserveIdempotency({ ...again, token: 'committed' })).toMatchObject({ state: 'done', version: u.manifest.version });
        expect(await store.takeRepairHints(10)).toEqual(['k']);
        const next = await create(store, 'k', 'w4', k.modRevision);
        expect(Number(next.manifest.version)).toBeGreaterThan(gone.modRevision);
      });
    });
    describe('record envelope (a record that fails verification is never served)', () => {
      it('a tampered manifest is refused with METADATA_CORRUPT by get and by a commit over it, and skipped by scan', async () => {
        await create(store, 'env/a', 'wa');
        await create(store, 'env/b', 'wb');
        await create(store, 'env/c', 'wc');
        await fx.tamper('manifest', 'env/b');
        expect(await codeOf(store.get('env/b'))).toBe('METADATA_CORRUPT');
        // The revision the caller expects is not the stored one: the answer would carry the damaged record as `current`.
        const commit = store.commit({ key: 'env/b', expectedModRevision: 0, writeId: 'wb2', manifest: makeManifest('env/b', 'wb2'), assignVersion: true });
        expect(await codeOf(commit)).toBe('METADATA_CORRUPT');
        expect((await store.scan(null, 10)).map((m) => m.manifest.key)).toEqual(['env/a', 'env/c']);
        expect((await store.get('env/a'))?.manifest.key).toBe('env/a');
        const integrity = store.integrity();
        expect(integrity.corruptRecords).toBeGreaterThanOrEqual(3);
        expect(integrity.recent.some((s) => s.kind === 'manifest' && s.key === 'env/b')).toBe(true);
      });

      it("replaceCorruptManifest replaces a damaged record with a new version above every earlier one, and garbage collection's hold on it ends", async () => {
        const term = (await store.acquireLeadership('strata/healer', 'healer-a', 60_000))!;
        const first = await create(store, 'rb/k', '01A');
        const second = await create(store, 'rb/k', '01B', first.modRevision);
        await create(store, 'rb/other', '01C');
        await fx.tamper('manifest', 'rb/k');
        expect(await codeOf(store.get('rb/k'))).toBe('METADATA_CORRUPT');
        expect(store.integrity().recent.some((s) => s.kind === 'manifest' && s.key === 'rb/k')).toBe(true);

        const rebuilt = makeManifest('rb/k', '01B');
        const result = await store.replaceCorruptManifest({ key: 'rb/k', manifest: rebuilt, fence: term });
        if (!result.ok) throw new Error(`expected the repair to succeed, got ${JSON.stringify(result)}`);
        expect(Number(result.manifest.version)).toBeGreaterThan(Number(second.manifest.version));
        expect(Number(result.manifest.version)).toBeGreaterThan(Number((await store.get('rb/other'))!.manifest.version));
        expect(await store.get('rb/k')).toEqual({ manifest: { ...rebuilt, version: result.manifest.version }, modRevision: result.modRevision });
        expect(store.integrity().recent.some((s) => s.kind === 'manifest' && s.key === 'rb/k')).toBe(false);
        expect(await store.listKeys('rb/', null, 10)).toEqual(['rb/k', 'rb/other']);
        // Now intact: a second (late) repair is refused and changes nothing.
        const late = await store.replaceCorruptManifest({ key: 'rb/k', manifest: makeManifest('rb/k', '01A'), fence: term });
        expect(late).toMatchObject({ ok: false, reason: 'intact' });
        expect((await store.get('rb/k'))?.manifest.writeId).toBe('01B');
      });

      it('replaceCorruptManifest never overwrites an intact record, never creates one, and is fenced', async () => {
        const term = (await store.acquireLeadership('strata/healer', 'healer-a', 60_000))!;
        const live = await create(store, 'rb/intact', '01A');
        expect(await store.replaceCorruptManifest({ key: 'rb/intact', manifest: makeManifest('rb/intact', '01Z'), fence: term })).toMatchObject({ ok: false, reason: 'intact' });
        expect(await store.get('rb/intact')).toEqual({ manifest: live.manifest, modRevision: live.modRevision });
        expect(await store.replaceCorruptManifest({ key: 'rb/none', manifest: makeManifest('rb/none', '01A'), fence: term })).toMatchObject({ ok: false, reason: 'absent' });
        expect(await store.get('rb/none')).toBeNull();
        await create(store, 'rb/fenced', '01A');
        await fx.tamper('manifest', 'rb/fenced');
        const stranger = { name: 'strata/healer', holder: 'healer-b', term: term.term + 1 };
        expect(await store.replaceCorruptManifest({ key: 'rb/fenced', manifest: makeManifest('rb/fenced', '01A'), fence: stranger })).toMatchObject({ ok: false, reason: 'fenced' });
        expect(await codeOf(store.get('rb/fenced'))).toBe('METADATA_CORRUPT');
      });

      it('replaceCorruptManifest never brings back a deleted key, nor rolls a key back to an older write', async () => {
        const term = (await store.acquireLeadership('strata/healer', 'healer-a', 60_000))!;
        const live = await create(store, 'rb/deleted', '01A');
        await remove(store, 'rb/deleted', '01B', live.modRevision);
        await fx.tamper('manifest', 'rb/deleted');
        // The nodes still hold the blobs of 01A (a release that failed): a rebuild from them would resurrect it.
        const refused = await store.replaceCorruptManifest({ key: 'rb/deleted', manifest: makeManifest('rb/deleted', '01A'), fence: term });
        expect(refused).toMatchObject({ ok: false, reason: 'deleted' });
        expect(await codeOf(store.get('rb/deleted'))).toBe('METADATA_CORRUPT');
        expect(await store.listKeys('rb/', null, 10)).toEqual([]);

        await create(store, 'rb/newer', '01D');
        await fx.tamper('manifest', 'rb/newer');
        const older = await store.replaceCorruptManifest({ key: 'rb/newer', manifest: makeManifest('rb/newer', '01C'), fence: term });
        expect(older).toMatchObject({ ok: false, reason: 'newer' });
        expect(await codeOf(store.get('rb/newer'))).toBe('METADATA_CORRUPT');
      });

      it('a tampered abort record still keeps its write from committing, and expiry keeps it', async () => {
        expect(await store.abort({ key: 'env/k', writeId: 'w-aborted', expectedModRevision: 0, nowMs: 1_000 })).toBe(true);
        await fx.tamper('abort', 'w-aborted');
        const commit = () =>
          store.commit({ key: 'env/k', expectedModRevision: 0, writeId: 'w-aborted', manifest: makeManifest('env/k', 'w-aborted'), assignVersion: true });
        const refused = async () => {
          const outcome = await commit().then(
            (result) => result,
            (err: unknown) => (isStrataError(err) ? err.code : err),
          );
          expect(outcome === 'METADATA_CORRUPT' || (typeof outcome === 'object' && outcome !== null && 'ok' in outcome && !outcome.ok)).toBe(true);
        };
        await refused();
        await store.expireAbortRecords(Number.MAX_SAFE_INTEGER);
        await refused();
        expect(await store.get('env/k')).toBeNull();
      });

      it('a tampered idempotency record is refused with METADATA_CORRUPT, never replayed, and expiry keeps it', async () => {
        const response = { status: 201, body: { version: '7' }, headers: { etag: '"7"' } };
        const claim = (attemptId: string): IdempotencyClaim => ({
          token: 'env-token',
          fingerprint: 'fp',
          attemptId,
          leaseUntilMs: fx.clock.nowMs() + 60_000,
          expiresAtMs: fx.clock.nowMs() + 120_000,
        });
        expect(await store.reserveIdempotency(claim('a1'))).toBeNull();
        expect(await store.completeIdempotency(claim('a1'), response)).toBe(true);
        await fx.tamper('idempotency', 'env-token');
        expect(await codeOf(store.reserveIdempotency(claim('a2')))).toBe('METADATA_CORRUPT');
        await store.expireIdempotency(Number.MAX_SAFE_INTEGER);
        expect(await codeOf(store.reserveIdempotency(claim('a3')))).toBe('METADATA_CORRUPT');
        expect(store.integrity().recent.some((s) => s.kind === 'idempotency' && s.key === 'env-token')).toBe(true);
      });
    });
  });
}
