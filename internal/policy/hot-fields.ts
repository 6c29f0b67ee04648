/**
 * Which fields of a document are hot. Precedence (api.md): the request's `hot_fields`, then fields pinned for
 * the key's prefix (longest matching prefix wins), then the policy's learned fields, then the configured default
 * list. This file is the static part (configuration only); ./learned-hot-fields.ts adds what the access-driven
 * policy of internal/tiering learned and the pins set through PUT /policy.
 */
export interface HotFieldPolicy {
  fieldsFor(key: string): readonly string[];
}

export class StaticHotFieldPolicy implements HotFieldPolicy {
  private readonly prefixes: readonly [string, readonly string[]][];

  constructor(
    readonly defaults: readonly string[],
    byPrefix: ReadonlyMap<string, readonly string[]>,
  ) {
    this.prefixes = [...byPrefix.entries()].sort((a, b) => b[0].length - a[0].length);
  }

  fieldsFor(key: string): readonly string[] {
    return this.pinnedFor(key) ?? this.defaults;
  }

  /** The fields STRATA_HOT_FIELDS_BY_PREFIX pins for `key` (its longest matching prefix), or null. */
  pinnedFor(key: string): readonly string[] | null {
    for (const [prefix, fields] of this.prefixes) if (key.startsWith(prefix)) return fields;
    return null;
  }
}
