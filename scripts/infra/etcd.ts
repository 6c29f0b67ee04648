/**
 * Real etcd for tests and for people (scripts/infra/etcd-cli.ts): install it when missing, start a throw-away
 * single-member cluster on free loopback ports, wait until it answers, tear it down. Tests run against this real
 * server rather than a mock, so that what they prove about transactions, leases and revisions is etcd's own
 * behaviour.
 *
 *   const path = await ensureEtcd();              // installs Debian's etcd-server if `etcd` is not on PATH
 *   const etcd = await startEtcd();               // fresh temp data dir, free client and peer ports
 *   ... new EtcdMetadataStore({ endpoints: [etcd.endpoints] }) ...
 *   await etcd.stop();                            // SIGTERM, wait, remove the temp dir
 *
 * Measured on the development VM (Debian 12, 2 vCPU): `apt-get update && apt-get install -y etcd-server` took
 * about 10 s and installed etcd 3.4.23; an already-installed etcd is found in a few milliseconds.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assert } from '../../internal/core/assert.js';
import { InfraError, ensureBinary } from './debian-package.js';
import { ensureEtcdctl } from './etcd-backup.js';
import { OutputTail, freePort, sleep, stopOnExit } from './process-utils.js';

export { InfraError };

export const ETCD_INFRA_LIMITS = {
  /** From spawn until /health answers `"health":"true"`. A single member elects itself in about a second. */
  readyTimeoutMs: 20_000,
  readyPollIntervalMs: 50,
  /** Per /health probe. */
  probeTimeoutMs: 1_000,
  /** From SIGTERM until SIGKILL. */
  stopTimeoutMs: 10_000,
  /** Start attempts when another process grabbed a port between choosing it and etcd binding it. */
  startAttemptsMax: 3,
  /** Bytes of etcd's output kept for error messages. */
  outputTailBytesMax: 4_096,
  /** One etcdctl command (compact and defrag of a small store take well under a second). */
  etcdctlTimeoutMs: 60_000,
} as const;

/** The member's name; a snapshot restored for this member must be given the same (scripts/infra/etcd-backup.ts). */
export const ETCD_MEMBER_NAME = 'strata-test';

/** Where Debian puts the binary; also looked for when PATH is minimal (cron, systemd). */
const WELL_KNOWN_PATHS = ['/usr/bin/etcd', '/usr/local/bin/etcd'];


// ---- ensureEtcd ----------------------------------------------------------------------------------------------

const MANUAL_FIX = 'Install it yourself with `sudo apt-get update && sudo apt-get install -y etcd-server` (Debian/Ubuntu), or put an etcd v3.4+ binary on PATH (https://etcd.io/docs/latest/install/).';

/**
 * The path of the etcd binary, installing Debian's `etcd-server` package first when none is found. Idempotent
 * and safe to call from several processes at once.
 */
export function ensureEtcd(): Promise<string> {
  return ensureBinary({ binary: 'etcd', packages: ['etcd-server'], wellKnownPaths: WELL_KNOWN_PATHS, manualFix: MANUAL_FIX });
}

// ---- startEtcd -----------------------------------------------------------------------------------------------

export interface StartEtcdOptions {
  /** Reuse this data directory (e.g. to restart a stopped member); it is then left in place on stop. */
  dataDir?: string;
  /** Listen on these loopback ports (e.g. to restart on the same address); free ones are chosen otherwise. */
  clientPort?: number;
  peerPort?: number;
  /** etcd's space quota (--quota-backend-bytes); tests of its NOSPACE alarm make it tiny. Default ETCD_QUOTA_BACKEND_BYTES. */
  quotaBackendBytes?: number;
  /**
   * How much history the periodic compaction keeps (--auto-compaction-retention, a duration such as `5m` or `2s`).
   * Default ETCD_AUTO_COMPACTION_RETENTION; tests of the compaction's effect on the quota shorten it.
   */
  autoCompactionRetention?: string;
}

/** The history a deployment's etcd keeps: revisions older than this are compacted (see startEtcd's flags). */
export const ETCD_AUTO_COMPACTION_RETENTION = '5m';

/**
 * The space quota of a deployment's etcd (its own default, made explicit). Overwrites never fill it because history
 * is compacted every 5 minutes (--auto-compaction-mode=periodic, retention 5m) and free pages are reused; a full
 * quota raises etcd's NOSPACE alarm (docs/disk-full.md says what clients see and how to recover).
 */
export const ETCD_QUOTA_BACKEND_BYTES = 2 * 1024 ** 3;

export interface RunningEtcd {
  /** The client URL, `http://127.0.0.1:PORT`. */
  endpoints: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  /** The etcd process id (tests may SIGSTOP it to simulate a hung server). */
  pid: number;
  /** SIGTERM, wait for the exit, remove the data dir when startEtcd created it. Idempotent; also after kill(). */
  stop(): Promise<void>;
  /** SIGKILL at once, as a crash would; the data dir stays (stop() still removes a temp one). */
  kill(): void;
}


