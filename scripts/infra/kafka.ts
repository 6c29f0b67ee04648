/**
 * Real Apache Kafka for tests and the local cluster: a single KRaft node (broker and controller in one JVM) on
 * free loopback ports. No mocks: the jars are Kafka's own, fetched once from Maven Central by `mvn` (see
 * ./kafka/pom.xml) into a cache directory that later runs reuse, and run with the machine's Java 17.
 *
 *   const { classpath } = await ensureKafka();        // idempotent; downloads on the first call only
 *   const kafka = await startKafka();                  // formats a data dir, starts, waits until ready
 *   kafka.brokers;                                     // '127.0.0.1:PORT'
 *   await kafka.stop();                                // SIGTERM, then SIGKILL after a grace period
 *
 * Starting again on the same `dataDir` reuses its cluster id and ports, so clients configured with the old
 * address reconnect to the restarted broker (that is what failure tests need).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { ensureBinary } from './debian-package.js';
import { freePort, untilStopped } from './process-utils.js';

/** Must match kafka.version in ./kafka/pom.xml. 3.9 is the last 3.x line; it runs on Java 17 and formats KRaft. */
export const KAFKA_VERSION = '3.9.1';

export const KAFKA_INFRA_LIMITS = {
  /** The first fetch of ~46 MB of jars (measured: about 10 s on this machine). */
  downloadTimeoutMs: 10 * 60_000,
  /** `kafka.tools.StorageTool format` (about 1.5 s). */
  formatTimeoutMs: 60_000,
  /** From spawning the JVM to a broker that answers metadata requests (about 3 s). */
  startTimeoutMs: 60_000,
  /** Controlled shutdown after SIGTERM before we SIGKILL. */
  stopTimeoutMs: 15_000,
  /** Broker heap: a test broker holds little, and the machine has 2 cores and other JVMs beside it. */
  heapMbMax: 512,
  /** Lines of the broker log quoted in a start-up failure. */
  logTailLines: 40,
  /** Java major version the project runs Kafka on. */
  javaMajorMin: 17,
} as const;

const here = dirname(fileURLToPath(import.meta.url));
const POM_PATH = join(here, 'kafka', 'pom.xml');
/** Outside the work tree, so that fresh clones on the same machine (CI) reuse it. */
const CACHE_DIR = join(homedir(), '.cache', 'strata', `kafka-${KAFKA_VERSION}`);
/** Written last: a cache directory without it is an interrupted download and is fetched again. */
const COMPLETE_MARKER = 'complete.json';
/** Kept in the data dir so that a restart on the same data finds the same cluster id and ports. */
const STATE_FILE = 'strata-kafka.json';

export class KafkaInfraError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KafkaInfraError';
  }
}

export interface CommandResult {
  code: number | null;
  output: string;
}

/** Runs a command to completion, collecting stdout and stderr; ENOENT (not installed) rejects. */
function run(command: string, args: string[], timeoutMs: number): Promise<CommandResult> {
  return runToEnd(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
}

/** Waits for a started command to end (killed after `timeoutMs`), collecting its stdout and stderr. */
export async function runToEnd(child: ChildProcess, timeoutMs: number): Promise<CommandResult> {
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, output: Buffer.concat(chunks).toString('utf8') };
  } finally {
    clearTimeout(timer);
  }
}

/** The last `lines` lines of a command's output or a log, for error messages. */
export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function checkJava(): Promise<void> {
  // A machine without Java gets Debian's (as root); the version check below still applies to whatever is found.
  await ensureBinary({ binary: 'java', packages: ['openjdk-17-jre-headless'], manualFix: 'Install Java 17: apt-get install -y openjdk-17-jre-headless' }).catch(() => undefined);
  let result: CommandResult;
  try {
    result = await run('java', ['-version'], 30_000);
  } catch (err) {
    throw new KafkaInfraError(
      `Kafka needs Java ${KAFKA_INFRA_LIMITS.javaMajorMin}, but \`java\` is not on PATH (${(err as Error).message}). ` +
        'Install it: apt-get install -y openjdk-17-jre-headless',
    );
  }
  // `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` (or "1.8.0_392" before Java 9).
  const match = /version "(\d+)(?:\.(\d+))?/.exec(result.output);
  const major = match ? (match[1] === '1' ? Number(match[2]) : Number(match[1])) : NaN;
  if (result.code !== 0 || !(major >= KAFKA_INFRA_LIMITS.javaMajorMin)) {
    throw new KafkaInfraError(
      `Kafka needs Java >= ${KAFKA_INFRA_LIMITS.javaMajorMin}; \`java -version\` said: ${tail(result.output, 3)}. ` +
        'Install it: apt-get install -y openjdk-17-jre-headless',
    );
  }
}

