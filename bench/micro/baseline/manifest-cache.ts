// Baseline for bench/micro/caches.bench.ts: internal/readservice/manifest-cache.ts as it was before its LRU moved to lru-cache, kept
// unchanged (imports aside) so that the comparison can be run again. Not used by the product.
/**
 * The gateway's manifest cache (architecture.md, "Read": consistency). A bounded LRU of stored manifests by key,
 * kept fresh by the metadata store's manifest watch, that still answers linearizably:
 *
 * 1. A read first obtains the store's current revision R. One currentRevision() call serves every read that
 *    began before it was sent: reads arriving while one is pending join it, and calls are at least
 *    `revisionWindowMs` apart. A read never joins a call that was already sent, whose answer may predate it.
 * 2. It waits until the watch has delivered every change up to R (at most `catchUpWaitMs`; then it reads the
 *    store directly).
 * 3. A cached entry is then at least as new as R and is served; on a miss the store is read directly and the
 *    answer is inserted, tagged with its modRevision (or R for an absent key), never over a newer entry.
 *
 * While the watch is broken or being re-established, every read goes to the store directly. A broken watch
 * empties the cache and a new one is started from a fresh currentRevision().
 */
import type { Logger } from '../../../internal/log/logger.js';
import type { StoredManifest } from '../../../internal/manifest/manifest.js';
import type { ManifestWatch, MetadataStore } from '../../../internal/metadata/metadata-store.js';

export const MANIFEST_CACHE_LIMITS = {
  /** Manifests kept; the least recently used go first. */
  entriesMax: 100_000,
  /** One currentRevision() call per window at most, shared by all reads that arrive in it. */
  revisionWindowMs: 2,
  /** How long a read waits for the watch to catch up with the revision it obtained before reading directly. */
  catchUpWaitMs: 1_000,
  /** Pause before watching again after the watch broke or could not be started; doubles while it keeps failing. */
  rewatchDelayMs: 200,
  rewatchDelayMsMax: 5_000,
} as const;

export interface ManifestCacheOptions {
  entriesMax?: number;
  revisionWindowMs?: number;
  catchUpWaitMs?: number;
  rewatchDelayMs?: number;
  log?: Logger;
}

export interface ManifestCacheStats {
  hits: number;
  misses: number;
  /** Reads sent straight to the store because the watch was broken or did not catch up in time. */
  bypasses: number;
  currentRevisionCalls: number;
  resets: number;
}

/** What ReadService needs from the cache. */
export interface ManifestSource {
  get(key: string): Promise<StoredManifest | null>;
}

interface Entry {
  stored: StoredManifest | null;
  /** The revision this entry is current at: its modRevision, or when it records an absence, when that was seen. */
  revision: number;
}

interface Waiter {
  revision: number;
  resolve: (caughtUp: boolean) => void;
}

interface RevisionBatch {
  promise: Promise<number>;
  resolve: (revision: number) => void;
  reject: (err: unknown) => void;
}

export class ManifestCache implements ManifestSource {
  private readonly entries = new Map<string, Entry>();
  private readonly entriesMax: number;
  private readonly revisionWindowMs: number;
  private readonly catchUpWaitMs: number;
  private readonly rewatchDelayMs: number;
  private readonly log: Logger | undefined;

  /** Every change up to this revision has been applied; -1 while there is no healthy watch. */
  private delivered = -1;
  private healthy = false;
  /** Bumped on every reset: direct reads begun in an older generation are not inserted. */
  private generation = 0;
  /** Bumped on every eviction: a direct read that overlapped one is not inserted (the evicted entry may have been newer). */
  private evictions = 0;
  private watch: ManifestWatch | null = null;
  private watchToken = 0;
  private rewatchTimer: NodeJS.Timeout | null = null;
  private rewatchFailures = 0;
  private closed = false;
  private waiters: Waiter[] = [];

  /** The batch of reads waiting for the next currentRevision() call, and when the last call was sent. */
  private nextBatch: RevisionBatch | null = null;
  private lastFetchMs = -Infinity;

  readonly stats: ManifestCacheStats = { hits: 0, misses: 0, bypasses: 0, currentRevisionCalls: 0, resets: 0 };

  constructor(
    private readonly metadata: MetadataStore,
    options: ManifestCacheOptions = {},
  ) {
    this.entriesMax = options.entriesMax ?? MANIFEST_CACHE_LIMITS.entriesMax;
    this.revisionWindowMs = options.revisionWindowMs ?? MANIFEST_CACHE_LIMITS.revisionWindowMs;
    this.catchUpWaitMs = options.catchUpWaitMs ?? MANIFEST_CACHE_LIMITS.catchUpWaitMs;
    this.rewatchDelayMs = options.rewatchDelayMs ?? MANIFEST_CACHE_LIMITS.rewatchDelayMs;
    this.log = options.log;
  }

  /** Starts the watch; until it runs, reads go to the store directly. Failures are retried in the background. */
  start(): void {
    void this.rewatch();
  }

  /** True while reads are served through the watch (tests and health). */
  get watching(): boolean {
    return this.healthy;
  }

