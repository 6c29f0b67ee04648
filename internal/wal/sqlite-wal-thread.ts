import { Worker } from 'node:worker_threads';
import { StrataError, isStrataError, type ErrorCode } from '../core/errors.js';
import type { GroupCommitStats } from '../metadata/sqlite-group-commit.js';
import { SqliteWalFile, type SqliteWalFileOptions, type WalEntryRow, type WalPageStats } from './sqlite-wal-file.js';

/**
 * Where the embedded log's SQLite connection lives. `caller`: on the thread that opens the log. `worker`: on a
 * worker thread of its own, so that its commits and their fsyncs (two per document write: the intent and the
 * outcome) run beside the event loop that serves requests instead of stopping it. Either way an append resolves
 * only once its transaction is durable, and other connections see a commit only after its fsync (SQLite updates
 * its WAL index after syncing), so nothing can act on an entry that a crash could still take back.
 */
export type WalThread = 'caller' | 'worker';

/** The log file's operations as the log uses them, whichever thread runs them. */
export interface WalFileAccess {
  append(key: string, record: string | Buffer): Promise<void>;
  registerGroup(group: string): Promise<number>;
  commitOffset(group: string, offset: number): Promise<void>;
  readAfter(offset: number, limit: number): Promise<WalEntryRow[]>;
  pageStats(): Promise<WalPageStats>;
  stats(): Promise<GroupCommitStats>;
  /** True once the connection is closed or broken. */
  readonly unusable: boolean;
  /** Called when a transaction of this process committed (waiting polls re-read). */
  onCommitted: (() => void) | null;
  close(): Promise<void>;
}

export async function openWalFile(options: SqliteWalFileOptions, thread: WalThread): Promise<WalFileAccess> {
  return thread === 'worker' ? WorkerWalFile.open(options) : new CallerWalFile(SqliteWalFile.open(options));
}

class CallerWalFile implements WalFileAccess {
  constructor(private readonly file: SqliteWalFile) {}

  get unusable(): boolean {
    return this.file.unusable;
  }

  set onCommitted(listener: (() => void) | null) {
    this.file.onCommitted = listener;
  }

  append(key: string, record: string | Buffer): Promise<void> {
    return this.file.append(key, record);
  }

  registerGroup(group: string): Promise<number> {
    return this.file.registerGroup(group);
  }

  commitOffset(group: string, offset: number): Promise<void> {
    return this.file.commitOffset(group, offset);
  }

  async readAfter(offset: number, limit: number): Promise<WalEntryRow[]> {
    return this.file.readAfter(offset, limit);
  }

  async pageStats(): Promise<WalPageStats> {
    return this.file.pageStats();
  }

  async stats(): Promise<GroupCommitStats> {
    return this.file.stats();
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/** What the worker answers: a value, or an error as code and message (errors do not cross threads as objects). */
export type WalWorkerReply =
  | { id: number; ok: true; value: unknown; unusable: boolean }
  | { id: number; ok: false; code: ErrorCode | null; message: string; unusable: boolean };

export type WalWorkerStart = { ready: true } | { ready: false; code: ErrorCode | null; message: string };

export interface WalWorkerRequest {
  id: number;
  op: 'append' | 'registerGroup' | 'commitOffset' | 'readAfter' | 'pageStats' | 'stats' | 'close';
  args: unknown[];
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * The compiled worker beside this file; run from the TypeScript sources (tests), the worker loads them through
 * tsx, as the test runner does for the rest.
 */
function workerEntry(): { url: URL; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  return {
    url: new URL(fromSource ? './sqlite-wal-worker.ts' : './sqlite-wal-worker.js', import.meta.url),
    execArgv: fromSource ? ['--import', 'tsx'] : [],
  };
}

class WorkerWalFile implements WalFileAccess {
  onCommitted: (() => void) | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private broken: StrataError | null = null;
  private workerUnusable = false;
  private closed = false;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: WalWorkerReply) => this.settle(reply));
    worker.on('error', (err) => this.fail(`its thread failed: ${err.message}`));
    worker.on('exit', (code) => this.fail(`its thread exited (code ${code})`));
  }

  static open(options: SqliteWalFileOptions): Promise<WorkerWalFile> {
    const { url, execArgv } = workerEntry();
    const worker = new Worker(url, { workerData: options, execArgv });
    return new Promise((resolve, reject) => {
      const refuse = (err: Error): void => reject(new StrataError('WAL_UNAVAILABLE', `write-ahead log: its thread did not start: ${err.message}`));
      worker.once('error', refuse);
      worker.once('message', (start: WalWorkerStart) => {
        worker.off('error', refuse);
        if (start.ready) {
          resolve(new WorkerWalFile(worker));
          return;
        }
        void worker.terminate();
        reject(start.code !== null ? new StrataError(start.code, start.message) : new StrataError('WAL_UNAVAILABLE', `write-ahead log: ${start.message}`));
      });
    });
  }

  get unusable(): boolean {
    return this.closed || this.broken !== null || this.workerUnusable;
  }

  async append(key: string, record: string | Buffer): Promise<void> {
    await this.call('append', [key, record]);
    this.onCommitted?.();
  }

  async registerGroup(group: string): Promise<number> {
    const offset = (await this.call('registerGroup', [group])) as number;
    this.onCommitted?.();
    return offset;
  }

  async commitOffset(group: string, offset: number): Promise<void> {
    await this.call('commitOffset', [group, offset]);
  }

  async readAfter(offset: number, limit: number): Promise<WalEntryRow[]> {
    const rows = (await this.call('readAfter', [offset, limit])) as WalEntryRow[];
    // A BLOB crosses the thread boundary as a Uint8Array; the entry parser tells records apart by Buffer.
    for (const row of rows) if (row.record instanceof Uint8Array && !Buffer.isBuffer(row.record)) row.record = Buffer.from(row.record.buffer, row.record.byteOffset, row.record.byteLength);
    return rows;
  }

  async pageStats(): Promise<WalPageStats> {
    return (await this.call('pageStats', [])) as WalPageStats;
  }

  async stats(): Promise<GroupCommitStats> {
    return (await this.call('stats', [])) as GroupCommitStats;
  }

  /** Applies every queued operation and closes the connection, then ends the thread. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.broken === null) await this.call('close', []);
    } finally {
      this.closed = true;
      await this.worker.terminate();
    }
  }

  private call(op: WalWorkerRequest['op'], args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new StrataError('WAL_UNAVAILABLE', 'write-ahead log: closed'));
    if (this.broken !== null) return Promise.reject(this.broken);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, args } satisfies WalWorkerRequest);
    });
  }

  private settle(reply: WalWorkerReply): void {
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    this.workerUnusable = reply.unusable;
    if (reply.ok) pending.resolve(reply.value);
    else pending.reject(reply.code !== null ? new StrataError(reply.code, reply.message) : new Error(reply.message));
  }

  /** The thread is gone: every call waiting for it fails, and so does every later one. */
  private fail(why: string): void {
    if (this.closed) return;
    this.broken ??= new StrataError('WAL_UNAVAILABLE', `write-ahead log: ${why}`);
    for (const pending of this.pending.values()) pending.reject(this.broken);
    this.pending.clear();
  }
}

/** The code of an error that crosses to the other thread, or null for a programmer error (sent as its message). */
export function replyCodeOf(err: unknown): ErrorCode | null {
  return isStrataError(err) ? err.code : null;
}