async function download(): Promise<void> {
  await ensureBinary({ binary: 'mvn', packages: ['maven'], manualFix: 'Install Maven: apt-get install -y maven' }).catch(() => undefined);
  try {
    await run('mvn', ['-v'], 60_000);
  } catch (err) {
    throw new KafkaInfraError(
      `fetching Kafka's jars needs Maven, but \`mvn\` is not on PATH (${(err as Error).message}). ` +
        'Install it: apt-get install -y maven',
    );
  }
  await mkdir(dirname(CACHE_DIR), { recursive: true });
  // Download beside the cache and rename into place, so that a concurrent or interrupted run never sees half a
  // directory of jars.
  const staging = `${CACHE_DIR}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const libs = join(staging, 'libs');
  try {
    const result = await run(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        POM_PATH,
        'dependency:copy-dependencies',
        `-DoutputDirectory=${libs}`,
        '-DincludeScope=runtime',
      ],
      KAFKA_INFRA_LIMITS.downloadTimeoutMs,
    );
    if (result.code !== 0) {
      throw new KafkaInfraError(
        `downloading Kafka ${KAFKA_VERSION} from Maven Central failed (mvn exited ${result.code}; ` +
          `is Maven Central reachable?):\n${tail(result.output, 20)}`,
      );
    }
    const jars = (await readdir(libs)).filter((name) => name.endsWith('.jar')).sort();
    if (!jars.includes(`kafka_2.13-${KAFKA_VERSION}.jar`)) {
      throw new KafkaInfraError(`downloading Kafka ${KAFKA_VERSION}: kafka_2.13-${KAFKA_VERSION}.jar is missing`);
    }
    await writeFile(join(staging, COMPLETE_MARKER), JSON.stringify({ version: KAFKA_VERSION, jars }, null, 2));
    await rename(staging, CACHE_DIR).catch(async (err: NodeJS.ErrnoException) => {
      // Another process finished first: its copy is as good as ours.
      if (!(await exists(join(CACHE_DIR, COMPLETE_MARKER)))) throw err;
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

let ensured: Promise<{ classpath: string }> | null = null;

/**
 * Makes sure Java and Kafka's jars are there; downloads the jars on the first call on this machine. Idempotent
 * and cached (per process and on disk). Fails with a KafkaInfraError saying what is missing and how to fix it.
 */
export function ensureKafka(): Promise<{ classpath: string }> {
  ensured ??= (async () => {
    await checkJava();
    if (!(await exists(join(CACHE_DIR, COMPLETE_MARKER)))) {
      // An interrupted earlier download left no marker; start over.
      await rm(CACHE_DIR, { recursive: true, force: true });
      await download();
    }
    // The JVM expands `dir/*` to every jar in it.
    return { classpath: join(CACHE_DIR, 'libs', '*') };
  })();
  ensured.catch(() => {
    ensured = null; // let a later call try again after the user fixed the cause
  });
  return ensured;
}


interface NodeState {
  version: string;
  /** Kafka's cluster id: 16 random bytes, base64url without padding (what `kafka-storage random-uuid` prints). */
  clusterId: string;
  brokerPort: number;
  controllerPort: number;
}

function serverProperties(dataDir: string, state: NodeState): string {
  const props: Record<string, string | number> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${state.controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${state.brokerPort},CONTROLLER://127.0.0.1:${state.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${state.brokerPort}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    'log.dirs': join(dataDir, 'logs'),
    // One node: internal topics cannot have more replicas than nodes.
    'offsets.topic.replication.factor': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    ...KAFKA_TEST_GROUP_AND_TOPIC_PROPERTIES,
  };
  return propertiesText(props);
}

/** Settings every test broker shares, single or in a cluster. */
export const KAFKA_TEST_GROUP_AND_TOPIC_PROPERTIES = {
  // Fewer internal partitions make the first group operation quick; tests create many groups.
  'offsets.topic.num.partitions': 4,
  'group.initial.rebalance.delay.ms': 0,
  // Strata creates its topics explicitly (with partitions and replication it chooses); a typo must not create one.
  'auto.create.topics.enable': 'false',
  'num.partitions': 1,
} as const;

/** A Java properties file's text. */
export function propertiesText(props: Record<string, string | number>): string {
  return `${Object.entries(props)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n')}\n`;
}

const LOG4J_PROPERTIES = `# Warnings and errors only: the INFO log of a broker start is thousands of lines.
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
# The line that says the node is up, useful when reading a test's broker log.
log4j.logger.kafka.server.KafkaRaftServer=INFO
`;

export interface StartKafkaOptions {
  /** Where the node keeps its logs and state; a temporary directory (removed on stop) when absent. */
  dataDir?: string;
  /** The broker's startup deadline; default KAFKA_INFRA_LIMITS.startTimeoutMs. */
  startTimeoutMs?: number;
}

export interface RunningKafka {
  /** `127.0.0.1:PORT`, the bootstrap address for clients. */
  brokers: string;
  dataDir: string;
  /** The broker's own log (stdout and stderr of the JVM). */
  logFile: string;
  /** Controlled shutdown (SIGTERM), SIGKILL after KAFKA_INFRA_LIMITS.stopTimeoutMs; removes a temporary dataDir. */
  stop(): Promise<void>;
  /** SIGKILL now, as a crash would; keeps the data. */
  kill(): void;
  /** SIGSTOP: the broker hangs with its connections open, as in a long GC pause or a network partition. Resolves
   * once the kernel reports it stopped. */
  pause(): Promise<void>;
  /** SIGCONT after pause(). */
  resume(): void;
}

