/**
 * One prom-client Registry per process (never prom-client's global one), so that a test can run a gateway, six
 * storage nodes and a healer in one Node process, or several clusters one after another, without their metrics
 * mixing or a second registration failing.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';

export interface ProcessRegistryOptions {
  /**
   * Adds Node's process metrics (RSS, CPU, heap, event loop lag, GC). Real processes turn this on; in-process
   * test clusters leave it off, because prom-client keeps an event-loop monitor and a GC observer running for
   * every registry it collects them for, with no way to stop them.
   */
  processMetrics: boolean;
}

/** Event-loop delay is sampled at this resolution (prom-client's default is 10 ms). */
const EVENT_LOOP_RESOLUTION_MS = 10;

export function createProcessRegistry(options: ProcessRegistryOptions): Registry {
  const registry = new Registry();
  if (options.processMetrics) {
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_RESOLUTION_MS });
  }
  return registry;
}

/** The Prometheus text exposition of `registry`, with its content type. */
export async function renderMetrics(registry: Registry): Promise<{ body: string; contentType: string }> {
  return { body: await registry.metrics(), contentType: registry.contentType };
}

/** Latency buckets in seconds, from 0.5 ms (a cached read) to 10 s (a write waiting out a slow node). */
export const LATENCY_BUCKETS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** CPU-bound work (erasure coding, an fsync on a fast disk): from 50 microseconds to 1 s. */
export const FAST_BUCKETS_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Appends per fsync: powers of two up to the group-commit batch limit (COMMIT_BATCH_ENTRIES_MAX). */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/** Nanoseconds from process.hrtime.bigint() to seconds. */
export function secondsSince(startedNs: bigint): number {
  return Number(process.hrtime.bigint() - startedNs) / 1e9;
}
