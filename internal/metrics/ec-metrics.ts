/**
 * Erasure-coding time: an ErasureCode that times the one it wraps. The write path encodes, the read path
 * reconstructs (decode), the healer rebuilds lost shards; each is observed in seconds. Wiring wraps the process's
 * one ReedSolomonCode, so neither the services nor the codec know about metrics.
 */
import { Histogram, type Registry } from 'prom-client';
import type { ErasureCode } from '../ec/erasure-code.js';
import { FAST_BUCKETS_SECONDS, secondsSince } from './registry.js';

export function measureErasureCode(inner: ErasureCode, registry: Registry): ErasureCode {
  const encodeSeconds = new Histogram({
    name: 'strata_ec_encode_seconds',
    help: 'Time to Reed-Solomon encode one document\'s cold part into its shards.',
    buckets: FAST_BUCKETS_SECONDS,
    registers: [registry],
  });
  const decodeSeconds = new Histogram<'op'>({
    name: 'strata_ec_decode_seconds',
    help: 'Time to decode shards: reconstruct (a read) or rebuild (a healer repair).',
    labelNames: ['op'],
    buckets: FAST_BUCKETS_SECONDS,
    registers: [registry],
  });
  const reconstruct = decodeSeconds.labels({ op: 'reconstruct' });
  const rebuild = decodeSeconds.labels({ op: 'rebuild' });
  const timed = async <T>(observe: (seconds: number) => void, work: () => Promise<T>): Promise<T> => {
    const startedNs = process.hrtime.bigint();
    try {
      return await work();
    } finally {
      observe(secondsSince(startedNs));
    }
  };
  return {
    dataShards: inner.dataShards,
    parityShards: inner.parityShards,
    shardBytesFor: (dataBytes) => inner.shardBytesFor(dataBytes),
    encode: (data) => timed((s) => encodeSeconds.observe(s), () => inner.encode(data)),
    reconstruct: (shards, dataBytes) => timed((s) => reconstruct.observe(s), () => inner.reconstruct(shards, dataBytes)),
    rebuildShards: (shards, dataBytes) => timed((s) => rebuild.observe(s), () => inner.rebuildShards(shards, dataBytes)),
  };
}
