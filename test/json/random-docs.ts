/** Random documents and hot path sets for the split/merge property tests (seeded, so failures replay). */
import { JsonNumber, isJsonObject, type JsonObject, type JsonValue } from '../../internal/json/value.js';

const NAMES = ['a', 'b', 'c', 'id', 'stats', 'views', '10', '2', '0', '', 'a/b', '~', '~1', 'é', 'x"y', 'line\nbreak', '😀', '__proto__'];
const NUMBERS = ['0', '-0', '1', '1.0', '-2.50', '1E400', '1e-7', '12345678901234567890', '19.99', '-1.5E+3'];
const STRINGS = ['', 'x', 'héllo', '"quoted"', 'back\\slash', 'tab\there', '\u0001', '😀', '\ud800', '{"not":"json"}', ',}]'];

export type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

export function randomValue(random: Random, depth: number): JsonValue {
  const r = random();
  if (depth > 0 && r < 0.3) return randomObject(random, depth - 1);
  if (depth > 0 && r < 0.4) {
    return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth - 1));
  }
  if (r < 0.6) return new JsonNumber(pick(random, NUMBERS));
  if (r < 0.85) return pick(random, STRINGS);
  return pick(random, [null, true, false]);
}

export function randomObject(random: Random, depth: number): JsonObject {
  const out: JsonObject = new Map();
  const size = Math.floor(random() * 6);
  for (let i = 0; i < size; i++) out.set(pick(random, NAMES), randomValue(random, depth));
  return out;
}

/**
 * Hot paths: mostly paths that exist (top-level and nested, through objects), plus absent paths, paths that
 * run into arrays or scalars, and ancestor/descendant pairs.
 */
export function randomHotPaths(random: Random, doc: JsonObject): string[][] {
  const paths: string[][] = [];
  const count = Math.floor(random() * 6);
  for (let i = 0; i < count; i++) {
    const r = random();
    if (r < 0.15) {
      paths.push([pick(random, NAMES)]); // may or may not exist
    } else if (r < 0.25) {
      paths.push([pick(random, NAMES), pick(random, NAMES)]);
    } else {
      const path = randomExistingPath(random, doc);
      if (path.length > 0) paths.push(path);
      if (path.length > 1 && random() < 0.3) paths.push(path.slice(0, -1)); // its ancestor
    }
  }
  return paths;
}

function randomExistingPath(random: Random, doc: JsonObject): string[] {
  const path: string[] = [];
  let node: JsonValue = doc;
  while (isJsonObject(node) && node.size > 0) {
    const names: string[] = [...node.keys()];
    const name: string = pick(random, names);
    path.push(name);
    node = node.get(name)!;
    if (random() < 0.5) break;
  }
  // Sometimes go one step into an array or scalar, which the split must treat as absent.
  if (random() < 0.1) path.push('0');
  return path;
}

/** The same document written with random insignificant white space. */
export function writeWithWhitespace(random: Random, v: JsonValue): string {
  const ws = (): string => pick(random, ['', '', ' ', '\n', '\t', '\r\n  ']);
  if (v instanceof JsonNumber) return v.text;
  if (Array.isArray(v)) return `[${ws()}${v.map((e) => ws() + writeWithWhitespace(random, e) + ws()).join(',')}]`;
  if (isJsonObject(v)) {
    const members = [...v].map(([k, e]) => `${ws()}${JSON.stringify(k)}${ws()}:${ws()}${writeWithWhitespace(random, e)}${ws()}`);
    return `{${ws()}${members.join(',')}}`;
  }
  return JSON.stringify(v);
}
