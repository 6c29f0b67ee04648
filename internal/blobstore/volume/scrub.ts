/**
 * Scrub: one background pass over every live needle, checking head, data CRC and payload sha256 (the 64 bits a
 * version-2 needle keeps), at no more than
 * `bytesPerSecMax` on average so that it never starves foreground reads. The corrupt ids it finds are marked in the
 * index (list shows `corrupt: true`) and returned, in id order, for the healer to repair from other copies.
 *
 * The pass walks the index in id order, a page at a time, and reads each page's needles in disk order (volume,
 * offset), so that a scrub of a large store reads mostly forward. Blobs put during the pass are checked when their
 * id comes after the cursor; deleted ones are skipped. Same options and report as FileBlobStore.scrub.
 */
import { assert } from '../../core/assert.js';
import type { Clock } from '../../core/clock.js';
import type { ScrubOptions, ScrubReport } from '../file-blob-store.js';
import type { NeedleLocation } from './needle-index.js';

/** Ids taken from the index per page of the pass. */
export const SCRUB_PAGE_ENTRIES = 256;
/** Longest single sleep, so that an abort is noticed promptly even on a clock that cannot be cancelled. */
const SCRUB_SLEEP_SLICE_MS = 250;

export interface ScrubTarget {
  clock: Clock;
  isClosed(): boolean;
  page(after: string | null, limit: number): Array<{ id: string; location: NeedleLocation }>;
  /** Re-reads one blob in full, records the outcome in the index, and says what it found and how much it read. */
  check(id: string): Promise<{ state: 'ok' | 'corrupt' | 'missing'; bytesRead: number }>;
}

export async function runScrub(target: ScrubTarget, options: ScrubOptions): Promise<ScrubReport> {
  const { bytesPerSecMax, signal } = options;
  assert(Number.isFinite(bytesPerSecMax) && bytesPerSecMax > 0, 'scrub bytesPerSecMax > 0');
  const report: ScrubReport = { corrupt: [], blobsChecked: 0, bytesChecked: 0, aborted: false };
  const startMs = target.clock.nowMs();
  let cursor: string | null = null;
  const stopped = (): boolean => signal?.aborted === true || target.isClosed();
  for (;;) {
    const page = target.page(cursor, SCRUB_PAGE_ENTRIES);
    if (page.length === 0) break;
    cursor = (page[page.length - 1] as { id: string }).id;
    page.sort((a, b) => a.location.volume - b.location.volume || a.location.offset - b.location.offset);
    for (const { id } of page) {
      if (stopped()) {
        report.aborted = true;
        return finish(report);
      }
      const { state, bytesRead } = await target.check(id);
      if (state === 'missing') continue;
      if (state === 'corrupt') report.corrupt.push(id);
      report.blobsChecked += 1;
      report.bytesChecked += bytesRead;
      const dueMs = startMs + (report.bytesChecked * 1000) / bytesPerSecMax;
      await sleepUnlessStopped(target.clock, dueMs - target.clock.nowMs(), signal, stopped);
    }
  }
  return finish(report);
}

function finish(report: ScrubReport): ScrubReport {
  report.corrupt.sort();
  return report;
}

/** Sleeps on the injected clock in slices, returning early on abort: a manual clock must not hold up a stop. */
async function sleepUnlessStopped(
  clock: Clock,
  ms: number,
  signal: AbortSignal | undefined,
  stopped: () => boolean,
): Promise<void> {
  if (ms <= 0) return;
  let onAbort = (): void => undefined;
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    let remainingMs = ms;
    while (remainingMs > 0 && !stopped()) {
      const sliceMs = Math.min(remainingMs, SCRUB_SLEEP_SLICE_MS);
      await Promise.race([clock.sleep(sliceMs), aborted]);
      remainingMs -= sliceMs;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
