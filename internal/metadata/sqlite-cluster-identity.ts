/**
 * The cluster identity in the embedded store (MetadataStore.getClusterIdentity and friends): the one row of the
 * table below, holding the record in its envelope (./cluster-identity-record.ts).
 *
 *   cluster_identity (name TEXT PRIMARY KEY CHECK (name = 'cluster'),   -- one row at most
 *                     record TEXT NOT NULL)                             -- the sealed record
 *
 * The table needs no schema version: older code never reads it, and it is created by the first write (inside its
 * batch transaction), so opening a current file still writes nothing. A file without it has no record.
 * Writes run inside one batch transaction of the group commit, which holds the file's write lock: a create and a
 * change are atomic with respect to every other process sharing the file.
 */
import type Database from 'better-sqlite3';
import { StrataError } from '../core/errors.js';
import {
  CLUSTER_IDENTITY_RECORD_KEY,
  changeable,
  checkedForWrite,
  normalisedNodeLists,
  openClusterIdentity,
  sealClusterIdentity,
  withDataFormat,
} from './cluster-identity-record.js';
import type { ClusterIdentityRecord, ClusterNodeLists } from './metadata-store.js';
import type { SqliteGroupCommit } from './sqlite-group-commit.js';

const CREATE_SQL = `
CREATE TABLE IF NOT EXISTS cluster_identity (
  name TEXT PRIMARY KEY CHECK (name = '${CLUSTER_IDENTITY_RECORD_KEY}'),
  record TEXT NOT NULL
);
`;
const WHERE = 'embedded metadata store (SQLite)';

export class SqliteClusterIdentity {
  constructor(
    private readonly db: Database.Database,
    private readonly group: SqliteGroupCommit,
    /** Notes a record that failed verification in the store's integrity ledger; returns the error. */
    private readonly noteCorrupt: (error: unknown) => unknown,
  ) {}

  async get(): Promise<ClusterIdentityRecord | null> {
    return this.group.read(() => this.readRow());
  }

  async create(proposed: ClusterIdentityRecord): Promise<ClusterIdentityRecord> {
    const record = checkedForWrite(proposed);
    return this.group.submit(() => {
      this.db.exec(CREATE_SQL);
      const current = this.readRow();
      if (current !== null) return current;
      this.db.prepare('INSERT INTO cluster_identity (name, record) VALUES (?, ?)').run(CLUSTER_IDENTITY_RECORD_KEY, sealClusterIdentity(record));
      return record;
    });
  }

  async updateNodes(update: (current: ClusterIdentityRecord) => ClusterNodeLists | null): Promise<ClusterIdentityRecord> {
    return this.group.submit(() => {
      const current = this.readRow();
      if (current === null) {
        throw new StrataError('METADATA_UNAVAILABLE', `${WHERE}: there is no cluster identity to change (a storage node creates it when it starts)`);
      }
      const lists = update(changeable(current, WHERE));
      if (lists === null) return current;
      const next = checkedForWrite({ ...current, ...normalisedNodeLists(lists) });
      this.db.prepare('UPDATE cluster_identity SET record = ? WHERE name = ?').run(sealClusterIdentity(next), CLUSTER_IDENTITY_RECORD_KEY);
      return next;
    });
  }

  /** The data format bump: one change inside the batch transaction, which holds the file's write lock. */
  async raiseDataFormat(to: number): Promise<ClusterIdentityRecord> {
    return this.group.submit(() => {
      const current = this.readRow();
      if (current === null) {
        throw new StrataError('METADATA_UNAVAILABLE', `${WHERE}: there is no cluster identity to change (a storage node creates it when it starts)`);
      }
      const next = withDataFormat(changeable(current, WHERE), to);
      if (next === null) return current;
      this.db.prepare('UPDATE cluster_identity SET record = ? WHERE name = ?').run(sealClusterIdentity(next), CLUSTER_IDENTITY_RECORD_KEY);
      return next;
    });
  }

  /** The stored record, null when there is none (or no table yet); METADATA_CORRUPT when it fails verification. */
  private readRow(): ClusterIdentityRecord | null {
    const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cluster_identity'").pluck().get();
    if (exists === undefined) return null;
    const text = this.db.prepare<[string], string>('SELECT record FROM cluster_identity WHERE name = ?').pluck().get(CLUSTER_IDENTITY_RECORD_KEY);
    if (text === undefined) return null;
    try {
      return openClusterIdentity(text, WHERE);
    } catch (error) {
      throw this.noteCorrupt(error);
    }
  }
}
