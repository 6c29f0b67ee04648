import { systemClock, type Clock } from '../../internal/core/clock.js';

/**
 * Real time plus an offset that only the test moves. `advance(ms)` makes every age and deadline computed from
 * `nowMs()` jump forward at once (a blob past its GC grace, an intent past its timeout, an abort record expired),
 * while `sleep` still waits real time, so the timers and polls of the code under test run as they do in
 * production.
 *
 * Tests whose components also sleep on the clock cannot use ManualClock (every such sleep would wait for the test),
 * and sleeping past a short real grace period is flaky twice over: the sleep may be too short for a slow healer
 * pass, and the grace (which is also every write's commit deadline) may expire during the test's own setup writes
 * on a loaded machine. With this clock a test keeps its periods long and advances past them when it means to.
 */
export class AdvancingClock implements Clock {
  private offsetMs = 0;

  nowMs(): number {
    return Date.now() + this.offsetMs;
  }

  sleep(ms: number): Promise<void> {
    return systemClock.sleep(ms);
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`advance(${ms}): ms >= 0`);
    this.offsetMs += ms;
  }
}
