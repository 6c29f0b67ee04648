/**
 * Canonical compact text: no insignificant white space, members in Map order, numbers as their text, strings
 * through JSON.stringify (which escapes `"`, `\`, control characters and lone surrogates, and nothing else).
 * Two documents with the same members, order and number text serialize to the same bytes whatever white
 * space they were written with; the cold part's hash over this text decides whether cold shards are reused,
 * so this function must stay stable across releases.
 */
import { assert } from '../core/assert.js';
import { JsonNumber, checkNestingDepth, isJsonObject, type JsonValue } from './value.js';

export function serializeJson(v: JsonValue): string {
  const out: string[] = [];
  write(v, out, 0);
  return out.join('');
}

function write(v: JsonValue, out: string[], depth: number): void {
  if (v === null) out.push('null');
  else if (v === true) out.push('true');
  else if (v === false) out.push('false');
  else if (typeof v === 'string') out.push(JSON.stringify(v));
  else if (v instanceof JsonNumber) out.push(v.text);
  else if (Array.isArray(v)) {
    checkNestingDepth(depth + 1);
    out.push('[');
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out.push(',');
      write(v[i]!, out, depth + 1);
    }
    out.push(']');
  } else if (isJsonObject(v)) {
    checkNestingDepth(depth + 1);
    out.push('{');
    let first = true;
    for (const [k, e] of v) {
      out.push(first ? '' : ',', JSON.stringify(k), ':');
      first = false;
      write(e, out, depth + 1);
    }
    out.push('}');
  } else {
    assert(false, `serializeJson: ${typeof v} is not a JsonValue`);
  }
}
