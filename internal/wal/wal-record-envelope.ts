import { openText, sealText } from '../metadata/record-envelope.js';
import type { WalEntry, WalPosition, WalRecord } from './write-ahead-log.js';

/**
 * WAL entries in the record envelope (internal/metadata/record-envelope.ts), shared by the embedded and the Kafka
 * log: an entry's stored value is the text form `sr1 <checksum> wal-record <object key>\n<WalRecord JSON>`, stored
 * under the object key (SQLite `wal_entries.key`, the Kafka message key). Reading checks the checksum, that the
 * sealed key is the key the entry is stored under, and the record's structure. A value without the envelope was
 * written by the previous release and is read after the structural checks alone.
 */

/** Characters of a damaged entry's stored value kept in its report (and the log). */
export const WAL_CORRUPT_EXCERPT_CHARS = 200;

/** The stored value of a record. */
export function sealWalRecord(record: WalRecord): string {
  return sealText('wal-record', record.key, JSON.stringify(record));
}

function isBlobList(value: unknown): boolean {
  return (
    Array.isArray(value) &&
    value.every(
      (b: unknown) =>
        typeof b === 'object' && b !== null &&
        typeof (b as Record<string, unknown>)['part'] === 'string' &&
        typeof (b as Record<string, unknown>)['node'] === 'string' &&
        typeof (b as Record<string, unknown>)['blob'] === 'string',
    )
  );
}

/** Why `value` is not a WalRecord of `key`, or null when it is one. */
function structuralProblem(value: unknown, key: string): string | null {
  if (typeof value !== 'object' || value === null) return 'it is not a JSON object';
  const r = value as Record<string, unknown>;
  if (r['key'] !== key) return `it names the key ${JSON.stringify(r['key'])}, not the key it is stored under`;
  if (typeof r['writeId'] !== 'string' || typeof r['atMs'] !== 'number') return 'its writeId or atMs is missing';
  if (r['type'] === 'intent') {
    if (r['op'] !== 'write' && r['op'] !== 'delete') return 'its op is neither write nor delete';
    if (!isBlobList(r['creates']) || !isBlobList(r['reuses'])) return 'its blob lists are malformed';
    return null;
  }
  if (r['type'] === 'outcome') {
    return r['outcome'] === 'committed' || r['outcome'] === 'failed' ? null : 'its outcome is unknown';
  }
  return 'its type is neither intent nor outcome';
}

/**
 * The entry read at `position` from a stored key and value: the record when it verifies, otherwise a corrupt
 * entry saying why (never an exception: one damaged entry must not stop the consumer reading the others).
 */
export function openWalEntry(position: WalPosition, storedKey: string | null, value: string | null): WalEntry {
  const corrupt = (why: string): WalEntry => ({
    position,
    record: null,
    corrupt: { why, storedKey, excerpt: (value ?? '').slice(0, WAL_CORRUPT_EXCERPT_CHARS) },
  });
  if (storedKey === null) return corrupt('it has no key');
  if (value === null) return corrupt('it has no value');
  let content: string;
  try {
    content = openText('wal-record', storedKey, value, 'write-ahead log').content;
  } catch (error) {
    const details = (error as { details?: Record<string, unknown> }).details;
    return corrupt(String(details?.['why'] ?? (error as Error).message));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return corrupt('it is not JSON');
  }
  const problem = structuralProblem(parsed, storedKey);
  return problem === null ? { position, record: parsed as WalRecord } : corrupt(problem);
}
