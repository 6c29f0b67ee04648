/**
 * Process-level chaos on the local cluster (scripts/local-cluster.ts): bounded load from several clients while a
 * seeded schedule SIGKILLs and restarts storage nodes, gateways and healers, then the checks of architecture.md's
 * guarantees. Used by test/cluster/chaos.test.ts (a short run in `npm test`) and `npm run chaos -- --minutes N`.
 *
 * Load. Each worker owns a few keys and runs one operation at a time on them (writes of all three strategies,
 * merge patches of a hot field, JSON patches adding a member, deletes, reads), half through nginx and half straight
 * to a random running gateway. Owning keys makes the expected state of every key exact: each outcome is recorded
 * in the order it was acknowledged.
 * - 200: acknowledged, with its version and the exact document it stored (a patch's result is computed from the
 *   acknowledged document it applied to; a patch is only sent when that document is known).
 * - 503 with a gateway code (INSUFFICIENT_NODES, METADATA_UNAVAILABLE, WAL_UNAVAILABLE, WRITE_ABORTED): "changed
 *   nothing" by api.md, so recorded as not applied; if it was applied after all, the final check finds it.
 * - 504 COMMIT_UNKNOWN, nginx's own 502/503/504 (a gateway died mid-request) and network errors: "maybe"; the key
 *   may hold that outcome or the previous one, and the next operation on it is a full write.
 *
 * Faults (architecture.md's fault model). Every 1.5 to 4 s the schedule picks one: SIGKILL a storage node (a second
 * one only when no write acknowledged as partial, or left unknown, is still waiting for repair, and never a third),
 * SIGKILL two storage nodes at once (from a clean state), SIGKILL a gateway, or SIGKILL a healer (usually the
 * leader). Each killed process is restarted a few seconds later with the same data.
 *
 * Checks. During the run: versions of a key strictly increase in acknowledgement order, and a read never returns a
 * version older than one already acknowledged. Afterwards, with every process back: every key reads back exactly its
 * latest acknowledged outcome or a later "maybe" one (an acknowledged delete stays deleted), and within a bound the
 * healer brings every live key to full protection: /stat shows every replica and shard `ok` on a running node, the
 * manifest is not dirty, and each blob is really in that node's inventory.
 */
import type { LocalCluster, Proc } from '../local-cluster.js';
import { Prng } from '../../internal/sim/prng.js';

export const CHAOS_LIMITS = {
  /** One request of the load. A gateway waiting on a dead node answers well within this. */
  requestTimeoutMs: 15_000,
  /** Pause between two faults: uniform in [min, max). */
  faultGapMsMin: 1_500,
  faultGapMsMax: 4_000,
  /** How long a killed process stays down: uniform in [min, max). */
  downMsMin: 2_000,
  downMsMax: 7_000,
  /** Never more storage nodes down at once (architecture.md). */
  nodesDownMax: 2,
  /** Waiting for the outstanding partial writes to be repaired before a second node may go down. */
  cleanCheckTimeoutMs: 3_000,
  /** After the load: reads of one key retried while the cluster settles. */
  finalReadAttemptsMax: 40,
  finalReadRetryMs: 500,
  /** Polling /stat and the nodes' inventories until every key is fully protected. */
  protectionPollMs: 1_000,
} as const;

/**
 * Settings for the cluster under chaos: healer rounds, audits and rollbacks often enough that repair and failover
 * show within a short run, and a short lease so that a killed leader is replaced within seconds.
 */
export const CHAOS_CLUSTER_ENV: Record<string, string> = {
  STRATA_HEALER_INTERVAL_MS: '500',
  STRATA_AUDIT_INTERVAL_MS: '3000',
  STRATA_HEALER_LEASE_MS: '4000',
  STRATA_INTENT_TIMEOUT_MS: '5000',
  STRATA_GC_GRACE_MS: '10000',
  STRATA_NODE_TIMEOUT_MS: '3000',
  STRATA_LOG_LEVEL: 'warn',
};

export interface ChaosOptions {
  cluster: LocalCluster;
  seed: number;
  /** How long load and faults run. */
  durationMs: number;
  workers?: number;
  keysPerWorker?: number;
  /** Bound on the healer bringing every key back to full protection once every process is back. */
  protectionTimeoutMs?: number;
  /** Progress lines; default silent. */
  log?: (line: string) => void;
}