  get size(): number {
    return this.entries.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.rewatchTimer !== null) clearTimeout(this.rewatchTimer);
    this.rewatchTimer = null;
    this.dropEverything();
    const watch = this.watch;
    this.watch = null;
    this.watchToken++;
    if (watch !== null) await watch.close();
  }

  /** The stored manifest of `key` (tombstones included), at least as new as the store was when the call began. */
  async get(key: string): Promise<StoredManifest | null> {
    if (!this.healthy) return this.direct(key);
    const generation = this.generation;
    const revision = await this.currentRevision();
    if (!(await this.caughtUp(revision)) || generation !== this.generation) return this.direct(key);
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.stats.hits++;
      // Most recently used last.
      this.entries.delete(key);
      this.entries.set(key, entry);
      return entry.stored;
    }
    this.stats.misses++;
    const evictions = this.evictions;
    const stored = await this.metadata.get(key);
    if (this.healthy && generation === this.generation && evictions === this.evictions) {
      this.insert(key, stored, stored?.modRevision ?? revision);
    }
    return stored;
  }

  private direct(key: string): Promise<StoredManifest | null> {
    this.stats.bypasses++;
    return this.metadata.get(key);
  }

  private insert(key: string, stored: StoredManifest | null, revision: number): void {
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      if (existing.revision >= revision) return;
      this.entries.delete(key);
    }
    // Shared by every read of the key: frozen instead of copied per read (a copy of a manifest cost more than
    // the rest of a cached read), so that no caller can change what the next one gets.
    this.entries.set(key, { stored: stored === null ? null : deepFreeze(stored), revision });
    while (this.entries.size > this.entriesMax) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
      this.evictions++;
    }
  }

  // ---- the current revision, shared by the reads of a window ---------------------------------------------

  private currentRevision(): Promise<number> {
    if (this.nextBatch !== null) return this.nextBatch.promise;
    let resolve!: (revision: number) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<number>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const batch: RevisionBatch = { promise, resolve, reject };
    this.nextBatch = batch;
    const waitMs = this.lastFetchMs + this.revisionWindowMs - Date.now();
    const send = (): void => {
      // From here on a new read starts the next batch: this call may already be answered for it.
      if (this.nextBatch === batch) this.nextBatch = null;
      this.lastFetchMs = Date.now();
      this.stats.currentRevisionCalls++;
      this.metadata.currentRevision().then(batch.resolve, batch.reject);
    };
    if (waitMs <= 0) send();
    else setTimeout(send, Math.ceil(waitMs));
    return promise;
  }

  // ---- waiting for the watch -------------------------------------------------------------------------------

  /** True once the watch delivered everything up to `revision`; false when it broke or took too long. */
  private caughtUp(revision: number): Promise<boolean> {
    if (!this.healthy) return Promise.resolve(false);
    if (this.delivered >= revision) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        revision,
        resolve: (caughtUp) => {
          clearTimeout(timer);
          resolve(caughtUp);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        this.log?.debug({ revision, delivered: this.delivered }, 'manifest watch did not catch up in time; reading directly');
        resolve(false);
      }, this.catchUpWaitMs);
      this.waiters.push(waiter);
    });
  }

  private advance(revision: number): void {
    if (revision <= this.delivered) return;
    this.delivered = revision;
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.revision <= revision);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.revision > revision);
    for (const w of ready) w.resolve(true);
  }

  // ---- the watch ---------------------------------------------------------------------------------------------

  private dropEverything(): void {
    this.healthy = false;
    this.delivered = -1;
    this.generation++;
    this.entries.clear();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve(false);
  }

  private async rewatch(): Promise<void> {
    if (this.closed) return;
    const token = ++this.watchToken;
    const generation = this.generation;
    try {
      const from = await this.metadata.currentRevision();
      if (this.closed || token !== this.watchToken) return;
      const current = (): boolean => token === this.watchToken && !this.closed;
      // Nothing is cached yet, so "everything up to `from`" holds already; changes after it arrive by the watch.
      this.delivered = from;
      this.healthy = true;
      const watch = await this.metadata.watchManifests(from, {
        onChange: (key, stored, revision) => {
          if (current()) this.insert(key, stored, revision);
        },
        onRevision: (revision) => {
          if (!current()) return;
          this.rewatchFailures = 0;
          this.advance(revision);
        },
        onReset: (reason) => {
          if (current()) this.reset(reason);
        },
      });
      if (!current() || generation !== this.generation) {
        await watch.close();
        return;
      }
      this.watch = watch;
    } catch (err) {
      if (token !== this.watchToken || this.closed) return;
      this.reset(`cannot watch manifests: ${(err as Error).message}`);
    }
  }

  private reset(reason: string): void {
    this.stats.resets++;
    this.log?.warn({ reason }, 'manifest cache reset; reading manifests directly until the watch is back');
    this.dropEverything();
    const watch = this.watch;
    this.watch = null;
    this.watchToken++;
    if (watch !== null) void watch.close().catch(() => undefined);
    if (this.closed || this.rewatchTimer !== null) return;
    const delayMs = Math.min(this.rewatchDelayMs * 2 ** this.rewatchFailures, MANIFEST_CACHE_LIMITS.rewatchDelayMsMax);
    this.rewatchFailures = Math.min(this.rewatchFailures + 1, 16);
    this.rewatchTimer = setTimeout(() => {
      this.rewatchTimer = null;
      void this.rewatch();
    }, delayMs);
    this.rewatchTimer.unref();
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}
