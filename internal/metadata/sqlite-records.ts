import type Database from 'better-sqlite3';
import type { Manifest, StoredManifest } from '../manifest/manifest.js';
import type { Logger } from '../log/logger.js';
import { StrataError } from '../core/errors.js';
import { ManifestDecodeError, decodeManifestBinary, type ManifestDictionary } from '../manifest/manifest-codec.js';
import { checksumBytesMatch, checksumMatches, recordChecksum, recordChecksumBytes } from './record-envelope.js';

/**
 * The embedded store's records in the record envelope (./record-envelope.ts; ./README.md "Record envelope"): each
 * row that decides a commit or a delete has a `checksum` column over its kind, its key and its other columns, and
 * is verified when it is read. Schema version 5 added the column; a file of an earlier version has every row
 * sealed when it is opened (one transaction), after the checks an unsealed row allows. Schema version 6 added
 * `manifests_v2`: binary manifests (internal/manifest/manifest-codec.ts) with a raw 8-byte checksum of envelope
 * version 2 over the same fields (key, manifest bytes, mod_revision, deleted).
 */

export interface ManifestRow {
  manifest: string;
  mod_revision: number;
  deleted: number;
  checksum: string | null;
}
export interface KeyedManifestRow extends ManifestRow {
  key: Buffer;
}
/** A row of `manifests_v2` (schema 6): a binary manifest and its raw checksum. */
export interface ManifestRowV2 {
  manifest: Buffer;
  mod_revision: number;
  deleted: number;
  checksum: Buffer | null;
}
export interface KeyedManifestRowV2 extends ManifestRowV2 {
  key: Buffer;
}
/** A row of either table, tagged with the table it came from. */
export type AnyManifestRow = ({ table: 1 } & KeyedManifestRow) | ({ table: 2 } & KeyedManifestRowV2);
export interface AbortRow {
  key: Buffer;
  created_ms: number;
  checksum: string | null;
}
export interface IdempotencyRow {
  fingerprint: string;
  state: 'pending' | 'done';
  response: string | null;
  expires_ms: number;
  /** The claim holding a pending token; null only in rows from schema version 3 (their lease counts as lapsed). */
  attempt_id: string | null;
  lease_until_ms: number;
  /** The committed version when the outcome was recorded by a commit. */
  version: string | null;
  checksum: string | null;
}

/** A record that failed verification: what the store reports, and the key its content names (when readable). */
export class CorruptRow extends Error {
  constructor(
    readonly kind: 'manifest' | 'abort' | 'counter' | 'idempotency' | 'dictionary',
    readonly key: string,
    readonly why: string,
    /** The key a damaged manifest names inside itself, when that differs from the key it was read under. */
    readonly ownKey: string | null = null,
  ) {
    super(why);
  }
}

export function manifestChecksum(key: string, manifestJson: string, modRevision: number, deleted: number): string {
  return recordChecksum('manifest', key, [manifestJson, modRevision, deleted]);
}

export function manifestChecksumV2(key: string, manifest: Uint8Array, modRevision: number, deleted: number): Buffer {
  return recordChecksumBytes('manifest', key, [manifest, modRevision, deleted]);
}

export function abortChecksum(writeId: string, keyBytes: Buffer, createdMs: number): string {
  return recordChecksum('abort', writeId, [keyBytes.toString('hex'), createdMs]);
}

export function counterChecksum(name: string, value: number): string {
  return recordChecksum('counter', name, [value]);
}

export function idempotencyChecksum(token: string, row: Omit<IdempotencyRow, 'checksum'>): string {
  return recordChecksum('idempotency', token, [
    row.fingerprint,
    row.state,
    row.response,
    row.expires_ms,
    row.attempt_id,
    row.lease_until_ms,
    row.version,
  ]);
}

