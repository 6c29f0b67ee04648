/**
 * Where each value a read returned came from. Every field token names the write or patch that wrote it, so a read
 * of a value nobody wrote, or that only definitely-failed operations wrote, or a mix of two writes, is caught here
 * without any search. A live document is always one write (its base) with patches merged after it: patches need
 * a live key and only set fields, and every key starts absent.
 */
import { describeDoc, isFailedMutation, type MutationOperation, type Operation, type ReadOperation, type WriteOperation } from './history.js';
import type { ViolationLog } from './violations.js';

/**
 * For every found read whose document passed these checks, the writes that can be its base (usually exactly one;
 * several only when patches replaced every field of the base). Reads that failed are left out, so the ordering
 * checks do not report them twice.
 */
export type ReadBases = Map<ReadOperation, readonly WriteOperation[]>;

export function checkReadValues(ops: readonly Operation[], log: ViolationLog): ReadBases {
  const writers = indexWriters(ops);
  const liveWrites = ops.filter((op): op is WriteOperation => op.kind === 'write' && !isFailedMutation(op));
  const bases: ReadBases = new Map();
  for (const read of ops) {
    if (read.kind !== 'read' || read.outcome.status !== 'ok' || !read.outcome.found) continue;
    const doc = read.outcome.doc;
    const fields = Object.keys(doc).sort();
    const unwritten = fields.find((field) => (writers.get(tokenKey(field, doc[field]!)) ?? []).length === 0);
    if (unwritten !== undefined) {
      log.add('read-of-unwritten', read.key, `read ${read.id} returned ${unwritten}=${doc[unwritten]}, which no operation on key ${read.key} wrote`, [read]);
      continue;
    }
    const failedOnly = fields.find((field) => writers.get(tokenKey(field, doc[field]!))!.every(isFailedMutation));
    if (failedOnly !== undefined) {
      const failed = writers.get(tokenKey(failedOnly, doc[failedOnly]!))!;
      log.add(
        'read-of-failed-write',
        read.key,
        `read ${read.id} returned ${failedOnly}=${doc[failedOnly]}, written only by ${failed.map((op) => op.id).join(', ')}, which definitely failed`,
        [read, ...failed],
      );
      continue;
    }
    const readBases = basesOf(doc, writers, liveWrites);
    if (readBases.length === 0) {
      const sources = fields.map((field) => `${field}=${doc[field]} from ${writers.get(tokenKey(field, doc[field]!))!.filter((op) => !isFailedMutation(op))[0]!.id}`);
      const involved = fields.map((field) => writers.get(tokenKey(field, doc[field]!))!.filter((op) => !isFailedMutation(op))[0]!);
      log.add(
        'torn-read',
        read.key,
        `read ${read.id} returned ${describeDoc(doc)}, which no single write with patches after it produces (${sources.join(', ')})`,
        [read, ...involved],
      );
      continue;
    }
    bases.set(read, readBases);
  }
  return bases;
}

/** Writes and patches by the (field, token) pairs they set. */
function indexWriters(ops: readonly Operation[]): Map<string, MutationOperation[]> {
  const writers = new Map<string, MutationOperation[]>();
  for (const op of ops) {
    if (op.kind !== 'write' && op.kind !== 'patch') continue;
    const doc = op.kind === 'write' ? op.doc : op.fields;
    for (const field of Object.keys(doc)) {
      const key = tokenKey(field, doc[field]!);
      const list = writers.get(key);
      if (list === undefined) writers.set(key, [op]);
      else list.push(op);
    }
  }
  return writers;
}

/** The not-failed writes that, with not-failed patches of the fields that differ, produce `doc`. */
function basesOf(doc: Readonly<Record<string, string>>, writers: Map<string, MutationOperation[]>, liveWrites: readonly WriteOperation[]): WriteOperation[] {
  const patched = (field: string) => (writers.get(tokenKey(field, doc[field]!)) ?? []).some((op) => op.kind === 'patch' && !isFailedMutation(op));
  const explains = (write: WriteOperation) =>
    Object.keys(write.doc).every((field) => field in doc) &&
    Object.keys(doc).every((field) => doc[field] === write.doc[field] || patched(field));
  const named = new Set<WriteOperation>();
  for (const field of Object.keys(doc)) {
    for (const op of writers.get(tokenKey(field, doc[field]!)) ?? []) {
      if (op.kind === 'write' && !isFailedMutation(op)) named.add(op);
    }
  }
  // A base whose every field was patched over leaves no token of its own: any write with those fields may be it.
  const candidates = named.size > 0 ? [...named] : liveWrites;
  return candidates.filter(explains);
}

function tokenKey(field: string, token: string): string {
  return `${field}\u0000${token}`;
}
