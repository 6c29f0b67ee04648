/**
 * `npm run verify:storage`: measures what documents cost on the storage nodes of a running cluster, per document
 * size (200 B, 4 KiB, 64 KiB, 800 KiB, 8 MiB), payload kind (compressible text, incompressible base64 noise) and
 * strategy, plus the iot documents of benchmarks.md (six hot fields, an incompressible 800 KiB sensor_raw_log).
 * Prints payload amplification, the fixed per-document overhead (needle heads, index entries, manifest) apart,
 * and checks the bounds of internal/efficiency/verify-storage.ts; exits 1 when one is broken.
 *
 *   npm run verify:storage                         # against http://127.0.0.1:8000 (npm start)
 *   npm run verify:storage -- --url http://host:port
 *   npm run verify:storage -- --self-contained     # starts a throw-away all-in-one cluster in a temp dir
 *   options: --docs N (default 5; at most 3 for 8 MiB), --iot-docs N (default 10), --payload-kib N (default 800),
 *            --sizes 200,4096,... , --set STRATA_NAME=value (self-contained: a setting, repeatable), --json
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../internal/config/config.js';
import { VERIFY_LIMITS, checkBounds, measureStorage, type Row, type VerifyResult } from '../internal/efficiency/verify-storage.js';
import { silentLogger } from '../internal/log/logger.js';
import { startAllInOne } from '../internal/wiring/all-in-one.js';

interface Options {
  url: string;
  selfContained: boolean;
  docs: number;
  iotDocs: number;
  payloadKib: number;
  sizes: number[];
  settings: Record<string, string>;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    url: 'http://127.0.0.1:8000',
    selfContained: false,
    docs: 5,
    iotDocs: 10,
    payloadKib: 800,
    sizes: [...VERIFY_LIMITS.documentSizes],
    settings: {},
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) fail(`${arg} needs a value`);
      return v;
    };
    if (arg === '--url') options.url = next().replace(/\/$/, '');
    else if (arg === '--self-contained') options.selfContained = true;
    else if (arg === '--docs') options.docs = positive(arg, next(), 100_000);
    else if (arg === '--iot-docs') options.iotDocs = positive(arg, next(), 100_000);
    else if (arg === '--payload-kib') options.payloadKib = positive(arg, next(), 16 * 1024 - 1);
    else if (arg === '--sizes') options.sizes = next().split(',').map((s) => positive('--sizes', s, 16 * 1024 * 1024 - 1024));
    else if (arg === '--set') {
      const m = /^(STRATA_[A-Z0-9_]+)=(.*)$/.exec(next());
      if (!m) fail('--set takes STRATA_NAME=value');
      options.settings[m[1]!] = m[2]!;
    } else if (arg === '--json') options.json = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(
        'usage: npm run verify:storage -- [--url URL | --self-contained [--set STRATA_X=v ...]] [--docs N] [--iot-docs N]\n' +
          '                                [--payload-kib N] [--sizes 200,4096,...] [--json]\n',
      );
      process.exit(0);
    } else fail(`unknown option ${arg} (try --help)`);
  }
  return options;
}

function positive(name: string, raw: string, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) fail(`${name} must be a whole number from 1 to ${max}`);
  return n;
}

function fail(message: string): never {
  process.stderr.write(`verify:storage: ${message}\n`);
  process.exit(2);
}

function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r${text}`.padEnd(70));
  else process.stderr.write(`${text}\n`);
}

function printTable(result: VerifyResult, options: Options): void {
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  out(`documents per row: ${options.docs} (8 MiB: at most ${VERIFY_LIMITS.largeDocsMax}), iot: ${options.iotDocs} x ${options.payloadKib} KiB`);
  out('amplification = payload bytes on the nodes / logical bytes; overhead = per document, apart from the payload:');
  out('needle heads + index entries + manifest (B); disk/doc = payload + overhead per document');
  out('');
  out('document        payload         strategy       amplif.  needle  index manifest overhead      disk/doc  bound (3x+F)');
  const fixed = result.fixed_overhead_bytes;
  const line = (r: Row): string => {
    const name = r.scenario === 'iot' ? `iot ${options.payloadKib} KiB` : sizeName(r.document_bytes);
    const bound = Math.round((3 * r.logical_bytes) / r.documents + fixed);
    return `${name.padEnd(15)} ${r.payload.padEnd(15)} ${r.strategy.padEnd(13)} ${r.amplification.toFixed(3).padStart(7)}x ${String(r.needle_overhead_bytes).padStart(7)} ${String(r.index_bytes).padStart(6)} ${String(r.manifest_bytes).padStart(8)} ${String(r.overhead_bytes).padStart(8)} ${String(r.disk_bytes).padStart(13)} ${String(bound).padStart(13)}`;
  };
  for (const r of result.rows) out(line(r));
  out('');
  out(`fixed per-document overhead F (largest of any row): ${fixed} B`);
}

function sizeName(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  let cleanup = async (): Promise<void> => undefined;
  let settingsLine = '';
  if (options.selfContained) {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-verify-'));
    const config = loadConfig({
      ...options.settings,
      STRATA_DATA_DIR: dataDir,
      STRATA_PORT: '0',
      STRATA_NODE_PORT_BASE: '0',
      STRATA_LOG_LEVEL: 'silent',
      STRATA_SCRUB_INTERVAL_MS: '0',
    });
    const cluster = await startAllInOne(config, { log: silentLogger, startHealer: false });
    options.url = cluster.url;
    settingsLine = `self-contained all-in-one: compression ${config.coldCompression} (min saving ${config.compressionMinSaving}), ` +
      `cold parts up to ${config.inlineColdBytesMax} B kept with the replicas`;
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
  let problems: string[];
  try {
    const result = await measureStorage({
      url: options.url,
      docs: options.docs,
      iotDocs: options.iotDocs,
      iotPayloadKib: options.payloadKib,
      sizes: options.sizes,
      progress,
    });
    progress('done');
    process.stderr.write('\n');
    problems = checkBounds(result);
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ ...result, settings: settingsLine || null, problems }, null, 2)}\n`);
    } else {
      if (settingsLine) process.stdout.write(`${settingsLine}\n`);
      printTable(result, options);
      process.stdout.write(problems.length === 0 ? 'all bounds hold\n' : `bounds broken:\n  ${problems.join('\n  ')}\n`);
    }
  } finally {
    await cleanup();
  }
  if (problems.length > 0) process.exit(1);
}

main().catch((error) => {
  process.stderr.write(`verify:storage: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
