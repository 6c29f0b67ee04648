/**
 * `npm run bench -- peers` (bench/main.ts runs this file): Strata's all-in-one side by side with SeaweedFS, as
 * issue 15 and shared/design/benchmarks.md (scenario 7) ask. Only parses arguments, runs (run.ts), and prints;
 * `npm run bench -- peers --help` lists the options. Ctrl-C stops whatever is running before exiting.
 */
import { InfraError } from '../../scripts/infra/debian-package.js';
import { peersTables } from './result.js';
import { Running, runPeers } from './run.js';
import { PEERS_USAGE, PeersUsageError, parsePeersArgs } from './settings.js';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(PEERS_USAGE);
  process.exit(0);
}

const log = (line: string): void => void process.stderr.write(`[peers ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const running = new Running();
let interrupted = false;
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(code); // a second Ctrl-C does not wait
    interrupted = true;
    log(`${signal}: stopping everything this run started`);
    void running.stopAll().finally(() => process.exit(code));
  });
}

try {
  const settings = parsePeersArgs(argv);
  const { result, file } = await runPeers(settings, { log, running }, `npm run bench -- peers ${argv.join(' ')}`.trim());
  const m = result.machine;
  process.stdout.write(
    `\nStrata vs SeaweedFS ${result.seaweedfs.release} (${result.seaweedfs.version}), load by the Go load generator of bench/peers/loadgen; ` +
      `${m.cpuModel}, ${m.cores} cores, ${(m.memoryBytes / 1024 ** 3).toFixed(1)} GiB, Node ${m.node}\n` +
      `medians of ${settings.rounds} round(s), ${settings.durationMs / 1000} s per figure after ${settings.warmupMs / 1000} s of warm-up, ` +
      `${settings.keys} preloaded documents per read figure; load avg = the 1-minute load average at the end of each figure (lowest to highest)\n\n` +
      `${peersTables(result)}\nJSON result: ${file}\n`,
  );
} catch (error) {
  await running.stopAll();
  if (error instanceof PeersUsageError) {
    process.stderr.write(`npm run bench -- peers: ${error.message}\n\n${PEERS_USAGE}`);
    process.exit(2);
  }
  if (error instanceof InfraError) {
    process.stderr.write(`npm run bench -- peers: ${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
