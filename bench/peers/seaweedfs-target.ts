/**
 * A SeaweedFS cluster on loopback for the peers benchmark: one master and `volumeServers` volume servers, each on
 * free ports with its data in one temporary directory, started with the pinned `weed` (scripts/infra/seaweedfs.ts).
 *
 * Ready means: the master answers, every volume server answers and has registered with the master, and an assign
 * with the benchmark's replication succeeds (which grows the first volumes). Every step polls with a deadline.
 * stop() signals every process, waits for it to exit (SIGKILL after a grace period), then removes the directory;
 * the processes are also killed if this process exits first (stopOnExit).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, OutputTail, sleep, stopOnExit } from '../../scripts/infra/process-utils.js';
import type { PeerProcess, PeerTarget } from './target.js';

export const SEAWEEDFS_TARGET_LIMITS = {
  /** From spawn until an assign succeeds, on a busy 2-core machine. */
  startTimeoutMs: 90_000,
  /** One readiness probe. */
  probeTimeoutMs: 2_000,
  probeIntervalMs: 100,
  /** After SIGTERM, before SIGKILL. */
  stopGraceMs: 10_000,
  /** Volumes per volume server: the master grows up to 7 one-copy or 3 three-copy volumes at first. */
  volumesPerServerMax: 16,
  outputTailBytes: 8_192,
} as const;

export interface SeaweedfsOptions {
  weed: string;
  volumeServers: number;
  /** Replica placement of the benchmark's assigns: `000` one copy, `002` two more on other servers of the rack. */
  replication: string;
  log: (line: string) => void;
}

interface Started {
  name: string;
  child: ChildProcess;
  tail: OutputTail;
  exited: Promise<void>;
  hasExited: () => boolean;
}

export async function startSeaweedfs(options: SeaweedfsOptions): Promise<PeerTarget> {
  const startedMs = Date.now();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-peers-seaweedfs-'));
  const started: Started[] = [];
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await Promise.all(started.map((s) => stopProcess(s)));
      await rm(dir, { recursive: true, force: true });
    })());

  try {
    const masterPort = await freePort();
    const masterGrpcPort = await freePort();
    const masterUrl = `http://127.0.0.1:${masterPort}`;
    const masterDir = path.join(dir, 'master');
    await mkdir(masterDir);
    started.push(
      launch(options.weed, 'master', [
        'master',
        '-ip=127.0.0.1',
        `-port=${masterPort}`,
        `-port.grpc=${masterGrpcPort}`,
        `-mdir=${masterDir}`,
        '-peers=none',
        `-defaultReplication=${options.replication}`,
        '-telemetry=false',
      ]),
    );
    const deadlineMs = Date.now() + SEAWEEDFS_TARGET_LIMITS.startTimeoutMs;
    await until(started, deadlineMs, 'the master to answer', async () => (await probe(`${masterUrl}/dir/status`)) !== null);

    const volumeUrls: string[] = [];
    for (let i = 1; i <= options.volumeServers; i++) {
      const port = await freePort();
      const grpcPort = await freePort();
      const volumeDir = path.join(dir, `volume-${i}`);
      await mkdir(volumeDir);
      volumeUrls.push(`http://127.0.0.1:${port}`);
      started.push(
        launch(options.weed, `volume-${i}`, [
          'volume',
          '-ip=127.0.0.1',
          `-port=${port}`,
          `-port.grpc=${grpcPort}`,
          `-dir=${volumeDir}`,
          `-max=${SEAWEEDFS_TARGET_LIMITS.volumesPerServerMax}`,
          // host:port.grpcPort: the master's gRPC port is not the default port + 10000.
          `-master=127.0.0.1:${masterPort}.${masterGrpcPort}`,
          // Stop at once when told to: the default waits 10 s for clients to move away.
          '-preStopSeconds=0',
        ]),
      );
    }
    for (const url of volumeUrls) {
      await until(started, deadlineMs, `the volume server at ${url} to answer`, async () => (await probe(`${url}/status`)) !== null);
    }
    await until(started, deadlineMs, `${options.volumeServers} volume servers to register with the master`, async () => {
      const status = await probe(`${masterUrl}/dir/status`);
      return status !== null && countDataNodes(status) >= options.volumeServers;
    });
    // The first assign grows volumes, which a fresh master defers for about 10 s (topology.go: allocationDelay).
    await until(started, deadlineMs, `an assign with replication ${options.replication} to succeed`, async () => {
      const answer = (await probe(`${masterUrl}/dir/assign?replication=${options.replication}`)) as { fid?: string } | null;
      return typeof answer?.fid === 'string' && answer.fid.length > 0;
    });
    options.log(
      `SeaweedFS ready in ${((Date.now() - startedMs) / 1000).toFixed(1)} s: master ${masterUrl}, ${options.volumeServers} volume server(s), ` +
        `replication ${options.replication}, data in ${dir}`,
    );
    return {
      url: masterUrl,
      processes: (): PeerProcess[] =>
        started.filter((s) => !s.hasExited() && s.child.pid !== undefined).map((s) => ({ name: s.name, pid: s.child.pid! })),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function launch(weed: string, name: string, args: string[]): Started {
  // -logtostderr: glog would otherwise write log files into the system's temporary directory.
  const child = spawn(weed, ['-logtostderr=true', '-v=0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  stopOnExit(child, 'SIGKILL');
  const tail = new OutputTail(SEAWEEDFS_TARGET_LIMITS.outputTailBytes);
  child.stdout!.on('data', (c: Buffer) => tail.push(c));
  child.stderr!.on('data', (c: Buffer) => tail.push(c));
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => ((exited = true), resolve()));
    child.once('error', (err) => {
      tail.push(Buffer.from(`\ncould not start ${weed}: ${err.message}\n`));
      exited = true;
      resolve();
    });
  });
  return { name, child, tail, exited: exitedPromise, hasExited: () => exited };
}

async function stopProcess(s: Started): Promise<void> {
  if (s.hasExited()) return;
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), SEAWEEDFS_TARGET_LIMITS.stopGraceMs);
  await s.exited;
  clearTimeout(timer);
}

