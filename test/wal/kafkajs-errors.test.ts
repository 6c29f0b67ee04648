/**
 * How the Kafka WAL consumer reads kafkajs errors (internal/wal/kafkajs-errors.ts), on kafkajs's own exported error
 * classes: the consumer's start-up retries a partition leader that is still being elected even after kafkajs has
 * spent its own retries and wrapped the error, and gives up at once on anything else.
 */
import {
  KafkaJSConnectionError,
  KafkaJSGroupCoordinatorNotFound,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSOffsetOutOfRange,
  KafkaJSProtocolError,
} from 'kafkajs';
import { describe, expect, it } from 'vitest';
import {
  causeOf,
  isCoordinatorMovingError,
  isOffsetOutOfRange,
  isStaleMetadataError,
} from '../../internal/wal/kafkajs-errors.js';

/** A protocol error as kafkajs makes one from a Kafka error code. */
function protocolError(type: string, code: number): KafkaJSProtocolError {
  return new KafkaJSProtocolError(Object.assign(new Error(type), { type, code, retriable: true }));
}

describe('kafkajs errors as the Kafka WAL consumer reads them', () => {
  it('finds a leader election behind kafkajs\'s retries-exceeded wrapper', () => {
    const election = protocolError('LEADER_NOT_AVAILABLE', 5);
    const wrapped = new KafkaJSNumberOfRetriesExceeded(election, { retryCount: 2, retryTime: 400 });
    expect(isStaleMetadataError(wrapped)).toBe(false);
    expect(causeOf(wrapped)).toBe(election);
    expect(isStaleMetadataError(causeOf(wrapped))).toBe(true);
    // kafkajs's retrier wraps a non-retriable error once more, with the error as its cause (src/retry/index.js).
    const rewrapped = Object.assign(new KafkaJSNonRetriableError(wrapped), { cause: wrapped });
    expect(isStaleMetadataError(causeOf(rewrapped))).toBe(true);
  });

  it('takes an unwrapped error as its own cause, and a refused connection as no stale metadata', () => {
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1');
    expect(causeOf(refused)).toBe(refused);
    expect(isStaleMetadataError(causeOf(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 2, retryTime: 400 })))).toBe(false);
  });

  it('tells a moving group coordinator and a deleted position apart from other errors', () => {
    expect(isCoordinatorMovingError(protocolError('GROUP_LOAD_IN_PROGRESS', 14))).toBe(true);
    // Its declared constructor takes nothing; the class itself takes the message, as kafkajs's cluster passes it.
    const NotFound = KafkaJSGroupCoordinatorNotFound as unknown as new (message: string) => Error;
    expect(isCoordinatorMovingError(new NotFound('no coordinator'))).toBe(true);
    expect(isCoordinatorMovingError(protocolError('UNKNOWN_MEMBER_ID', 25))).toBe(false);
    const deleted = new KafkaJSOffsetOutOfRange(protocolError('OFFSET_OUT_OF_RANGE', 1), { topic: 't', partition: 3 });
    expect(isOffsetOutOfRange(deleted)).toBe(true);
    expect(deleted.partition).toBe(3);
    expect(isOffsetOutOfRange(protocolError('NOT_LEADER_OR_FOLLOWER', 6))).toBe(false);
  });
});
