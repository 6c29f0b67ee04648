/**
 * One process owns a data directory: an exclusive kernel lock, taken before anything in the directory is read,
 * repaired or deleted, and held until `release()` or the death of the process.
 *
 * Node has no flock(2). The lock is SQLite's: a small database file `LOCK` in the directory, opened with
 * better-sqlite3 (already a dependency), `locking_mode=EXCLUSIVE`, no busy timeout, and a write transaction that
 * is begun and never ended. SQLite holds that with a POSIX advisory write lock (fcntl F_SETLK) on the file, so:
 *
 * - the lock belongs to the kernel, not to a pid or lease file: when the process dies, however (SIGKILL, OOM,
 *   power), the kernel drops it and the next start takes it at once; a paused holder still holds it;
 * - a second process is refused at once (SQLITE_BUSY, no waiting);
 * - a second opener in the same process is refused too: POSIX locks are per process, so the kernel alone would
 *   grant it, but SQLite tracks the locks of every connection of the process per inode and answers SQLITE_BUSY
 *   (worker threads share that table: the addon is loaded once per process).
 *
 * The one weakness of POSIX locks: closing ANY descriptor of the file in the holding process drops its locks.
 * SQLite keeps its own descriptors open while a lock is held for that reason; nothing else may open `LOCK`
 * (no backup tool inside the process, no `fs.readFile` of it). Copying a stopped data directory is fine.
 * The file is a lock, not a record: its content means nothing, and a process that finds it left behind by a
 * dead holder simply takes it.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { StrataError } from '../core/errors.js';

export const LOCK_FILE_NAME = 'LOCK';

export class DirLock {
  private db: Database.Database | null;

  private constructor(
    /** The directory, as the caller named it (messages show it that way). */
    readonly dir: string,
    readonly file: string,
    db: Database.Database,
  ) {
    this.db = db;
  }

  /**
   * Takes the lock on `dir` (created when absent), or throws at once: DATA_DIR_LOCKED when another process, or
   * another opener in this one, holds it; DATA_DIR_UNUSABLE when the directory or its lock file cannot be used
   * (a file in its place, permissions).
   */
  static acquire(dir: string): DirLock {
    const file = path.join(dir, LOCK_FILE_NAME);
    try {
      mkdirSync(dir, { recursive: true });
      if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    } catch (error) {
      throw new StrataError('DATA_DIR_UNUSABLE', `data directory ${dir} cannot be used: ${(error as Error).message}`, { dir });
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(file, { timeout: 0 });
      // No journal file beside the lock: nothing is ever written, and a journal left by a SIGKILL would be one
      // more file in the directory to explain.
      db.pragma('journal_mode = MEMORY');
      db.pragma('locking_mode = EXCLUSIVE');
      // Takes SQLite's EXCLUSIVE lock now; the transaction is never committed, so the lock stays until close.
      db.exec('BEGIN EXCLUSIVE');
    } catch (error) {
      db?.close();
      const code = (error as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
        throw new StrataError(
          'DATA_DIR_LOCKED',
          `data directory ${dir} is in use by another Strata process (lock file ${file}); stop it first`,
          { dir, lockFile: file },
        );
      }
      throw new StrataError('DATA_DIR_UNUSABLE', `data directory ${dir} cannot be locked (lock file ${file}): ${(error as Error).message}`, { dir, lockFile: file });
    }
    return new DirLock(dir, file, db);
  }

  get held(): boolean {
    return this.db !== null;
  }

  /** Gives the lock up (idempotent). Closing the connection rolls the empty transaction back and unlocks. */
  release(): void {
    const db = this.db;
    this.db = null;
    db?.close();
  }
}
