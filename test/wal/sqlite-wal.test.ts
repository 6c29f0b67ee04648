import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import { newWriteId } from '../../internal/core/ids.js';
import { SqliteWriteAheadLog } from '../../internal/wal/sqlite-wal.js';
import { sealWalRecord } from '../../internal/wal/wal-record-envelope.js';
import type { WalRecord } from '../../internal/wal/write-ahead-log.js';
import { runWriteAheadLogContract, type WriteAheadLogFixture } from '../contracts/write-ahead-log.contract.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';

async function tempPath(): Promise<{ dir: string; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-wal-'));
  return { dir, path: join(dir, 'wal.sqlite') };
}

for (const thread of ['caller', 'worker'] as const) {
  runWriteAheadLogContract(`SqliteWriteAheadLog (${thread} thread)`, async () => {
    const { dir, path } = await tempPath();
    const fx: WriteAheadLogFixture = {
      wal: await SqliteWriteAheadLog.open({ path, thread }),
      async reopen() {
        await fx.wal.close();
        fx.wal = await SqliteWriteAheadLog.open({ path, thread });
        return fx.wal;
      },
      async cleanup() {
        await fx.wal.close();
        await rm(dir, { recursive: true, force: true });
      },
      async storeRaw(key, value) {
        const db = new Database(path);
        try {
          db.prepare('INSERT INTO wal_entries (key, record) VALUES (?, ?)').run(key, value);
        } finally {
          db.close();
        }
      },
    };
    return fx;
  });
}

function outcome(writeId: string): WalRecord {
  return { type: 'outcome', key: 'k', writeId, outcome: 'committed', atMs: 0 };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isStrataError(err) ? err.code : err).toBe(code);
}

/** Retries `check` until it passes (or fails with its last error after the generous CONDITION_TIMEOUT_MS). */
async function eventually(check: () => void | Promise<void>): Promise<void> {
  await vi.waitFor(check, { timeout: CONDITION_TIMEOUT_MS, interval: 10 });
}

