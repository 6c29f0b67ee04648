import { vi } from 'vitest';

/**
 * How long a test waits for something it expects to happen. Generous on purpose: on a busy 2-core machine (load 15
 * or more, other test files beside this one) a step that takes milliseconds when idle can take seconds. A condition
 * that never comes still fails, only later; the test timeout (vitest.config.ts, 60 s) stays above it.
 */
export const CONDITION_TIMEOUT_MS = 30_000;

/** How often a condition is checked. */
const CONDITION_POLL_MS = 10;

/**
 * Resolves once `check` returns true; fails with `what` in the message if it has not within `timeoutMs`. Errors
 * thrown by `check` count as "not yet" (vi.waitFor's rule), and the last one is reported.
 */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = CONDITION_TIMEOUT_MS): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    },
    { timeout: timeoutMs, interval: CONDITION_POLL_MS },
  );
}

/** Resolves with the first value of `probe` that is not null or undefined (waitUntil's rules otherwise). */
export async function waitForValue<T>(what: string, probe: () => T | null | undefined | Promise<T | null | undefined>, timeoutMs = CONDITION_TIMEOUT_MS): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await probe();
      if (value === null || value === undefined) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      return value;
    },
    { timeout: timeoutMs, interval: CONDITION_POLL_MS },
  );
}

/**
 * Lets every callback already queued run (timers due now, I/O callbacks, immediates) without waiting for any amount
 * of time: for stress loops that must interleave with other work, never as a wait for something to happen.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Lets `ms` of real time pass, for the rare component that measures a period with a real timer and no injected
 * clock: etcd's leases, or a timer in this process (named at each call, so that the component can be given a
 * clock and the wait removed). Within one process timers fire in order of their deadlines, so a wait started after
 * the component's timer outlasts it however busy the machine. Every other wait in the tests is on a condition
 * (waitUntil) or an injected clock; test/meta/no-fixed-sleeps.test.ts keeps it so.
 */
export function outlastRealTimer(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
