/**
 * The parts of kafkajs that are not its public API, typed and gathered in this one file.
 *
 * Why: the WAL consumer needs two things kafkajs's public API does not offer. (1) Reading partitions without
 * joining a consumer group: a group member's partitions move on every rebalance, its fetch position is the
 * client's to choose, and a member that stops heartbeating while the healer resolves a slow intent is thrown
 * out; the WAL wants none of that (the healer's leader election already decides who reads). (2) Committing an
 * offset without group membership: `admin.setOffsets` joins the group and runs a consumer to do it (seconds).
 * Kafka supports both directly: a Fetch request for chosen partitions and offsets, and an OffsetCommit with
 * generation -1 and no member id (a "simple" commit, accepted while the group has no members). kafkajs has the
 * protocol code for both inside `src/`; this file reaches it.
 *
 * kafkajs 2.2.4 is its last release (the project is no longer developed), so these internals do not move; the
 * version is checked at load all the same, and a different version fails loudly rather than misbehave.
 */
import { createRequire } from 'node:module';
import { assert } from '../core/assert.js';

const require = createRequire(import.meta.url);

/** The kafkajs version whose internals this file was written against (package.json pins it). */
export const KAFKAJS_INTERNALS_VERSION = '2.2.4';

const installed = (require('kafkajs/package.json') as { version: string }).version;
assert(
  installed === KAFKAJS_INTERNALS_VERSION,
  `kafkajs ${installed} is installed; internal/wal/kafkajs-internals.ts is written for ${KAFKAJS_INTERNALS_VERSION}`,
);

/** Kafka's READ_COMMITTED: never return records of aborted or open transactions. */
const READ_COMMITTED = 1;

export interface FetchedMessage {
  /** int64 as decimal text. */
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  isControlRecord?: boolean;
}

export interface FetchedPartition {
  partition: number;
  errorCode: number;
  highWatermark: string;
  messages: FetchedMessage[];
  abortedTransactions?: unknown[];
}

export interface FetchResponse {
  responses: { topicName: string; partitions: FetchedPartition[] }[];
}

export interface InternalBroker {
  fetch(request: {
    isolationLevel: number;
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    topics: { topic: string; partitions: { partition: number; fetchOffset: string; maxBytes: number }[] }[];
  }): Promise<FetchResponse>;
  offsetCommit(request: {
    groupId: string;
    groupGenerationId: number;
    memberId: string;
    retentionTime?: number;
    topics: { topic: string; partitions: { partition: number; offset: string }[] }[];
  }): Promise<unknown>;
  offsetFetch(request: {
    groupId: string;
    topics: { topic: string; partitions: { partition: number }[] }[];
  }): Promise<{ responses: { topic: string; partitions: { partition: number; offset: string }[] }[] }>;
}

export interface PartitionMetadata {
  partitionId: number;
  leader: number | null;
}

export interface InternalCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  refreshMetadata(): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  /** Adds the topic to the metadata this cluster tracks (refreshing it). */
  addTargetTopic(topic: string): Promise<void>;
  findTopicPartitionMetadata(topic: string): PartitionMetadata[];
  /** Partition ids by the node id of their leader. */
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(request: { nodeId: string }): Promise<InternalBroker>;
  findGroupCoordinator(request: { groupId: string }): Promise<InternalBroker>;
  /** The earliest (fromBeginning) or latest offset of each partition. */
  fetchTopicsOffset(
    topics: { topic: string; partitions: { partition: number }[]; fromBeginning: boolean }[],
  ): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>;
  removeBroker(broker: { host: string; port: number }): void;
}

export interface InternalClusterOptions {
  brokers: string[];
  clientId: string;
  connectionTimeoutMs: number;
  requestTimeoutMs: number;
  /** Retries of one operation inside kafkajs (bounded: we want errors, not waiting). */
  retries: number;
  retryInitialMs: number;
  retryMaxMs: number;
  /** Metadata (partitions, leaders) older than this is refreshed before use; errors refresh it sooner. */
  metadataMaxAgeMs: number;
}

