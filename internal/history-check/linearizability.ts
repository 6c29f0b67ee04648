/**
 * Linearizability of one key's operations against the register model (register-model.ts): is there an order of
 * the operations that respects real time (an operation that completed before another was invoked comes first)
 * in which every operation's result is what the model answers? Wing & Gong's depth-first search with Lowe's
 * memoization, as Porcupine and Knossos do it, written here.
 *
 * The search takes one operation at a time from the candidates: the operations not yet taken that were invoked
 * no later than the earliest completion among the completed operations not yet taken (taking anything invoked
 * after that completion would break real time). Each candidate the model accepts leads to a new configuration
 * (taken set, state); when none does, the search backtracks. It succeeds when every completed operation is taken.
 *
 * Unknown outcomes complete at +infinity, so they never close a window; an unknown operation left untaken at the
 * end never took effect. Times that are equal count as concurrent (a completion at t does not precede an
 * invocation at t), which can only accept more histories.
 *
 * Memoization: a configuration seen before is not explored again. A configuration is the set of completed
 * operations taken, the model state, and the set of unknown operations taken. Because an unknown operation may
 * also never take effect, a configuration whose unknown set is a superset of one already seen (same completed set
 * and state) can reach nothing the smaller one could not, and is pruned too; completed operations are tried before
 * unknown ones so the smaller sets tend to come first. Runs of unknown operations are pruned further by
 * unknown-runs.ts, and interchangeable unknown operations are tried once (symmetry classes, search-input.ts).
 *
 * Budget: `statesMax` distinct configurations per key (each costs a cache entry: 90 to 650 bytes measured, the
 * most when patches make many distinct documents). A search that reaches it stops and answers `inconclusive`,
 * never a guess.
 */
import type { DocTable } from './doc-table.js';
import { ABSENT, describeState, step, stateKey, type ModelOperation, type RegisterState } from './register-model.js';
import { mayContinueRun, mayFollowRun } from './unknown-runs.js';

/** Default budget of distinct configurations per key: a few seconds and a few hundred MB at most (README.md). */
export const SEARCH_STATES_MAX_DEFAULT = 1_000_000;

/**
 * Unknown sets kept per (completed set, state) for the superset test; further ones are only deduplicated exactly,
 * so a key whose configurations differ only in many incomparable unknown sets does not make every step scan them.
 */
const SUBSET_SCAN_MAX = 32;

/**
 * The unknown sets seen with one (completed set, state): usually just one, kept as is; once there are more, the
 * first SUBSET_SCAN_MAX (checked for being a subset of a new one) and every set as text (for equality).
 */
type SeenUnknown = readonly number[] | { readonly scanned: (readonly number[])[]; readonly exact: Set<string> };

/** One operation as the search takes it: the model's view and its time interval. */
export interface SearchOperation {
  readonly model: ModelOperation;
  readonly invokedAt: number;
  /** +Infinity for an unknown outcome. */
  readonly completedAt: number;
  /**
   * Unknown operations of one class (>= 0) are interchangeable: only the earliest-invoked untaken one is a
   * candidate (search-input.ts). -1: none.
   */
  readonly symmetryClass: number;
}

export type SearchResult =
  | { readonly status: 'linearizable'; readonly statesExplored: number; readonly order: readonly number[] }
  | { readonly status: 'not-linearizable'; readonly statesExplored: number; readonly deepest: DeepestPoint }
  | { readonly status: 'inconclusive'; readonly statesExplored: number; readonly statesMax: number };

/**
 * Where the search got furthest: the longest prefix of completed operations it could take (`order`, indices into
 * the operations, unknown ones included), the state after it, the completed operation that had to be taken next
 * (the earliest to complete among those left: `blocking`) and the operations that could have come next
 * (`candidates`). No continuation from there takes `blocking`.
 */
export interface DeepestPoint {
  readonly order: readonly number[];
  readonly completedTaken: number;
  readonly completedTotal: number;
  readonly state: string;
  readonly blocking: number;
  readonly candidates: readonly number[];
}

