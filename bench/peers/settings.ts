/** `npm run bench -- peers` options: parsed, checked against named limits, and recorded in the JSON result. */
import { parseArgs } from 'node:util';

/** The deployments compared, in the order of odd rounds (even rounds run them in reverse, so that drift cancels). */
export const SYSTEM_IDS = ['strata-field_hybrid', 'seaweedfs-one-copy', 'strata-replication', 'seaweedfs-three-copies'] as const;
export type SystemId = (typeof SYSTEM_IDS)[number];

export const FIGURE_IDS = ['write-1k', 'read-1k', 'write-100k', 'read-100k'] as const;
export type FigureId = (typeof FIGURE_IDS)[number];

export interface PeersSettings {
  /** Each round runs every system alone, one after the other; figures are medians over rounds. */
  rounds: number;
  /** Measured time per figure. */
  durationMs: number;
  /** Time the load runs before it is measured (connections opened, caches and JITs warm). */
  warmupMs: number;
  smallBytes: number;
  largeBytes: number;
  /** Closed-loop clients for 1 KiB and for 100 KiB documents. */
  smallClients: number;
  largeClients: number;
  /** Documents preloaded for each read figure. */
  keys: number;
  systems: SystemId[];
  /** STRATA_READ_CACHE_BYTES of the all-in-one; null = Strata's default, as `npm start` runs it. */
  readCacheBytes: number | null;
  /**
   * The Content-Type of SeaweedFS uploads. application/octet-stream stores them as sent; with application/json
   * SeaweedFS gzips each one that shrinks by a tenth (the documents' base64 text does) and un-gzips it on every
   * read, which measured 4x slower on 100 KiB reads here. Strata always gets application/json (its API needs it).
   */
  seaweedfsContentType: string;
  out: string | null;
  seed: number;
}

export const PEERS_LIMITS = {
  roundsMax: 100,
  durationMsMax: 600_000,
  clientsMax: 1024,
  keysMax: 1_000_000,
} as const;

export const PEERS_DEFAULTS = { rounds: 2, durationMs: 20_000, warmupMs: 2_000, smallClients: 16, largeClients: 8, keys: 1000 } as const;

export class PeersUsageError extends Error {
  override name = 'PeersUsageError';
}

export const PEERS_USAGE = `Usage: npm run bench -- peers [options]
  Strata's all-in-one against SeaweedFS (built from a pinned commit into ~/.cache/strata/seaweedfs/), each system
  alone, alternating, with the same Go load generator (bench/peers/loadgen/); prints medians and ratios.

  --rounds N           rounds; each runs every system once (default ${PEERS_DEFAULTS.rounds}; quote medians of at least 2)
  --duration S         measured seconds per figure (default ${PEERS_DEFAULTS.durationMs / 1000})
  --warmup S           seconds of load before each measurement (default ${PEERS_DEFAULTS.warmupMs / 1000})
  --clients N          clients for 1 KiB documents (default ${PEERS_DEFAULTS.smallClients})
  --clients-large N    clients for 100 KiB documents (default ${PEERS_DEFAULTS.largeClients})
  --keys N             documents preloaded for each read figure (default ${PEERS_DEFAULTS.keys})
  --only a,b           systems to run (default all: ${SYSTEM_IDS.join(', ')})
  --read-cache-mib N   Strata's read cache (default: Strata's own default)
  --seaweedfs-content-type T
                       Content-Type of SeaweedFS uploads (default application/octet-stream: stored as sent;
                       application/json lets SeaweedFS gzip them, and un-gzip them on every read)
  --out FILE           the JSON result (default bench-results/peers-<time>.json)
  --seed N             randomness of documents and read keys (default 1)
`;

function num(value: string | undefined, name: string, min: number, max: number, fallback: number, scale = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value) * scale;
  if (!Number.isFinite(n) || n < min || n > max) throw new PeersUsageError(`--${name} must be a number in ${min / scale}..${max / scale}; got ${JSON.stringify(value)}`);
  return n;
}

function whole(value: string | undefined, name: string, min: number, max: number, fallback: number): number {
  const n = num(value, name, min, max, fallback);
  if (!Number.isInteger(n)) throw new PeersUsageError(`--${name} must be a whole number; got ${JSON.stringify(value)}`);
  return n;
}

function contentType(value: string): string {
  if (!/^[\w.+-]+\/[\w.+-]+$/.test(value)) throw new PeersUsageError(`--seaweedfs-content-type must be a media type such as application/json; got ${JSON.stringify(value)}`);
  return value;
}

export function parsePeersArgs(argv: readonly string[]): PeersSettings {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        rounds: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        clients: { type: 'string' },
        'clients-large': { type: 'string' },
        keys: { type: 'string' },
        only: { type: 'string' },
        'read-cache-mib': { type: 'string' },
        'seaweedfs-content-type': { type: 'string' },
        out: { type: 'string' },
        seed: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }) as { values: Record<string, string | undefined> });
  } catch (error) {
    throw new PeersUsageError((error as Error).message);
  }
  const systems = (values['only'] ?? SYSTEM_IDS.join(',')).split(',').map((s) => s.trim());
  for (const s of systems) {
    if (!(SYSTEM_IDS as readonly string[]).includes(s)) throw new PeersUsageError(`--only takes ${SYSTEM_IDS.join(', ')}; got ${JSON.stringify(s)}`);
  }
  const cache = values['read-cache-mib'];
  return {
    rounds: whole(values['rounds'], 'rounds', 1, PEERS_LIMITS.roundsMax, PEERS_DEFAULTS.rounds),
    durationMs: Math.round(num(values['duration'], 'duration', 100, PEERS_LIMITS.durationMsMax, PEERS_DEFAULTS.durationMs, 1000)),
    warmupMs: Math.round(num(values['warmup'], 'warmup', 0, PEERS_LIMITS.durationMsMax, PEERS_DEFAULTS.warmupMs, 1000)),
    smallBytes: 1024,
    largeBytes: 100 * 1024,
    smallClients: whole(values['clients'], 'clients', 1, PEERS_LIMITS.clientsMax, PEERS_DEFAULTS.smallClients),
    largeClients: whole(values['clients-large'], 'clients-large', 1, PEERS_LIMITS.clientsMax, PEERS_DEFAULTS.largeClients),
    keys: whole(values['keys'], 'keys', 1, PEERS_LIMITS.keysMax, PEERS_DEFAULTS.keys),
    // In the order of SYSTEM_IDS whatever the order given, so that rounds alternate the same way.
    systems: SYSTEM_IDS.filter((s) => systems.includes(s)),
    readCacheBytes: cache === undefined ? null : num(cache, 'read-cache-mib', 0, 64 * 1024 ** 3, 0, 1024 ** 2),
    seaweedfsContentType: contentType(values['seaweedfs-content-type'] ?? 'application/octet-stream'),
    out: values['out'] ?? null,
    seed: whole(values['seed'], 'seed', 0, Number.MAX_SAFE_INTEGER, 1),
  };
}
