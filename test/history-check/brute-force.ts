/**
 * A reference linearizability check for tiny histories: tries every order of one key's operations that respects
 * real time (and every subset of the unknown ones), with the same register model but none of the search's
 * memoization, pruning or symmetry. Exponential; for up to about eight operations.
 */
import { DocTable } from '../../internal/history-check/doc-table.js';
import type { Operation } from '../../internal/history-check/history.js';
import { ABSENT, step, toModelOperation, type ModelOperation, type RegisterState } from '../../internal/history-check/register-model.js';

interface Item {
  readonly model: ModelOperation;
  readonly invokedAt: number;
  readonly completedAt: number;
}

export function bruteForceLinearizable(ops: readonly Operation[]): boolean {
  const docs = new DocTable();
  const items: Item[] = [];
  for (const op of ops) {
    const model = toModelOperation(op, docs);
    if (model === undefined) continue;
    items.push({ model, invokedAt: op.invokedAt, completedAt: model.effect === 'unknown' ? Infinity : op.completedAt });
  }
  const taken = new Array<boolean>(items.length).fill(false);
  const search = (state: RegisterState): boolean => {
    if (items.every((item, index) => taken[index] || item.completedAt === Infinity)) return true;
    for (let index = 0; index < items.length; index++) {
      if (taken[index]) continue;
      const item = items[index]!;
      // Every completed operation that ended before this one began must already have taken effect.
      if (items.some((other, j) => !taken[j] && other.completedAt < item.invokedAt)) continue;
      const next = step(state, item.model, docs);
      if (next === undefined) continue;
      taken[index] = true;
      if (search(next)) return true;
      taken[index] = false;
    }
    return false;
  };
  return search(ABSENT);
}
