/**
 * What a storage node measures: its HTTP requests (labelled by route template, never by blob id), its blob
 * store's group commits (appends per fsync, the batch size, and fsync latency) and its reclamation (bytes
 * compaction would give back now, bytes it gave back). Every series carries the node id,
 * because the all-in-one process serves six nodes from one registry.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { VolumeStoreObserver } from '../blobstore/volume/volume-blob-store.js';
import { BATCH_SIZE_BUCKETS, FAST_BUCKETS_SECONDS, LATENCY_BUCKETS_SECONDS } from './registry.js';

export interface NodeRequestObservation {
  route: string;
  method: string;
  status: number;
  seconds: number;
}

/** One node's view of the instruments. */
export interface NodeInstruments {
  readonly registry: Registry;
  readonly nodeId: string;
  request(observation: NodeRequestObservation): void;
  readonly volume: VolumeStoreObserver;
}

export class StorageNodeMetrics {
  private readonly requests: Counter<'node' | 'route' | 'method' | 'status'>;
  private readonly requestSeconds: Histogram<'node' | 'route' | 'method'>;
  private readonly batchAppends: Histogram<'node'>;
  private readonly batchBytes: Histogram<'node'>;
  private readonly fsyncSeconds: Histogram<'node'>;
  private readonly reclaimableBytes: Gauge<'node'>;
  private readonly reclaimedBytes: Counter<'node'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'strata_node_http_requests_total',
      help: 'Storage-node HTTP requests by node, route template, method and status.',
      labelNames: ['node', 'route', 'method', 'status'],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: 'strata_node_http_request_duration_seconds',
      help: 'Storage-node HTTP request latency by node, route template and method.',
      labelNames: ['node', 'route', 'method'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.batchAppends = new Histogram({
      name: 'strata_blobstore_fsync_batch_appends',
      help: 'Puts and deletes made durable by one group-commit fsync.',
      labelNames: ['node'],
      buckets: BATCH_SIZE_BUCKETS,
      registers,
    });
    this.batchBytes = new Histogram({
      name: 'strata_blobstore_fsync_batch_bytes',
      help: 'Bytes appended to a volume and made durable by one group-commit fsync.',
      labelNames: ['node'],
      buckets: [4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
      registers,
    });
    this.fsyncSeconds = new Histogram({
      name: 'strata_blobstore_fsync_seconds',
      help: 'Latency of one group-commit fsync (fdatasync of the active volume).',
      labelNames: ['node'],
      buckets: FAST_BUCKETS_SECONDS,
      registers,
    });
    this.reclaimableBytes = new Gauge({
      name: 'strata_blobstore_reclaimable_bytes',
      help: 'Bytes of volume files that compaction would give back now (deleted and superseded blobs, tombstones).',
      labelNames: ['node'],
      registers,
    });
    this.reclaimedBytes = new Counter({
      name: 'strata_blobstore_reclaimed_bytes_total',
      help: 'Bytes of volume files that compaction gave back.',
      labelNames: ['node'],
      registers,
    });
  }

  forNode(nodeId: string): NodeInstruments {
    const appends = this.batchAppends.labels({ node: nodeId });
    const bytes = this.batchBytes.labels({ node: nodeId });
    const fsync = this.fsyncSeconds.labels({ node: nodeId });
    const reclaimable = this.reclaimableBytes.labels({ node: nodeId });
    const reclaimed = this.reclaimedBytes.labels({ node: nodeId });
    return {
      registry: this.registry,
      nodeId,
      request: (o) => {
        this.requests.inc({ node: nodeId, route: o.route, method: o.method, status: String(o.status) });
        this.requestSeconds.observe({ node: nodeId, route: o.route, method: o.method }, o.seconds);
      },
      volume: {
        fsynced(appendCount, byteCount, fsyncSeconds) {
          appends.observe(appendCount);
          bytes.observe(byteCount);
          fsync.observe(fsyncSeconds);
        },
        reclaimable(byteCount) {
          reclaimable.set(byteCount);
        },
        compacted(byteCount) {
          reclaimed.inc(byteCount);
        },
      },
    };
  }
}
