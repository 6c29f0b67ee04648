/**
 * A real multi-member etcd cluster, one member per host of a network-namespace topology (./netns.ts), for the
 * partition tests: what a user who outgrew one machine runs, so that a partition can be cut between its members.
 * The single-member loopback server of ./etcd.ts stays what the rest of the suite uses; this reuses its binary,
 * its flags' values and its limits.
 *
 *   const net = await startTopology({ prefix: 'spetc', subnet: 2, hosts: ['etcd1', 'etcd2', 'etcd3'] });
 *   const etcd = await startEtcdMembers(net, ['etcd1', 'etcd2', 'etcd3']);
 *   etcd.endpoints;                  // ['http://10.77.2.1:2379', ...], reachable from the test process
 *   await net.isolate(await etcd.leader());
 *   await etcd.stop();
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { assert } from '../../internal/core/assert.js';
import { InfraError } from './debian-package.js';
import { ETCD_AUTO_COMPACTION_RETENTION, ETCD_INFRA_LIMITS, ETCD_QUOTA_BACKEND_BYTES, ensureEtcd, etcdctl } from './etcd.js';
import type { Topology } from './netns.js';
import { OutputTail, sleep, stopOnExit } from './process-utils.js';

export const ETCD_MEMBERS_LIMITS = {
  /**
   * From spawn until every member's /health says true. Three members must find each other and elect a leader; on a
   * busy 2-core machine that takes seconds, not the one a single member needs.
   */
  readyTimeoutMs: 90_000,
  readyPollIntervalMs: 100,
  /**
   * Raft timing. etcd's defaults (100 ms heartbeat, 1000 ms election) assume an idle machine; on this busy 2-core
   * one, with JVMs beside it, a member stalls for longer than a second now and then and would call needless
   * elections. Twice the defaults keeps elections for real faults and a failover still well under 10 s.
   */
  heartbeatIntervalMs: 200,
  electionTimeoutMs: 2_000,
  membersMax: 7,
} as const;

/** Each member listens on these in its own namespace, so every member can use the same ports. */
export const ETCD_MEMBER_CLIENT_PORT = 2379;
export const ETCD_MEMBER_PEER_PORT = 2380;

export interface EtcdMember {
  /** The member's etcd name, which is also its host's name in the topology. */
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  /** The etcd process id (the nemesis pauses it: topology.pause(name, pid)). */
  pid: number;
}

export interface RunningEtcdMembers {
  members: readonly EtcdMember[];
  /** Every member's client URL, for clients that may use any. */
  endpoints: string[];
  member(name: string): EtcdMember;
  /** The name of the member the others follow, asked of every member that answers; null while none is leader. */
  leader(): Promise<string | null>;
  /** SIGTERM every member (SIGCONT first, in case one is paused), wait, remove the data dirs. Idempotent. */
  stop(): Promise<void>;
}

/** Starts one etcd member per host (3 makes a cluster that survives one lost member) and waits until all are healthy. */
export async function startEtcdMembers(topology: Topology, hosts: readonly string[]): Promise<RunningEtcdMembers> {
  assert(hosts.length >= 1 && hosts.length <= ETCD_MEMBERS_LIMITS.membersMax, 'etcd members: 1..ETCD_MEMBERS_LIMITS.membersMax hosts');
  const binary = await ensureEtcd();
  const peerUrl = (host: string): string => `http://${topology.address(host)}:${ETCD_MEMBER_PEER_PORT}`;
  const initialCluster = hosts.map((host) => `${host}=${peerUrl(host)}`).join(',');
  // One token per topology: members of another cluster that reach these addresses are refused.
  const clusterToken = `strata-${topology.prefix}`;

  const started: StartedMember[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((m) => m.stop()));
  };
  try {
    for (const host of hosts) {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), `strata-${topology.prefix}-${host}-`));
      const clientUrl = `http://${topology.address(host)}:${ETCD_MEMBER_CLIENT_PORT}`;
      const args = [
        `--name=${host}`,
        `--data-dir=${dataDir}`,
        // Loopback too, so that a process on the member's own host can use it whatever the partition.
        `--listen-client-urls=${clientUrl},http://127.0.0.1:${ETCD_MEMBER_CLIENT_PORT}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl(host)}`,
        `--initial-advertise-peer-urls=${peerUrl(host)}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-token=${clusterToken}`,
        '--initial-cluster-state=new',
        `--heartbeat-interval=${ETCD_MEMBERS_LIMITS.heartbeatIntervalMs}`,
        `--election-timeout=${ETCD_MEMBERS_LIMITS.electionTimeoutMs}`,
        // The deployment's settings (./etcd.ts says why each).
        '--experimental-initial-corrupt-check=true',
        '--experimental-corrupt-check-time=5m',
        '--auto-compaction-mode=periodic',
        `--auto-compaction-retention=${ETCD_AUTO_COMPACTION_RETENTION}`,
        `--quota-backend-bytes=${ETCD_QUOTA_BACKEND_BYTES}`,
        '--logger=zap',
        '--log-outputs=stderr',
        '--log-level=warn',
      ];
      started.push(spawnMember(topology, host, binary, args, { name: host, clientUrl, peerUrl: peerUrl(host), dataDir }));
    }
    await Promise.all(started.map((m) => m.untilHealthy()));
  } catch (err) {
    const tails = started.map((m) => `--- ${m.member.name} (last output) ---\n${m.outputTail()}`).join('\n');
    await stop();
    throw new InfraError(`etcd members on ${hosts.join(', ')}: ${(err as Error).message}\n${tails}`);
  }

  const members = started.map((m) => m.member);
  const byName = (name: string): EtcdMember => {
    const found = members.find((m) => m.name === name);
    assert(found !== undefined, `no etcd member ${JSON.stringify(name)}`);
    return found;
  };
  return {
    members,
    endpoints: members.map((m) => m.clientUrl),
    member: byName,
    leader: () => leaderOf(members),
    stop,
  };
}

