/**
 * WAL records in both formats, as stored and read back by openWalEntry (what both logs' consumers call): format 1
 * (sealed JSON), format 2 (binary, ./internal/wal/wal-record-codec.ts), and the previous release's plain JSON.
 * Damage of any kind must come back as a corrupt entry, never as a record: an intent names blobs to delete.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newWriteId } from '../../internal/core/ids.js';
import { decodeWalRecordBinary, encodeWalRecordBinary } from '../../internal/wal/wal-record-codec.js';
import { encodeWalRecord, openWalEntry, sealWalRecord } from '../../internal/wal/wal-record-envelope.js';
import type { WalBlob, WalEntry, WalRecord } from '../../internal/wal/write-ahead-log.js';

const AT = { partition: 0, offset: 1 };
const KEY = 'users/u-123456'; // 14 bytes
const NOW = 1_765_000_000_000;
const W = newWriteId(NOW);
const OLD = newWriteId(NOW - 60_000);

function blob(part: string, node: string, id = `${W}.${part}`): WalBlob {
  return { part, node, blob: id };
}
const HOT = [blob('hot-0', 'node-1'), blob('hot-1', 'node-2'), blob('hot-2', 'node-3')];
const COPIES = [blob('cold-0', 'node-1'), blob('cold-1', 'node-2'), blob('cold-2', 'node-3')];
const SHARDS = [0, 1, 2, 3, 4, 5].map((i) => blob(`shard-${i}`, `node-${((i + 2) % 6) + 1}`));

function intent(fields: Partial<Extract<WalRecord, { type: 'intent' }>> = {}): WalRecord {
  return { type: 'intent', key: KEY, writeId: W, op: 'write', creates: HOT, reuses: [], atMs: NOW, ...fields };
}
function outcome(fields: Partial<Extract<WalRecord, { type: 'outcome' }>> = {}): WalRecord {
  return { type: 'outcome', key: KEY, writeId: W, outcome: 'committed', atMs: NOW + 7, ...fields };
}

/** Records the binary form carries, each as the write service or the healer's repairs can produce it. */
const BINARY_RECORDS: Array<[string, WalRecord]> = [
  ['an intent with 3 hot replicas', intent()],
  ['an intent with 3 hot replicas and 3 cold copies', intent({ creates: [...HOT, ...COPIES] })],
  ['an intent with 3 hot replicas and 6 shards', intent({ creates: [...HOT, ...SHARDS] })],
  [
    'an intent reusing the shards of an earlier write, one of them repaired and one moved',
    intent({ reuses: SHARDS.map((s, i) => blob(s.part, s.node, `${OLD}.${s.part}${i === 1 ? '.r3c' : i === 4 ? '.m1' : ''}`)) }),
  ],
  [
    'an intent reusing blobs of two earlier writes',
    intent({ reuses: [blob('shard-0', 'node-1', `${OLD}.shard-0`), blob('shard-1', 'node-2', `${W}.shard-1`), blob('shard-5', 'node-3', `${OLD}.shard-5`)] }),
  ],
  ['a delete intent', intent({ op: 'delete', creates: [], reuses: [] })],
  ['an intent whose time is before its write id', intent({ atMs: NOW - 12_345 })],
  ['an intent with a time far from its write id', intent({ atMs: 0 })],
  ['an intent with a non-ASCII key and node names', intent({ key: 'ключ/🔑', creates: [blob('hot-0', 'nœud-1'), blob('hot-1', 'nœud-2')] })],
  ['an intent with an empty key', intent({ key: '' })],
  [
    'an intent naming 17 distinct nodes (a byte per node reference)',
    intent({
      creates: [...HOT, ...COPIES, ...SHARDS].map((b, i) => blob(b.part, `n${i}`)),
      reuses: [blob('shard-0', 'm0', `${OLD}.shard-0`), blob('shard-1', 'm1', `${OLD}.shard-1`), blob('hot-0', 'm2', `${OLD}.hot-0`), blob('shard-3', 'm3', `${OLD}.shard-3`), blob('shard-4', 'm4', `${OLD}.shard-4`)],
    }),
  ],
  ['an intent whose node names share no prefix', intent({ creates: [blob('hot-0', 'alpha'), blob('hot-1', 'beta'), blob('hot-2', '')] })],
  ['a committed outcome', outcome()],
  ['a failed outcome', outcome({ outcome: 'failed' })],
];

