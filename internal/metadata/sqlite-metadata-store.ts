import type Database from 'better-sqlite3';
import { assert } from '../core/assert.js';
import { systemClock, type Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import type { Manifest, StoredManifest } from '../manifest/manifest.js';
import type {
  AbortRequest,
  ChangeWatchListener,
  HealerAction,
  ManifestChange,
  CommitRequest,
  CommitResult,
  IdempotencyClaim,
  IdempotencyRecord,
  IdempotentResponse,
  LeaderTerm,
  ManifestWatch,
  ManifestWatchListener,
  MetadataStore,
  NodeMembershipState,
  NodeRegistration,
  RegisteredNode,
} from './metadata-store.js';
import { HEALER_JOURNAL_LIMITS, NODE_REGISTRY_LIMITS, idempotencyClaimMayTake } from './metadata-store.js';
import {
  assertMembershipState,
  assertRegistration,
  isPossibleNodeId,
  nodeNotDrained,
  nodeNotFound,
  tooManyNodes,
} from './node-registry.js';
import { SqliteGroupCommit, openSqliteDatabase, type GroupCommitStats } from './sqlite-group-commit.js';
import { SqliteTieringRecords, TIERING_RECORDS_SQL } from './sqlite-tiering-records.js';
import { SqliteClusterIdentity } from './sqlite-cluster-identity.js';
import { SqliteProcessRegistry } from './sqlite-process-registry.js';
import type { ClusterIdentityRecord, ClusterNodeLists, ProcessRegistration, RegisteredProcess } from './metadata-store.js';
import type { Logger } from '../log/logger.js';
import type { MetadataIntegrity, ReplaceCorruptManifestRequest, ReplaceCorruptManifestResult } from './metadata-store.js';
import { hintsOfDecodedManifest, hintsOfManifestJson, refusalOf } from './damaged-manifest-hints.js';
import { decodeManifestBinary, dictionaryNeeds, encodeManifestRecord, isReadableManifestFormat } from '../manifest/manifest-codec.js';
import { DICTIONARY_SQL, SqliteDictionary } from './sqlite-dictionary.js';
import { IntegrityLedger } from './integrity-ledger.js';
import {
  SqliteIntegrityChecks,
  inlineIntegrityRunner,
  workerIntegrityRunner,
  type SqliteIntegrityRunner,
} from './sqlite-integrity-checks.js';
import {
  CorruptRow,
  abortChecksum,
  corruptRowError,
  counterChecksum,
  idempotencyChecksum,
  manifestChecksumV2,
  manifestRowV2ChecksumHolds,
  sealLegacyRecords,
  verifyAbortRow,
  verifyAnyManifestRow,
  verifyCounter,
  verifyIdempotencyRow,
  type AbortRow,
  type AnyManifestRow,
  type IdempotencyRow,
  type KeyedManifestRow,
  type KeyedManifestRowV2,
} from './sqlite-records.js';

/**
 * The embedded MetadataStore: one SQLite file (WAL journal, synchronous=FULL) with group commit. The schema and
 * the reasons behind it are in ./README.md.
 */

export const SQLITE_METADATA_LIMITS = {
  /** Mutations applied in one transaction (one fsync). */
  batchOpsMax: 512,
  /** Mutations waiting for a transaction before new ones are refused with METADATA_UNAVAILABLE. */
  queueOpsMax: 100_000,
  /**
   * How often manifest watches look for changes committed by other processes sharing the file; changes made
   * through this store are reported right after their batch commits.
   */
  watchPollMs: 50,
  /** Changed manifests read per query by a manifest watch. */
  watchPageRowsMax: 1_000,
  /**
   * History rows read per query by a change watch. Smaller than a manifest watch's page: a gateway pausing a
   * slow client's stream closes the watch mid-page, and whatever the page held beyond that was read for nothing.
   */
  changePageRowsMax: 256,
  /**
   * Commits the change history (watchChanges, GET /watch) keeps at least; a watch resuming from further back gets
   * HISTORY_COMPACTED. About 100 bytes per entry plus the key.
   */
  changeHistoryRowsMax: 100_000,
  /** The history is trimmed back to `changeHistoryRowsMax` once every this many recorded commits (per process). */
  changeHistoryPruneEvery: 256,
} as const;

/**
 * Bumped whenever the schema changes; a newer file is refused rather than misread. 2: the `nodes` table.
 * 3: the change history (`changes`, counter `history_floor`) and `healer_journal`; refusing version-2 code keeps
 * an older process from committing without recording its changes in the history. 4: idempotency leases and
 * outcomes committed with the manifest (`attempt_id`, `lease_until_ms`, `version`); refusing version-3 code keeps an
 * older process from committing a mutation whose idempotency claim was taken over. 5: the record envelope (a
 * `checksum` column on manifests, abort_records, counters and idempotency, verified on every read); refusing
 * version-4 code keeps an older process from writing records without checksums, which would read as corrupt.
 * 6: binary manifests in `manifests_v2` (WITHOUT ROWID, raw checksums), the manifest dictionary, and `changes`
 * recording every manifest change with an integer kind (manifest watches read it); refusing version-5 code keeps
 * an older process from reading a key's stale v1 row, or committing a change the watches never see.
 */
export const SQLITE_METADATA_SCHEMA_VERSION = 6;

export interface SqliteMetadataStoreOptions {
  /** The database file; its directory is created when missing. */
  path: string;
  /** Lease, node-registration and idempotency expiry are judged by this clock. Defaults to the system clock. */
  clock?: Clock;
  batchOpsMax?: number;
  queueOpsMax?: number;
  /** SQLITE_METADATA_LIMITS.changeHistoryRowsMax by default (tests use a small one). */
  changeHistoryRowsMax?: number;
  /** Where records that fail verification and failed integrity checks are reported (besides integrity()). */
  log?: Logger;
  /**
   * Where SQLite's integrity checks run: 'worker' (the default: a worker thread with its own read-only
   * connection), or 'inline' on this connection, only for the in-process simulation, whose scheduler must see
   * all work finish.
   */
  integrityChecks?: 'worker' | 'inline';
  /** Full integrity checks run at least this often (SQLITE_INTEGRITY_LIMITS.intervalMs by default). */
  integrityCheckIntervalMs?: number;
}

/**
 * `changes` from schema 6: kind 0 put, 1 delete (both create a version; watchChanges reports them), 2 a healer's
 * update that keeps the version, 3 a purged tombstone (manifest watches report those too).
 */
const CHANGES_V6_TABLE = `CREATE TABLE IF NOT EXISTS changes (
  revision INTEGER PRIMARY KEY,
  key      BLOB NOT NULL,
  kind     INTEGER NOT NULL CHECK (kind IN (0, 1, 2, 3))
);`;

/** The kinds of `changes` rows. */
const CHANGE_KIND = { put: 0, delete: 1, update: 2, purge: 3 } as const;
type ChangeKindCode = (typeof CHANGE_KIND)[keyof typeof CHANGE_KIND];

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS counters (
  name     TEXT PRIMARY KEY,
  value    INTEGER NOT NULL,
  checksum TEXT
) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('revision', 0);

CREATE TABLE IF NOT EXISTS manifests (
  key          BLOB PRIMARY KEY CHECK (typeof(key) = 'blob'),
  manifest     TEXT NOT NULL,
  mod_revision INTEGER NOT NULL,
  deleted      INTEGER NOT NULL CHECK (deleted IN (0, 1)),
  checksum     TEXT
);
CREATE INDEX IF NOT EXISTS manifests_live_key ON manifests (key) WHERE deleted = 0;
-- Manifest watches read the changes after a revision.
CREATE INDEX IF NOT EXISTS manifests_mod_revision ON manifests (mod_revision);

CREATE TABLE IF NOT EXISTS abort_records (
  write_id   TEXT PRIMARY KEY,
  key        BLOB NOT NULL,
  created_ms INTEGER NOT NULL,
  checksum   TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS abort_records_created ON abort_records (created_ms);

CREATE TABLE IF NOT EXISTS idempotency (
  token          TEXT PRIMARY KEY,
  fingerprint    TEXT NOT NULL,
  state          TEXT NOT NULL CHECK (state IN ('pending', 'done')),
  response       TEXT,
  expires_ms     INTEGER NOT NULL,
  attempt_id     TEXT,
  lease_until_ms INTEGER NOT NULL DEFAULT 0,
  version        TEXT,
  checksum       TEXT
);
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires_ms);

CREATE TABLE IF NOT EXISTS repair_hints (
  seq INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS leaders (
  name       TEXT PRIMARY KEY,
  holder     TEXT,
  term       INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- The change history: one row per manifest change (kinds: CHANGES_V6_TABLE). Every commit that created a
-- version with a revision above the counter 'history_floor' is here; a file upgraded from version 2 starts its
-- history at its revision then. Every other manifest change (healer updates, purges) above 'manifest_watch_floor'
-- is here too: a file upgraded from version 5 had not recorded them, so manifest watches start there.
${CHANGES_V6_TABLE}
INSERT OR IGNORE INTO counters (name, value) SELECT 'history_floor', value FROM counters WHERE name = 'revision';
INSERT OR IGNORE INTO counters (name, value) SELECT 'manifest_watch_floor', value FROM counters WHERE name = 'revision';

-- Schema 6: binary manifests (internal/manifest/manifest-codec.ts), the key stored once (no rowid, no automatic
-- index). No index on deleted or mod_revision: listKeys reads the table in key order skipping the few tombstones,
-- and manifest watches read 'changes'. A key has a row here or in 'manifests' (v1, JSON), never both: every
-- commit writes here and deletes the key's v1 row in its transaction.
CREATE TABLE IF NOT EXISTS manifests_v2 (
  key          BLOB PRIMARY KEY CHECK (typeof(key) = 'blob'),
  manifest     BLOB NOT NULL,
  mod_revision INTEGER NOT NULL,
  deleted      INTEGER NOT NULL CHECK (deleted IN (0, 1)),
  checksum     BLOB NOT NULL
) WITHOUT ROWID;
${DICTIONARY_SQL}

CREATE TABLE IF NOT EXISTS healer_journal (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms  INTEGER NOT NULL,
  kind   TEXT NOT NULL,
  key    TEXT NOT NULL,
  detail TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS nodes (
  id                TEXT PRIMARY KEY,
  address           TEXT NOT NULL,
  zone              TEXT,
  state             TEXT NOT NULL CHECK (state IN ('active', 'draining')),
  last_heartbeat_ms INTEGER NOT NULL,
  expires_ms        INTEGER NOT NULL
) WITHOUT ROWID;
`;

interface SqliteWatch {
  last: number;
  listener: ManifestWatchListener;
}
interface ChangeRow {
  revision: number;
  key: Buffer;
  kind: ChangeKindCode;
}
interface SqliteChangeWatch {
  /** Every change up to here has been reported. */
  last: number;
  prefix: Buffer;
  listener: ChangeWatchListener;
  /** A page was full: the next one is read on the next turn of the event loop, not synchronously. */
  pending: boolean;
}
/** Columns schema version 4 added to `idempotency`; a version-3 file gets them on open. */
const IDEMPOTENCY_V4_COLUMNS: Record<string, string> = {
  attempt_id: 'attempt_id TEXT',
  lease_until_ms: 'lease_until_ms INTEGER NOT NULL DEFAULT 0',
  version: 'version TEXT',
};
/** Schema version 5: the record envelope's checksum column, per table. */
const CHECKSUM_COLUMN: Record<string, string> = { checksum: 'checksum TEXT' };
const SEALED_TABLES = ['manifests', 'abort_records', 'counters', 'idempotency'] as const;
interface NodeRow {
  id: string;
  address: string;
  zone: string | null;
  state: NodeMembershipState;
  last_heartbeat_ms: number;
  expires_ms: number;
}
interface LeaderRow {
  holder: string | null;
  term: number;
  expires_ms: number;
}

function utf8(key: string): Buffer {
  const bytes = Buffer.from(key, 'utf8');
  // A lone surrogate would be encoded as U+FFFD and collide with another key; keys are validated upstream.
  assert(bytes.toString('utf8') === key, 'key is well-formed UTF-16 (no lone surrogates)');
  return bytes;
}

/** The smallest byte string greater than every string that starts with `prefix` (non-empty). */
function prefixUpperBound(prefix: Buffer): Buffer {
  const upper = Buffer.from(prefix);
  const last = upper.length - 1;
  // UTF-8 never contains 0xFF, so incrementing the last byte cannot overflow.
  assert(last >= 0 && upper[last] !== 0xff, 'prefix is non-empty UTF-8');
  upper[last] = (upper[last] ?? 0) + 1;
  return upper;
}

function assertCount(value: number, name: string): void {
  assert(Number.isInteger(value) && value >= 0, `${name} is an integer >= 0`);
}


export class SqliteMetadataStore implements MetadataStore {
  private readonly group: SqliteGroupCommit;
  private readonly clock: Clock;
  private readonly stmt;
  private readonly db: Database.Database;
  private readonly tiering: SqliteTieringRecords;
  private readonly cluster: SqliteClusterIdentity;
  private readonly processes: SqliteProcessRegistry;
  private readonly watches = new Set<SqliteWatch>();
  /** Manifests written since the watches were last polled, by revision, with their stored bytes (verifyWatchedRow). */
  private readonly recentlyWritten = new Map<number, { bytes: Buffer; manifest: Manifest }>();
  private readonly changeWatches = new Set<SqliteChangeWatch>();
  private watchTimer: NodeJS.Timeout | null = null;
  private readonly historyRowsMax: number;
  private historyRecordedSincePrune = 0;
  private readonly ledger: IntegrityLedger;
  private readonly checks: SqliteIntegrityChecks;
  private readonly dictionary: SqliteDictionary;

  private constructor(
    db: Database.Database,
    group: SqliteGroupCommit,
    clock: Clock,
    historyRowsMax: number,
    options: SqliteMetadataStoreOptions,
  ) {
    this.db = db;
    this.group = group;
    this.clock = clock;
    this.historyRowsMax = historyRowsMax;
    this.stmt = SqliteMetadataStore.prepare(db);
    this.dictionary = new SqliteDictionary(db);
    this.tiering = new SqliteTieringRecords(db, group);
    // Changes made through this store reach its watches as soon as their batch commits; the dictionary entries it
    // assigned are committed now, so they may be cached.
    group.onCommitted = () => {
      this.dictionary.settled();
      this.pollWatches();
    };
    this.ledger = new IntegrityLedger(clock, options.log, 'embedded metadata store (SQLite)');
    // SQLite reports a damaged page it meets on a read as SQLITE_CORRUPT: that request fails, the others go on.
    group.onCorrupt = (error) => this.ledger.noteError(error, 'read');
    this.cluster = new SqliteClusterIdentity(db, group, (error) => this.ledger.noteError(error, 'cluster identity'));
    this.processes = new SqliteProcessRegistry(db, group, clock);
    const runner: SqliteIntegrityRunner =
      options.integrityChecks === 'inline' ? inlineIntegrityRunner(db) : workerIntegrityRunner(options.path);
    this.checks = new SqliteIntegrityChecks(
      runner,
      () => this.reindex(),
      this.ledger,
      clock,
      options.log,
      `metadata file ${options.path}`,
      {
        ...(options.integrityCheckIntervalMs === undefined ? {} : { intervalMs: options.integrityCheckIntervalMs }),
        // Inline checks run only in the simulation, whose tiny files make the rate bound moot and whose scheduler
        // would take a real timer's wait for a stall.
        ...(options.integrityChecks === 'inline' ? { dutyFactor: 0 } : {}),
      },
    );
    this.checks.start();
  }

  static async open(options: SqliteMetadataStoreOptions): Promise<SqliteMetadataStore> {
    try {
      return await SqliteMetadataStore.openFile(options);
    } catch (error) {
      throw withDamageAdvice(error, options.path);
    }
  }

  private static async openFile(options: SqliteMetadataStoreOptions): Promise<SqliteMetadataStore> {
    const label = 'metadata store';
    const db = openSqliteDatabase(options.path, 'METADATA_UNAVAILABLE', label);
    try {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SQLITE_METADATA_SCHEMA_VERSION) {
        throw new Error(`schema version ${version} is newer than ${SQLITE_METADATA_SCHEMA_VERSION}`);
      }
      // A current file is opened without writing anything: a damaged page that the schema statements would touch
      // then fails only the requests that need it (and the integrity check reports it), not the whole start.
      if (version < SQLITE_METADATA_SCHEMA_VERSION) {
        db.transaction(() => {
          db.exec(SCHEMA_SQL);
          migrateChangeKinds(db);
          addMissingColumns(db, 'idempotency', IDEMPOTENCY_V4_COLUMNS);
          for (const table of SEALED_TABLES) addMissingColumns(db, table, CHECKSUM_COLUMN);
          db.exec(TIERING_RECORDS_SQL);
          // Upgraded on open rather than on rewrite: from version 5 on, a row without a checksum is a damaged row.
          const { sealed, refused } = sealLegacyRecords(db, options.log);
          if (version > 0 && sealed + refused > 0) {
            options.log?.info({ sealed, refused, fromVersion: version }, 'metadata records of the previous release sealed in the record envelope');
          }
          db.pragma(`user_version = ${SQLITE_METADATA_SCHEMA_VERSION}`);
        }).immediate();
      }
      const group = new SqliteGroupCommit(db, {
        batchOpsMax: options.batchOpsMax ?? SQLITE_METADATA_LIMITS.batchOpsMax,
        queueOpsMax: options.queueOpsMax ?? SQLITE_METADATA_LIMITS.queueOpsMax,
        unavailableCode: 'METADATA_UNAVAILABLE',
        unknownCode: 'COMMIT_UNKNOWN',
        corruptCode: 'METADATA_CORRUPT',
        label,
      });
      const historyRowsMax = options.changeHistoryRowsMax ?? SQLITE_METADATA_LIMITS.changeHistoryRowsMax;
      assert(Number.isInteger(historyRowsMax) && historyRowsMax >= 1, 'changeHistoryRowsMax >= 1');
      return new SqliteMetadataStore(db, group, options.clock ?? systemClock, historyRowsMax, options);
    } catch (err) {
      db.close();
      if (err instanceof StrataError) throw err;
      throw new StrataError('METADATA_UNAVAILABLE', `${label}: cannot open ${options.path}: ${(err as Error).message}`);
    }
  }

  private static prepare(db: Database.Database) {
    // Listings read each key's record too, so that an index entry naming the wrong row is noticed, not listed.
    // On manifests_v2 the same statement walks the table itself in key order (no index to disagree with it).
    const listSql = (table: string, lower: '>' | '>=', upper: boolean) =>
      `SELECT key, manifest, mod_revision, deleted, checksum FROM ${table} WHERE deleted = 0 AND key ${lower} ? ` +
      `${upper ? 'AND key < ?' : ''} ORDER BY key LIMIT ?`;
    const manifestColumns = 'key, manifest, mod_revision, deleted, checksum';
    const v2 = 'manifests_v2';
    return {
      counter: db.prepare<[string], { value: number; checksum: string | null }>('SELECT value, checksum FROM counters WHERE name = ?'),
      setCounter: db.prepare<[number, string, string]>('UPDATE counters SET value = ?, checksum = ? WHERE name = ?'),

      getManifest: db.prepare<[Buffer], KeyedManifestRow>(`SELECT ${manifestColumns} FROM manifests WHERE key = ?`),
      getManifestV2: db.prepare<[Buffer], KeyedManifestRowV2>(`SELECT ${manifestColumns} FROM ${v2} WHERE key = ?`),
      putManifestV2: db.prepare<[Buffer, Buffer, number, number, Buffer]>(
        `INSERT INTO ${v2} (key, manifest, mod_revision, deleted, checksum) VALUES (?, ?, ?, ?, ?) ` +
          'ON CONFLICT (key) DO UPDATE SET manifest = excluded.manifest, mod_revision = excluded.mod_revision, ' +
          'deleted = excluded.deleted, checksum = excluded.checksum',
      ),
      deleteManifestV1: db.prepare<[Buffer]>('DELETE FROM manifests WHERE key = ?'),
      purgeTombstone: db.prepare<[Buffer, number]>(
        'DELETE FROM manifests WHERE key = ? AND mod_revision = ? AND deleted = 1',
      ),
      purgeTombstoneV2: db.prepare<[Buffer, number]>(
        `DELETE FROM ${v2} WHERE key = ? AND mod_revision = ? AND deleted = 1`,
      ),
      listFrom: db.prepare<[Buffer, number], KeyedManifestRow>(listSql('manifests', '>=', false)),
      listAfter: db.prepare<[Buffer, number], KeyedManifestRow>(listSql('manifests', '>', false)),
      listFromBelow: db.prepare<[Buffer, Buffer, number], KeyedManifestRow>(listSql('manifests', '>=', true)),
      listAfterBelow: db.prepare<[Buffer, Buffer, number], KeyedManifestRow>(listSql('manifests', '>', true)),
      listFromV2: db.prepare<[Buffer, number], KeyedManifestRowV2>(listSql(v2, '>=', false)),
      listAfterV2: db.prepare<[Buffer, number], KeyedManifestRowV2>(listSql(v2, '>', false)),
      listFromBelowV2: db.prepare<[Buffer, Buffer, number], KeyedManifestRowV2>(listSql(v2, '>=', true)),
      listAfterBelowV2: db.prepare<[Buffer, Buffer, number], KeyedManifestRowV2>(listSql(v2, '>', true)),
      scanFirst: db.prepare<[number], KeyedManifestRow>(`SELECT ${manifestColumns} FROM manifests ORDER BY key LIMIT ?`),
      scanAfter: db.prepare<[Buffer, number], KeyedManifestRow>(
        `SELECT ${manifestColumns} FROM manifests WHERE key > ? ORDER BY key LIMIT ?`,
      ),
      scanFirstV2: db.prepare<[number], KeyedManifestRowV2>(`SELECT ${manifestColumns} FROM ${v2} ORDER BY key LIMIT ?`),
      scanAfterV2: db.prepare<[Buffer, number], KeyedManifestRowV2>(
        `SELECT ${manifestColumns} FROM ${v2} WHERE key > ? ORDER BY key LIMIT ?`,
      ),

      getAbort: db.prepare<[string], AbortRow>('SELECT key, created_ms, checksum FROM abort_records WHERE write_id = ?'),
      insertAbort: db.prepare<[string, Buffer, number, string]>(
        'INSERT INTO abort_records (write_id, key, created_ms, checksum) VALUES (?, ?, ?, ?)',
      ),
      expiredAborts: db.prepare<[number], AbortRow & { write_id: string }>(
        'SELECT write_id, key, created_ms, checksum FROM abort_records WHERE created_ms < ?',
      ),
      deleteAbort: db.prepare<[string]>('DELETE FROM abort_records WHERE write_id = ?'),

      getIdempotency: db.prepare<[string], IdempotencyRow>(
        'SELECT fingerprint, state, response, expires_ms, attempt_id, lease_until_ms, version, checksum FROM idempotency WHERE token = ?',
      ),
      reserveIdempotency: db.prepare<[string, string, number, string, number, string]>(
        'INSERT INTO idempotency (token, fingerprint, state, response, expires_ms, attempt_id, lease_until_ms, version, checksum) ' +
          "VALUES (?, ?, 'pending', NULL, ?, ?, ?, NULL, ?) " +
          'ON CONFLICT (token) DO UPDATE SET fingerprint = excluded.fingerprint, state = excluded.state, ' +
          'response = NULL, expires_ms = excluded.expires_ms, attempt_id = excluded.attempt_id, ' +
          'lease_until_ms = excluded.lease_until_ms, version = NULL, checksum = excluded.checksum',
      ),
      // Only the claim that holds the token completes or releases it: a superseded attempt changes nothing.
      completeIdempotency: db.prepare<[string, string | null, string, string, string]>(
        "UPDATE idempotency SET state = 'done', response = ?, version = ?, checksum = ? WHERE token = ? AND state = 'pending' AND attempt_id = ?",
      ),
      releaseIdempotency: db.prepare<[string, string]>(
        "DELETE FROM idempotency WHERE token = ? AND state = 'pending' AND attempt_id = ?",
      ),
      expiredIdempotency: db.prepare<[number], IdempotencyRow & { token: string }>(
        'SELECT token, fingerprint, state, response, expires_ms, attempt_id, lease_until_ms, version, checksum FROM idempotency WHERE expires_ms <= ?',
      ),
      deleteIdempotency: db.prepare<[string]>('DELETE FROM idempotency WHERE token = ?'),

      addHint: db.prepare<[string]>('INSERT OR IGNORE INTO repair_hints (key) VALUES (?)'),
      firstHints: db.prepare<[number], { seq: number; key: string }>(
        'SELECT seq, key FROM repair_hints ORDER BY seq LIMIT ?',
      ),
      deleteHint: db.prepare<[number]>('DELETE FROM repair_hints WHERE seq = ?'),

      getLeader: db.prepare<[string], LeaderRow>('SELECT holder, term, expires_ms FROM leaders WHERE name = ?'),
      putLeader: db.prepare<[string, string, number, number]>(
        'INSERT INTO leaders (name, holder, term, expires_ms) VALUES (?, ?, ?, ?) ' +
          'ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, term = excluded.term, ' +
          'expires_ms = excluded.expires_ms',
      ),
      vacateLeader: db.prepare<[string, string, number]>(
        'UPDATE leaders SET holder = NULL, expires_ms = 0 WHERE name = ? AND holder = ? AND term = ?',
      ),

      // A refresh keeps the state an operator set; only a new row starts 'active'.
      registerNode: db.prepare<[string, string, string | null, number, number]>(
        "INSERT INTO nodes (id, address, zone, state, last_heartbeat_ms, expires_ms) VALUES (?, ?, ?, 'active', ?, ?) " +
          'ON CONFLICT (id) DO UPDATE SET address = excluded.address, zone = excluded.zone, ' +
          'last_heartbeat_ms = excluded.last_heartbeat_ms, expires_ms = excluded.expires_ms',
      ),
      listNodes: db.prepare<[number], NodeRow>(
        'SELECT id, address, zone, state, last_heartbeat_ms, expires_ms FROM nodes ORDER BY id LIMIT ?',
      ),
      nodeState: db.prepare<[string], NodeMembershipState>('SELECT state FROM nodes WHERE id = ?').pluck(),
      setNodeState: db.prepare<[string, string]>('UPDATE nodes SET state = ? WHERE id = ?'),
      expireNode: db.prepare<[number, string]>('UPDATE nodes SET expires_ms = ? WHERE id = ?'),
      deleteNode: db.prepare<[string]>('DELETE FROM nodes WHERE id = ?'),

      historyFloor: db.prepare<[], number>("SELECT value FROM counters WHERE name = 'history_floor'").pluck(),
      // Manifest watches need every change, so a file upgraded from version 5 serves them only from its upgrade on.
      manifestWatchFloor: db
        .prepare<[], number | null>("SELECT max(value) FROM counters WHERE name IN ('history_floor', 'manifest_watch_floor')")
        .pluck(),
      changeKeyAt: db.prepare<[number], Buffer>('SELECT key FROM changes WHERE revision = ?').pluck(),
      recordChange: db.prepare<[number, Buffer, number]>('INSERT INTO changes (revision, key, kind) VALUES (?, ?, ?)'),
      // No index on `changes.key`: only the rare repair of a damaged record reads it (a scan of at most
      // changeHistoryRowsMax rows, a few ms), and an index would cost every commit.
      lastVersionChangeOf: db
        .prepare<[Buffer], ChangeKindCode>(
          `SELECT kind FROM changes WHERE key = ? AND kind IN (${CHANGE_KIND.put}, ${CHANGE_KIND.delete}) ORDER BY revision DESC LIMIT 1`,
        )
        .pluck(),
      // The history GET /watch replays: the changes that created a version.
      changesAfter: db.prepare<[number, number, number], ChangeRow>(
        'SELECT revision, key, kind FROM changes WHERE revision > ? AND revision <= ? ' +
          `AND kind IN (${CHANGE_KIND.put}, ${CHANGE_KIND.delete}) ORDER BY revision LIMIT ?`,
      ),
      // What manifest watches replay: every change of a manifest.
      manifestChangesAfter: db.prepare<[number, number, number], ChangeRow>(
        'SELECT revision, key, kind FROM changes WHERE revision > ? AND revision <= ? ORDER BY revision LIMIT ?',
      ),
      historyCut: db.prepare<[number], number>('SELECT revision FROM changes ORDER BY revision DESC LIMIT 1 OFFSET ?').pluck(),
      dropChangesUpTo: db.prepare<[number]>('DELETE FROM changes WHERE revision <= ?'),

      journalAppend: db.prepare<[number, string, string, string]>(
        'INSERT INTO healer_journal (at_ms, kind, key, detail) VALUES (?, ?, ?, ?)',
      ),
      journalTrim: db.prepare<[number]>(
        'DELETE FROM healer_journal WHERE seq <= (SELECT seq FROM healer_journal ORDER BY seq DESC LIMIT 1 OFFSET ?)',
      ),
      journalRecent: db.prepare<[number], { at_ms: number; kind: HealerAction['kind']; key: string; detail: string }>(
        'SELECT at_ms, kind, key, detail FROM healer_journal ORDER BY seq DESC LIMIT ?',
      ),
    };
  }

  /** Transactions and operations applied so far (tests check that group commit batches). */
  stats(): GroupCommitStats {
    return this.group.stats();
  }

  // ---- reads: straight to the connection ------------------------------------------------------------------

  async get(key: string): Promise<StoredManifest | null> {
    return this.verified('get', () =>
      this.group.read(() => {
        const row = this.readRow(utf8(key));
        return row === undefined ? null : this.verifyRow(key, row);
      }),
    );
  }

  /** The key's row: in manifests_v2, else in the v1 table (a key has at most one of them). */
  private readRow(keyBytes: Buffer): AnyManifestRow | undefined {
    const v2 = this.stmt.getManifestV2.get(keyBytes);
    if (v2 !== undefined) return { table: 2, ...v2 };
    const v1 = this.stmt.getManifest.get(keyBytes);
    return v1 === undefined ? undefined : { table: 1, ...v1 };
  }

  /** The row's manifest verified for `key`; CorruptRow (damage) or FORMAT_UNSUPPORTED (a newer format) otherwise. */
  private verifyRow(key: string, row: AnyManifestRow): StoredManifest {
    try {
      return verifyAnyManifestRow(key, row, this.dictionary);
    } catch (error) {
      if (!(error instanceof CorruptRow) || row.table !== 2 || error.ownKey !== null) throw error;
      const own = this.ownKeyOfBinaryRow(row);
      throw own === null ? error : new CorruptRow('manifest', key, `it holds the manifest of ${JSON.stringify(own)}`, own);
    }
  }

  /**
   * The key a damaged binary row really belongs to, when that can be proven: a binary manifest does not hold its
   * key (the row's key column does), so a row whose key bytes were damaged would otherwise hide which key lost its
   * manifest, and garbage collection would not know to keep that key's blobs. The history names the key of the
   * change at the row's mod_revision (for the last changeHistoryRowsMax changes); it counts only when the row's
   * checksum verifies under that key.
   */
  private ownKeyOfBinaryRow(row: KeyedManifestRowV2): string | null {
    const recorded = this.stmt.changeKeyAt.get(row.mod_revision);
    if (recorded === undefined || recorded.equals(row.key)) return null;
    const other = recorded.toString('utf8');
    return manifestRowV2ChecksumHolds(other, row) ? other : null;
  }

  /**
   * Inside a batch: stores `manifest` as the key's binary row at `revision` (assigning the dictionary entries it
   * needs first, in the same transaction) and removes the key's v1 row. Returns what a read of the row returns: the
   * codec's own decode of the bytes (its lossless check), sharing no objects with the caller's manifest. The same
   * object reaches this process's manifest watches (verifyWatchedRow); like every stored manifest it is read only.
   */
  private writeManifest(key: string, keyBytes: Buffer, manifest: Manifest, revision: number): Manifest {
    this.dictionary.assign(dictionaryNeeds(manifest));
    const encoded = encodeManifestRecord(manifest, revision, this.dictionary);
    const bytes = Buffer.from(encoded.bytes.buffer, encoded.bytes.byteOffset, encoded.bytes.byteLength);
    const deleted = manifest.deleted ? 1 : 0;
    this.stmt.putManifestV2.run(keyBytes, bytes, revision, deleted, manifestChecksumV2(key, bytes, revision, deleted));
    this.stmt.deleteManifestV1.run(keyBytes);
    this.recentlyWritten.set(revision, { bytes, manifest: encoded.manifest });
    return encoded.manifest;
  }

  /**
   * The key's current row verified as far as a commit needs it: its checksum (so a damaged row still fails the
   * commit) and a format this release reads (so a newer release's record is never overwritten). Decoding the
   * manifest waits until a caller needs it, which a successful commit does not.
   */
  private currentRevisionOf(key: string, row: AnyManifestRow): number {
    if (row.table === 2 && isReadableManifestFormat(row.manifest) && manifestRowV2ChecksumHolds(key, row)) return row.mod_revision;
    return this.verifyRow(key, row).modRevision;
  }

  /**
   * The row verified for a manifest watch: when it holds exactly the bytes this process just wrote at that
   * revision, the manifest the write decoded is handed on (decoding is deterministic) after the checksum check.
   */
  private verifyWatchedRow(key: string, row: AnyManifestRow): StoredManifest {
    const known = row.table === 2 ? this.recentlyWritten.get(row.mod_revision) : undefined;
    const same = known !== undefined && row.table === 2 && known.bytes.equals(row.manifest) && manifestRowV2ChecksumHolds(key, row);
    return same ? { manifest: known.manifest, modRevision: row.mod_revision } : this.verifyRow(key, row);
  }

  async isAborted(writeId: string): Promise<boolean> {
    return this.verified('isAborted', () => this.abortRecorded(this.group.read(() => this.stmt.getAbort.get(writeId)), writeId));
  }

  /** Whether an abort record exists for `writeId`, verified: a damaged one is METADATA_CORRUPT, never "absent". */
  private abortRecorded(row: AbortRow | undefined, writeId: string): boolean {
    if (row === undefined) return false;
    verifyAbortRow(writeId, row);
    return true;
  }

  /**
   * Runs `read` and turns a record that failed verification into METADATA_CORRUPT, noted in the ledger (metric,
   * log, /cluster, and the garbage-collection rule).
   */
  private verified<T>(where: string, read: () => T): T {
    try {
      return read();
    } catch (error) {
      if (error instanceof CorruptRow) throw this.ledger.noteError(corruptRowError(error, where), where);
      throw error;
    }
  }

  integrity(): MetadataIntegrity {
    const status = this.checks.status();
    const gcHold = this.checks.holdReason();
    const problems: string[] = [];
    if (status.lastFailure !== null) {
      problems.push(
        `metadata integrity check failed: ${status.lastFailure}. Reads of intact records go on; garbage collection and rollback delete nothing. ` +
          'Stop the process, keep a copy of the metadata directory, and restore it from a backup or run `npm run recover:manifests`',
      );
    }
    const recent = this.ledger.sightings();
    if (recent.length > 0 && gcHold !== null && status.lastFailure === null) {
      problems.push(
        `${this.ledger.count} metadata records failed verification (latest: the ${recent[0]!.kind} record of ${JSON.stringify(recent[0]!.key)}: ${recent[0]!.why}); ` +
          'they are not served. See metadata_integrity.recent in GET /cluster',
      );
    }
    return {
      corruptRecords: this.ledger.count,
      recent,
      checks: status,
      problems,
      gcHold,
    };
  }

  absenceTrusted(sinceMs: number): Promise<boolean> {
    return this.checks.absenceTrusted(sinceMs);
  }

  /** Runs a full integrity check now (tests, operators' tools); resolves when it has finished. */
  checkIntegrity(): Promise<void> {
    return this.checks.fullCheck();
  }

  /**
   * Rebuilds every index from its table (what SQLite can rebuild), as one operation of a batch. Manifest watches
   * are reset afterwards: a cache may hold an answer read through the broken index ("no such key").
   */
  private async reindex(): Promise<void> {
    await this.group.submit(() => this.db.exec('REINDEX'));
    for (const watch of [...this.watches]) {
      this.dropWatch(watch);
      safely(() => watch.listener.onReset('metadata indexes rebuilt after an integrity check; read again'));
    }
  }

  async listKeys(prefix: string, startAfter: string | null, limit: number): Promise<string[]> {
    assertCount(limit, 'limit');
    if (limit === 0) return [];
    const prefixBytes = utf8(prefix);
    let lower = prefixBytes;
    let exclusive = false;
    if (startAfter !== null) {
      const after = utf8(startAfter);
      if (Buffer.compare(after, prefixBytes) >= 0) {
        lower = after;
        exclusive = true;
      }
    }
    // Both tables in one snapshot, merged by key: the first `limit` of the merge are among the first `limit` of each.
    const rows = this.group.read(() =>
      this.db.transaction(() => {
        if (prefixBytes.length === 0) {
          return mergeByKey(
            (exclusive ? this.stmt.listAfterV2 : this.stmt.listFromV2).all(lower, limit),
            (exclusive ? this.stmt.listAfter : this.stmt.listFrom).all(lower, limit),
            limit,
          );
        }
        const upper = prefixUpperBound(prefixBytes);
        return mergeByKey(
          (exclusive ? this.stmt.listAfterBelowV2 : this.stmt.listFromBelowV2).all(lower, upper, limit),
          (exclusive ? this.stmt.listAfterBelow : this.stmt.listFromBelow).all(lower, upper, limit),
          limit,
        );
      })(),
    );
    // A listing cannot say "a key is missing here": one whose record fails verification fails the page (503),
    // rather than list a wrong key or silently leave out a live one.
    return this.verified('listKeys', () =>
      rows.map((row) => {
        const key = row.key.toString('utf8');
        this.verifyRow(key, row);
        return key;
      }),
    );
  }

  /**
   * Scans skip a record that fails verification (it is reported: log, metric, /cluster) and read on, so that one
   * damaged record neither stops the healer's audit nor shortens a page (callers stop at a short page).
   */
  async scan(startAfter: string | null, limit: number): Promise<StoredManifest[]> {
    assertCount(limit, 'limit');
    if (limit === 0) return [];
    const out: StoredManifest[] = [];
    let after: Buffer | null = startAfter === null ? null : utf8(startAfter);
    while (out.length < limit) {
      const want = limit - out.length;
      const rows = this.group.read(() =>
        this.db.transaction(() =>
          after === null
            ? mergeByKey(this.stmt.scanFirstV2.all(want), this.stmt.scanFirst.all(want), want)
            : mergeByKey(this.stmt.scanAfterV2.all(after, want), this.stmt.scanAfter.all(after, want), want),
        )(),
      );
      for (const row of rows) {
        after = row.key;
        const stored = this.skipCorrupt('scan', row);
        if (stored !== null) out.push(stored);
      }
      if (rows.length < want) break;
    }
    return out;
  }

  /** The row's manifest, or null (reported) when it fails verification under the key it is stored under. */
  private skipCorrupt(where: string, row: AnyManifestRow): StoredManifest | null {
    try {
      return this.verified(where, () => this.verifyRow(row.key.toString('utf8'), row));
    } catch (error) {
      if (error instanceof StrataError && error.code === 'METADATA_CORRUPT') return null;
      throw error;
    }
  }

  async currentRevision(): Promise<number> {
    const revision = this.group.read(() => this.readRevision());
    // A reader that learns of a revision its watch has not reported yet (another process committed it) is about
    // to wait for the watch: bring the watches up to date now rather than at the next poll.
    for (const watch of this.watches) {
      if (watch.last < revision) {
        this.pollWatches();
        break;
      }
    }
    return revision;
  }

  /**
   * Manifest watch (MetadataStore.watchManifests): after every batch this store commits, and every
   * SQLITE_METADATA_LIMITS.watchPollMs for commits by other processes on the same file, the `changes` rows after
   * the watch's last revision are read with the rows of their keys, in one snapshot with the revision counter;
   * so does currentRevision() when it finds a watch behind. A change is reported with its key's row when the row
   * is still at that revision (a later change reports it otherwise), and a purge whose row is gone as null. A watch
   * that the history's floor has overtaken resets: its cache forgets everything and reads directly.
   */
  async watchManifests(fromRevision: number, listener: ManifestWatchListener): Promise<ManifestWatch> {
    assertCount(fromRevision, 'fromRevision');
    this.group.read(() => undefined);
    const watch: SqliteWatch = { last: fromRevision, listener };
    this.watches.add(watch);
    this.ensureWatchTimer();
    setImmediate(() => this.pollWatches());
    return {
      close: async () => {
        this.dropWatch(watch);
      },
    };
  }

  private dropWatch(watch: SqliteWatch): void {
    this.watches.delete(watch);
    this.stopTimerWhenIdle();
  }

  private ensureWatchTimer(): void {
    if (this.watchTimer === null) {
      this.watchTimer = setInterval(() => this.pollWatches(), SQLITE_METADATA_LIMITS.watchPollMs);
      this.watchTimer.unref();
    }
  }

  private stopTimerWhenIdle(): void {
    if (this.watches.size === 0 && this.changeWatches.size === 0 && this.watchTimer !== null) {
      clearInterval(this.watchTimer);
      this.watchTimer = null;
    }
  }

  private pollWatches(): void {
    for (const watch of [...this.changeWatches]) this.pollChangeWatch(watch);
    for (const watch of [...this.watches]) {
      if (!this.watches.has(watch)) continue;
      try {
        this.pollWatch(watch);
      } catch (err) {
        this.dropWatch(watch);
        safely(() => watch.listener.onReset(`metadata store watch failed: ${(err as Error).message}`));
      }
    }
    // Every watch has seen what was written so far (a watch a full page behind decodes the rest itself).
    this.recentlyWritten.clear();
  }

  private pollWatch(watch: SqliteWatch): void {
    const pageMax = SQLITE_METADATA_LIMITS.watchPageRowsMax;
    for (;;) {
      // One read transaction: the rows and the revision they are complete up to come from one snapshot.
      const { revision, floor, changes } = this.group.read(() =>
        this.db.transaction(() => {
          const current = this.readRevision();
          const changes = this.stmt.manifestChangesAfter.all(watch.last, current, pageMax).map((change) => ({
            change,
            row: this.readRow(change.key),
          }));
          return { revision: current, floor: this.stmt.manifestWatchFloor.get() ?? 0, changes };
        })(),
      );
      if (revision < watch.last) throw new Error(`the revision went back from ${watch.last} to ${revision}`);
      if (watch.last < floor) throw new Error(`the manifest history before revision ${floor} is no longer kept (the watch was at ${watch.last})`);
      for (const { change, row } of changes) {
        if (!this.watches.has(watch)) return;
        const key = change.key.toString('utf8');
        if (row === undefined) {
          if (change.kind === CHANGE_KIND.purge) safely(() => watch.listener.onChange(key, null, change.revision));
          continue;
        }
        if (row.mod_revision !== change.revision) continue;
        // A damaged record is never handed to a cache; the watch resets instead, so the cache forgets what it held
        // for the key (and everything else) and reads directly, where the key answers METADATA_CORRUPT.
        const stored = this.verified('watch', () => this.verifyWatchedRow(key, row));
        safely(() => watch.listener.onChange(key, stored, row.mod_revision));
      }
      // A full page may leave changes behind: only up to its last row is complete.
      const complete = changes.length === pageMax ? (changes[changes.length - 1]?.change.revision ?? revision) : revision;
      if (!this.watches.has(watch)) return;
      if (complete > watch.last || changes.length === 0) {
        watch.last = complete;
        safely(() => watch.listener.onRevision(complete));
      }
      if (changes.length < pageMax) return;
    }
  }

  /**
   * Change history (MetadataStore.watchChanges): the `changes` table, read a page at a time after every batch
   * this store commits and every SQLITE_METADATA_LIMITS.watchPollMs (commits of other processes), each page in
   * one snapshot with the revision counter and the history floor, so a watch overtaken by pruning learns it.
   */
  async watchChanges(prefix: string, fromRevision: number, listener: ChangeWatchListener): Promise<ManifestWatch> {
    assertCount(fromRevision, 'fromRevision');
    const floor = this.group.read(() => this.stmt.historyFloor.get() ?? 0);
    if (fromRevision < floor) throw historyCompacted(fromRevision, floor);
    const watch: SqliteChangeWatch = { last: fromRevision, prefix: utf8(prefix), listener, pending: false };
    this.changeWatches.add(watch);
    this.ensureWatchTimer();
    setImmediate(() => this.pollChangeWatch(watch));
    return { close: async () => void this.dropChangeWatch(watch) };
  }

  /**
   * Drops the change history up to `revision` (an operator's compaction, as `etcdctl compact` is for etcd): a
   * watch from an earlier revision gets HISTORY_COMPACTED. The history also trims itself to
   * `changeHistoryRowsMax` entries.
   */
  async compactHistory(revision: number): Promise<void> {
    assertCount(revision, 'revision');
    return this.group.submit(() => this.dropHistoryUpTo(revision));
  }

  private dropChangeWatch(watch: SqliteChangeWatch): void {
    this.changeWatches.delete(watch);
    this.stopTimerWhenIdle();
  }

  private pollChangeWatch(watch: SqliteChangeWatch): void {
    if (!this.changeWatches.has(watch) || watch.pending) return;
    const pageMax = SQLITE_METADATA_LIMITS.changePageRowsMax;
    let page: { revision: number; floor: number; rows: ChangeRow[] };
    try {
      page = this.group.read(() =>
        this.db.transaction(() => {
          const revision = this.readRevision();
          const floor = this.stmt.historyFloor.get() ?? 0;
          return { revision, floor, rows: this.stmt.changesAfter.all(watch.last, revision, pageMax) };
        })(),
      );
    } catch (err) {
      this.endChangeWatch(watch, err instanceof StrataError ? err : new StrataError('METADATA_UNAVAILABLE', `metadata store watch failed: ${(err as Error).message}`));
      return;
    }
    if (watch.last < page.floor) {
      this.endChangeWatch(watch, historyCompacted(watch.last, page.floor));
      return;
    }
    for (const row of page.rows) {
      if (!this.changeWatches.has(watch)) return;
      watch.last = row.revision;
      if (row.key.length < watch.prefix.length || !row.key.subarray(0, watch.prefix.length).equals(watch.prefix)) continue;
      const change: ManifestChange = {
        key: row.key.toString('utf8'),
        revision: row.revision,
        kind: row.kind === CHANGE_KIND.delete ? 'delete' : 'put',
      };
      safely(() => watch.listener.onChange(change));
    }
    if (page.rows.length < pageMax) {
      watch.last = Math.max(watch.last, page.revision);
      return;
    }
    // More to replay: yield to the event loop between pages so a long catch-up cannot starve everything else.
    watch.pending = true;
    setImmediate(() => {
      watch.pending = false;
      this.pollChangeWatch(watch);
    });
  }

  private endChangeWatch(watch: SqliteChangeWatch, error: StrataError): void {
    if (!this.changeWatches.has(watch)) return;
    this.dropChangeWatch(watch);
    safely(() => watch.listener.onEnd(error));
  }

  async appendHealerActions(actions: readonly HealerAction[]): Promise<void> {
    assert(actions.length <= HEALER_JOURNAL_LIMITS.appendMax, 'actions.length <= HEALER_JOURNAL_LIMITS.appendMax');
    if (actions.length === 0) return;
    const rows = actions.map(checkedHealerAction);
    return this.group.submit(() => {
      for (const a of rows) this.stmt.journalAppend.run(a.atMs, a.kind, a.key, a.detail);
      this.stmt.journalTrim.run(HEALER_JOURNAL_LIMITS.entriesMax);
    });
  }

  async recentHealerActions(limit: number): Promise<HealerAction[]> {
    assertCount(limit, 'limit');
    const rows = this.group.read(() => this.stmt.journalRecent.all(Math.min(limit, HEALER_JOURNAL_LIMITS.entriesMax)));
    return rows.map((r) => ({ atMs: r.at_ms, kind: r.kind, key: r.key, detail: r.detail }));
  }

  async currentLeader(name: string): Promise<string | null> {
    const row = this.group.read(() => this.stmt.getLeader.get(name));
    if (row === undefined || row.holder === null || row.expires_ms <= this.clock.nowMs()) return null;
    return row.holder;
  }

  // ---- mutations: queued, one transaction per batch ----------------------------------------------------

  async commit(request: CommitRequest): Promise<CommitResult> {
    const { key, expectedModRevision, writeId, manifest, assignVersion, fence, idempotency } = request;
    assertCount(expectedModRevision, 'expectedModRevision');
    assert(manifest.key === key, 'manifest.key equals the committed key');
    assert(idempotency === undefined || assignVersion, 'an idempotent commit creates a version');
    const keyBytes = utf8(key);
    const outcome = idempotency === undefined ? undefined : { ...idempotency.claim, response: JSON.stringify(idempotency.response) };
    return this.group.submit((): CommitResult => this.verified('commit', () => {
      // Order of the checks: a deposed leader has no authority at all; an aborted write id or a superseded
      // idempotency claim can never commit, so re-planning after a conflict would be futile; only then does the
      // revision matter. Every record read here is verified: a damaged one fails the commit (METADATA_CORRUPT).
      if (fence !== undefined && !this.holdsTerm(fence)) return { ok: false, reason: 'fenced' };
      if (this.abortRecorded(this.stmt.getAbort.get(writeId), writeId)) return { ok: false, reason: 'aborted' };
      if (idempotency !== undefined && !this.claimHolds(idempotency.claim)) return { ok: false, reason: 'superseded' };
      const row = this.readRow(keyBytes);
      const currentModRevision = row === undefined ? 0 : this.currentRevisionOf(key, row);
      if (currentModRevision !== expectedModRevision) {
        return { ok: false, reason: 'conflict', current: row === undefined ? null : this.verifyRow(key, row) };
      }
      const revision = this.bumpRevision();
      const stored: Manifest = assignVersion ? { ...manifest, version: String(revision) } : manifest;
      const written = this.writeManifest(key, keyBytes, stored, revision);
      // A new version is a change of the document: it goes into the history GET /watch replays. A healer's update
      // (same version) is recorded for the manifest watches only.
      this.recordChange(revision, keyBytes, !assignVersion ? CHANGE_KIND.update : stored.deleted ? CHANGE_KIND.delete : CHANGE_KIND.put);
      if (outcome !== undefined) {
        const changed = this.completeClaim(outcome.token, outcome.attemptId, outcome.response, String(revision));
        assert(changed, 'the idempotency claim checked above still holds in this transaction');
      }
      return { ok: true, modRevision: revision, manifest: written };
    }));
  }

  async abort(request: AbortRequest): Promise<boolean> {
    const { key, writeId, expectedModRevision, nowMs } = request;
    assertCount(expectedModRevision, 'expectedModRevision');
    const keyBytes = utf8(key);
    return this.group.submit(() => this.verified('abort', () => {
      if (this.abortRecorded(this.stmt.getAbort.get(writeId), writeId)) return true;
      const row = this.readRow(keyBytes);
      const currentModRevision = row === undefined ? 0 : this.currentRevisionOf(key, row);
      if (currentModRevision !== expectedModRevision) return false;
      this.stmt.insertAbort.run(writeId, keyBytes, nowMs, abortChecksum(writeId, keyBytes, nowMs));
      return true;
    }));
  }

  /**
   * MetadataStore.replaceCorruptManifest. The witnesses of a delete here: the row's `deleted` column, the damaged
   * manifest text where it still parses, and the key's last entry in the change history (kept for the last
   * changeHistoryRowsMax commits): any one of them refuses.
   */
  async replaceCorruptManifest(request: ReplaceCorruptManifestRequest): Promise<ReplaceCorruptManifestResult> {
    const { key, manifest, fence } = request;
    assert(manifest.key === key, 'manifest.key equals the repaired key');
    assert(!manifest.deleted, 'a repair stores a live manifest');
    const keyBytes = utf8(key);
    const result = await this.group.submit((): ReplaceCorruptManifestResult => {
      if (!this.holdsTerm(fence)) return { ok: false, reason: 'fenced', why: 'the caller no longer leads' };
      const row = this.readRow(keyBytes);
      if (row === undefined) return { ok: false, reason: 'absent', why: 'the key has no record' };
      try {
        // A manifest of a format this release does not know is not damage: FORMAT_UNSUPPORTED fails the repair.
        this.verifyRow(key, row);
        return { ok: false, reason: 'intact', why: 'the stored record verifies (replaced since it was found damaged)' };
      } catch (error) {
        if (!(error instanceof CorruptRow)) throw error;
      }
      if (row.deleted !== 0) return { ok: false, reason: 'deleted', why: 'the damaged row is marked deleted' };
      const hints =
        row.table === 1
          ? hintsOfManifestJson(row.manifest, key)
          : hintsOfDecodedManifest(() => decodeManifestBinary(row.manifest, key, row.mod_revision, this.dictionary), key);
      const refusal = refusalOf(hints, manifest.writeId);
      if (refusal !== null) return { ok: false, ...refusal };
      if (this.stmt.lastVersionChangeOf.get(keyBytes) === CHANGE_KIND.delete) {
        return { ok: false, reason: 'deleted', why: "the change history's last change of the key is a delete" };
      }
      const revision = this.bumpRevision();
      const written = this.writeManifest(key, keyBytes, { ...manifest, version: String(revision) } satisfies Manifest, revision);
      // A new version (the document's bytes are those of the rebuilt write): GET /watch reports it like a write.
      this.recordChange(revision, keyBytes, CHANGE_KIND.put);
      return { ok: true, modRevision: revision, manifest: written };
    });
    // Either way the record now verifies: its sightings no longer hold the key's garbage collection.
    if (result.ok || result.reason === 'intact') this.ledger.forgetManifest(key);
    return result;
  }

  async purgeTombstone(key: string, modRevision: number): Promise<boolean> {
    const keyBytes = utf8(key);
    return this.group.submit(() => {
      // Only a verified tombstone is purged: a damaged row is kept for whoever repairs it.
      const row = this.readRow(keyBytes);
      if (row === undefined) return false;
      const current = this.verified('purgeTombstone', () => this.verifyRow(key, row));
      if (!current.manifest.deleted || current.modRevision !== modRevision) return false;
      const purge = row.table === 2 ? this.stmt.purgeTombstoneV2 : this.stmt.purgeTombstone;
      if (purge.run(keyBytes, modRevision).changes === 0) return false;
      // Removing a manifest is a change like any other: it moves the revision, as etcd's delete does, and manifest
      // watches report it.
      this.recordChange(this.bumpRevision(), keyBytes, CHANGE_KIND.purge);
      return true;
    });
  }

  /**
   * Deletes the verified abort records created before `beforeMs`. A damaged one is kept and reported: its
   * created_ms cannot be trusted, and while it exists its write cannot commit (the safe side).
   */
  async expireAbortRecords(beforeMs: number): Promise<number> {
    return this.group.submit(() => {
      let deleted = 0;
      for (const row of this.stmt.expiredAborts.all(beforeMs)) {
        if (this.keptCorrupt('expireAbortRecords', () => verifyAbortRow(row.write_id, row))) continue;
        deleted += this.stmt.deleteAbort.run(row.write_id).changes;
      }
      return deleted;
    });
  }

  /** Inside a batch: true (and noted in the ledger) when `verify` finds the record damaged. */
  private keptCorrupt(where: string, verify: () => unknown): boolean {
    try {
      verify();
      return false;
    } catch (error) {
      if (!(error instanceof CorruptRow)) throw error;
      this.ledger.noteError(corruptRowError(error, where), where);
      return true;
    }
  }

  async reserveIdempotency(claim: IdempotencyClaim): Promise<IdempotencyRecord | null> {
    const { token, fingerprint, attemptId, leaseUntilMs, expiresAtMs } = claim;
    return this.group.submit((): IdempotencyRecord | null => this.verified('reserveIdempotency', () => {
      const row = this.idempotencyRow(token);
      const current = row === undefined ? null : { ...row, leaseUntilMs: row.lease_until_ms, expiresAtMs: row.expires_ms };
      if (!idempotencyClaimMayTake(current, claim, this.clock.nowMs())) return toIdempotencyRecord(row!);
      const checksum = idempotencyChecksum(token, {
        fingerprint,
        state: 'pending',
        response: null,
        expires_ms: expiresAtMs,
        attempt_id: attemptId,
        lease_until_ms: leaseUntilMs,
        version: null,
      });
      this.stmt.reserveIdempotency.run(token, fingerprint, expiresAtMs, attemptId, leaseUntilMs, checksum);
      return null;
    }));
  }

  async completeIdempotency(claim: IdempotencyClaim, response: IdempotentResponse): Promise<boolean> {
    const json = JSON.stringify(response);
    // A reservation that was taken over, or expired and swept meanwhile, is not touched (nor recreated).
    return this.group.submit(() => this.verified('completeIdempotency', () => this.completeClaim(claim.token, claim.attemptId, json, null)));
  }

  /** Verified read of a token's row (undefined when absent). Inside a batch or a read. */
  private idempotencyRow(token: string): IdempotencyRow | undefined {
    const row = this.stmt.getIdempotency.get(token);
    return row === undefined ? undefined : verifyIdempotencyRow(token, row);
  }

  /** Inside a batch: the claim's pending row becomes done with `response`; false when the claim no longer holds. */
  private completeClaim(token: string, attemptId: string, response: string, version: string | null): boolean {
    const row = this.idempotencyRow(token);
    if (row === undefined || row.state !== 'pending' || row.attempt_id !== attemptId) return false;
    const checksum = idempotencyChecksum(token, { ...row, state: 'done', response, version });
    return this.stmt.completeIdempotency.run(response, version, checksum, token, attemptId).changes === 1;
  }

  async releaseIdempotency(claim: IdempotencyClaim): Promise<void> {
    return this.group.submit(() => {
      this.stmt.releaseIdempotency.run(claim.token, claim.attemptId);
    });
  }

  /** Inside a transaction: `claim` still holds its token (pending, same attempt). Expiry does not matter here. */
  private claimHolds(claim: IdempotencyClaim): boolean {
    const row = this.idempotencyRow(claim.token);
    return row !== undefined && row.state === 'pending' && row.attempt_id === claim.attemptId;
  }

  /**
   * Deletes the verified idempotency records expired at `nowMs`. A damaged one is kept and reported (its token keeps
   * answering METADATA_CORRUPT): deleting it would let a retry of an applied request run again.
   */
  async expireIdempotency(nowMs: number): Promise<number> {
    return this.group.submit(() => {
      let deleted = 0;
      for (const row of this.stmt.expiredIdempotency.all(nowMs)) {
        if (this.keptCorrupt('expireIdempotency', () => verifyIdempotencyRow(row.token, row))) continue;
        deleted += this.stmt.deleteIdempotency.run(row.token).changes;
      }
      return deleted;
    });
  }

  // ---- cluster identity: ./sqlite-cluster-identity.ts ---------------------------------------------------------

  getClusterIdentity(): Promise<ClusterIdentityRecord | null> {
    return this.cluster.get();
  }

  createClusterIdentity(proposed: ClusterIdentityRecord): Promise<ClusterIdentityRecord> {
    return this.cluster.create(proposed);
  }

  updateClusterNodes(update: (current: ClusterIdentityRecord) => ClusterNodeLists | null): Promise<ClusterIdentityRecord> {
    return this.cluster.updateNodes(update);
  }

  raiseClusterDataFormat(to: number): Promise<ClusterIdentityRecord> {
    return this.cluster.raiseDataFormat(to);
  }

  // ---- process registry: ./sqlite-process-registry.ts --------------------------------------------------------

  registerProcess(process: ProcessRegistration, ttlMs: number): Promise<void> {
    return this.processes.register(process, ttlMs);
  }

  deregisterProcess(id: string): Promise<void> {
    return this.processes.deregister(id);
  }

  listProcesses(): Promise<RegisteredProcess[]> {
    return this.processes.list();
  }

  // ---- tiering records: ./sqlite-tiering-records.ts ----------------------------------------------------------

  getTieringRecord(prefix: string): Promise<unknown | null> {
    return this.tiering.get(prefix);
  }

  updateTieringRecord(prefix: string, update: (current: unknown | null) => unknown | null): Promise<unknown | null> {
    return this.tiering.update(prefix, update);
  }

  listTieringRecords(startAfter: string | null, limit: number): Promise<{ prefix: string; record: unknown }[]> {
    return this.tiering.list(startAfter, limit);
  }

  async addRepairHint(key: string): Promise<void> {
    return this.group.submit(() => {
      this.stmt.addHint.run(key);
    });
  }

  async takeRepairHints(limit: number): Promise<string[]> {
    assertCount(limit, 'limit');
    return this.group.submit(() => {
      const rows = this.stmt.firstHints.all(limit);
      for (const row of rows) this.stmt.deleteHint.run(row.seq);
      return rows.map((row) => row.key);
    });
  }

  async acquireLeadership(name: string, holder: string, ttlMs: number): Promise<LeaderTerm | null> {
    assert(holder.length > 0, 'holder is non-empty');
    assert(Number.isInteger(ttlMs) && ttlMs > 0, 'ttlMs is an integer > 0');
    return this.group.submit((): LeaderTerm | null => {
      const nowMs = this.clock.nowMs();
      const expiresMs = nowMs + ttlMs;
      const row = this.stmt.getLeader.get(name);
      let term: number;
      if (row === undefined) {
        term = 1;
      } else if (row.holder === holder) {
        // A renewal keeps the term, even after the lease lapsed: nobody else led in between (the row would name
        // them), and fenced commits made while it had lapsed were refused.
        term = row.term;
      } else if (row.holder !== null && row.expires_ms > nowMs) {
        return null;
      } else {
        term = row.term + 1;
      }
      this.stmt.putLeader.run(name, holder, term, expiresMs);
      return { name, holder, term };
    });
  }

  async releaseLeadership(term: LeaderTerm): Promise<void> {
    return this.group.submit(() => {
      // The row stays, holderless and expired, so that the next leader's term is still strictly greater.
      this.stmt.vacateLeader.run(term.name, term.holder, term.term);
    });
  }

  // ---- storage-node registry ------------------------------------------------------------------------------

  async registerNode(node: NodeRegistration, ttlMs: number): Promise<void> {
    assertRegistration(node, ttlMs);
    return this.group.submit(() => {
      const nowMs = this.clock.nowMs();
      this.stmt.registerNode.run(node.id, node.address, node.zone ?? null, nowMs, nowMs + ttlMs);
    });
  }

  async deregisterNode(id: string): Promise<void> {
    if (!isPossibleNodeId(id)) return;
    return this.group.submit(() => {
      // Alive means expires_ms > now, so expiring it now is leaving now.
      this.stmt.expireNode.run(this.clock.nowMs(), id);
    });
  }

  async listNodes(): Promise<RegisteredNode[]> {
    // One more than the limit, so that a registry beyond it is reported instead of silently cut.
    const rows = this.group.read(() => this.stmt.listNodes.all(NODE_REGISTRY_LIMITS.nodesMax + 1));
    if (rows.length > NODE_REGISTRY_LIMITS.nodesMax) throw tooManyNodes(rows.length);
    const nowMs = this.clock.nowMs();
    return rows.map((row) => {
      const node: RegisteredNode = {
        id: row.id,
        address: row.address,
        state: row.state,
        alive: row.expires_ms > nowMs,
        lastHeartbeatMs: row.last_heartbeat_ms,
      };
      if (row.zone !== null) node.zone = row.zone;
      return node;
    });
  }

  async setNodeState(id: string, state: NodeMembershipState): Promise<void> {
    assertMembershipState(state);
    if (!isPossibleNodeId(id)) throw nodeNotFound(id);
    return this.group.submit(() => {
      if (this.stmt.setNodeState.run(state, id).changes === 0) throw nodeNotFound(id);
    });
  }

  async removeNode(id: string): Promise<void> {
    if (!isPossibleNodeId(id)) throw nodeNotFound(id);
    return this.group.submit(() => {
      const state = this.stmt.nodeState.get(id);
      if (state === undefined) throw nodeNotFound(id);
      if (state !== 'draining') throw nodeNotDrained(id, state);
      this.stmt.deleteNode.run(id);
    });
  }

  async close(): Promise<void> {
    await this.checks.close();
    for (const watch of [...this.watches]) {
      this.dropWatch(watch);
      safely(() => watch.listener.onReset('metadata store closed'));
    }
    for (const watch of [...this.changeWatches]) {
      this.endChangeWatch(watch, new StrataError('METADATA_UNAVAILABLE', 'metadata store closed'));
    }
    return this.group.close();
  }

  // ---- helpers that run inside a batch transaction --------------------------------------------------------

  /** The verified revision counter (a damaged one is METADATA_CORRUPT: no version can be assigned from it). */
  private readRevision(): number {
    return this.verified('revision', () => verifyCounter('revision', this.stmt.counter.get('revision')));
  }

  private bumpRevision(): number {
    const revision = this.readRevision() + 1;
    this.stmt.setCounter.run(revision, counterChecksum('revision', revision), 'revision');
    return revision;
  }

  private recordChange(revision: number, keyBytes: Buffer, kind: ChangeKindCode): void {
    this.stmt.recordChange.run(revision, keyBytes, kind);
    this.historyRecordedSincePrune++;
    if (this.historyRecordedSincePrune < SQLITE_METADATA_LIMITS.changeHistoryPruneEvery) return;
    this.historyRecordedSincePrune = 0;
    const cut = this.stmt.historyCut.get(this.historyRowsMax);
    if (cut !== undefined) this.dropHistoryUpTo(cut);
  }

  /** Forgets the history up to `revision`: a watch from before it gets HISTORY_COMPACTED. Inside a batch. */
  private dropHistoryUpTo(revision: number): void {
    this.stmt.dropChangesUpTo.run(revision);
    const floor = Math.max(this.stmt.historyFloor.get() ?? 0, revision);
    this.stmt.setCounter.run(floor, counterChecksum('history_floor', floor), 'history_floor');
  }

  private holdsTerm(fence: LeaderTerm): boolean {
    const row = this.stmt.getLeader.get(fence.name);
    return (
      row !== undefined &&
      row.holder === fence.holder &&
      row.term === fence.term &&
      row.expires_ms > this.clock.nowMs()
    );
  }
}

/**
 * The first `limit` rows of two key-ordered lists of rows, in key order; a key in both (never written so: a commit
 * deletes the key's v1 row) is taken from `v2` once.
 */
function mergeByKey(v2: readonly KeyedManifestRowV2[], v1: readonly KeyedManifestRow[], limit: number): AnyManifestRow[] {
  const out: AnyManifestRow[] = [];
  let i = 0;
  let j = 0;
  while (out.length < limit && (i < v2.length || j < v1.length)) {
    const a = v2[i];
    const b = v1[j];
    const order = a === undefined ? 1 : b === undefined ? -1 : Buffer.compare(a.key, b.key);
    if (order <= 0) {
      out.push({ table: 2, ...a! });
      i++;
      if (order === 0) j++;
    } else {
      out.push({ table: 1, ...b! });
      j++;
    }
  }
  return out;
}

/** A listener's failure is its own business; it must not break the store's commit path. */
function safely(run: () => void): void {
  try {
    run();
  } catch {
    // ignored: see above
  }
}

function historyCompacted(fromRevision: number, floor: number): StrataError {
  return new StrataError(
    'HISTORY_COMPACTED',
    `changes after version ${fromRevision} are no longer kept (the history starts after ${floor}); list the keys again and watch from a fresh version`,
    { fromRevision, floor },
  );
}

/** Journal entries are for people; an oversized detail is cut rather than refused, so a repair is never blocked. */
function checkedHealerAction(action: HealerAction): HealerAction {
  assert(action.kind === 'repaired' || action.kind === 'unrepairable', 'known healer action kind');
  assert(Number.isSafeInteger(action.atMs), 'atMs is an integer');
  return { ...action, detail: truncateUtf8(action.detail, HEALER_JOURNAL_LIMITS.detailBytesMax) };
}

function truncateUtf8(text: string, bytesMax: number): string {
  if (Buffer.byteLength(text, 'utf8') <= bytesMax) return text;
  let out = text.slice(0, bytesMax);
  while (Buffer.byteLength(out, 'utf8') > bytesMax - 3) out = out.slice(0, -1);
  return `${out}...`;
}

function toIdempotencyRecord(row: IdempotencyRow): IdempotencyRecord {
  if (row.state === 'pending') return { state: 'pending', fingerprint: row.fingerprint, leaseUntilMs: row.lease_until_ms };
  assert(row.response !== null, 'a done idempotency record has a response');
  return { state: 'done', fingerprint: row.fingerprint, response: JSON.parse(row.response) as IdempotentResponse, version: row.version };
}

/**
 * Schema 6 records every manifest change in `changes`, with an integer kind; a version 3 to 5 file's table, whose
 * kind is 'put' or 'delete' text, is copied into the new shape (at most changeHistoryRowsMax rows) inside the
 * upgrade's transaction.
 */
function migrateChangeKinds(db: Database.Database): void {
  const sql = db.prepare<[], string>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'changes'").pluck().get();
  if (sql === undefined || !/kind\s+TEXT/i.test(sql)) return;
  db.exec(
    'ALTER TABLE changes RENAME TO changes_v5;' +
      CHANGES_V6_TABLE +
      `INSERT INTO changes (revision, key, kind) SELECT revision, key, CASE kind WHEN 'delete' THEN ${CHANGE_KIND.delete} ELSE ${CHANGE_KIND.put} END FROM changes_v5;` +
      'DROP TABLE changes_v5;',
  );
}

/** Upgrades a table in place: adds each of `columns` (name -> definition) it lacks. */
function addMissingColumns(db: Database.Database, table: string, columns: Record<string, string>): void {
  const present = new Set((db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name));
  for (const [name, definition] of Object.entries(columns)) {
    if (!present.has(name)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${definition}`);
  }
}

/** SQLite's words for a file it cannot use because of damage (as opposed to permissions, a full disk, a lock). */
const DAMAGED_FILE_PATTERN = /malformed|not a database|corrupt|disk image/i;

/**
 * A store that cannot open because its file is damaged (the header or the schema, which SQLite needs for anything)
 * says so and what to do; everything else is left as it was. Damage elsewhere in the file does not stop the open:
 * it fails the requests that meet it and the integrity check reports it (./README.md, "Integrity").
 */
function withDamageAdvice(error: unknown, path: string): unknown {
  if (!(error instanceof StrataError) || !DAMAGED_FILE_PATTERN.test(error.message)) return error;
  return new StrataError(
    error.code,
    `${error.message}. The metadata file ${path} is damaged where SQLite needs it to open (its header or schema). ` +
      'Keep a copy of its directory, then restore the directory from a backup, or move it aside and run ' +
      '`npm run recover:manifests` (it rebuilds every manifest from the storage nodes\' self-describing blobs) before starting again',
    { ...(error.details ?? {}), path, damaged: true },
  );
}
