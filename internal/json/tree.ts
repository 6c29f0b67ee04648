/** Reaching into a document by path segments, through objects only (never arrays), as field paths do. */
import { isJsonObject, type JsonObject, type JsonValue } from './value.js';

/** Sets the member at `segments`, creating (or replacing non-objects with) empty objects along the way. */
export function setAt(root: JsonObject, segments: readonly string[], value: JsonValue): void {
  let node = root;
  for (let i = 0; i < segments.length - 1; i++) {
    const name = segments[i]!;
    let child = node.get(name);
    if (!isJsonObject(child)) {
      child = new Map();
      node.set(name, child);
    }
    node = child;
  }
  node.set(segments[segments.length - 1]!, value);
}

/** The value at `segments`, or undefined when a segment is absent or a step is not an object. */
export function getAt(root: JsonValue, segments: readonly string[]): JsonValue | undefined {
  let node: JsonValue | undefined = root;
  for (const name of segments) {
    if (!isJsonObject(node)) return undefined;
    node = node.get(name);
  }
  return node;
}
