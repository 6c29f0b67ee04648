/**
 * checkHistory: every check of a client history, key by key (per-key linearizability composes: a history is
 * linearizable when each key's sub-history is). No I/O, no clock, no randomness: the same history gives the same
 * result.
 */
import { DocTable } from './doc-table.js';
import { assertWellFormed, describeOperation, type Operation } from './history.js';
import { SEARCH_STATES_MAX_DEFAULT, searchLinearization, type SearchResult } from './linearizability.js';
import { checkOrdering } from './order-invariants.js';
import { toSearchInput } from './search-input.js';
import { checkReadValues } from './value-invariants.js';
import { ViolationLog, type Violation, type ViolationKind } from './violations.js';

/** Violations kept per kind; further ones are only counted (`violationsOmitted`). */
export const VIOLATIONS_PER_KIND_MAX_DEFAULT = 20;

export interface CheckOptions {
  /** Budget of the linearizability search, in distinct configurations per key (linearizability.ts). */
  readonly statesMaxPerKey?: number;
  readonly violationsPerKindMax?: number;
}

export interface KeyCheckSummary {
  readonly key: string;
  readonly operations: number;
  /** Operations the search had to order (failed reads and `not-applied` mutations say nothing and are left out). */
  readonly searched: number;
  readonly unknownOutcomes: number;
  readonly linearizability: SearchResult['status'];
  readonly statesExplored: number;
}

export interface HistoryCheckResult {
  /** `invalid` when any violation was found; `inconclusive` when none was but a key's search ran out of budget. */
  readonly verdict: 'valid' | 'invalid' | 'inconclusive';
  readonly violations: readonly Violation[];
  readonly violationsOmitted: Partial<Record<ViolationKind, number>>;
  /** Keys whose search reached its budget: their linearizability is not known. */
  readonly inconclusiveKeys: readonly string[];
  readonly keys: readonly KeyCheckSummary[];
  readonly statesExplored: number;
}

export function checkHistory(history: readonly Operation[], options: CheckOptions = {}): HistoryCheckResult {
  assertWellFormed(history);
  const statesMax = options.statesMaxPerKey ?? SEARCH_STATES_MAX_DEFAULT;
  const log = new ViolationLog(options.violationsPerKindMax ?? VIOLATIONS_PER_KIND_MAX_DEFAULT);
  const keys: KeyCheckSummary[] = [];
  for (const [key, ops] of byKey(history)) {
    const bases = checkReadValues(ops, log);
    checkOrdering(ops, bases, log);
    keys.push(checkLinearizable(key, ops, statesMax, log));
  }
  const inconclusiveKeys = keys.filter((summary) => summary.linearizability === 'inconclusive').map((summary) => summary.key);
  const verdict = log.violations.length > 0 ? 'invalid' : inconclusiveKeys.length > 0 ? 'inconclusive' : 'valid';
  return {
    verdict,
    violations: log.violations,
    violationsOmitted: log.omitted,
    inconclusiveKeys,
    keys,
    statesExplored: keys.reduce((sum, summary) => sum + summary.statesExplored, 0),
  };
}

function checkLinearizable(key: string, ops: readonly Operation[], statesMax: number, log: ViolationLog): KeyCheckSummary {
  const docs = new DocTable();
  const { searched, operations: searchOps } = toSearchInput(ops, docs);
  const result = searchLinearization(searchOps, docs, statesMax);
  if (result.status === 'not-linearizable') {
    const { deepest } = result;
    const blocking = searched[deepest.blocking]!;
    const tail = deepest.order.slice(-4).map((index) => searched[index]!);
    const rivals = deepest.candidates.filter((index) => index !== deepest.blocking).slice(0, 6).map((index) => searched[index]!);
    const prefix = tail.length === 0 ? 'nothing' : `${deepest.order.length} operations, ending ${tail.map((op) => op.id).join(', ')}`;
    log.add(
      'not-linearizable',
      key,
      `key ${key} is not linearizable: at best ${deepest.completedTaken} of ${deepest.completedTotal} completed operations take effect in order ` +
        `(${prefix}); the state is then ${deepest.state}, and no order of what may come next lets ` +
        `${describeOperation(blocking)} take effect before it completes`,
      [blocking, ...rivals, ...tail],
    );
  }
  return {
    key,
    operations: ops.length,
    searched: searchOps.length,
    unknownOutcomes: ops.filter((op) => op.outcome.status === 'unknown').length,
    linearizability: result.status,
    statesExplored: result.statesExplored,
  };
}

function byKey(history: readonly Operation[]): Map<string, Operation[]> {
  const keys = new Map<string, Operation[]>();
  for (const op of history) {
    const list = keys.get(op.key);
    if (list === undefined) keys.set(op.key, [op]);
    else list.push(op);
  }
  return keys;
}

/** The result as text, one violation per paragraph, for a test's failure message or a run's log. */
export function formatCheckResult(result: HistoryCheckResult): string {
  const lines = [`verdict: ${result.verdict} (${result.keys.length} keys, ${result.statesExplored} search states)`];
  for (const violation of result.violations) {
    lines.push(`${violation.kind} on key ${violation.key}: ${violation.message}`);
    for (const op of violation.operations) lines.push(`  ${op.summary}`);
  }
  for (const [kind, count] of Object.entries(result.violationsOmitted)) lines.push(`(${count} more ${kind} not listed)`);
  for (const key of result.inconclusiveKeys) lines.push(`key ${key}: linearizability inconclusive (search budget reached)`);
  return lines.join('\n');
}
