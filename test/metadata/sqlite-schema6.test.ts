/**
 * Schema 6 of the embedded metadata store (internal/metadata/README.md, "Schema"): binary manifests in
 * `manifests_v2`, the previous release's JSON rows read as they are until a commit rewrites them, one history
 * (`changes`) for both kinds of watch, and the record envelope over both tables.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import { newWriteId } from '../../internal/core/ids.js';
import type { Manifest, StoredManifest } from '../../internal/manifest/manifest.js';
import type { ManifestChange } from '../../internal/metadata/metadata-store.js';
import { SqliteMetadataStore } from '../../internal/metadata/sqlite-metadata-store.js';
import { manifestChecksumV2 } from '../../internal/metadata/sqlite-records.js';
import { makeManifest, makeTombstone } from '../helpers/manifest-fixture.js';

/** A strata.db written by release 823285a (schema 5, JSON manifests): test/fixtures/release-823285a/README.md. */
const SCHEMA5_FILE = join(__dirname, '..', 'fixtures', 'release-823285a', 'data', 'metadata', 'strata.db');

interface V1Row {
  key: string;
  manifest: string;
  mod_revision: number;
  deleted: number;
}

function v1Rows(path: string): V1Row[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT key, manifest, mod_revision, deleted FROM manifests').all() as (Omit<V1Row, 'key'> & { key: Buffer })[]).map(
      (r) => ({ ...r, key: r.key.toString('utf8') }),
    );
  } finally {
    db.close();
  }
}

function tables(path: string, key: string): { v1: number; v2: number } {
  const db = new Database(path, { readonly: true });
  try {
    const bytes = Buffer.from(key, 'utf8');
    const count = (table: string) => db.prepare(`SELECT count(*) FROM ${table} WHERE key = ?`).pluck().get(bytes) as number;
    return { v1: count('manifests'), v2: count('manifests_v2') };
  } finally {
    db.close();
  }
}

/** Runs `change` on the file with the store closed, as damage on disk would. */
function onFile<T>(path: string, change: (db: Database.Database) => T): T {
  const db = new Database(path);
  try {
    return change(db);
  } finally {
    db.close();
  }
}

function v2Row(db: Database.Database, key: string): { manifest: Buffer; mod_revision: number; deleted: number; checksum: Buffer } {
  return db.prepare('SELECT manifest, mod_revision, deleted, checksum FROM manifests_v2 WHERE key = ?').get(Buffer.from(key, 'utf8')) as never;
}

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  return promise.then(
    () => null,
    (e: unknown) => (isStrataError(e) ? e.code : String(e)),
  );
}

/** Bytes 0-1 of a binary manifest: format 2, then flags whose 0x01 marks the escape (JSON) form. */
const ESCAPE_FLAG = 0x01;

/**
 * A manifest the codec's compact form carries (a ULID write id, derived blob ids) on the given nodes, so that its
 * row uses node numbers and a hot-field set from the dictionary.
 */