interface Frame {
  readonly parent: Frame | undefined;
  readonly state: RegisterState;
  /** The operation taken to reach this frame; -1 at the root. */
  readonly taken: number;
  /** When `taken` has an unknown outcome: the state before the run of unknown operations it ends (unknown-runs.ts). */
  readonly runStart: RegisterState | undefined;
  /** Position in byCompletion of the first completed operation not taken: all before it are taken. */
  readonly completedLow: number;
  /** Positions in byCompletion after completedLow that are taken, ascending. */
  readonly completedAbove: readonly number[];
  /** Indices among the unknown operations that are taken, ascending. */
  readonly unknownTaken: readonly number[];
  /** Position in byInvocation of the first operation not taken. */
  readonly invocationLow: number;
  readonly candidates: readonly number[];
  next: number;
}

export function searchLinearization(ops: readonly SearchOperation[], docs: DocTable, statesMax: number): SearchResult {
  return new Search(ops, docs, statesMax).run();
}

class Search {
  private readonly byInvocation: number[];
  private readonly byCompletion: number[];
  /** Position in byCompletion of each completed operation, -1 for unknown ones. */
  private readonly completionPos: Int32Array;
  /** Index among unknown operations, -1 for completed ones. */
  private readonly unknownIndex: Int32Array;
  private readonly taken: Uint8Array;
  /** Unknown sets seen per (completed set, state). */
  private readonly seen = new Map<string, SeenUnknown>();
  private statesExplored = 0;
  /** The frame with the most completed operations taken so far (the first such). */
  private deepest: Frame | undefined;
  private readonly fieldsOf = (op: ModelOperation): readonly string[] => this.docs.fieldsOf(op.docId);

  constructor(
    private readonly ops: readonly SearchOperation[],
    private readonly docs: DocTable,
    private readonly statesMax: number,
  ) {
    const indices = ops.map((_, index) => index);
    this.byInvocation = [...indices].sort((a, b) => ops[a]!.invokedAt - ops[b]!.invokedAt || a - b);
    this.byCompletion = indices
      .filter((index) => ops[index]!.completedAt !== Infinity)
      .sort((a, b) => ops[a]!.completedAt - ops[b]!.completedAt || a - b);
    this.completionPos = new Int32Array(ops.length).fill(-1);
    this.byCompletion.forEach((index, pos) => (this.completionPos[index] = pos));
    this.unknownIndex = new Int32Array(ops.length).fill(-1);
    let unknownCount = 0;
    for (const index of indices) if (ops[index]!.completedAt === Infinity) this.unknownIndex[index] = unknownCount++;
    this.taken = new Uint8Array(ops.length);
  }

  run(): SearchResult {
    const root = this.frame(undefined, ABSENT, -1, undefined, 0, [], [], 0);
    this.deepest = root;
    const stack: Frame[] = [root];
    for (;;) {
      const top = stack[stack.length - 1]!;
      if (top.completedLow === this.byCompletion.length) {
        return { status: 'linearizable', statesExplored: this.statesExplored, order: stack.slice(1).map((frame) => frame.taken) };
      }
      if (top.next >= top.candidates.length) {
        stack.pop();
        if (stack.length === 0) return { status: 'not-linearizable', statesExplored: this.statesExplored, deepest: this.deepestPoint() };
        this.taken[top.taken] = 0;
        continue;
      }
      const index = top.candidates[top.next++]!;
      const child = this.tryTake(top, index);
      if (child === undefined) continue;
      if (++this.statesExplored > this.statesMax) {
        return { status: 'inconclusive', statesExplored: this.statesMax, statesMax: this.statesMax };
      }
      stack.push(child);
      if (completedCount(child) > completedCount(this.deepest!)) this.deepest = child;
    }
  }

  /** The frame after taking `index` from `parent`, or undefined when the model refuses it or it is pruned. */
  private tryTake(parent: Frame, index: number): Frame | undefined {
    const op = this.ops[index]!.model;
    const pos = this.completionPos[index]!;
    if (parent.runStart !== undefined) {
      const allowed =
        pos === -1
          ? mayContinueRun(this.ops[parent.taken]!.model, parent.taken, op, index, this.fieldsOf)
          : mayFollowRun(parent.runStart, op, this.docs);
      if (!allowed) return undefined;
    }
    const state = step(parent.state, op, this.docs);
    if (state === undefined) return undefined;
    let completedLow = parent.completedLow;
    let completedAbove = parent.completedAbove;
    let unknownTaken = parent.unknownTaken;
    if (pos === -1) {
      unknownTaken = insertSorted(unknownTaken, this.unknownIndex[index]!);
    } else if (pos === completedLow) {
      completedLow++;
      let skip = 0;
      while (skip < completedAbove.length && completedAbove[skip] === completedLow) {
        completedLow++;
        skip++;
      }
      completedAbove = skip === 0 ? completedAbove : completedAbove.slice(skip);
    } else {
      completedAbove = insertSorted(completedAbove, pos);
    }
    if (this.seenBefore(`${completedLow}/${completedAbove.join(',')}/${stateKey(state)}`, unknownTaken)) return undefined;
    this.taken[index] = 1;
    const runStart = pos === -1 ? (parent.runStart ?? parent.state) : undefined;
    return this.frame(parent, state, index, runStart, completedLow, completedAbove, unknownTaken, parent.invocationLow);
  }

