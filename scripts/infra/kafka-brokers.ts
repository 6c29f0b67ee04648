/**
 * A real replicated Kafka cluster in KRaft mode, one node per host of a network-namespace topology (./netns.ts),
 * for the partition tests: each node is broker and controller in one JVM (as ./kafka.ts's single node is), the three
 * controllers form the metadata quorum, and topics are replicated three times with min.insync.replicas 2, so that a
 * producer with acks=all keeps going while one broker is cut off, and a record it was told is written survives.
 * The jars and Java come from ./kafka.ts (ensureKafka: fetched once, cached).
 *
 *   const net = await startTopology({ prefix: 'spkfk', subnet: 3, hosts: ['kafka1', 'kafka2', 'kafka3'] });
 *   const kafka = await startKafkaBrokers(net, ['kafka1', 'kafka2', 'kafka3']);
 *   kafka.bootstrap;                 // ['10.77.3.1:9092', ...], reachable from the test process
 *   await kafka.stop();
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { assert } from '../../internal/core/assert.js';
import { KAFKA_INFRA_LIMITS, KAFKA_TEST_GROUP_AND_TOPIC_PROPERTIES, KafkaInfraError, ensureKafka, propertiesText, runToEnd, tail } from './kafka.js';
import type { Topology } from './netns.js';
import { sleep } from './process-utils.js';

export const KAFKA_BROKERS_LIMITS = {
  /**
   * Heap per broker. The machine has 2 cores and 24 GiB shared with other work (Strata's processes, etcd, other
   * test files); a test broker holds a few small topics, and three JVMs with 384 MiB each leave plenty beside them.
   */
  heapMbMax: 384,
  /**
   * From spawning the three JVMs until all three are registered, unfenced brokers. One node alone starts in about 3
   * s; three at once on 2 cores, with a quorum to form, take several times that.
   */
  startTimeoutMs: 180_000,
  readyPollIntervalMs: 500,
  /** `kafka.tools.StorageTool format` per node (about 1.5 s idle). */
  formatTimeoutMs: KAFKA_INFRA_LIMITS.formatTimeoutMs,
  /** Controlled shutdown after SIGTERM before SIGKILL. Shutting down with a peer cut off can wait on it. */
  stopTimeoutMs: KAFKA_INFRA_LIMITS.stopTimeoutMs,
  /** Lines of a broker log quoted in a start-up failure. */
  logTailLines: KAFKA_INFRA_LIMITS.logTailLines,
  brokersMax: 5,
  /**
   * How long a broker may go without heartbeating the controller before it is fenced and loses its leaderships
   * (Kafka's default 9 s), and how long a follower may lag before it leaves the ISR (default 30 s, shortened so
   * that a cut-off follower stops holding acks=all writes up within a test's patience, yet stays above the pauses
   * a busy machine makes).
   */
  brokerSessionTimeoutMs: 9_000,
  replicaLagTimeMaxMs: 10_000,
} as const;

/** Every node listens on these in its own namespace. */
export const KAFKA_BROKER_PORT = 9092;
export const KAFKA_CONTROLLER_PORT = 9093;
/** Topics are written three times, and acks=all needs two copies in sync (a replicated log as users run it). */
export const KAFKA_REPLICATION_FACTOR = 3;
export const KAFKA_MIN_INSYNC_REPLICAS = 2;

export interface KafkaBroker {
  /** KRaft node id, 1-based in host order. */
  nodeId: number;
  host: string;
  /** `ADDRESS:9092`, the broker's advertised address. */
  address: string;
  pid: number;
  dataDir: string;
  logFile: string;
}

export interface RunningKafkaBrokers {
  brokers: readonly KafkaBroker[];
  /** Every broker's address, for clients' bootstrap lists. */
  bootstrap: string[];
  broker(host: string): KafkaBroker;
  brokerById(nodeId: number): KafkaBroker;
  /** SIGCONT, SIGTERM every node, SIGKILL after the grace period, remove the data dirs. Idempotent. */
  stop(): Promise<void>;
}

