/**
 * What a gateway measures beyond its HTTP requests (http-metrics.ts): committed updates and how many of them were
 * pure hot updates, degraded reads, the manifest cache's hits and misses, and the storage nodes it sees.
 *
 * Counters that a component already keeps (the manifest cache's stats) are read at scrape time through prom-client's
 * `collect`, so the component needs no metrics code at all; events only a component sees (a commit, a degraded read)
 * reach these instruments through the small observer interfaces the write and read services declare.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { NodePool } from '../cluster/node-pool.js';
import type { RequestContext } from '../log/request-context.js';
import type { ManifestCacheStats } from '../readservice/manifest-cache.js';
import type { BodyBudgetStats } from '../api/body-budget.js';
import type { PartCacheStats } from '../readservice/part-cache.js';
import type { ReadObserver } from '../readservice/read-service.js';
import type { CommitEvent, WriteObserver } from '../writeservice/write-service.js';

export class GatewayMetrics implements WriteObserver, ReadObserver {
  private readonly updates: Counter<'strategy'>;
  private readonly pureHotUpdates: Counter<'strategy'>;
  private readonly commits: Counter<'strategy' | 'kind'>;
  private readonly degradedReads: Counter<'tier'>;

  constructor(
    readonly registry: Registry,
    private readonly context?: RequestContext,
  ) {
    const registers = [registry];
    this.commits = new Counter({
      name: 'strata_commits_total',
      help: 'Committed mutations by strategy and kind (create, update, delete).',
      labelNames: ['strategy', 'kind'],
      registers,
    });
    this.updates = new Counter({
      name: 'strata_updates_total',
      help: 'Committed writes and patches that replaced a live document, by strategy.',
      labelNames: ['strategy'],
      registers,
    });
    this.pureHotUpdates = new Counter({
      name: 'strata_pure_hot_updates_total',
      help: 'Updates that rewrote only the hot replicas and reused the stored cold shards (a subset of strata_updates_total).',
      labelNames: ['strategy'],
      registers,
    });
    this.degradedReads = new Counter({
      name: 'strata_degraded_reads_total',
      help: 'Document reads that had to work around a missing, corrupt, slow or down blob (another replica, or parity shards), by tier.',
      labelNames: ['tier'],
      registers,
    });
  }

  committed(event: CommitEvent): void {
    const kind = event.deleted ? 'delete' : event.isUpdate ? 'update' : 'create';
    this.commits.inc({ strategy: event.strategy, kind });
    if (kind === 'update') {
      this.updates.inc({ strategy: event.strategy });
      if (event.isPureHotUpdate) this.pureHotUpdates.inc({ strategy: event.strategy });
    }
    this.noteStrategy(event.strategy);
  }

  documentRead(strategy: string): void {
    this.noteStrategy(strategy);
  }

  degradedRead(tier: 'hot' | 'cold'): void {
    this.degradedReads.inc({ tier });
  }

  /** The manifest cache's own counters, read at scrape time. */
  watchManifestCache(cache: { readonly stats: ManifestCacheStats; readonly size: number }): void {
    counterFrom(this.registry, 'strata_manifest_cache_hits_total', 'Manifest reads answered from the cache.', () => cache.stats.hits);
    counterFrom(this.registry, 'strata_manifest_cache_misses_total', 'Manifest reads that missed the cache and read the store.', () => cache.stats.misses);
    counterFrom(
      this.registry,
      'strata_manifest_cache_bypasses_total',
      'Manifest reads sent straight to the store because the watch was broken or behind.',
      () => cache.stats.bypasses,
    );
    gaugeFrom(this.registry, 'strata_manifest_cache_entries', 'Manifests held by the cache.', () => cache.size);
  }

  /** The read cache's counters (readservice/part-cache.ts), read at scrape time. */
  watchPartCache(cache: { stats(): PartCacheStats }): void {
    counterFrom(this.registry, 'strata_read_cache_hits_total', 'Document parts (hot payloads, cold texts) served from the read cache.', () => cache.stats().hits);
    counterFrom(this.registry, 'strata_read_cache_misses_total', 'Document parts fetched from the storage nodes (then cached when small enough).', () => cache.stats().misses);
    gaugeFrom(this.registry, 'strata_read_cache_bytes', 'Bytes held by the read cache.', () => cache.stats().bytes);
  }

  /** The body budget (api/body-budget.ts): bytes held now, the bound, and the requests it refused. */
  watchBodyBudget(budget: { stats(): BodyBudgetStats }): void {
    gaugeFrom(this.registry, 'strata_body_buffer_bytes', 'Bytes of request and response bodies this gateway holds (bounded by STRATA_BODY_BUFFER_BYTES_MAX).', () => budget.stats().heldBytes);
    gaugeFrom(this.registry, 'strata_body_buffer_bytes_max', 'STRATA_BODY_BUFFER_BYTES_MAX: the bound on strata_body_buffer_bytes.', () => budget.stats().bytesMax);
    counterFrom(this.registry, 'strata_body_buffer_refusals_total', 'Requests refused with 503 OVERLOADED because their body did not fit in the body budget.', () => budget.stats().refused);
  }

  /** The request-scoped strategy label for http-metrics.ts (the first one noted wins: a patch reads then writes). */
  private noteStrategy(strategy: string): void {
    const scope = this.context?.current();
    if (scope && scope.strategy === undefined) scope.strategy = strategy;
  }
}

/** Storage nodes as a gateway or healer sees them, by state: healthy, down, draining. */
export function watchNodePool(registry: Registry, pool: NodePool): void {
  new Gauge({
    name: 'strata_storage_nodes',
    help: 'Storage nodes known to this process, by state (healthy, down; draining nodes are also counted as draining).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      let healthy = 0;
      let down = 0;
      let draining = 0;
      for (const view of pool.views()) {
        if (view.state === 'healthy') healthy++;
        else down++;
        if (view.draining) draining++;
      }
      this.set({ state: 'healthy' }, healthy);
      this.set({ state: 'down' }, down);
      this.set({ state: 'draining' }, draining);
    },
  });
}

/** A counter whose value a component keeps (monotonic), copied at scrape time. */
export function counterFrom(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A gauge read from a component at scrape time; `null` (not known yet) leaves it at 0. */
export function gaugeFrom(registry: Registry, name: string, help: string, read: () => number | null): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read() ?? 0);
    },
  });
}
