/**
 * One key's operations as the search takes them (linearizability.ts): the model's view of each, its interval
 * (+infinity for an unknown outcome), and a symmetry class for the unknown ones.
 *
 * Symmetry: unknown operations that would have exactly the same effect wherever they took effect are
 * interchangeable, and the search only ever takes the earliest-invoked untaken one of a class (any order that
 * uses them can be relabelled into that one: an earlier-invoked member can stand wherever a later one stood).
 * All unconditional unknown deletes are one class. An unknown write or patch none of whose field values any read
 * returned is unobserved: no read can tell its values from any other's, so the search gives it placeholder values
 * (one per field name), and unobserved operations of the same kind, fields and precondition form a class. Without
 * this, a key with a few dozen timeouts had the search try them in every combination wherever it backtracked.
 */
import type { DocTable } from './doc-table.js';
import { isFoundRead, type Doc, type Operation } from './history.js';
import type { SearchOperation } from './linearizability.js';
import { toModelOperation } from './register-model.js';

/** Stands for a value no read returned; no feeder's token contains U+0000 (see README). */
const UNOBSERVED = '\u0000unobserved';

export interface SearchInput {
  /** The operations that entered the search, in the order of `operations`. */
  readonly searched: readonly Operation[];
  readonly operations: readonly SearchOperation[];
}

export function toSearchInput(ops: readonly Operation[], docs: DocTable): SearchInput {
  const observed = new Set<string>();
  for (const op of ops) {
    if (!isFoundRead(op)) continue;
    for (const [field, token] of Object.entries(op.outcome.doc)) observed.add(pairKey(field, token));
  }
  const classes = new Map<string, number>();
  const searched: Operation[] = [];
  const operations: SearchOperation[] = [];
  for (const op of ops) {
    const unknown = op.outcome.status === 'unknown';
    const modelled = unknown ? withPlaceholders(op, observed) : op;
    const model = toModelOperation(modelled, docs);
    if (model === undefined) continue;
    let symmetryClass = -1;
    if (unknown && (modelled !== op || op.kind === 'delete')) {
      const signature = `${model.kind}|${model.ifMatch ?? ''}|${model.ifNoneMatch}|${model.docId}`;
      symmetryClass = classes.get(signature) ?? classes.size;
      classes.set(signature, symmetryClass);
    }
    searched.push(op);
    operations.push({ model, invokedAt: op.invokedAt, completedAt: unknown ? Infinity : op.completedAt, symmetryClass });
  }
  return { searched, operations };
}

/** The operation with placeholder values when it is an unobserved write or patch, else the operation itself. */
function withPlaceholders(op: Operation, observed: ReadonlySet<string>): Operation {
  if (op.kind === 'write') return isObserved(op.doc, observed) ? op : { ...op, doc: placeholders(op.doc) };
  if (op.kind === 'patch') return isObserved(op.fields, observed) ? op : { ...op, fields: placeholders(op.fields) };
  return op;
}

function isObserved(doc: Doc, observed: ReadonlySet<string>): boolean {
  return Object.entries(doc).some(([field, token]) => observed.has(pairKey(field, token)));
}

function placeholders(doc: Doc): Doc {
  return Object.fromEntries(Object.keys(doc).map((field) => [field, UNOBSERVED]));
}

function pairKey(field: string, token: string): string {
  return `${field}\u0000${token}`;
}
