/**
 * `npm run verify:storage`: measures what documents cost on disk, and exits 1 when a bound or a goal is broken.
 *
 * Two measurements:
 * - bounds (internal/efficiency/verify-storage.ts): documents of 200 B to 8 MiB, compressible or not, of
 *   every strategy, plus the iot documents of benchmarks.md, written to a running cluster and measured over HTTP:
 *   payload amplification and the fixed per-document overhead by encoded lengths, against their bounds.
 * - file sizes (self-contained only, internal/efficiency/file-size-measurement.ts): per row a fresh all-in-one
 *   with the healer running takes `--docs` documents (default 10,000), and every file they grow is summed less an
 *   empty cluster's; fixed overhead, bytes on disk per logical byte and the in-memory index per blob are checked
 *   against the goals of internal/efficiency/storage-goals.ts.
 *
 *   npm run verify:storage                         # bounds, against http://127.0.0.1:8000 (npm start)
 *   npm run verify:storage -- --url http://host:port
 *   npm run verify:storage -- --self-contained     # both, on throw-away all-in-one clusters in temp dirs
 *   options: --measure bounds,file-sizes (default: both when self-contained, bounds otherwise)
 *            --docs N (file sizes: documents per row, default 10,000), --rows strategy:bytes[,...] (file sizes: a
 *            subset of the goals' rows; default all), --concurrency N (file sizes: writers, default 16)
 *            --bounds-docs N (bounds: default 5; at most 3 for 8 MiB), --iot-docs N (default 10),
 *            --payload-kib N (default 800), --sizes 200,4096,... , --set STRATA_NAME=value (self-contained: a
 *            setting, repeatable), --json
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../internal/config/config.js';
import { FILE_SIZE_LIMITS, measureFileSizes, type FileSizeResult, type StartCluster } from '../internal/efficiency/file-size-measurement.js';
import { fileSizeTable, goalTable } from '../internal/efficiency/file-size-report.js';
import { GOAL_ROWS, checkGoals, goalProblems, sizeName, type GoalResult } from '../internal/efficiency/storage-goals.js';
import { VERIFY_LIMITS, checkBounds, measureStorage, type Row, type VerifyResult } from '../internal/efficiency/verify-storage.js';
import { silentLogger } from '../internal/log/logger.js';
import { STRATEGIES, type Strategy } from '../internal/manifest/manifest.js';
import { startAllInOne } from '../internal/wiring/all-in-one.js';

type Measurement = 'bounds' | 'file-sizes';

interface Options {
  url: string;
  selfContained: boolean;
  measure: Set<Measurement> | null;
  docs: number | null;
  rows: { strategy: Strategy; document_bytes: number }[];
  concurrency: number;
  boundsDocs: number;
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
    measure: null,
    docs: null,
    rows: [...GOAL_ROWS],
    concurrency: FILE_SIZE_LIMITS.concurrencyDefault,
    boundsDocs: 5,
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
    else if (arg === '--measure') options.measure = parseMeasure(next());
    else if (arg === '--docs') options.docs = positive(arg, next(), 1_000_000);
    else if (arg === '--rows') options.rows = parseRows(next());
    else if (arg === '--concurrency') options.concurrency = positive(arg, next(), 256);
    else if (arg === '--bounds-docs') options.boundsDocs = positive(arg, next(), 100_000);
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
        'usage: npm run verify:storage -- [--url URL | --self-contained [--set STRATA_X=v ...]] [--measure bounds,file-sizes]\n' +
          '                                [--docs N] [--rows strategy:bytes,...] [--concurrency N]\n' +
          '                                [--bounds-docs N] [--iot-docs N] [--payload-kib N] [--sizes 200,4096,...] [--json]\n',
      );
      process.exit(0);
    } else fail(`unknown option ${arg} (try --help)`);
  }
  if (!options.selfContained && options.measure?.has('file-sizes')) {
    fail('--measure file-sizes reads the data directory, so it needs --self-contained');
  }
  if (!options.selfContained && options.docs !== null) {
    fail('--docs sets the documents per file-size row, which needs --self-contained; --bounds-docs sets those of the bounds rows');
  }
  return options;
}

function parseMeasure(text: string): Set<Measurement> {
  const out = new Set<Measurement>();
  for (const item of text.split(',')) {
    if (item !== 'bounds' && item !== 'file-sizes') fail(`--measure takes bounds, file-sizes or both (comma-separated), not ${item}`);
    out.add(item);
  }
  return out;
}

function parseRows(text: string): { strategy: Strategy; document_bytes: number }[] {
  return text.split(',').map((item) => {
    const [strategy, bytes] = item.split(':');
    if (!(STRATEGIES as readonly string[]).includes(strategy ?? '')) fail(`--rows: unknown strategy in ${item} (one of ${STRATEGIES.join(', ')})`);
    return { strategy: strategy as Strategy, document_bytes: positive('--rows bytes', bytes ?? '', 1024 * 1024) };
  });
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
  out(`documents per row: ${options.boundsDocs} (8 MiB: at most ${VERIFY_LIMITS.largeDocsMax}), iot: ${options.iotDocs} x ${options.payloadKib} KiB`);
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

/** The self-contained cluster's settings: the defaults, quiet, on free ports, with what --set gave. */
function selfContainedEnv(options: Options, dataDir: string): Record<string, string> {
  return {
    ...options.settings,
    STRATA_DATA_DIR: dataDir,
    STRATA_PORT: '0',
    STRATA_NODE_PORT_BASE: '0',
    STRATA_LOG_LEVEL: 'silent',
    STRATA_SCRUB_INTERVAL_MS: '0',
  };
}