export type FaultKind = 'storage-node' | 'gateway' | 'healer' | 'healer-leader';

export interface ChaosReport {
  seed: number;
  durationMs: number;
  /** Operations sent, by kind. */
  operations: Record<'write' | 'merge-patch' | 'json-patch' | 'delete' | 'read', number>;
  acknowledged: number;
  /** Outcomes that may or may not have been applied (504 COMMIT_UNKNOWN, a gateway dying mid-request). */
  maybe: number;
  /** Answers that say nothing changed (503s of the gateway). */
  refused: number;
  partialAcks: number;
  /** Answers other than 200, by `status code` (e.g. `503 INSUFFICIENT_NODES`, `network error`). */
  failures: Record<string, number>;
  kills: Record<FaultKind, number>;
  /** Faults with two storage nodes down at once. */
  doubleNodeFaults: number;
  /** Most storage nodes that were down at the same time. */
  nodesDownMaxSeen: number;
  keys: number;
  liveKeys: number;
  /** From every process being back until every live key was fully protected. */
  protectionMs: number | null;
  /** Every broken guarantee, one line each; empty when nothing was lost. */
  violations: string[];
}

// ---- the model of one key ------------------------------------------------------------------------------------

type Doc = Record<string, unknown>;

/** An outcome: the document a key holds after it, or null for a delete. */
interface Outcome {
  doc: Doc | null;
}

interface KeyState {
  key: string;
  strategy: 'replication' | 'ec' | 'field_hybrid';
  /** The latest acknowledged outcome and its version; null before the first acknowledgement. */
  acked: (Outcome & { version: bigint }) | null;
  /** Outcomes sent after `acked` whose fate is unknown, in order. */
  maybes: Outcome[];
  /** The latest acknowledged write was partial, or an unknown one may have been: the healer has work to do. */
  needsRepair: boolean;
}

const STRATEGIES = ['replication', 'ec', 'field_hybrid'] as const;
/** 503 codes with which the gateway says that nothing changed (api.md). */
const REFUSED_CODES = new Set(['INSUFFICIENT_NODES', 'METADATA_UNAVAILABLE', 'WAL_UNAVAILABLE', 'WRITE_ABORTED']);