/** The manifest a row holds, or why it cannot be served; `key` is the key it was asked for (or listed under). */
function checkManifest(key: string, row: ManifestRow): { stored: StoredManifest } | { why: string; ownKey: string | null } {
  let manifest: Manifest | null = null;
  try {
    manifest = JSON.parse(row.manifest) as Manifest;
  } catch {
    manifest = null;
  }
  const ownKey = manifest !== null && typeof manifest === 'object' && typeof manifest.key === 'string' ? manifest.key : null;
  const alias = ownKey !== null && ownKey !== key ? ownKey : null;
  if (row.checksum === null) return { why: 'it has no checksum', ownKey: alias };
  if (!checksumMatches('manifest', key, [row.manifest, row.mod_revision, row.deleted], row.checksum)) {
    return { why: alias !== null ? `it holds the manifest of ${JSON.stringify(alias)}` : 'its checksum does not match its content', ownKey: alias };
  }
  const structured =
    manifest !== null &&
    ownKey === key &&
    manifest.deleted === (row.deleted === 1) &&
    typeof manifest.version === 'string' &&
    Array.isArray(manifest.hot) &&
    Array.isArray(manifest.cold);
  if (!structured) return { why: 'its content is not a manifest of this key', ownKey: alias };
  return { stored: { manifest: manifest!, modRevision: row.mod_revision } };
}

export function verifyManifestRow(key: string, row: ManifestRow): StoredManifest {
  const checked = checkManifest(key, row);
  if ('stored' in checked) return checked.stored;
  throw new CorruptRow('manifest', key, checked.why, checked.ownKey);
}

/**
 * The manifest a `manifests_v2` row holds, verified for `key` (the key it is read or listed under). A damaged row
 * (checksum, truncation, a manifest that disagrees with its columns) is a CorruptRow; a manifest whose format this
 * release does not know passes the codec's StrataError FORMAT_UNSUPPORTED through, which is not damage: nothing
 * may rebuild over it. The checksum is checked first, so a flipped format byte is damage, not an unknown format.
 */
/** True when the row's envelope checksum holds for `key`: the row is intact and it is that key's record. */
export function manifestRowV2ChecksumHolds(key: string, row: ManifestRowV2): boolean {
  return row.checksum !== null && checksumBytesMatch('manifest', key, [row.manifest, row.mod_revision, row.deleted], row.checksum);
}

export function verifyManifestRowV2(key: string, row: ManifestRowV2, dict: ManifestDictionary): StoredManifest {
  if (row.checksum === null) throw new CorruptRow('manifest', key, 'it has no checksum');
  if (!manifestRowV2ChecksumHolds(key, row)) {
    throw new CorruptRow('manifest', key, 'its checksum does not match its content (or it is the record of another key)');
  }
  let manifest: Manifest;
  try {
    manifest = decodeManifestBinary(row.manifest, key, row.mod_revision, dict);
  } catch (error) {
    if (error instanceof ManifestDecodeError) throw new CorruptRow('manifest', key, `its manifest does not decode: ${error.why}`);
    throw error;
  }
  if (manifest.key !== key || manifest.deleted !== (row.deleted === 1)) {
    throw new CorruptRow('manifest', key, 'its content is not a manifest of this key');
  }
  return { manifest, modRevision: row.mod_revision };
}

/** Either table's row, verified. */
export function verifyAnyManifestRow(key: string, row: AnyManifestRow, dict: ManifestDictionary): StoredManifest {
  return row.table === 2 ? verifyManifestRowV2(key, row, dict) : verifyManifestRow(key, row);
}

export function verifyAbortRow(writeId: string, row: AbortRow): void {
  if (!checksumMatches('abort', writeId, [row.key.toString('hex'), row.created_ms], row.checksum)) {
    throw new CorruptRow('abort', writeId, row.checksum === null ? 'it has no checksum' : 'its checksum does not match its content');
  }
}

export function verifyCounter(name: string, row: { value: number; checksum: string | null } | undefined): number {
  if (row === undefined) throw new CorruptRow('counter', name, 'the counter row is missing');
  if (!checksumMatches('counter', name, [row.value], row.checksum) || !Number.isSafeInteger(row.value) || row.value < 0) {
    throw new CorruptRow('counter', name, 'its checksum does not match its value');
  }
  return row.value;
}

export function verifyIdempotencyRow(token: string, row: IdempotencyRow): IdempotencyRow {
  if (!checksumMatches('idempotency', token, [row.fingerprint, row.state, row.response, row.expires_ms, row.attempt_id, row.lease_until_ms, row.version], row.checksum)) {
    throw new CorruptRow('idempotency', token, row.checksum === null ? 'it has no checksum' : 'its checksum does not match its content');
  }
  return row;
}

