/**
 * The progress line of a long CLI operation: drawn on a terminal only (the CLI gives `io.progress` when stderr is
 * one), and only once the operation has run longer than a second, so quick commands print nothing extra. With a
 * known total it is a bar; otherwise a count and a rate.
 */
import type { CliIo } from './commands.js';

export const PROGRESS_LIMITS = {
  /** Operations shorter than this never draw. */
  showAfterMs: 1000,
  /** How often the line is redrawn at most. */
  redrawEveryMs: 250,
  /** Cells of the bar. */
  barWidth: 24,
} as const;

export interface Progress {
  /** `done` items so far (of the total, when known); `detail` is appended, e.g. "2 failed". */
  update(done: number, detail?: string): void;
  /** Clears the line; the command then prints its report. */
  finish(): void;
}

/** `unit` names what is counted ("keys checked"); the bar of a known total shows `done/total` instead. */
export function startProgress(io: CliIo, label: string, total: number | null, unit = 'done'): Progress {
  const now = io.now ?? Date.now;
  const started = now();
  let lastDrawn = -Infinity;
  let drawn = false;
  return {
    update(done, detail) {
      if (io.progress === undefined) return;
      const at = now();
      if (at - started < PROGRESS_LIMITS.showAfterMs || at - lastDrawn < PROGRESS_LIMITS.redrawEveryMs) return;
      lastDrawn = at;
      drawn = true;
      const rate = `${Math.round(done / ((at - started) / 1000))}/s`;
      const tail = detail ? `, ${detail}` : '';
      if (total === null || total <= 0) {
        io.progress(`${label}: ${done} ${unit} (${rate}${tail})`);
        return;
      }
      const fraction = Math.min(1, done / total);
      const filled = Math.round(fraction * PROGRESS_LIMITS.barWidth);
      const bar = `${'#'.repeat(filled)}${'.'.repeat(PROGRESS_LIMITS.barWidth - filled)}`;
      io.progress(`${label} [${bar}] ${Math.floor(fraction * 100)}% ${done}/${total} (${rate}${tail})`);
    },
    finish() {
      if (drawn) io.progress?.('');
    },
  };
}

/**
 * For a command that waits on one answer (`usage` scans every manifest on the gateway): after a second, a line
 * saying what it waits for and for how long, redrawn until `stop()`.
 */
export function showWaiting(io: CliIo, what: string): { stop(): void } {
  const draw = io.progress;
  if (draw === undefined) return { stop() {} };
  const now = io.now ?? Date.now;
  const started = now();
  let drawn = false;
  const timer = setInterval(() => {
    const elapsedMs = now() - started;
    if (elapsedMs < PROGRESS_LIMITS.showAfterMs) return;
    drawn = true;
    draw(`${what}: waiting for the gateway, ${(elapsedMs / 1000).toFixed(1)} s`);
  }, PROGRESS_LIMITS.redrawEveryMs);
  // The wait is on a request; this timer alone must not keep the process alive.
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (drawn) draw('');
    },
  };
}
