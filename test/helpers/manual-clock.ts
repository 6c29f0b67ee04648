import type { Clock } from '../../internal/core/clock.js';

/**
 * A clock that moves only when a test says so. `nowMs()` is the current manual time; `advance(ms)` moves it
 * forward and resolves every `sleep` whose deadline has been reached; `sleep(ms)` therefore waits for the test to
 * advance the clock (a sleep of 0 or less resolves at once). Nothing here uses real timers, so code that sleeps
 * on this clock never makes a test slow or flaky.
 */
export class ManualClock implements Clock {
  private currentMs: number;
  private sleepers: Array<{ untilMs: number; wake: () => void }> = [];

  constructor(startMs = 1_700_000_000_000) {
    this.currentMs = startMs;
  }

  nowMs(): number {
    return this.currentMs;
  }

  sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => this.sleepers.push({ untilMs: this.currentMs + ms, wake: resolve }));
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`advance(${ms}): ms >= 0`);
    this.currentMs += ms;
    const due = this.sleepers.filter((s) => s.untilMs <= this.currentMs);
    this.sleepers = this.sleepers.filter((s) => s.untilMs > this.currentMs);
    for (const sleeper of due) sleeper.wake();
  }
}