interface Answer {
  status: number;
  text: string;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

async function send(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(CHAOS_LIMITS.requestTimeoutMs), ...init });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, text, headers: res.headers, json };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Stable text of a document for comparison: member order matters (documents round-trip in order). */
const textOf = (doc: unknown): string => JSON.stringify(doc);

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { cluster, seed } = options;
  const log = options.log ?? ((): void => undefined);
  const workers = options.workers ?? 4;
  const keysPerWorker = options.keysPerWorker ?? 6;
  const rng = new Prng(seed);
  const report: ChaosReport = {
    seed,
    durationMs: 0,
    operations: { write: 0, 'merge-patch': 0, 'json-patch': 0, delete: 0, read: 0 },
    acknowledged: 0,
    maybe: 0,
    refused: 0,
    partialAcks: 0,
    failures: {},
    kills: { 'storage-node': 0, gateway: 0, healer: 0, 'healer-leader': 0 },
    doubleNodeFaults: 0,
    nodesDownMaxSeen: 0,
    keys: workers * keysPerWorker,
    liveKeys: 0,
    protectionMs: null,
    violations: [],
  };
  const violation = (line: string): void => {
    report.violations.push(line);
    log(`VIOLATION ${line}`);
  };
  const states: KeyState[][] = Array.from({ length: workers }, (_, w) =>
    Array.from({ length: keysPerWorker }, (_, k) => ({
      key: `chaos/${seed}/w${w}/k${k}`,
      strategy: STRATEGIES[(w + k) % STRATEGIES.length]!,
      acked: null,
      maybes: [],
      needsRepair: false,
    })),
  );
  const startedMs = Date.now();
  const deadlineMs = startedMs + options.durationMs;
  let stopped = false;

  // ---- load ----
  const runWorker = async (w: number): Promise<void> => {
    const wrng = new Prng(seed * 7919 + w + 1);
    let n = 0;
    while (!stopped && Date.now() < deadlineMs) {
      const state = wrng.pick(states[w]!);
      const running = up(cluster.gateways);
      const base = wrng.chance(0.5) || running.length === 0 ? cluster.url : wrng.pick(running).address!;
      await operate(state, base, wrng, ++n);
    }
  };

  const operate = async (state: KeyState, base: string, wrng: Prng, n: number): Promise<void> => {
    const known = state.maybes.length === 0 && state.acked !== null ? state.acked : null;
    const roll = wrng.next();
    const path = encodeURIComponent(state.key);
    let kind: keyof ChaosReport['operations'];
    let outcome: Outcome;
    let call: () => Promise<Answer>;
    if (known?.doc && roll < 0.2) {
      kind = 'merge-patch';
      outcome = { doc: { ...known.doc, like_count: n } };
      call = () => send(`${base}/patch/${path}`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ like_count: n }) });
    } else if (known?.doc && roll < 0.32) {
      kind = 'json-patch';
      const member = `extra_${n}`;
      outcome = { doc: { ...known.doc, [member]: { n, text: `added by operation ${n}` } } };
      call = () =>
        send(`${base}/patch/${path}`, {
          method: 'PATCH',
          headers: { 'content-type': 'application/json-patch+json' },
          body: JSON.stringify([{ op: 'add', path: `/${member}`, value: { n, text: `added by operation ${n}` } }]),
        });
    } else if (known?.doc && roll < 0.42) {
      kind = 'delete';
      outcome = { doc: null };
      call = () => send(`${base}/delete/${path}`, { method: 'DELETE' });
    } else if (known && roll < 0.55) {
      report.operations.read++;
      await checkRead(state, base);
      return;
    } else {
      kind = 'write';
      const coldBytes = 1_000 + wrng.int(12_000);
      const doc: Doc = { like_count: n, view_count: n * 2, title: `${state.key} #${n}`, body: `${n} `.repeat(coldBytes / 4).slice(0, coldBytes) };
      outcome = { doc };
      call = () =>
        send(`${base}/write?key=${path}&strategy=${state.strategy}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(doc) });
    }
    report.operations[kind]++;
    let answer: Answer;
    try {
      answer = await call();
    } catch {
      // No answer: it may have been applied (the gateway died after its commit, or the answer was lost).
      report.failures['network error'] = (report.failures['network error'] ?? 0) + 1;
      state.maybes.push(outcome);
      state.needsRepair = true;
      report.maybe++;
      return;
    }
    if (answer.status === 200) {
      const version = BigInt(answer.json.version as string);
      if (state.acked !== null && version <= state.acked.version) {
        violation(`${state.key}: ${kind} acknowledged version ${version} after version ${state.acked.version} (versions must increase)`);
      }
      state.acked = { ...outcome, version };
      state.maybes = [];
      state.needsRepair = answer.json.partial === true;
      if (answer.json.partial === true) report.partialAcks++;
      report.acknowledged++;
      return;
    }
    const code = (answer.json?.error?.code as string | undefined) ?? '';
    const label = `${answer.status} ${code}`.trim();
    report.failures[label] = (report.failures[label] ?? 0) + 1;
    if (answer.status === 503 && REFUSED_CODES.has(code)) {
      report.refused++;
      return;
    }
    if (answer.status === 404 && (kind === 'delete' || kind.endsWith('patch'))) {
      // Only sent while the key is known to exist: a 404 means an acknowledged write is gone.
      violation(`${state.key}: ${kind} answered 404 although version ${state.acked?.version} was acknowledged as a document`);
      return;
    }
    if (answer.status >= 500 || answer.status === 0) {
      if (answer.status === 500) violation(`${state.key}: ${kind} answered 500: ${answer.text.slice(0, 300)}`);
      state.maybes.push(outcome);
      state.needsRepair = true;
      report.maybe++;
      return;
    }
    violation(`${state.key}: ${kind} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  };

  /** A read during the load: never older than the latest acknowledged version; exact when it is that version. */
  const checkRead = async (state: KeyState, base: string): Promise<void> => {
    const acked = state.acked!;
    let answer: Answer;
    try {
      answer = await send(`${base}/read/${encodeURIComponent(state.key)}`);
    } catch {
      return; // a gateway killed mid-read: nothing to judge
    }
    if (answer.status === 503 || answer.status === 502 || answer.status === 504) return;
    if (answer.status === 404) {
      if (acked.doc !== null) violation(`${state.key}: read 404 after version ${acked.version} was acknowledged as a document`);
      return;
    }
    if (answer.status !== 200) {
      violation(`${state.key}: read answered ${answer.status}: ${answer.text.slice(0, 300)}`);
      return;
    }
    const version = BigInt(answer.headers.get('x-strata-version') ?? '0');
    if (version < acked.version) violation(`${state.key}: read version ${version} after version ${acked.version} was acknowledged (stale read)`);
    else if (version === acked.version && (acked.doc === null || textOf(JSON.parse(answer.text)) !== textOf(acked.doc))) {
      violation(`${state.key}: read of version ${version} differs from what was acknowledged`);
    }
  };

  // ---- faults ----
  const restarts = new Set<Promise<void>>();
  /**
   * Processes killed and not yet ready again. A restarting process already has a pid (Proc.running is true), but
   * it is still down for the fault model, and killing it again would only interrupt its start.
   */
  const down = new Set<Proc>();
  /** Restarts `proc` after `downMs`; the promise settles once it is running again. */
  const restartLater = (proc: Proc, downMs: number): void => {
    const task = (async () => {
      await sleep(downMs);
      await startWithRetries(proc, log);
      down.delete(proc);
    })();
    restarts.add(task);
    void task.finally(() => restarts.delete(task));
  };
  const nodesDown = (): Proc[] => cluster.nodes.filter((p) => down.has(p) || !p.running);
  const up = (procs: readonly Proc[]): Proc[] => procs.filter((p) => p.running && !down.has(p));
  const downMs = (): number => CHAOS_LIMITS.downMsMin + rng.int(CHAOS_LIMITS.downMsMax - CHAOS_LIMITS.downMsMin);

  /** No key's acknowledged (or unknown) write is still waiting for the healer: /stat says clean for each. */
  const repairsDone = async (): Promise<boolean> => {
    const pending = states.flat().filter((s) => s.needsRepair);
    const deadline = Date.now() + CHAOS_LIMITS.cleanCheckTimeoutMs;
    for (const state of pending) {
      if (Date.now() > deadline) return false;
      const stat = await send(`${cluster.url}/stat/${encodeURIComponent(state.key)}`).catch(() => null);
      if (stat === null) return false;
      if (stat.status === 404) {
        if (state.maybes.length === 0) state.needsRepair = false;
        continue;
      }
      if (stat.status !== 200 || !fullyProtected(stat.json)) return false;
      if (state.maybes.length === 0) state.needsRepair = false;
    }
    return true;
  };

  const killNode = async (count: number): Promise<void> => {
    const candidates = up(cluster.nodes);
    const chosen: Proc[] = [];
    for (let i = 0; i < count; i++) chosen.push(candidates.splice(rng.int(candidates.length), 1)[0]!);
    for (const p of chosen) down.add(p);
    await Promise.all(chosen.map((p) => cluster.kill(p)));
    report.kills['storage-node'] += chosen.length;
    report.nodesDownMaxSeen = Math.max(report.nodesDownMaxSeen, nodesDown().length);
    if (nodesDown().length >= 2) report.doubleNodeFaults++;
    log(`kill ${chosen.map((p) => p.name).join(' + ')} (${nodesDown().length} node(s) down)`);
    for (const p of chosen) restartLater(p, downMs());
  };

  const fault = async (): Promise<void> => {
    const roll = rng.next();
    const nodesDownNow = nodesDown().length;
    if (roll < 0.45) {
      if (nodesDownNow === 0) {
        // From a clean state, sometimes two at once: the most the fault model allows.
        const two = rng.chance(0.35) && (await repairsDone());
        await killNode(two ? 2 : 1);
      } else if (nodesDownNow < CHAOS_LIMITS.nodesDownMax && (await repairsDone())) {
        await killNode(1);
      }
    } else if (roll < 0.72) {
      const running = up(cluster.gateways);
      // One gateway down at a time: nginx needs somewhere to send the load.
      if (running.length < cluster.gateways.length) return;
      const victim = rng.pick(running);
      down.add(victim);
      await cluster.kill(victim);
      report.kills.gateway++;
      log(`kill ${victim.name}`);
      restartLater(victim, downMs());
    } else {
      if (up(cluster.healers).length < cluster.healers.length) return;
      const holder = await send(`${cluster.url}/cluster`).then((a) => (a.json?.healer_leader as string | null) ?? null).catch(() => null);
      const leader = cluster.healers.find((h) => h.pid !== null && holder !== null && holder.startsWith(`healer-${h.pid}-`));
      const victim = leader !== undefined && rng.chance(0.75) ? leader : rng.pick(cluster.healers);
      down.add(victim);
      await cluster.kill(victim);
      report.kills[victim === leader ? 'healer-leader' : 'healer']++;
      log(`kill ${victim.name}${victim === leader ? ' (the leader)' : ''}`);
      restartLater(victim, downMs());
    }
  };

  const runFaults = async (): Promise<void> => {
    while (Date.now() < deadlineMs) {
      await sleep(CHAOS_LIMITS.faultGapMsMin + rng.int(CHAOS_LIMITS.faultGapMsMax - CHAOS_LIMITS.faultGapMsMin));
      if (Date.now() >= deadlineMs) break;
      await fault();
    }
  };

  log(`chaos: seed ${seed}, ${workers} workers x ${keysPerWorker} keys, ${options.durationMs} ms`);
  await Promise.all([runFaults(), ...Array.from({ length: workers }, (_, w) => runWorker(w))]);
  stopped = true;
  // Everything back: pending restarts, then anything still down (a restart that failed is retried here).
  while (restarts.size > 0) await Promise.allSettled([...restarts]);
  for (const proc of cluster.procs()) if (!proc.running) await startWithRetries(proc, log);
  report.durationMs = Date.now() - startedMs;
  log(`load and faults over after ${report.durationMs} ms; checking every key`);
  const protectionStartedMs = Date.now();

  // ---- afterwards: every key reads back exactly ----
  const live: KeyState[] = [];
  for (const state of states.flat()) {
    const isLive = await checkFinal(state, cluster.url, violation);
    if (isLive) live.push(state);
  }
  report.liveKeys = live.length;

  // ---- the healer brings every live key back to full protection ----
  const timeoutMs = options.protectionTimeoutMs ?? 120_000;
  let unprotected: string[] = live.map((s) => s.key);
  while (unprotected.length > 0 && Date.now() - protectionStartedMs < timeoutMs) {
    unprotected = await unprotectedKeys(cluster, live);
    if (unprotected.length > 0) await sleep(CHAOS_LIMITS.protectionPollMs);
  }
  if (unprotected.length === 0) report.protectionMs = Date.now() - protectionStartedMs;
  else violation(`${unprotected.length} key(s) not fully protected ${timeoutMs} ms after every process was back: ${unprotected.slice(0, 5).join(', ')}`);
  log(`done: ${JSON.stringify(report)}`);
  return report;
}

