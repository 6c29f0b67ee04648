/**
 * Pruning rules for operations with unknown outcomes. Such an operation never completes, so it stays a candidate
 * of the search forever, and a naive search tries every subset of the pending ones, in every order, wherever it
 * backtracks: exponential in how many are pending, which is what made histories with a few dozen timeouts per key
 * run for minutes.
 *
 * In any order the search builds, the unknown operations form runs: maximal sequences of unknown operations
 * between two completed ones. A run at the end can be dropped (its operations simply never took effect). The rules
 * below skip a run, or an order within a run, when another order the search also tries reaches the same state
 * with fewer unknown operations used, or a state that accepts everything this one accepts. Fewer unknown
 * operations used never hurts, since an unused one may still take effect later or never; so no valid history is
 * rejected because of them (the randomized tests check the search against brute force).
 */
import type { DocTable } from './doc-table.js';
import { step, type ModelOperation, type RegisterState } from './register-model.js';

/**
 * Whether completed operation `op` may come right after a run of unknown operations that started in state
 * `runStart`. When `op` can take effect in `runStart` itself, the run was of no use to it:
 * - a write or delete (acknowledged) leaves a state that does not depend on what was before, so the same
 *   state is reached without the run;
 * - a refused operation or a read leaves the state as it is (a found read pins an unknown version; it is only
 *   exempt when `runStart`'s version is known), so the run can come after it instead.
 * A patch merges into the document before it, so a run before it can matter even when it could take effect
 * without it: no rule.
 */
export function mayFollowRun(runStart: RegisterState, op: ModelOperation, docs: DocTable): boolean {
  if (op.kind === 'patch') return true;
  if (op.effect === 'read-found' && !runStart.versionExact) return true;
  return step(runStart, op, docs) === undefined;
}

/**
 * Whether unknown operation `op` may follow unknown operation `previous` in a run.
 * - An unconditional write replaces everything: taking it where `previous` was taken reaches the same document
 *   with an equal or more permissive version bound, without `previous`.
 * - An unconditional delete: where `previous` was taken the key was either live (delete there instead) or
 *   deleted (take neither: a deleted key at the older bound accepts everything the newer one does).
 * - Two unconditional patches: when `op` sets every field `previous` set, `previous` is overwritten (take `op`
 *   alone); when they set disjoint fields they commute, so only one order (ascending index) is tried.
 */
export function mayContinueRun(previous: ModelOperation, previousIndex: number, op: ModelOperation, index: number, fieldsOf: (op: ModelOperation) => readonly string[]): boolean {
  const unconditional = op.ifMatch === undefined && !op.ifNoneMatch;
  if (!unconditional) return true;
  if (op.kind === 'write' || op.kind === 'delete') return false;
  if (op.kind !== 'patch' || previous.kind !== 'patch' || previous.ifMatch !== undefined || previous.ifNoneMatch) return true;
  const fields = fieldsOf(op);
  const previousFields = fieldsOf(previous);
  if (previousFields.every((field) => fields.includes(field))) return false;
  const disjoint = previousFields.every((field) => !fields.includes(field));
  return !disjoint || index > previousIndex;
}
