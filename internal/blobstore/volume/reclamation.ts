/**
 * Continuous reclamation (README.md, "Reclamation"): when garbage is given back, and how fast.
 *
 * - Under load, a sealed volume is compacted once its reclaimable bytes pass the load thresholds
 *   (`compactGarbageRatioMin`, `compactGarbageBytesMin`), and the *active* volume is sealed early once its garbage
 *   passes the same thresholds, so that overwrites and deletes landing in the volume being written become
 *   compactable without waiting for it to fill up.
 * - Once no put or delete has been applied for `idleCompactAfterMs`, an idle pass seals the active volume and
 *   compacts every volume whose garbage passes the much lower idle thresholds, so that a store at rest holds little
 *   more than its live needles.
 * - Background compactions read the old file at no more than `compactBytesPerSecMax`, so reclamation never takes
 *   the disk from foreground writes and reads. Compactions a caller waits for (`compact()`, a put that needs room)
 *   are not paced.
 *
 * So garbage released while writes run is gone at most idleCompactAfterMs + (live bytes of the volumes holding
 * garbage) / compactBytesPerSecMax after the last write, plus the fsyncs of the copies.
 */
import { systemClock, type Clock } from '../../core/clock.js';
import type { CompactionPolicy } from './compaction.js';
import { SUPERBLOCK_BYTES, type Volume } from './volume.js';

/** Read rate of background compactions: a small share of one disk's bandwidth. */
export const COMPACT_BYTES_PER_SEC_DEFAULT = 32 * 1024 * 1024;
/** Quiet time after the last put or delete before the idle pass runs. */
export const IDLE_COMPACT_AFTER_MS_DEFAULT = 30_000;
/** The idle pass compacts a volume (sealing the active one first) whose garbage reaches this share of its needles... */
export const IDLE_GARBAGE_RATIO_DEFAULT = 0.05;
/**
 * ...and at least this many bytes: below it a copy costs more than it gives back, and sealing for less would
 * multiply small volumes.
 */
export const IDLE_GARBAGE_BYTES_MIN_DEFAULT = 256 * 1024;
/**
 * The quiet-time wait sleeps at most this long at a time and then looks at the clock again, so that a clock that
 * jumps (a test's, or a corrected system clock) is noticed within this much real time.
 */
export const IDLE_CHECK_SLICE_MS = 1000;
/** A pacing sleep shorter than this is skipped (its lateness is made up by the next one). */
const PACE_SLEEP_MIN_MS = 10;

/** Whether `volume`'s garbage reaches `policy` (compactionCandidates' rule, for the active volume too). */
export function garbagePasses(volume: Volume, reclaimable: number, policy: CompactionPolicy): boolean {
  const needleBytes = volume.fileBytes - SUPERBLOCK_BYTES;
  return reclaimable > 0 && reclaimable >= policy.garbageBytesMin && reclaimable >= policy.garbageRatioMin * needleBytes;
}

/**
 * A pacing function for one compaction: sleeps on `clock` whenever the copy has scanned more than
 * `bytesPerSecMax` allows for the time since it started. Returns early when `signal` aborts (the store closes).
 */
export function compactionPacer(clock: Clock, bytesPerSecMax: number, signal: AbortSignal): (bytesScanned: number) => Promise<void> {
  const startMs = clock.nowMs();
  return async (bytesScanned) => {
    const waitMs = startMs + (bytesScanned * 1000) / bytesPerSecMax - clock.nowMs();
    if (waitMs >= PACE_SLEEP_MIN_MS) await sleepUnlessAborted(clock, waitMs, signal);
  };
}

/**
 * Sleeps on `clock`, returning early when `signal` aborts. On the system clock the timer does not keep the process
 * alive: a store that is never closed must not hold its process open for a background pass.
 */
export function sleepUnlessAborted(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', done);
      if (timer !== undefined) clearTimeout(timer);
      resolve();
    };
    let timer: NodeJS.Timeout | undefined;
    signal.addEventListener('abort', done, { once: true });
    if (clock === systemClock) {
      timer = setTimeout(done, ms);
      timer.unref();
    } else {
      void clock.sleep(ms).then(done);
    }
  });
}
