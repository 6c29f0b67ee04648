/**
 * A 3-broker KRaft Kafka cluster on three namespace hosts (scripts/infra/kafka-brokers.ts) under a partition: a
 * topic replicated three times with min.insync.replicas 2 keeps taking acks=all writes while the broker that led
 * its partition is cut off, and a record acknowledged before the cut is still there, served by the new leader.
 * This is what Strata's write-ahead log (internal/wal/kafka-wal.ts, acks=-1) relies on when Kafka runs replicated.
 *
 * The clients run in the test process, on the control node, which reaches every broker throughout; they are
 * given the majority's brokers to bootstrap from, as a client on the majority side of a real partition would be.
 */
import { Kafka, Partitioners, logLevel, type Admin, type Consumer, type Producer } from 'kafkajs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { KAFKA_MIN_INSYNC_REPLICAS, KAFKA_REPLICATION_FACTOR, startKafkaBrokers, type RunningKafkaBrokers } from '../../scripts/infra/kafka-brokers.js';
import { startTopology, type Topology } from '../../scripts/infra/netns.js';
import { waitUntil } from '../helpers/wait.js';
import { PARTITION_TEST_TIMEOUT_MS, PARTITION_WAIT_MS, describePartitions } from './support.js';

const HOSTS = ['kafka1', 'kafka2', 'kafka3'] as const;
const TOPIC = 'partitioned';
/**
 * A produce request to a leader that is cut off from its followers never completes; the client gives up on it after
 * this long and asks for fresh metadata. Above the broker's own ack wait on a healthy cluster, on a busy machine.
 */
const REQUEST_TIMEOUT_MS = 15_000;
/** One consumer group's try at reading the topic back before a new group is started. */
const READ_ATTEMPT_MS = 45_000;
/** The test (not the client) retries a send until the cluster has failed over: the client's own retries stay few. */
const CLIENT_RETRIES = 2;
/** Both the failover and a cluster that starts three JVMs on two cores need more than the usual patience. */
const KAFKA_TEST_TIMEOUT_MS = PARTITION_TEST_TIMEOUT_MS * 2;

let net: Topology;
let kafka: RunningKafkaBrokers;
const clients: Array<Admin | Producer | Consumer> = [];
let readers = 0;

function client(bootstrap: readonly string[]): Kafka {
  return new Kafka({
    brokers: [...bootstrap],
    clientId: 'strata-partition-test',
    connectionTimeout: 3_000,
    requestTimeout: REQUEST_TIMEOUT_MS,
    retry: { retries: CLIENT_RETRIES },
    logLevel: logLevel.NOTHING,
  });
}

async function connectedAdmin(bootstrap: readonly string[]): Promise<Admin> {
  const admin = client(bootstrap).admin();
  clients.push(admin);
  await admin.connect();
  return admin;
}

/** One send with acks=all through a fresh producer (fresh metadata, as a restarted client would have). */
async function sendAcksAll(bootstrap: readonly string[], value: string): Promise<boolean> {
  const producer = client(bootstrap).producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  clients.push(producer);
  try {
    await producer.connect();
    await producer.send({ topic: TOPIC, acks: -1, timeout: REQUEST_TIMEOUT_MS, messages: [{ key: value, value }] });
    return true;
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}

async function partitionState(admin: Admin): Promise<{ leader: number; isr: number[]; replicas: number[] }> {
  const metadata = await admin.fetchTopicMetadata({ topics: [TOPIC] });
  const partition = metadata.topics[0]?.partitions[0];
  expect(partition).toBeDefined();
  return { leader: partition!.leader, isr: [...partition!.isr].sort(), replicas: [...partition!.replicas].sort() };
}

/** True once a broker names the topic's partition leader; false while the metadata is not there yet. */
async function hasLeader(admin: Admin): Promise<boolean> {
  try {
    const partition = (await admin.fetchTopicMetadata({ topics: [TOPIC] })).topics[0]?.partitions[0];
    return partition !== undefined && partition.leader >= 0;
  } catch {
    return false;
  }
}

/**
 * Every value in the topic from its beginning, read by a new consumer group until `expected` are all there. A
 * group's coordinator can be a broker that was just cut off (its offsets partition moves only once the broker is
 * fenced), and a consumer that joined it waits out its own retries; so each attempt is bounded and the next one
 * starts a new group, which finds the coordinator afresh.
 */
async function readUntil(bootstrap: readonly string[], expected: readonly string[]): Promise<string[]> {
  let seen: string[] = [];
  await waitUntil(`a consumer has read ${expected.join(', ')}`, async () => {
    seen = await readAttempt(bootstrap, expected);
    return expected.every((v) => seen.includes(v));
  }, PARTITION_WAIT_MS * 2);
  return seen;
}

async function readAttempt(bootstrap: readonly string[], expected: readonly string[]): Promise<string[]> {
  const consumer = client(bootstrap).consumer({ groupId: `reader-${++readers}`, sessionTimeout: 30_000, heartbeatInterval: 1_000 });
  clients.push(consumer);
  const seen: string[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(message.value?.toString('utf8') ?? '');
      },
    });
    await waitUntil(`the consumer has read ${expected.join(', ')}`, () => expected.every((v) => seen.includes(v)), READ_ATTEMPT_MS);
  } catch {
    // This attempt's group did not get there in time; the caller starts another.
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
  return seen;
}

