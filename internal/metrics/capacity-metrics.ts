/**
 * Capacity on /metrics: whether this gateway takes writes (the same answer as /health/ready's `writable`), and its
 * local disk's free bytes and reserve (the all-in-one). Alert on strata_writable == 0: reads and deletes still
 * work; space must be freed (deletes, then compaction) or added.
 */
import type { Registry } from 'prom-client';
import { writability, type GatewayCapacity } from '../api/capacity-view.js';
import type { NodePool } from '../cluster/node-pool.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { gaugeFrom } from './gateway-metrics.js';

export function watchCapacity(registry: Registry, pool: NodePool, capacity: GatewayCapacity | undefined, metadata?: Pick<MetadataStore, 'space'>): void {
  gaugeFrom(registry, 'strata_writable', "1 while this gateway takes writes; 0 while its disk is down to its reserve, too few storage nodes have room or etcd's space quota is exhausted (507 DISK_FULL).", () =>
    writability(pool, capacity, metadata).writable ? 1 : 0,
  );
  gaugeFrom(registry, 'strata_storage_nodes_with_room', 'Storage nodes that are up, not draining and take new blobs.', () => pool.capacity().nodesWithRoom);
  if (capacity === undefined) return;
  gaugeFrom(registry, 'strata_disk_free_bytes', 'Free bytes of the filesystem holding the data directory.', () => capacity.view().freeBytes);
  gaugeFrom(registry, 'strata_disk_reserve_bytes', 'Bytes the data directory keeps in reserve for deletes, compaction and the databases.', () => capacity.view().reserveBytes);
  gaugeFrom(registry, 'strata_disk_writable_bytes', 'Free bytes writes may still use before they are refused with DISK_FULL.', () => capacity.view().writableBytes);
}
