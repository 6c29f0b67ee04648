// A candidate for bench/micro/caches.bench.ts, not used by the product: internal/api/rate-limiter.ts with its table
// on lru-cache. It was measured and not taken (BENCHMARKS.md, "Caches on lru-cache"): lru-cache has no way to look
// at its least recently used entry but a generator (rentries()), which the idle-bucket rule needs on every request.
/**
 * Token buckets per client (an API key or a client address): a client may send `burst` requests at once and
 * `ratePerSec` on average. Time comes from the injected clock, so tests step it instead of sleeping.
 *
 * The table is bounded (`clientsMax`). It is kept in least-recently-used order, and a bucket idle long enough to
 * have refilled completely is the same as no bucket at all, so such buckets are dropped as they are met at the
 * old end of the table. When the table is full of clients that are not idle, the least recently seen one is
 * evicted anyway: it starts over with a full bucket, a small leniency that bounds memory against clients
 * rotating addresses.
 */
import { LRUCache } from 'lru-cache';
import { assert } from '../../../internal/core/assert.js';
import type { Clock } from '../../../internal/core/clock.js';

export interface RateLimit {
  ratePerSec: number;
  burst: number;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  updatedMs: number;
  ratePerSec: number;
  burst: number;
}

/** Idle buckets dropped per request at most, so that one request never pays for a long sweep. */
const IDLE_EVICTIONS_PER_TAKE_MAX = 2;

export class TokenBucketLimiter {
  private readonly buckets: LRUCache<string, Bucket>;

  constructor(private readonly options: { clock: Clock; clientsMax: number }) {
    assert(Number.isInteger(options.clientsMax) && options.clientsMax >= 1, 'clientsMax >= 1');
    this.buckets = new LRUCache<string, Bucket>({ max: options.clientsMax });
  }

  /** Buckets held now (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token from `client`'s bucket, or says how long until one is there. */
  take(client: string, limit: RateLimit): RateDecision {
    assert(limit.ratePerSec > 0 && limit.burst >= 1, 'a rate limit has a positive rate and a burst of at least 1');
    const nowMs = this.options.clock.nowMs();
    // get() makes the bucket the most recently used.
    const existing = this.buckets.get(client);
    let bucket: Bucket;
    if (existing !== undefined) {
      bucket = existing;
      refill(bucket, nowMs);
      // A changed limit (the configuration is per key) applies from now on.
      bucket.ratePerSec = limit.ratePerSec;
      bucket.burst = limit.burst;
      bucket.tokens = Math.min(bucket.tokens, limit.burst);
    } else {
      bucket = { tokens: limit.burst, updatedMs: nowMs, ratePerSec: limit.ratePerSec, burst: limit.burst };
    }
    // A new client goes in first (its set() evicts the least recently seen one when the table is full), so that
    // evictIdle() never deletes the last entry: lru-cache then clears its arrays, all `clientsMax` slots of them.
    if (existing === undefined) this.buckets.set(client, bucket);
    this.evictIdle(nowMs, client);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterMs: Math.ceil(((1 - bucket.tokens) / bucket.ratePerSec) * 1000) };
  }

  /** Drops idle buckets from the old end; `current` (the most recently used) is never dropped. */
  private evictIdle(nowMs: number, current: string): void {
    let evicted = 0;
    // rentries(): least recently used first (typed loosely by lru-cache: (K | V)[] for [K, V]).
    for (const entry of this.buckets.rentries()) {
      const [client, bucket] = entry as [string, Bucket];
      if (evicted >= IDLE_EVICTIONS_PER_TAKE_MAX || client === current) return;
      refill(bucket, nowMs);
      if (bucket.tokens < bucket.burst) return;
      this.buckets.delete(client);
      evicted++;
    }
  }
}

function refill(bucket: Bucket, nowMs: number): void {
  // A clock that steps backwards adds nothing rather than taking tokens away.
  const elapsedMs = Math.max(0, nowMs - bucket.updatedMs);
  bucket.tokens = Math.min(bucket.burst, bucket.tokens + (elapsedMs / 1000) * bucket.ratePerSec);
  bucket.updatedMs = Math.max(bucket.updatedMs, nowMs);
}
