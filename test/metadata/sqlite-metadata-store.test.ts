import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import type { Manifest } from '../../internal/manifest/manifest.js';
import { SqliteMetadataStore } from '../../internal/metadata/sqlite-metadata-store.js';
import { runMetadataStoreContract, type MetadataStoreFixture } from '../contracts/metadata-store.contract.js';
import { makeManifest } from '../helpers/manifest-fixture.js';
import { ManualClock } from '../helpers/manual-clock.js';

async function tempPath(): Promise<{ dir: string; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-metadata-'));
  return { dir, path: join(dir, 'metadata.sqlite') };
}

runMetadataStoreContract('SqliteMetadataStore', async () => {
  const { dir, path } = await tempPath();
  const clock = new ManualClock();
  const others: SqliteMetadataStore[] = [];
  const fx: MetadataStoreFixture = {
    store: await SqliteMetadataStore.open({ path, clock }),
    clock,
    async reopen() {
      await fx.store.close();
      fx.store = await SqliteMetadataStore.open({ path, clock });
      return fx.store;
    },
    async openAnother() {
      const another = await SqliteMetadataStore.open({ path, clock });
      others.push(another);
      return another;
    },
    async cleanup() {
      for (const other of others) await other.close();
      await fx.store.close();
      await rm(dir, { recursive: true, force: true });
    },
    compactHistory: (revision) => (fx.store as SqliteMetadataStore).compactHistory(revision),
    async tamper(kind, name) {
      const db = new Database(path);
      try {
        const changed =
          kind === 'cluster-identity'
            ? db.prepare("UPDATE cluster_identity SET record = record || ' ' WHERE name = ?").run(name)
            : kind === 'manifest'
            ? tamperManifestRow(db, Buffer.from(name, 'utf8'))
            : kind === 'abort'
              ? db.prepare('UPDATE abort_records SET created_ms = created_ms - 1 WHERE write_id = ?').run(name)
              : db.prepare("UPDATE idempotency SET fingerprint = fingerprint || 'x' WHERE token = ?").run(name);
        expect(changed.changes).toBe(1);
      } finally {
        db.close();
      }
    },
  };
  return fx;
});

/** One more byte at the end of the key's manifest, in whichever table holds its row (v2 binary, or v1 JSON). */
function tamperManifestRow(db: Database.Database, key: Buffer): { changes: number } {
  const binary = db.prepare<[Buffer], Buffer>('SELECT manifest FROM manifests_v2 WHERE key = ?').pluck().get(key);
  if (binary !== undefined) {
    return db.prepare('UPDATE manifests_v2 SET manifest = ? WHERE key = ?').run(Buffer.concat([binary, Buffer.from([0x20])]), key);
  }
  return db.prepare("UPDATE manifests SET manifest = manifest || ' ' WHERE key = ?").run(key);
}

function commitNew(store: SqliteMetadataStore, key: string, writeId: string, manifest?: Manifest) {
  return store.commit({
    key,
    expectedModRevision: 0,
    writeId,
    manifest: manifest ?? makeManifest(key, writeId),
    assignVersion: true,
  });
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isStrataError(err) ? err.code : err).toBe(code);
}

