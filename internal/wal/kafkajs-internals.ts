/**
 * The only code in Strata that uses kafkajs beyond its public API: the two Kafka requests the WAL consumer needs and
 * kafkajs 2.2.4 cannot make publicly. Everything else (producing, topics, committed and earliest offsets) goes
 * through the public API.
 *
 * The property this protects (./README.md, "Who reads, who commits"): only the elected healer reads the WAL, only
 * the fenced leader commits offsets, never past an unresolved intent. Kafka's own way to decide who reads is
 * consumer-group membership, which lets Kafka hand partitions to whichever process joins, moves them on every
 * rebalance, and expels a healer that resolves a slow intent without heartbeating. The healer's leader election
 * (a term in the metadata store) already decides who reads, so the WAL consumer joins no group:
 *   1. It fetches every partition at offsets it chooses. kafkajs has no manual partition assignment
 *      (`consumer.assign`, tulios/kafkajs#373 and the unmerged #1429; the maintainers' answer in #1060); its
 *      consumer reads only as a group member.
 *   2. It commits an offset with a "simple" OffsetCommit (generation -1, no member id), which Kafka accepts for a
 *      group without members. The public `admin.setOffsets` joins the group and runs a consumer for every call
 *      (seconds), and `consumer.commitOffsets` needs membership.
 *
 * What this relies on, each checked by test/wal/kafkajs-internals.test.ts (which fails on any change):
 *   - the `Kafka` client's own cluster factory, the symbol-keyed `private:Kafka:createCluster`, so that the cluster
 *     is configured by the public constructor's options (brokers, timeouts, retries, log level);
 *   - on that cluster: connect, disconnect, addTargetTopic, refreshMetadata, refreshMetadataIfNecessary,
 *     findTopicPartitionMetadata, findBroker, findGroupCoordinator, removeBroker; on a broker: fetch, offsetCommit
 *     (kafkajs's public types declare both objects, but nothing public hands one out);
 *   - `kafkajs/src/consumer/batch.js`: the filter kafkajs's own consumer applies to a fetch response (records before
 *     the fetched offset, control records and aborted transactions left out).
 * They hold for exactly one kafkajs version; any other fails with KafkaJsVersionError before any of them is used.
 */
import { createRequire } from 'node:module';
import type { Broker, Cluster, Kafka } from 'kafkajs';

const require = createRequire(import.meta.url);

/** The kafkajs version this file was written against; package.json pins it exactly. */
export const KAFKAJS_PINNED_VERSION = '2.2.4';

/** A kafkajs other than the pinned one is installed: its private API may differ, so none of it is used. */
export class KafkaJsVersionError extends Error {
  readonly code = 'KAFKAJS_VERSION_MISMATCH';
  constructor(
    readonly installed: string,
    why = 'another version',
  ) {
    super(
      `kafkajs ${installed} is installed (${why}), but the Kafka WAL uses the private API of kafkajs ` +
        `${KAFKAJS_PINNED_VERSION} (internal/wal/kafkajs-internals.ts): install exactly ${KAFKAJS_PINNED_VERSION}, ` +
        `or check that file against ${installed} and change the pin`,
    );
    this.name = 'KafkaJsVersionError';
  }
}

export function installedKafkaJsVersion(): string {
  return (require('kafkajs/package.json') as { version: string }).version;
}

/** Throws KafkaJsVersionError unless `installed` is the pinned version. The Kafka WAL calls it when it opens. */
export function checkKafkaJsVersion(installed: string = installedKafkaJsVersion()): void {
  if (installed !== KAFKAJS_PINNED_VERSION) throw new KafkaJsVersionError(installed);
}

/** The description of the symbol under which `new Kafka(...)` keeps its cluster factory (kafkajs src/index.js). */
export const CREATE_CLUSTER_SYMBOL = 'private:Kafka:createCluster';
/** Kafka's READ_COMMITTED: never deliver records of aborted or open transactions. */
const READ_COMMITTED = 1;

type CreateCluster = (options: {
  metadataMaxAge: number;
  allowAutoTopicCreation: boolean;
  isolationLevel: number;
}) => Cluster;

interface FetchedMessage {
  /** int64 as decimal text, as every offset here. */
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}
type BatchConstructor = new (
  topic: string,
  fetchedOffset: string,
  partitionData: unknown,
) => { messages: FetchedMessage[]; messagesWithinOffset: FetchedMessage[] };

