import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeWalRecord, sealWalRecord } from '../../internal/wal/wal-record-envelope.js';
import type {
  WalBlob,
  WalConsumer,
  WalEntry,
  WalRecord,
  WriteAheadLog,
} from '../../internal/wal/write-ahead-log.js';

/**
 * The WriteAheadLog contract: every implementation (embedded SQLite, Kafka/Redpanda) runs this suite. It tests
 * only what internal/wal/write-ahead-log.ts promises. Order is promised per partition, and records of one key
 * share a partition, so the ordering tests use one key. Each fixture is a fresh, empty log, and the first
 * consumer of a group starts at the beginning of what the log retains. What a group not yet known to the log
 * finds is otherwise unspecified: a log may drop entries every known group has committed.
 */

export interface WriteAheadLogFixture {
  wal: WriteAheadLog;
  /** Closes the open log and opens a new one on the same data, as a restart would; returns it. */
  reopen(): Promise<WriteAheadLog>;
  /** Closes whatever is open and removes the data. */
  cleanup(): Promise<void>;
  /**
   * Stores one entry exactly as given, under `key`, behind the log's back: what the previous release wrote (no
   * envelope), or a damaged or misplaced value, as text (sealed or older JSON) or bytes (a binary record). It is
   * read like any appended entry.
   */
  storeRaw(key: string, value: string | Buffer): Promise<void>;
}

/** How long a test waits for entries that should already be there. */
const DELIVERY_TIMEOUT_MS = 30_000;
/** A poll wait longer than any test may run: a poll that waits it out fails the test. */
const POLL_WAIT_BEYOND_TEST_TIMEOUT_MS = 600_000;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * The write id a test calls `label`: a canonical ULID, as the write service makes, so that a log writing binary
 * records (format 2) stores these records in that form (it keeps other ids in sealed JSON).
 */
function wid(label: string): string {
  const digest = createHash('sha256').update(label).digest();
  let id = '01HF0000VE'; // 2023-11, the time of every record below
  for (let i = 0; i < 16; i++) id += CROCKFORD[digest[i]! % 32]!;
  return id;
}

function intent(key: string, label: string): WalRecord {
  const writeId = wid(label);
  return {
    type: 'intent',
    key,
    writeId,
    op: 'write',
    creates: [{ part: 'hot-0', node: 'node-1', blob: `${writeId}.hot-0` }],
    reuses: [],
    atMs: 1_700_000_000_000,
  };
}

function outcome(key: string, label: string): WalRecord {
  return { type: 'outcome', key, writeId: wid(label), outcome: 'committed', atMs: 1_700_000_000_001 };
}

/** Records of every shape the write service appends, and some only a binary form's fallback can carry. */
function recordsOfEveryShape(key: string): WalRecord[] {
  const w = wid('shapes');
  const old = wid('shapes-old');
  const blob = (part: string, node: string, id = `${w}.${part}`): WalBlob => ({ part, node, blob: id });
  const hot = [blob('hot-0', 'node-1'), blob('hot-1', 'node-2'), blob('hot-2', 'node-3')];
  const shards = [0, 1, 2, 3, 4, 5].map((i) => blob(`shard-${i}`, `node-${((i + 3) % 6) + 1}`));
  const base = { type: 'intent', key, writeId: w, op: 'write', atMs: 1_700_000_000_000 } as const;
  return [
    { ...base, creates: [...hot, blob('cold-0', 'node-1'), blob('cold-1', 'node-2'), blob('cold-2', 'node-3')], reuses: [] },
    { ...base, creates: [...hot, ...shards], reuses: [] },
    // A hot-only update that keeps the cold shards of an earlier write, one of them repaired since (`.r<rev>`).
    { ...base, creates: hot, reuses: shards.map((s, i) => blob(s.part, s.node, `${old}.${s.part}${i === 4 ? '.r2k' : ''}`)) },
    { ...base, op: 'delete', creates: [], reuses: [], atMs: 1_600_000_000_000 },
    { ...base, creates: [blob('hot-0', 'node-1', 'chosen-by-a-test')], reuses: [] },
    { type: 'outcome', key, writeId: w, outcome: 'failed', atMs: 1_700_000_000_123 },
    { type: 'outcome', key, writeId: 'not-a-ulid', outcome: 'committed', atMs: 1.5 },
  ];
}

