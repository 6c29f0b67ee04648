/**
 * Which fields of a document are hot. Precedence (api.md): the request's `hot_fields`, then fields pinned for
 * the key's prefix (longest matching prefix wins), then the configured default list. The access-driven policy
 * of a later issue slots in between the pinned and the default fields.
 */
export interface HotFieldPolicy {
  fieldsFor(key: string): readonly string[];
}

export class StaticHotFieldPolicy implements HotFieldPolicy {
  private readonly prefixes: readonly [string, readonly string[]][];

  constructor(
    private readonly defaults: readonly string[],
    byPrefix: ReadonlyMap<string, readonly string[]>,
  ) {
    this.prefixes = [...byPrefix.entries()].sort((a, b) => b[0].length - a[0].length);
  }

  fieldsFor(key: string): readonly string[] {
    for (const [prefix, fields] of this.prefixes) if (key.startsWith(prefix)) return fields;
    return this.defaults;
  }
}
