import type Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import { SqliteGroupCommit, openSqliteDatabase, type GroupCommitStats } from '../metadata/sqlite-group-commit.js';

/**
 * The embedded log's SQLite file: its schema, its group-committed writes (appends, group registration, offset
 * commits and the retention they trigger) and its reads. Everything that touches the connection is here, so that
 * it can run on the thread that asks (SqliteWriteAheadLog) or on a thread of its own (./sqlite-wal-thread.ts),
 * where its commits and their fsyncs do not stop the event loop that serves requests.
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

/**
 * 3: entries are binary records (format 2, a BLOB in `record`; ./wal-record-codec.ts), or sealed JSON text for a
 * record the binary form cannot carry. 2: entries are sealed in the record envelope (./wal-record-envelope.ts).
 * 1: plain JSON. Every older entry still reads; older code refuses a newer file rather than failing on entries it
 * cannot parse.
 */
export const SQLITE_WAL_SCHEMA_VERSION = 3;

/** SQLite's `auto_vacuum` mode that keeps free pages at the end of the file for `incremental_vacuum` to drop. */
const AUTO_VACUUM_INCREMENTAL = 2;

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

/** A row as stored; the caller verifies it (a damaged row must not stop a consumer reading the rows after it). */
export interface WalEntryRow {
  entry_offset: number;
  key: unknown;
  record: unknown;
}

export interface WalPageStats {
  pages: number;
  freePages: number;
  returnsFreePages: boolean;
}

export interface SqliteWalFileOptions {
  /** The database file; its directory is created when missing. */
  path: string;
  batchOpsMax?: number;
  retentionChunkEntries?: number;
}

export class SqliteWalFile {
  private readonly group: SqliteGroupCommit;
  private readonly retentionChunkEntries: number;
  private readonly stmt;
  private retentionScheduled = false;
  private readonly db: Database.Database;
  /** True when the file's free pages can be returned (auto_vacuum incremental), false for a large older file. */
  private readonly returnsFreePages: boolean;

  private constructor(db: Database.Database, group: SqliteGroupCommit, options: SqliteWalFileOptions) {
    this.group = group;
    this.retentionChunkEntries = options.retentionChunkEntries ?? SQLITE_WAL_LIMITS.retentionChunkEntries;
    assert(Number.isInteger(this.retentionChunkEntries) && this.retentionChunkEntries >= 1, 'retention chunk >= 1');
    this.stmt = {
      append: db.prepare<[string, string | Buffer]>('INSERT INTO wal_entries (key, record) VALUES (?, ?)'),
      readAfter: db.prepare<[number, number], WalEntryRow>(
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
  }

  static open(options: SqliteWalFileOptions): SqliteWalFile {
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
      return new SqliteWalFile(db, group, options);
    } catch (err) {
      db.close();
      if (err instanceof StrataError) throw err;
      throw new StrataError('WAL_UNAVAILABLE', `${label}: cannot open ${options.path}: ${(err as Error).message}`);
    }
  }

  /** Called after every committed transaction (waiting polls re-read). */
  set onCommitted(listener: (() => void) | null) {
    this.group.onCommitted = listener;
  }

  get unusable(): boolean {
    return this.group.unusable;
  }

  /** Transactions and operations applied so far (tests check that group commit batches). */
  stats(): GroupCommitStats {
    return this.group.stats();
  }

  /** Resolves once the entry is durable. */
  append(key: string, record: string | Buffer): Promise<void> {
    return this.group.submit(() => {
      this.stmt.append.run(key, record);
    });
  }

  /** Registers the group (durably, so that retention keeps everything it has not committed) and gives its offset. */
  registerGroup(group: string): Promise<number> {
    return this.group.submit(() => {
      this.stmt.registerGroup.run(group);
      const offset = this.stmt.committedOffset.get(group);
      assert(offset !== undefined, 'the group row exists');
      return offset;
    });
  }

  async commitOffset(group: string, offset: number): Promise<void> {
    await this.group.submit(() => {
      this.stmt.commitOffset.run(group, offset);
    });
    this.scheduleRetention();
  }

  readAfter(offset: number, limit: number): WalEntryRow[] {
    return this.group.read(() => this.stmt.readAfter.all(offset, limit));
  }

  /** Pages of the file and how many of them are free (tests check that retention returns them). */
  pageStats(): WalPageStats {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    return { pages, freePages: this.stmt.freePages.get()!, returnsFreePages: this.returnsFreePages };
  }

  /** Applies every queued operation, then closes the connection. */
  close(): Promise<void> {
    return this.group.close();
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