/** Starts a process again; a start can fail under load (a port taken, a slow start), so it is tried a few times. */
async function startWithRetries(proc: Proc, log: (line: string) => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    if (proc.running) return;
    try {
      await proc.start();
      log(`restarted ${proc.name}`);
      return;
    } catch (error) {
      if (attempt >= 3) throw error;
      log(`restarting ${proc.name} failed (${(error as Error).message.split('\n')[0]}); again`);
      await sleep(1_000);
    }
  }
}

/**
 * The final read of a key: its latest acknowledged outcome, or one of the "maybe" outcomes sent after it (which
 * then has a greater version). Returns whether the key holds a document.
 */
async function checkFinal(state: KeyState, base: string, violation: (line: string) => void): Promise<boolean> {
  let answer: Answer | null = null;
  for (let attempt = 0; attempt < CHAOS_LIMITS.finalReadAttemptsMax; attempt++) {
    answer = await send(`${base}/read/${encodeURIComponent(state.key)}`).catch(() => null);
    if (answer !== null && (answer.status === 200 || answer.status === 404)) break;
    await sleep(CHAOS_LIMITS.finalReadRetryMs);
  }
  if (answer === null || (answer.status !== 200 && answer.status !== 404)) {
    violation(`${state.key}: unreadable after the run (${answer?.status ?? 'no answer'}: ${answer?.text.slice(0, 200) ?? ''})`);
    return false;
  }
  const acked = state.acked;
  const maybeDeleted = state.maybes.some((m) => m.doc === null);
  if (answer.status === 404) {
    if (acked !== null && acked.doc !== null && !maybeDeleted) violation(`${state.key}: acknowledged version ${acked.version} is gone (404)`);
    return false;
  }
  const version = BigInt(answer.headers.get('x-strata-version') ?? '0');
  const text = textOf(JSON.parse(answer.text));
  if (acked !== null && version < acked.version) {
    violation(`${state.key}: reads version ${version}, older than acknowledged version ${acked.version}`);
  } else if (acked !== null && version === acked.version) {
    if (acked.doc === null) violation(`${state.key}: the acknowledged delete (version ${version}) came back as a document`);
    else if (text !== textOf(acked.doc)) violation(`${state.key}: version ${version} does not read back exactly as acknowledged`);
  } else if (!state.maybes.some((m) => m.doc !== null && textOf(m.doc) === text)) {
    const was = acked === null ? 'nothing acknowledged' : acked.doc === null ? `acknowledged delete at ${acked.version}` : `acknowledged ${acked.version}`;
    violation(`${state.key}: reads version ${version} whose document no acknowledged or unknown outcome wrote (${was})`);
  }
  return true;
}

