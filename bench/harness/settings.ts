/** `npm run bench` options: parsed, checked against named limits, and recorded in the JSON result. */
import { parseArgs } from 'node:util';
import type { BenchMode } from './target.js';

export type LoadGenChoice = 'auto' | 'k6' | 'node';

export interface BenchSettings {
  mode: BenchMode;
  quick: boolean;
  loadGenerator: LoadGenChoice;
  /** Length of each measured load. */
  durationMs: number;
  /** Virtual users (closed-loop clients) for small and iot documents. */
  vus: number;
  /** Virtual users for 8 MiB documents (each holds a document in flight). */
  vusLarge: number;
  /** Keys per read group and per small hot-update group. */
  keys: number;
  /** Keys of the iot hot-update group (800 KiB each). */
  iotKeys: number;
  /** Key space of the YCSB mixes. */
  ycsbKeys: number;
  /** Logical bytes written while one node is down, in the heal scenario. */
  healBytes: number;
  /** Scenario groups to run (1..6 of benchmarks.md; 7 = slow clients, slow-clients.ts). */
  groups: number[];
  /** Scenario 7: clients that request an 8 MiB document and stop reading. */
  slowClients: number;
  /** Scenario 7's STRATA_SOCKET_IDLE_TIMEOUT_MS, short so that the release is measured within the run. */
  slowIdleTimeoutMs: number;
  /** Scenario 7's STRATA_BODY_BUFFER_BYTES_MAX; null = the gateway's default. */
  slowBudgetBytes: number | null;
  /** Healer timings of the heal scenario's deployment, so that a rebuild starts within seconds. */
  healerIntervalMs: number;
  auditIntervalMs: number;
  /** Directory for `node --cpu-prof` profiles of the all-in-one process; null = no profile. */
  cpuProfDir: string | null;
  /**
   * The gateways' read cache (STRATA_READ_CACHE_BYTES). Off by default: the scenarios' key spaces fit in the
   * default cache, which would measure memory rather than the read protocol the bars are about.
   */
  readCacheBytes: number;
  out: string | null;
  seed: string;
}

export const BENCH_LIMITS = {
  durationMsMax: 600_000,
  vusMax: 1024,
  keysMax: 1_000_000,
  healBytesMax: 64 * 1024 ** 3,
  slowClientsMax: 1000,
} as const;

/** Every scenario group: benchmarks.md's 1..6, and 7 (slow clients). */
export const ALL_GROUPS = [1, 2, 3, 4, 5, 6, 7] as const;

export const FULL_DEFAULTS = { durationMs: 10_000, vus: 32, vusLarge: 4, keys: 1000, iotKeys: 100, ycsbKeys: 10_000, healBytes: 1024 ** 3 } as const;
/** `--quick`: a smoke check of every scenario in under two minutes on a 2-core machine. */
export const QUICK_DEFAULTS = { durationMs: 1000, vus: 32, vusLarge: 4, keys: 200, iotKeys: 20, ycsbKeys: 500, healBytes: 32 * 1024 ** 2 } as const;

export class BenchUsageError extends Error {
  override name = 'BenchUsageError';
}

export const BENCH_USAGE = `Usage: npm run bench -- [options]          the end-to-end scenarios of shared/design/benchmarks.md
       npm run bench -- blobstore [--quick]  the storage node's blob store benchmark (bench/blobstore-bench.ts)

  --mode all-in-one|cluster   what to start (default all-in-one; cluster = npm run cluster's processes)
  --quick                     short loads and small key spaces: a smoke check (under 2 minutes)
  --loadgen auto|k6|node      k6 with benchmark.js, or the in-repo generator (auto: k6 when built; k6 builds it)
  --duration S                seconds per measured load (default ${FULL_DEFAULTS.durationMs / 1000}, quick ${QUICK_DEFAULTS.durationMs / 1000})
  --vus N, --vus-large N      clients for small/iot and for 8 MiB documents (default ${FULL_DEFAULTS.vus}, ${FULL_DEFAULTS.vusLarge})
  --keys N, --iot-keys N, --ycsb-keys N   key spaces (default ${FULL_DEFAULTS.keys}, ${FULL_DEFAULTS.iotKeys}, ${FULL_DEFAULTS.ycsbKeys})
  --heal-mib N                MiB written while a node is down in the heal scenario (default ${FULL_DEFAULTS.healBytes / 1024 ** 2})
  --only 1,3,...              scenario groups to run (default all: 1..6 of benchmarks.md, 7 = slow clients)
  --slow-clients N            clients that stop reading an 8 MiB document in scenario 7 (default 64)
  --slow-budget-mib N         the gateway's body budget in scenario 7 (default: STRATA_BODY_BUFFER_BYTES_MAX's default)
  --cpu-prof DIR              write a V8 CPU profile of the all-in-one process to DIR
  --read-cache-mib N          the gateways' read cache (default 0: reads measure the nodes, not memory)
  --out FILE                  the JSON result (default bench-results/bench-<mode>[-quick]-<time>.json)
`;

