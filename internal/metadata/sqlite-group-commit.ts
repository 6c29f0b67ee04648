import { closeSync, existsSync, fdatasyncSync, mkdirSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { StrataError, type ErrorCode } from '../core/errors.js';

/**
 * Group commit on a better-sqlite3 connection, shared by the embedded metadata store and the embedded WAL.
 *
 * better-sqlite3 is synchronous: a transaction with `synchronous=FULL` blocks the event loop for its fsync (in
 * the bench's profiles, 15 to 20 % of the all-in-one's loop time under small writes). So mutations are queued and
 * applied on the next `setImmediate`, up to `batchOpsMax` at a time, in one `BEGIN IMMEDIATE ... COMMIT`; every
 * operation runs inside its own SAVEPOINT, in submission order, so each gets its own result and a failing
 * operation rolls back only its own changes.
 *
 * Durability off the event loop: the connection runs with `synchronous=NORMAL`, so COMMIT only writes the
 * transaction's frames to the `-wal` file, and this class then `fdatasync`s that file on libuv's thread pool. An
 * operation's promise resolves only after an fdatasync that started after its COMMIT returned, i.e. once the change
 * is on disk, exactly as with `synchronous=FULL`. Transactions committed while a sync runs wait for the next one,
 * which covers them all (the WAL is appended in order: a synced frame implies every earlier one). Checkpoints keep
 * SQLite's own syncs (in NORMAL mode the WAL is synced before a checkpoint and the database file after it), so a
 * frame is never overwritten before what it held is durable in the database file.
 *
 * A change is visible to reads as soon as it commits, before it is durable. Reads therefore go through `read`,
 * which waits until everything committed so far is durable before answering (a power loss could otherwise take
 * back something a client had read); the stores bound their watches with `commitMarker` / `onDurable` instead.
 * A failed fdatasync leaves the file's state unknown (the kernel may have dropped the dirty pages): the
 * operations it covered fail with the unknown-outcome code and the connection is closed to further use.
 *
 * (This module serves both internal/metadata and internal/wal; it would sit in a shared folder such as
 * internal/core if it grows a third user.)
 */

export interface GroupCommitOptions {
  /** Operations applied in one transaction (one fsync). */
  batchOpsMax: number;
  /** Operations waiting for a transaction; beyond it, `submit` fails fast (back-pressure, retryable). */
  queueOpsMax: number;
  /** The code for a closed or broken database: METADATA_UNAVAILABLE or WAL_UNAVAILABLE. */
  unavailableCode: ErrorCode;
  /**
   * The code for operations whose COMMIT failed in a way that may still have persisted them (an I/O error
   * while syncing). The metadata store uses COMMIT_UNKNOWN so that the gateway reads its write back.
   */
  unknownCode: ErrorCode;
  /** Names the database in error messages ("metadata store", "write-ahead log"). */
  label: string;
  /** Makes the committed transactions durable; by default fdatasync of the database's `-wal` file (tests hold it). */
  syncWal?: () => Promise<void>;
}

export interface GroupCommitStats {
  /** Transactions committed (each one fsync). */
  batches: number;
  /** Operations those transactions carried. */
  operations: number;
}

interface QueuedOp {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type OpOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };
/** A committed transaction waiting for the fdatasync that makes it durable. */
interface CommittedBatch {
  ops: QueuedOp[];
  outcomes: OpOutcome[];
  marker: number;
}
interface DurableWaiter {
  /** Resolved once this many batches are durable. */
  batches: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}
type BatchOutcome = { committed: true; outcomes: OpOutcome[] } | { committed: false; error: unknown };

/** SQLite result codes after which the connection cannot be trusted any more. */
const FATAL_SQLITE_CODE_PREFIXES = ['SQLITE_IOERR', 'SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CANTOPEN'];

export function isSqliteError(err: unknown): err is Error & { code: string } {
  return err instanceof Database.SqliteError;
}

function isFatalSqliteError(err: unknown): boolean {
  return isSqliteError(err) && FATAL_SQLITE_CODE_PREFIXES.some((prefix) => err.code.startsWith(prefix));
}

/** How long a connection waits for another process's write lock before failing with SQLITE_BUSY. */
export const SQLITE_BUSY_TIMEOUT_MS = 5_000;

/**
 * Opens (creating when needed) a SQLite database in WAL journal mode with synchronous=NORMAL: COMMIT writes the
 * `-wal` file without syncing it, and SqliteGroupCommit syncs it before anything is acknowledged (see above).
 * Whatever the file holds at open is synced once by SqliteGroupCommit's constructor.
 */
export function openSqliteDatabase(path: string, unavailableCode: ErrorCode, label: string): Database.Database {
  assert(path.length > 0 && path !== ':memory:', 'path names a file');
  let db: Database.Database | undefined;
  try {
    mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: SQLITE_BUSY_TIMEOUT_MS });
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, not wal`);
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    return db;
  } catch (err) {
    try {
      db?.close();
    } catch {
      // Already failing; the original error is the one worth reporting.
    }
    throw new StrataError(unavailableCode, `${label}: cannot open ${path}: ${(err as Error).message}`, {
      path,
      cause: String(err),
    });
  }
}

export class SqliteGroupCommit {
  private readonly db: Database.Database;
  private readonly options: GroupCommitOptions;
  private readonly queue: QueuedOp[] = [];
  private scheduled = false;
  private closing = false;
  private closed = false;
  /** Set once a fatal error made the connection untrustworthy; every later call fails with it. */
  private brokenBy: StrataError | null = null;
  private idleWaiters: Array<() => void> = [];
  private readonly counters: GroupCommitStats = { batches: 0, operations: 0 };
  /** Batches whose COMMIT returned, and those of them an fdatasync has made durable since. */
  private committedBatches = 0;
  private durableBatches = 0;
  private awaitingSync: CommittedBatch[] = [];
  private syncing = false;
  private durableWaiters: DurableWaiter[] = [];
  private walHandle: FileHandle | null = null;
  private readonly syncWal: () => Promise<void>;
  /**
   * Read right after each COMMIT (the store's revision, the log's last offset); the last durable batch's marker is
   * handed to `onDurable`, so that a store can bound what its watches report to what is durable.
   */
  commitMarker: (() => number) | null = null;
  /** Called after each fdatasync that made batches durable (the WAL wakes its consumers, the store its watches). */
  onDurable: ((marker: number) => void) | null = null;

  private readonly beginStmt: Database.Statement;
  private readonly commitStmt: Database.Statement;
  private readonly rollbackStmt: Database.Statement;
  private readonly savepointStmt: Database.Statement;
  private readonly releaseStmt: Database.Statement;
  private readonly rollbackToStmt: Database.Statement;

  constructor(db: Database.Database, options: GroupCommitOptions) {
    assert(Number.isInteger(options.batchOpsMax) && options.batchOpsMax >= 1, 'batchOpsMax >= 1');
    assert(Number.isInteger(options.queueOpsMax) && options.queueOpsMax >= options.batchOpsMax, 'queueOpsMax >= batchOpsMax');
    this.db = db;
    this.options = options;
    // IMMEDIATE takes the write lock up front, so a second process cannot make us fail halfway with SQLITE_BUSY.
    this.beginStmt = db.prepare('BEGIN IMMEDIATE');
    this.commitStmt = db.prepare('COMMIT');
    this.rollbackStmt = db.prepare('ROLLBACK');
    this.savepointStmt = db.prepare('SAVEPOINT op');
    this.releaseStmt = db.prepare('RELEASE op');
    this.rollbackToStmt = db.prepare('ROLLBACK TO op');
    this.syncWal = options.syncWal ?? (() => this.fdatasyncWal());
    // What an earlier process committed may not have been synced before it stopped: make it durable before
    // anything here reads it.
    syncFileIfPresent(db.name);
    syncFileIfPresent(`${db.name}-wal`);
  }

  stats(): GroupCommitStats {
    return { ...this.counters };
  }

  /** True when every committed transaction is durable (reads need not wait). */
  get allDurable(): boolean {
    return this.durableBatches === this.committedBatches;
  }

  /** Resolves once everything committed so far is durable; rejects when the sync that would make it so failed. */
  whenDurable(): Promise<void> {
    if (this.allDurable) return Promise.resolve();
    if (this.brokenBy !== null) return Promise.reject(this.brokenBy);
    return new Promise<void>((resolve, reject) => this.durableWaiters.push({ batches: this.committedBatches, resolve, reject }));
  }

  /** True once `close` was called or the connection broke. */
  get unusable(): boolean {
    return this.closing || this.closed || this.brokenBy !== null;
  }

  /**
   * Queues a synchronous mutation; it runs inside the next batch transaction and the promise settles after that
   * transaction committed (or failed). `run` must only use statements of this connection.
   */
  submit<T>(run: () => T): Promise<T> {
    try {
      this.checkUsable();
      if (this.closing) throw this.unavailable('closing');
      if (this.queue.length >= this.options.queueOpsMax) {
        throw this.unavailable(`queue full (${this.options.queueOpsMax} operations waiting)`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /**
   * Runs a read on the connection and answers once what it may have seen is durable (at once when everything
   * committed is), mapping SQLite errors to the unavailable code.
   */
  async read<T>(run: () => T): Promise<T> {
    const value = this.readNow(run);
    if (!this.allDurable) await this.whenDurable();
    return value;
  }

  /**
   * Runs a read on the connection and answers at once: it may see committed changes that are not durable yet, so
   * the caller must bound what it reports itself (the stores' watches stop at the last durable marker).
   */
  readNow<T>(run: () => T): T {
    this.checkUsable();
    try {
      return run();
    } catch (err) {
      throw this.mapError(err);
    }
  }

  /** Stops accepting operations, applies every queued one, then closes the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    await this.drained();
    if (this.closed) return;
    this.closed = true;
    await this.walHandle?.close().catch(() => undefined);
    this.walHandle = null;
    try {
      this.db.close();
    } catch {
      // A broken connection may refuse to close cleanly; it is unusable either way.
    }
  }

  private get idle(): boolean {
    return this.queue.length === 0 && !this.scheduled && !this.syncing && this.awaitingSync.length === 0;
  }

  private drained(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdleWaiters(): void {
    if (!this.idle) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  private checkUsable(): void {
    if (this.closed) throw this.unavailable('closed');
    if (this.brokenBy !== null) throw this.brokenBy;
  }

  private unavailable(why: string, cause?: unknown): StrataError {
    const details = cause === undefined ? undefined : { cause: String(cause) };
    return new StrataError(this.options.unavailableCode, `${this.options.label} is unavailable: ${why}`, details);
  }

  /** SQLite errors become the unavailable code (and a fatal one breaks the connection); others pass through. */
  private mapError(err: unknown): unknown {
    if (!isSqliteError(err)) return err;
    const mapped = this.unavailable(err.message, err.code);
    if (isFatalSqliteError(err) && this.brokenBy === null) this.brokenBy = mapped;
    return mapped;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate (not a microtask) so that every request that arrives in this turn of the loop joins the batch,
    // and so that I/O gets a turn between consecutive batches.
    setImmediate(() => {
      this.scheduled = false;
      this.runBatch();
      if (this.queue.length > 0) this.schedule();
      else this.wakeIdleWaiters();
    });
  }

  private runBatch(): void {
    const ops = this.queue.splice(0, this.options.batchOpsMax);
    if (ops.length === 0) return;
    if (this.closed || this.brokenBy !== null) {
      const err = this.brokenBy ?? this.unavailable('closed');
      for (const op of ops) op.reject(err);
      return;
    }
    const batch = this.applyInTransaction(ops);
    if (batch.committed) {
      this.counters.batches += 1;
      this.counters.operations += ops.length;
      this.committedBatches += 1;
      // Answered only once durable: the fdatasync that covers this batch starts after its COMMIT returned.
      this.awaitingSync.push({ ops, outcomes: batch.outcomes, marker: this.readMarker() });
      this.startSync();
    } else {
      for (const op of ops) op.reject(batch.error);
    }
    // A fatal error breaks the connection: fail what is still queued rather than run it.
    if (this.brokenBy !== null) {
      for (const op of this.queue.splice(0)) op.reject(this.brokenBy);
    }
  }

  private readMarker(): number {
    if (this.commitMarker === null) return 0;
    try {
      return this.commitMarker();
    } catch (err) {
      this.mapError(err);
      return 0;
    }
  }

  private startSync(): void {
    if (this.syncing) return;
    this.syncing = true;
    void this.syncLoop();
  }

  /** One fdatasync at a time; each covers every batch committed before it started. */
  private async syncLoop(): Promise<void> {
    while (this.awaitingSync.length > 0) {
      const round = this.awaitingSync.splice(0);
      const upTo = this.committedBatches;
      try {
        await this.syncWal();
      } catch (err) {
        this.failDurability(round, err);
        continue;
      }
      this.durableBatches = upTo;
      for (const { ops, outcomes } of round) {
        ops.forEach((op, i) => {
          const outcome = outcomes[i];
          assert(outcome !== undefined, 'one outcome per operation');
          if (outcome.ok) op.resolve(outcome.value);
          else op.reject(outcome.error);
        });
      }
      this.onDurable?.(round[round.length - 1]!.marker);
      const waiting = this.durableWaiters;
      this.durableWaiters = [];
      for (const waiter of waiting) {
        if (waiter.batches <= this.durableBatches) waiter.resolve();
        else this.durableWaiters.push(waiter);
      }
    }
    this.syncing = false;
    this.wakeIdleWaiters();
  }

  /**
   * After a failed fdatasync nothing committed since the last good one can be called durable, nor is it known to
   * be lost: its operations fail with the unknown-outcome code, and the connection takes no more work.
   */
  private failDurability(round: CommittedBatch[], err: unknown): void {
    const why = `syncing the write-ahead file failed: ${(err as Error).message}`;
    this.brokenBy ??= this.unavailable(why, err);
    const unknown = new StrataError(this.options.unknownCode, `${this.options.label}: commit outcome unknown: ${why}`);
    for (const { ops } of round) for (const op of ops) op.reject(unknown);
    for (const op of this.queue.splice(0)) op.reject(this.brokenBy);
    for (const waiter of this.durableWaiters.splice(0)) waiter.reject(this.brokenBy);
  }

  private async fdatasyncWal(): Promise<void> {
    // The -wal file exists from the first COMMIT on and keeps its inode while this connection is open (SQLite
    // resets it in place after a checkpoint and removes it only when the last connection closes).
    this.walHandle ??= await open(`${this.db.name}-wal`, 'r');
    await this.walHandle.datasync();
  }

  /** The per-operation outcomes when the transaction committed, or the error that failed the whole batch. */
  private applyInTransaction(ops: QueuedOp[]): BatchOutcome {
    try {
      this.beginStmt.run();
    } catch (err) {
      return { committed: false, error: this.mapError(err) };
    }
    const outcomes: OpOutcome[] = [];
    for (const op of ops) {
      const outcome = this.applyOne(op);
      if (outcome === null) {
        // The operation's failure ended the whole transaction (SQLite rolled it back): nothing was applied.
        this.rollbackQuietly();
        return { committed: false, error: this.brokenBy ?? this.unavailable('transaction aborted by SQLite') };
      }
      outcomes.push(outcome);
    }
    try {
      this.commitStmt.run();
      return { committed: true, outcomes };
    } catch (err) {
      const mapped = this.mapError(err);
      const busy = isSqliteError(err) && err.code.startsWith('SQLITE_BUSY');
      this.rollbackQuietly();
      if (busy || !isSqliteError(err)) return { committed: false, error: mapped };
      // The COMMIT may have reached the disk before the failure: the outcome is unknown to the callers.
      const message = `${this.options.label}: commit outcome unknown: ${err.message}`;
      return { committed: false, error: new StrataError(this.options.unknownCode, message, { cause: err.code }) };
    }
  }

  /** Runs one operation in a savepoint; null when its failure aborted the enclosing transaction. */
  private applyOne(op: QueuedOp): OpOutcome | null {
    try {
      this.savepointStmt.run();
    } catch (err) {
      this.mapError(err);
      return null;
    }
    try {
      const value = op.run();
      this.releaseStmt.run();
      return { ok: true, value };
    } catch (err) {
      const error = this.mapError(err);
      if (!this.db.inTransaction) return null;
      try {
        this.rollbackToStmt.run();
        this.releaseStmt.run();
      } catch (rollbackErr) {
        this.mapError(rollbackErr);
        return null;
      }
      return { ok: false, error };
    }
  }

  private rollbackQuietly(): void {
    if (!this.db.inTransaction) return;
    try {
      this.rollbackStmt.run();
    } catch (err) {
      this.mapError(err);
    }
  }
}

/** fdatasync of a file that may not exist (a fresh database has no -wal file yet). */
function syncFileIfPresent(path: string): void {
  if (!existsSync(path)) return;
  const fd = openSync(path, 'r');
  try {
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