/** Records the binary form cannot carry exactly: a log writing format 2 stores these as sealed JSON. */
const JSON_ONLY_RECORDS: Array<[string, WalRecord]> = [
  ['a write id that is not a ULID', outcome({ writeId: 'w1' })],
  ['a write id in lower case', outcome({ writeId: W.toLowerCase() })],
  ['a fractional time', outcome({ atMs: NOW + 0.5 })],
  ['a created blob whose id is not <write id>.<part>', intent({ creates: [blob('hot-0', 'node-1', `${W}.hot-0.r1`)] })],
  ['created blobs out of part order', intent({ creates: [HOT[1]!, HOT[0]!] })],
  ['a created part twice', intent({ creates: [HOT[0]!, { ...HOT[0]!, node: 'node-9' }] })],
  ['a part the bitmap has no bit for', intent({ creates: [blob('hot-3', 'node-4')] })],
  ['a reused blob id chosen by hand', intent({ reuses: [blob('shard-0', 'node-1', 'handmade')] })],
  ['a reused blob whose id names another part', intent({ reuses: [blob('shard-0', 'node-1', `${OLD}.shard-1`)] })],
  ['a lone surrogate in the key', intent({ key: 'k\ud800' })],
  ['a field the record type does not have', { ...outcome(), extra: 1 } as unknown as WalRecord],
  ['more than 256 distinct nodes', intent({ reuses: Array.from({ length: 300 }, (_, i) => blob('shard-0', `n${i}`, `${newWriteId(NOW)}.shard-0`)) })],
];

function read(value: string | Uint8Array | null, storedKey: string | null = KEY): WalEntry {
  return openWalEntry(AT, storedKey, value);
}

function binaryOf(record: WalRecord): Buffer {
  const value = encodeWalRecord(record, 2);
  if (typeof value === 'string') throw new Error('expected a binary record');
  return value;
}

describe('WAL records, format 2 (binary)', () => {
  it.each(BINARY_RECORDS)('round-trips %s', (_, record) => {
    const bytes = binaryOf(record);
    expect(bytes[0]).toBe(2);
    expect(read(bytes, record.key)).toEqual({ position: AT, record });
    expect(decodeWalRecordBinary(bytes)).toEqual(record);
  });

  it.each(JSON_ONLY_RECORDS)('falls back to sealed JSON for %s, which reads back exactly', (_, record) => {
    expect(encodeWalRecordBinary(record)).toBeNull();
    const value = encodeWalRecord(record, 2);
    expect(value).toBe(sealWalRecord(record));
    expect(read(value, record.key)).toEqual({ position: AT, record: JSON.parse(JSON.stringify(record)) });
  });

  it.each([
    ['an intent', intent({ creates: [...HOT, ...SHARDS] })],
    ['an outcome', outcome()],
  ])('detects every truncation of %s', (_, record) => {
    const bytes = binaryOf(record);
    for (let length = 0; length < bytes.length; length++) {
      const entry = read(bytes.subarray(0, length));
      expect(entry.record, `truncated to ${length} bytes`).toBeNull();
    }
  });

  it.each([
    ['an intent', intent({ creates: [...HOT, ...SHARDS], reuses: [blob('cold-0', 'node-7', `${OLD}.cold-0.r1`)] })],
    ['an outcome', outcome()],
  ])('detects every single bit flip in %s', (_, record) => {
    const bytes = binaryOf(record);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const damaged = Buffer.from(bytes);
      damaged[bit >> 3]! ^= 1 << (bit & 7);
      const entry = read(damaged);
      expect(entry.record, `bit ${bit} flipped`).toBeNull();
    }
  });

  it('reports a binary record stored under another key as corrupt, naming the key it is of', () => {
    const entry = read(binaryOf(intent({ key: 'users/other' })), KEY);
    expect(entry.record).toBeNull();
    expect(entry.record === null && entry.corrupt.why).toBe('it is the record of "users/other", not of the key it is stored under');
  });

  it('reports a record of a newer format as corrupt, saying which format, with a printable excerpt', () => {
    const bytes = binaryOf(intent());
    bytes[0] = 3;
    const entry = read(bytes);
    expect(entry.record === null && entry.corrupt).toEqual({
      why: 'it is in WAL record format 3, which this release does not read (a newer release wrote it)',
      storedKey: KEY,
      excerpt: `hex:${bytes.subarray(0, 98).toString('hex')}`,
    });
  });

  it('reports a binary record with bytes after its content as corrupt, even with a matching checksum', () => {
    const bytes = binaryOf(outcome());
    // Re-sealed with one byte more before the checksum: intact by its checksum, malformed by its structure.
    const body = Buffer.concat([bytes.subarray(0, bytes.length - 8), Buffer.from([0])]);
    const resealed = Buffer.concat([body, createHash('sha256').update(body).digest().subarray(0, 8)]);
    const entry = read(resealed);
    expect(entry.record === null && entry.corrupt.why).toBe('it has 1 bytes after its content');
  });
});

