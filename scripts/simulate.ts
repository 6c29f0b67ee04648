/**
 * Runs the deterministic simulation (internal/sim/) over many seeds, or replays one.
 *   npm run simulate -- --seeds 1000 [--from 1] [--ops 40]
 *   npm run simulate -- --seed 1234 [--ops 40] --verbose      (replays one seed and prints its trace)
 */
import { runSimulation } from '../internal/sim/simulation.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const steps = Number(arg('ops') ?? 40);
const verbose = process.argv.includes('--verbose');
const one = arg('seed');
const seeds = one !== undefined ? [Number(one)] : Array.from({ length: Number(arg('seeds') ?? 100) }, (_, i) => Number(arg('from') ?? 1) + i);

const startedMs = Date.now();
let failed = 0;
const totals: Record<string, number> = {};
for (const seed of seeds) {
  const result = await runSimulation({ seed, steps, verbose });
  for (const [k, v] of Object.entries(result.stats)) totals[k] = (totals[k] ?? 0) + v;
  if (!result.ok) {
    failed++;
    console.log(`seed ${seed} FAILED:\n  ${result.failures.slice(0, 20).join('\n  ')}`);
    console.log(`  replay: npm run simulate -- --seed ${seed} --ops ${steps} --verbose`);
  }
}
console.log(`${seeds.length} seeds, ${failed} failed, ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
console.log(Object.entries(totals).sort().map(([k, v]) => `${k}=${v}`).join(' '));
process.exitCode = failed > 0 ? 1 : 0;
