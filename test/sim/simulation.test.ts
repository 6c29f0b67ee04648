/**
 * The deterministic simulation (internal/sim/) over a few hundred seeds: gateways, healers, a metadata store, a
 * WAL and six storage nodes under seeded faults, checked against the ground-truth commit history and, after
 * healing, for complete garbage collection and full protection. A failing seed prints its replay command.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../internal/sim/simulation.js';

const SEEDS = Number(process.env.STRATA_SIM_SEEDS ?? 200);
const STEPS = 30;
/**
 * Seeds that expose an open, not yet diagnosed finding; each is asserted to still fail so that a fix is noticed.
 * 8: after healing, every hot replica of one partial write is gone or corrupt (a referenced blob was deleted or
 *    never held); replay: npm run simulate -- --seed 8 --ops 30 --verbose
 */
/**
 * Seeds that once failed and are fixed stay here as documentation; every seed must pass. Seed 8 (30 steps) lost a
 * document: a garbage collector working from a manifest it had cached earlier in its pass deleted replicas that a
 * repair had meanwhile made referenced. Fixed by fresh manifest reads per candidate, leadership re-checks during
 * GC, and repair copies under new blob ids (internal/healer).
 */
const KNOWN_FAILING = new Set<number>();

describe('deterministic simulation', () => {
  it(`keeps every acknowledged write, never resurrects a delete and collects all garbage over ${SEEDS} seeds`, async () => {
    const failed: string[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await runSimulation({ seed, steps: STEPS });
      if (KNOWN_FAILING.has(seed)) {
        if (result.ok) failed.push(`seed ${seed} is listed as known failing but passes now: remove it from KNOWN_FAILING`);
        continue;
      }
      if (!result.ok) {
        failed.push(
          `seed ${seed}:\n  ${result.failures.slice(0, 10).join('\n  ')}\n` +
            `  replay: npm run simulate -- --seed ${seed} --ops ${STEPS} --verbose`,
        );
      }
    }
    expect(failed.join('\n')).toBe('');
    // CPU-bound: about a minute on a 2-core machine running the rest of the suite beside it, minutes when busier.
  }, 300_000);

  it('replays a seed exactly: same operations, same outcomes', async () => {
    const strip = (trace: string[]) => trace.map((line) => line.replace(/[0-9A-HJKMNP-TV-Z]{26}/g, '<id>'));
    const a = await runSimulation({ seed: 7, steps: STEPS });
    const b = await runSimulation({ seed: 7, steps: STEPS });
    expect(strip(b.trace)).toEqual(strip(a.trace));
    expect(b.stats).toEqual(a.stats);
  }, 30_000);
});
