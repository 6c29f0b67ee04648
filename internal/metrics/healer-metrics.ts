/**
 * What the healer measures, read from the Healer's own counters at scrape time: repairs done, the repair backlog
 * and the objects the last audit found below full protection, leadership, garbage collected, and its progress
 * through the write-ahead log (unresolved intents, entries read but not yet committed, the oldest intent's age),
 * and what it kept on doubt (rollbacks put off, WAL entries that failed verification, unreferenced blobs held).
 */
import { Gauge, type Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { Healer } from '../healer/healer.js';
import { counterFrom, gaugeFrom } from './gateway-metrics.js';

export function watchHealer(registry: Registry, healer: Healer, clock: Clock): void {
  const counters = healer.counters;
  counterFrom(registry, 'strata_healer_repairs_total', 'Manifests the healer repaired (every missing or corrupt blob of it rebuilt).', () => counters.manifestsRepaired);
  counterFrom(registry, 'strata_healer_blobs_repaired_total', 'Blobs (replicas or shards) the healer rebuilt.', () => counters.blobsRepaired);
  counterFrom(registry, 'strata_healer_bytes_repaired_total', 'Bytes of blobs the healer rebuilt.', () => counters.bytesRepaired);
  counterFrom(registry, 'strata_healer_blobs_moved_total', 'Blobs moved off draining nodes or onto emptier ones.', () => counters.blobsMoved);
  counterFrom(registry, 'strata_healer_garbage_deleted_total', 'Unreferenced blobs deleted by garbage collection.', () => counters.garbageDeleted);
  counterFrom(registry, 'strata_healer_rounds_total', 'Healer rounds run while leading.', () => counters.rounds);
  gaugeFrom(
    registry,
    'strata_healer_repair_backlog',
    'Manifests still below full protection after the last audit (waiting for a node, or unrepairable); 0 before the first audit.',
    () => healer.backlog,
  );
  gaugeFrom(
    registry,
    'strata_healer_objects_below_full_protection',
    'Manifests the last audit found below full protection, before repairing them; 0 before the first audit.',
    () => healer.belowFullProtection,
  );
  gaugeFrom(registry, 'strata_healer_leader', '1 while this healer holds the leader lease.', () => (healer.isLeader ? 1 : 0));
  gaugeFrom(registry, 'strata_healer_wal_unresolved_intents', 'Write intents read from the WAL and not resolved yet.', () => healer.intentStats.pending);
  gaugeFrom(
    registry,
    'strata_healer_wal_uncommitted_entries',
    'WAL entries the healer has read whose offsets it has not committed (held back by an unresolved intent).',
    () => healer.intentStats.uncommitted,
  );
  new Gauge({
    name: 'strata_healer_wal_oldest_intent_age_seconds',
    help: 'Age of the oldest unresolved write intent; 0 when none is pending.',
    registers: [registry],
    collect() {
      const oldest = healer.intentStats.oldestPendingAtMs;
      this.set(oldest === null ? 0 : Math.max(0, (clock.nowMs() - oldest) / 1000));
    },
  });
  counterFrom(registry, 'strata_healer_wal_entries_read_total', 'WAL entries (intents and outcomes) the healer has read.', () => healer.intentStats.read);
  counterFrom(registry, 'strata_healer_intents_rolled_back_total', 'Unfinished writes the healer rolled back.', () => healer.intentStats.rolledBack);
  counterFrom(
    registry,
    'strata_healer_rollbacks_held_total',
    'Rollbacks of unfinished writes put off because the metadata store could not vouch for the missing manifest or the manifest record failed verification.',
    () => healer.intentStats.rollbacksHeld,
  );
  counterFrom(
    registry,
    'strata_healer_wal_corrupt_entries_total',
    'WAL entries that failed verification; none was acted on (no rollback, no delete).',
    () => healer.intentStats.corruptEntries,
  );
  counterFrom(
    registry,
    'strata_healer_manifests_rebuilt_total',
    "Manifest records that failed verification and were rebuilt from the nodes' blobs (the healer journal says which).",
    () => healer.manifestRebuilds.manifestsRebuilt,
  );
  counterFrom(
    registry,
    'strata_healer_manifest_rebuilds_refused_total',
    'Rebuilds of damaged manifest records put off or refused (the key may have been deleted, has no blobs left, or a write of it may still run); counted per attempt.',
    () => healer.manifestRebuilds.manifestRebuildsRefused,
  );
  gaugeFrom(
    registry,
    'strata_healer_manifests_awaiting_rebuild',
    'Keys whose manifest record failed verification and is not rebuilt yet: they answer 503 METADATA_CORRUPT and their blobs are kept.',
    () => healer.manifestsAwaitingRebuild().length,
  );
  gaugeFrom(
    registry,
    'strata_healer_garbage_held_blobs',
    'Unreferenced blobs the last garbage-collection pass kept because nothing trustworthy says their key has no manifest (GET /healer gc_hold, the log).',
    () => healer.gcHold?.blobs ?? 0,
  );
}
