/**
 * KafkaWriteAheadLog against a real Apache Kafka (KRaft, one node, started once for this file by
 * scripts/infra/kafka.ts). Every test uses its own topic, so tests share the broker but not data.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { fixedDataFormat, type DataFormatSource } from '../../internal/core/data-format.js';
import { isStrataError } from '../../internal/core/errors.js';
import { newWriteId } from '../../internal/core/ids.js';
import { KafkaWriteAheadLog, type KafkaWriteAheadLogOptions } from '../../internal/wal/kafka-wal.js';
import type { WalConsumer, WalEntry, WalRecord } from '../../internal/wal/write-ahead-log.js';
import { startKafka, type RunningKafka } from '../../scripts/infra/kafka.js';
import { runWriteAheadLogContract, type WriteAheadLogFixture } from '../contracts/write-ahead-log.contract.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';

let kafka: RunningKafka;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'strata-kafka-wal-test-'));
  kafka = await startKafka({ dataDir });
}, 90_000);

afterAll(async () => {
  await kafka?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

let topics = 0;
function uniqueTopic(): string {
  return `wal-test-${process.pid}-${Date.now().toString(36)}-${topics++}`;
}

async function openWal(options: Partial<KafkaWriteAheadLogOptions> = {}): Promise<KafkaWriteAheadLog> {
  return KafkaWriteAheadLog.open({ brokers: [kafka.brokers], topic: uniqueTopic(), ...options });
}

/** `dataFormat` undefined: the log's default (format 1, sealed JSON). */
function contractFixture(partitions: number, dataFormat?: DataFormatSource): () => Promise<WriteAheadLogFixture> {
  return async () => {
    const topic = uniqueTopic();
    const open = () => KafkaWriteAheadLog.open({ brokers: [kafka.brokers], topic, partitions, ...(dataFormat ? { dataFormat } : {}) });
    const fx: WriteAheadLogFixture = {
      wal: await open(),
      async reopen() {
        await fx.wal.close();
        fx.wal = await open();
        return fx.wal;
      },
      async cleanup() {
        await fx.wal.close();
      },
      async storeRaw(key, value) {
        // The log's own partitioner (murmur2 of the key), so the entry lands where the log puts that key's records.
        const producer = new Kafka({ clientId: 'wal-contract-raw', brokers: [kafka.brokers], logLevel: logLevel.NOTHING }).producer({
          createPartitioner: Partitioners.DefaultPartitioner,
        });
        await producer.connect();
        try {
          await producer.send({ topic, acks: -1, messages: [{ key, value }] });
        } finally {
          await producer.disconnect();
        }
      },
    };
    return fx;
  };
}

// The contract's ordering tests use one key, so they hold with any number of partitions; run both shapes, with
// binary records (a cluster at data format 2) and with the default (sealed JSON, a cluster not yet bumped).
runWriteAheadLogContract('KafkaWriteAheadLog, 1 partition, data format 2', contractFixture(1, fixedDataFormat(2)));
runWriteAheadLogContract('KafkaWriteAheadLog, 4 partitions, data format 2', contractFixture(4, fixedDataFormat(2)));
runWriteAheadLogContract('KafkaWriteAheadLog, 1 partition, default data format (1)', contractFixture(1));

/** The stored values of a topic, by key in offset order, read with a plain kafkajs consumer (bypassing the log). */
async function rawValuesByKey(topic: string, count: number): Promise<Map<string, Buffer[]>> {
  const consumer = new Kafka({ clientId: 'wal-raw-reader', brokers: [kafka.brokers], logLevel: logLevel.NOTHING }).consumer({
    groupId: `${topic}-raw`,
  });
  const byKey = new Map<string, Buffer[]>();
  let seen = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const key = message.key?.toString('utf8') ?? '';
        byKey.set(key, [...(byKey.get(key) ?? []), message.value ?? Buffer.alloc(0)]);
        seen++;
      },
    });
    await vi.waitFor(() => expect(seen).toBe(count), { timeout: CONDITION_TIMEOUT_MS, interval: 100 });
  } finally {
    await consumer.disconnect();
  }
  return byKey;
}

function intent(key: string, writeId: string): WalRecord {
  return { type: 'intent', key, writeId, op: 'write', creates: [], reuses: [], atMs: 0 };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isStrataError(err) ? err.code : err).toBe(code);
}

/** Polls until `count` entries arrived, failing after CONDITION_TIMEOUT_MS. */
async function take(consumer: WalConsumer, count: number): Promise<WalEntry[]> {
  const entries: WalEntry[] = [];
  const deadline = Date.now() + CONDITION_TIMEOUT_MS;
  while (entries.length < count) {
    if (Date.now() > deadline) throw new Error(`only ${entries.length} of ${count} entries arrived`);
    entries.push(...(await consumer.poll(count - entries.length, 500)));
  }
  return entries;
}

/** Retries `attempt` until it resolves, failing with its last error after `ms`. */
async function eventually(attempt: () => Promise<unknown>, ms: number): Promise<void> {
  await vi.waitFor(attempt, { timeout: ms, interval: 200 });
}

