/**
 * `npm run cluster`: Strata as the cluster architecture.md describes, as separate processes on this machine:
 * etcd (metadata), Kafka in KRaft mode (write-ahead log), six storage nodes in three zones, three gateways, two
 * healers (one leads) and nginx in front of the gateways, configured by the project's nginx.conf. Every port is a
 * free loopback port (nginx's can be chosen with --port); everything, logs included, lives under ./data/cluster
 * (--data-dir). Ctrl-C stops it all, in reverse order of start.
 *
 *   npm run cluster                                   # or: npx tsx scripts/local-cluster.ts --port 8080
 *   npm run cluster -- --data-dir /tmp/c --fresh      # --fresh empties the data directory first
 *
 * It is also the library behind the cluster tests (test/cluster/): `startLocalCluster(options)` returns every
 * process as a `Proc` that a test can kill (SIGKILL) and restart with the same environment, port and data.
 *
 * Start-up runs in three steps, each in parallel: etcd, Kafka and the storage nodes (which need neither); then
 * the gateways and healers (which need all of them); then nginx (which needs the gateways).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd } from './infra/etcd.js';
import { startKafka } from './infra/kafka.js';
import { freePort, startNginx } from './infra/nginx.js';
import { LocalClusterError, pidWithArgument, ServiceProc, StrataProc, type Proc } from './cluster/proc.js';

export { LocalClusterError, type Proc } from './cluster/proc.js';

export const LOCAL_CLUSTER_DEFAULTS = {
  dataDir: './data/cluster',
  nodes: 6,
  gateways: 3,
  healers: 2,
  /** Storage nodes are spread over these failure domains, consecutive nodes together (node-1 and node-2 in zone-a). */
  zones: ['zone-a', 'zone-b', 'zone-c'],
} as const;

