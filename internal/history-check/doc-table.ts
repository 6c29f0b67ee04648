/**
 * Documents interned to small integers, so the search compares and hashes a model state by number. One table per
 * key's search; it grows with the distinct documents the search meets (the writes, the reads, and the results of
 * patches applied to the documents the search tried them on), so a document is kept compactly: the ids of its
 * (field, token) pairs, sorted by field id. About 100 bytes plus 10 per field.
 */
import { describeDoc, type Doc } from './history.js';

export class DocTable {
  private readonly fieldIds = new Map<string, number>();
  private readonly fieldNames: string[] = [];
  private readonly pairIds = new Map<string, number>();
  private readonly pairFields: number[] = [];
  private readonly pairTokens: string[] = [];
  private readonly idsByKey = new Map<string, number>();
  /** Per document: its pair ids, ascending by field id (one pair per field). */
  private readonly docs: (readonly number[])[] = [];
  private readonly namesCache: (readonly string[] | undefined)[] = [];

  /** The id of a document; equal documents (same fields and tokens, in any order) get the same id. */
  intern(doc: Doc): number {
    const pairs = Object.keys(doc).map((name) => this.pairId(this.fieldId(name), doc[name]!));
    pairs.sort((a, b) => this.pairFields[a]! - this.pairFields[b]!);
    return this.internPairs(pairs);
  }

  doc(id: number): Doc {
    return Object.fromEntries(this.pairsOf(id).map((pair) => [this.fieldNames[this.pairFields[pair]!]!, this.pairTokens[pair]!]));
  }

  /** The field names of a document. */
  fieldsOf(id: number): readonly string[] {
    let names = this.namesCache[id];
    if (names === undefined) {
      names = this.pairsOf(id).map((pair) => this.fieldNames[this.pairFields[pair]!]!);
      this.namesCache[id] = names;
    }
    return names;
  }

  /**
   * The id of document `baseId` with `fields` set (a merge patch that only sets fields). Not cached: the search
   * tries each pending patch on each state it reaches, so a cache would grow with states x candidates.
   */
  merge(baseId: number, fieldsId: number): number {
    const base = this.pairsOf(baseId);
    const fields = this.pairsOf(fieldsId);
    const pairs: number[] = [];
    let i = 0;
    let j = 0;
    while (i < base.length || j < fields.length) {
      const baseField = i < base.length ? this.pairFields[base[i]!]! : Infinity;
      const patchField = j < fields.length ? this.pairFields[fields[j]!]! : Infinity;
      if (patchField <= baseField) {
        pairs.push(fields[j++]!);
        if (patchField === baseField) i++;
      } else {
        pairs.push(base[i++]!);
      }
    }
    return this.internPairs(pairs);
  }

  describe(id: number): string {
    return describeDoc(this.doc(id));
  }

  private pairsOf(id: number): readonly number[] {
    const pairs = this.docs[id];
    if (pairs === undefined) throw new Error(`doc id ${id} < ${this.docs.length}`);
    return pairs;
  }

  private internPairs(pairs: readonly number[]): number {
    const key = pairs.join(',');
    const known = this.idsByKey.get(key);
    if (known !== undefined) return known;
    const id = this.docs.length;
    this.docs.push(pairs);
    this.idsByKey.set(key, id);
    return id;
  }

  private fieldId(name: string): number {
    let id = this.fieldIds.get(name);
    if (id === undefined) {
      id = this.fieldNames.length;
      this.fieldNames.push(name);
      this.fieldIds.set(name, id);
    }
    return id;
  }

  private pairId(field: number, token: string): number {
    const key = `${field}:${token}`;
    let id = this.pairIds.get(key);
    if (id === undefined) {
      id = this.pairFields.length;
      this.pairFields.push(field);
      this.pairTokens.push(token);
      this.pairIds.set(key, id);
    }
    return id;
  }
}