type ClusterConstructor = new (options: Record<string, unknown>) => InternalCluster;
type BatchConstructor = new (
  topic: string,
  fetchedOffset: string,
  partitionData: FetchedPartition,
) => {
  /** Messages at or after the fetched offset, without control records and aborted transactions. */
  messages: FetchedMessage[];
  /** Every message at or after the fetched offset (control records included): the position moves past them. */
  messagesWithinOffset: FetchedMessage[];
};

const Cluster = require('kafkajs/src/cluster/index.js') as ClusterConstructor;
const Batch = require('kafkajs/src/consumer/batch.js') as BatchConstructor;
const { createLogger, LEVELS } = require('kafkajs/src/loggers/index.js') as {
  createLogger(options: { level: number; logCreator: () => () => void }): unknown;
  LEVELS: { NOTHING: number };
};
const defaultSocketFactory = require('kafkajs/src/network/socketFactory.js') as () => unknown;

/** A kafkajs cluster (connections, metadata, brokers) outside any producer, consumer or admin. */
export function createInternalCluster(options: InternalClusterOptions): InternalCluster {
  return new Cluster({
    // Errors reach callers as exceptions (and become WAL_UNAVAILABLE); kafkajs's own log would only repeat them.
    logger: createLogger({ level: LEVELS.NOTHING, logCreator: () => () => undefined }),
    socketFactory: defaultSocketFactory(),
    brokers: options.brokers,
    clientId: options.clientId,
    connectionTimeout: options.connectionTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    enforceRequestTimeout: true,
    retry: {
      retries: options.retries,
      initialRetryTime: options.retryInitialMs,
      maxRetryTime: options.retryMaxMs,
    },
    metadataMaxAge: options.metadataMaxAgeMs,
    allowAutoTopicCreation: false,
    isolationLevel: READ_COMMITTED,
  });
}

export { READ_COMMITTED };

/** The messages of one fetched partition that a reader should see (as kafkajs's own consumer filters them). */
export function fetchedBatch(
  topic: string,
  fetchedOffset: string,
  partitionData: FetchedPartition,
): InstanceType<BatchConstructor> {
  return new Batch(topic, fetchedOffset, partitionData);
}

/** kafkajs error fields we branch on. */
export interface KafkaJsErrorFields {
  name?: string;
  type?: string;
  message?: string;
  topic?: string;
  partition?: number;
  host?: string;
  port?: number;
}

/** Errors after which fresh metadata (new partition leaders) is the cure, not a report to the caller. */
const STALE_METADATA_TYPES = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'UNKNOWN_TOPIC_OR_PARTITION',
]);

export function isStaleMetadataError(err: KafkaJsErrorFields): boolean {
  return (
    (err.type !== undefined && STALE_METADATA_TYPES.has(err.type)) ||
    err.name === 'KafkaJSMetadataNotLoaded' ||
    err.name === 'KafkaJSTopicMetadataNotLoaded' ||
    err.name === 'KafkaJSBrokerNotFound'
  );
}

/**
 * Errors of a group coordinator that is moving or still loading its groups (every group's first use on a new
 * cluster: the offsets topic is being created). Asking again, of the coordinator found afresh, is the cure.
 */
const COORDINATOR_MOVING_TYPES = new Set([
  'GROUP_LOAD_IN_PROGRESS',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR_FOR_GROUP',
]);

export function isCoordinatorMovingError(err: KafkaJsErrorFields): boolean {
  return (
    (err.type !== undefined && COORDINATOR_MOVING_TYPES.has(err.type)) ||
    err.name === 'KafkaJSGroupCoordinatorNotFound'
  );
}

export function isOffsetOutOfRange(err: KafkaJsErrorFields): boolean {
  return err.name === 'KafkaJSOffsetOutOfRange';
}
