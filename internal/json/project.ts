/**
 * Projections (`GET /read/:key?fields=...`): the document cut down to the requested fields. Paths descend
 * through objects only, as the split does, so "is this field in the hot part" and "is this field in the
 * document" agree. Results share subtrees with their source (trees are immutable by convention).
 */
import { isPrefix } from './pointer.js';
import type { DecodedHot } from './split.js';
import { isJsonObject, type JsonObject, type JsonValue } from './value.js';
import { setAt } from './tree.js';

/**
 * Only the requested fields, absent ones left out, nested paths rebuilt as nested objects
 * (`/stats/views` -> {"stats":{"views":..}}). Members come in the order the fields first name them, siblings
 * merged under their shared parent; a field below another requested field is carried by the ancestor.
 */
export function projectDocument(doc: JsonObject, fields: readonly (readonly string[])[]): JsonObject {
  return pick(doc, buildTrie(fields)) ?? new Map();
}

/**
 * The same projection answered from the hot entries alone, or null when some field needs the cold part.
 * A field is answerable when it equals or lies below a hot entry's path (descending into the hot value:
 * hot `/stats` answers `/stats/views`). With `hotPaths` (the manifest's hot fields), a field at or below a
 * hot path that has no entry is known to be absent, since the split takes every hot path the document has
 * (a hot path with entries below it is ignored: those entries came from a different list of hot fields).
 */
export function projectHot(
  entries: readonly DecodedHot[],
  fields: readonly (readonly string[])[],
  hotPaths: readonly (readonly string[])[] = [],
): JsonObject | null {
  for (const field of fields) {
    const covered =
      entries.some((e) => isPrefix(e.segments, field)) ||
      hotPaths.some((h) => h.length > 0 && isPrefix(h, field) && !entries.some((e) => isPrefix(h, e.segments)));
    if (!covered) return null;
  }
  // A partial document holding only the hot members: every requested field resolves the same in it as in the
  // whole document, because each lies inside a hot member.
  const partial: JsonObject = new Map();
  for (const e of entries) setAt(partial, e.segments, e.value);
  return projectDocument(partial, fields);
}

interface FieldTrie {
  /** The whole value at this path is requested. */
  whole: boolean;
  children: Map<string, FieldTrie>;
}

function buildTrie(fields: readonly (readonly string[])[]): FieldTrie {
  const root: FieldTrie = { whole: false, children: new Map() };
  for (const field of fields) {
    if (field.length === 0) {
      // The whole document: every member, in document order.
      root.whole = true;
      continue;
    }
    let node = root;
    for (const segment of field) {
      if (node.whole && node !== root) break;
      let child = node.children.get(segment);
      if (child === undefined) {
        child = { whole: false, children: new Map() };
        node.children.set(segment, child);
      }
      node = child;
    }
    if (node !== root) {
      node.whole = true;
      node.children.clear();
    }
  }
  return root;
}

/** Depth is bounded by the longest requested path. */
function pick(value: JsonObject, trie: FieldTrie): JsonObject | undefined {
  if (trie.whole) return value;
  const out: JsonObject = new Map();
  for (const [name, child] of trie.children) {
    const v = value.get(name);
    if (v === undefined) continue;
    if (child.whole) out.set(name, v);
    else if (isJsonObject(v)) {
      const sub = pick(v, child);
      if (sub !== undefined) out.set(name, sub);
    }
  }
  return out.size > 0 ? out : undefined;
}