/** Rows sealed per statement while upgrading a file (bounded memory on a large store). */
const SEAL_PAGE_ROWS = 1_000;

/**
 * Inside the open transaction of a file older than schema version 5: gives every row that decides a commit or a
 * delete its checksum. A manifest row is sealed only when what can be checked without one holds (its JSON names
 * the key it is stored under, its deleted flag agrees): one that does not stays unsealed, hence reported as
 * corrupt when read, never served. Returns the count of rows sealed and refused.
 */
export function sealLegacyRecords(db: Database.Database, log: Logger | undefined): { sealed: number; refused: number } {
  let sealed = 0;
  let refused = 0;
  const manifests = db.prepare<[number, number], KeyedManifestRow & { rowid: number }>(
    'SELECT rowid, key, manifest, mod_revision, deleted, checksum FROM manifests WHERE rowid > ? AND checksum IS NULL ORDER BY rowid LIMIT ?',
  );
  const setManifest = db.prepare<[string, number]>('UPDATE manifests SET checksum = ? WHERE rowid = ?');
  for (let after = 0; ; ) {
    const rows = manifests.all(after, SEAL_PAGE_ROWS);
    for (const row of rows) {
      after = row.rowid;
      const key = row.key.toString('utf8');
      const checked = checkManifest(key, { ...row, checksum: manifestChecksum(key, row.manifest, row.mod_revision, row.deleted) });
      if ('stored' in checked) {
        setManifest.run(manifestChecksum(key, row.manifest, row.mod_revision, row.deleted), row.rowid);
        sealed++;
      } else {
        refused++;
        log?.error({ key, why: checked.why }, 'a manifest row of the previous release fails its checks; left unsealed, it is reported as corrupt and never served');
      }
    }
    if (rows.length < SEAL_PAGE_ROWS) break;
  }
  const aborts = db.prepare<[string, number], { write_id: string; key: Buffer; created_ms: number }>(
    'SELECT write_id, key, created_ms FROM abort_records WHERE write_id > ? AND checksum IS NULL ORDER BY write_id LIMIT ?',
  );
  const setAbort = db.prepare<[string, string]>('UPDATE abort_records SET checksum = ? WHERE write_id = ?');
  for (let after = ''; ; ) {
    const rows = aborts.all(after, SEAL_PAGE_ROWS);
    for (const row of rows) {
      after = row.write_id;
      setAbort.run(abortChecksum(row.write_id, row.key, row.created_ms), row.write_id);
      sealed++;
    }
    if (rows.length < SEAL_PAGE_ROWS) break;
  }
  for (const row of db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters WHERE checksum IS NULL').all()) {
    db.prepare('UPDATE counters SET checksum = ? WHERE name = ?').run(counterChecksum(row.name, row.value), row.name);
    sealed++;
  }
  const tokens = db.prepare<[number, number], Omit<IdempotencyRow, 'checksum'> & { rowid: number; token: string }>(
    'SELECT rowid, token, fingerprint, state, response, expires_ms, attempt_id, lease_until_ms, version FROM idempotency ' +
      'WHERE rowid > ? AND checksum IS NULL ORDER BY rowid LIMIT ?',
  );
  const setToken = db.prepare<[string, number]>('UPDATE idempotency SET checksum = ? WHERE rowid = ?');
  for (let after = 0; ; ) {
    const rows = tokens.all(after, SEAL_PAGE_ROWS);
    for (const row of rows) {
      after = row.rowid;
      const { rowid, token, ...fields } = row;
      setToken.run(idempotencyChecksum(token, fields), rowid);
      sealed++;
    }
    if (rows.length < SEAL_PAGE_ROWS) break;
  }
  return { sealed, refused };
}

/** The StrataError a corrupt row becomes (HTTP 503 METADATA_CORRUPT). */
export function corruptRowError(row: CorruptRow, where: string): StrataError {
  return new StrataError(
    'METADATA_CORRUPT',
    `the ${row.kind} record of ${JSON.stringify(row.key)} in the embedded metadata store failed verification (${row.why}); ` +
      'it is not served, other keys are unaffected. GET /cluster (metadata_integrity) says what to do',
    { kind: row.kind, key: row.key, where, why: row.why, ...(row.ownKey !== null ? { ownKey: row.ownKey } : {}) },
  );
}
