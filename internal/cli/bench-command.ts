/**
 * `strata bench`: a short load of small documents against a running gateway, with the workloads of
 * `npm run bench` (internal/loadgen), printed as a table or as JSON. The full benchmarks, with the deployment
 * started and nodes stopped for the degraded and heal scenarios, are `npm run bench`.
 */
import type { LoadResult } from '../loadgen/node-loadgen.js';
import type { ScenarioName, StrategyName } from '../loadgen/workloads.js';
import type { StrataClient } from '../client/strata-client.js';
import { UsageError, type Command } from './commands.js';
import { startProgress } from './progress.js';
import { formatTable } from './format.js';

const BENCH_SCENARIOS: readonly { name: string; scenario: ScenarioName; strategy: StrategyName }[] = [
  { name: 'write', scenario: 'write', strategy: 'field_hybrid' },
  { name: 'read', scenario: 'read', strategy: 'field_hybrid' },
  { name: 'project', scenario: 'project', strategy: 'field_hybrid' },
  { name: 'hot-patch', scenario: 'hot-patch', strategy: 'field_hybrid' },
  { name: 'ycsb-b', scenario: 'ycsb-b', strategy: 'field_hybrid' },
];

export const CLI_BENCH_LIMITS = { durationSecMax: 600, vusMax: 256, keysMax: 100_000 } as const;

function positiveOption(value: string | boolean | undefined, option: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > max) throw new UsageError(`--${option} must be a number in (0, ${max}]; got ${JSON.stringify(value)}`);
  return n;
}

export const benchCommand: Command = {
  name: 'bench',
  drawsProgress: true,
  synopsis: 'bench [--scenarios write,read,...] [--duration S] [--vus N] [--keys N]',
  summary: 'run a short load of small documents against the gateway and print ops/s and latency',
  details: [
    `  --scenarios LIST   some of ${BENCH_SCENARIOS.map((s) => s.name).join(', ')} (default: all); field_hybrid, small documents`,
    '  --duration S       seconds per scenario (default 3)',
    '  --vus N            concurrent clients (default 16)',
    '  --keys N           keys preloaded for the read and update scenarios (default 200)',
    '  Writes keys under bench/cli-<time>/ and deletes them at the end. The full benchmarks are `npm run bench`.',
    '  With --json: {"url", "vus", "duration_s", "keys", "results"}, a result per scenario.',
  ].join('\n'),
  options: { scenarios: { type: 'string' }, duration: { type: 'string' }, vus: { type: 'string' }, keys: { type: 'string' } },
  positionalsMin: 0,
  positionalsMax: 0,
  async run({ client, json, io, values }) {
    const names = typeof values.scenarios === 'string' ? values.scenarios.split(',').map((s) => s.trim()) : BENCH_SCENARIOS.map((s) => s.name);
    const chosen = names.map((name) => {
      const found = BENCH_SCENARIOS.find((s) => s.name === name);
      if (!found) throw new UsageError(`--scenarios: unknown scenario ${JSON.stringify(name)}; choose from ${BENCH_SCENARIOS.map((s) => s.name).join(', ')}`);
      return found;
    });
    const durationMs = positiveOption(values.duration, 'duration', 3, CLI_BENCH_LIMITS.durationSecMax) * 1000;
    const vus = Math.ceil(positiveOption(values.vus, 'vus', 16, CLI_BENCH_LIMITS.vusMax));
    const keys = Math.ceil(positiveOption(values.keys, 'keys', 200, CLI_BENCH_LIMITS.keysMax));
    const base = { doc: 'small' as const, keys, iotKeys: keys, ycsbKeys: Math.max(2, keys), prefix: `bench/cli-${Date.now()}`, seed: 'strata-cli' };
    // An unreachable or unready gateway fails here with the CLI's usual exit codes, not as a table of errors.
    await client.health();
    // Loaded here, not at the top: its HTTP pool (undici) takes longer to import than any other command takes to run.
    const { keyGroup, preloadGroup, runLoad } = await import('../loadgen/node-loadgen.js');
    const results: (LoadResult & { scenario: string })[] = [];
    const preloaded = new Set<string>();
    const progress = startProgress(io, 'bench', chosen.length);
    try {
      for (const s of chosen) {
        progress.update(results.length, `running ${s.name}`);
        const group = keyGroup({ ...base, scenario: s.scenario, strategy: s.strategy });
        if (group && !preloaded.has(group.group)) {
          await preloadGroup(client.baseUrl, group, base.prefix);
          preloaded.add(group.group);
        }
        results.push({ scenario: s.name, ...(await runLoad({ ...base, scenario: s.scenario, strategy: s.strategy, url: client.baseUrl, vus, durationMs })) });
      }
    } finally {
      progress.finish();
      // The load's documents are the bench's own (a prefix of their own): nothing of them stays behind.
      const removed = await removeUnder(client, base.prefix);
      io.stderr(`strata bench: removed the ${removed} documents it wrote (under ${base.prefix}/)\n`);
    }
    if (json) {
      io.stdout(`${JSON.stringify({ url: client.baseUrl, vus, duration_s: durationMs / 1000, keys, results }, null, 2)}\n`);
      return;
    }
    const f = (n: number, d = 0): string => n.toFixed(d);
    io.stdout(
      formatTable(
        ['SCENARIO', 'OPS/S', 'MB/S', 'P50 MS', 'P95 MS', 'P99 MS', 'ERRORS'],
        results.map((r) => [r.scenario, f(r.opsPerSec), f(r.mbPerSec, 1), f(r.latencyMs.p50, 2), f(r.latencyMs.p95, 2), f(r.latencyMs.p99, 2), String(r.errors)]),
      ),
    );
  },
};

/** Deletes every key under `prefix`, listing it again until it is empty (a write still landing adds one). */
async function removeUnder(client: StrataClient, prefix: string): Promise<number> {
  let removed = 0;
  for (let pass = 0; pass < CLEANUP_PASSES_MAX; pass++) {
    const keys: string[] = [];
    for await (const key of client.listKeys(`${prefix}/`)) keys.push(key);
    if (keys.length === 0) break;
    for (const key of keys) {
      await client.delete(key);
      removed++;
    }
  }
  return removed;
}

/** Listings of the bench's prefix before cleanup gives up (each one finds only what the previous missed). */
const CLEANUP_PASSES_MAX = 3;