describe('WAL records, format 1 (sealed JSON) and the previous release', () => {
  it.each([...BINARY_RECORDS, ...JSON_ONLY_RECORDS.slice(0, 3)])('round-trips %s as sealed JSON, as text and as bytes', (_, record) => {
    const sealed = encodeWalRecord(record, 1);
    expect(sealed).toBe(sealWalRecord(record));
    expect(read(sealed as string, record.key)).toEqual({ position: AT, record });
    expect(read(Buffer.from(sealed as string), record.key)).toEqual({ position: AT, record });
  });

  it('reads a sealed JSON record stored before format 2 existed', () => {
    // Written by this code's previous release for KEY (sealWalRecord output, kept verbatim).
    const stored =
      'sr1 88faa38e68753e2c wal-record "users/u-123456"\n' +
      '{"type":"outcome","key":"users/u-123456","writeId":"01KBS1VBR0ABCDEFGHJKMNPQRS","outcome":"committed","atMs":1765000000007}';
    const record = JSON.parse(stored.slice(stored.indexOf('\n') + 1)) as WalRecord;
    expect(sealWalRecord(record).split('\n')[0]).toBe(stored.split('\n')[0]);
    expect(read(stored)).toEqual({ position: AT, record });
    expect(read(Buffer.from(stored))).toEqual({ position: AT, record });
  });

  it('reads the previous release’s plain JSON record, as text and as bytes', () => {
    const record = intent({ creates: [...HOT, ...SHARDS] });
    expect(read(JSON.stringify(record))).toEqual({ position: AT, record });
    expect(read(Buffer.from(JSON.stringify(record)))).toEqual({ position: AT, record });
  });
});

describe('WAL record sizes', () => {
  // Measured for the README ("Format 2 (binary)"); bounds rather than exact figures, since a write id's time decides
  // how many bytes the time delta takes.
  it.each([
    { name: 'an intent with 3 blobs', record: intent(), bound: 64 },
    { name: 'an intent with 9 blobs', record: intent({ creates: [...HOT, ...SHARDS] }), bound: 78 },
    { name: 'an outcome', record: outcome(), bound: 44 },
  ])('keeps $name of a 14-byte key within $bound bytes, under a quarter of its sealed JSON', ({ record, bound }) => {
    expect(binaryOf(record).length).toBeLessThanOrEqual(bound);
    expect(binaryOf(record).length * 4).toBeLessThan(Buffer.byteLength(sealWalRecord(record)));
  });
});
