import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { isStrataError, StrataError, type ErrorCode } from '../core/errors.js';

/**
 * Group commit on a better-sqlite3 connection, shared by the embedded metadata store and the embedded WAL.
 *
 * better-sqlite3 is synchronous: a transaction with `synchronous=FULL` blocks the event loop for its fsync. One
 * transaction per request would stall the loop once per commit and cap throughput at one fsync per request.
 * Instead, mutations are queued and applied on the next `setImmediate`, up to `batchOpsMax` at a time, in one
 * `BEGIN IMMEDIATE ... COMMIT` (one fsync). Every operation runs inside its own SAVEPOINT, in submission order,
 * so each gets its own result and a failing operation rolls back only its own changes. A promise resolves only
 * after the COMMIT returned, i.e. once the change is durable.
 *
 * Reads go straight to the connection through `read`, which only maps errors.
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
   * while syncing). The metadata store uses COMMIT_UNKNOWN so that the gateway reads its write back. A full disk
   * (SQLITE_FULL) is not one of them: that COMMIT did not happen, and every operation fails with DISK_FULL.
   */
  unknownCode: ErrorCode;
  /**
   * When set, SQLITE_CORRUPT (SQLite met a damaged page) fails only the read or operation that met it, with this
   * code, and leaves the connection usable: the rest of the file is still served, and the integrity checks report
   * the damage. Unset (the WAL), it breaks the connection like an I/O error.
   */
  corruptCode?: ErrorCode;
  /** Names the database in error messages ("metadata store", "write-ahead log"). */
  label: string;
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
 * Opens (creating when needed) a SQLite database in WAL journal mode with synchronous=FULL: every committed
 * transaction is fsynced before COMMIT returns, so an acknowledged change survives a crash or power loss.
 */
export function openSqliteDatabase(path: string, unavailableCode: ErrorCode, label: string): Database.Database {
  assert(path.length > 0 && path !== ':memory:', 'path names a file');
  let db: Database.Database | undefined;
  try {
    mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: SQLITE_BUSY_TIMEOUT_MS });
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`journal_mode is ${String(mode)}, not wal`);
    db.pragma('synchronous = FULL');
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
  /** The error of the operation whose failure made SQLite end the batch's transaction (applyOne returned null). */
  private abortedBy: unknown = null;
  private idleWaiters: Array<() => void> = [];
  private readonly counters: GroupCommitStats = { batches: 0, operations: 0 };
  /** Called after each committed batch (the WAL wakes its consumers here). */
  onCommitted: (() => void) | null = null;
  /** Called with the error each time SQLITE_CORRUPT is mapped to `corruptCode`. */
  onCorrupt: ((error: StrataError) => void) | null = null;

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
  }

  stats(): GroupCommitStats {
    return { ...this.counters };
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

  /** Runs a read directly on the connection, mapping SQLite errors to the unavailable code. */
  read<T>(run: () => T): T {
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
    try {
      this.db.close();
    } catch {
      // A broken connection may refuse to close cleanly; it is unusable either way.
    }
  }

  private drained(): Promise<void> {
    if (this.queue.length === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
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
    if (this.options.corruptCode !== undefined && err.code.startsWith('SQLITE_CORRUPT')) {
      const corrupt = new StrataError(
        this.options.corruptCode,
        `${this.options.label}: SQLite found a damaged page (${err.message}); this request is not served, other keys are. ` +
          'GET /cluster (metadata_integrity) says what to do',
        { kind: 'file page', key: '', why: `${err.code}: ${err.message}` },
      );
      if (this.onCorrupt !== null) this.onCorrupt(corrupt);
      return corrupt;
    }
    if (err.code.startsWith('SQLITE_FULL')) {
      // The disk is full: what failed was not applied (SQLite rolled it back), and the connection stays usable for
      // the deletes and reads that free space.
      return new StrataError('DISK_FULL', `${this.options.label}: the disk is full (${err.message}); nothing was written, free space by deleting`, {
        cause: err.code,
      });
    }
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
      if (this.queue.length > 0) {
        this.schedule();
      } else {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const wake of waiters) wake();
      }
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
      const outcomes = batch.outcomes;
      this.counters.batches += 1;
      this.counters.operations += ops.length;
      ops.forEach((op, i) => {
        const outcome = outcomes[i];
        assert(outcome !== undefined, 'one outcome per operation');
        if (outcome.ok) op.resolve(outcome.value);
        else op.reject(outcome.error);
      });
      if (this.onCommitted !== null) this.onCommitted();
    } else {
      for (const op of ops) op.reject(batch.error);
    }
    // A fatal error breaks the connection: fail what is still queued rather than run it.
    if (this.brokenBy !== null) {
      for (const op of this.queue.splice(0)) op.reject(this.brokenBy);
    }
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
        // A full disk that made SQLite give up the transaction fails the batch as DISK_FULL (nothing was applied).
        const full = isStrataError(this.abortedBy, 'DISK_FULL') ? this.abortedBy : null;
        return { committed: false, error: this.brokenBy ?? full ?? this.unavailable('transaction aborted by SQLite') };
      }
      outcomes.push(outcome);
    }
    try {
      this.commitStmt.run();
      return { committed: true, outcomes };
    } catch (err) {
      const mapped = this.mapError(err);
      const busy = isSqliteError(err) && err.code.startsWith('SQLITE_BUSY');
      // SQLITE_FULL at COMMIT is a definite failure: in WAL mode the commit is the commit frame appended to the -wal
      // file, a write that could not complete leaves no valid commit frame, and SQLite rolls the transaction back
      // (https://www.sqlite.org/lang_transaction.html, "Response To Errors Within A Transaction"; the ROLLBACK below
      // ends it if SQLite kept it open). Every operation of the batch fails with DISK_FULL, none is unknown.
      const full = isSqliteError(err) && err.code.startsWith('SQLITE_FULL');
      this.rollbackQuietly();
      if (busy || full || !isSqliteError(err)) return { committed: false, error: mapped };
      // The COMMIT may have reached the disk before the failure: the outcome is unknown to the callers.
      const message = `${this.options.label}: commit outcome unknown: ${err.message}`;
      return { committed: false, error: new StrataError(this.options.unknownCode, message, { cause: err.code }) };
    }
  }

  /** Runs one operation in a savepoint; null when its failure aborted the enclosing transaction. */
  private applyOne(op: QueuedOp): OpOutcome | null {
    this.abortedBy = null;
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
      if (!this.db.inTransaction) {
        this.abortedBy = error;
        return null;
      }
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