/** Starts a single-node KRaft Kafka and resolves once it answers metadata requests with a registered broker. */
export async function startKafka(options: StartKafkaOptions = {}): Promise<RunningKafka> {
  const { classpath } = await ensureKafka();
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'strata-kafka-')));
  await mkdir(dataDir, { recursive: true });
  const statePath = join(dataDir, STATE_FILE);
  const propertiesPath = join(dataDir, 'server.properties');
  const log4jPath = join(dataDir, 'log4j.properties');
  const logFile = join(dataDir, 'kafka.log');

  let state: NodeState;
  if (await exists(statePath)) {
    state = JSON.parse(await readFile(statePath, 'utf8')) as NodeState;
    if (state.version !== KAFKA_VERSION) {
      throw new KafkaInfraError(`${dataDir} was formatted by Kafka ${state.version}, not ${KAFKA_VERSION}`);
    }
  } else {
    state = {
      version: KAFKA_VERSION,
      clusterId: randomBytes(16).toString('base64url'),
      brokerPort: await freePort(),
      controllerPort: await freePort(),
    };
    await writeFile(propertiesPath, serverProperties(dataDir, state));
    await writeFile(log4jPath, LOG4J_PROPERTIES);
    const format = await run(
      'java',
      // `--cluster-id=ID` in one argument: a base64url id starting with "-" (1 in 64) would otherwise be taken for
      // an option, and the format fails with "argument --cluster-id/-t: expected one argument".
      [`-Dlog4j.configuration=file:${log4jPath}`, '-cp', classpath, 'kafka.tools.StorageTool', 'format',
        `--cluster-id=${state.clusterId}`, '-c', propertiesPath],
      KAFKA_INFRA_LIMITS.formatTimeoutMs,
    );
    if (format.code !== 0) {
      throw new KafkaInfraError(`formatting the KRaft storage in ${dataDir} failed:\n${tail(format.output, 20)}`);
    }
    // Written after a successful format only: its presence means "formatted".
    await writeFile(statePath, JSON.stringify(state, null, 2));
  }

  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(
    'java',
    [
      `-Xmx${KAFKA_INFRA_LIMITS.heapMbMax}m`,
      '-Xms128m',
      '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${log4jPath}`,
      '-cp',
      classpath,
      'kafka.Kafka',
      propertiesPath,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  // A test runner that dies must not leave a JVM behind holding ports.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const brokers = `127.0.0.1:${state.brokerPort}`;
  try {
    await waitUntilReady(brokers, child, exited, options.startTimeoutMs ?? KAFKA_INFRA_LIMITS.startTimeoutMs);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    process.removeListener('exit', killOnExit);
    log.end();
    const logText = await readFile(logFile, 'utf8').catch(() => '');
    if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    throw new KafkaInfraError(
      `Kafka did not start: ${(err as Error).message}\n--- ${logFile} ---\n` +
        tail(logText, KAFKA_INFRA_LIMITS.logTailLines),
    );
  }

  let stopped: Promise<void> | null = null;
  return {
    brokers,
    dataDir,
    logFile,
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGCONT'); // a paused JVM would not act on SIGTERM
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), KAFKA_INFRA_LIMITS.stopTimeoutMs);
          await exited;
          clearTimeout(timer);
        }
        process.removeListener('exit', killOnExit);
        log.end();
        if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
      })();
      return stopped;
    },
    kill() {
      child.kill('SIGKILL');
    },
    async pause() {
      child.kill('SIGSTOP');
      if (child.pid !== undefined) await untilStopped(child.pid);
    },
    resume() {
      child.kill('SIGCONT');
    },
  };
}

/** Polls the broker with a metadata request until it lists itself as a registered broker and a controller. */
async function waitUntilReady(
  brokers: string,
  child: ChildProcess,
  exited: Promise<[number | null, NodeJS.Signals | null]>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitedWith: string | null = null;
  void exited.then(([code, signal]) => {
    exitedWith = `the JVM exited (code ${code}, signal ${signal})`;
  });
  const kafka = new Kafka({
    brokers: [brokers],
    clientId: 'strata-infra-probe',
    connectionTimeout: 500,
    requestTimeout: 2_000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  let lastError = 'no answer yet';
  while (Date.now() < deadline) {
    if (exitedWith !== null || child.exitCode !== null) throw new KafkaInfraError(exitedWith ?? 'the JVM exited');
    const admin = kafka.admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      // Registered and unfenced: the broker appears in metadata only once the controller has admitted it.
      if (cluster.brokers.length > 0 && cluster.controller !== null) return;
      lastError = 'the broker is not registered yet';
    } catch (err) {
      lastError = (err as Error).message;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new KafkaInfraError(`not ready after ${timeoutMs} ms (last: ${lastError})`);
}
