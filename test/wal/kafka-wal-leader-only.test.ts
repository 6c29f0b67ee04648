/**
 * The property the Kafka WAL's consumer exists for (internal/wal/README.md, "Who reads, who commits"), on a real Kafka
 * (KRaft, one node, started for this file): only the elected healer reads the WAL, only the fenced leader commits
 * offsets, and never past an unresolved intent. Two healers share one metadata store (one leader at a time) and one
 * WAL topic, each through its own KafkaWriteAheadLog as separate processes would be; every consumer, poll and commit
 * a healer makes is recorded with whether it held the leadership at that moment, and the group's committed offsets
 * are read back from Kafka itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newWriteId } from '../../internal/core/ids.js';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import { HEALER_LOCK, Healer } from '../../internal/healer/healer.js';
import { silentLogger } from '../../internal/log/logger.js';
import type { MetadataStore } from '../../internal/metadata/metadata-store.js';
import { KafkaWriteAheadLog } from '../../internal/wal/kafka-wal.js';
import type { WalEntry, WalPosition, WalRecord, WriteAheadLog } from '../../internal/wal/write-ahead-log.js';
import { healerOptions } from '../../internal/wiring/healer.js';
import { startKafka, type RunningKafka } from '../../scripts/infra/kafka.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { waitUntil } from '../helpers/wait.js';

/** The group the healer's intent resolver commits under (internal/healer/healer.ts). */
const HEALER_GROUP = 'strata-healer';
/** Kafka's "no committed offset". */
const NO_OFFSET = -1;
/** Long, so that no round of a slow machine outlasts it by accident; the deposition test advances the clock past it. */
const LEASE_MS = 60_000;
/** Far beyond anything a test advances the clock by: no intent here times out, so none resolves but by its outcome. */
const INTENT_TIMEOUT_MS = 3_600_000;

let kafka: RunningKafka;
let kafkaDir: string;
let cluster: TestCluster;
let admin: Admin;
const clock = new AdvancingClock();

