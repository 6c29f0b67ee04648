import { DATA_FORMAT_V2 } from '../core/data-format.js';
import { openText, sealText } from '../metadata/record-envelope.js';
import { WAL_RECORD_FORMAT_BINARY, WalRecordDecodeError, decodeWalRecordBinary, encodeWalRecordBinary } from './wal-record-codec.js';
import type { WalEntry, WalPosition, WalRecord } from './write-ahead-log.js';

/**
 * How WAL entries are stored and verified, shared by the embedded and the Kafka log. An entry is stored under its
 * object key (SQLite `wal_entries.key`, the Kafka message key), its value in one of two record formats, told apart
 * by the first byte:
 * - format 2 (`0x02`): the binary record of ./wal-record-codec.ts, ending in its own 64-bit checksum;
 * - format 1 (`s`): the text form of the record envelope (internal/metadata/record-envelope.ts),
 *   `sr1 <checksum> wal-record <object key>\n<WalRecord JSON>`.
 * Reading checks the checksum, that the record is of the key it is stored under, and the record's structure. A
 * value that starts with `{` has no envelope: the previous release wrote it, and it is read after the structural
 * checks alone. A value that starts with another control byte is of a format this release does not know (a newer
 * one): it is delivered as corrupt, so nothing acts on it (decision 18).
 */

/** Characters of a damaged entry's stored value kept in its report (and the log). */
export const WAL_CORRUPT_EXCERPT_CHARS = 200;

/** Format 1: the record as sealed JSON (what the previous release reads). */
export function sealWalRecord(record: WalRecord): string {
  return sealText('wal-record', record.key, JSON.stringify(record));
}

/**
 * The stored value of a record for a log writing data format `format` (internal/core/data-format.ts): from
 * format 2 on, the binary record, or the sealed JSON when the binary form cannot carry this record exactly.
 */
export function encodeWalRecord(record: WalRecord, format: number): string | Buffer {
  if (format >= DATA_FORMAT_V2) return encodeWalRecordBinary(record) ?? sealWalRecord(record);
  return sealWalRecord(record);
}

/** No text record starts with a byte below this but JSON whitespace: a value that does is a binary record. */
const FIRST_TEXT_BYTE = 0x20;
const JSON_WHITESPACE = new Set([0x09, 0x0a, 0x0d]);

function excerptOf(value: string | Uint8Array | null): string {
  if (value === null) return '';
  if (typeof value === 'string') return value.slice(0, WAL_CORRUPT_EXCERPT_CHARS);
  if (value.length > 0 && value[0]! < FIRST_TEXT_BYTE) {
    // Binary: hex, so that the log line stays printable.
    return `hex:${Buffer.from(value.subarray(0, (WAL_CORRUPT_EXCERPT_CHARS - 4) / 2)).toString('hex')}`;
  }
  return Buffer.from(value).toString('utf8').slice(0, WAL_CORRUPT_EXCERPT_CHARS);
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
export function openWalEntry(position: WalPosition, storedKey: string | null, value: string | Uint8Array | null): WalEntry {
  const corrupt = (why: string): WalEntry => ({ position, record: null, corrupt: { why, storedKey, excerpt: excerptOf(value) } });
  if (storedKey === null) return corrupt('it has no key');
  if (value === null) return corrupt('it has no value');
  let text: string;
  if (typeof value === 'string') {
    text = value;
  } else {
    const first = value[0];
    if (first === WAL_RECORD_FORMAT_BINARY) return openBinary(position, storedKey, value, corrupt);
    if (first !== undefined && first < FIRST_TEXT_BYTE && !JSON_WHITESPACE.has(first)) {
      return corrupt(`it is in WAL record format ${first}, which this release does not read (a newer release wrote it)`);
    }
    text = Buffer.from(value).toString('utf8');
  }
  let content: string;
  try {
    content = openText('wal-record', storedKey, text, 'write-ahead log').content;
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

function openBinary(position: WalPosition, storedKey: string, value: Uint8Array, corrupt: (why: string) => WalEntry): WalEntry {
  let record: WalRecord;
  try {
    record = decodeWalRecordBinary(value);
  } catch (error) {
    if (error instanceof WalRecordDecodeError) return corrupt(error.why);
    throw error;
  }
  if (record.key !== storedKey) {
    return corrupt(`it is the record of ${JSON.stringify(record.key)}, not of the key it is stored under`);
  }
  return { position, record };
}
