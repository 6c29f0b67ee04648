/**
 * JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7396) on the document model.
 *
 * We deliberately do not use the fast-json-patch package: it works on plain JS objects, where integer-like
 * member names ("10", "2") jump ahead of the others, and it clones values through JSON.stringify/JSON.parse,
 * which turns 12345678901234567890 into 12345678901234567000 and 1.0 into 1. Both would break the promise
 * that a document reads back with its members in order and its numbers as written.
 *
 * Inputs are never mutated. A patch copies each container on the path it touches once (the copies are
 * "owned" and later operations change them in place), so a long patch on a large document costs one shallow
 * copy per touched container, not one per operation.
 */
import { StrataError } from '../core/errors.js';
import { LIMITS } from '../core/limits.js';
import { formatPointer, isPrefix, parseJsonPointer } from './pointer.js';
import { checkNestingDepth, cloneJson, isJsonObject, jsonEquals, type JsonObject, type JsonValue } from './value.js';

type OpName = 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';

export interface PatchOperation {
  op: OpName;
  path: string[];
  /** move and copy only. */
  from?: string[];
  /** add, replace and test only. */
  value?: JsonValue;
}

const OP_NAMES: ReadonlySet<string> = new Set<OpName>(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/** A failed operation's reason; applyJsonPatch adds which operation it was. */
class OpFailure extends Error {}

/** Validates the shape of a patch document: an array of operation objects (unknown members are ignored). */
export function parsePatchOperations(ops: JsonValue, opsMax: number = LIMITS.patchOpsMax): PatchOperation[] {
  if (!Array.isArray(ops)) throw new StrataError('PATCH_FAILED', 'a JSON Patch must be an array of operations');
  if (ops.length > opsMax) {
    throw new StrataError('PATCH_FAILED', `the patch has ${ops.length} operations; at most ${opsMax} are allowed`);
  }
  return ops.map((raw, i) => {
    const bad = (reason: string): StrataError => new StrataError('PATCH_FAILED', `operation ${i}: ${reason}`);
    if (!isJsonObject(raw)) throw bad('is not an object');
    const op = raw.get('op');
    if (typeof op !== 'string' || !OP_NAMES.has(op)) {
      throw bad(`"op" must be one of add, remove, replace, move, copy, test`);
    }
    const pointer = (member: 'path' | 'from'): string[] => {
      const text = raw.get(member);
      if (typeof text !== 'string') throw bad(`"${member}" must be a JSON Pointer string`);
      try {
        return parseJsonPointer(text, 'PATCH_FAILED', `"${member}"`);
      } catch (err) {
        throw bad((err as Error).message);
      }
    };
    const parsed: PatchOperation = { op: op as OpName, path: pointer('path') };
    if (op === 'move' || op === 'copy') parsed.from = pointer('from');
    if (op === 'add' || op === 'replace' || op === 'test') {
      const value = raw.get('value');
      if (value === undefined) throw bad(`${op} needs a "value"`);
      parsed.value = value;
    }
    return parsed;
  });
}

/**
 * Applies a JSON Patch document (the parsed body) and returns the new document. Any failure, invalid shape,
 * missing path, bad index or failed test, is PATCH_FAILED naming the operation: `operation 2 (test /a): value
 * differs`. The patch applies entirely or not at all.
 */
export function applyJsonPatch(doc: JsonValue, ops: JsonValue, opsMax: number = LIMITS.patchOpsMax): JsonValue {
  const operations = parsePatchOperations(ops, opsMax);
  const patcher = new Patcher(doc);
  operations.forEach((operation, i) => {
    try {
      patcher.apply(operation);
    } catch (err) {
      if (!(err instanceof OpFailure)) throw err;
      const show = (p: string[]): string => formatPointer(p) || '""';
      const where =
        operation.from === undefined ? show(operation.path) : `${show(operation.from)} to ${show(operation.path)}`;
      throw new StrataError('PATCH_FAILED', `operation ${i} (${operation.op} ${where}): ${err.message}`);
    }
  });
  return patcher.root;
}

/** Every `path` and `from` the operations read or write, so a caller can tell whether only hot fields are touched. */
export function patchTouchedPointers(ops: JsonValue): string[][] {
  const out: string[][] = [];
  for (const operation of parsePatchOperations(ops)) {
    out.push(operation.path);
    if (operation.from !== undefined) out.push(operation.from);
  }
  return out;
}

type Container = JsonValue[] | JsonObject;

function isContainer(v: JsonValue | undefined): v is Container {
  return Array.isArray(v) || isJsonObject(v);
}

class Patcher {
  /** Containers copied during this patch: ours to change in place. */
  private readonly owned = new Set<Container>();

  constructor(public root: JsonValue) {}

  apply(o: PatchOperation): void {
    switch (o.op) {
      case 'add':
        return this.add(o.path, o.value!);
      case 'remove':
        this.remove(o.path);
        return;
      case 'replace':
        return this.replace(o.path, o.value!);
      case 'move': {
        const from = o.from!;
        if (isPrefix(from, o.path)) {
          if (from.length === o.path.length) return void this.get(from); // moving onto itself: must exist
          throw new OpFailure('cannot move a value into one of its own members');
        }
        return this.add(o.path, this.remove(from));
      }
      case 'copy':
        // A deep copy: the two places must not share containers that later operations change in place.
        return this.add(o.path, cloneJson(this.get(o.from!)));
      case 'test':
        if (!jsonEquals(this.get(o.path), o.value!)) throw new OpFailure('value differs');
        return;
    }
  }

  private add(path: string[], value: JsonValue): void {
    if (path.length === 0) {
      this.root = value;
      return;
    }
    const parent = this.ownedContainer(path.slice(0, -1));
    const last = path[path.length - 1]!;
    if (Array.isArray(parent)) {
      const index = last === '-' ? parent.length : arrayIndex(last, parent.length, true);
      parent.splice(index, 0, value);
    } else {
      parent.set(last, value); // an existing member keeps its place
    }
  }

  private remove(path: string[]): JsonValue {
    if (path.length === 0) throw new OpFailure('cannot remove the whole document');
    const parent = this.ownedContainer(path.slice(0, -1));
    const last = path[path.length - 1]!;
    if (Array.isArray(parent)) return parent.splice(arrayIndex(last, parent.length), 1)[0]!;
    const value = parent.get(last);
    if (value === undefined) throw missing(path);
    parent.delete(last);
    return value;
  }

  private replace(path: string[], value: JsonValue): void {
    if (path.length === 0) {
      this.root = value;
      return;
    }
    const parent = this.ownedContainer(path.slice(0, -1));
    const last = path[path.length - 1]!;
    if (Array.isArray(parent)) parent[arrayIndex(last, parent.length)] = value;
    else if (parent.has(last)) parent.set(last, value);
    else throw missing(path);
  }

  /** The value at path (read only). */
  private get(path: readonly string[]): JsonValue {
    let node = this.root;
    for (let i = 0; i < path.length; i++) node = child(node, path[i]!, path, i);
    return node;
  }

  /** The container at path, copied (once per patch) along the way so that it may be changed in place. */
  private ownedContainer(path: readonly string[]): Container {
    let node = this.own(this.root, path, 0);
    this.root = node;
    for (let i = 0; i < path.length; i++) {
      const name = path[i]!;
      const next = this.own(child(node, name, path, i), path, i + 1);
      if (Array.isArray(node)) node[Number(name)] = next;
      else node.set(name, next);
      node = next;
    }
    return node;
  }

  private own(v: JsonValue, path: readonly string[], depth: number): Container {
    if (!isContainer(v)) {
      throw new OpFailure(`${formatPointer(path.slice(0, depth)) || 'the document'} is not an object or array`);
    }
    if (this.owned.has(v)) return v;
    const copy: Container = Array.isArray(v) ? v.slice() : new Map(v);
    this.owned.add(copy);
    return copy;
  }
}

/** The member or element `name` of node, which is the value at path[0..i). */
function child(node: JsonValue, name: string, path: readonly string[], i: number): JsonValue {
  if (Array.isArray(node)) return node[arrayIndex(name, node.length)]!;
  if (isJsonObject(node)) {
    const v = node.get(name);
    if (v === undefined) throw missing(path.slice(0, i + 1));
    return v;
  }
  throw new OpFailure(`${formatPointer(path.slice(0, i)) || 'the document'} is not an object or array`);
}

/** An existing element's index, or with `append` also the length (add inserts before the index). */
function arrayIndex(segment: string, length: number, append = false): number {
  if (segment === '-') throw new OpFailure(`'-' (past the last element) can only be the target of add`);
  if (!/^(0|[1-9][0-9]*)$/.test(segment)) throw new OpFailure(`'${segment}' is not an array index`);
  const index = Number(segment);
  if (index > length || (index === length && !append)) {
    throw new OpFailure(`array index ${segment} is out of bounds (the array has ${length} elements)`);
  }
  return index;
}

function missing(path: readonly string[]): OpFailure {
  return new OpFailure(`${formatPointer(path)} does not exist`);
}

/**
 * RFC 7396: objects merge member by member, null removes a member, anything else replaces. Existing members
 * keep their place; new ones are appended in the patch's order. Recursion follows the patch, whose depth the
 * parser bounded.
 */
export function applyMergePatch(doc: JsonValue, patch: JsonValue): JsonValue {
  return merge(doc, patch, 0);
}

function merge(target: JsonValue | undefined, patch: JsonValue, depth: number): JsonValue {
  if (!isJsonObject(patch)) return patch;
  checkNestingDepth(depth);
  const out: JsonObject = isJsonObject(target) ? new Map(target) : new Map();
  for (const [name, value] of patch) {
    if (value === null) out.delete(name);
    else out.set(name, merge(out.get(name), value, depth + 1));
  }
  return out;
}
