/**
 * The hot-field policy a gateway uses: the static one (configuration) combined with the access-driven policy's
 * record for the key's prefix (internal/tiering): pins (PUT /policy and STRATA_HOT_FIELDS_BY_PREFIX), then the
 * fields the policy promoted, then the defaults it has not demoted. A prefix without a record behaves exactly as
 * the static policy does.
 */
import { effectiveFields } from '../tiering/policy.js';
import { prefixOf } from '../tiering/prefix.js';
import type { TieringRecord } from '../tiering/record.js';
import type { HotFieldPolicy, StaticHotFieldPolicy } from './hot-fields.js';

export class LearnedHotFieldPolicy implements HotFieldPolicy {
  constructor(
    private readonly base: StaticHotFieldPolicy,
    private readonly recordFor: (prefix: string) => TieringRecord | null,
  ) {}

  fieldsFor(key: string): readonly string[] {
    const record = this.recordFor(prefixOf(key));
    if (record === null) return this.base.fieldsFor(key);
    const pinned = this.base.pinnedFor(key);
    return effectiveFields(record, pinned ? [] : this.base.defaults, pinned ?? []);
  }
}