/** Expects WAL_UNAVAILABLE from the append's own deadline (not from a connection failure or a later timeout). */
async function expectDeadline(promise: Promise<unknown>, sendTimeoutMs: number): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isStrataError(err, 'WAL_UNAVAILABLE'), String(err)).toBe(true);
  expect((err as Error).message).toContain(`no acknowledgement within ${sendTimeoutMs} ms`);
}

describe('KafkaWriteAheadLog', () => {
  it('group-commits 200 concurrent appends into a few sends', async () => {
    const wal = await openWal({ partitions: 3 });
    try {
      // Connects the producer, and reaches every partition the test's keys use: a topic created a moment ago may
      // still be electing a partition's leader, which is not what this test measures.
      for (let k = 0; k < 7; k++) {
        await vi.waitFor(() => wal.append(intent(`key-${k}`, `warm-up-${k}`)), { timeout: CONDITION_TIMEOUT_MS, interval: 200 });
      }
      const before = wal.stats();
      await Promise.all(Array.from({ length: 200 }, (_, i) => wal.append(intent(`key-${i % 7}`, `w${i}`))));
      const after = wal.stats();
      expect(after.records - before.records).toBe(200);
      expect(after.sends - before.sends).toBeLessThanOrEqual(3);
    } finally {
      await wal.close();
    }
  });

  it('keeps the records of each key in append order across partitions', async () => {
    const wal = await openWal({ partitions: 4 });
    try {
      const keys = Array.from({ length: 20 }, (_, k) => `key-${k}`);
      // Issued without waiting, interleaving keys: the order that counts is the order of the calls.
      const appends: Promise<void>[] = [];
      for (let i = 0; i < 10; i++) for (const key of keys) appends.push(wal.append(intent(key, `${key}/w${i}`)));
      await Promise.all(appends);
      const consumer = await wal.consumer('healer');
      const entries = await take(consumer, 200);
      const byKey = new Map<string, WalEntry[]>();
      for (const entry of entries) byKey.set(entry.record?.key ?? "", [...(byKey.get(entry.record?.key ?? "") ?? []), entry]);
      for (const key of keys) {
        const own = byKey.get(key) ?? [];
        expect(own.map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(Array.from({ length: 10 }, (_, i) => `${key}/w${i}`));
        expect(new Set(own.map((e) => e.position.partition)).size).toBe(1);
      }
      expect(new Set(entries.map((e) => e.position.partition)).size).toBeGreaterThan(1);
      await consumer.close();
    } finally {
      await wal.close();
    }
  });

  it('commits each partition on its own: a new consumer resumes every partition after its own commit', async () => {
    const wal = await openWal({ partitions: 4 });
    try {
      await Promise.all(Array.from({ length: 40 }, (_, i) => wal.append(intent(`key-${i}`, `w${i}`))));
      const first = await wal.consumer('healer');
      const entries = await take(first, 40);
      const lastByPartition = new Map<number, WalEntry>();
      for (const entry of entries) lastByPartition.set(entry.position.partition, entry);
      expect(lastByPartition.size).toBeGreaterThan(1);
      // Commit everything in all partitions but one.
      const [kept, ...committed] = [...lastByPartition.keys()];
      for (const partition of committed) await first.commit(lastByPartition.get(partition)!.position);
      await first.close();

      const second = await wal.consumer('healer');
      const rest = await take(second, entries.filter((e) => e.position.partition === kept).length);
      expect(rest).toEqual(entries.filter((e) => e.position.partition === kept));
      expect(await second.poll(100, 200)).toEqual([]);
      await second.close();
    } finally {
      await wal.close();
    }
  });

  it('writes sealed JSON until its data format source says 2, then binary records; both read back in order', async () => {
    let format = 1;
    const wal = await openWal({ partitions: 2, dataFormat: { current: () => format } });
    const keys = ['mixed/a', 'mixed/b', 'mixed/c', 'mixed/d'];
    const recordsOf = (key: string): WalRecord[] => {
      const writeId = newWriteId(1_765_000_000_000);
      const creates = [0, 1, 2].map((i) => ({ part: `hot-${i}`, node: `node-${i + 1}`, blob: `${writeId}.hot-${i}` }));
      return [
        { type: 'intent', key, writeId, op: 'write', creates, reuses: [], atMs: 1_765_000_000_001 },
        { type: 'outcome', key, writeId, outcome: 'committed', atMs: 1_765_000_000_002 },
      ];
    };
    try {
      const before = keys.flatMap(recordsOf);
      await Promise.all(before.map((record) => wal.append(record)));
      format = 2; // the cluster's bump, as the live source would report it
      const after = keys.flatMap(recordsOf);
      await Promise.all(after.map((record) => wal.append(record)));

      const consumer = await wal.consumer('healer');
      const entries = await take(consumer, before.length + after.length);
      await consumer.close();
      for (const key of keys) {
        const expected = [...before, ...after].filter((r) => r.key === key);
        expect(entries.filter((e) => e.record?.key === key).map((e) => e.record)).toEqual(expected);
      }
      expect(entries.every((e) => e.record !== null)).toBe(true);

      const raw = await rawValuesByKey(wal.topic, before.length + after.length);
      for (const key of keys) {
        // 's' (0x73) opens sealed JSON, 0x02 a binary record.
        expect(raw.get(key)?.map((value) => value[0])).toEqual([0x73, 0x73, 0x02, 0x02]);
      }
    } finally {
      await wal.close();
    }
  });

  it('fails to open with WAL_UNAVAILABLE, naming the brokers, when no broker is reachable', async () => {
    // Gives up by itself: a client retrying forever would fail the test at its timeout.
    const err = await KafkaWriteAheadLog.open({ brokers: ['127.0.0.1:1'], topic: uniqueTopic() }).catch((e) => e);
    expect(isStrataError(err, 'WAL_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toContain('127.0.0.1:1');
  });

  it('fails an append at its deadline while the broker hangs, and recovers when it answers again', async () => {
    const sendTimeoutMs = 1_500;
    const topic = uniqueTopic();
    const wal = await KafkaWriteAheadLog.open({ brokers: [kafka.brokers], topic, partitions: 1, sendTimeoutMs });
    // The reader's log has a request timeout longer than any test may run: a poll that waited for a hung broker's
    // request timeout would fail the test at its timeout, however fast or slow the machine.
    const patient = await KafkaWriteAheadLog.open({ brokers: [kafka.brokers], topic, partitions: 1, sendTimeoutMs: 600_000 });
    try {
      await wal.append(intent('k', 'before'));
      const reader = await patient.consumer('reader');
      expect((await take(reader, 1)).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['before']);
      await kafka.pause();
      try {
        // A poll does not wait for a hung broker's request timeout.
        const polled = await reader.poll(10, 0).catch((e: unknown) => e);
        expect(Array.isArray(polled) || isStrataError(polled, 'WAL_UNAVAILABLE')).toBe(true);
        await expectDeadline(wal.append(intent('k', 'hung')), sendTimeoutMs);
        // At most one send is ever left behind (it may also have failed outright, e.g. on a broken connection).
        expect(wal.stats().abandonedSends).toBeLessThanOrEqual(1);
        // While the abandoned send may still land, nothing else is sent: this one fails at its deadline too.
        await expectDeadline(wal.append(intent('k', 'queued')), sendTimeoutMs);
      } finally {
        kafka.resume();
      }
      await eventually(() => wal.append(intent('k', 'after')), 20_000);
      await reader.close();
      const consumer = await wal.consumer('healer');
      // The failed appends may or may not have landed; whatever did keeps the order of the calls.
      const ids: string[] = [];
      for (;;) {
        const batch = await consumer.poll(10, 1_000);
        if (batch.length === 0) break;
        ids.push(...batch.map((e) => e.record?.writeId ?? '(corrupt)'));
      }
      expect(ids[0]).toBe('before');
      expect(ids[ids.length - 1]).toBe('after');
      const order = ['before', 'hung', 'queued', 'after'];
      expect([...ids].sort((a, b) => order.indexOf(a) - order.indexOf(b))).toEqual(ids);
      await consumer.close();
    } finally {
      await patient.close();
      await wal.close();
    }
  });

  // Last: it restarts the file's broker (same data dir, same ports).
  it('fails appends with WAL_UNAVAILABLE within the deadline while Kafka is down, and recovers after a restart '
    + 'without reopening', async () => {
    const sendTimeoutMs = 2_000;
    const wal = await openWal({ partitions: 2, sendTimeoutMs });
    try {
      await wal.append(intent('k', 'before'));
      const consumer = await wal.consumer('healer');
      expect((await take(consumer, 1)).map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['before']);

      await kafka.stop();
      // Refused at once (the connection is refused) or at the append's own deadline, which the hung-broker test
      // above shows firing; how long either takes is the machine's business, not this test's.
      await expectCode(wal.append(intent('k', 'down')), 'WAL_UNAVAILABLE');
      await expectCode(consumer.poll(10, 1_000), 'WAL_UNAVAILABLE');

      kafka = await startKafka({ dataDir });
      await eventually(() => wal.append(intent('k', 'after')), 30_000);
      // The same consumer continues where it was; the same log object kept working.
      const ids: string[] = [];
      await eventually(async () => {
        ids.push(...(await consumer.poll(10, 500)).map((e) => e.record?.writeId ?? '(corrupt)'));
        expect(ids).toContain('after');
      }, 15_000);
      // An attempt that failed while the broker was starting may have landed too: more than one 'after' is fine.
      expect(new Set(ids)).toEqual(new Set(['after']));
      await consumer.close();
      // What was acknowledged before the restart is still there.
      const fresh = await wal.consumer('another-group');
      const all = await take(fresh, 2);
      expect(all.map((e) => e.record?.writeId ?? '(corrupt)')).toEqual(['before', 'after']);
      await fresh.close();
    } finally {
      await wal.close();
    }
  });
});
