import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sealWalRecord } from '../../internal/wal/wal-record-envelope.js';
import type {
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
   * envelope), or a damaged or misplaced value. It is read like any appended entry.
   */
  storeRaw(key: string, value: string): Promise<void>;
}

/** How long a test waits for entries that should already be there. */
const DELIVERY_TIMEOUT_MS = 30_000;
/** A poll wait longer than any test may run: a poll that waits it out fails the test. */
const POLL_WAIT_BEYOND_TEST_TIMEOUT_MS = 600_000;

function intent(key: string, writeId: string): WalRecord {
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

function outcome(key: string, writeId: string): WalRecord {
  return { type: 'outcome', key, writeId, outcome: 'committed', atMs: 1_700_000_000_001 };
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
      expect(seen).toEqual(['w0', 'w1', 'w2', 'w3', 'w4']);
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
      expect(rest.map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['w3', 'w4']);
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
      expect((await take(b, 3)).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['w0', 'w1', 'w2']);
      await b.close();
      const b2 = await wal.consumer('group-b');
      expect((await take(b2, 3)).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['w0', 'w1', 'w2']);
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
      expect(entries.map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['w1']);
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

      it('keeps a corrupt entry corrupt across a restart, and its position commits like any other', async () => {
        await fx.storeRaw('k', sealWalRecord(intent('k', 'w1')).replace('"w1"', '"w9"'));
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
