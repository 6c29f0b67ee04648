/**
 * The end-to-end benchmark run: start the deployment, preload the keys the scenarios read and update, run
 * scenarios 1 to 5 of benchmarks.md on it, run scenario 6 (heal) on a fresh deployment of the same mode (so that
 * "fully protected" covers exactly the heal's data), then compute the bars and aims.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { keyGroup, preloadGroup, runLoad, type LoadResult, type LoadSpec } from '../../internal/loadgen/node-loadgen.js';
import type { DocKind, ScenarioName, StrategyName } from '../../internal/loadgen/workloads.js';
import { findK6, ensureK6, K6_VERSION } from '../../scripts/infra/k6.js';
import { startAllInOneTarget } from './all-in-one-target.js';
import { computeAims, computeBars } from './bars.js';
import { startClusterTarget } from './cluster-target.js';
import { runHeal } from './heal.js';
import { runSlowClients } from './slow-clients.js';
import { allInOneMetrics } from './metrics-scrape.js';
import { runK6Load } from './k6-runner.js';
import { machineInfo } from './machine.js';
import { listInventories, newShardBytes } from './node-inventory.js';
import { waitForNodeStates } from './node-states.js';
import { RESULT_FORMAT_VERSION, type BenchResult, type ScenarioResult } from './result.js';
import { RssSampler } from './rss.js';
import type { BenchSettings } from './settings.js';
import type { BenchProcess, BenchTarget, TargetOptions } from './target.js';

const STRATEGY_LIST: StrategyName[] = ['replication', 'ec', 'field_hybrid'];
/** Two of six, in different zones of the cluster mode (node-1/2 zone-a, 3/4 zone-b, 5/6 zone-c). */
const DEGRADED_NODES = ['node-2', 'node-5'];
const HEAL_NODE = 'node-3';

interface Step {
  group: number;
  id: string;
  scenario: ScenarioName;
  strategy: StrategyName;
  doc: DocKind;
  vus: number;
  countColdBytes?: boolean;
}

export interface BenchIo {
  log(line: string): void;
}

function plan(s: BenchSettings): Step[] {
  const steps: Step[] = [];
  const want = (g: number): boolean => s.groups.includes(g);
  if (want(1)) {
    for (const doc of ['small', 'iot', 'large'] as DocKind[]) {
      for (const strategy of STRATEGY_LIST) steps.push({ group: 1, id: `write/${strategy}/${doc}`, scenario: 'write', strategy, doc, vus: doc === 'large' ? s.vusLarge : s.vus });
    }
  }
  if (want(2)) {
    for (const doc of ['small', 'iot'] as DocKind[]) {
      for (const scenario of ['hot-patch', 'hot-post'] as ScenarioName[]) {
        steps.push({ group: 2, id: `${scenario}/${doc}`, scenario, strategy: 'field_hybrid', doc, vus: s.vus, countColdBytes: true });
      }
    }
  }
  const reads = (group: number, prefix: string): Step[] => [
    ...STRATEGY_LIST.map((strategy): Step => ({ group, id: `${prefix}read/${strategy}`, scenario: 'read', strategy, doc: 'small', vus: s.vus })),
    { group, id: `${prefix}project/field_hybrid`, scenario: 'project', strategy: 'field_hybrid', doc: 'small', vus: s.vus },
  ];
  if (want(3)) steps.push(...reads(3, ''));
  if (want(4)) {
    for (const scenario of ['ycsb-a', 'ycsb-b'] as ScenarioName[]) steps.push({ group: 4, id: scenario, scenario, strategy: 'field_hybrid', doc: 'small', vus: s.vus });
  }
  if (want(5)) steps.push(...reads(5, 'degraded/'));
  return steps;
}

async function startTarget(s: BenchSettings, dataRoot: string, name: string, env: Record<string, string>, io: BenchIo, profile: boolean): Promise<BenchTarget> {
  const options: TargetOptions = { dataDir: path.join(dataRoot, name), env, log: io.log };
  if (profile && s.cpuProfDir) options.cpuProfDir = path.resolve(s.cpuProfDir);
  io.log(`starting the ${s.mode} deployment (${name})`);
  return s.mode === 'cluster' ? startClusterTarget(options) : startAllInOneTarget(options);
}

async function chooseLoadGenerator(s: BenchSettings, io: BenchIo): Promise<{ tool: 'k6' | 'node'; k6: string | null }> {
  if (s.loadGenerator === 'node') return { tool: 'node', k6: null };
  if (s.loadGenerator === 'k6') return { tool: 'k6', k6: await ensureK6({ log: io.log }) };
  const k6 = await findK6();
  if (k6 === null) io.log(`k6 ${K6_VERSION} is not built (npm run bench -- --loadgen k6 builds it); using the in-repo load generator`);
  return k6 ? { tool: 'k6', k6 } : { tool: 'node', k6: null };
}

