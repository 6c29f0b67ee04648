import type { Admin, Kafka } from 'kafkajs';
import { assert } from '../core/assert.js';
import type { Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import {
  causeOf,
  isCoordinatorMovingError,
  isOffsetOutOfRange,
  isStaleMetadataError,
  type KafkaJsErrorFields,
} from './kafkajs-errors.js';
import { KafkaJsPrivateClient, type PartitionLeader } from './kafkajs-internals.js';
import { openWalEntry } from './wal-record-envelope.js';
import type { WalConsumer, WalEntry, WalPosition } from './write-ahead-log.js';

/**
 * The Kafka WAL's consumer: reads every partition of the topic itself, with no consumer-group membership, and
 * keeps its group's positions as Kafka committed offsets. Why no membership: ./README.md, "Who reads, who commits".
 *
 * Public kafkajs API (an admin client) for the group's committed offsets and the earliest retained offsets; the
 * two requests it cannot make publicly, a fetch outside a group and a commit outside a group, through
 * ./kafkajs-internals.ts, the one module that uses kafkajs's private API.
 *
 * Positions: an entry's position is { partition, offset } with Kafka's offset of the record. `commit(position)`
 * stores offset + 1 for that partition (Kafka's convention: the committed offset is the next one to read), and
 * never moves a partition's committed offset back. A new consumer of the group starts each partition at its
 * committed offset, or at the earliest retained record when the group has none there.
 */

export const KAFKA_WAL_CONSUMER_LIMITS = {
  /** Entries returned by one poll, whatever `max` asks for. */
  pollEntriesMax: 10_000,
  /**
   * Longest a broker holds one fetch open waiting for records. A poll waits longer by fetching again; this only
   * bounds how late a poll that was given a short wait returns when an earlier fetch is still open.
   */
  fetchWaitMsMax: 500,
  /** Bytes one fetch response may carry, in all and per partition (the broker returns at least one batch). */
  fetchBytesMax: 8 * 1024 * 1024,
  partitionFetchBytesMax: 1024 * 1024,
  /** How often partitions and leaders are looked up again without an error asking for it (new partitions). */
  metadataMaxAgeMs: 30_000,
  /** Tries of one offset fetch or commit while the group coordinator moves or loads, and the first backoff. */
  coordinatorTriesMax: 6,
  coordinatorBackoffMs: 100,
  /** Pause after a fetch found stale metadata (a leader moved), so that a poll does not spin while it settles. */
  staleMetadataBackoffMs: 100,
  /**
   * Tries of the start-up lookup (partitions, committed offsets, earliest offsets) while leaders settle: a topic
   * created a moment ago answers "not the leader" until its partitions have elected one.
   */
  openTriesMax: 30,
} as const;

/** Kafka's "no committed offset" in an OffsetFetch answer. */
const NO_OFFSET = -1;

export interface KafkaWalConsumerOptions {
  /** The consumer's own client, configured as the log's (short connects, bounded retries, request timeout). */
  kafka: Kafka;
  /** For messages only. */
  brokers: string[];
  topic: string;
  group: string;
  clock: Clock;
  onClose?: (consumer: KafkaWalConsumer) => void;
}

function parseOffset(text: string): number {
  const offset = Number(text);
  assert(Number.isSafeInteger(offset), `a Kafka offset is a safe integer (${text})`);
  return offset;
}

export class KafkaWalConsumer implements WalConsumer {
  private readonly options: KafkaWalConsumerOptions;
  private readonly admin: Admin;
  private readonly client: KafkaJsPrivateClient;
  private readonly clock: Clock;
  /** Per partition: the offset of the next record to fetch (everything before it is buffered or returned). */
  private readonly nextOffsets = new Map<number, number>();
  /** Per partition: the committed offset (next to read) as far as this consumer knows; commits never go below. */
  private readonly committed = new Map<number, number>();
  /** Partitions whose position must be reset to the earliest retained record (theirs was deleted). */
  private readonly resetToEarliest = new Set<number>();
  /** Fetched and not yet returned, each partition's entries in offset order. */
  private buffer: WalEntry[] = [];
  /** The fetch round in progress (one at a time, so the buffer is bounded by one round). */
  private round: Promise<void> | null = null;
  /** An error of the last round, reported by the next poll. */
  private failure: Error | null = null;
  private needsMetadata = false;
  private commits: Promise<void> = Promise.resolve();
  /** Wakes a waiting poll: entries arrived, or the consumer closed. */
  private wakers = new Set<() => void>();
  private closed = false;

  private constructor(options: KafkaWalConsumerOptions, admin: Admin, client: KafkaJsPrivateClient) {
    this.options = options;
    this.admin = admin;
    this.client = client;
    this.clock = options.clock;
  }

  static async open(options: KafkaWalConsumerOptions): Promise<KafkaWalConsumer> {
    const limits = KAFKA_WAL_CONSUMER_LIMITS;
    const admin = options.kafka.admin();
    const client = KafkaJsPrivateClient.create(options.kafka, options.topic, limits.metadataMaxAgeMs);
    const consumer = new KafkaWalConsumer(options, admin, client);
    try {
      await admin.connect();
      // Loads the admin client's broker list: without it, its first fetchOffsets finds no group coordinator and
      // waits out a kafkajs retry (100 ms) before asking again.
      await admin.fetchTopicMetadata({ topics: [options.topic] });
      await client.connect();
      for (let tries = 1; ; tries += 1) {
        try {
          await consumer.discoverPartitions(await client.partitions(tries > 1));
          break;
        } catch (err) {
          // A topic created a moment ago answers "not the leader" until its partitions have elected one; kafkajs
          // wraps that in a retries-exceeded error once its own retries are spent.
          if (tries >= limits.openTriesMax || !isStaleMetadataError(causeOf(err))) throw err;
          await options.clock.sleep(limits.staleMetadataBackoffMs);
        }
      }
    } catch (err) {
      await consumer.disconnect();
      throw consumer.unavailable(`cannot start consumer ${options.group}`, err);
    }
    return consumer;
  }

  async poll(max: number, waitMs: number): Promise<WalEntry[]> {
    assert(Number.isInteger(max) && max >= 1, 'max is an integer >= 1');
    assert(Number.isFinite(waitMs) && waitMs >= 0, 'waitMs >= 0');
    this.checkOpen();
    const limit = Math.min(max, KAFKA_WAL_CONSUMER_LIMITS.pollEntriesMax);
    const deadlineMs = this.clock.nowMs() + waitMs;
    // One timer per poll, raced on every turn below. It allows a fetch up to fetchWaitMsMax even when waitMs is
    // shorter (a fetch round left open by an earlier poll, or a round trip), but no longer: a broker that hangs
    // delays a poll by that much, not by the request timeout; the fetch's error reaches a later poll.
    const timeout = this.clock.sleep(Math.max(waitMs, KAFKA_WAL_CONSUMER_LIMITS.fetchWaitMsMax));
    // Even with waitMs = 0 a poll asks Kafka once: "nothing buffered" is not "nothing there".
    let asked = false;
    for (;;) {
      if (this.buffer.length > 0) return this.buffer.splice(0, limit);
      if (this.failure !== null) {
        const failure = this.failure;
        this.failure = null;
        throw this.unavailable('poll failed', failure);
      }
      // A poll in flight when its consumer closes ends empty; the next call reports the closure.
      if (this.closed) return [];
      if (asked && this.clock.nowMs() >= deadlineMs) return [];
      const remainingMs = Math.max(0, deadlineMs - this.clock.nowMs());
      this.round ??= this.fetchRound(Math.min(remainingMs, KAFKA_WAL_CONSUMER_LIMITS.fetchWaitMsMax)).finally(() => {
        this.round = null;
      });
      asked = true;
      let wake: () => void = () => {};
      const woken = new Promise<void>((resolve) => {
        wake = resolve;
      });
      this.wakers.add(wake);
      try {
        await Promise.race([this.round, woken, timeout]);
      } finally {
        this.wakers.delete(wake);
      }
    }
  }

  async commit(position: WalPosition): Promise<void> {
    this.checkOpen();
    const { partition, offset } = position;
    assert(Number.isSafeInteger(offset) && offset >= 0, 'offset is an integer >= 0');
    assert(this.nextOffsets.has(partition), `partition ${partition} is a partition of the topic`);
    const next = offset + 1;
    // Commits run one after another, so a later commit can never be overtaken by an earlier, smaller one.
    const done = this.commits.then(async () => {
      // An offset only moves forward: "everything up to here is processed" cannot be taken back.
      if ((this.committed.get(partition) ?? NO_OFFSET) >= next) return;
      try {
        // Outside group membership (./kafkajs-internals.ts): Kafka accepts it for a group without members, and ours
        // never has any, since nothing joins it.
        await this.withCoordinator(() => this.client.commitOffset(this.options.group, partition, String(next)));
      } catch (err) {
        this.needsMetadata = true;
        throw this.unavailable(`cannot commit ${partition}:${offset}`, err);
      }
      this.committed.set(partition, next);
    });
    this.commits = done.catch(() => undefined);
    await done;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeAll();
    this.options.onClose?.(this);
    await this.disconnect();
  }

  // ---- fetching -------------------------------------------------------------------------------------------

  /** One fetch from the leader of every partition, in parallel; entries go to the buffer as each answers. */
  private async fetchRound(maxWaitMs: number): Promise<void> {
    try {
      const partitions = await this.client.partitions(this.needsMetadata);
      this.needsMetadata = false;
      await this.discoverPartitions(partitions);
      if (this.resetToEarliest.size > 0) await this.seekEarliest([...this.resetToEarliest]);
      const byLeader = new Map<number, number[]>();
      let leaderless = false;
      for (const { partition, leader } of partitions) {
        if (!this.nextOffsets.has(partition)) continue;
        if (leader === null || leader < 0) leaderless = true;
        else byLeader.set(leader, [...(byLeader.get(leader) ?? []), partition]);
      }
      await Promise.all([...byLeader].map(([leader, led]) => this.fetchFrom(leader, led, maxWaitMs)));
      if (leaderless) {
        // A partition is electing its leader: the others were read; look again shortly, without spinning.
        this.needsMetadata = true;
        await this.clock.sleep(KAFKA_WAL_CONSUMER_LIMITS.staleMetadataBackoffMs);
      }
    } catch (err) {
      if (this.closed) return;
      const fields = err as KafkaJsErrorFields;
      this.needsMetadata = true;
      if (isOffsetOutOfRange(fields) && fields.partition !== undefined) {
        // The records at our position were deleted by retention (or the topic was re-created): nothing older
        // than the earliest retained record can be read any more, so continue from there.
        this.resetToEarliest.add(fields.partition);
      } else if (!isStaleMetadataError(fields)) {
        if (fields.name === 'KafkaJSConnectionClosedError' && fields.host !== undefined && fields.port !== undefined) {
          this.client.forgetBroker({ host: fields.host, port: fields.port });
        }
        // Anything else (connection refused, timeouts) means Kafka is unreachable: the next poll says so.
        this.failure = err as Error;
        this.wakeAll();
        return;
      }
      await this.clock.sleep(KAFKA_WAL_CONSUMER_LIMITS.staleMetadataBackoffMs);
    }
  }

  private async fetchFrom(leader: number, partitions: number[], maxWaitMs: number): Promise<void> {
    const limits = KAFKA_WAL_CONSUMER_LIMITS;
    const requested = new Map(partitions.map((partition) => [partition, this.nextOffsets.get(partition) as number]));
    const fetched = await this.client.fetch(leader, {
      offsets: new Map([...requested].map(([partition, offset]) => [partition, String(offset)])),
      maxWaitMs,
      maxBytes: limits.fetchBytesMax,
      partitionMaxBytes: limits.partitionFetchBytesMax,
    });
    if (this.closed) return;
    let added = 0;
    for (const { partition, records, nextOffset } of fetched) {
      const fetchedOffset = requested.get(partition);
      // Only one round runs at a time, so positions cannot have moved since the request; checked all the same.
      if (fetchedOffset === undefined || this.nextOffsets.get(partition) !== fetchedOffset || nextOffset === null) {
        continue;
      }
      for (const record of records) {
        const offset = parseOffset(record.offset);
        // Verified here, where the entry enters the process; a damaged one is delivered as corrupt, not thrown.
        // The value as bytes: a binary record (format 2) is told from sealed JSON by its first byte.
        this.buffer.push(openWalEntry({ partition, offset }, record.key?.toString('utf8') ?? null, record.value ?? null));
        added++;
      }
      // Past control records too (none from our idempotent producer, but a transactional one writes them).
      const next = parseOffset(nextOffset);
      assert(next > fetchedOffset, 'a fetch returns offsets at or after the one asked for');
      this.nextOffsets.set(partition, next);
    }
    if (added > 0) this.wakeAll();
  }

  /** Starts newly seen partitions (all of them on open) at the group's committed offset, or the earliest one. */
  private async discoverPartitions(partitions: PartitionLeader[]): Promise<void> {
    if (partitions.length === 0) throw new Error(`topic ${this.options.topic} does not exist`);
    const fresh = new Set(partitions.map((p) => p.partition).filter((partition) => !this.nextOffsets.has(partition)));
    if (fresh.size === 0) return;
    const { group, topic } = this.options;
    const answer = await this.withCoordinator(() => this.admin.fetchOffsets({ groupId: group, topics: [topic] }));
    const withoutOffset: number[] = [];
    for (const { partition, offset } of answer.find((t) => t.topic === topic)?.partitions ?? []) {
      if (!fresh.has(partition)) continue;
      const committed = parseOffset(offset);
      if (committed === NO_OFFSET) {
        withoutOffset.push(partition);
      } else {
        this.nextOffsets.set(partition, committed);
        this.committed.set(partition, committed);
      }
    }
    // A partition the admin client's metadata does not know yet (just added) is started by a later round.
    if (withoutOffset.length > 0) await this.seekEarliest(withoutOffset);
  }

  /** Moves `partitions` to their earliest retained record. */
  private async seekEarliest(partitions: number[]): Promise<void> {
    const wanted = new Set(partitions);
    for (const { partition, low } of await this.admin.fetchTopicOffsets(this.options.topic)) {
      if (!wanted.has(partition)) continue;
      this.nextOffsets.set(partition, parseOffset(low));
      this.resetToEarliest.delete(partition);
    }
  }

  /** Runs `request` on the group's coordinator, again (a bounded number of times) while the coordinator moves. */
  private async withCoordinator<T>(request: () => Promise<T>): Promise<T> {
    const { coordinatorTriesMax, coordinatorBackoffMs } = KAFKA_WAL_CONSUMER_LIMITS;
    for (let tries = 1; ; tries++) {
      try {
        return await request();
      } catch (err) {
        if (tries >= coordinatorTriesMax || !isCoordinatorMovingError(err as KafkaJsErrorFields)) throw err;
        await this.clock.sleep(coordinatorBackoffMs * 2 ** (tries - 1));
      }
    }
  }

  // ---- helpers --------------------------------------------------------------------------------------------

  private wakeAll(): void {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const wake of wakers) wake();
  }

  private async disconnect(): Promise<void> {
    await Promise.all([this.client.disconnect(), this.admin.disconnect()].map((p) => p.catch(() => undefined)));
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new StrataError('WAL_UNAVAILABLE', `write-ahead log consumer ${this.options.group} is closed`);
    }
  }

  private unavailable(what: string, err: unknown): StrataError {
    return new StrataError(
      'WAL_UNAVAILABLE',
      `write-ahead log: ${what} on Kafka at ${this.options.brokers.join(',')}: ${(err as Error).message}`,
      { brokers: this.options.brokers, group: this.options.group },
    );
  }
}