describe.each(['caller', 'worker'] as const)('SqliteWriteAheadLog (%s thread)', (thread) => {
  let dir: string;
  let path: string;
  let wal: SqliteWriteAheadLog;

  beforeEach(async () => {
    ({ dir, path } = await tempPath());
    wal = await SqliteWriteAheadLog.open({ thread, path, retentionChunkEntries: 10, pollIntervalMs: 20 });
  });
  afterEach(async () => {
    await wal.close();
    await rm(dir, { recursive: true, force: true });
  });

  function retainedEntries(): number {
    const db = new Database(path, { readonly: true });
    try {
      return db.prepare('SELECT count(*) FROM wal_entries').pluck().get() as number;
    } finally {
      db.close();
    }
  }

  it('group-commits 200 concurrent appends in far fewer transactions', async () => {
    const before = await wal.stats();
    await Promise.all(Array.from({ length: 200 }, (_, i) => wal.append(outcome(`w${i}`))));
    const after = await wal.stats();
    expect(after.operations - before.operations).toBe(200);
    // On the caller's thread all 200 are queued before the first transaction starts. A worker receives them while
    // its first transactions are syncing, so how many arrive per transaction depends on the machine's load; one
    // transaction per append (no group commit) would still be 200.
    expect(after.batches - before.batches).toBeLessThanOrEqual(thread === 'caller' ? 5 : 20);
  });

  it('deletes only entries that every group has committed, in chunks, and never reuses offsets', async () => {
    const g1 = await wal.consumer('g1');
    const g2 = await wal.consumer('g2');
    for (let i = 0; i < 35; i++) await wal.append(outcome(`w${i}`));
    const all = await g1.poll(100, 0);
    expect(all).toHaveLength(35);
    const offsetOf = (i: number) => all[i]?.position.offset ?? -1;

    await g1.commit({ partition: 0, offset: offsetOf(34) });
    // The commit scheduled a retention step behind it on the log's one write queue; a second commit queues behind
    // that step, so once it is done the step has run (and must have deleted nothing).
    await g1.commit({ partition: 0, offset: offsetOf(34) });
    expect(retainedEntries()).toBe(35); // g2 has committed nothing yet

    await g2.commit({ partition: 0, offset: offsetOf(19) });
    await eventually(() => expect(retainedEntries()).toBe(15));
    const g2Resumed = await wal.consumer('g2');
    expect((await g2Resumed.poll(100, 0)).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(
      Array.from({ length: 15 }, (_, i) => `w${i + 20}`),
    );

    await g2.commit({ partition: 0, offset: offsetOf(34) });
    await eventually(() => expect(retainedEntries()).toBe(0));
    await wal.append(outcome('after'));
    const [next] = await g1.poll(10, 1_000);
    expect(next?.record?.writeId).toBe('after');
    expect(next?.position.offset).toBeGreaterThan(offsetOf(34));
  });

  it('returns the pages of deleted entries to the file system instead of keeping the backlog high-water mark', async () => {
    const g = await wal.consumer('g');
    const big = (i: number): WalRecord => ({ ...outcome(`w${i}`), key: `k${i}-${'x'.repeat(900)}` });
    await Promise.all(Array.from({ length: 400 }, (_, i) => wal.append(big(i))));
    const peak = (await wal.pageStats()).pages;
    expect(peak).toBeGreaterThan(100); // 400 entries of about 1 KB
    const entries = await g.poll(1_000, 0);
    await g.commit(entries[entries.length - 1]!.position);
    await eventually(() => expect(retainedEntries()).toBe(0));
    await eventually(async () => expect(await wal.pageStats()).toEqual({ pages: expect.any(Number), freePages: 0, returnsFreePages: true }));
    expect((await wal.pageStats()).pages).toBeLessThan(10);
    await wal.append(outcome('after'));
    expect((await g.poll(10, 0)).map((e) => e.record?.writeId)).toEqual(['after']);
  });

  it('converts a file that kept its free pages (written by an earlier release) at open, keeping its entries', async () => {
    await wal.close();
    await rm(dir, { recursive: true, force: true });
    ({ dir, path } = await tempPath());
    const old = new Database(path);
    try {
      old.pragma('journal_mode = WAL');
      old.exec(`CREATE TABLE wal_entries (entry_offset INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, record TEXT NOT NULL);
        CREATE TABLE wal_groups (name TEXT PRIMARY KEY, committed_offset INTEGER NOT NULL) WITHOUT ROWID;
        PRAGMA user_version = 2;`);
      const insert = old.prepare('INSERT INTO wal_entries (key, record) VALUES (?, ?)');
      old.transaction(() => {
        for (let i = 0; i < 3000; i++) insert.run('k', sealWalRecord(outcome(`old${i}`)));
      })();
      old.exec('DELETE FROM wal_entries WHERE entry_offset < 3000');
      expect(old.pragma('auto_vacuum', { simple: true })).toBe(0);
      expect(old.pragma('freelist_count', { simple: true })).toBeGreaterThan(50);
    } finally {
      old.close();
    }
    wal = await SqliteWriteAheadLog.open({ thread, path });
    expect(await wal.pageStats()).toMatchObject({ freePages: 0, returnsFreePages: true });
    const consumer = await wal.consumer('g');
    expect((await consumer.poll(10, 0)).map((e) => e.record?.writeId)).toEqual(['old2999']);
  });

  it('a committed position never moves backwards', async () => {
    const g = await wal.consumer('g');
    for (let i = 0; i < 3; i++) await wal.append(outcome(`w${i}`));
    const entries = await g.poll(10, 0);
    await g.commit({ partition: 0, offset: entries[2]?.position.offset ?? -1 });
    await g.commit({ partition: 0, offset: entries[0]?.position.offset ?? -1 });
    await g.close();
    expect(await (await wal.consumer('g')).poll(10, 0)).toEqual([]);
  });

  it('an append by another connection reaches a waiting poll within the poll interval', async () => {
    const other = await SqliteWriteAheadLog.open({ thread, path });
    try {
      const consumer = await wal.consumer('g');
      // Waiting already when it returns (nothing to read). Its wait outlasts the test's timeout: only the poll
      // interval's re-read can see an append by another connection, which cannot wake it.
      const polled = consumer.poll(10, 600_000);
      await other.append(outcome('from-elsewhere'));
      expect((await polled).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['from-elsewhere']);
    } finally {
      await other.close();
    }
  });

  it('a poll in flight when its consumer closes ends empty, and the next poll fails', async () => {
    const consumer = await wal.consumer('g');
    const polled = consumer.poll(10, 5_000);
    await consumer.close();
    expect(await polled).toEqual([]);
    await expectCode(consumer.poll(10, 0), 'WAL_UNAVAILABLE');
  });

  it('a closed log fails with WAL_UNAVAILABLE', async () => {
    const consumer = await wal.consumer('g');
    const polled = consumer.poll(10, 5_000);
    await wal.close();
    expect(await polled).toEqual([]);
    await expectCode(wal.append(outcome('w1')), 'WAL_UNAVAILABLE');
    await expectCode(wal.consumer('g'), 'WAL_UNAVAILABLE');
    await expectCode(consumer.poll(10, 0), 'WAL_UNAVAILABLE');
    await expectCode(consumer.commit({ partition: 0, offset: 1 }), 'WAL_UNAVAILABLE');
  });

  it('close makes queued appends durable first', async () => {
    const pending = wal.append(outcome('queued'));
    await wal.close();
    await pending;
    wal = await SqliteWriteAheadLog.open({ thread, path });
    const consumer = await wal.consumer('g');
    expect((await consumer.poll(10, 0)).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['queued']);
  });

  it('stores a record as a binary BLOB (format 2) and one the binary form cannot carry as sealed JSON', async () => {
    const writeId = newWriteId(1_700_000_000_000);
    const binary: WalRecord = { type: 'outcome', key: 'k', writeId, outcome: 'committed', atMs: 1_700_000_000_005 };
    await wal.append(binary);
    await wal.append(outcome('not-a-ulid'));
    const db = new Database(path, { readonly: true });
    try {
      const rows = db.prepare('SELECT typeof(record) AS type, record FROM wal_entries ORDER BY entry_offset').all() as Array<{ type: string; record: unknown }>;
      expect(rows.map((r) => r.type)).toEqual(['blob', 'text']);
      expect((rows[0]!.record as Buffer)[0]).toBe(2);
      expect(rows[1]!.record).toBe(sealWalRecord(outcome('not-a-ulid')));
      expect(db.pragma('user_version', { simple: true })).toBe(3);
    } finally {
      db.close();
    }
    const consumer = await wal.consumer('g');
    expect((await consumer.poll(10, 0)).map((e) => e.record)).toEqual([binary, outcome('not-a-ulid')]);
  });

  it('opens a version-2 file, reads its sealed JSON entries, and appends binary ones after them', async () => {
    await wal.close();
    await rm(dir, { recursive: true, force: true });
    ({ dir, path } = await tempPath());
    const old = new Database(path);
    try {
      // The layout and entries of the previous release (schema 2: sealed JSON text).
      old.exec(`CREATE TABLE wal_entries (entry_offset INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, record TEXT NOT NULL);
        CREATE TABLE wal_groups (name TEXT PRIMARY KEY, committed_offset INTEGER NOT NULL) WITHOUT ROWID;
        PRAGMA user_version = 2;`);
      old.prepare('INSERT INTO wal_entries (key, record) VALUES (?, ?)').run('k', sealWalRecord(outcome('sealed')));
    } finally {
      old.close();
    }
    wal = await SqliteWriteAheadLog.open({ thread, path });
    const writeId = newWriteId(1_700_000_000_000);
    const binary: WalRecord = { type: 'outcome', key: 'k', writeId, outcome: 'failed', atMs: 1_700_000_000_000 };
    await wal.append(binary);
    const consumer = await wal.consumer('g');
    expect((await consumer.poll(10, 0)).map((e) => e.record)).toEqual([outcome('sealed'), binary]);
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(3);
    } finally {
      db.close();
    }
  });

  it('reopens its own version-3 file, and refuses a file of a newer version with WAL_UNAVAILABLE, leaving it as it is', async () => {
    await wal.close();
    wal = await SqliteWriteAheadLog.open({ thread, path });
    await wal.close();
    const db = new Database(path);
    expect(db.pragma('user_version', { simple: true })).toBe(3);
    db.pragma('user_version = 4');
    db.close();
    await expectCode(SqliteWriteAheadLog.open({ thread, path }), 'WAL_UNAVAILABLE');
    const after = new Database(path, { readonly: true });
    try {
      expect(after.pragma('user_version', { simple: true })).toBe(4);
    } finally {
      after.close();
    }
  });

  it('an unopenable path fails with WAL_UNAVAILABLE', async () => {
    await expectCode(SqliteWriteAheadLog.open({ thread, path: dir }), 'WAL_UNAVAILABLE');
  });
});
