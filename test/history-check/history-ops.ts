/**
 * Terse constructors for hand-written histories: `write('w1', { v: 'a' }, [0, 10], ok(1))`. Every operation is
 * on key `k` unless `{ key }` says otherwise.
 */
import type {
  DeleteOperation,
  Doc,
  MutationOutcome,
  PatchOperation,
  Precondition,
  ReadOperation,
  ReadOutcome,
  WriteOperation,
} from '../../internal/history-check/history.js';

export type Interval = readonly [invokedAt: number, completedAt: number];

export interface OpOptions {
  readonly key?: string;
  readonly precondition?: Precondition;
  readonly process?: string;
}

export const ok = (version: number): MutationOutcome => ({ status: 'ok', version });
export const unknown = { status: 'unknown' } as const;
export const refused: MutationOutcome = { status: 'failed', cause: 'refused' };
export const notApplied: MutationOutcome = { status: 'failed', cause: 'not-applied' };
export const found = (doc: Doc, version: number): ReadOutcome => ({ status: 'ok', found: true, doc, version });
export const absent: ReadOutcome = { status: 'ok', found: false };
export const readFailed: ReadOutcome = { status: 'failed' };
export const ifMatch = (version: number): Precondition => ({ ifMatch: version });
export const ifNoneMatch: Precondition = { ifNoneMatch: '*' };

export function write(id: string, doc: Doc, [invokedAt, completedAt]: Interval, outcome: MutationOutcome, options: OpOptions = {}): WriteOperation {
  return { id, key: options.key ?? 'k', kind: 'write', doc, invokedAt, completedAt, outcome, ...extras(options) };
}

export function patch(id: string, fields: Doc, [invokedAt, completedAt]: Interval, outcome: MutationOutcome, options: OpOptions = {}): PatchOperation {
  return { id, key: options.key ?? 'k', kind: 'patch', fields, invokedAt, completedAt, outcome, ...extras(options) };
}

export function del(id: string, [invokedAt, completedAt]: Interval, outcome: MutationOutcome, options: OpOptions = {}): DeleteOperation {
  return { id, key: options.key ?? 'k', kind: 'delete', invokedAt, completedAt, outcome, ...extras(options) };
}

export function read(id: string, [invokedAt, completedAt]: Interval, outcome: ReadOutcome, options: OpOptions = {}): ReadOperation {
  const { precondition: _ignored, ...rest } = extras(options);
  return { id, key: options.key ?? 'k', kind: 'read', invokedAt, completedAt, outcome, ...rest };
}

function extras(options: OpOptions): { precondition?: Precondition; process?: string } {
  return {
    ...(options.precondition === undefined ? {} : { precondition: options.precondition }),
    ...(options.process === undefined ? {} : { process: options.process }),
  };
}