async function runBounds(options: Options): Promise<{ result: VerifyResult; settingsLine: string }> {
  let cleanup = async (): Promise<void> => undefined;
  let settingsLine = '';
  let url = options.url;
  if (options.selfContained) {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-verify-'));
    const config = loadConfig(selfContainedEnv(options, dataDir));
    const cluster = await startAllInOne(config, { log: silentLogger, startHealer: false });
    url = cluster.url;
    settingsLine = `self-contained all-in-one: compression ${config.coldCompression} (min saving ${config.compressionMinSaving}), ` +
      `cold parts up to ${config.inlineColdBytesMax} B kept with the replicas`;
    cleanup = async () => {
      await cluster.stop();
      await rm(dataDir, { recursive: true, force: true });
    };
  } else {
    try {
      await fetch(`${url}/health`);
    } catch {
      fail(`no Strata gateway answers at ${url}; start one with 'npm start', pass --url, or use --self-contained`);
    }
  }
  try {
    const result = await measureStorage({
      url,
      docs: options.boundsDocs,
      iotDocs: options.iotDocs,
      iotPayloadKib: options.payloadKib,
      sizes: options.sizes,
      progress,
    });
    return { result, settingsLine };
  } finally {
    await cleanup();
  }
}

/** Each row's cluster runs as `npm start` does (the healer and its intent resolver included), minus the scrub. */
async function runFileSizes(options: Options): Promise<{ result: FileSizeResult; goals: GoalResult[] }> {
  const startCluster: StartCluster = async (dataDir) => {
    const config = loadConfig({ ...selfContainedEnv(options, dataDir), STRATA_NODE_TIMEOUT_MS: '30000', ...options.settings });
    const cluster = await startAllInOne(config, { log: silentLogger });
    return { url: cluster.url, walConsumer: () => cluster.healer.intentStats, stop: () => cluster.stop() };
  };
  const hotFields = loadConfig({ ...selfContainedEnv(options, os.tmpdir()) }).defaultHotFields;
  const result = await measureFileSizes({
    rows: options.rows,
    docs: options.docs ?? FILE_SIZE_LIMITS.docsDefault,
    concurrency: options.concurrency,
    startCluster,
    hotFields,
    progress,
  });
  return { result, goals: checkGoals(result.rows) };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const measure = options.measure ?? new Set<Measurement>(options.selfContained ? ['bounds', 'file-sizes'] : ['bounds']);
  const problems: string[] = [];
  let bounds: { result: VerifyResult; settingsLine: string } | null = null;
  let fileSizes: { result: FileSizeResult; goals: GoalResult[] } | null = null;
  if (measure.has('bounds')) {
    bounds = await runBounds(options);
    problems.push(...checkBounds(bounds.result));
  }
  if (measure.has('file-sizes')) {
    fileSizes = await runFileSizes(options);
    problems.push(...goalProblems(fileSizes.goals));
  }
  progress('done');
  process.stderr.write('\n');
  if (options.json) {
    const json = {
      ...(bounds?.result ?? {}),
      settings: bounds?.settingsLine || null,
      file_sizes: fileSizes ? { ...fileSizes.result, goals: fileSizes.goals } : null,
      problems,
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    const out = (line: string): boolean => process.stdout.write(`${line}\n`);
    if (bounds) {
      if (bounds.settingsLine) out(bounds.settingsLine);
      printTable(bounds.result, options);
      out('');
    }
    if (fileSizes) {
      for (const line of fileSizeTable(fileSizes.result)) out(line);
      for (const line of goalTable(fileSizes.goals, fileSizes.result.docs)) out(line);
      out('');
    }
    out(problems.length === 0 ? 'all bounds and goals hold' : `broken:\n  ${problems.join('\n  ')}`);
  }
  if (problems.length > 0) process.exit(1);
}

main().catch((error) => {
  process.stderr.write(`verify:storage: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