beforeAll(async () => {
  kafkaDir = await mkdtemp(join(tmpdir(), 'strata-kafka-leader-test-'));
  kafka = await startKafka({ dataDir: kafkaDir });
  // The metadata store (and its leader lease) and the storage nodes the healers work with; its own WAL is unused.
  cluster = await startTestCluster({ clock });
  admin = new Kafka({ clientId: 'leader-test-admin', brokers: [kafka.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
}, 120_000);

afterAll(async () => {
  await admin?.disconnect();
  await cluster?.destroy();
  await kafka?.stop();
  if (kafkaDir) await rm(kafkaDir, { recursive: true, force: true });
});

let topics = 0;
function uniqueTopic(): string {
  return `leader-test-${process.pid}-${Date.now().toString(36)}-${topics++}`;
}

/** One call a healer made on its WAL, and whether it held the healer leadership when it made it. */
interface WalCall {
  healer: string;
  call: 'consumer' | 'poll' | 'commit';
  leading: boolean;
  entries?: WalEntry[];
  position?: WalPosition;
}

/** `wal` as healer `holder` uses it, with every consumer, poll and commit recorded in `calls`. */
function recordedWal(wal: WriteAheadLog, holder: string, metadata: MetadataStore, calls: WalCall[]): WriteAheadLog {
  const leading = async (): Promise<boolean> => (await metadata.currentLeader(HEALER_LOCK)) === holder;
  return {
    append: (record) => wal.append(record),
    close: () => wal.close(),
    async consumer(group) {
      calls.push({ healer: holder, call: 'consumer', leading: await leading() });
      const consumer = await wal.consumer(group);
      return {
        async poll(max, waitMs) {
          const atCall = await leading();
          const entries = await consumer.poll(max, waitMs);
          calls.push({ healer: holder, call: 'poll', leading: atCall, entries });
          return entries;
        },
        async commit(position) {
          calls.push({ healer: holder, call: 'commit', leading: await leading(), position });
          await consumer.commit(position);
        },
        close: () => consumer.close(),
      };
    },
  };
}

interface TestHealer {
  holder: string;
  healer: Healer;
  wal: KafkaWriteAheadLog;
}

async function startHealer(holder: string, topic: string, partitions: number, calls: WalCall[]): Promise<TestHealer> {
  const wal = await KafkaWriteAheadLog.open({ brokers: [kafka.brokers], topic, partitions });
  const healer = new Healer({
    metadata: cluster.metadata,
    wal: recordedWal(wal, holder, cluster.metadata, calls),
    pool: cluster.pool,
    ec: new ReedSolomonCode(),
    clock,
    log: silentLogger,
    options: { ...healerOptions(cluster.config, holder), leaseMs: LEASE_MS, intentTimeoutMs: INTENT_TIMEOUT_MS },
  });
  return { holder, healer, wal };
}

async function stopHealers(...healers: TestHealer[]): Promise<void> {
  for (const { healer, wal } of healers) {
    await healer.stop(); // releases the leadership, so the next test's healers can take it
    await wal.close();
  }
}

function intent(key: string, writeId: string): WalRecord {
  return { type: 'intent', key, writeId, op: 'write', creates: [], reuses: [], atMs: clock.nowMs() };
}

function committed(key: string, writeId: string): WalRecord {
  return { type: 'outcome', key, writeId, outcome: 'committed', atMs: clock.nowMs() };
}

/** Appends, in order, a write that finished (intent and outcome) for each key. */
async function appendFinished(wal: WriteAheadLog, keys: string[]): Promise<void> {
  for (const key of keys) {
    const writeId = newWriteId(clock.nowMs());
    await wal.append(intent(key, writeId));
    await wal.append(committed(key, writeId));
  }
}

/** The group's committed offset (the next to read) of each partition, as Kafka has it; -1 = none. */
async function committedOffsets(topic: string): Promise<Map<number, number>> {
  const [answer] = await admin.fetchOffsets({ groupId: HEALER_GROUP, topics: [topic] });
  return new Map((answer?.partitions ?? []).map(({ partition, offset }) => [partition, Number(offset)]));
}

/** The offset after the last record of each partition. */
async function endOffsets(topic: string): Promise<Map<number, number>> {
  return new Map((await admin.fetchTopicOffsets(topic)).map(({ partition, high }) => [partition, Number(high)]));
}

/** The entries a healer's polls returned, by partition in offset order. */
function entriesRead(calls: WalCall[], holder: string): Map<number, WalEntry[]> {
  const byPartition = new Map<number, WalEntry[]>();
  for (const call of calls) {
    if (call.healer !== holder || call.call !== 'poll') continue;
    for (const entry of call.entries ?? []) {
      byPartition.set(entry.position.partition, [...(byPartition.get(entry.position.partition) ?? []), entry]);
    }
  }
  return byPartition;
}

/** Where `writeId`'s intent is, among what `holder` read. */
function positionOf(calls: WalCall[], holder: string, writeId: string): WalPosition {
  for (const entries of entriesRead(calls, holder).values()) {
    const found = entries.find((e) => e.record?.type === 'intent' && e.record.writeId === writeId);
    if (found) return found.position;
  }
  throw new Error(`${holder} did not read the intent of ${writeId}`);
}

/** Rounds of `healer` (as leader) until it has read `count` entries in all. */
async function readUntil(healer: TestHealer, count: number): Promise<void> {
  await waitUntil(`${healer.holder} read ${count} WAL entries`, async () => {
    expect((await healer.healer.runOnce()).leader).toBe(true);
    return healer.healer.intentStats.read >= count;
  });
  expect(healer.healer.intentStats.read).toBe(count);
}

function callsOf(calls: WalCall[], holder: string): WalCall[] {
  return calls.filter((c) => c.healer === holder);
}

describe('the Kafka WAL is read and committed by the elected healer only', () => {
  it('only the leading healer reads the WAL and commits offsets; a follower opens no consumer; the committed offset '
    + 'stops at an unresolved intent in its partition while other partitions commit to their end', async () => {
    const topic = uniqueTopic();
    const calls: WalCall[] = [];
    const gateway = await KafkaWriteAheadLog.open({ brokers: [kafka.brokers], topic, partitions: 2 });
    const a = await startHealer('healer-a', topic, 2, calls);
    const b = await startHealer('healer-b', topic, 2, calls);
    try {
      // Finished writes, then one whose gateway never wrote an outcome (it died), then more finished writes.
      const pendingId = newWriteId(clock.nowMs());
      await appendFinished(gateway, ['before/1', 'before/2', 'before/3']);
      await gateway.append(intent('unfinished', pendingId));
      await appendFinished(gateway, Array.from({ length: 12 }, (_, i) => `after/${i}`));
      const total = 3 * 2 + 1 + 12 * 2;

      expect((await a.healer.runOnce()).leader).toBe(true);
      expect((await b.healer.runOnce()).leader).toBe(false);
      await readUntil(a, total);
      expect((await b.healer.runOnce()).leader).toBe(false);

      // The follower never touched the WAL: no consumer, so no poll and no commit.
      expect(callsOf(calls, 'healer-b')).toEqual([]);
      expect(b.healer.intentStats.read).toBe(0);
      // Everything the leader did, it did while it led.
      expect(callsOf(calls, 'healer-a').filter((c) => !c.leading)).toEqual([]);
      expect(callsOf(calls, 'healer-a').filter((c) => c.call === 'commit').length).toBeGreaterThan(0);
      expect(a.healer.intentStats.pending).toBe(1);

      // Never past the unresolved intent: its partition's committed offset is the intent's own (the next to read),
      // or none when the intent is the partition's first record, though later entries of that partition were read
      // and settled; the other partition committed to its end.
      const held = positionOf(calls, 'healer-a', pendingId);
      const heldCommitted = held.offset === 0 ? NO_OFFSET : held.offset;
      const readByPartition = entriesRead(calls, 'healer-a');
      expect(readByPartition.size, 'both partitions hold entries').toBe(2);
      expect(readByPartition.get(held.partition)!.some((e) => e.position.offset > held.offset), 'entries after the intent').toBe(true);
      const ends = await endOffsets(topic);
      const other = held.partition === 0 ? 1 : 0;
      expect(await committedOffsets(topic)).toEqual(new Map([[held.partition, heldCommitted], [other, ends.get(other)]]));

      // More rounds, more writes: still held at the intent, still nothing from the follower.
      await appendFinished(gateway, ['later/1', 'later/2']);
      await readUntil(a, total + 4);
      expect((await b.healer.runOnce()).leader).toBe(false);
      expect((await committedOffsets(topic)).get(held.partition)).toBe(heldCommitted);

      // The outcome arrives: the intent is resolved, and the leader commits both partitions to their end.
      await gateway.append(committed('unfinished', pendingId));
      await readUntil(a, total + 5);
      expect(a.healer.intentStats.pending).toBe(0);
      expect(await committedOffsets(topic)).toEqual(await endOffsets(topic));
      expect(callsOf(calls, 'healer-b')).toEqual([]);
      expect(calls.filter((c) => !c.leading)).toEqual([]);
    } finally {
      await stopHealers(a, b);
      await gateway.close();
    }
  });

  it('a deposed leader neither reads nor commits; the new leader resumes at the committed offset, re-reads the '
    + 'unresolved intent, and commits no further than it until it is resolved', async () => {
    const topic = uniqueTopic();
    const calls: WalCall[] = [];
    const gateway = await KafkaWriteAheadLog.open({ brokers: [kafka.brokers], topic, partitions: 1 });
    const c = await startHealer('healer-c', topic, 1, calls);
    const d = await startHealer('healer-d', topic, 1, calls);
    try {
      const pendingId = newWriteId(clock.nowMs());
      await appendFinished(gateway, ['before/1', 'before/2']);
      await gateway.append(intent('unfinished', pendingId));
      await appendFinished(gateway, ['after/1', 'after/2']);
      await readUntil(c, 9);
      const held = positionOf(calls, 'healer-c', pendingId);
      expect(held.offset).toBe(4);
      expect(await committedOffsets(topic)).toEqual(new Map([[0, held.offset]]));

      // C stops renewing (a pause, a partition from the metadata store): its lease runs out and D is elected.
      clock.advance(LEASE_MS + 1);
      expect((await d.healer.runOnce()).leader).toBe(true);
      const callsOfC = callsOf(calls, 'healer-c').length;
      // C's rounds find it deposed: its consumer, still open, is neither polled nor committed through.
      await appendFinished(gateway, ['deposed/1']);
      for (let round = 0; round < 3; round++) expect((await c.healer.runOnce()).leader).toBe(false);
      expect(callsOf(calls, 'healer-c').length).toBe(callsOfC);

      // D starts at the committed offset, which is the unresolved intent: it reads that again, and what follows.
      await readUntil(d, 7);
      const readByD = entriesRead(calls, 'healer-d').get(0)!;
      expect(readByD[0]!.position.offset).toBe(held.offset);
      expect(readByD[0]!.record).toMatchObject({ type: 'intent', writeId: pendingId });
      expect(await committedOffsets(topic)).toEqual(new Map([[0, held.offset]]));

      await gateway.append(committed('unfinished', pendingId));
      await readUntil(d, 8);
      expect(await committedOffsets(topic)).toEqual(await endOffsets(topic));
      for (let round = 0; round < 2; round++) expect((await c.healer.runOnce()).leader).toBe(false);
      expect(callsOf(calls, 'healer-c').length).toBe(callsOfC);
      // Every read and commit of either healer happened while that healer held the leadership.
      expect(calls.filter((call) => !call.leading)).toEqual([]);
    } finally {
      await stopHealers(c, d);
      await gateway.close();
    }
  });
});
