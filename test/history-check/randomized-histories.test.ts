/**
 * The checker against histories made by a simulated linearizable register (random-history.ts): every one must
 * pass; the same history with one read moved to an observably stale state must fail; and on tiny histories the
 * search must agree with brute force (brute-force.ts), valid or not. A failure names its seed; set
 * HISTORY_CHECK_SEEDS to run more seeds.
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, formatCheckResult } from '../../internal/history-check/check-history.js';
import type { MutationOutcome, Operation, ReadOperation, ReadOutcome } from '../../internal/history-check/history.js';
import { Prng } from '../../internal/sim/prng.js';
import { bruteForceLinearizable } from './brute-force.js';
import { randomHistory, type RandomHistory, type TrueState } from './random-history.js';

const SEEDS = Number(process.env.HISTORY_CHECK_SEEDS ?? 100);

describe('history checker on randomized histories', () => {
  it(`accepts ${SEEDS} random linearizable histories (300 operations, 3 keys, 5 clients, 15% unknown outcomes)`, () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const { history } = randomHistory({ seed, operations: 300, keys: 3, clients: 5, unknownRate: 0.15 });
      const result = checkHistory(history);
      if (result.verdict !== 'valid') failures.push(`seed ${seed}: ${formatCheckResult(result)}`);
    }
    expect(failures.join('\n\n')).toBe('');
  });

  it('rejects each of them once one read is moved to a state older than a write acknowledged before it began', () => {
    const failures: string[] = [];
    let perturbed = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const generated = randomHistory({ seed, operations: 300, keys: 3, clients: 5, unknownRate: 0.15 });
      const stale = withStaleRead(generated, new Prng(seed * 7919));
      if (stale === undefined) continue;
      perturbed++;
      const result = checkHistory(stale.history);
      const kinds = new Set(result.violations.map((violation) => violation.kind));
      const named = result.violations.some((violation) => violation.operations.some((op) => op.id === stale.readId));
      if (!kinds.has('not-linearizable') || !(kinds.has('stale-read') || kinds.has('resurrected-delete')) || !named) {
        failures.push(`seed ${seed}: read ${stale.readId} made stale, but: ${formatCheckResult(result)}`);
      }
    }
    expect(failures.join('\n\n')).toBe('');
    // Almost every history has a read after an acknowledged write with an older live state to move it to.
    expect(perturbed).toBeGreaterThan(SEEDS * 0.9);
  });

  it('agrees with a brute-force search on 600 tiny histories, valid and corrupted', () => {
    const failures: string[] = [];
    const verdicts = { linearizable: 0, notLinearizable: 0 };
    for (let seed = 1; seed <= 600; seed++) {
      const prng = new Prng(seed);
      const generated = randomHistory({ seed, operations: 6, keys: 1, clients: 3, unknownRate: 0.3, durationMax: 8 });
      const history = prng.chance(0.7) ? corruptOne(generated, prng) : generated.history;
      const expected = bruteForceLinearizable(history);
      const result = checkHistory(history);
      const actual = result.keys[0]!.linearizability;
      if (actual !== (expected ? 'linearizable' : 'not-linearizable')) {
        failures.push(`seed ${seed}: brute force says ${expected ? 'linearizable' : 'not linearizable'}, the search ${actual}\n${history.map((op) => JSON.stringify(op)).join('\n')}`);
      }
      if (expected) verdicts.linearizable++;
      else verdicts.notLinearizable++;
    }
    expect(failures.slice(0, 3).join('\n\n')).toBe('');
    expect(verdicts.linearizable).toBeGreaterThan(150);
    expect(verdicts.notLinearizable).toBeGreaterThan(150);
  });

  it('checks a 2000-operation history with 20% unknown outcomes well within the budget', () => {
    const { history } = randomHistory({ seed: 2026, operations: 2000, keys: 2, clients: 6, unknownRate: 0.2 });
    const startedMs = performance.now();
    const result = checkHistory(history);
    const elapsedMs = performance.now() - startedMs;
    expect(result.verdict, formatCheckResult(result)).toBe('valid');
    expect(Math.max(...result.keys.map((key) => key.statesExplored))).toBeLessThan(100_000);
    expect(elapsedMs).toBeLessThan(10_000);
  });
});

/**
 * The history with one found read answered from an older live state of its key, one whose version is below a
 * mutation acknowledged before the read began: no correct store can answer that, so the checker must notice.
 */
function withStaleRead(generated: RandomHistory, prng: Prng): { history: Operation[]; readId: string } | undefined {
  const { history, states } = generated;
  const choices: { read: ReadOperation; state: TrueState }[] = [];
  for (const read of history) {
    if (read.kind !== 'read' || read.outcome.status !== 'ok') continue;
    const acknowledgedBefore = history
      .filter((op) => op.key === read.key && op.kind !== 'read' && op.outcome.status === 'ok' && op.completedAt < read.invokedAt)
      .map((op) => (op.outcome as { version: number }).version);
    const newest = Math.max(0, ...acknowledgedBefore);
    for (const state of states.get(read.key)!) if (state.live && state.version < newest) choices.push({ read, state });
  }
  if (choices.length === 0) return undefined;
  const { read, state } = prng.pick(choices);
  const outcome: ReadOutcome = { status: 'ok', found: true, doc: state.doc!, version: state.version };
  return { history: history.map((op) => (op === read ? { ...read, outcome } : op)), readId: read.id };
}

/** The history with one operation's outcome changed at random (which may or may not leave it linearizable). */
function corruptOne(generated: RandomHistory, prng: Prng): Operation[] {
  const { history, states } = generated;
  const target = prng.pick(history);
  const versions = [...states.values()].flat().map((state) => state.version).filter((version) => version > 0);
  const version = () => (versions.length > 0 && prng.chance(0.8) ? prng.pick(versions) : 1 + prng.int(12));
  let changed: Operation;
  if (target.kind === 'read') {
    const live = [...states.get(target.key)!].filter((state) => state.live);
    const outcome: ReadOutcome =
      live.length === 0 || prng.chance(0.25)
        ? { status: 'ok', found: false }
        : prng.chance(0.7)
          ? (({ doc, version: v }) => ({ status: 'ok' as const, found: true as const, doc: doc!, version: v }))(prng.pick(live))
          : { status: 'ok', found: true, doc: prng.pick(live).doc!, version: version() };
    changed = { ...target, outcome };
  } else {
    const roll = prng.next();
    const outcome: MutationOutcome =
      roll < 0.5 ? { status: 'ok', version: version() } : roll < 0.75 ? { status: 'failed', cause: 'refused' } : { status: 'unknown' };
    changed = { ...target, outcome } as Operation;
  }
  return history.map((op) => (op === target ? changed : op));
}