export async function runBench(s: BenchSettings, io: BenchIo, command: string): Promise<{ result: BenchResult; file: string }> {
  const startedAt = new Date();
  const machine = await machineInfo();
  const loadGen = await chooseLoadGenerator(s, io);
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'strata-bench-'));
  const runId = startedAt.toISOString().replace(/[-:.]/g, '').slice(0, 15);
  const prefix = `bench/${runId}`;
  const scenarios: ScenarioResult[] = [];
  const steps = plan(s);
  let target: BenchTarget | null = null;
  let deployment = '';
  let backends = { metadata: '', wal: '' };
  let loadProcess: BenchProcess | null = null;

  const measure = async (step: Step, t: BenchTarget, nodesDown: number): Promise<ScenarioResult> => {
    const spec: LoadSpec = {
      url: t.url,
      scenario: step.scenario,
      strategy: step.strategy,
      doc: step.doc,
      keys: s.keys,
      iotKeys: s.iotKeys,
      ycsbKeys: s.ycsbKeys,
      prefix,
      seed: s.seed,
      vus: step.vus,
      durationMs: s.durationMs,
    };
    const before = step.countColdBytes ? await listInventories(t) : null;
    const cacheBefore = await readCacheCounters(t);
    const sampler = new RssSampler(() => [...t.processes(), ...(loadProcess ? [loadProcess] : [{ name: 'load-generator', pid: process.pid }])]);
    sampler.start();
    let load: LoadResult;
    try {
      // k6's JavaScript engine spends seconds per VU building and copying multi-megabyte bodies, which would
      // measure k6 rather than Strata: iot and large documents always go through the in-repo generator.
      const useK6 = loadGen.k6 !== null && (keyGroup({ ...step, keys: s.keys, iotKeys: s.iotKeys, ycsbKeys: s.ycsbKeys })?.kind ?? step.doc) === 'small';
      load = useK6 ? await runK6Load(loadGen.k6!, spec, (p) => (loadProcess = p)) : await runLoad(spec);
    } finally {
      loadProcess = null;
    }
    const peakRssBytes = await sampler.stop();
    const result: ScenarioResult = {
      ...load,
      id: step.id,
      group: step.group,
      scenario: step.scenario,
      strategy: step.strategy,
      doc: step.doc,
      vus: step.vus,
      nodesDown,
      peakRssBytes,
    };
    if (before) result.coldBytesWritten = newShardBytes(before, await listInventories(t));
    const memory = await processMemory(t);
    if (memory) result.memoryAtEnd = memory;
    const cacheAfter = await readCacheCounters(t);
    if (cacheBefore && cacheAfter && step.scenario !== 'write' && !step.countColdBytes) {
      const hits = cacheAfter.hits - cacheBefore.hits;
      const lookups = hits + cacheAfter.misses - cacheBefore.misses;
      if (lookups > 0) result.readCacheHitRate = hits / lookups;
    }
    const errors = load.errors > 0 ? `, ${load.errors} errors (${load.errorSamples.join('; ')})` : '';
    io.log(`${step.id}: ${load.opsPerSec.toFixed(0)} ops/s, p50 ${load.latencyMs.p50.toFixed(2)} ms, p99 ${load.latencyMs.p99.toFixed(2)} ms${errors}`);
    return result;
  };

  try {
    if (steps.length > 0) {
      target = await startTarget(s, dataRoot, 'main', { STRATA_READ_CACHE_BYTES: String(s.readCacheBytes) }, io, true);
      deployment = target.description;
      backends = target.backends;
      const groups = new Map<string, NonNullable<ReturnType<typeof keyGroup>>>();
      for (const step of steps) {
        const g = keyGroup({ ...step, keys: s.keys, iotKeys: s.iotKeys, ycsbKeys: s.ycsbKeys });
        if (g) groups.set(g.group, g);
      }
      for (const g of groups.values()) {
        io.log(`preloading ${g.keys} ${g.kind} documents (${g.strategy}) for ${g.group}`);
        await preloadGroup(target.url, g, prefix);
      }
      let down = 0;
      for (const step of steps) {
        if (step.group === 5 && down === 0) {
          io.log(`stopping ${DEGRADED_NODES.join(' and ')} for the degraded reads`);
          for (const id of DEGRADED_NODES) await target.stopNode(id);
          down = DEGRADED_NODES.length;
          await waitForNodeStates(target, { down });
        }
        scenarios.push(await measure(step, target, down));
      }
      if (down > 0) {
        for (const id of DEGRADED_NODES) await target.startNode(id, { empty: false });
        await waitForNodeStates(target, { down: 0 });
      }
      await target.stop();
      target = null;
    }
    /** A scenario on a deployment of its own: started, its processes' RSS sampled while `run` runs, then stopped. */
    const onFreshDeployment = async (name: string, env: Record<string, string>, run: (t: BenchTarget) => Promise<Omit<ScenarioResult, 'peakRssBytes'>>): Promise<void> => {
      const t = await startTarget(s, dataRoot, name, env, io, false);
      target = t;
      deployment ||= t.description;
      if (!backends.metadata) backends = t.backends;
      const sampler = new RssSampler(() => [...t.processes(), { name: 'load-generator', pid: process.pid }]);
      sampler.start();
      const result = await run(t);
      scenarios.push({ ...result, peakRssBytes: await sampler.stop() });
      await t.stop();
      target = null;
    };
    if (s.groups.includes(6)) {
      const env = { STRATA_HEALER_INTERVAL_MS: String(s.healerIntervalMs), STRATA_AUDIT_INTERVAL_MS: String(s.auditIntervalMs) };
      await onFreshDeployment('heal', env, async (t) => {
        const heal = await runHeal(t, { prefix, healBytes: s.healBytes, node: HEAL_NODE, log: io.log });
        return {
          id: 'heal',
          group: 6,
          scenario: 'heal',
          strategy: 'field_hybrid',
          doc: 'iot',
          vus: 16,
          nodesDown: 1,
          tool: 'node',
          requests: heal.keys,
          errors: heal.healed ? 0 : heal.unprotectedKeys,
          errorSamples: [],
          // The figures of a heal are the repair's: its duration and rebuilt MB/s (the writes are in `heal`).
          durationSeconds: heal.healSeconds,
          opsPerSec: heal.writesPerSec,
          mbPerSec: heal.repairMbPerSec,
          bytesSent: heal.bytesWritten,
          bytesReceived: 0,
          latencyMs: { p50: 0, p95: 0, p99: 0, max: 0 },
          heal,
        };
      });
    }
    if (s.groups.includes(7)) {
      const env: Record<string, string> = {
        STRATA_SOCKET_IDLE_TIMEOUT_MS: String(s.slowIdleTimeoutMs),
        STRATA_WATCH_HEARTBEAT_MS: String(Math.floor(s.slowIdleTimeoutMs / 2)),
        STRATA_READ_CACHE_BYTES: String(s.readCacheBytes),
      };
      if (s.slowBudgetBytes !== null) env['STRATA_BODY_BUFFER_BYTES_MAX'] = String(s.slowBudgetBytes);
      await onFreshDeployment('slow-clients', env, async (t) => {
        const { load, ...slowClients } = await runSlowClients(t, {
          prefix,
          clients: s.slowClients,
          vus: s.vus,
          durationMs: s.durationMs,
          seed: s.seed,
          idleTimeoutMs: s.slowIdleTimeoutMs,
          log: io.log,
        });
        io.log(`slow-clients: small writes ${load.opsPerSec.toFixed(0)} ops/s beside them, p99 ${load.latencyMs.p99.toFixed(2)} ms, ${load.errors} errors`);
        return { ...load, id: 'slow-clients', group: 7, scenario: 'write', strategy: 'field_hybrid', doc: 'small', vus: s.vus, nodesDown: 0, slowClients };
      });
    }
  } finally {
    await target?.stop().catch((err: Error) => io.log(`stopping the deployment failed: ${err.message}`));
    await rm(dataRoot, { recursive: true, force: true });
  }

  const result: BenchResult = {
    format: RESULT_FORMAT_VERSION,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command,
    machine,
    mode: s.mode,
    deployment,
    backends,
    loadGenerator: { tool: loadGen.tool, version: loadGen.tool === 'k6' ? K6_VERSION : null },
    settings: s,
    scenarios,
    bars: computeBars(scenarios),
    aims: computeAims(scenarios, s.mode),
  };
  const file = path.resolve(s.out ?? path.join('bench-results', `bench-${s.mode}${s.quick ? '-quick' : ''}-${runId}.json`));
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  return { result, file };
}

/** The gateway's read cache counters: only the all-in-one's single gateway gives a whole figure. */
function readCacheCounters(t: BenchTarget): Promise<{ hits: number; misses: number } | null> {
  return allInOneMetrics(t, { hits: 'strata_read_cache_hits_total', misses: 'strata_read_cache_misses_total' });
}

/** What the all-in-one's memory is made of at the end of a scenario (its RSS is sampled apart). */
function processMemory(t: BenchTarget): Promise<{ heapUsedBytes: number; externalBytes: number } | null> {
  return allInOneMetrics(t, { heapUsedBytes: 'nodejs_heap_size_used_bytes', externalBytes: 'nodejs_external_memory_bytes' });
}