/** Polls `ready` until it holds; fails at the deadline, or at once when a process exited, with its output. */
async function until(started: Started[], deadlineMs: number, what: string, ready: () => Promise<boolean>): Promise<void> {
  for (;;) {
    const dead = started.find((s) => s.hasExited());
    if (dead) throw new Error(`SeaweedFS ${dead.name} exited while waiting for ${what}:\n${dead.tail.text()}`);
    if (await ready()) return;
    if (Date.now() > deadlineMs) {
      const tails = started.map((s) => `--- ${s.name} ---\n${s.tail.text().slice(-2_000)}`).join('\n');
      throw new Error(`SeaweedFS: gave up waiting for ${what} after ${SEAWEEDFS_TARGET_LIMITS.startTimeoutMs} ms\n${tails}`);
    }
    await sleep(SEAWEEDFS_TARGET_LIMITS.probeIntervalMs);
  }
}

/** The JSON of a 200 answer, or null for anything else (not up yet, refused, timed out). */
async function probe(url: string): Promise<unknown> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(SEAWEEDFS_TARGET_LIMITS.probeTimeoutMs) });
    if (response.status !== 200) {
      await response.body?.cancel();
      return null;
    }
    return (await response.json()) as unknown;
  } catch {
    return null;
  }
}

/** Data nodes in the master's `/dir/status` topology (DataCenters -> Racks -> DataNodes). */
function countDataNodes(status: unknown): number {
  const topology = (status as { Topology?: { DataCenters?: { Racks?: { DataNodes?: unknown[] }[] }[] } }).Topology;
  let nodes = 0;
  for (const dc of topology?.DataCenters ?? []) for (const rack of dc.Racks ?? []) nodes += rack.DataNodes?.length ?? 0;
  return nodes;
}
