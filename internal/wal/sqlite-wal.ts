import { assert } from '../core/assert.js';
import { systemClock, type Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import type { GroupCommitStats } from '../metadata/sqlite-group-commit.js';
import { DATA_FORMAT_MAX } from '../core/data-format.js';
import { SQLITE_WAL_LIMITS, type WalEntryRow, type WalPageStats } from './sqlite-wal-file.js';
import { openWalFile, type WalFileAccess, type WalThread } from './sqlite-wal-thread.js';
import { encodeWalRecord, openWalEntry } from './wal-record-envelope.js';
import type { WalConsumer, WalEntry, WalPosition, WalRecord, WriteAheadLog } from './write-ahead-log.js';

export { SQLITE_WAL_LIMITS, SQLITE_WAL_SCHEMA_VERSION } from './sqlite-wal-file.js';

/**
 * The embedded WriteAheadLog: one SQLite file (WAL journal, synchronous=FULL), a single partition (0) whose
 * offsets are the rowids of `wal_entries`. Appends are group-committed (internal/metadata/sqlite-group-commit.ts):
 * concurrent appends share one transaction and one fsync, and each resolves once that transaction is durable.
 * The connection runs on the caller's thread or on one of its own (`thread`, ./sqlite-wal-thread.ts); waits and
 * consumers stay on the caller's, with its clock. Layout and retention rules: ./README.md.
 */

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
  /** Where the connection runs (default `caller`; the all-in-one gives it a `worker` thread). */
  thread?: WalThread;
}

/** Verified, or reported corrupt (a damaged row must not stop the consumer reading the rows after it). */
function parseEntry(row: WalEntryRow): WalEntry {
  const key = typeof row.key === 'string' ? row.key : Buffer.isBuffer(row.key) ? row.key.toString('utf8') : null;
  // A binary record is a BLOB (a Buffer here), a sealed or older JSON record TEXT; the first byte tells them apart.
  const record = typeof row.record === 'string' || Buffer.isBuffer(row.record) ? row.record : null;
  return openWalEntry({ partition: SQLITE_WAL_PARTITION, offset: row.entry_offset }, key, record);
}

export class SqliteWriteAheadLog implements WriteAheadLog {
  private readonly file: WalFileAccess;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  /** Polls waiting for an append in this process. */
  private waiters = new Set<() => void>();

  private constructor(file: WalFileAccess, options: SqliteWriteAheadLogOptions) {
    this.file = file;
    this.clock = options.clock ?? systemClock;
    this.pollIntervalMs = options.pollIntervalMs ?? SQLITE_WAL_LIMITS.pollIntervalMs;
    file.onCommitted = () => this.wakeWaiters();
  }

  static async open(options: SqliteWriteAheadLogOptions): Promise<SqliteWriteAheadLog> {
    const pollIntervalMs = options.pollIntervalMs ?? SQLITE_WAL_LIMITS.pollIntervalMs;
    assert(Number.isInteger(pollIntervalMs) && pollIntervalMs >= 1, 'pollIntervalMs >= 1');
    const fileOptions = {
      path: options.path,
      ...(options.batchOpsMax !== undefined ? { batchOpsMax: options.batchOpsMax } : {}),
      ...(options.retentionChunkEntries !== undefined ? { retentionChunkEntries: options.retentionChunkEntries } : {}),
    };
    return new SqliteWriteAheadLog(await openWalFile(fileOptions, options.thread ?? 'caller'), options);
  }

  /** Transactions and operations applied so far (tests check that group commit batches). */
  stats(): Promise<GroupCommitStats> {
    return this.file.stats();
  }

  async append(record: WalRecord): Promise<void> {
    assert(record.type === 'intent' || record.type === 'outcome', 'record.type is intent or outcome');
    assert(typeof record.key === 'string' && typeof record.writeId === 'string', 'record has key and writeId');
    await this.file.append(record.key, encodeWalRecord(record, SQLITE_WAL_RECORD_FORMAT));
  }

  async consumer(group: string): Promise<WalConsumer> {
    assert(group.length > 0, 'group is non-empty');
    // Registering the group (durably) makes retention keep everything it has not committed yet.
    const committed = await this.file.registerGroup(group);
    return new SqliteWalConsumer(this, group, committed, this.clock, this.pollIntervalMs);
  }

  async close(): Promise<void> {
    await this.file.close();
    this.wakeWaiters();
  }

  /** Pages of the file and how many of them are free (tests check that retention returns them). */
  pageStats(): Promise<WalPageStats> {
    return this.file.pageStats();
  }

  // ---- used by SqliteWalConsumer ----------------------------------------------------------------------------

  /** @internal */
  get unusable(): boolean {
    return this.file.unusable;
  }

  /** @internal */
  async readAfter(offset: number, limit: number): Promise<WalEntry[]> {
    return (await this.file.readAfter(offset, limit)).map(parseEntry);
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
    await this.file.commitOffset(group, position.offset);
  }

  /** @internal Wakes every waiting poll (they re-read, so a spurious wake costs one query). */
  wakeWaiters(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }
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
      const entries = await this.wal.readAfter(this.lastOffset, limit);
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