/** Polls until `count` entries arrived (failing after DELIVERY_TIMEOUT_MS). */
async function take(consumer: WalConsumer, count: number): Promise<WalEntry[]> {
  const entries: WalEntry[] = [];
  const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
  while (entries.length < count) {
    if (Date.now() > deadline) throw new Error(`only ${entries.length} of ${count} entries arrived`);
    entries.push(...(await consumer.poll(count - entries.length, 500)));
  }
  return entries;
}

function expectIncreasingPerPartition(entries: WalEntry[]): void {
  const last = new Map<number, number>();
  for (const { position } of entries) {
    const previous = last.get(position.partition);
    if (previous !== undefined) expect(position.offset).toBeGreaterThan(previous);
    last.set(position.partition, position.offset);
  }
}

export function runWriteAheadLogContract(name: string, makeWal: () => Promise<WriteAheadLogFixture>): void {
  describe(`WriteAheadLog contract: ${name}`, () => {
    let fx: WriteAheadLogFixture;
    let wal: WriteAheadLog;

    beforeEach(async () => {
      fx = await makeWal();
      wal = fx.wal;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    it('delivers the records of one key in append order', async () => {
      const records = [intent('k', 'w1'), outcome('k', 'w1'), intent('k', 'w2'), outcome('k', 'w2'), intent('k', 'w3')];
      for (const record of records) await wal.append(record);
      const consumer = await wal.consumer('healer');
      const entries = await take(consumer, records.length);
      expect(entries.map((e) => e.record)).toEqual(records);
      expectIncreasingPerPartition(entries);
      await consumer.close();
    });

    it('returns at most `max` entries per poll and continues after the last one returned', async () => {
      for (let i = 0; i < 5; i++) await wal.append(intent('k', `w${i}`));
      const consumer = await wal.consumer('healer');
      const seen: string[] = [];
      while (seen.length < 5) {
        const batch = await consumer.poll(2, 1_000);
        expect(batch.length).toBeLessThanOrEqual(2);
        seen.push(...batch.map((e) => e.record?.writeId ?? '(corrupt)'));
      }
      expect(seen).toEqual(['w0', 'w1', 'w2', 'w3', 'w4'].map(wid));
      expect(await consumer.poll(10, 100)).toEqual([]);
      await consumer.close();
    });

    it('starts a new consumer of a group after its committed position', async () => {
      for (let i = 0; i < 5; i++) await wal.append(intent('k', `w${i}`));
      const first = await wal.consumer('healer');
      const entries = await take(first, 5);
      await first.commit((entries[2] as WalEntry).position);
      await first.close();
      const second = await wal.consumer('healer');
      const rest = await take(second, 2);
      expect(rest.map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['w3', 'w4'].map(wid));
      expect(await second.poll(10, 200)).toEqual([]);
      await second.close();
    });

    it('redelivers entries that were polled but never committed', async () => {
      for (let i = 0; i < 3; i++) await wal.append(intent('k', `w${i}`));
      const first = await wal.consumer('healer');
      const delivered = await take(first, 3);
      await first.close();
      const second = await wal.consumer('healer');
      const again = await take(second, 3);
      expect(again).toEqual(delivered);
      await second.close();
    });

    it('keeps each group at its own position', async () => {
      // Both groups exist before anything is committed: a log may drop what every known group has committed.
      const a = await wal.consumer('group-a');
      const b = await wal.consumer('group-b');
      for (let i = 0; i < 3; i++) await wal.append(intent('k', `w${i}`));
      const entries = await take(a, 3);
      await a.commit((entries[2] as WalEntry).position);
      await a.close();
      expect((await take(b, 3)).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['w0', 'w1', 'w2'].map(wid));
      await b.close();
      const b2 = await wal.consumer('group-b');
      expect((await take(b2, 3)).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['w0', 'w1', 'w2'].map(wid));
      await b2.close();
    });

    it('a poll with nothing to read waits about waitMs and returns nothing', async () => {
      const consumer = await wal.consumer('healer');
      const started = Date.now();
      expect(await consumer.poll(10, 300)).toEqual([]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      await consumer.close();
    });

    it('a waiting poll wakes up when a record is appended', async () => {
      const consumer = await wal.consumer('healer');
      // The poll's wait outlasts the test's timeout (vitest.config.ts): a poll that slept to its deadline instead of
      // waking for the append would fail the test, however fast or slow the machine.
      const polled = consumer.poll(10, POLL_WAIT_BEYOND_TEST_TIMEOUT_MS);
      await wal.append(intent('k', 'w1'));
      const entries = await polled;
      expect(entries.map((e) => e.record?.writeId ?? '(corrupt)')).toEqual([wid('w1')]);
      await consumer.close();
    });

    it('delivers 1000 concurrent appends exactly once each', async () => {
      const records = Array.from({ length: 1000 }, (_, i) => intent(`key-${i % 17}`, `w${i}`));
      await Promise.all(records.map((record) => wal.append(record)));
      const consumer = await wal.consumer('healer');
      const entries = await take(consumer, records.length);
      const writeIds = entries.map((e) => e.record?.writeId ?? '(corrupt)');
      expect(new Set(writeIds).size).toBe(records.length);
      expect([...writeIds].sort()).toEqual(records.map((r) => r.writeId).sort());
      const positions = new Set(entries.map((e) => `${e.position.partition}:${e.position.offset}`));
      expect(positions.size).toBe(records.length);
      expectIncreasingPerPartition(entries);
      expect(await consumer.poll(100, 200)).toEqual([]);
      await consumer.close();
    });

    it('keeps appended entries and committed positions across a restart', async () => {
      for (let i = 0; i < 3; i++) await wal.append(intent('k', `w${i}`));
      const consumer = await wal.consumer('healer');
      const entries = await take(consumer, 3);
      await consumer.commit((entries[0] as WalEntry).position);
      await consumer.close();

      wal = await fx.reopen();

      const resumed = await wal.consumer('healer');
      expect((await take(resumed, 2)).map((e) => e.record)).toEqual(entries.slice(1).map((e) => e.record));
      await resumed.close();
    });
    it('delivers records of every shape exactly as appended', async () => {
      const records = recordsOfEveryShape('shapes/ключ-🔑');
      for (const record of records) await wal.append(record);
      const consumer = await wal.consumer('healer');
      expect((await take(consumer, records.length)).map((e) => e.record)).toEqual(records);
      await consumer.close();
    });

    describe('record envelope', () => {
      it('reads an entry written by the previous release (plain JSON, no envelope)', async () => {
        const old = intent('k', 'w-old');
        await fx.storeRaw('k', JSON.stringify(old));
        await wal.append(intent('k', 'w-new'));
        const consumer = await wal.consumer('healer');
        expect((await take(consumer, 2)).map((e) => e.record)).toEqual([old, intent('k', 'w-new')]);
        await consumer.close();
      });

      it('delivers an entry whose content was altered as corrupt, never as a record, and reads on past it', async () => {
        const sealed = sealWalRecord(intent('k', 'w1'));
        expect(sealed).toContain('node-1');
        await fx.storeRaw('k', sealed.replace('node-1', 'node-2'));
        await wal.append(intent('k', 'w2'));
        const consumer = await wal.consumer('healer');
        const [damaged, next] = await take(consumer, 2);
        expect(damaged?.record).toBeNull();
        expect(damaged?.record === null && damaged.corrupt.why).toMatch(/checksum/);
        expect(next?.record).toEqual(intent('k', 'w2'));
        await consumer.close();
      });

      it('delivers an entry stored under another key than the one it was sealed for as corrupt', async () => {
        await fx.storeRaw('k', sealWalRecord(intent('other-key', 'w1')));
        const consumer = await wal.consumer('healer');
        const [entry] = await take(consumer, 1);
        expect(entry?.record).toBeNull();
        expect(entry?.record === null && entry.corrupt.why).toMatch(/other-key/);
        await consumer.close();
      });

      it('delivers an unsealed entry that is not a WAL record of its key as corrupt', async () => {
        await fx.storeRaw('k', '{"type":"intent","key":"k","writeI');
        await fx.storeRaw('k', JSON.stringify(intent('not-k', 'w1')));
        await fx.storeRaw('k', JSON.stringify({ ...intent('k', 'w2'), creates: 'everything' }));
        const consumer = await wal.consumer('healer');
        const entries = await take(consumer, 3);
        expect(entries.map((e) => e.record)).toEqual([null, null, null]);
        await consumer.close();
      });

      it('reads sealed JSON (format 1) and binary (format 2) entries of one key in the order stored', async () => {
        const records = [intent('k', 'w1'), outcome('k', 'w1'), intent('k', 'w2'), outcome('k', 'w2')];
        for (const [i, record] of records.entries()) await fx.storeRaw('k', encodeWalRecord(record, i % 2 === 0 ? 1 : 2));
        const consumer = await wal.consumer('healer');
        expect((await take(consumer, records.length)).map((e) => e.record)).toEqual(records);
        await consumer.close();
      });

      it('delivers a binary entry with a flipped bit as corrupt, never as a record, and reads on past it', async () => {
        const binary = encodeWalRecord(intent('k', 'w1'), 2) as Buffer;
        const damaged = Buffer.from(binary);
        damaged[19]! ^= 0x10; // the key's one byte: 'k' becomes '{'
        await fx.storeRaw('k', damaged);
        await wal.append(intent('k', 'w2'));
        const consumer = await wal.consumer('healer');
        const [entry, next] = await take(consumer, 2);
        expect(entry?.record).toBeNull();
        expect(entry?.record === null && entry.corrupt.why).toMatch(/checksum/);
        expect(entry?.record === null && entry.corrupt.excerpt).toMatch(/^hex:02/);
        expect(next?.record).toEqual(intent('k', 'w2'));
        await consumer.close();
      });

      it('delivers a binary entry stored under another key than its own as corrupt', async () => {
        await fx.storeRaw('k', encodeWalRecord(intent('other-key', 'w1'), 2) as Buffer);
        const consumer = await wal.consumer('healer');
        const [entry] = await take(consumer, 1);
        expect(entry?.record).toBeNull();
        expect(entry?.record === null && entry.corrupt.why).toMatch(/other-key/);
        await consumer.close();
      });

      it('delivers an entry of a record format this release does not know as corrupt, and reads on past it', async () => {
        const binary = encodeWalRecord(intent('k', 'w1'), 2) as Buffer;
        await fx.storeRaw('k', Buffer.concat([Buffer.from([3]), binary.subarray(1)]));
        await wal.append(intent('k', 'w2'));
        const consumer = await wal.consumer('healer');
        const [entry, next] = await take(consumer, 2);
        expect(entry?.record).toBeNull();
        expect(entry?.record === null && entry.corrupt.why).toMatch(/format 3/);
        expect(next?.record).toEqual(intent('k', 'w2'));
        await consumer.close();
      });

      it('keeps a corrupt entry corrupt across a restart, and its position commits like any other', async () => {
        await fx.storeRaw('k', sealWalRecord(intent('k', 'w1')).replace(wid('w1'), wid('w9')));
        await wal.append(intent('k', 'w2'));
        const consumer = await wal.consumer('healer');
        const [damaged] = await take(consumer, 2);
        await consumer.close();
        wal = await fx.reopen();
        const again = await wal.consumer('healer');
        const [stillDamaged, next] = await take(again, 2);
        expect(stillDamaged?.record).toBeNull();
        expect(stillDamaged?.position).toEqual(damaged?.position);
        await again.commit(stillDamaged!.position);
        await again.close();
        const resumed = await wal.consumer('healer');
        expect((await take(resumed, 1)).map((e) => e.record)).toEqual([next?.record]);
        await resumed.close();
      });
    });
  });
}
