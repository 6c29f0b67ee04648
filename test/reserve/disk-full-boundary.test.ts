/**
 * The boundary of a full disk: a write is refused with DISK_FULL before anything is written, and a full disk met
 * by SQLite anyway is a definite failure (DISK_FULL), never an unknown outcome (COMMIT_UNKNOWN, 504).
 *
 * Both failures were seen together on a busy machine (test/cluster/disk-full-tmpfs.test.ts): the reserve admitted
 * writes against a measurement that the writes' uncounted bytes (SQLite -wal growth) had made stale, the disk
 * filled up with the ballast still whole, and the metadata commit met SQLITE_FULL, which was answered 504.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import { openSqliteDatabase, SqliteGroupCommit } from '../../internal/metadata/sqlite-group-commit.js';
import { DiskReserve, type FsSpace } from '../../internal/reserve/disk-reserve.js';
import { fillFilesystem, useTmpfs } from '../helpers/tmpfs.js';

const MIB = 1024 * 1024;
const KIB = 1024;
/** The periodic measurement never runs during a test: only what admission itself measures counts. */
const NEVER_MS = 3_600_000;

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('the reserve near a full disk', () => {
  it('refuses the write that would fill the disk even when every write takes more than it was admitted for and no measurement is due', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-reserve-'));
    dirs.push(dir);
    // A fake 64 MiB filesystem with 20 MiB free; the ballast (2 MiB: nothing is stored yet) is made on the real
    // directory and taken from the fake free space once made.
    const freeAtStart = 20 * MIB;
    let ballastMade = false;
    let used = 0;
    const reserve = await DiskReserve.open({
      dir,
      footprint: async () => ({ keys: 0, blobs: 0, compactionScratchBytes: 0, sqliteFiles: 0 }),
      measureSpace: async (): Promise<FsSpace> => ({ freeBytes: freeAtStart - (ballastMade ? 2 * MIB : 0) - used, totalBytes: 64 * MIB }),
      refreshIntervalMs: NEVER_MS,
    });
    ballastMade = true;
    try {
      const admitted = 400 * KIB;
      // What each write really takes: its blobs plus SQLite -wal pages and needle padding beyond its estimate.
      const taken = admitted + 40 * KIB;
      let refusal: unknown = null;
      for (let i = 0; i < 100 && refusal === null; i++) {
        try {
          await reserve.admit(admitted, `write ${i}`);
          used += taken;
          // The disk never fills up under an admitted write: the ballast stays whole, so the databases would meet it.
          expect(freeAtStart - 2 * MIB - used, `free bytes after write ${i}`).toBeGreaterThanOrEqual(0);
        } catch (error) {
          refusal = error;
        }
      }
      expect(isStrataError(refusal, 'DISK_FULL'), String(refusal)).toBe(true);
      expect(reserve.status().writable).toBe(false);
    } finally {
      await reserve.close();
    }
  });
});

const tmpfs = useTmpfs('strata-sqlite-full-', 2 * MIB);

describe('SQLite on a full disk', () => {
  it('fails a batch whose COMMIT met a full disk with DISK_FULL, commits none of it, and stays usable', async (context) => {
    const dir = tmpfs.dirOrSkip(context);
    const db = openSqliteDatabase(path.join(dir, 'full.db'), 'METADATA_UNAVAILABLE', 'metadata store');
    const commits = new SqliteGroupCommit(db, {
      batchOpsMax: 16,
      queueOpsMax: 64,
      unavailableCode: 'METADATA_UNAVAILABLE',
      unknownCode: 'COMMIT_UNKNOWN',
      label: 'metadata store',
    });
    try {
      db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)');
      const insert = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
      await commits.submit(() => insert.run('before', Buffer.alloc(100)));
      const filler = path.join(dir, 'filler');
      expect(await fillFilesystem(filler)).toBeGreaterThan(0);

      // The rows fit in SQLite's page cache: nothing touches the disk until the COMMIT appends the frames.
      let applied = 0;
      const results = await Promise.allSettled(
        ['a', 'b'].map((k) =>
          commits.submit(() => {
            insert.run(k, Buffer.alloc(64 * KIB, 1));
            applied += 1;
          }),
        ),
      );
      expect(applied).toBe(2);
      for (const result of results) {
        expect(result.status).toBe('rejected');
        const error = (result as PromiseRejectedResult).reason as unknown;
        expect(isStrataError(error, 'DISK_FULL'), String(error)).toBe(true);
      }
      expect(db.inTransaction).toBe(false);
      const count = (): number => (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
      expect(count()).toBe(1);

      await rm(filler);
      await commits.submit(() => insert.run('after', Buffer.alloc(64 * KIB, 2)));
      expect(count()).toBe(2);
    } finally {
      await commits.close();
    }
  });
});
