/**
 * What internal/wal/kafkajs-internals.ts relies on in kafkajs's private source, checked without a broker: the pinned
 * version, each private object and method it calls (names, parameters), what the fetch filter does, and the bytes
 * of the source files those come from. Any of these changing fails here, loudly, before it could misbehave against
 * a real Kafka. A failure means: read the new kafkajs source against that module, fix what moved, then update this.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import {
  CREATE_CLUSTER_SYMBOL,
  KAFKAJS_PINNED_VERSION,
  KafkaJsPrivateClient,
  KafkaJsVersionError,
  checkKafkaJsVersion,
  installedKafkaJsVersion,
} from '../../internal/wal/kafkajs-internals.js';

const require = createRequire(import.meta.url);
const kafkajsDir = dirname(require.resolve('kafkajs/package.json'));
const repoDir = join(import.meta.dirname, '..', '..');

/** The parameter list of a function as written, e.g. `{ groupId, coordinatorType = COORDINATOR_TYPES.GROUP }`. */
function parametersOf(fn: unknown): string {
  expect(typeof fn).toBe('function');
  const source = (fn as () => unknown).toString();
  const open = source.indexOf('(');
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    if (source[i] === '(') depth++;
    if (source[i] === ')' && --depth === 0) return source.slice(open + 1, i).replace(/\s+/g, ' ').trim();
  }
  throw new Error(`no parameter list in ${source.slice(0, 80)}`);
}

/** The names a destructured parameter takes, e.g. ['groupId', 'coordinatorType']. */
function destructuredNames(fn: unknown): string[] {
  const match = /^\{(.*)\}$/.exec(parametersOf(fn));
  expect(match, `${parametersOf(fn)} destructures one object`).not.toBeNull();
  return match![1]!.split(',').map((part) => part.split('=')[0]!.trim()).filter((name) => name.length > 0);
}

function kafkaClient(): Kafka {
  // Never connects: these tests only build objects.
  return new Kafka({ brokers: ['127.0.0.1:1'], clientId: 'kafkajs-internals-test', logLevel: logLevel.NOTHING });
}

function createClusterOf(kafka: Kafka): (options: Record<string, unknown>) => Record<string, unknown> {
  const key = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER_SYMBOL);
  expect(key, `new Kafka() keeps its cluster factory under Symbol(${CREATE_CLUSTER_SYMBOL})`).toBeDefined();
  return (kafka as unknown as Record<symbol, (options: Record<string, unknown>) => Record<string, unknown>>)[key!]!;
}

