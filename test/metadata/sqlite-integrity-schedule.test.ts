/**
 * The embedded store's integrity checks recover by themselves: a check that failed (its worker could not run it,
 * or a repair has since mended what it found) is run again after `retryAfterFailureMs`, not a whole interval
 * later, so garbage collection and rollback are not held for an hour by one bad check.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../internal/core/clock.js';
import { IntegrityLedger } from '../../internal/metadata/integrity-ledger.js';
import {
  SqliteIntegrityChecks,
  type IntegrityCheckResult,
  type SqliteIntegrityRunner,
} from '../../internal/metadata/sqlite-integrity-checks.js';

type Answer = IntegrityCheckResult | Error | (() => Promise<IntegrityCheckResult>);

/** A runner whose answers the test scripts: each call takes the next answer, the last one repeats. */
function scriptedRunner(answers: Answer[]): SqliteIntegrityRunner & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async run(kind) {
      calls.push(kind);
      const answer = answers.length > 1 ? answers.shift()! : answers[0]!;
      if (answer instanceof Error) throw answer;
      if (typeof answer === 'function') return answer();
      return answer;
    },
    async close() {},
  };
}

const ok: IntegrityCheckResult = { ok: true, findings: [], durationMs: 1 };

describe('SqliteIntegrityChecks scheduling', () => {
  let checks: SqliteIntegrityChecks | null = null;
  afterEach(async () => {
    await checks?.close();
    checks = null;
  });

  function start(runner: SqliteIntegrityRunner): SqliteIntegrityChecks {
    const ledger = new IntegrityLedger(systemClock, undefined, 'test store');
    checks = new SqliteIntegrityChecks(runner, async () => {}, ledger, systemClock, undefined, 'test store', {
      intervalMs: 3_600_000,
      retryAfterFailureMs: 20,
      dutyFactor: 0,
    });
    checks.start();
    return checks;
  }

  it('runs a check that could not run again soon, and trusts absence once it passes', async () => {
    let pass!: () => void;
    const retried = new Promise<IntegrityCheckResult>((resolve) => (pass = () => resolve(ok)));
    const runner = scriptedRunner([ok, new Error('worker exited'), () => retried]);
    const c = start(runner);
    // quick_check passes, the full check could not run; the retry is held until the test has looked.
    await vi.waitFor(() => expect(runner.calls.length).toBe(3), { timeout: 30_000 });
    expect(c.status().lastFailure).toMatch(/could not run: worker exited/);
    expect(c.holdReason()).toMatch(/failed/);
    expect(await Promise.race([c.absenceTrusted(Date.now() - 60_000), Promise.resolve('pending')])).toBe('pending');
    // With an hour's interval, only the retry after a failure can have started this third check.
    pass();
    await vi.waitFor(() => expect(c.status().lastFailure).toBeNull(), { timeout: 30_000 });
    expect(runner.calls).toEqual(['quick_check', 'integrity_check', 'integrity_check']);
    expect(c.holdReason()).toBeNull();
    expect(await c.absenceTrusted(Date.now() - 60_000)).toBe(true);
  });

  it('keeps checking soon while checks keep failing, and goes back to the interval once one passes', async () => {
    const bad: IntegrityCheckResult = { ok: false, findings: ['row 3 missing from index x'], durationMs: 1 };
    const runner = scriptedRunner([ok, bad, { ...bad, findings: ['page 7: btree corrupt'] }, bad, ok]);
    const c = start(runner);
    await vi.waitFor(() => expect(runner.calls.length).toBe(5), { timeout: 30_000 });
    await vi.waitFor(() => expect(c.status().lastFailure).toBeNull(), { timeout: 30_000 });
    const callsWhenHealthy = runner.calls.length;
    // The next check is an hour away now: nothing more runs while the test looks.
    await vi.waitFor(() => expect(c.status().running).toBe(false), { timeout: 30_000 });
    expect(runner.calls.length).toBe(callsWhenHealthy);
    expect(runner.calls.filter((k) => k === 'integrity_check').length).toBeGreaterThanOrEqual(4);
  });
});