export interface LocalClusterOptions {
  /** Where everything lives: etcd's and Kafka's data, the nodes' blobs, every log. Default ./data/cluster. */
  dataDir?: string;
  /** nginx's port; a free one otherwise. */
  nginxPort?: number;
  /** At least 6. */
  nodes?: number;
  gateways?: number;
  healers?: number;
  /** STRATA_* variables for every Strata process (tests shorten the healer's timings this way). */
  env?: Record<string, string>;
  /** Variables for single processes, by name: `{ 'gateway-3': { STRATA_TEST_PAUSE_BEFORE_COMMIT_MS: '60000' } }`. */
  envByProcess?: Record<string, Record<string, string>>;
  /** Told when a process exits without having been asked to (the CLI prints it). */
  onUnexpectedExit?: (proc: Proc, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface LocalCluster {
  /** nginx's address: the cluster's entry point. */
  url: string;
  dataDir: string;
  /** The shared secret on every storage-node call (kept in `<dataDir>/cluster-token`). */
  token: string;
  etcd: Proc;
  kafka: Proc;
  nginx: Proc;
  nodes: StrataProc[];
  gateways: StrataProc[];
  healers: StrataProc[];
  /** Every process in start order. */
  procs(): Proc[];
  /** SIGKILL, as a crash would. */
  kill(proc: Proc): Promise<void>;
  /** Stops the process if it runs (SIGTERM), then starts it again with the same environment, port and data. */
  restart(proc: Proc): Promise<void>;
  /** Stops everything in reverse order of start (SIGTERM, then SIGKILL after a bound). Idempotent. */
  stop(): Promise<void>;
  /** The variables one more gateway of this cluster needs, without STRATA_PORT. */
  gatewayEnv(): Record<string, string>;
}

/** What the data directory remembers between runs, so that etcd's data is found at the same address again. */
interface ClusterState {
  etcd: { clientPort: number; peerPort: number };
}

/** Starts the whole cluster; resolves once every process is ready. On failure, stops what it had started. */
export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const dataDir = path.resolve(options.dataDir ?? LOCAL_CLUSTER_DEFAULTS.dataDir);
  const nodeCount = options.nodes ?? LOCAL_CLUSTER_DEFAULTS.nodes;
  const gatewayCount = options.gateways ?? LOCAL_CLUSTER_DEFAULTS.gateways;
  const healerCount = options.healers ?? LOCAL_CLUSTER_DEFAULTS.healers;
  if (!Number.isInteger(nodeCount) || nodeCount < 6) throw new LocalClusterError(`nodes must be at least 6, got ${nodeCount}`);
  if (!Number.isInteger(gatewayCount) || gatewayCount < 1) throw new LocalClusterError(`gateways must be at least 1, got ${gatewayCount}`);
  if (!Number.isInteger(healerCount) || healerCount < 0) throw new LocalClusterError(`healers must be 0 or more, got ${healerCount}`);
  await mkdir(path.join(dataDir, 'logs'), { recursive: true });
  const token = await clusterToken(dataDir);
  const state = await clusterState(dataDir);
  const logFile = (name: string): string => path.join(dataDir, 'logs', `${name}.log`);
  const envOf = (name: string): Record<string, string> => ({ ...options.env, ...options.envByProcess?.[name] });
  const onUnexpectedExit = options.onUnexpectedExit;
  const etcdEndpoint = `http://127.0.0.1:${state.etcd.clientPort}`;

  const etcd = new ServiceProc('etcd', 'etcd', async () => {
    const running = await startEtcd({ dataDir: path.join(dataDir, 'etcd'), ...state.etcd }).catch((err: Error) => {
      throw new LocalClusterError(
        `etcd did not start on ports ${state.etcd.clientPort}/${state.etcd.peerPort} (kept in ${path.join(dataDir, 'cluster.json')} so that ` +
          `its data is found at the same address; if another process holds them, stop it or start with --fresh): ${err.message}`,
      );
    });
    return {
      address: running.endpoints,
      port: running.clientPort,
      pid: running.pid,
      logFile: null,
      stop: () => running.stop(),
      kill: async () => {
        running.kill();
        await running.stop();
      },
    };
  });

  const kafkaDir = path.join(dataDir, 'kafka');
  const kafka = new ServiceProc('kafka', 'kafka', async () => {
    const running = await startKafka({ dataDir: kafkaDir });
    return {
      address: running.brokers,
      port: Number(running.brokers.split(':').pop()),
      pid: await pidWithArgument(path.join(kafkaDir, 'server.properties')),
      logFile: running.logFile,
      stop: () => running.stop(),
      kill: async () => {
        running.kill();
        await running.stop();
      },
    };
  });

  const nodeProc = (i: number, port: number): StrataProc => {
    const name = `node-${i + 1}`;
    return new StrataProc({
      name,
      kind: 'storage-node',
      port,
      logFile: logFile(name),
      env: {
        STRATA_CLUSTER_TOKEN: token,
        STRATA_DATA_DIR: dataDir,
        STRATA_HOST: '127.0.0.1',
        // The node registry lives in etcd. Gateways and healers here do not read it: they get STRATA_NODES.
        STRATA_ETCD_ENDPOINTS: etcdEndpoint,
        STRATA_PORT: String(port),
        STRATA_NODE_ID: name,
        STRATA_NODE_ZONE: zoneOf(i, nodeCount),
        ...envOf(name),
      },
      ...(onUnexpectedExit ? { onUnexpectedExit } : {}),
    });
  };
  // Filled in as they start, each at its index; stopAll() stops whichever have.
  const nodes: StrataProc[] = [];

  // Filled in once etcd, Kafka and the nodes run: Kafka's address is chosen by its first start, the nodes' ports
  // by theirs.
  let backendEnv: Record<string, string> = {};
  let nodesVar = '';
  const gatewayEnv = (): Record<string, string> => ({
    STRATA_CLUSTER_TOKEN: token,
    STRATA_DATA_DIR: dataDir,
    STRATA_HOST: '127.0.0.1',
    STRATA_NODES: nodesVar,
    ...backendEnv,
    ...options.env,
  });
  const gateways: StrataProc[] = [];
  let healers: StrataProc[] = [];
  let nginx: ServiceProc | null = null;

  const stopAll = async (): Promise<void> => {
    // Reverse order of start: the entry point first, the backends last, so that nothing loses its backends
    // while it is still serving. Within a step the processes are independent and stop in parallel.
    const steps: Proc[][] = [nginx ? [nginx] : [], [...gateways, ...healers], nodes.filter(Boolean), [kafka], [etcd]];
    const failures: string[] = [];
    for (const step of steps) {
      const results = await Promise.allSettled(step.map((proc) => proc.stop()));
      results.forEach((r, i) => {
        if (r.status === 'rejected') failures.push(`${step[i]!.name}: ${(r.reason as Error).message}`);
      });
    }
    if (failures.length > 0) throw new LocalClusterError(`stopping the local cluster: ${failures.join('; ')}`);
  };

  /** Starts a step's processes in parallel; waits for all of them even when one fails, so clean-up finds none starting. */
  const startStep = async (procs: Proc[]): Promise<void> => {
    await settleAll(procs.map((proc) => proc.start()));
  };

  try {
    // Storage nodes register in etcd (the node registry), so they wait for etcd but not for Kafka's JVM.
    const etcdStarted = startStep([etcd]);
    const nodesStarted = etcdStarted.then(() =>
      settleAll(Array.from({ length: nodeCount }, (_, i) => startOnFreePort((port) => nodeProc(i, port), (proc) => (nodes[i] = proc)))),
    );
    await settleAll([etcdStarted, startStep([kafka]), nodesStarted]);
    backendEnv = { STRATA_ETCD_ENDPOINTS: etcd.address!, STRATA_KAFKA_BROKERS: kafka.address! };
    nodesVar = nodes.map((n, i) => `${n.name}=${n.address}@${zoneOf(i, nodeCount)}`).join(',');
    const gatewayProc = (i: number, port: number): StrataProc => {
      const name = `gateway-${i + 1}`;
      return new StrataProc({
        name,
        kind: 'gateway',
        port,
        logFile: logFile(name),
        env: { ...gatewayEnv(), STRATA_PORT: String(port), ...options.envByProcess?.[name] },
        ...(onUnexpectedExit ? { onUnexpectedExit } : {}),
      });
    };
    healers = Array.from({ length: healerCount }, (_, i) => {
      const name = `healer-${i + 1}`;
      return new StrataProc({
        name,
        kind: 'healer',
        port: null,
        logFile: logFile(name),
        env: { ...gatewayEnv(), ...options.envByProcess?.[name] },
        ...(onUnexpectedExit ? { onUnexpectedExit } : {}),
      });
    });
    await settleAll([
      ...Array.from({ length: gatewayCount }, (_, i) => startOnFreePort((port) => gatewayProc(i, port), (proc) => (gateways[i] = proc))),
      startStep(healers),
    ]);
    const upstreams = gateways.map((g) => `127.0.0.1:${g.port}`);
    // A free port is left to startNginx, which retries when another process takes it first; restarts reuse it.
    let nginxPort = options.nginxPort;
    nginx = new ServiceProc('nginx', 'nginx', async () => {
      const running = await startNginx({ upstreams, ...(nginxPort !== undefined ? { port: nginxPort } : {}) });
      nginxPort = running.port;
      return {
        address: running.url,
        port: running.port,
        pid: running.pid,
        logFile: running.errorLogPath,
        stop: () => running.stop(),
        // A SIGKILLed nginx master leaves its workers holding the port, so a "crash" here is a fast stop.
        kill: () => running.stop(),
      };
    });
    await startStep([nginx]);
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }

  const entry = nginx;
  let stopping: Promise<void> | null = null;
  return {
    url: entry.address!,
    dataDir,
    token,
    etcd,
    kafka,
    nginx: entry,
    nodes,
    gateways,
    healers,
    procs: () => [etcd, kafka, ...nodes, ...gateways, ...healers, entry],
    kill: (proc) => proc.kill(),
    async restart(proc) {
      await proc.stop();
      await proc.start();
    },
    stop() {
      stopping ??= stopAll();
      return stopping;
    },
    gatewayEnv,
  };
}

export interface ExtraGateway {
  /** Its own nginx's address. */
  url: string;
  gateway: Proc;
  nginx: Proc;
  stop(): Promise<void>;
}

let extraGateways = 0;

/**
 * One more gateway of a running cluster, behind an nginx of its own (the project's nginx.conf): the API suite
 * starts one for a test file that needs a gateway configuration of its own (small body limits, hot-field
 * policies). `env` is a gateway's whole environment (`LocalCluster.gatewayEnv()` with the variables to change);
 * the port is chosen here. Its log goes to `<logDir>/gateway-extra-<pid>-<n>.log`.
 */
export async function startExtraGateway(options: { env: Record<string, string>; logDir: string }): Promise<ExtraGateway> {
  const name = `gateway-extra-${process.pid}-${++extraGateways}`;
  const gateway = await startOnFreePort(
    (port) =>
      new StrataProc({
        name,
        kind: 'gateway',
        port,
        logFile: path.join(options.logDir, `${name}.log`),
        env: { ...options.env, STRATA_PORT: String(port) },
      }),
    () => undefined,
  );
  const nginx = new ServiceProc('nginx', 'nginx', async () => {
    const running = await startNginx({ upstreams: [`127.0.0.1:${gateway.port}`] });
    return { address: running.url, port: running.port, pid: running.pid, logFile: running.errorLogPath, stop: () => running.stop(), kill: () => running.stop() };
  });
  try {
    await nginx.start();
  } catch (err) {
    await gateway.stop();
    throw err;
  }
  return {
    url: nginx.address!,
    gateway,
    nginx,
    async stop() {
      await nginx.stop();
      await gateway.stop();
    },
  };
}

/** Consecutive nodes share a zone, as in docker-compose.yaml: node-1 and node-2 in zone-a, and so on. */
function zoneOf(index: number, count: number): string {
  const zones = LOCAL_CLUSTER_DEFAULTS.zones;
  return zones[Math.floor((index * zones.length) / count)]!;
}

/** Waits for every promise (so that nothing is still starting when clean-up begins), then throws the first failure. */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The token in `<dataDir>/cluster-token`, created on first start (as the all-in-one mode does). */
async function clusterToken(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'cluster-token');
  const existing = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (existing.length >= 16) return existing;
  const token = randomBytes(24).toString('base64url');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}