interface StatRef {
  node: string;
  blob: string;
  state: string;
}

/**
 * Every replica, shard and copy the manifest names is `ok`, the manifest is clean, and the counts are complete: hot
 * replicas 0 or at least 3 (the healer may add extra copies of a much-read hot part), cold parts 0, 3 (a small cold
 * part kept as whole copies beside the replicas) or 6 (Reed-Solomon shards).
 */
function fullyProtected(stat: { dirty?: boolean; hot?: StatRef[]; cold?: StatRef[] }): boolean {
  const hot = stat.hot ?? [];
  const cold = stat.cold ?? [];
  if (stat.dirty !== false) return false;
  if (!(hot.length === 0 || hot.length >= 3) || ![0, 3, 6].includes(cold.length) || hot.length + cold.length === 0) return false;
  return [...hot, ...cold].every((r) => r.state === 'ok');
}

/** The live keys that are not yet fully protected, judged by /stat and by the nodes' own inventories. */
async function unprotectedKeys(cluster: LocalCluster, live: KeyState[]): Promise<string[]> {
  const held = new Set<string>();
  for (const node of cluster.nodes) {
    if (!node.running) continue;
    let after: string | null = null;
    for (;;) {
      const query: string = after === null ? 'limit=1000' : `limit=1000&after=${encodeURIComponent(after)}`;
      const page = await send(`${node.address}/v1/blobs?${query}`, { headers: { authorization: `Bearer ${cluster.token}` } }).catch(() => null);
      if (page === null || page.status !== 200) break;
      const body = page.json as { blobs: { id: string }[]; next: string | null };
      for (const blob of body.blobs) held.add(`${node.name}/${blob.id}`);
      if (body.next === null) break;
      after = body.next;
    }
  }
  const out: string[] = [];
  for (const state of live) {
    const stat = await send(`${cluster.url}/stat/${encodeURIComponent(state.key)}`).catch(() => null);
    if (stat === null || stat.status !== 200 || !fullyProtected(stat.json)) {
      out.push(state.key);
      continue;
    }
    const refs = [...(stat.json.hot as StatRef[]), ...(stat.json.cold as StatRef[])];
    if (!refs.every((r) => held.has(`${r.node}/${r.blob}`))) out.push(state.key);
  }
  return out;
}

/** The figures of a run as a table, for the test's output and the README. */
export function formatChaosReport(r: ChaosReport): string {
  const rows: [string, string][] = [
    ['seed', String(r.seed)],
    ['duration of load and faults', `${(r.durationMs / 1000).toFixed(1)} s`],
    ['operations', `${Object.values(r.operations).reduce((a, b) => a + b, 0)} (${Object.entries(r.operations).map(([k, v]) => `${k} ${v}`).join(', ')})`],
    ['outcomes', `${r.acknowledged} acknowledged (${r.partialAcks} partial), ${r.maybe} unknown, ${r.refused} refused (503)`],
    ['answers other than 200', Object.entries(r.failures).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'],
    ['kills (SIGKILL)', Object.entries(r.kills).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['faults with two storage nodes down', `${r.doubleNodeFaults} (most down at once: ${r.nodesDownMaxSeen})`],
    ['keys', `${r.keys} (${r.liveKeys} live at the end)`],
    ['back to full protection', r.protectionMs === null ? 'NOT within the bound' : `${(r.protectionMs / 1000).toFixed(1)} s after every process was back`],
    ['violations', r.violations.length === 0 ? 'none: nothing lost' : String(r.violations.length)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
}
