/**
 * Violations: what broke, on which key, and the operations that show it, each with its id, times and outcome, so
 * that a failing run can be read back without the raw history.
 */
import { describeOperation, type Operation } from './history.js';

/**
 * - `not-linearizable`: no order of the key's operations consistent with real time explains every result (the
 *   search, linearizability.ts). The only check that sees every anomaly; the others name the common ones.
 * - `stale-read`: a read returned an older version than one already acknowledged or read before it began.
 * - `lost-write`: an acknowledged write or patch is gone from a read that began after it completed, and no
 *   operation that could have replaced it (a later write, a patch of the same field, a delete) exists.
 * - `resurrected-delete`: after a delete was acknowledged, a read began and found the deleted document, or a
 *   document older than the delete.
 * - `read-of-unwritten`: a read returned a field value that no operation on the key ever wrote.
 * - `read-of-failed-write`: a read returned a field value written only by operations that definitely failed.
 * - `torn-read`: a read returned a document that no single write, with patches after it, can produce (parts of
 *   two writes).
 * - `version-order`: an acknowledged mutation got a version no greater than one acknowledged or read before it
 *   began.
 * - `version-reused`: one version names two different things (two mutations, or a document different from the
 *   acknowledged write's).
 */
export type ViolationKind =
  | 'not-linearizable'
  | 'stale-read'
  | 'lost-write'
  | 'resurrected-delete'
  | 'read-of-unwritten'
  | 'read-of-failed-write'
  | 'torn-read'
  | 'version-order'
  | 'version-reused';

/** An operation as a violation names it. */
export interface OperationRef {
  readonly id: string;
  readonly key: string;
  readonly kind: Operation['kind'];
  readonly process: string | undefined;
  readonly invokedAt: number;
  readonly completedAt: number;
  readonly status: Operation['outcome']['status'];
  /** One line: id, action, outcome, times (history.ts describeOperation). */
  readonly summary: string;
}

export interface Violation {
  readonly kind: ViolationKind;
  readonly key: string;
  /** The violated condition in a sentence, naming the operations by id. */
  readonly message: string;
  readonly operations: readonly OperationRef[];
}

export function operationRef(op: Operation): OperationRef {
  return {
    id: op.id,
    key: op.key,
    kind: op.kind,
    process: op.process,
    invokedAt: op.invokedAt,
    completedAt: op.completedAt,
    status: op.outcome.status,
    summary: describeOperation(op),
  };
}

/** Collects violations, keeping at most `perKindMax` of each kind and counting the rest. */
export class ViolationLog {
  readonly violations: Violation[] = [];
  readonly omitted: Partial<Record<ViolationKind, number>> = {};
  private readonly counts = new Map<ViolationKind, number>();

  constructor(private readonly perKindMax: number) {}

  add(kind: ViolationKind, key: string, message: string, operations: readonly Operation[]): void {
    const count = (this.counts.get(kind) ?? 0) + 1;
    this.counts.set(kind, count);
    if (count > this.perKindMax) {
      this.omitted[kind] = (this.omitted[kind] ?? 0) + 1;
      return;
    }
    const unique = operations.filter((op, at) => operations.indexOf(op) === at);
    this.violations.push({ kind, key, message, operations: unique.map(operationRef) });
  }
}
