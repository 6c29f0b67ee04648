/**
 * Tiering records in the embedded store (MetadataStore.getTieringRecord and friends): one row per key prefix in
 * the table below, created when missing on open. It needs no schema version of its own: older code never reads
 * the table, and this code reads files without it as having no records.
 *
 *   tiering_records (prefix BLOB PRIMARY KEY CHECK (typeof(prefix)='blob'),  -- the prefix's UTF-8 bytes
 *                    record TEXT NOT NULL)                                     -- the record's JSON
 *
 * An update runs inside one batch transaction of the group commit, so reading, calling `update` and writing are
 * atomic with respect to every other process sharing the file (each batch holds the write lock).
 */
import type Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { TIERING_RECORD_LIMITS } from './metadata-store.js';
import type { SqliteGroupCommit } from './sqlite-group-commit.js';

export const TIERING_RECORDS_SQL = `
CREATE TABLE IF NOT EXISTS tiering_records (
  prefix BLOB PRIMARY KEY CHECK (typeof(prefix) = 'blob'),
  record TEXT NOT NULL
);
`;

export class SqliteTieringRecords {
  private readonly stmt;

  constructor(
    db: Database.Database,
    private readonly group: SqliteGroupCommit,
  ) {
    this.stmt = {
      get: db.prepare<[Buffer], string>('SELECT record FROM tiering_records WHERE prefix = ?').pluck(),
      put: db.prepare<[Buffer, string]>(
        'INSERT INTO tiering_records (prefix, record) VALUES (?, ?) ON CONFLICT (prefix) DO UPDATE SET record = excluded.record',
      ),
      first: db.prepare<[number], { prefix: Buffer; record: string }>('SELECT prefix, record FROM tiering_records ORDER BY prefix LIMIT ?'),
      after: db.prepare<[Buffer, number], { prefix: Buffer; record: string }>(
        'SELECT prefix, record FROM tiering_records WHERE prefix > ? ORDER BY prefix LIMIT ?',
      ),
    };
  }

  async get(prefix: string): Promise<unknown | null> {
    const json = this.group.read(() => this.stmt.get.get(prefixBytes(prefix)));
    return json === undefined ? null : (JSON.parse(json) as unknown);
  }

  async update(prefix: string, update: (current: unknown | null) => unknown | null): Promise<unknown | null> {
    const key = prefixBytes(prefix);
    return this.group.submit(() => {
      const json = this.stmt.get.get(key);
      const current = json === undefined ? null : (JSON.parse(json) as unknown);
      const next = update(current);
      if (next === null) return current;
      const text = JSON.stringify(next);
      assert(Buffer.byteLength(text) <= TIERING_RECORD_LIMITS.bytesMax, 'a tiering record fits TIERING_RECORD_LIMITS.bytesMax');
      this.stmt.put.run(key, text);
      return JSON.parse(text) as unknown;
    });
  }

  async list(startAfter: string | null, limit: number): Promise<{ prefix: string; record: unknown }[]> {
    assert(Number.isInteger(limit) && limit >= 0, 'limit is an integer >= 0');
    if (limit === 0) return [];
    const rows = this.group.read(() =>
      startAfter === null ? this.stmt.first.all(limit) : this.stmt.after.all(prefixBytes(startAfter), limit),
    );
    return rows.map((row) => ({ prefix: row.prefix.toString('utf8'), record: JSON.parse(row.record) as unknown }));
  }
}

function prefixBytes(prefix: string): Buffer {
  const bytes = Buffer.from(prefix, 'utf8');
  assert(bytes.toString('utf8') === prefix, 'prefix is well-formed UTF-16');
  assert(bytes.length <= TIERING_RECORD_LIMITS.prefixBytesMax, 'prefix fits TIERING_RECORD_LIMITS.prefixBytesMax');
  return bytes;
}
