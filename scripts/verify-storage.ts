/**
 * `npm run verify:storage`: writes the iot documents of benchmarks.md (10 per strategy, an incompressible
 * 800 KiB `sensor_raw_log` cold and six hot fields) to a running cluster, measures the bytes its storage nodes
 * actually hold before and after (from GET /cluster), and prints the amplification per strategy.
 *
 *   npm run verify:storage                         # against http://127.0.0.1:8000 (npm start)
 *   npm run verify:storage -- --url http://host:port
 *   npm run verify:storage -- --self-contained     # starts a throw-away all-in-one cluster in a temp dir
 *   options: --docs N (default 10), --payload-kib N (default 800), --json
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../internal/config/config.js';
import { silentLogger } from '../internal/log/logger.js';
import { startAllInOne } from '../internal/wiring/all-in-one.js';

interface Options {
  url: string;
  selfContained: boolean;
  docs: number;
  payloadKib: number;
  json: boolean;
}

const STRATEGIES = ['replication', 'ec', 'field_hybrid'] as const;

function parseArgs(argv: string[]): Options {
  const options: Options = { url: 'http://127.0.0.1:8000', selfContained: false, docs: 10, payloadKib: 800, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) fail(`${arg} needs a value`);
      return v;
    };
    if (arg === '--url') options.url = next().replace(/\/$/, '');
    else if (arg === '--self-contained') options.selfContained = true;
    else if (arg === '--docs') options.docs = positive(arg, next());
    else if (arg === '--payload-kib') options.payloadKib = positive(arg, next());
    else if (arg === '--json') options.json = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write('usage: npm run verify:storage -- [--url URL | --self-contained] [--docs N] [--payload-kib N] [--json]\n');
      process.exit(0);
    } else fail(`unknown option ${arg} (try --help)`);
  }
  return options;
}

function positive(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 100_000) fail(`${name} must be a whole number from 1 to 100000`);
  return n;
}

function fail(message: string): never {
  process.stderr.write(`verify:storage: ${message}\n`);
  process.exit(2);
}

/** An iot document: six hot fields and an incompressible cold log (random bytes, base64). */
function iotDocument(i: number, payloadKib: number): string {
  const log = randomBytes(Math.ceil((payloadKib * 1024 * 3) / 4)).toString('base64').slice(0, payloadKib * 1024);
  return JSON.stringify({
    device_id: `dev-${i}`,
    battery_level: 87,
    status_code: 200,
    is_active: true,
    last_sync_ts: 1795000000000 + i,
    firmware_version: '4.2.1',
    sensor_raw_log: log,
  });
}

async function nodeBytes(url: string): Promise<number> {
  const res = await fetch(`${url}/cluster`);
  if (!res.ok) throw new Error(`GET /cluster answered ${res.status}`);
  const body = (await res.json()) as { nodes: { id: string; bytes_used: number | null }[] };
  let total = 0;
  for (const n of body.nodes) {
    if (n.bytes_used === null) throw new Error(`node ${n.id} did not report its usage; is it down?`);
    total += n.bytes_used;
  }
  return total;
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r${text}`.padEnd(70));
  else process.stderr.write(`${text}\n`);
}

async function measure(options: Options) {
  const run = randomBytes(3).toString('hex');
  const rows = [];
  for (const strategy of STRATEGIES) {
    const before = await nodeBytes(options.url);
    let logical = 0;
    for (let i = 0; i < options.docs; i++) {
      progress(`${strategy}: writing document ${i + 1}/${options.docs}`);
      const body = iotDocument(i, options.payloadKib);
      const res = await fetch(`${options.url}/write?key=${encodeURIComponent(`verify-storage/${run}/${strategy}/${i}`)}&strategy=${strategy}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      const answer = (await res.json()) as { bytes?: { logical: number }; error?: { message: string } };
      if (!res.ok || !answer.bytes) throw new Error(`write failed with ${res.status}: ${answer.error?.message ?? 'no details'}`);
      logical += answer.bytes.logical;
    }
    const after = await nodeBytes(options.url);
    const stored = after - before;
    rows.push({ strategy, documents: options.docs, logical_bytes: logical, stored_bytes: stored, amplification: stored / logical });
  }
  progress('done');
  process.stderr.write('\n');
  return { run, payload_kib: options.payloadKib, incompressible: true, rows };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  let cleanup = async (): Promise<void> => undefined;
  if (options.selfContained) {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-verify-'));
    const config = loadConfig({ STRATA_DATA_DIR: dataDir, STRATA_PORT: '0', STRATA_NODE_PORT_BASE: '0', STRATA_LOG_LEVEL: 'silent' });
    const cluster = await startAllInOne(config, { log: silentLogger, startHealer: false });
    options.url = cluster.url;
    cleanup = async () => {
      await cluster.stop();
      await rm(dataDir, { recursive: true, force: true });
    };
  } else {
    try {
      await fetch(`${options.url}/health`);
    } catch {
      fail(`no Strata gateway answers at ${options.url}; start one with 'npm start', pass --url, or use --self-contained`);
    }
  }
  try {
    const result = await measure(options);
    if (options.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      process.stdout.write(`iot documents: ${options.docs} per strategy, ${options.payloadKib} KiB incompressible sensor_raw_log\n`);
      process.stdout.write('strategy       docs  logical bytes   stored bytes  amplification\n');
      for (const r of result.rows) {
        process.stdout.write(
          `${r.strategy.padEnd(13)} ${String(r.documents).padStart(5)} ${String(r.logical_bytes).padStart(14)} ${String(r.stored_bytes).padStart(14)} ${r.amplification.toFixed(3).padStart(13)}x\n`,
        );
      }
    }
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  process.stderr.write(`verify:storage: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