async function clusterState(dataDir: string): Promise<ClusterState> {
  const file = path.join(dataDir, 'cluster.json');
  try {
    const state = JSON.parse(await readFile(file, 'utf8')) as ClusterState;
    if (Number.isInteger(state.etcd?.clientPort) && Number.isInteger(state.etcd?.peerPort)) return state;
  } catch {
    // first start (or an unreadable file): choose afresh
  }
  const [clientPort, peerPort] = await distinctFreePorts(2);
  const state: ClusterState = { etcd: { clientPort: clientPort!, peerPort: peerPort! } };
  await writeFile(file, `${JSON.stringify(state, null, 2)}\n`);
  return state;
}

/** First starts on a port another process took in the meantime are retried this many times, on other ports. */
const PORT_RACE_ATTEMPTS_MAX = 3;

/**
 * Starts a Strata process on a port that was free a moment ago. Between choosing the port and the process binding
 * it, another process can take it (an outgoing connection gets its local port from the same range); the start then
 * fails with EADDRINUSE and is tried again on another port. `track` learns of each attempt's process, so that a
 * clean-up finds it. Later restarts keep the port that worked.
 */
async function startOnFreePort(make: (port: number) => StrataProc, track: (proc: StrataProc) => void): Promise<StrataProc> {
  for (let attempt = 1; ; attempt++) {
    const proc = make(await freePort());
    track(proc);
    try {
      await proc.start();
      return proc;
    } catch (err) {
      if (attempt >= PORT_RACE_ATTEMPTS_MAX || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

/** `count` distinct free loopback ports. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const chosen = new Set<number>();
  // The kernel rarely hands out a port twice in a row; the bound only guards against a broken environment.
  for (let attempt = 0; chosen.size < count; attempt++) {
    if (attempt > count * 10) throw new LocalClusterError(`could not find ${count} distinct free ports`);
    chosen.add(await freePort());
  }
  return [...chosen];
}

// ---- command line --------------------------------------------------------------------------------------------

const USAGE = `usage: npm run cluster -- [--port N] [--data-dir DIR] [--fresh]
  --port N        nginx listens on 127.0.0.1:N (default: a free port)
  --data-dir DIR  data and logs (default ${LOCAL_CLUSTER_DEFAULTS.dataDir}); kept between runs
  --fresh         empty the data directory first`;

interface CliOptions {
  port?: number;
  dataDir: string;
  fresh: boolean;
}

function parseArgs(argv: string[]): CliOptions {
  const options: CliOptions = { dataDir: LOCAL_CLUSTER_DEFAULTS.dataDir, fresh: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (flag === '--fresh') {
      options.fresh = true;
    } else if (flag === '--port') {
      const port = Number(argv[++i]);
      if (!Number.isInteger(port) || port < 1 || port > 65_535) fail(`--port needs a port number (1..65535), got ${argv[i]}`);
      options.port = port;
    } else if (flag === '--data-dir') {
      options.dataDir = argv[++i] ?? fail('--data-dir needs a directory');
    } else {
      fail(`unknown option ${flag}\n${USAGE}`);
    }
  }
  return options;
}

/** A second Ctrl-C at least this long after the first stops waiting for an orderly shutdown. */
const SECOND_SIGNAL_AFTER_MS = 1000;
/** How often the supervised process checks that the process it was started from still runs. */
const PARENT_CHECK_INTERVAL_MS = 1000;

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

function describe(cluster: LocalCluster, startedMs: number): string {
  const shown = (file: string | null): string => {
    if (file === null) return '(kept in memory by scripts/infra/etcd.ts)';
    const relative = path.relative(process.cwd(), file);
    return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
  };
  const rows = cluster.procs().map((p) => {
    const zone = p.kind === 'storage-node' ? ` (${p.env['STRATA_NODE_ZONE']})` : '';
    return [`${p.name}${zone}`, String(p.pid ?? '-'), p.address ?? '-', shown(p.logFile)];
  });
  const header = ['process', 'pid', 'address', 'log'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `  ${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd();
  return [
    `Strata local cluster is up in ${((Date.now() - startedMs) / 1000).toFixed(1)} s. Entry point (nginx): ${cluster.url}`,
    `  data: ${cluster.dataDir} (token in cluster-token)`,
    line(header),
    ...rows.map(line),
    `Try: curl -X POST '${cluster.url}/write?key=hello' -H 'Content-Type: application/json' -d '{"like_count":1,"text":"hi"}'`,
    `     curl '${cluster.url}/cluster'`,
    'Press Ctrl-C to stop everything.',
  ].join('\n');
}

/**
 * The command runs in two processes. The one started from the terminal only relays signals: Ctrl-C reaches every
 * process of the terminal's foreground group, which would include etcd, Kafka and nginx (scripts/infra starts them
 * in its own group) and stop them at the same moment as everything else. So the cluster is run by a second process
 * in a group of its own (`--supervised`), which receives Ctrl-C once, from the first, and stops the processes in
 * reverse order.
 */
const SUPERVISED_FLAG = '--supervised';

function relay(argv: string[]): void {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...argv, SUPERVISED_FLAG], {
    stdio: 'inherit',
    detached: true,
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128 + (os.constants.signals[signal] ?? 0))));
}

async function supervise(options: CliOptions): Promise<void> {
  let cluster: LocalCluster | null = null;
  let stopping = false;
  let stoppingSinceMs = 0;
  const stopAndExit = (): void => {
    if (cluster === null) return; // still starting: stopped as soon as start-up is over
    cluster.stop().then(
      () => {
        process.stdout.write('stopped.\n');
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  const shutdown = (why: string): void => {
    if (stopping) {
      // One Ctrl-C can arrive twice: from the terminal to the first process's group, and relayed by npm and tsx.
      if (Date.now() - stoppingSinceMs < SECOND_SIGNAL_AFTER_MS) return;
      // The exit hook of scripts/cluster/proc.ts SIGKILLs the Strata processes that still run.
      process.stderr.write(`${why} again: exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    stoppingSinceMs = Date.now();
    process.stdout.write(`${why}: stopping nginx, gateways and healers, storage nodes, Kafka, etcd...\n`);
    stopAndExit();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  // The relaying process gone (killed rather than interrupted): nobody can stop the cluster any more, so stop now.
  const parentPid = process.ppid;
  setInterval(() => {
    if (process.ppid !== parentPid) shutdown('the terminal process exited');
  }, PARENT_CHECK_INTERVAL_MS).unref();

  if (options.fresh) await rm(path.resolve(options.dataDir), { recursive: true, force: true });
  const startedMs = Date.now();
  process.stdout.write(
    `Starting etcd, Kafka, ${LOCAL_CLUSTER_DEFAULTS.nodes} storage nodes, ${LOCAL_CLUSTER_DEFAULTS.gateways} gateways, ` +
      `${LOCAL_CLUSTER_DEFAULTS.healers} healers and nginx...\n`,
  );
  cluster = await startLocalCluster({
    dataDir: options.dataDir,
    ...(options.port !== undefined ? { nginxPort: options.port } : {}),
    onUnexpectedExit: (proc, code, signal) => {
      if (stopping) return;
      process.stderr.write(`${proc.name} exited unexpectedly (code ${code}, signal ${signal}); see ${proc.logFile}\n`);
    },
  });
  if (stopping) return stopAndExit();
  process.stdout.write(`${describe(cluster, startedMs)}\n`);
}

async function main(argv: string[]): Promise<void> {
  const supervised = argv.includes(SUPERVISED_FLAG);
  const args = argv.filter((arg) => arg !== SUPERVISED_FLAG);
  const options = parseArgs(args);
  if (supervised) await supervise(options);
  else relay(args);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`local cluster: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