describe('SqliteMetadataStore', () => {
  let dir: string;
  let path: string;
  let store: SqliteMetadataStore;

  beforeEach(async () => {
    ({ dir, path } = await tempPath());
    store = await SqliteMetadataStore.open({ path });
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('group-commits 200 concurrent commits in far fewer transactions', async () => {
    const before = store.stats();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => commitNew(store, `k${i}`, `w${i}`)));
    expect(results.every((r) => r.ok)).toBe(true);
    const after = store.stats();
    expect(after.operations - before.operations).toBe(200);
    expect(after.batches - before.batches).toBeLessThanOrEqual(5);
  });

  it('splits a queue longer than batchOpsMax into several transactions', async () => {
    const small = await SqliteMetadataStore.open({ path: join(dir, 'small.sqlite'), batchOpsMax: 10 });
    try {
      await Promise.all(Array.from({ length: 95 }, (_, i) => commitNew(small, `k${i}`, `w${i}`)));
      expect(small.stats()).toEqual({ batches: 10, operations: 95 });
    } finally {
      await small.close();
    }
  });

  it('a commit that fails inside a batch undoes only its own changes', async () => {
    const before = await store.currentRevision();
    // A BigInt cannot be serialized: the commit fails after it has bumped the revision inside the transaction.
    const poisoned = { ...makeManifest('bad', 'w2'), size: 1n } as unknown as Manifest;
    const [a, bad, c] = await Promise.allSettled([
      commitNew(store, 'a', 'w1'),
      commitNew(store, 'bad', 'w2', poisoned),
      commitNew(store, 'c', 'w3'),
    ]);
    expect(a.status).toBe('fulfilled');
    expect(bad.status).toBe('rejected');
    expect(c.status).toBe('fulfilled');
    expect(await store.get('bad')).toBeNull();
    expect(await store.currentRevision()).toBe(before + 2);
    expect((await store.get('a'))?.manifest.version).toBe(String(before + 1));
    expect((await store.get('c'))?.manifest.version).toBe(String(before + 2));
  });

  it('close applies the queued commits first', async () => {
    const pending = commitNew(store, 'queued', 'w1');
    await store.close();
    expect((await pending).ok).toBe(true);
    store = await SqliteMetadataStore.open({ path });
    expect((await store.get('queued'))?.manifest.writeId).toBe('w1');
  });

  it('a closed store fails every call with METADATA_UNAVAILABLE', async () => {
    await store.close();
    await expectCode(store.get('k'), 'METADATA_UNAVAILABLE');
    await expectCode(commitNew(store, 'k', 'w1'), 'METADATA_UNAVAILABLE');
    await expectCode(store.listKeys('', null, 10), 'METADATA_UNAVAILABLE');
    await expectCode(store.currentRevision(), 'METADATA_UNAVAILABLE');
    await expectCode(store.acquireLeadership('healer', 'A', 1_000), 'METADATA_UNAVAILABLE');
    await store.close();
  });

  it('an unopenable path fails with METADATA_UNAVAILABLE', async () => {
    await expectCode(SqliteMetadataStore.open({ path: dir }), 'METADATA_UNAVAILABLE');
  });

  it('a file written by a newer schema is refused with METADATA_UNAVAILABLE', async () => {
    const newer = join(dir, 'newer.sqlite');
    const db = new Database(newer);
    db.pragma('user_version = 99');
    db.close();
    await expectCode(SqliteMetadataStore.open({ path: newer }), 'METADATA_UNAVAILABLE');
  });

  it('upgrades a version-3 file in place: its idempotency records keep their outcomes and old pending ones can be taken over', async () => {
    const old = join(dir, 'v3.sqlite');
    const db = new Database(old);
    db.exec(`CREATE TABLE idempotency (token TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('pending', 'done')), response TEXT, expires_ms INTEGER NOT NULL)`);
    const far = Date.now() + 3_600_000;
    db.prepare("INSERT INTO idempotency VALUES ('done', 'fp', 'done', ?, ?)").run(JSON.stringify({ status: 200, body: {}, headers: {} }), far);
    db.prepare("INSERT INTO idempotency VALUES ('stuck', 'fp', 'pending', NULL, ?)").run(far);
    db.pragma('user_version = 3');
    db.close();
    const upgraded = await SqliteMetadataStore.open({ path: old });
    try {
      const claim = (token: string) => ({ token, fingerprint: 'fp', attemptId: `a-${token}`, leaseUntilMs: far, expiresAtMs: far });
      expect(await upgraded.reserveIdempotency(claim('done'))).toEqual({
        state: 'done',
        fingerprint: 'fp',
        response: { status: 200, body: {}, headers: {} },
        version: null,
      });
      // Reserved before leases existed: nothing can tell whether its attempt lives, and it can no longer commit.
      expect(await upgraded.reserveIdempotency(claim('stuck'))).toBeNull();
      expect(await upgraded.reserveIdempotency({ ...claim('stuck'), attemptId: 'other' })).toEqual({ state: 'pending', fingerprint: 'fp', leaseUntilMs: far });
    } finally {
      await upgraded.close();
    }
    const check = new Database(old);
    expect(check.pragma('user_version', { simple: true })).toBe(6);
    check.close();
  });

  it('two connections on one file share the revision counter', async () => {
    const other = await SqliteMetadataStore.open({ path });
    try {
      const a = await commitNew(store, 'a', 'w1');
      const b = await commitNew(other, 'b', 'w2');
      const c = await commitNew(store, 'c', 'w3');
      const revisions = [a, b, c].map((r) => (r.ok ? r.modRevision : -1));
      expect(revisions[1]).toBeGreaterThan(revisions[0] as number);
      expect(revisions[2]).toBeGreaterThan(revisions[1] as number);
      expect(await store.listKeys('', null, 10)).toEqual(['a', 'b', 'c']);
    } finally {
      await other.close();
    }
  });
});
