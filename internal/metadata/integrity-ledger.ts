import type { Clock } from '../core/clock.js';
import { isStrataError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { METADATA_INTEGRITY_LIMITS, type CorruptRecordSighting } from './metadata-store.js';

/**
 * The corrupt records a store has met, shared by both stores: counted (the metric strata_metadata_corrupt_records_total
 * reads `count`), the latest kept for GET /cluster and GET /healer, each logged once with what to do, and a sequence
 * number that the embedded store's garbage-collection rule compares with its last integrity check.
 */
export class IntegrityLedger {
  /** Sightings so far; also the sequence number of the latest. */
  count = 0;
  private readonly recent: CorruptRecordSighting[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger | undefined,
    private readonly backend: string,
  ) {}

  /** Records `error` when it is a METADATA_CORRUPT error; returns it unchanged so callers can rethrow it. */
  noteError<E>(error: E, where: string): E {
    if (isStrataError(error, 'METADATA_CORRUPT')) {
      const d = error.details ?? {};
      this.note({
        kind: String(d['kind'] ?? 'record'),
        key: String(d['key'] ?? ''),
        where,
        why: String(d['why'] ?? error.message),
        ...(typeof d['ownKey'] === 'string' ? { ownKey: d['ownKey'] } : {}),
      });
    }
    return error;
  }

  note(sighting: Omit<CorruptRecordSighting, 'atMs'>): void {
    this.count++;
    const full = { ...sighting, atMs: this.clock.nowMs() };
    this.recent.unshift(full);
    this.recent.length = Math.min(this.recent.length, METADATA_INTEGRITY_LIMITS.sightingsKept);
    this.log?.error(
      { kind: sighting.kind, key: sighting.key, where: sighting.where, why: sighting.why, backend: this.backend },
      `metadata record failed verification and is not served: the ${sighting.kind} record of ${JSON.stringify(sighting.key)} ` +
        `(${sighting.why}). Garbage collection and rollback keep every blob of that key meanwhile. ` +
        (sighting.kind === 'manifest'
          ? `The leading healer rebuilds a damaged manifest from the storage nodes' self-describing blobs after the intent timeout ` +
            `(GET /healer says when, or why not: a key that may have been deleted is never brought back); otherwise restore the ${this.backend} from a backup`
          : `To recover it: restore the ${this.backend} from a backup, or run \`npm run recover:manifests\` on a stopped cluster ` +
            `(it rebuilds manifests from the storage nodes' self-describing blobs)`),
    );
  }

  /**
   * Forgets the sightings of the manifest record of `key`, once it was replaced by a verified one
   * (MetadataStore.replaceCorruptManifest): garbage collection of that key resumes. The count stays (a metric).
   */
  forgetManifest(key: string): void {
    for (let i = this.recent.length - 1; i >= 0; i--) {
      const s = this.recent[i]!;
      if (s.kind === 'manifest' && s.key === key) this.recent.splice(i, 1);
    }
  }

  sightings(): CorruptRecordSighting[] {
    return this.recent.map((s) => ({ ...s }));
  }

  /** The keys met corrupt (for the manifest kind), most recent first, without repeats. */
  corruptManifestKeys(): string[] {
    const keys = this.recent.filter((s) => s.kind === 'manifest').flatMap((s) => (s.ownKey === undefined ? [s.key] : [s.key, s.ownKey]));
    return [...new Set(keys)];
  }
}