describe('the kafkajs version the private part is pinned to', () => {
  it('is the installed one, the one package.json pins exactly, and the one package-lock.json resolves', () => {
    expect(installedKafkaJsVersion()).toBe(KAFKAJS_PINNED_VERSION);
    expect((require('kafkajs/package.json') as { version: string }).version).toBe(KAFKAJS_PINNED_VERSION);
    const manifest = JSON.parse(readFileSync(join(repoDir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    // Exactly: a range (^2.2.4) would let an install bring a version whose internals nobody checked.
    expect(manifest.dependencies['kafkajs']).toBe(KAFKAJS_PINNED_VERSION);
    const lock = JSON.parse(readFileSync(join(repoDir, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string }>;
    };
    expect(lock.packages['node_modules/kafkajs']?.version).toBe(KAFKAJS_PINNED_VERSION);
  });

  it('passes the check when installed, and fails it with KafkaJsVersionError naming both versions otherwise', () => {
    expect(() => checkKafkaJsVersion()).not.toThrow();
    expect(() => checkKafkaJsVersion(KAFKAJS_PINNED_VERSION)).not.toThrow();
    for (const other of ['2.2.5', '2.3.0', '3.0.0', '2.2.4-beta.1']) {
      let thrown: unknown = null;
      try {
        checkKafkaJsVersion(other);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(KafkaJsVersionError);
      const error = thrown as KafkaJsVersionError;
      expect(error.code).toBe('KAFKAJS_VERSION_MISMATCH');
      expect(error.installed).toBe(other);
      expect(error.message).toContain(`kafkajs ${other} is installed`);
      expect(error.message).toContain(`kafkajs ${KAFKAJS_PINNED_VERSION}`);
    }
  });
});

describe('the private kafkajs API the Kafka WAL consumer uses', () => {
  it('a Kafka client keeps a cluster factory taking metadataMaxAge, allowAutoTopicCreation and isolationLevel', () => {
    const createCluster = createClusterOf(kafkaClient());
    expect(createCluster.length).toBe(1);
    expect(destructuredNames(createCluster)).toEqual(
      expect.arrayContaining(['metadataMaxAge', 'allowAutoTopicCreation', 'isolationLevel']),
    );
    // The options take effect: READ_COMMITTED and the metadata age the consumer asks for.
    const cluster = createCluster({ metadataMaxAge: 12_345, allowAutoTopicCreation: false, isolationLevel: 1 });
    expect(cluster['isolationLevel']).toBe(1);
    expect((cluster['brokerPool'] as { metadataMaxAge: number }).metadataMaxAge).toBe(12_345);
  });

  it('that cluster has each method the consumer calls, with the parameters it passes', () => {
    const cluster = createClusterOf(kafkaClient())({ metadataMaxAge: 1, allowAutoTopicCreation: false, isolationLevel: 1 });
    for (const method of ['connect', 'disconnect', 'refreshMetadata', 'refreshMetadataIfNecessary']) {
      expect(typeof cluster[method], `cluster.${method}`).toBe('function');
      expect(parametersOf(cluster[method]), `cluster.${method} takes nothing`).toBe('');
    }
    expect(parametersOf(cluster['addTargetTopic'])).toBe('topic');
    expect(parametersOf(cluster['findTopicPartitionMetadata'])).toBe('topic');
    expect(destructuredNames(cluster['findBroker'])).toEqual(['nodeId']);
    expect(destructuredNames(cluster['findGroupCoordinator'])).toEqual(['groupId', 'coordinatorType']);
    expect(destructuredNames(cluster['removeBroker'])).toEqual(['host', 'port']);
    // Before metadata is loaded, the partition lookup says so with the error the consumer treats as stale metadata.
    expect(() => (cluster['findTopicPartitionMetadata'] as (topic: string) => unknown)('t')).toThrow(
      expect.objectContaining({ name: 'KafkaJSTopicMetadataNotLoaded' }),
    );
  });

  it('a broker fetches and commits offsets with the request fields the consumer sends', () => {
    const Broker = require('kafkajs/src/broker/index.js') as { prototype: Record<string, unknown> };
    expect(destructuredNames(Broker.prototype['fetch'])).toEqual(
      expect.arrayContaining(['isolationLevel', 'maxWaitTime', 'minBytes', 'maxBytes', 'topics']),
    );
    expect(destructuredNames(Broker.prototype['offsetCommit'])).toEqual([
      'groupId',
      'groupGenerationId',
      'memberId',
      'retentionTime',
      'topics',
    ]);
  });

  it('the fetch filter keeps records from the fetched offset on, without control records or aborted transactions', () => {
    const Batch = require('kafkajs/src/consumer/batch.js') as new (
      topic: string,
      fetchedOffset: string,
      partitionData: unknown,
    ) => { messages: { offset: string }[]; messagesWithinOffset: { offset: string }[] };
    const plain = { producerId: '7', inTransaction: false };
    const aborted = { producerId: '9', inTransaction: true };
    const message = (offset: number, batchContext: object, extra: object = {}) => ({
      offset: String(offset),
      key: Buffer.from('k'),
      value: Buffer.from('v'),
      batchContext,
      ...extra,
    });
    const batch = new Batch('t', '4', {
      partition: 0,
      highWatermark: '9',
      abortedTransactions: [{ producerId: '9', firstOffset: '5' }],
      messages: [
        message(3, plain), // before the fetched offset: a record batch starts before it
        message(4, plain),
        message(5, aborted),
        // The abort marker: a control record with key [0, 0, 0, 0].
        message(6, aborted, { key: Buffer.from([0, 0, 0, 0]), isControlRecord: true }),
        message(7, plain),
      ],
    });
    expect(batch.messagesWithinOffset.map((m) => m.offset)).toEqual(['4', '5', '6', '7']);
    expect(batch.messages.map((m) => m.offset)).toEqual(['4', '7']);
  });

  it('builds its client from a Kafka client without connecting', async () => {
    const client = KafkaJsPrivateClient.create(kafkaClient(), 't', 1_000);
    await client.disconnect();
  });

  // The release's own bytes (npm verifies them against package-lock.json's integrity on install): a change means
  // someone patched kafkajs in place, and what the checks above cannot see (behaviour inside these methods) may differ.
  it.each([
    ['src/index.js', '38d0022e448f0aaa72ad2ed16fac346a3dd3a2d28b64ca5395cb33a26c8a82e9'],
    ['src/cluster/index.js', '3831a6845e4e9fb0de73d5ff50a3695974fb8a927acde677c524fe1c362bd57d'],
    ['src/broker/index.js', '9cbea8898528c439c213080f99d86974460114f81b5034c49aeb593a0337ca90'],
    ['src/consumer/batch.js', '04ee8657247441599f200af5871ce6b3c4463abe941b97405502f8f5f683face'],
    ['src/consumer/filterAbortedMessages.js', '54ce50f2a41ee1686da8b73bf8b502c7dd07c9d7cb0a494cdb36a7fc536ced8e'],
    ['src/protocol/requests/fetch/v11/response.js', '9cb972647500104e7d616edcb4856119f4a716664b64bbb1ee96c8f4f0a83eb6'],
  ])('%s is byte for byte the file of the pinned release', (file, sha256) => {
    const digest = createHash('sha256').update(readFileSync(join(kafkajsDir, file))).digest('hex');
    expect(digest, `node_modules/kafkajs/${file} changed`).toBe(sha256);
  });
});
