/**
 * Blob ids in ascending order, for paged inventory listing without sorting on every page. Insert and remove
 * are O(n) array splices: cheap enough for the one-file-per-blob store, which the volume store replaced.
 * Ids are ASCII (BLOB_ID_PATTERN), so JavaScript string order is byte order.
 */
export class SortedIds {
  private ids: string[];

  private constructor(ids: string[]) {
    this.ids = ids;
  }

  static from(ids: Iterable<string>): SortedIds {
    return new SortedIds([...new Set(ids)].sort(compareIds));
  }

  get size(): number {
    return this.ids.length;
  }

  insert(id: string): void {
    const i = this.lowerBound(id);
    if (this.ids[i] !== id) this.ids.splice(i, 0, id);
  }

  remove(id: string): void {
    const i = this.lowerBound(id);
    if (this.ids[i] === id) this.ids.splice(i, 1);
  }

  /** Up to `limit` ids strictly after `after` (from the start when null). */
  after(after: string | null, limit: number): string[] {
    let i = 0;
    if (after !== null) {
      i = this.lowerBound(after);
      if (this.ids[i] === after) i += 1;
    }
    return this.ids.slice(i, i + limit);
  }

  /** Index of the first id >= `id`. */
  private lowerBound(id: string): number {
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ids[mid] as string) < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
