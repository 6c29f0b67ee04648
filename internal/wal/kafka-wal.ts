import { Kafka, Partitioners, logLevel, type Admin, type Producer } from 'kafkajs';
import { assert } from '../core/assert.js';
import { systemClock, type Clock } from '../core/clock.js';
import { DATA_FORMAT_V1, fixedDataFormat, type DataFormatSource } from '../core/data-format.js';
import { StrataError } from '../core/errors.js';
import { KafkaWalConsumer } from './kafka-wal-consumer.js';
import { checkKafkaJsVersion } from './kafkajs-internals.js';
import { encodeWalRecord } from './wal-record-envelope.js';
import type { WalConsumer, WalRecord, WriteAheadLog } from './write-ahead-log.js';

/**
 * The WriteAheadLog on Kafka or Redpanda (kafkajs). Design and failure behaviour: ./README.md, "Kafka".
 *
 * Appends: records are keyed by object key (so one key's records share a partition and keep their order) and
 * written by one idempotent producer with acks=-1. Concurrent appends are group-committed: whatever queued while
 * one `send` was in flight goes out together in the next one. Only one send is in flight at a time, which is
 * what keeps one key's records in append order (kafkajs's idempotent producer must not run concurrent sends).
 *
 * Deadlines: kafkajs retries an idempotent send for as long as its retry budget allows and has no deadline of its
 * own, so every append carries ours: it settles within `sendTimeoutMs` of the call, with WAL_UNAVAILABLE if
 * Kafka has not acknowledged it by then. A send that outlives its deadline is abandoned with its producer, and no
 * new send starts until it has settled (bounded by the kafkajs retry budget below): so at most one abandoned send
 * exists, memory stays bounded, and a record that still lands late cannot overtake a later one.
 * A failed or abandoned send may still have been written; as with any timed-out write, the caller cannot know.
 */

export const KAFKA_WAL_LIMITS = {
  /** An append settles within this (ms from the call), acknowledged or failed. */
  sendTimeoutMs: 5_000,
  /** Records sent in one `send`. */
  batchRecordsMax: 1_000,
  /**
   * Bytes (keys and values) in one `send`; below Kafka's and Redpanda's default 1 MiB limit on one record batch,
   * which is what a send to one partition becomes.
   */
  batchBytesMax: 768 * 1024,
  /** One record (key and value). An intent names at most a few dozen blobs: a few KiB. */
  recordBytesMax: 256 * 1024,
  /** Appends waiting for a send before new ones are refused with WAL_UNAVAILABLE. */
  queueRecordsMax: 100_000,
  /** TCP connect to a broker. Short: an unreachable broker should fail an append fast, not use up its deadline. */
  connectionTimeoutMs: 1_000,
  /** kafkajs's retries of one operation, and their backoff. Bounded so that an abandoned send ends. */
  clientRetries: 2,
  clientRetryInitialMs: 100,
  clientRetryMaxMs: 1_000,
  /** Opening: reaching the cluster and creating the topic. */
  openTimeoutMs: 15_000,
  /** Waiting for an abandoned producer's disconnect before sending again. */
  disconnectTimeoutMs: 2_000,
  /**
   * Longest wait for an abandoned send to end before sending again. Its kafkajs retries end it much sooner
   * (3 tries of at most connectionTimeoutMs + sendTimeoutMs each, plus backoff); this bound only guards against
   * a send that never settles, which would otherwise stop the log for good.
   */
  abandonedSendWaitMsMax: 60_000,
} as const;

export const KAFKA_WAL_DEFAULTS = {
  topic: 'strata-wal',
  /** Partitions of a topic this log creates. Only the leading healer reads, so a few are plenty. */
  partitions: 6,
  /** Replicas of a topic this log creates when not told: 3, or fewer when the cluster has fewer brokers. */
  replicationFactorMax: 3,
  clientId: 'strata-wal',
} as const;

/** Kafka's rule for topic names. */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

export interface KafkaWriteAheadLogOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  topic?: string;
  /** For a topic this log creates; an existing topic is used as it is. */
  partitions?: number;
  /** For a topic this log creates; default min(3, brokers in the cluster). */
  replicationFactor?: number;
  clientId?: string;
  sendTimeoutMs?: number;
  /** Deadlines and poll waits. Defaults to the system clock. */
  clock?: Clock;
  batchRecordsMax?: number;
  /**
   * The cluster's data format version, asked at every append: binary records (format 2) only once it is 2 or
   * more, since a process of the previous release reading the topic could not parse them. Default
   * `fixedDataFormat(1)`: sealed JSON, as the previous release wrote. Consumers read both formats whatever it says.
   */
  dataFormat?: DataFormatSource;
}

