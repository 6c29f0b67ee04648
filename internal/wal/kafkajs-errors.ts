/**
 * How the Kafka WAL consumer tells kafkajs errors apart: by the public fields of kafkajs's exported error classes
 * (`name`; `type`, Kafka's error code name, on protocol errors), not by anything private.
 */

/** kafkajs error fields we branch on. */
export interface KafkaJsErrorFields {
  name?: string;
  type?: string;
  message?: string;
  topic?: string;
  partition?: number;
  host?: string;
  port?: number;
  /** KafkaJSNumberOfRetriesExceeded and KafkaJSNonRetriableError wrap the error of the last try here. */
  cause?: unknown;
}

/** Unwrapping at most this many `cause`s (kafkajs wraps once or twice). */
const CAUSE_DEPTH_MAX = 4;

/** The error kafkajs's retries ended on (the innermost `cause`), or the error itself when it is not wrapped. */
export function causeOf(err: unknown): KafkaJsErrorFields {
  let fields = err as KafkaJsErrorFields;
  for (let depth = 0; depth < CAUSE_DEPTH_MAX && typeof fields.cause === 'object' && fields.cause !== null; depth++) {
    fields = fields.cause as KafkaJsErrorFields;
  }
  return fields;
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