  /** Whether the configuration, or one with a subset of its unknown operations, was seen; records it if not. */
  private seenBefore(cacheKey: string, unknownTaken: readonly number[]): boolean {
    const seen = this.seen.get(cacheKey);
    if (seen === undefined) {
      this.seen.set(cacheKey, unknownTaken);
      return false;
    }
    if (Array.isArray(seen)) {
      if (isSubset(seen, unknownTaken)) return true;
      this.seen.set(cacheKey, { scanned: [seen, unknownTaken], exact: new Set([seen.join(','), unknownTaken.join(',')]) });
      return false;
    }
    const many = seen as Exclude<SeenUnknown, readonly number[]>;
    const text = unknownTaken.join(',');
    if (many.exact.has(text) || many.scanned.some((smaller) => isSubset(smaller, unknownTaken))) return true;
    many.exact.add(text);
    if (many.scanned.length < SUBSET_SCAN_MAX) many.scanned.push(unknownTaken);
    return false;
  }

  private frame(
    parent: Frame | undefined,
    state: RegisterState,
    taken: number,
    runStart: RegisterState | undefined,
    completedLow: number,
    completedAbove: readonly number[],
    unknownTaken: readonly number[],
    invocationLowFrom: number,
  ): Frame {
    let invocationLow = invocationLowFrom;
    while (invocationLow < this.byInvocation.length && this.taken[this.byInvocation[invocationLow]!] === 1) invocationLow++;
    const windowEnd = completedLow < this.byCompletion.length ? this.ops[this.byCompletion[completedLow]!]!.completedAt : Infinity;
    const completed: number[] = [];
    const unknown: number[] = [];
    const classes = new Set<number>();
    for (let pos = invocationLow; pos < this.byInvocation.length; pos++) {
      const index = this.byInvocation[pos]!;
      const op = this.ops[index]!;
      if (op.invokedAt > windowEnd) break;
      if (this.taken[index] === 1) continue;
      if (op.completedAt !== Infinity) {
        completed.push(index);
      } else if (op.symmetryClass < 0 || !classes.has(op.symmetryClass)) {
        classes.add(op.symmetryClass);
        unknown.push(index);
      }
    }
    return { parent, state, taken, runStart, completedLow, completedAbove, unknownTaken, invocationLow, candidates: completed.concat(unknown), next: 0 };
  }

  private deepestPoint(): DeepestPoint {
    const top = this.deepest!;
    const order: number[] = [];
    for (let frame: Frame | undefined = top; frame?.parent !== undefined; frame = frame.parent) order.push(frame.taken);
    return {
      order: order.reverse(),
      completedTaken: completedCount(top),
      completedTotal: this.byCompletion.length,
      state: describeState(top.state, this.docs),
      blocking: this.byCompletion[top.completedLow] ?? -1,
      candidates: top.candidates,
    };
  }
}

function completedCount(frame: Frame): number {
  return frame.completedLow + frame.completedAbove.length;
}

function insertSorted(values: readonly number[], value: number): number[] {
  const result = values.slice();
  let at = result.length;
  while (at > 0 && result[at - 1]! > value) at--;
  result.splice(at, 0, value);
  return result;
}

/** Whether every element of ascending `small` is in ascending `large`. */
function isSubset(small: readonly number[], large: readonly number[]): boolean {
  if (small.length > large.length) return false;
  let j = 0;
  for (const value of small) {
    while (j < large.length && large[j]! < value) j++;
    if (j === large.length || large[j] !== value) return false;
    j++;
  }
  return true;
}