/** What group commit did so far (tests check that it batches). */
export interface KafkaWalStats {
  /** Sends Kafka acknowledged. */
  sends: number;
  /** Records in those sends. */
  records: number;
  /** Sends that failed with an error. */
  failedSends: number;
  /** Sends abandoned at their deadline. */
  abandonedSends: number;
}

interface PendingAppend {
  key: string;
  value: string | Buffer;
  bytes: number;
  deadlineMs: number;
  settled: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface InflightSend {
  records: PendingAppend[];
  deadlineMs: number;
  /** Set when the deadline passed: the send is being given up, its deadline no longer matters. */
  abandoned: boolean;
  abandon: () => void;
}

interface ProducerSlot {
  producer: Producer;
  connected: Promise<void> | null;
}

export class KafkaWriteAheadLog implements WriteAheadLog {
  readonly topic: string;
  private readonly brokers: string[];
  private readonly brokersText: string;
  private readonly clientId: string;
  private readonly kafka: Kafka;
  /** A client configured as `kafka` under another client id (each consumer has its own). */
  private readonly newKafka: (clientId: string) => Kafka;
  private readonly clock: Clock;
  private readonly sendTimeoutMs: number;
  private readonly batchRecordsMax: number;
  private readonly dataFormat: DataFormatSource;
  private readonly counters: KafkaWalStats = { sends: 0, records: 0, failedSends: 0, abandonedSends: 0 };

  private queue: PendingAppend[] = [];
  private inflight: InflightSend | null = null;
  private producer: ProducerSlot | null = null;
  /** Settles once an abandoned send has ended and its producer is disconnected; nothing is sent before. */
  private abandoned: Promise<void> | null = null;
  /** The last error Kafka gave, quoted when an append times out. */
  private lastError: string | null = null;
  private flushScheduled = false;
  private flushing: Promise<void> | null = null;
  private sweeping = false;
  private closed = false;
  private readonly consumers = new Set<WalConsumer>();

  private constructor(options: KafkaWriteAheadLogOptions, newKafka: (clientId: string) => Kafka, topic: string) {
    this.brokers = [...options.brokers];
    this.brokersText = this.brokers.join(',');
    this.clientId = options.clientId ?? KAFKA_WAL_DEFAULTS.clientId;
    this.kafka = newKafka(this.clientId);
    this.newKafka = newKafka;
    this.topic = topic;
    this.clock = options.clock ?? systemClock;
    this.sendTimeoutMs = options.sendTimeoutMs ?? KAFKA_WAL_LIMITS.sendTimeoutMs;
    this.batchRecordsMax = options.batchRecordsMax ?? KAFKA_WAL_LIMITS.batchRecordsMax;
    this.dataFormat = options.dataFormat ?? fixedDataFormat(DATA_FORMAT_V1);
  }