export interface FetchedPartition {
  partition: number;
  /** The records to deliver, in offset order. */
  records: FetchedMessage[];
  /** The offset after the last one this fetch covered (control records too), or null when it returned nothing. */
  nextOffset: string | null;
}

/** One topic's partitions, as the cluster's metadata knows them. `leader` < 0 or null: none elected yet. */
export interface PartitionLeader {
  partition: number;
  leader: number | null;
}

/** A kafkajs cluster (connections and metadata) for one topic, used only for the two requests above. */
export class KafkaJsPrivateClient {
  private constructor(
    private readonly cluster: Cluster,
    private readonly batch: BatchConstructor,
    private readonly topic: string,
  ) {}

  static create(kafka: Kafka, topic: string, metadataMaxAgeMs: number): KafkaJsPrivateClient {
    checkKafkaJsVersion();
    const key = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER_SYMBOL);
    const createCluster = key === undefined ? undefined : (kafka as unknown as Record<symbol, CreateCluster>)[key];
    if (typeof createCluster !== 'function') {
      throw new KafkaJsVersionError(installedKafkaJsVersion(), `its Kafka client has no ${CREATE_CLUSTER_SYMBOL}`);
    }
    const cluster = createCluster({
      metadataMaxAge: metadataMaxAgeMs,
      allowAutoTopicCreation: false,
      isolationLevel: READ_COMMITTED,
    });
    return new KafkaJsPrivateClient(cluster, require('kafkajs/src/consumer/batch.js') as BatchConstructor, topic);
  }

  async connect(): Promise<void> {
    await this.cluster.connect();
    await this.cluster.addTargetTopic(this.topic);
  }

  async disconnect(): Promise<void> {
    await this.cluster.disconnect();
  }

  /** The topic's partitions and their leaders; metadata is refreshed first when `refresh`, or when it is old. */
  async partitions(refresh: boolean): Promise<PartitionLeader[]> {
    if (refresh) await this.cluster.refreshMetadata();
    else await this.cluster.refreshMetadataIfNecessary();
    const metadata = this.cluster.findTopicPartitionMetadata(this.topic);
    return metadata.map((p) => ({ partition: p.partitionId, leader: p.leader }));
  }

  /** One Fetch from the broker `leader`, for partitions it leads, at the offsets given (READ_COMMITTED). */
  async fetch(
    leader: number,
    request: { offsets: Map<number, string>; maxWaitMs: number; maxBytes: number; partitionMaxBytes: number },
  ): Promise<FetchedPartition[]> {
    const broker: Broker = await this.cluster.findBroker({ nodeId: String(leader) });
    const { responses } = (await broker.fetch({
      isolationLevel: READ_COMMITTED,
      maxWaitTime: request.maxWaitMs,
      minBytes: 1,
      maxBytes: request.maxBytes,
      topics: [
        {
          topic: this.topic,
          partitions: [...request.offsets].map(([partition, fetchOffset]) => ({
            partition,
            fetchOffset,
            maxBytes: request.partitionMaxBytes,
          })),
        },
      ],
    })) as { responses: { topicName: string; partitions: { partition: number }[] }[] };
    const fetched: FetchedPartition[] = [];
    for (const { topicName, partitions } of responses) {
      if (topicName !== this.topic) continue;
      for (const partitionData of partitions) {
        const fetchedOffset = request.offsets.get(partitionData.partition);
        if (fetchedOffset === undefined) continue;
        const batch = new this.batch(this.topic, fetchedOffset, partitionData);
        const last = batch.messagesWithinOffset[batch.messagesWithinOffset.length - 1];
        fetched.push({
          partition: partitionData.partition,
          records: batch.messages,
          nextOffset: last === undefined ? null : (BigInt(last.offset) + 1n).toString(),
        });
      }
    }
    return fetched;
  }

  /** Commits `offset` (the next to read) for `group` without membership: a simple OffsetCommit. */
  async commitOffset(group: string, partition: number, offset: string): Promise<void> {
    const coordinator = await this.cluster.findGroupCoordinator({ groupId: group });
    await coordinator.offsetCommit({
      groupId: group,
      groupGenerationId: -1,
      memberId: '',
      retentionTime: -1,
      topics: [{ topic: this.topic, partitions: [{ partition, offset }] }],
    });
  }

  /** Drops a broker whose connection closed, so that the next request connects afresh (as kafkajs's consumer does). */
  forgetBroker(broker: { host: string; port: number }): void {
    this.cluster.removeBroker(broker);
  }
}