function serverProperties(nodeId: number, address: string, voters: string, logDirs: string): string {
  const props: Record<string, string | number> = {
    'process.roles': 'broker,controller',
    'node.id': nodeId,
    'controller.quorum.voters': voters,
    listeners: `PLAINTEXT://${address}:${KAFKA_BROKER_PORT},CONTROLLER://${address}:${KAFKA_CONTROLLER_PORT}`,
    'advertised.listeners': `PLAINTEXT://${address}:${KAFKA_BROKER_PORT}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': logDirs,
    // Every topic, internal ones included, survives one lost broker and refuses acks=all writes with one copy.
    'default.replication.factor': KAFKA_REPLICATION_FACTOR,
    'min.insync.replicas': KAFKA_MIN_INSYNC_REPLICAS,
    'offsets.topic.replication.factor': KAFKA_REPLICATION_FACTOR,
    'transaction.state.log.replication.factor': KAFKA_REPLICATION_FACTOR,
    'transaction.state.log.min.isr': KAFKA_MIN_INSYNC_REPLICAS,
    // A replica that was out of sync never becomes leader: acknowledged records are not lost to a failover.
    'unclean.leader.election.enable': 'false',
    'broker.session.timeout.ms': KAFKA_BROKERS_LIMITS.brokerSessionTimeoutMs,
    'replica.lag.time.max.ms': KAFKA_BROKERS_LIMITS.replicaLagTimeMaxMs,
    ...KAFKA_TEST_GROUP_AND_TOPIC_PROPERTIES,
  };
  return propertiesText(props);
}

const LOG4J_PROPERTIES = `# Warnings and errors only, as ./kafka.ts's node logs.
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
`;

interface StartedBroker {
  broker: KafkaBroker;
  exited: Promise<unknown>;
  hasExited(): boolean;
  stop(): Promise<void>;
}

/** Formats and starts one KRaft node per host, and resolves once all of them are registered, unfenced brokers. */
export async function startKafkaBrokers(topology: Topology, hosts: readonly string[]): Promise<RunningKafkaBrokers> {
  assert(hosts.length >= 1 && hosts.length <= KAFKA_BROKERS_LIMITS.brokersMax, 'kafka brokers: 1..KAFKA_BROKERS_LIMITS.brokersMax hosts');
  const { classpath } = await ensureKafka();
  const clusterId = randomBytes(16).toString('base64url');
  const voters = hosts.map((host, i) => `${i + 1}@${topology.address(host)}:${KAFKA_CONTROLLER_PORT}`).join(',');

  const started: StartedBroker[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((b) => b.stop()));
  };
  try {
    // Formatting needs no network: done in the root namespace, all nodes with the same cluster id.
    const prepared = await Promise.all(
      hosts.map(async (host, i) => {
        const nodeId = i + 1;
        const dataDir = await mkdtemp(join(tmpdir(), `strata-${topology.prefix}-${host}-`));
        const propertiesPath = join(dataDir, 'server.properties');
        const log4jPath = join(dataDir, 'log4j.properties');
        await writeFile(propertiesPath, serverProperties(nodeId, topology.address(host), voters, join(dataDir, 'logs')));
        await writeFile(log4jPath, LOG4J_PROPERTIES);
        const format = await runToEnd(
          spawn('java', [`-Dlog4j.configuration=file:${log4jPath}`, '-cp', classpath, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', propertiesPath], {
            stdio: ['ignore', 'pipe', 'pipe'],
          }),
          KAFKA_BROKERS_LIMITS.formatTimeoutMs,
        );
        if (format.code !== 0) {
          await rm(dataDir, { recursive: true, force: true });
          throw new KafkaInfraError(`formatting node ${nodeId}'s KRaft storage in ${dataDir} failed:\n${tail(format.output, 20)}`);
        }
        return { host, nodeId, dataDir, propertiesPath, log4jPath };
      }),
    );
    for (const p of prepared) started.push(spawnBroker(topology, classpath, p));
    await waitUntilAllRegistered(started);
  } catch (err) {
    const logs = await Promise.all(
      started.map(async (b) => `--- ${b.broker.logFile} ---\n${tail(await readFile(b.broker.logFile, 'utf8').catch(() => ''), KAFKA_BROKERS_LIMITS.logTailLines)}`),
    );
    await stop();
    throw new KafkaInfraError(`Kafka brokers on ${hosts.join(', ')} did not start: ${(err as Error).message}\n${logs.join('\n')}`);
  }

  const brokers = started.map((b) => b.broker);
  return {
    brokers,
    bootstrap: brokers.map((b) => b.address),
    broker(host) {
      const found = brokers.find((b) => b.host === host);
      assert(found !== undefined, `no Kafka broker on host ${JSON.stringify(host)}`);
      return found;
    },
    brokerById(nodeId) {
      const found = brokers.find((b) => b.nodeId === nodeId);
      assert(found !== undefined, `no Kafka broker with node id ${nodeId}`);
      return found;
    },
    stop,
  };
}