describePartitions('a 3-broker KRaft Kafka cluster under a partition', () => {
  beforeAll(async () => {
    net = await startTopology({ prefix: 'spkfk', subnet: 73, hosts: HOSTS });
    kafka = await startKafkaBrokers(net, HOSTS);
    const admin = await connectedAdmin(kafka.bootstrap);
    // Not kafkajs's own wait for leaders: on a loaded machine the brokers' metadata lags the controller, and that
    // wait gives up at the first "does not host this topic-partition". The topic counts once a broker names its
    // leader.
    await admin.createTopics({
      waitForLeaders: false,
      topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: KAFKA_REPLICATION_FACTOR, configEntries: [{ name: 'min.insync.replicas', value: String(KAFKA_MIN_INSYNC_REPLICAS) }] }],
    });
    await waitUntil('the topic has a leader', () => hasLeader(admin), PARTITION_WAIT_MS);
  }, KAFKA_TEST_TIMEOUT_MS);

  afterAll(async () => {
    for (const c of clients) await c.disconnect().catch(() => undefined);
    await kafka?.stop();
    await net?.teardown();
  }, KAFKA_TEST_TIMEOUT_MS);

  it('replicates the topic on all three brokers, all in sync', async () => {
    const admin = await connectedAdmin(kafka.bootstrap);
    await waitUntil('all three replicas are in sync', async () => (await partitionState(admin)).isr.length === 3, PARTITION_WAIT_MS);
    expect((await partitionState(admin)).replicas).toEqual([1, 2, 3]);
  }, KAFKA_TEST_TIMEOUT_MS);

  it("with the partition's leader isolated, an acks=all producer succeeds through the other two, and the record written before the isolation is read back from the new leader", async () => {
    const everyone = await connectedAdmin(kafka.bootstrap);
    expect(await sendAcksAll(kafka.bootstrap, 'before')).toBe(true);
    const before = await partitionState(everyone);
    expect(before.isr).toEqual([1, 2, 3]); // acks=all wrote it to all three
    const isolated = kafka.brokerById(before.leader);
    const majority = kafka.brokers.filter((b) => b.nodeId !== isolated.nodeId).map((b) => b.address);

    await net.isolate(isolated.host);

    // The controller fences the silent broker after its session timeout and makes an in-sync follower the leader;
    // until then a send waits on the old leader and times out, and the next try gets fresh metadata.
    await waitUntil(`an acks=all send succeeds with ${isolated.host} cut off`, () => sendAcksAll(majority, 'during'), PARTITION_WAIT_MS);
    const majorityAdmin = await connectedAdmin(majority);
    const majorityIds = kafka.brokers.filter((b) => b.nodeId !== isolated.nodeId).map((b) => b.nodeId).sort();
    // Two copies in sync, exactly min.insync.replicas, so acks=all still has what it needs. (Waited for, not read
    // once: on a busy machine a follower may fall out of sync for a moment and come back.)
    await waitUntil(
      'the majority reports a new leader with both of its brokers in sync',
      async () => {
        const state = await partitionState(majorityAdmin);
        return state.leader !== isolated.nodeId && majorityIds.includes(state.leader) && state.isr.join() === majorityIds.join();
      },
      PARTITION_WAIT_MS,
    );
    expect(majorityIds).toHaveLength(KAFKA_MIN_INSYNC_REPLICAS);

    // The record acknowledged before the cut was on every replica, so the new leader serves it.
    expect(await readUntil(majority, ['before', 'during'])).toEqual(expect.arrayContaining(['before', 'during']));

    await net.heal();
    await waitUntil(`${isolated.host} catches up and is in sync again`, async () => (await partitionState(majorityAdmin)).isr.length === 3, PARTITION_WAIT_MS);
    expect(await readUntil(kafka.bootstrap, ['before', 'during'])).toEqual(expect.arrayContaining(['before', 'during']));
  }, KAFKA_TEST_TIMEOUT_MS);
});