  /** Connects, creates the topic when missing, and returns the log. Unreachable brokers: WAL_UNAVAILABLE. */
  static async open(options: KafkaWriteAheadLogOptions): Promise<KafkaWriteAheadLog> {
    assert(options.brokers.length > 0, 'brokers is non-empty');
    const topic = options.topic ?? KAFKA_WAL_DEFAULTS.topic;
    assert(TOPIC_NAME.test(topic), 'topic matches [a-zA-Z0-9._-]{1,249}');
    const partitions = options.partitions ?? KAFKA_WAL_DEFAULTS.partitions;
    assert(Number.isInteger(partitions) && partitions >= 1, 'partitions is an integer >= 1');
    const rf = options.replicationFactor;
    assert(rf === undefined || (Number.isInteger(rf) && rf >= 1), 'replicationFactor is an integer >= 1');
    const sendTimeoutMs = options.sendTimeoutMs ?? KAFKA_WAL_LIMITS.sendTimeoutMs;
    assert(Number.isInteger(sendTimeoutMs) && sendTimeoutMs >= 1, 'sendTimeoutMs is an integer >= 1');
    const batch = options.batchRecordsMax ?? KAFKA_WAL_LIMITS.batchRecordsMax;
    assert(Number.isInteger(batch) && batch >= 1, 'batchRecordsMax is an integer >= 1');

    // Before anything connects: the consumer relies on kafkajs internals of exactly one version.
    checkKafkaJsVersion();

    const newKafka = (clientId: string): Kafka =>
      new Kafka({
        brokers: [...options.brokers],
        clientId,
        connectionTimeout: KAFKA_WAL_LIMITS.connectionTimeoutMs,
        requestTimeout: sendTimeoutMs,
        enforceRequestTimeout: true,
        retry: {
          retries: KAFKA_WAL_LIMITS.clientRetries,
          initialRetryTime: KAFKA_WAL_LIMITS.clientRetryInitialMs,
          maxRetryTime: KAFKA_WAL_LIMITS.clientRetryMaxMs,
        },
        // Errors reach callers as WAL_UNAVAILABLE with Kafka's message; kafkajs's own log would only repeat them.
        logLevel: logLevel.NOTHING,
      });
    const log = new KafkaWriteAheadLog(options, newKafka, topic);
    const admin = log.kafka.admin();
    const clock = options.clock ?? systemClock;
    try {
      await withDeadline(
        log.createTopic(admin, partitions, rf),
        clock,
        KAFKA_WAL_LIMITS.openTimeoutMs,
        `no answer within ${KAFKA_WAL_LIMITS.openTimeoutMs} ms`,
      );
    } catch (err) {
      throw new StrataError(
        'WAL_UNAVAILABLE',
        `write-ahead log: cannot open topic ${topic} on Kafka at ${log.brokersText}: ${(err as Error).message}`,
        { brokers: log.brokers },
      );
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    return log;
  }

  private async createTopic(admin: Admin, partitions: number, replicationFactor: number | undefined): Promise<void> {
    await admin.connect();
    const replicas =
      replicationFactor ??
      Math.min(KAFKA_WAL_DEFAULTS.replicationFactorMax, (await admin.describeCluster()).brokers.length);
    // With acks=-1, min.insync.replicas decides how many copies an acknowledged record has: 2 of 3 survives the
    // loss of one broker without refusing writes.
    const minInsync = Math.min(2, replicas);
    // false (not an error) when the topic exists: it is used as it is, whatever its partitions.
    await admin.createTopics({
      waitForLeaders: true,
      timeout: KAFKA_WAL_LIMITS.openTimeoutMs,
      topics: [
        {
          topic: this.topic,
          numPartitions: partitions,
          replicationFactor: replicas,
          configEntries: [{ name: 'min.insync.replicas', value: String(minInsync) }],
        },
      ],
    });
    const { topics } = await admin.fetchTopicMetadata({ topics: [this.topic] });
    if ((topics[0]?.partitions.length ?? 0) === 0) throw new Error(`topic ${this.topic} has no partitions`);
  }

  stats(): KafkaWalStats {
    return { ...this.counters };
  }

  async append(record: WalRecord): Promise<void> {
    assert(record.type === 'intent' || record.type === 'outcome', 'record.type is intent or outcome');
    assert(typeof record.key === 'string' && typeof record.writeId === 'string', 'record has key and writeId');
    if (this.closed) throw new StrataError('WAL_UNAVAILABLE', 'write-ahead log is closed');
    const value = encodeWalRecord(record, this.dataFormat.current());
    const bytes = Buffer.byteLength(record.key) + Buffer.byteLength(value);
    if (bytes > KAFKA_WAL_LIMITS.recordBytesMax) {
      // A record this large means a write names absurdly many blobs: a bug, not an operating condition.
      assert(false, `a WAL record is at most ${KAFKA_WAL_LIMITS.recordBytesMax} bytes (this one: ${bytes})`);
    }
    if (this.queue.length >= KAFKA_WAL_LIMITS.queueRecordsMax) {
      throw new StrataError(
        'WAL_UNAVAILABLE',
        `write-ahead log: ${this.queue.length} appends already wait for Kafka at ${this.brokersText}`,
        { brokers: this.brokers },
      );
    }
    await new Promise<void>((resolve, reject) => {
      this.queue.push({
        key: record.key,
        value,
        bytes,
        deadlineMs: this.clock.nowMs() + this.sendTimeoutMs,
        settled: false,
        resolve,
        reject,
      });
      this.scheduleFlush();
      this.ensureSweeper();
    });
  }

  async consumer(group: string): Promise<WalConsumer> {
    assert(group.length > 0, 'group is non-empty');
    if (this.closed) throw new StrataError('WAL_UNAVAILABLE', 'write-ahead log is closed');
    const consumer = await KafkaWalConsumer.open({
      kafka: this.newKafka(`${this.clientId}-consumer`),
      brokers: this.brokers,
      topic: this.topic,
      group,
      clock: this.clock,
      onClose: (c) => this.consumers.delete(c),
    });
    this.consumers.add(consumer);
    return consumer;
  }

  /** Sends what is queued (each append still within its deadline), then disconnects; closes its consumers. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing !== null || this.flushScheduled || this.queue.length > 0) {
      if (this.flushing === null && !this.flushScheduled) this.scheduleFlush();
      await (this.flushing ?? new Promise((resolve) => setImmediate(resolve)));
    }
    await this.abandoned;
    const slot = this.producer;
    this.producer = null;
    if (slot) await slot.producer.disconnect().catch(() => undefined);
    await Promise.all([...this.consumers].map((c) => c.close()));
  }

  // ---- group commit ---------------------------------------------------------------------------------------

  /** The next `setImmediate` sends what queued up in this turn of the event loop (unless a send is in flight). */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing !== null) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.flushing !== null) return;
      this.flushing = this.flushLoop().finally(() => {
        this.flushing = null;
        // An append that arrived after the loop's last look at the queue found a flush running and left it to us.
        if (this.queue.length > 0) this.scheduleFlush();
      });
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0) {
      if (this.abandoned) {
        await this.abandoned;
        continue;
      }
      await this.send(this.takeBatch());
    }
  }

  /** The oldest queued appends, up to the batch limits (at least one). */
  private takeBatch(): PendingAppend[] {
    let count = 0;
    let bytes = 0;
    for (const pending of this.queue) {
      if (count >= this.batchRecordsMax || (count > 0 && bytes + pending.bytes > KAFKA_WAL_LIMITS.batchBytesMax)) break;
      count++;
      bytes += pending.bytes;
    }
    return this.queue.splice(0, count);
  }

  private async send(records: PendingAppend[]): Promise<void> {
    const slot = (this.producer ??= this.createProducer());
    let abandon: () => void = () => {};
    const abandoned = new Promise<'abandoned'>((resolve) => {
      abandon = () => resolve('abandoned');
    });
    this.inflight = { records, deadlineMs: this.clock.nowMs() + this.sendTimeoutMs, abandoned: false, abandon };
    const sent = this.sendWith(slot, records);
    const outcome = await Promise.race([sent.then(() => 'sent' as const, (err: unknown) => err as Error), abandoned]);
    this.inflight = null;

    if (outcome === 'sent') {
      this.counters.sends++;
      this.counters.records += records.length;
      this.lastError = null;
      for (const pending of records) settle(pending, null);
      return;
    }
    // Failed or abandoned: the producer's sequence numbers no longer match what the brokers have (a record may
    // have been written without our hearing of it), and reusing them could make a broker drop a new batch as a
    // "duplicate". A new producer gets a new producer id.
    this.producer = null;
    if (outcome === 'abandoned') {
      this.counters.abandonedSends++;
      this.abandoned = this.retire(slot, sent).finally(() => {
        this.abandoned = null;
      });
      const error = this.unavailable(`no acknowledgement within ${this.sendTimeoutMs} ms`);
      for (const pending of records) settle(pending, error);
      return;
    }
    this.counters.failedSends++;
    this.lastError = outcome.message;
    // Its retries are over, but the producer may hold connections: close them before the next producer starts.
    await this.retire(slot, Promise.resolve());
    const error = this.unavailable(outcome.message);
    for (const pending of records) settle(pending, error);
  }

  private async sendWith(slot: ProducerSlot, records: PendingAppend[]): Promise<void> {
    slot.connected ??= slot.producer.connect();
    await slot.connected;
    await slot.producer.send({
      topic: this.topic,
      acks: -1,
      timeout: this.sendTimeoutMs,
      messages: records.map((pending) => ({ key: pending.key, value: pending.value })),
    });
  }

  private createProducer(): ProducerSlot {
    const producer = this.kafka.producer({
      idempotent: true,
      // kafkajs requires 1 for an idempotent producer; we also never have two sends in flight.
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Murmur2 on the key, as Java clients and Redpanda's tools partition: one key, one partition.
      createPartitioner: Partitioners.DefaultPartitioner,
      // Bounded on purpose (kafkajs warns this weakens its exactly-once retries): our deadline fails the append
      // anyway, and a fresh producer replaces this one after any failure.
      retry: {
        retries: KAFKA_WAL_LIMITS.clientRetries,
        initialRetryTime: KAFKA_WAL_LIMITS.clientRetryInitialMs,
        maxRetryTime: KAFKA_WAL_LIMITS.clientRetryMaxMs,
      },
    });
    return { producer, connected: null };
  }

  /**
   * Waits for a send to end (its kafkajs retries are bounded), then disconnects its producer: kafkajs reconnects
   * a disconnected producer from inside a retry, so disconnecting first would leak the new connections.
   */
  private async retire(slot: ProducerSlot, sending: Promise<unknown>): Promise<void> {
    await withDeadline(
      sending.catch(() => undefined),
      this.clock,
      KAFKA_WAL_LIMITS.abandonedSendWaitMsMax,
      'abandoned send did not end',
    ).catch(() => undefined);
    await withDeadline(
      slot.producer.disconnect(),
      this.clock,
      KAFKA_WAL_LIMITS.disconnectTimeoutMs,
      'disconnect timed out',
    ).catch(() => undefined);
  }

  private unavailable(reason: string): StrataError {
    const last = this.lastError !== null && !reason.includes(this.lastError) ? ` (last error: ${this.lastError})` : '';
    return new StrataError(
      'WAL_UNAVAILABLE',
      `write-ahead log: Kafka at ${this.brokersText} did not take the append: ${reason}${last}`,
      { brokers: this.brokers },
    );
  }

  // ---- deadlines ------------------------------------------------------------------------------------------

  /**
   * One timer for all deadlines: appends are queued in call order with the same timeout, so the earliest
   * deadline is always at the head of the in-flight send or of the queue, and one sleep at a time suffices.
   */
  private ensureSweeper(): void {
    if (this.sweeping) return;
    this.sweeping = true;
    void (async () => {
      try {
        for (let next = this.nextDeadlineMs(); next !== null; next = this.nextDeadlineMs()) {
          const waitMs = next - this.clock.nowMs();
          if (waitMs > 0) await this.clock.sleep(waitMs);
          else this.expireDue();
        }
      } finally {
        this.sweeping = false;
      }
    })();
  }

  private nextDeadlineMs(): number | null {
    let next = this.queue[0]?.deadlineMs ?? Infinity;
    if (this.inflight) {
      const oldest = this.inflight.records.find((pending) => !pending.settled);
      if (oldest) next = Math.min(next, oldest.deadlineMs);
      if (!this.inflight.abandoned) next = Math.min(next, this.inflight.deadlineMs);
    }
    return next === Infinity ? null : next;
  }

  private expireDue(): void {
    const nowMs = this.clock.nowMs();
    let expired = 0;
    while (expired < this.queue.length && (this.queue[expired] as PendingAppend).deadlineMs <= nowMs) expired++;
    const error = this.unavailable(`no acknowledgement within ${this.sendTimeoutMs} ms`);
    for (const pending of this.queue.splice(0, expired)) settle(pending, error);
    if (this.inflight) {
      for (const pending of this.inflight.records) if (pending.deadlineMs <= nowMs) settle(pending, error);
      if (!this.inflight.abandoned && this.inflight.deadlineMs <= nowMs) {
        this.inflight.abandoned = true;
        this.inflight.abandon();
      }
    }
  }
}

function settle(pending: PendingAppend, error: Error | null): void {
  if (pending.settled) return;
  pending.settled = true;
  if (error) pending.reject(error);
  else pending.resolve();
}

/** `operation`, or a rejection with `message` after `ms` (the operation goes on; the caller decides about it). */
async function withDeadline<T>(operation: Promise<T>, clock: Clock, ms: number, message: string): Promise<T> {
  const timedOut = Symbol('timed out');
  const result = await Promise.race([operation, clock.sleep(ms).then(() => timedOut)]);
  if (result === timedOut) throw new Error(message);
  return result as T;
}
