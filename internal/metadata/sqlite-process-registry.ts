/**
 * The process registry in the embedded store (MetadataStore.registerProcess and friends), for processes that run
 * separately on one machine and share the data directory's metadata file:
 *
 *   processes (id TEXT PRIMARY KEY,
 *              role TEXT,                 -- 'storage-node' | 'gateway' | 'healer'
 *              format_max INTEGER,        -- the newest data format the process reads
 *              last_heartbeat_ms INTEGER,
 *              expires_ms INTEGER,        -- alive until then (last heartbeat + ttl)
 *              linger_until_ms INTEGER)   -- listed until then (last heartbeat + lingerTtls x ttl)
 *
 * Like `cluster_identity` it needs no schema version: older code never reads it, and it is created by the first
 * registration (inside its batch transaction), so opening a file still writes nothing. Rows past their linger time
 * are deleted by the next registration, which keeps the table as small as the set of recent processes.
 */
import type Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import type { Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import {
  PROCESS_ID_PATTERN,
  PROCESS_REGISTRY_LIMITS,
  type ProcessRegistration,
  type ProcessRole,
  type RegisteredProcess,
} from './metadata-store.js';
import type { SqliteGroupCommit } from './sqlite-group-commit.js';

const CREATE_SQL = `
CREATE TABLE IF NOT EXISTS processes (
  id                TEXT PRIMARY KEY,
  role              TEXT NOT NULL,
  format_max        INTEGER NOT NULL,
  last_heartbeat_ms INTEGER NOT NULL,
  expires_ms        INTEGER NOT NULL,
  linger_until_ms   INTEGER NOT NULL
) WITHOUT ROWID;
`;

interface ProcessRow {
  id: string;
  role: string;
  format_max: number;
  last_heartbeat_ms: number;
  expires_ms: number;
}

const ROLES: readonly ProcessRole[] = ['storage-node', 'gateway', 'healer'];

/** A registration comes from the process's own wiring, so a bad one is a programmer error. */
export function assertProcessRegistration(p: ProcessRegistration, ttlMs: number): void {
  assert(PROCESS_ID_PATTERN.test(p.id), 'process id matches PROCESS_ID_PATTERN');
  assert(ROLES.includes(p.role), 'process role is known');
  assert(Number.isSafeInteger(p.formatMax) && p.formatMax >= 1, 'process formatMax is an integer >= 1');
  assert(Number.isSafeInteger(ttlMs) && ttlMs > 0, 'ttlMs is an integer > 0');
}

export function tooManyProcesses(count: number): StrataError {
  return new StrataError(
    'METADATA_UNAVAILABLE',
    `the process registry lists more than ${PROCESS_REGISTRY_LIMITS.processesMax} processes (${count}); entries lapse ` +
      `${PROCESS_REGISTRY_LIMITS.lingerTtls} ttls after a process stops`,
  );
}

/** A role read back from a store: one this release does not know is from a newer release, listed as written. */
export function roleOf(text: string): ProcessRole {
  return text as ProcessRole;
}

export class SqliteProcessRegistry {
  constructor(
    private readonly db: Database.Database,
    private readonly group: SqliteGroupCommit,
    private readonly clock: Clock,
  ) {}

  async register(p: ProcessRegistration, ttlMs: number): Promise<void> {
    assertProcessRegistration(p, ttlMs);
    return this.group.submit(() => {
      this.db.exec(CREATE_SQL);
      const nowMs = this.clock.nowMs();
      this.db.prepare('DELETE FROM processes WHERE linger_until_ms <= ?').run(nowMs);
      this.db
        .prepare(
          'INSERT INTO processes (id, role, format_max, last_heartbeat_ms, expires_ms, linger_until_ms) VALUES (?, ?, ?, ?, ?, ?) ' +
            'ON CONFLICT (id) DO UPDATE SET role = excluded.role, format_max = excluded.format_max, ' +
            'last_heartbeat_ms = excluded.last_heartbeat_ms, expires_ms = excluded.expires_ms, linger_until_ms = excluded.linger_until_ms',
        )
        .run(p.id, p.role, p.formatMax, nowMs, nowMs + ttlMs, nowMs + PROCESS_REGISTRY_LIMITS.lingerTtls * ttlMs);
    });
  }

  async deregister(id: string): Promise<void> {
    if (!PROCESS_ID_PATTERN.test(id)) return;
    return this.group.submit(() => {
      if (!this.tableExists()) return;
      this.db.prepare('DELETE FROM processes WHERE id = ?').run(id);
    });
  }

  async list(): Promise<RegisteredProcess[]> {
    const rows = this.group.read(() => {
      if (!this.tableExists()) return [];
      // One more than the limit, so that a registry beyond it is reported instead of silently cut.
      return this.db
        .prepare<[number, number], ProcessRow>(
          'SELECT id, role, format_max, last_heartbeat_ms, expires_ms FROM processes WHERE linger_until_ms > ? ORDER BY id LIMIT ?',
        )
        .all(this.clock.nowMs(), PROCESS_REGISTRY_LIMITS.processesMax + 1);
    });
    if (rows.length > PROCESS_REGISTRY_LIMITS.processesMax) throw tooManyProcesses(rows.length);
    const nowMs = this.clock.nowMs();
    return rows.map((row) => ({
      id: row.id,
      role: roleOf(row.role),
      formatMax: row.format_max,
      alive: row.expires_ms > nowMs,
      lastHeartbeatMs: row.last_heartbeat_ms,
    }));
  }

  private tableExists(): boolean {
    return this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'processes'").pluck().get() !== undefined;
  }
}