interface StartedMember {
  member: EtcdMember;
  untilHealthy(): Promise<void>;
  outputTail(): string;
  stop(): Promise<void>;
}

function spawnMember(topology: Topology, host: string, binary: string, args: string[], where: Omit<EtcdMember, 'pid'>): StartedMember {
  const child: ChildProcess = topology.spawn(host, binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  stopOnExit(child, 'SIGKILL');
  const output = new OutputTail(ETCD_INFRA_LIMITS.outputTailBytesMax);
  child.stdout?.on('data', (chunk: Buffer) => output.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk));
  let hasExited = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  void exited.then(() => (hasExited = true));
  assert(child.pid !== undefined, 'a spawned `ip netns exec etcd` has a pid');
  const member: EtcdMember = { ...where, pid: child.pid };

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!hasExited) {
        child.kill('SIGCONT'); // a paused member would not act on SIGTERM
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), ETCD_INFRA_LIMITS.stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }
      await rm(where.dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const untilHealthy = async (): Promise<void> => {
    const deadlineMs = Date.now() + ETCD_MEMBERS_LIMITS.readyTimeoutMs;
    let last = 'no answer yet';
    while (Date.now() < deadlineMs) {
      if (hasExited) throw new InfraError(`etcd member ${host} exited during start-up`);
      try {
        // /health is true once the member has a leader and can serve a linearizable read.
        const response = await fetch(`${where.clientUrl}/health`, { signal: AbortSignal.timeout(ETCD_INFRA_LIMITS.probeTimeoutMs) });
        const body = await response.text();
        if (response.ok && /"health"\s*:\s*"true"/.test(body)) return;
        last = `HTTP ${response.status} ${body.trim()}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(ETCD_MEMBERS_LIMITS.readyPollIntervalMs);
    }
    throw new InfraError(`etcd member ${host} at ${where.clientUrl} was not healthy within ${ETCD_MEMBERS_LIMITS.readyTimeoutMs} ms (last probe: ${last})`);
  };

  return { member, untilHealthy, outputTail: () => output.text(), stop };
}

interface EndpointStatus {
  Endpoint: string;
  Status: { header: { member_id: string }; leader: string };
}

/**
 * Asks each member who leads (etcdctl endpoint status) and returns the leader most members name, by its member
 * name; null while none answers with a leader. A member cut off from the others may still name an old leader, so
 * the answer is the majority's view when a majority answers.
 */
async function leaderOf(members: readonly EtcdMember[]): Promise<string | null> {
  const names = new Map<string, string>();
  const votes = new Map<string, number>();
  for (const member of members) {
    try {
      // --command-timeout: a cut-off member must not hold the question up for etcdctl's default 5 s.
      const out = await etcdctl(member.clientUrl, ['--command-timeout=2s', 'endpoint', 'status', '--write-out=json']);
      // Member ids are 64-bit: quoted before parsing, or JSON.parse would round them.
      const [status] = JSON.parse(out.replace(/:\s*(\d{10,})/g, ':"$1"')) as EndpointStatus[];
      if (status === undefined) continue;
      names.set(String(status.Status.header.member_id), member.name);
      const leader = String(status.Status.leader);
      if (leader !== '0') votes.set(leader, (votes.get(leader) ?? 0) + 1);
    } catch {
      // unreachable or without a leader: ask the next one
    }
  }
  const [best] = [...votes.entries()].sort((a, b) => b[1] - a[1]);
  return best === undefined ? null : (names.get(best[0]) ?? null);
}