function spawnBroker(
  topology: Topology,
  classpath: string,
  p: { host: string; nodeId: number; dataDir: string; propertiesPath: string; log4jPath: string },
): StartedBroker {
  const logFile = join(p.dataDir, 'kafka.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = topology.spawn(
    p.host,
    'java',
    [
      `-Xmx${KAFKA_BROKERS_LIMITS.heapMbMax}m`,
      '-Xms64m',
      // The serial collector: one GC thread instead of one per core, and the least memory beside the heap; a test
      // broker's pauses on a small heap are short.
      '-XX:+UseSerialGC',
      '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${p.log4jPath}`,
      '-cp',
      classpath,
      'kafka.Kafka',
      p.propertiesPath,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = once(child, 'exit').catch(() => undefined);
  let exitedFlag = false;
  void exited.then(() => (exitedFlag = true));
  // A test runner that dies must not leave a JVM behind.
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  assert(child.pid !== undefined, 'a spawned `ip netns exec java` has a pid');
  const broker: KafkaBroker = {
    nodeId: p.nodeId,
    host: p.host,
    address: `${topology.address(p.host)}:${KAFKA_BROKER_PORT}`,
    pid: child.pid,
    dataDir: p.dataDir,
    logFile,
  };
  let stopping: Promise<void> | null = null;
  return {
    broker,
    exited,
    hasExited: () => exitedFlag,
    stop() {
      stopping ??= (async () => {
        if (!exitedFlag) {
          child.kill('SIGCONT'); // a paused JVM would not act on SIGTERM
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), KAFKA_BROKERS_LIMITS.stopTimeoutMs);
          await exited;
          clearTimeout(timer);
        }
        process.removeListener('exit', killOnExit);
        log.end();
        await rm(p.dataDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

/** Polls describeCluster until every node is a registered, unfenced broker and a controller is known. */
async function waitUntilAllRegistered(started: readonly StartedBroker[]): Promise<void> {
  const kafka = new Kafka({
    brokers: started.map((b) => b.broker.address),
    clientId: 'strata-infra-probe',
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  const deadlineMs = Date.now() + KAFKA_BROKERS_LIMITS.startTimeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadlineMs) {
    const dead = started.find((b) => b.hasExited());
    if (dead !== undefined) throw new KafkaInfraError(`node ${dead.broker.nodeId}'s JVM exited during start-up`);
    const admin = kafka.admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length === started.length && cluster.controller !== null) return;
      last = `${cluster.brokers.length} of ${started.length} brokers registered`;
    } catch (err) {
      last = (err as Error).message;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    await sleep(KAFKA_BROKERS_LIMITS.readyPollIntervalMs);
  }
  throw new KafkaInfraError(`not all ${started.length} brokers registered within ${KAFKA_BROKERS_LIMITS.startTimeoutMs} ms (last: ${last})`);
}