/** Starts a single-member etcd on loopback and resolves once its /health says it is ready. */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<RunningEtcd> {
  const binary = await ensureEtcd();
  const fixedPorts = options.clientPort !== undefined || options.peerPort !== undefined;
  let lastError: unknown;
  for (let attempt = 1; attempt <= ETCD_INFRA_LIMITS.startAttemptsMax; attempt++) {
    try {
      return await startOnce(binary, options);
    } catch (err) {
      lastError = err;
      // Only a port race is worth another try, and only when the ports were ours to choose.
      if (fixedPorts || !(err instanceof PortInUseError)) break;
    }
  }
  throw lastError;
}

class PortInUseError extends InfraError {}

async function startOnce(binary: string, options: StartEtcdOptions): Promise<RunningEtcd> {
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'strata-etcd-')));
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const name = ETCD_MEMBER_NAME;
  const args = [
    `--name=${name}`,
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${name}=${peerUrl}`,
    // etcd checks its own store (the metadata store trusts a missing key only because of it): at start, and every 5 min.
    '--experimental-initial-corrupt-check=true',
    '--experimental-corrupt-check-time=5m',
    // Old revisions are compacted so that overwrites do not fill the quota (watchers resuming from older than 5
    // minutes get HISTORY_COMPACTED and list again).
    '--auto-compaction-mode=periodic',
    `--auto-compaction-retention=${options.autoCompactionRetention ?? ETCD_AUTO_COMPACTION_RETENTION}`,
    `--quota-backend-bytes=${options.quotaBackendBytes ?? ETCD_QUOTA_BACKEND_BYTES}`,
    '--initial-cluster-state=new', // ignored by etcd when the data dir already holds a member (a restart)
    '--logger=zap',
    '--log-outputs=stderr',
    '--log-level=warn',
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  stopOnExit(child, 'SIGKILL');
  const output = new OutputTail(ETCD_INFRA_LIMITS.outputTailBytesMax);
  child.stdout?.on('data', (chunk: Buffer) => output.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
    child.once('error', () => {
      resolve();
    });
  });
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!hasExited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), ETCD_INFRA_LIMITS.stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const kill = (): void => {
    if (!hasExited) child.kill('SIGKILL');
  };

  try {
    await waitUntilHealthy(clientUrl, () => hasExited);
  } catch (err) {
    await stop();
    const tail = output.text();
    if (/address already in use/i.test(tail)) {
      throw new PortInUseError(`etcd: port ${clientPort} or ${peerPort} is already in use.\n${tail}`);
    }
    throw new InfraError(`etcd: ${(err as Error).message} (${binary} ${args.join(' ')})\n--- etcd output (last part) ---\n${tail}`);
  }
    assert(child.pid !== undefined, 'a spawned etcd that answered /health has a pid');
  return { endpoints: clientUrl, clientPort, peerPort, dataDir, pid: child.pid, stop, kill };
}

async function waitUntilHealthy(clientUrl: string, hasExited: () => boolean): Promise<void> {
  const deadlineMs = Date.now() + ETCD_INFRA_LIMITS.readyTimeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadlineMs) {
    if (hasExited()) throw new InfraError('etcd exited during start-up');
    try {
      const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(ETCD_INFRA_LIMITS.probeTimeoutMs) });
      const body = await response.text();
      if (response.ok && /"health"\s*:\s*"true"/.test(body)) return;
      last = `HTTP ${response.status} ${body.trim()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(ETCD_INFRA_LIMITS.readyPollIntervalMs);
  }
  throw new InfraError(`etcd at ${clientUrl} was not healthy within ${ETCD_INFRA_LIMITS.readyTimeoutMs} ms (last probe: ${last})`);
}

// ---- etcdctl -------------------------------------------------------------------------------------------------

/**
 * Runs `etcdctl --endpoints=<endpoint> <args>` with the v3 API, as an operator would (installing Debian's
 * etcd-client first when etcdctl is missing); resolves with its standard output, rejects with its output on failure.
 *
 *   await etcdctl(etcd.endpoints, ['alarm', 'list']);
 */
export async function etcdctl(endpoint: string, args: string[]): Promise<string> {
  const binary = await ensureEtcdctl();
  const argv = [`--endpoints=${endpoint}`, ...args];
  return new Promise((resolve, reject) => {
    // ETCDCTL_API=3: etcdctl 3.3 and older default to the v2 API.
    execFile(binary, argv, { env: { ...process.env, ETCDCTL_API: '3' }, timeout: ETCD_INFRA_LIMITS.etcdctlTimeoutMs }, (err, stdout, stderr) => {
      if (err === null) return resolve(stdout);
      const tail = `${stdout}${stderr}`.slice(-ETCD_INFRA_LIMITS.outputTailBytesMax);
      reject(new InfraError(`\`etcdctl ${argv.join(' ')}\` failed: ${err.message}\n${tail}`));
    });
  });
}
