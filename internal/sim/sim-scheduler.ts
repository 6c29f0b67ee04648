/**
 * Virtual time and a seeded scheduler. Nothing in a simulated run waits on real time: `sleep` registers a timer
 * that fires only when the driver advances the clock, and timers due at the same instant fire in a seeded order.
 *
 * Two kinds of work still run outside the simulator's control and are fenced in: real SQLite (metadata store and
 * WAL, whose group commit resolves on `setImmediate`) and native Reed-Solomon (libuv thread pool). `settle()`
 * spins the real event loop until neither makes progress, and the results of thread-pool work are held and
 * released one at a time in a seeded order, so their completion order never depends on the machine.
 */
import type { Clock } from '../core/clock.js';
import { Prng } from './prng.js';

interface Timer {
  atMs: number;
  seq: number;
  fire: () => void;
}

export const SIM_START_MS = 1_700_000_000_000;

export class SimScheduler implements Clock {
  private now = SIM_START_MS;
  private timers: Timer[] = [];
  private timerSeq = 0;
  /** Bumped by every simulated component on every call and completion: `settle` waits until it stops moving. */
  progress = 0;
  private realPending = 0;
  private held: (() => void)[] = [];
  /** A logical event counter, to order commits and reads for the linearizability check. */
  private eventSeq = 0;

  constructor(private readonly prng: Prng) {}

  nowMs(): number {
    return this.now;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  after(ms: number, fire: () => void): void {
    this.progress++;
    this.timers.push({ atMs: this.now + Math.max(0, ms), seq: this.timerSeq++, fire });
  }

  tick(): number {
    return ++this.eventSeq;
  }

  /** Runs real asynchronous work (thread pool) and hands its result back only when the scheduler says so. */
  async real<T>(work: () => Promise<T>): Promise<T> {
    this.realPending++;
    this.progress++;
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await work() };
    } catch (error) {
      outcome = { ok: false, error };
    } finally {
      this.realPending--;
    }
    await new Promise<void>((resolve) => this.held.push(resolve));
    this.progress++;
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /** Spins the real event loop until nothing moves (SQLite batches applied, thread-pool work finished). */
  async settle(): Promise<void> {
    for (let idle = 0; idle < 3; ) {
      const before = this.progress;
      await new Promise((resolve) => setImmediate(resolve));
      if (this.realPending > 0) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        idle = 0;
        continue;
      }
      idle = this.progress === before ? idle + 1 : 0;
    }
  }

  /** One scheduling decision: release one held result, else fire one due timer. False when nothing is left. */
  private async stepOnce(limitMs: number): Promise<boolean> {
    await this.settle();
    if (this.held.length > 0) {
      const [release] = this.held.splice(this.prng.int(this.held.length), 1);
      release!();
      return true;
    }
    if (this.timers.length === 0) return false;
    let atMs = Infinity;
    for (const t of this.timers) atMs = Math.min(atMs, t.atMs);
    if (atMs > limitMs) return false;
    const due = this.timers.filter((t) => t.atMs === atMs);
    const chosen = due[this.prng.int(due.length)]!;
    this.timers.splice(this.timers.indexOf(chosen), 1);
    this.now = Math.max(this.now, atMs);
    chosen.fire();
    return true;
  }

  /** Runs until `done()` holds; false when nothing more can happen before `limitMs` (a stall). */
  async runUntil(done: () => boolean, limitMs = Infinity): Promise<boolean> {
    for (;;) {
      await this.settle();
      if (done()) return true;
      if (!(await this.stepOnce(limitMs))) {
        await this.settle();
        return done();
      }
    }
  }

  /** Advances virtual time to `targetMs`, firing every timer due on the way. */
  async advanceTo(targetMs: number): Promise<void> {
    while (await this.stepOnce(targetMs)) {
      // keep firing
    }
    this.now = Math.max(this.now, targetMs);
  }
}
