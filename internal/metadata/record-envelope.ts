import { hash } from 'node:crypto';
import { StrataError } from '../core/errors.js';

/**
 * The record envelope: every metadata record that decides a commit or a delete (manifests, abort records, the
 * revision counter, idempotency records, write intents) carries a checksum over its kind, its key and its content,
 * so that a reader can tell "the record read is intact, and it is the record asked for". The layout is in
 * ./README.md ("Record envelope"); it is the same for every backend, so a store that changes backend keeps it.
 *
 * The checksum is the first 64 bits of SHA-256 over an unambiguous encoding of (kind, key, fields). 64 bits
 * miss a random corruption with probability 2^-64; it is a checksum, not a MAC: whoever can write the metadata
 * store can forge it. SHA-256 rather than CRC-32C twice: Node's one-shot `crypto.hash` is native (about 2.7 us
 * for a 1.5 KB manifest on the 2-vCPU EPYC VM, measured in BENCHMARKS of ./README.md), well under one fsync of a
 * batch, and it needs no second hash to reach 64 bits.
 *
 * Two forms:
 * - a checksum column beside the record's own columns (SQLite): `recordChecksum(kind, key, fields)`;
 * - a text form for stores holding one value per key (etcd values, Kafka message values):
 *   `sr1 <checksum> <kind> <key as a JSON string>\n<content>`, where the checksum also covers `bound` fields that
 *   the store keeps outside the value.
 */

export type RecordKind =
  | 'manifest'
  | 'abort'
  | 'counter'
  | 'idempotency'
  | 'wal-record'
  | 'cluster-identity'
  /** An entry of a metadata store's manifest dictionary (node numbers, hot-field sets). */
  | 'dictionary';

/** What a field of a record may be: the checksum tells null, numbers and strings apart. */
export type RecordField = string | number | null;

/** Hex digits of a checksum (64 bits). */
export const RECORD_CHECKSUM_HEX_DIGITS = 16;

/** The prefix of the text form; a value without it was written before the envelope existed. */
export const SEALED_TEXT_PREFIX = 'sr1 ';

const CHECKSUM_PATTERN = /^[0-9a-f]{16}$/;

function encodeField(field: RecordField): string {
  if (field === null) return '\u0000n';
  if (typeof field === 'number') return `\u0000i${String(field)}`;
  return `\u0000s${field.length}:${field}`;
}

/** The checksum of a record: 16 lowercase hex digits. */
export function recordChecksum(kind: RecordKind, key: string, fields: readonly RecordField[]): string {
  let text = `strata-record\u00001\u0000${kind}${encodeField(key)}`;
  for (const field of fields) text += encodeField(field);
  return hash('sha256', text, 'hex').slice(0, RECORD_CHECKSUM_HEX_DIGITS);
}

/** True when `checksum` is the checksum of exactly this record. */
export function checksumMatches(kind: RecordKind, key: string, fields: readonly RecordField[], checksum: unknown): boolean {
  return typeof checksum === 'string' && CHECKSUM_PATTERN.test(checksum) && recordChecksum(kind, key, fields) === checksum;
}

/** A field of an envelope-version-2 record: a text form field, or raw bytes (a binary manifest). */
export type BinaryRecordField = RecordField | Uint8Array;

/** Bytes of a raw (binary) checksum: the same 64 bits as the 16 hex digits of the text form. */
export const RECORD_CHECKSUM_BYTES = 8;

const ENVELOPE_V2_PREFIX = 'strata-record\u00002\u0000';

/**
 * Envelope version 2: the checksum of a record some of whose fields are bytes, as 8 raw bytes (binary columns store
 * it as is, 8 B instead of 16 hex digits). Text fields are encoded exactly as in version 1; a byte field is
 * `\0b<length in bytes>:<bytes>`, so hashing a binary manifest costs no base64 pass. The version in the prefix keeps
 * a version-2 checksum from ever equalling a version-1 one over the same text.
 */
export function recordChecksumBytes(kind: RecordKind, key: string, fields: readonly BinaryRecordField[]): Buffer {
  const parts: Buffer[] = [];
  let text = `${ENVELOPE_V2_PREFIX}${kind}${encodeField(key)}`;
  for (const field of fields) {
    if (field instanceof Uint8Array) {
      parts.push(Buffer.from(`${text}\u0000b${field.length}:`, 'utf8'), Buffer.from(field.buffer, field.byteOffset, field.byteLength));
      text = '';
    } else {
      text += encodeField(field);
    }
  }
  if (text.length > 0) parts.push(Buffer.from(text, 'utf8'));
  return hash('sha256', Buffer.concat(parts), 'buffer').subarray(0, RECORD_CHECKSUM_BYTES);
}

/** True when `checksum` is the raw (envelope version 2) checksum of exactly this record. */
export function checksumBytesMatch(kind: RecordKind, key: string, fields: readonly BinaryRecordField[], checksum: unknown): boolean {
  return (
    checksum instanceof Uint8Array &&
    checksum.length === RECORD_CHECKSUM_BYTES &&
    recordChecksumBytes(kind, key, fields).equals(checksum)
  );
}

/** The text form of a record (etcd values, Kafka message values). */
export function sealText(kind: RecordKind, key: string, content: string, bound: readonly RecordField[] = []): string {
  return `${SEALED_TEXT_PREFIX}${recordChecksum(kind, key, [...bound, content])} ${kind} ${JSON.stringify(key)}\n${content}`;
}

export type OpenedText =
  /** The envelope verified: `content` is exactly what was sealed for this kind and key. */
  | { sealed: true; content: string }
  /** Written before the envelope existed: the caller checks what it can (structure, the record's own key). */
  | { sealed: false; content: string };

/**
 * Opens a text-form record read under `key`: the content when the envelope verifies, the text itself when it has
 * no envelope (an older release wrote it), or throws METADATA_CORRUPT (a damaged value, or another record than
 * the one asked for).
 */
export function openText(kind: RecordKind, key: string, text: string, where: string, bound: readonly RecordField[] = []): OpenedText {
  if (!text.startsWith(SEALED_TEXT_PREFIX)) return { sealed: false, content: text };
  const newline = text.indexOf('\n');
  const header = newline < 0 ? text : text.slice(0, newline);
  const content = newline < 0 ? '' : text.slice(newline + 1);
  const parts = header.split(' ');
  const checksum = parts[1];
  const sealedKind = parts[2];
  let sealedKey: unknown;
  try {
    sealedKey = JSON.parse(parts.slice(3).join(' '));
  } catch {
    sealedKey = undefined;
  }
  if (newline < 0 || sealedKind !== kind || typeof sealedKey !== 'string') {
    throw corruptRecord(kind, key, where, 'its envelope header is unreadable');
  }
  if (sealedKey !== key) throw corruptRecord(kind, key, where, `it is the record of ${JSON.stringify(sealedKey)}, not of the key asked for`);
  if (!checksumMatches(kind, key, [...bound, content], checksum)) throw corruptRecord(kind, key, where, 'its checksum does not match its content');
  return { sealed: true, content };
}

/** The error every store raises for a record that fails verification (HTTP 503 METADATA_CORRUPT). */
export function corruptRecord(kind: RecordKind, key: string, where: string, why: string): StrataError {
  return new StrataError(
    'METADATA_CORRUPT',
    `the ${kind} record of ${JSON.stringify(key)} in the ${where} failed verification (${why}); it is not served. ` +
      'Other keys are unaffected; see GET /cluster (metadata_integrity) and the log for what to do',
    { kind, key, where, why },
  );
}