function num(value: string | undefined, name: string, min: number, max: number, fallback: number, scale = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value) * scale;
  if (!Number.isFinite(n) || n < min || n > max) throw new BenchUsageError(`--${name} must be a number in ${min / scale}..${max / scale}; got ${JSON.stringify(value)}`);
  return n;
}

export function parseBenchArgs(argv: readonly string[]): BenchSettings {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        mode: { type: 'string' },
        quick: { type: 'boolean' },
        loadgen: { type: 'string' },
        duration: { type: 'string' },
        vus: { type: 'string' },
        'vus-large': { type: 'string' },
        keys: { type: 'string' },
        'iot-keys': { type: 'string' },
        'ycsb-keys': { type: 'string' },
        'heal-mib': { type: 'string' },
        only: { type: 'string' },
        'slow-clients': { type: 'string' },
        'slow-budget-mib': { type: 'string' },
        'cpu-prof': { type: 'string' },
        'read-cache-mib': { type: 'string' },
        out: { type: 'string' },
        seed: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }) as { values: Record<string, string | boolean | undefined> });
  } catch (error) {
    throw new BenchUsageError((error as Error).message);
  }
  const str = (name: string): string | undefined => values[name] as string | undefined;
  const mode = str('mode') ?? 'all-in-one';
  if (mode !== 'all-in-one' && mode !== 'cluster') throw new BenchUsageError(`--mode must be all-in-one or cluster; got ${JSON.stringify(mode)}`);
  const loadGenerator = str('loadgen') ?? 'auto';
  if (loadGenerator !== 'auto' && loadGenerator !== 'k6' && loadGenerator !== 'node') {
    throw new BenchUsageError(`--loadgen must be auto, k6 or node; got ${JSON.stringify(loadGenerator)}`);
  }
  const quick = values.quick === true;
  const d = quick ? QUICK_DEFAULTS : FULL_DEFAULTS;
  const groups = (str('only') ?? ALL_GROUPS.join(',')).split(',').map((g) => Number(g.trim()));
  if (groups.some((g) => !(ALL_GROUPS as readonly number[]).includes(g))) {
    throw new BenchUsageError(`--only takes scenario numbers ${ALL_GROUPS[0]}..${ALL_GROUPS[ALL_GROUPS.length - 1]}; got ${JSON.stringify(str('only'))}`);
  }
  const cpuProf = str('cpu-prof');
  if (cpuProf !== undefined && mode !== 'all-in-one') throw new BenchUsageError('--cpu-prof profiles the all-in-one process; use it with --mode all-in-one');
  return {
    mode,
    quick,
    loadGenerator,
    durationMs: num(str('duration'), 'duration', 100, BENCH_LIMITS.durationMsMax, d.durationMs, 1000),
    vus: num(str('vus'), 'vus', 1, BENCH_LIMITS.vusMax, d.vus),
    vusLarge: num(str('vus-large'), 'vus-large', 1, BENCH_LIMITS.vusMax, d.vusLarge),
    keys: num(str('keys'), 'keys', 1, BENCH_LIMITS.keysMax, d.keys),
    iotKeys: num(str('iot-keys'), 'iot-keys', 1, BENCH_LIMITS.keysMax, d.iotKeys),
    ycsbKeys: num(str('ycsb-keys'), 'ycsb-keys', 2, BENCH_LIMITS.keysMax, d.ycsbKeys),
    healBytes: num(str('heal-mib'), 'heal-mib', 1024 ** 2, BENCH_LIMITS.healBytesMax, d.healBytes, 1024 ** 2),
    groups: [...new Set(groups)].sort(),
    slowClients: num(str('slow-clients'), 'slow-clients', 1, BENCH_LIMITS.slowClientsMax, 64),
    slowIdleTimeoutMs: 5000,
    slowBudgetBytes: str('slow-budget-mib') === undefined ? null : num(str('slow-budget-mib'), 'slow-budget-mib', 1024 ** 2, 64 * 1024 ** 3, 0, 1024 ** 2),
    healerIntervalMs: 250,
    auditIntervalMs: 1000,
    cpuProfDir: cpuProf ?? null,
    readCacheBytes: num(str('read-cache-mib'), 'read-cache-mib', 0, 64 * 1024 ** 3, 0, 1024 ** 2),
    out: str('out') ?? null,
    seed: str('seed') ?? 'strata',
  };
}
