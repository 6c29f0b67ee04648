/**
 * The metadata store's integrity, read at scrape time from MetadataStore.integrity() (cheap and synchronous):
 * records that failed verification, whether garbage collection must hold, and (embedded store) the state and age
 * of its own SQLite integrity checks. The healer's side of the same story (blobs kept, WAL entries that failed
 * verification) is in ./healer-metrics.ts. What to do about each: internal/metadata/README.md, "Integrity".
 */
import { Gauge, type Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { counterFrom, gaugeFrom } from './gateway-metrics.js';

export function watchMetadataIntegrity(registry: Registry, metadata: MetadataStore, clock: Clock): void {
  const openedAtMs = clock.nowMs();
  counterFrom(
    registry,
    'strata_metadata_corrupt_records_total',
    'Metadata records (manifests, abort records, the revision counter, idempotency records) that failed verification since this process opened the store; none was served.',
    () => metadata.integrity().corruptRecords,
  );
  gaugeFrom(
    registry,
    'strata_metadata_gc_hold',
    '1 while the metadata store cannot vouch that a missing manifest is really missing: garbage collection and rollback delete nothing on a missing manifest (GET /healer gc_hold says why).',
    () => (metadata.integrity().gcHold === null ? 0 : 1),
  );
  // etcd checks its own store: these two exist only where Strata runs the checks (the embedded store).
  if (metadata.integrity().checks === null) return;
  gaugeFrom(
    registry,
    'strata_metadata_integrity_check_ok',
    '1 when the latest SQLite integrity check of the metadata file passed, 0 when it failed or none has passed yet.',
    () => {
      const checks = metadata.integrity().checks;
      return checks !== null && checks.lastFailure === null && checks.lastPassedAtMs !== null ? 1 : 0;
    },
  );
  new Gauge({
    name: 'strata_metadata_integrity_check_age_seconds',
    help: 'Seconds since the start of the last full SQLite integrity check that passed (since the store opened when none has).',
    registers: [registry],
    collect() {
      const passed = metadata.integrity().checks?.lastPassedAtMs ?? null;
      this.set(Math.max(0, (clock.nowMs() - (passed ?? openedAtMs)) / 1000));
    },
  });
}