function compactManifest(key: string, nodes: readonly string[], hotFields: string[] = ['name', 'email']): Manifest {
  const writeId = newWriteId(Date.parse('2024-01-01T00:00:00.000Z'));
  const base = makeManifest(key, writeId, { hotFields });
  return { ...base, hot: base.hot.map((ref, i) => ({ ...ref, node: nodes[i]! })) };
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

describe('SqliteMetadataStore schema 6', () => {
  let dir: string;
  let path: string;
  const open: SqliteMetadataStore[] = [];

  async function openStore(): Promise<SqliteMetadataStore> {
    const store = await SqliteMetadataStore.open({ path });
    open.push(store);
    return store;
  }
  async function closeAll(): Promise<void> {
    for (const store of open.splice(0)) await store.close();
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-schema6-'));
    path = join(dir, 'strata.db');
  });
  afterEach(async () => {
    await closeAll();
    await rm(dir, { recursive: true, force: true });
  });

  describe('a schema-5 file of the previous release', () => {
    beforeEach(async () => {
      await copyFile(SCHEMA5_FILE, path);
    });

    it('opens as version 6 and reads back every manifest exactly, from the v1 table it leaves in place', async () => {
      const before = v1Rows(path);
      expect(before.length).toBeGreaterThan(5);
      const store = await openStore();
      for (const row of before) {
        expect(await store.get(row.key)).toEqual({ manifest: JSON.parse(row.manifest) as Manifest, modRevision: row.mod_revision });
      }
      expect(await store.currentRevision()).toBe(Math.max(...before.map((r) => r.mod_revision)));
      await closeAll();
      const db = new Database(path, { readonly: true });
      expect(db.pragma('user_version', { simple: true })).toBe(6);
      db.close();
      expect(v1Rows(path)).toEqual(before);
    });

    it('moves a key to manifests_v2 when a commit rewrites it, and the v1 row is gone in the same transaction', async () => {
      const old = v1Rows(path).find((r) => r.deleted === 0)!;
      const store = await openStore();
      const current = (await store.get(old.key))!;
      const next = makeManifest(old.key, 'w-rewrite');
      const result = await store.commit({ key: old.key, expectedModRevision: current.modRevision, writeId: 'w-rewrite', manifest: next, assignVersion: true });
      expect(result.ok).toBe(true);
      expect(tables(path, old.key)).toEqual({ v1: 0, v2: 1 });
      const revision = await store.currentRevision();
      expect(await store.get(old.key)).toEqual({ manifest: { ...next, version: String(revision) }, modRevision: revision });
      await closeAll();
      const reopened = await openStore();
      expect(await reopened.get(old.key)).toEqual({ manifest: { ...next, version: String(revision) }, modRevision: revision });
    });

    it('lists and scans v1 and v2 rows merged in key byte order, each key once, across pages', async () => {
      const old = v1Rows(path);
      const store = await openStore();
      // New keys between, before and after the old ones, and an old one rewritten (its row moves to v2).
      for (const key of ['fixture/a', 'fixture/ec-2', 'fixture/zz', 'other', 'fixture/ключ']) {
        expect((await store.commit({ key, expectedModRevision: 0, writeId: `w-${key}`, manifest: makeManifest(key, `w-${key}`), assignVersion: true })).ok).toBe(true);
      }
      const rewritten = old.find((r) => r.deleted === 0)!;
      await store.commit({
        key: rewritten.key,
        expectedModRevision: rewritten.mod_revision,
        writeId: 'w-again',
        manifest: makeManifest(rewritten.key, 'w-again'),
        assignVersion: true,
      });
      const live = [...old.filter((r) => r.deleted === 0).map((r) => r.key), 'fixture/a', 'fixture/ec-2', 'fixture/zz', 'fixture/ключ'].sort(byteOrder);
      expect(await store.listKeys('fixture/', null, 1000)).toEqual(live);
      for (const pageSize of [1, 2, 3]) {
        const paged: string[] = [];
        for (let after: string | null = null; ; ) {
          const page = await store.listKeys('fixture/', after, pageSize);
          paged.push(...page);
          if (page.length < pageSize) break;
          after = page[page.length - 1]!;
        }
        expect(paged).toEqual(live);
      }
      const every = [...old.map((r) => r.key), 'fixture/a', 'fixture/ec-2', 'fixture/zz', 'fixture/ключ', 'other'].sort(byteOrder);
      const scanned: StoredManifest[] = [];
      for (let after: string | null = null; ; ) {
        const page = await store.scan(after, 4);
        scanned.push(...page);
        if (page.length < 4) break;
        after = page[page.length - 1]!.manifest.key;
      }
      expect(scanned.map((s) => s.manifest.key)).toEqual(every);
      expect(scanned.find((s) => s.manifest.key === rewritten.key)!.manifest.writeId).toBe('w-again');
    });

    it('watches report every put, delete, healer update and purge after a revision, on v1 rows and v2 rows alike', async () => {
      const old = v1Rows(path);
      const live = old.filter((r) => r.deleted === 0);
      const tombstone = old.find((r) => r.deleted === 1)!;
      const store = await openStore();
      const from = await store.currentRevision();

      const history: ManifestChange[] = [];
      const migrated: ManifestChange[] = [];
      await store.watchChanges('', 0, { onChange: (c) => migrated.push(c), onEnd: () => undefined });
      await store.watchChanges('', from, { onChange: (c) => history.push(c), onEnd: () => undefined });
      const seen: { key: string; stored: StoredManifest | null; revision: number }[] = [];
      let delivered = from;
      await store.watchManifests(from, {
        onChange: (key, stored, revision) => seen.push({ key, stored, revision }),
        onRevision: (revision) => {
          delivered = revision;
        },
        onReset: () => undefined,
      });

      const [rewrite, remove, heal] = [live[0]!, live[1]!, live[2]!];
      const put = await store.commit({ key: rewrite.key, expectedModRevision: rewrite.mod_revision, writeId: 'w-put', manifest: makeManifest(rewrite.key, 'w-put'), assignVersion: true });
      const del = await store.commit({ key: remove.key, expectedModRevision: remove.mod_revision, writeId: 'w-del', manifest: makeTombstone(remove.key, 'w-del'), assignVersion: true });
      const healed: Manifest = { ...(JSON.parse(heal.manifest) as Manifest), dirty: false };
      const upd = await store.commit({ key: heal.key, expectedModRevision: heal.mod_revision, writeId: healed.writeId, manifest: healed, assignVersion: false });
      expect(await store.purgeTombstone(tombstone.key, tombstone.mod_revision)).toBe(true);
      const created = await store.commit({ key: 'fixture/new', expectedModRevision: 0, writeId: 'w-new', manifest: makeManifest('fixture/new', 'w-new'), assignVersion: true });
      const again = await store.commit({
        key: 'fixture/new',
        expectedModRevision: created.ok ? created.modRevision : -1,
        writeId: 'w-new2',
        manifest: makeManifest('fixture/new', 'w-new2'),
        assignVersion: true,
      });
      expect([put, del, upd, created, again].every((r) => r.ok)).toBe(true);
      const end = await store.currentRevision();
      expect(end).toBe(from + 6);

      await expect.poll(() => delivered, { timeout: 30_000 }).toBe(end);
      expect(seen.map((s) => [s.key, s.revision, s.stored?.manifest.writeId ?? null, s.stored?.manifest.deleted ?? null])).toEqual([
        [rewrite.key, from + 1, 'w-put', false],
        [remove.key, from + 2, 'w-del', true],
        [heal.key, from + 3, healed.writeId, false],
        [tombstone.key, from + 4, null, null],
        ['fixture/new', from + 5, 'w-new', false],
        ['fixture/new', from + 6, 'w-new2', false],
      ]);
      // The healer's update kept the version; the history GET /watch replays leaves it (and the purge) out.
      expect(seen[2]!.stored!.manifest.version).toBe(healed.version);
      await expect.poll(() => history.length, { timeout: 30_000 }).toBe(4);
      expect(history).toEqual([
        { key: rewrite.key, revision: from + 1, kind: 'put' },
        { key: remove.key, revision: from + 2, kind: 'delete' },
        { key: 'fixture/new', revision: from + 5, kind: 'put' },
        { key: 'fixture/new', revision: from + 6, kind: 'put' },
      ]);
      // The previous release's history (text kinds) reads on in the new table, in order, with the new entries after it.
      await expect.poll(() => migrated.length, { timeout: 30_000 }).toBe(from + 4);
      expect(migrated.slice(0, from).every((c, i) => c.revision === i + 1)).toBe(true);
      expect(migrated.find((c) => c.key === tombstone.key && c.kind === 'delete')?.revision).toBe(tombstone.mod_revision);
      expect(migrated.slice(from)).toEqual(history);
    });

    it('resets a manifest watch from before the upgrade: healer updates and purges were not recorded then', async () => {
      const store = await openStore();
      const from = await store.currentRevision();
      let reset: string | null = null;
      await store.watchManifests(from - 1, {
        onChange: () => undefined,
        onRevision: () => undefined,
        onReset: (reason) => {
          reset = reason;
        },
      });
      await expect.poll(() => reset, { timeout: 30_000 }).toMatch(/no longer kept/);
    });
  });

  describe('integrity of binary rows', () => {
    async function seeded(keys: string[]): Promise<void> {
      const store = await openStore();
      for (const key of keys) {
        const manifest = compactManifest(key, ['node-0', 'node-1', 'node-2']);
        expect((await store.commit({ key, expectedModRevision: 0, writeId: manifest.writeId, manifest, assignVersion: true })).ok).toBe(true);
      }
      await closeAll();
    }

    it('a flipped bit anywhere in a v2 manifest is METADATA_CORRUPT, and the manifest is never served', async () => {
      await seeded(['a']);
      const store = await openStore();
      const intact = (await store.get('a'))!;
      const writer = new Database(path);
      try {
        const row = v2Row(writer, 'a');
        const put = writer.prepare('UPDATE manifests_v2 SET manifest = ? WHERE key = ?');
        for (let at = 0; at < row.manifest.length; at++) {
          for (const bit of [0x01, 0x80]) {
            const flipped = Buffer.from(row.manifest);
            flipped[at] = flipped[at]! ^ bit;
            put.run(flipped, Buffer.from('a'));
            expect(await codeOf(store.get('a')), `byte ${at} bit ${bit}`).toBe('METADATA_CORRUPT');
          }
        }
        put.run(row.manifest, Buffer.from('a'));
      } finally {
        writer.close();
      }
      expect(await store.get('a')).toEqual(intact);
    });

    it('a damaged v2 row is METADATA_CORRUPT for get, list and commit, skipped by scan, and other keys read on', async () => {
      await seeded(['a', 'b']);
      onFile(path, (db) => {
        const row = v2Row(db, 'a');
        const flipped = Buffer.from(row.manifest);
        const at = flipped.length >> 1;
        flipped[at] = flipped[at]! ^ 0x01;
        db.prepare('UPDATE manifests_v2 SET manifest = ? WHERE key = ?').run(flipped, Buffer.from('a'));
      });
      const store = await openStore();
      expect(await codeOf(store.get('a'))).toBe('METADATA_CORRUPT');
      expect(await codeOf(store.listKeys('', null, 10))).toBe('METADATA_CORRUPT');
      expect((await store.scan(null, 10)).map((s) => s.manifest.key)).toEqual(['b']);
      expect(await codeOf(store.commit({ key: 'a', expectedModRevision: 1, writeId: 'w2', manifest: makeManifest('a', 'w2'), assignVersion: true }))).toBe(
        'METADATA_CORRUPT',
      );
      expect(store.integrity().corruptRecords).toBeGreaterThanOrEqual(1);
      expect((await store.get('b'))?.manifest.key).toBe('b');
    });

    it('a damaged mod_revision or deleted flag of a v2 row is METADATA_CORRUPT, as the envelope covers them', async () => {
      await seeded(['a', 'b']);
      onFile(path, (db) => {
        db.prepare('UPDATE manifests_v2 SET mod_revision = mod_revision + 100 WHERE key = ?').run(Buffer.from('a'));
        db.prepare('UPDATE manifests_v2 SET deleted = 1 WHERE key = ?').run(Buffer.from('b'));
      });
      const store = await openStore();
      expect(await codeOf(store.get('a'))).toBe('METADATA_CORRUPT');
      expect(await codeOf(store.get('b'))).toBe('METADATA_CORRUPT');
    });

    it('a v2 row copied under another key is refused for that key', async () => {
      await seeded(['a', 'b']);
      onFile(path, (db) => {
        const row = v2Row(db, 'a');
        db.prepare('UPDATE manifests_v2 SET manifest = ?, mod_revision = ?, deleted = ?, checksum = ? WHERE key = ?').run(
          row.manifest,
          row.mod_revision,
          row.deleted,
          row.checksum,
          Buffer.from('b'),
        );
      });
      const store = await openStore();
      expect(await codeOf(store.get('b'))).toBe('METADATA_CORRUPT');
      expect((await store.get('a'))?.manifest.key).toBe('a');
    });

    it('a v2 row whose key bytes were damaged names the key it belongs to, so that key is held as damaged too', async () => {
      await seeded(['mk:a1', 'mk:a3']);
      onFile(path, (db) => {
        expect(db.prepare('UPDATE manifests_v2 SET key = ? WHERE key = ?').run(Buffer.from('mk:a2'), Buffer.from('mk:a1')).changes).toBe(1);
      });
      const store = await openStore();
      const error = await store.get('mk:a2').then(
        () => null,
        (e: unknown) => e,
      );
      expect(isStrataError(error) ? [error.code, error.details?.['ownKey']] : error).toEqual(['METADATA_CORRUPT', 'mk:a1']);
      expect(store.integrity().recent.find((s) => s.key === 'mk:a2')?.ownKey).toBe('mk:a1');
      expect(await store.get('mk:a1')).toBeNull();
      expect((await store.get('mk:a3'))?.manifest.key).toBe('mk:a3');
    });

    it('a v2 manifest of an unknown format is FORMAT_UNSUPPORTED, not corrupt, and no repair replaces it', async () => {
      await seeded(['a', 'b']);
      onFile(path, (db) => {
        const row = v2Row(db, 'a');
        const newer = Buffer.from(row.manifest);
        newer[0] = 0x7e;
        db.prepare('UPDATE manifests_v2 SET manifest = ?, checksum = ? WHERE key = ?').run(
          newer,
          manifestChecksumV2('a', newer, row.mod_revision, row.deleted),
          Buffer.from('a'),
        );
      });
      const store = await openStore();
      expect(await codeOf(store.get('a'))).toBe('FORMAT_UNSUPPORTED');
      expect(store.integrity().corruptRecords).toBe(0);
      const term = (await store.acquireLeadership('healer', 'h', 60_000))!;
      expect(await codeOf(store.replaceCorruptManifest({ key: 'a', manifest: makeManifest('a', 'w-z'), fence: term }))).toBe('FORMAT_UNSUPPORTED');
      // A commit or an abort at the row's own revision must not overwrite what a newer release wrote either.
      const revision = onFile(path, (db) => v2Row(db, 'a').mod_revision);
      expect(await codeOf(store.commit({ key: 'a', expectedModRevision: revision, writeId: 'w-y', manifest: makeManifest('a', 'w-y'), assignVersion: true }))).toBe('FORMAT_UNSUPPORTED');
      expect(await codeOf(store.abort({ key: 'a', writeId: 'w-x', expectedModRevision: revision, nowMs: 0 }))).toBe('FORMAT_UNSUPPORTED');
      expect(await codeOf(store.get('a'))).toBe('FORMAT_UNSUPPORTED');
    });

    it('a commit over a row whose checksum fails is METADATA_CORRUPT at any expected revision, and the row stays', async () => {
      await seeded(['a']);
      const revision = onFile(path, (db) => {
        const row = v2Row(db, 'a');
        const damaged = Buffer.from(row.manifest);
        damaged[damaged.length - 1]! ^= 0x01;
        db.prepare('UPDATE manifests_v2 SET manifest = ? WHERE key = ?').run(damaged, Buffer.from('a'));
        return row.mod_revision;
      });
      const store = await openStore();
      for (const expected of [revision, 0]) {
        expect(await codeOf(store.commit({ key: 'a', expectedModRevision: expected, writeId: 'w-y', manifest: makeManifest('a', 'w-y'), assignVersion: true }))).toBe('METADATA_CORRUPT');
      }
      expect(onFile(path, (db) => v2Row(db, 'a').mod_revision)).toBe(revision);
    });

    it('replaceCorruptManifest repairs a damaged v2 row, but not one whose damaged bytes still read as a tombstone', async () => {
      await seeded(['a']);
      const store0 = await openStore();
      const tomb = await store0.commit({ key: 't', expectedModRevision: 0, writeId: 'w-t', manifest: makeTombstone('t', 'w-t'), assignVersion: true });
      expect(tomb.ok).toBe(true);
      await closeAll();
      onFile(path, (db) => {
        for (const key of ['a', 't']) db.prepare('UPDATE manifests_v2 SET checksum = zeroblob(8) WHERE key = ?').run(Buffer.from(key));
        // 't' loses its deleted flag as well: only the damaged bytes and the history still say it was deleted.
        db.prepare('UPDATE manifests_v2 SET deleted = 0 WHERE key = ?').run(Buffer.from('t'));
      });
      const store = await openStore();
      const term = (await store.acquireLeadership('healer', 'h', 60_000))!;
      const repaired = await store.replaceCorruptManifest({ key: 'a', manifest: makeManifest('a', 'w-a'), fence: term });
      expect(repaired.ok).toBe(true);
      expect((await store.get('a'))?.manifest.writeId).toBe('w-a');
      const refused = await store.replaceCorruptManifest({ key: 't', manifest: makeManifest('t', 'w-0'), fence: term });
      expect(refused).toMatchObject({ ok: false, reason: 'deleted' });
    });
  });

  describe('the manifest dictionary', () => {
    it('keeps node numbers apart when an operation that assigned one rolls back in the same batch', async () => {
      const store = await openStore();
      const commitOn = (key: string, nodes: string[], hotFields: string[], poison = false) => {
        const manifest = compactManifest(key, nodes, hotFields);
        // The BigInt makes the commit fail after its dictionary entries were assigned in the batch (the escape form,
        // JSON, cannot hold it), so the batch rolls them back.
        const stored = poison ? ({ ...manifest, size: 1n } as unknown as Manifest) : manifest;
        return store.commit({ key, expectedModRevision: 0, writeId: manifest.writeId, manifest: stored, assignVersion: true });
      };
      const [bad, good] = await Promise.allSettled([
        commitOn('bad', ['gone-1', 'gone-2', 'gone-3'], ['gone'], true),
        commitOn('good', ['kept-1', 'kept-2', 'kept-3'], ['kept']),
      ]);
      expect(bad.status).toBe('rejected');
      expect(good.status === 'fulfilled' && good.value.ok).toBe(true);
      const later = await commitOn('later', ['gone-1', 'kept-2', 'new-9'], ['kept', 'new']);
      expect(later.ok).toBe(true);
      const nodesOf = async (s: SqliteMetadataStore, key: string) => (await s.get(key))!.manifest.hot.map((r) => r.node);
      expect(await nodesOf(store, 'good')).toEqual(['kept-1', 'kept-2', 'kept-3']);
      expect(await nodesOf(store, 'later')).toEqual(['gone-1', 'kept-2', 'new-9']);
      expect((await store.get('later'))!.manifest.hotFields).toEqual(['kept', 'new']);
      await closeAll();
      onFile(path, (db) => {
        for (const key of ['good', 'later']) expect(v2Row(db, key).manifest[1]! & ESCAPE_FLAG).toBe(0);
      });
      const reopened = await openStore();
      expect(await nodesOf(reopened, 'good')).toEqual(['kept-1', 'kept-2', 'kept-3']);
      expect(await nodesOf(reopened, 'later')).toEqual(['gone-1', 'kept-2', 'new-9']);
      expect(await reopened.get('bad')).toBeNull();
    });

    it('two processes on one file assign distinct numbers and each reads the other manifests exactly', async () => {
      const one = await openStore();
      const two = await openStore();
      const withNode = (key: string, node: string) => compactManifest(key, [node, node, node], [`f-${node}`]);
      const written = new Map<string, Manifest>();
      for (let i = 0; i < 4; i++) {
        for (const [store, name] of [
          [one, 'one'],
          [two, 'two'],
        ] as const) {
          const key = `${name}-${i}`;
          const manifest = withNode(key, `${name}-node-${i}`);
          const result = await store.commit({ key, expectedModRevision: 0, writeId: manifest.writeId, manifest, assignVersion: true });
          expect(result.ok).toBe(true);
          if (result.ok) written.set(key, result.manifest);
        }
      }
      for (const store of [one, two]) {
        for (const [key, manifest] of written) expect((await store.get(key))?.manifest).toEqual(manifest);
      }
      onFile(path, (db) => {
        const numbers = db.prepare('SELECT number, name FROM node_numbers ORDER BY number').all() as { number: number; name: string }[];
        expect(new Set(numbers.map((n) => n.name)).size).toBe(numbers.length);
        expect(numbers.map((n) => n.number)).toEqual(numbers.map((_, i) => i + 1));
        expect(numbers.length).toBe(8);
        for (const key of written.keys()) expect(v2Row(db, key).manifest[1]! & ESCAPE_FLAG).toBe(0);
      });
    });

    it('a damaged dictionary entry makes the manifests that use it METADATA_CORRUPT, never another node name', async () => {
      const store = await openStore();
      const manifest = compactManifest('a', ['node-0', 'node-1', 'node-2']);
      expect((await store.commit({ key: 'a', expectedModRevision: 0, writeId: manifest.writeId, manifest, assignVersion: true })).ok).toBe(true);
      await closeAll();
      onFile(path, (db) => {
        expect(v2Row(db, 'a').manifest[1]! & ESCAPE_FLAG).toBe(0);
        expect(db.prepare("UPDATE node_numbers SET name = 'node-9' WHERE name = 'node-1'").run().changes).toBe(1);
      });
      const reopened = await openStore();
      expect(await codeOf(reopened.get('a'))).toBe('METADATA_CORRUPT');
    });
  });
});
