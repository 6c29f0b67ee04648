/**
 * The `strata` subcommands. Each one parses nothing itself (strata-cli.ts does), calls StrataClient, and prints
 * either a human view or, with `--json`, one JSON document a script can parse.
 */
import { randomUUID } from 'node:crypto';
import type { ParseArgsConfig } from 'node:util';
import { EC_DATA_SHARDS } from '../core/limits.js';
import type { StatResult, Strategy, StrataClient } from '../client/strata-client.js';
import { formatBytes, formatFields, formatTable } from './format.js';
import { benchCommand } from './bench-command.js';
import { verifyCommand } from './verify-command.js';
import { adminCommand } from './admin-command.js';
import { policyCommand } from './policy-command.js';
import { rmCommand } from './rm-command.js';
import { watchCommand } from './watch-command.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readStdin(): Promise<string>;
  readFile(path: string): Promise<string>;
  /** Redraws a one-line progress report (an empty line clears it); absent when stderr is not a terminal. */
  progress?(line: string): void;
  /** Asks a yes/no question on the terminal; absent when stdin is not one (a command then needs --yes). */
  confirm?(question: string): Promise<boolean>;
  /** Milliseconds, for progress timing; default Date.now. Injected by tests. */
  now?(): number;
}

export interface CommandContext {
  client: StrataClient;
  json: boolean;
  io: CliIo;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export interface Command {
  name: string;
  /** `strata put KEY FILE|-`: the synopsis after `strata`. */
  synopsis: string;
  summary: string;
  /** Option lines and notes for `strata CMD --help`. */
  details: string;
  options: NonNullable<ParseArgsConfig['options']>;
  positionalsMin: number;
  positionalsMax: number;
  /**
   * The command shows its own progress (a bar, or output as it goes); the others get a "waiting for the gateway"
   * line on a terminal when an answer takes longer than a second.
   */
  drawsProgress?: true;
  /** Resolves to an exit code when the command's finding is not plain success (e.g. verify found problems). */
  run(ctx: CommandContext): Promise<number | void>;
}

/** `strata health` when the gateway answers but is not ready: the same code as an unreachable one. */
const EXIT_NOT_READY = 4;

/** Bad arguments: exit code 2, with the command's usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const STRATEGIES: readonly Strategy[] = ['replication', 'ec', 'field_hybrid'];

/**
 * Every mutating command sends a fresh Idempotency-Key, which makes it safe for the client to retry after a 503
 * or a dropped connection: a repeat returns the first attempt's outcome instead of applying twice.
 */
export function idempotencyKey(): string {
  return `strata-cli-${randomUUID()}`;
}

async function readInput(io: CliIo, source: string): Promise<string> {
  if (source === '-') return io.readStdin();
  try {
    return await io.readFile(source);
  } catch (error) {
    throw new UsageError(`cannot read ${source}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

export function fieldListOption(value: string | boolean | undefined, option: string): string[] | undefined {
  if (typeof value !== 'string') return undefined;
  const fields = value.split(',').map((f) => f.trim());
  if (fields.some((f) => f === '')) throw new UsageError(`--${option} has an empty entry: ${JSON.stringify(value)}`);
  return fields;
}

/** `--ttl MS`: the server checks the range (INVALID_TTL); this only catches what is not a number at all. */
function ttlOption(value: string | boolean | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--ttl takes a time to live in milliseconds, e.g. 3600000 for an hour; got ${JSON.stringify(value)}`);
  return Number(value);
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

function describeWrite(r: { key: string; version: string; strategy: string; is_pure_hot_update: boolean; hot_fields: string[]; bytes: { logical: number; hot: number; cold: number }; partial: boolean }): string {
  const hot = r.hot_fields.length > 0 ? r.hot_fields.join(', ') : 'none';
  const notes = [r.is_pure_hot_update ? 'pure hot update: cold shards untouched' : '', r.partial ? 'partial: the healer completes the missing copies' : '']
    .filter(Boolean)
    .map((n) => `; ${n}`)
    .join('');
  return `${r.key}: version ${r.version}, ${r.strategy}, ${formatBytes(r.bytes.logical)} (hot ${formatBytes(r.bytes.hot)}, cold ${formatBytes(r.bytes.cold)}), hot fields: ${hot}${notes}\n`;
}

const put: Command = {
  name: 'put',
  synopsis: 'put KEY FILE|- [--strategy S] [--hot a,/b/c] [--ttl MS]',
  summary: 'store a JSON object from a file or stdin',
  details: [
    '  --strategy S   replication | ec | field_hybrid (default: the key\'s current one, else the server default)',
    '  --hot a,/b/c   hot fields: plain member names or JSON Pointers, comma-separated',
    '  --ttl MS       time to live: the document reads as absent MS milliseconds from now',
    '  FILE is sent byte for byte, so numbers keep their digits; - reads stdin. With --json: the API body.',
  ].join('\n'),
  options: { strategy: { type: 'string' }, hot: { type: 'string' }, ttl: { type: 'string' } },
  positionalsMin: 2,
  positionalsMax: 2,
  async run({ client, json, io, values, positionals }) {
    const [key, source] = positionals as [string, string];
    const strategy = values.strategy;
    if (strategy !== undefined && !STRATEGIES.includes(strategy as Strategy)) {
      throw new UsageError(`--strategy must be one of ${STRATEGIES.join(', ')}; got ${JSON.stringify(strategy)}`);
    }
    const hotFields = fieldListOption(values.hot, 'hot');
    const ttlMs = ttlOption(values.ttl);
    const body = await readInput(io, source);
    const result = await client.write(key, body, {
      ...(strategy !== undefined ? { strategy: strategy as Strategy } : {}),
      ...(hotFields ? { hotFields } : {}),
      ...(ttlMs !== undefined ? { ttlMs } : {}),
      idempotencyKey: idempotencyKey(),
    });
    if (json) printJson(io, result);
    else io.stdout(describeWrite(result));
  },
};

const get: Command = {
  name: 'get',
  synopsis: 'get KEY [--fields a,/b/c]',
  summary: 'print a document (or some of its fields)',
  details: [
    '  --fields a,/b/c   only these fields (plain names or JSON Pointers); all-hot fields never touch the cold tier',
    '  Prints the document exactly as stored (numbers keep their digits). With --json: {"key", "version",',
    '  "strategy", "cold_read", "doc"}.',
  ].join('\n'),
  options: { fields: { type: 'string' } },
  positionalsMin: 1,
  positionalsMax: 1,
  async run({ client, json, io, values, positionals }) {
    const key = positionals[0]!;
    const fields = fieldListOption(values.fields, 'fields');
    const result = await client.read(key, fields ? { fields } : {});
    if (json) {
      // The document is spliced in as text, not re-serialised, so that big numbers keep their digits.
      const head = JSON.stringify({ key, version: result.version, strategy: result.strategy, cold_read: result.coldRead });
      io.stdout(`${head.slice(0, -1)},"doc":${result.text}}\n`);
    } else {
      io.stdout(`${result.text}\n`);
    }
  },
};

const patch: Command = {
  name: 'patch',
  synopsis: 'patch KEY FILE|- [--merge | --json-patch] [--ttl MS]',
  summary: 'apply a JSON Merge Patch or a JSON Patch',
  details: [
    '  --merge        the input is a JSON Merge Patch (RFC 7396)',
    '  --json-patch   the input is a JSON Patch (RFC 6902)',
    '  --ttl MS       a new time to live, counted from now (without it the document keeps its expiry)',
    '  Without --merge or --json-patch, an object is a Merge Patch and an array a JSON Patch.',
  ].join('\n'),
  options: { merge: { type: 'boolean' }, 'json-patch': { type: 'boolean' }, ttl: { type: 'string' } },
  positionalsMin: 2,
  positionalsMax: 2,
  async run({ client, json, io, values, positionals }) {
    const [key, source] = positionals as [string, string];
    if (values.merge && values['json-patch']) throw new UsageError('--merge and --json-patch exclude each other');
    const kind = values.merge ? 'merge-patch' : values['json-patch'] ? 'json-patch' : undefined;
    const ttlMs = ttlOption(values.ttl);
    const body = await readInput(io, source);
    const result = await client.patch(key, body, { ...(kind ? { kind } : {}), ...(ttlMs !== undefined ? { ttlMs } : {}), idempotencyKey: idempotencyKey() });
    if (json) printJson(io, result);
    else io.stdout(describeWrite(result));
  },
};

const ls: Command = {
  name: 'ls',
  drawsProgress: true,
  synopsis: 'ls [PREFIX] [--limit N]',
  summary: 'list keys in UTF-8 byte order',
  details: [
    '  --limit N   stop after N keys (default: all of them, fetched page by page)',
    '  One key per line (keys cannot contain control characters). With --json: {"keys": [...]}.',
  ].join('\n'),
  options: { limit: { type: 'string' } },
  positionalsMin: 0,
  positionalsMax: 1,
  async run({ client, json, io, values, positionals }) {
    let limit = Infinity;
    if (values.limit !== undefined) {
      limit = Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive integer; got ${JSON.stringify(values.limit)}`);
    }
    const keys: string[] = [];
    if (limit > 0) {
      for await (const key of client.listKeys(positionals[0] ?? '')) {
        keys.push(key);
        if (!json) io.stdout(`${key}\n`);
        if (keys.length >= limit) break;
      }
    }
    if (json) printJson(io, { keys });
  },
};

function shardRole(s: Pick<StatResult, 'strategy' | 'cold_layout'>, index: number): string {
  // A small cold part kept beside the replicas is three whole copies, not shards.
  if (s.strategy === 'replication' || s.cold_layout?.layout === 'with_replicas') return 'copy';
  return index < EC_DATA_SHARDS ? 'data' : 'parity';
}

function describeStat(s: StatResult): string {
  const amplification = s.bytes.logical > 0 ? ` (${(s.bytes.physical / s.bytes.logical).toFixed(2)}x)` : '';
  const summary = formatFields([
    ['key', s.key],
    ['version', s.version],
    ['strategy', s.strategy],
    ['hot fields', s.hot_fields.length > 0 ? s.hot_fields.join(', ') : 'none'],
    ['size', `${formatBytes(s.bytes.logical)} logical = hot ${formatBytes(s.bytes.hot)} + cold ${formatBytes(s.bytes.cold)}`],
    ['stored', `${formatBytes(s.bytes.physical)} on the nodes${amplification}`],
    ['dirty', s.dirty ? 'yes: the healer has work to do on this key' : 'no'],
    ['created', s.created_at],
    ['updated', s.updated_at],
  ]);
  const rows = [
    ...s.hot.map((r) => ['hot', r.part, 'replica', r.node, r.state, formatBytes(r.size), r.blob]),
    ...s.cold.map((r) => ['cold', String(r.index), shardRole(s, r.index), r.node, r.state, formatBytes(r.size), r.blob]),
  ];
  const placement = rows.length > 0 ? formatTable(['TIER', 'PART', 'ROLE', 'NODE', 'STATE', 'SIZE', 'BLOB'], rows) : 'no replicas or shards\n';
  return `${summary}\n${placement}`;
}

const stat: Command = {
  name: 'stat',
  synopsis: 'stat KEY',
  summary: 'show a key\'s version, sizes and where each replica and shard lives',
  details: '  Replica and shard states are as last seen: ok, missing, corrupt or unknown. With --json: the /stat body.',
  options: {},
  positionalsMin: 1,
  positionalsMax: 1,
  async run({ client, json, io, positionals }) {
    const result = await client.stat(positionals[0]!);
    if (json) printJson(io, result);
    else io.stdout(describeStat(result));
  },
};

const cluster: Command = {
  name: 'cluster',
  synopsis: 'cluster',
  summary: 'show the storage nodes, the healer leader and the backends',
  details: '  With --json: the /cluster body.',
  options: {},
  positionalsMin: 0,
  positionalsMax: 0,
  async run({ client, json, io }) {
    const c = await client.cluster();
    if (json) return printJson(io, c);
    const healthy = c.nodes.filter((n) => n.state === 'healthy').length;
    io.stdout(
      formatFields([
        ['nodes', `${healthy} of ${c.nodes.length} healthy`],
        ['healer leader', c.healer_leader ?? 'none'],
        ['metadata', c.metadata_backend],
        ['wal', c.wal_backend],
        ['repair backlog', c.repair_backlog === null ? 'not audited yet' : String(c.repair_backlog)],
      ]) + '\n',
    );
    io.stdout(
      formatTable(
        ['NODE', 'STATE', 'ZONE', 'USED', 'FREE', 'BLOBS', 'ADDRESS'],
        c.nodes.map((n) => [
          n.id,
          n.draining ? `${n.state} (draining)` : n.state,
          n.zone ?? '-',
          formatBytes(n.bytes_used),
          formatBytes(n.bytes_free),
          n.blobs === null ? '-' : String(n.blobs),
          n.address,
        ]),
      ),
    );
  },
};

const usage: Command = {
  name: 'usage',
  synopsis: 'usage',
  summary: 'show bytes stored against logical bytes, per node',
  details: '  Scans every manifest, so it takes longer on large stores. With --json: the /storage_usage body.',
  options: {},
  positionalsMin: 0,
  positionalsMax: 0,
  async run({ client, json, io }) {
    const u = await client.storageUsage();
    if (json) return printJson(io, u);
    io.stdout(
      formatFields([
        ['live keys', String(u.live_keys)],
        ['logical', formatBytes(u.logical_bytes)],
        ['stored', `${formatBytes(u.total_system_size)} (${u.amplification}x logical; 3x replication would be ${formatBytes(u.logical_bytes * 3)})`],
        ['pending gc', formatBytes(u.pending_gc_bytes)],
        ['reclaimable', `${formatBytes(u.reclaimable_bytes)} (compaction gives it back; ${formatBytes(u.reclaimed_bytes)} reclaimed so far)`],
      ]) + '\n',
    );
    const rows = Object.entries(u.per_node)
      .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
      .map(([node, n]) => [
        node,
        n.state,
        n.blobs === null ? '-' : String(n.blobs),
        formatBytes(n.stored_bytes),
        formatBytes(n.referenced_bytes),
        formatBytes(n.reclaimable_bytes ?? null),
        formatBytes(n.reclaimed_bytes ?? null),
      ]);
    io.stdout(formatTable(['NODE', 'STATE', 'BLOBS', 'STORED', 'REFERENCED', 'RECLAIMABLE', 'RECLAIMED'], rows));
  },
};

const health: Command = {
  name: 'health',
  synopsis: 'health',
  summary: 'check that the gateway serves and is ready for writes',
  details: [
    '  Asks /health and /health/ready. Exit 0 when the gateway is ready (its metadata store answers and a write',
    '  quorum of storage nodes is up); 4 when it is not, with the reasons. With --json: {"health", "ready"}.',
  ].join('\n'),
  options: {},
  positionalsMin: 0,
  positionalsMax: 0,
  async run({ client, json, io }) {
    const [h, ready] = await Promise.all([client.health(), client.ready()]);
    if (json) printJson(io, { health: h, ready });
    else {
      io.stdout(
        formatFields([
          ['gateway', `${h.status} (${h.service})`],
          ['storage nodes', `${h.nodes_healthy} of ${h.nodes_total} healthy`],
          ['metadata', h.metadata],
          ['wal', h.wal],
          ['ready', ready.ready ? 'yes' : `no: ${ready.problems.join('; ')}`],
        ]),
      );
    }
    return ready.ready ? undefined : EXIT_NOT_READY;
  },
};

export const COMMANDS: readonly Command[] = [
  put,
  get,
  patch,
  rmCommand,
  ls,
  stat,
  watchCommand,
  health,
  cluster,
  usage,
  policyCommand,
  verifyCommand,
  benchCommand,
  adminCommand,
];
