/**
 * `npm run chaos -- --minutes N [--seed S] [--data-dir DIR]`: the chaos run of test/cluster/chaos.test.ts for longer.
 * Starts a local cluster (scripts/local-cluster.ts) in a fresh directory, runs load while SIGKILLing and restarting
 * storage nodes, gateways and healers within the fault model (scripts/cluster/chaos.ts), checks that nothing
 * acknowledged was lost and that the healer restores full protection, prints the figures and stops the cluster.
 * Exits 1 when a guarantee was broken (the cluster's data and logs are then kept), 2 on a usage error.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CHAOS_CLUSTER_ENV, formatChaosReport, runChaos } from './cluster/chaos.js';
import { startLocalCluster } from './local-cluster.js';

const USAGE = 'usage: npm run chaos -- [--minutes N] [--seed S] [--data-dir DIR]   (default: 5 minutes, a random seed)';
/** A bound on one run, so that a typo cannot keep the machine busy for days. */
const MINUTES_MAX = 24 * 60;

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function parse(argv: string[]): { minutes: number; seed: number; dataDir: string | null } {
  let minutes = 5;
  let seed = Math.floor(Math.random() * 1_000_000);
  let dataDir: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (flag === '--minutes') {
      minutes = Number(value);
      if (!Number.isFinite(minutes) || minutes <= 0 || minutes > MINUTES_MAX) fail(`--minutes needs a number of minutes (0 < N <= ${MINUTES_MAX}), got ${value}`);
    } else if (flag === '--seed') {
      seed = Number(value);
      if (!Number.isSafeInteger(seed) || seed < 0) fail(`--seed needs a non-negative integer, got ${value}`);
    } else if (flag === '--data-dir') {
      dataDir = value ?? fail('--data-dir needs a directory');
    } else {
      fail(`unknown option ${flag}`);
    }
  }
  return { minutes, seed, dataDir };
}

async function main(): Promise<void> {
  const options = parse(process.argv.slice(2));
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'strata-chaos-')));
  process.stdout.write(`starting a local cluster in ${dataDir}...\n`);
  const cluster = await startLocalCluster({ dataDir, env: CHAOS_CLUSTER_ENV });
  let failed = true;
  try {
    const report = await runChaos({
      cluster,
      seed: options.seed,
      durationMs: options.minutes * 60_000,
      protectionTimeoutMs: 300_000,
      log: (line) => process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`),
    });
    process.stdout.write(`\nchaos figures (replay the schedule with --seed ${options.seed}):\n${formatChaosReport(report)}\n`);
    for (const line of report.violations) process.stdout.write(`  VIOLATION ${line}\n`);
    failed = report.violations.length > 0;
  } finally {
    await cluster.stop();
    if (failed) process.stdout.write(`the cluster's data and logs are kept in ${dataDir}\n`);
    else if (options.dataDir === null) await rm(dataDir, { recursive: true, force: true });
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((error: unknown) => {
  process.stderr.write(`chaos: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
