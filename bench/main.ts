/**
 * `npm run bench`: the end-to-end benchmarks of shared/design/benchmarks.md (bench/harness/), or with
 * `blobstore` as first argument the storage node's blob store benchmark (bench/blobstore-bench.ts), with
 * `reclamation` the rewrite-then-idle benchmark of disk space (bench/reclamation-bench.ts), with `peers` Strata
 * side by side with SeaweedFS (bench/peers/main.ts). Only parses
 * arguments, runs, and prints; `npm run bench -- --help` lists the options.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBench } from './harness/run.js';
import { barsTable, scenarioTable } from './harness/result.js';
import { BENCH_USAGE, BenchUsageError, parseBenchArgs } from './harness/settings.js';

const argv = process.argv.slice(2);
if (argv[0] === 'blobstore' || argv[0] === 'reclamation' || argv[0] === 'peers') {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), argv[0] === 'peers' ? 'peers/main.ts' : `${argv[0]}-bench.ts`);
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...argv.slice(1)], { stdio: 'inherit' });
  child.once('exit', (code) => process.exit(code ?? 1));
} else if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(BENCH_USAGE);
} else {
  try {
    const settings = parseBenchArgs(argv);
    const log = (line: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
    const { result, file } = await runBench(settings, { log }, `npm run bench -- ${argv.join(' ')}`.trim());
    const m = result.machine;
    process.stdout.write(
      `\nStrata ${result.mode} (${result.backends.metadata} metadata, ${result.backends.wal} WAL), load by ${result.loadGenerator.tool}` +
        `${result.loadGenerator.version ? ` ${result.loadGenerator.version}` : ''}; ${m.cpuModel}, ${m.cores} cores, ` +
        `${(m.memoryBytes / 1024 ** 3).toFixed(1)} GiB, Node ${m.node}\n` +
        `${settings.durationMs / 1000} s per load, ${settings.vus} clients (${settings.vusLarge} for 8 MiB), ${settings.keys} keys, ` +
        `${settings.ycsbKeys} YCSB keys, heal ${(settings.healBytes / 1024 ** 2).toFixed(0)} MiB\n\n` +
        `${scenarioTable(result.scenarios)}\n${barsTable(result.bars, result.aims)}\nJSON result: ${file}\n`,
    );
  } catch (error) {
    if (error instanceof BenchUsageError) {
      process.stderr.write(`npm run bench: ${error.message}\n\n${BENCH_USAGE}`);
      process.exit(2);
    }
    throw error;
  }
}
