import type Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { systemClock, type Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import {
  SqliteGroupCommit,
  openSqliteDatabase,
  type GroupCommitStats,
} from '../metadata/sqlite-group-commit.js';
import { DATA_FORMAT_MAX } from '../core/data-format.js';
import { encodeWalRecord, openWalEntry } from './wal-record-envelope.js';
import type { WalConsumer, WalEntry, WalPosition, WalRecord, WriteAheadLog } from './write-ahead-log.js';

/**
 * The embedded WriteAheadLog: one SQLite file (WAL journal, synchronous=FULL), a single partition (0) whose
 * offsets are the rowids of `wal_entries`. Appends are group-committed (internal/metadata/sqlite-group-commit.ts):
 * concurrent appends share one transaction and one fsync, and each resolves once that transaction is durable.
 * Layout and retention rules: ./README.md.
 */

export const SQLITE_WAL_LIMITS = {
  /** Appends (and offset commits) applied in one transaction (one fsync). */
  batchOpsMax: 1024,
  /** Operations waiting for a transaction before new ones are refused with WAL_UNAVAILABLE. */
  queueOpsMax: 100_000,
  /** Entries returned by one poll, whatever `max` asks for. */
  pollEntriesMax: 10_000,
  /**
   * How often a waiting poll looks again. Appends from this process wake it at once; this only bounds the delay
   * for appends made by another process on the same file.
   */
  pollIntervalMs: 100,
  /** Entries deleted per retention step, so that one step never holds the write lock for long. */
  retentionChunkEntries: 10_000,
  /**
   * Free pages handed back to the file system per retention step (4 MiB of 4 KiB pages): returning a page moves
   * one still-retained page from the end of the file, so the step stays as short as the delete it follows.
   */
  vacuumPagesPerStep: 1024,
  /**
   * A file written before the log returned its free pages is rewritten once at open (VACUUM) to do so from then
   * on, when its live pages are at most this many bytes; a larger one keeps reusing its free pages in place
   * until a later open finds it smaller (the rewrite blocks the opening process).
   */
  vacuumConvertBytesMax: 64 * 1024 * 1024,
} as const;

/** SQLite's `auto_vacuum` mode that keeps free pages at the end of the file for `incremental_vacuum` to drop. */
const AUTO_VACUUM_INCREMENTAL = 2;

/**
 * 3: entries are binary records (format 2, a BLOB in `record`; ./wal-record-codec.ts), or sealed JSON text for a
 * record the binary form cannot carry. 2: entries are sealed in the record envelope (./wal-record-envelope.ts).
 * 1: plain JSON. Every older entry still reads; older code refuses a newer file rather than failing on entries it
 * cannot parse.
 */
export const SQLITE_WAL_SCHEMA_VERSION = 3;

/**
 * The record format this log writes. The embedded log is one process's own file, read only by this release or a
 * later one (an older release refuses the file by its schema version), so it needs no cluster format bump.
 */
const SQLITE_WAL_RECORD_FORMAT = DATA_FORMAT_MAX;

/** The embedded log has one partition. */
export const SQLITE_WAL_PARTITION = 0;

export interface SqliteWriteAheadLogOptions {
  /** The database file; its directory is created when missing. */
  path: string;
  /** Times poll waits (deadline and re-check interval). Defaults to the system clock. */
  clock?: Clock;
  batchOpsMax?: number;
  pollIntervalMs?: number;
  retentionChunkEntries?: number;
}

/** `record` holds a binary record as a BLOB: SQLite keeps a BLOB as it is whatever the column's affinity. */
const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS wal_entries (
  entry_offset INTEGER PRIMARY KEY AUTOINCREMENT,
  key          TEXT NOT NULL,
  record       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS wal_groups (
  name             TEXT PRIMARY KEY,
  committed_offset INTEGER NOT NULL
) WITHOUT ROWID;
`;

interface EntryRow {
  entry_offset: number;
  key: unknown;
  record: unknown;
}

/** Verified, or reported corrupt (a damaged row must not stop the consumer reading the rows after it). */
function parseEntry(row: EntryRow): WalEntry {
  const key = typeof row.key === 'string' ? row.key : Buffer.isBuffer(row.key) ? row.key.toString('utf8') : null;
  // A binary record is a BLOB (a Buffer here), a sealed or older JSON record TEXT; the first byte tells them apart.
  const record = typeof row.record === 'string' || Buffer.isBuffer(row.record) ? row.record : null;
  return openWalEntry({ partition: SQLITE_WAL_PARTITION, offset: row.entry_offset }, key, record);
}

export class SqliteWriteAheadLog implements WriteAheadLog {
  private readonly group: SqliteGroupCommit;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  private readonly retentionChunkEntries: number;
  private readonly stmt;
  /** Polls waiting for an append in this process. */
  private waiters = new Set<() => void>();
  private retentionScheduled = false;
  private readonly db: Database.Database;
  /** True when the file's free pages can be returned (auto_vacuum incremental), false for a large older file. */
  private readonly returnsFreePages: boolean;

  private constructor(db: Database.Database, group: SqliteGroupCommit, options: SqliteWriteAheadLogOptions) {
    this.group = group;
    this.clock = options.clock ?? systemClock;
    this.pollIntervalMs = options.pollIntervalMs ?? SQLITE_WAL_LIMITS.pollIntervalMs;
    this.retentionChunkEntries = options.retentionChunkEntries ?? SQLITE_WAL_LIMITS.retentionChunkEntries;
    assert(Number.isInteger(this.pollIntervalMs) && this.pollIntervalMs >= 1, 'pollIntervalMs >= 1');
    assert(Number.isInteger(this.retentionChunkEntries) && this.retentionChunkEntries >= 1, 'retention chunk >= 1');
    this.stmt = {
      append: db.prepare<[string, string | Buffer]>('INSERT INTO wal_entries (key, record) VALUES (?, ?)'),
      readAfter: db.prepare<[number, number], EntryRow>(
        'SELECT entry_offset, key, record FROM wal_entries WHERE entry_offset > ? ORDER BY entry_offset LIMIT ?',
      ),
      registerGroup: db.prepare<[string]>('INSERT OR IGNORE INTO wal_groups (name, committed_offset) VALUES (?, 0)'),
      committedOffset: db.prepare<[string], number>('SELECT committed_offset FROM wal_groups WHERE name = ?').pluck(),
      // An offset only moves forward: "everything up to here is processed" cannot be taken back.
      commitOffset: db.prepare<[string, number]>(
        'INSERT INTO wal_groups (name, committed_offset) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET ' +
          'committed_offset = max(committed_offset, excluded.committed_offset)',
      ),
      minCommitted: db.prepare<[], number | null>('SELECT min(committed_offset) FROM wal_groups').pluck(),
      firstOffset: db.prepare<[], number | null>('SELECT min(entry_offset) FROM wal_entries').pluck(),
      deleteUpTo: db.prepare<[number]>('DELETE FROM wal_entries WHERE entry_offset <= ?'),
      freePages: db.prepare<[], number>('PRAGMA freelist_count').pluck(),
    };
    this.db = db;
    this.returnsFreePages = db.pragma('auto_vacuum', { simple: true }) === AUTO_VACUUM_INCREMENTAL;
    group.onCommitted = () => this.wakeWaiters();
  }

  static async open(options: SqliteWriteAheadLogOptions): Promise<SqliteWriteAheadLog> {
    const label = 'write-ahead log';
    const db = openSqliteDatabase(options.path, 'WAL_UNAVAILABLE', label);
    try {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SQLITE_WAL_SCHEMA_VERSION) {
        throw new Error(`schema version ${version} is newer than ${SQLITE_WAL_SCHEMA_VERSION}`);
      }
      enableFreePageReturn(db);
      db.transaction(() => {
        db.exec(SCHEMA_SQL);
        db.pragma(`user_version = ${SQLITE_WAL_SCHEMA_VERSION}`);
      }).immediate();
      const group = new SqliteGroupCommit(db, {
        batchOpsMax: options.batchOpsMax ?? SQLITE_WAL_LIMITS.batchOpsMax,
        queueOpsMax: SQLITE_WAL_LIMITS.queueOpsMax,
        unavailableCode: 'WAL_UNAVAILABLE',
        unknownCode: 'WAL_UNAVAILABLE',
        label,
      });
      return new SqliteWriteAheadLog(db, group, options);
    } catch (err) {
      db.close();
      if (err instanceof StrataError) throw err;
      throw new StrataError('WAL_UNAVAILABLE', `${label}: cannot open ${options.path}: ${(err as Error).message}`);
    }
  }

  /** Transactions and operations applied so far (tests check that group commit batches). */
  stats(): GroupCommitStats {
    return this.group.stats();
  }

  async append(record: WalRecord): Promise<void> {
    assert(record.type === 'intent' || record.type === 'outcome', 'record.type is intent or outcome');
    assert(typeof record.key === 'string' && typeof record.writeId === 'string', 'record has key and writeId');
    const sealed = encodeWalRecord(record, SQLITE_WAL_RECORD_FORMAT);
    await this.group.submit(() => {
      this.stmt.append.run(record.key, sealed);
    });
  }

  async consumer(group: string): Promise<WalConsumer> {
    assert(group.length > 0, 'group is non-empty');
    // Registering the group (durably) makes retention keep everything it has not committed yet.
    const committed = await this.group.submit(() => {
      this.stmt.registerGroup.run(group);
      const offset = this.stmt.committedOffset.get(group);
      assert(offset !== undefined, 'the group row exists');
      return offset;
    });
    return new SqliteWalConsumer(this, group, committed, this.clock, this.pollIntervalMs);
  }

  async close(): Promise<void> {
    await this.group.close();
    this.wakeWaiters();
  }

  // ---- used by SqliteWalConsumer ----------------------------------------------------------------------------

  /** @internal */
  get unusable(): boolean {
    return this.group.unusable;
  }

  /** @internal */
  readAfter(offset: number, limit: number): WalEntry[] {
    return this.group.read(() => this.stmt.readAfter.all(offset, limit)).map(parseEntry);
  }

  /** @internal Resolves on the next committed batch of this process, after `ms`, or when the log closes. */
  async waitForAppend(ms: number): Promise<void> {
    let wake: () => void = () => {};
    const appended = new Promise<void>((resolve) => {
      wake = resolve;
    });
    this.waiters.add(wake);
    try {
      await Promise.race([appended, this.clock.sleep(ms)]);
    } finally {
      this.waiters.delete(wake);
    }
  }

  /** @internal */
  async commitOffset(group: string, position: WalPosition): Promise<void> {
    assert(position.partition === SQLITE_WAL_PARTITION, 'the embedded log has only partition 0');
    assert(Number.isSafeInteger(position.offset) && position.offset >= 0, 'offset is an integer >= 0');
    await this.group.submit(() => {
      this.stmt.commitOffset.run(group, position.offset);
    });
    this.scheduleRetention();
  }

  /** @internal Wakes every waiting poll (they re-read, so a spurious wake costs one query). */
  wakeWaiters(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  /**
   * Deletes entries every registered group has committed, in chunks of `retentionChunkEntries` per transaction,
   * one chunk per batch, in the background. Entries above the smallest committed offset are never touched, so
   * nothing a group has not processed is lost.
   */
  private scheduleRetention(): void {
    if (this.retentionScheduled || this.group.unusable) return;
    this.retentionScheduled = true;
    this.group
      .submit(() => this.retainOneChunk())
      .then(
        (more) => {
          this.retentionScheduled = false;
          if (more) this.scheduleRetention();
        },
        () => {
          // Closing or broken: retention resumes with the next commit after a restart.
          this.retentionScheduled = false;
        },
      );
  }

  /** True when more entries are eligible after this chunk. */
  private retainOneChunk(): boolean {
    const minCommitted = this.stmt.minCommitted.get() ?? null;
    const first = this.stmt.firstOffset.get() ?? null;
    if (minCommitted === null || first === null || first > minCommitted) return false;
    const upTo = Math.min(minCommitted, first + this.retentionChunkEntries - 1);
    this.stmt.deleteUpTo.run(upTo);
    // Deleted entries' pages go back to the file system rather than staying as the high-water mark of the backlog.
    if (this.returnsFreePages && this.stmt.freePages.get()! > 0) {
      // exec, not pragma(): the pragma answers one empty row per page returned.
      this.db.exec(`PRAGMA incremental_vacuum(${SQLITE_WAL_LIMITS.vacuumPagesPerStep})`);
    }
    return upTo < minCommitted;
  }

  /** Pages of the file and how many of them are free (tests check that retention returns them). */
  pageStats(): { pages: number; freePages: number; returnsFreePages: boolean } {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    return { pages, freePages: this.stmt.freePages.get()!, returnsFreePages: this.returnsFreePages };
  }
}

/**
 * Sets auto_vacuum to incremental by a one-time VACUUM (of a new file, or of an older one whose live pages fit
 * SQLITE_WAL_LIMITS.vacuumConvertBytesMax). Outside any transaction, as VACUUM must be.
 */
function enableFreePageReturn(db: Database.Database): void {
  if (db.pragma('auto_vacuum', { simple: true }) === AUTO_VACUUM_INCREMENTAL) return;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const livePages = (db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number);
  if (livePages * pageSize > SQLITE_WAL_LIMITS.vacuumConvertBytesMax) return;
  // Once the file has its header (journal_mode set it), only a VACUUM applies the mode, even with no table yet.
  db.pragma(`auto_vacuum = ${AUTO_VACUUM_INCREMENTAL}`);
  db.exec('VACUUM');
}

class SqliteWalConsumer implements WalConsumer {
  private readonly wal: SqliteWriteAheadLog;
  private readonly group: string;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  /** The offset of the last entry returned (initially the group's committed offset). */
  private lastOffset: number;
  private closed = false;

  constructor(wal: SqliteWriteAheadLog, group: string, committedOffset: number, clock: Clock, pollIntervalMs: number) {
    this.wal = wal;
    this.group = group;
    this.lastOffset = committedOffset;
    this.clock = clock;
    this.pollIntervalMs = pollIntervalMs;
  }

  async poll(max: number, waitMs: number): Promise<WalEntry[]> {
    assert(Number.isInteger(max) && max >= 1, 'max is an integer >= 1');
    assert(Number.isFinite(waitMs) && waitMs >= 0, 'waitMs >= 0');
    this.checkOpen();
    const limit = Math.min(max, SQLITE_WAL_LIMITS.pollEntriesMax);
    const deadlineMs = this.clock.nowMs() + waitMs;
    for (;;) {
      const entries = this.wal.readAfter(this.lastOffset, limit);
      const last = entries[entries.length - 1];
      if (last !== undefined) {
        assert(last.position.offset > this.lastOffset, 'offsets increase');
        this.lastOffset = last.position.offset;
        return entries;
      }
      const remainingMs = deadlineMs - this.clock.nowMs();
      if (remainingMs <= 0) return [];
      await this.wal.waitForAppend(Math.min(remainingMs, this.pollIntervalMs));
      // A poll in flight when its consumer or log closes ends empty; the next call reports the closure.
      if (this.closed || this.wal.unusable) return [];
    }
  }

  async commit(position: WalPosition): Promise<void> {
    this.checkOpen();
    await this.wal.commitOffset(this.group, position);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wal.wakeWaiters();
  }

  private checkOpen(): void {
    if (this.closed) throw new StrataError('WAL_UNAVAILABLE', `write-ahead log consumer ${this.group} is closed`);
  }
}
