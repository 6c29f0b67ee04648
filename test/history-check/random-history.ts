/**
 * Random histories that are linearizable by construction: clients issue operations on a few keys against a
 * simulated register that applies each one at a random instant inside its interval (an unknown one possibly never,
 * or after its client gave up), with cluster-wide versions that grow with random gaps, as etcd revisions do.
 * Seeded (internal/sim/prng.ts), so a failing seed replays.
 */
import type { Doc, MutationOutcome, Operation, Precondition, ReadOutcome } from '../../internal/history-check/history.js';
import { Prng } from '../../internal/sim/prng.js';

export interface RandomHistoryOptions {
  readonly seed: number;
  readonly operations: number;
  readonly clients?: number;
  readonly keys?: number;
  /** Share of operations whose outcome stays unknown. */
  readonly unknownRate?: number;
  /** Share of mutations that definitely fail without being applied (a 503 before sending, say). */
  readonly notAppliedRate?: number;
  /** Longest operation, in clock units; intervals are 1 to this long. */
  readonly durationMax?: number;
}

/** One state of a key in the order the simulated register went through them. */
export interface TrueState {
  readonly live: boolean;
  readonly doc: Doc | undefined;
  readonly version: number;
  /** The instant the register entered it. */
  readonly since: number;
}

export interface RandomHistory {
  readonly history: Operation[];
  /** Every state each key went through, oldest first. */
  readonly states: ReadonlyMap<string, readonly TrueState[]>;
}

type Action =
  | { kind: 'read' }
  | { kind: 'write'; doc: Doc; precondition?: Precondition }
  | { kind: 'patch'; fields: Doc }
  | { kind: 'delete' };

interface Pending {
  readonly id: string;
  readonly key: string;
  readonly process: string;
  readonly action: Action;
  readonly invokedAt: number;
  readonly completedAt: number;
  /** When it takes effect; undefined when it never does. */
  readonly effectAt: number | undefined;
  readonly fate: 'answered' | 'unknown' | 'not-applied';
  result?: MutationOutcome | ReadOutcome;
}

export function randomHistory(options: RandomHistoryOptions): RandomHistory {
  const prng = new Prng(options.seed);
  const clients = options.clients ?? 4;
  const keys = Array.from({ length: options.keys ?? 2 }, (_, i) => `k${i}`);
  const unknownRate = options.unknownRate ?? 0.1;
  const notAppliedRate = options.notAppliedRate ?? 0.05;
  const durationMax = options.durationMax ?? 20;
  const states = new Map<string, TrueState[]>(keys.map((key) => [key, [{ live: false, doc: undefined, version: 0, since: 0 }]]));
  const current = (key: string) => states.get(key)!.at(-1)!;
  const lastSeen = new Map<string, number>();
  let revision = 0;
  let issued = 0;
  const nextInvokeAt = Array.from({ length: clients }, () => prng.int(5));
  const pending: Pending[] = [];
  const history: Operation[] = [];

  const apply = (op: Pending, at: number) => {
    const state = current(op.key);
    const action = op.action;
    if (action.kind === 'read') {
      op.result = state.live ? { status: 'ok', found: true, doc: state.doc!, version: state.version } : { status: 'ok', found: false };
      return;
    }
    const allowed = action.kind === 'write' ? preconditionHolds(state, action.precondition) : state.live;
    if (!allowed) {
      op.result = { status: 'failed', cause: 'refused' };
      return;
    }
    revision += 1 + prng.int(3);
    const next: TrueState =
      action.kind === 'delete'
        ? { live: false, doc: undefined, version: revision, since: at }
        : { live: true, doc: action.kind === 'write' ? action.doc : { ...state.doc!, ...action.fields }, version: revision, since: at };
    states.get(op.key)!.push(next);
    op.result = { status: 'ok', version: revision };
  };

  const invoke = (client: number, at: number) => {
    const key = prng.pick(keys);
    const id = `o${issued++}`;
    const action = randomAction(prng, id, lastSeen.get(`${client}:${key}`));
    const duration = 1 + prng.int(durationMax);
    const completedAt = at + duration;
    const roll = prng.next();
    const fate = roll < unknownRate ? 'unknown' : action.kind !== 'read' && roll < unknownRate + notAppliedRate ? 'not-applied' : 'answered';
    let effectAt: number | undefined = at + prng.int(duration + 1);
    // An unknown mutation took effect or not; when it did, possibly long after its client gave up.
    if (fate === 'unknown' && action.kind !== 'read') effectAt = prng.chance(0.5) ? undefined : at + prng.int(3 * duration + 1);
    if (fate === 'not-applied') effectAt = undefined;
    pending.push({ id, key, process: `c${client}`, action, invokedAt: at, completedAt, effectAt, fate });
    nextInvokeAt[client] = completedAt + prng.int(5);
  };

  const complete = (op: Pending) => {
    history.push(toOperation(op));
    const outcome = op.result;
    const client = op.process.slice(1);
    if (op.fate === 'answered' && outcome !== undefined && outcome.status === 'ok') {
      const version = 'version' in outcome ? outcome.version : undefined;
      if (version !== undefined) lastSeen.set(`${client}:${op.key}`, version);
    }
  };

  // Events in time order: an effect before a completion before an invocation at the same instant, so an
  // operation's effect always lies inside its interval.
  const completed = new Set<Pending>();
  for (;;) {
    let best: { at: number; rank: number; run: () => void } | undefined;
    const consider = (at: number, rank: number, run: () => void) => {
      if (best === undefined || at < best.at || (at === best.at && rank < best.rank)) best = { at, rank, run };
    };
    for (const op of pending) {
      if (op.effectAt !== undefined && op.result === undefined) consider(op.effectAt, 0, () => apply(op, op.effectAt!));
      if (!completed.has(op)) {
        consider(op.completedAt, 1, () => {
          completed.add(op);
          complete(op);
        });
      }
    }
    if (issued < options.operations) {
      for (let client = 0; client < clients; client++) {
        if (!pending.some((op) => op.process === `c${client}` && !completed.has(op))) consider(nextInvokeAt[client]!, 2, () => invoke(client, nextInvokeAt[client]!));
      }
    }
    if (best === undefined) break;
    best.run();
    for (let i = pending.length - 1; i >= 0; i--) {
      const op = pending[i]!;
      if (completed.has(op) && (op.effectAt === undefined || op.result !== undefined)) pending.splice(i, 1);
    }
  }

  // The final quiescent reads, one per key, after everything took effect.
  const end = Math.max(0, ...history.map((op) => Math.max(op.completedAt, op.invokedAt)), ...[...states.values()].map((list) => list.at(-1)!.since)) + 10;
  for (const key of keys) {
    const state = current(key);
    const outcome: ReadOutcome = state.live ? { status: 'ok', found: true, doc: state.doc!, version: state.version } : { status: 'ok', found: false };
    history.push({ id: `final-${key}`, key, kind: 'read', process: 'final', invokedAt: end, completedAt: end + 1, outcome });
  }
  return { history, states };
}

function randomAction(prng: Prng, id: string, lastSeenVersion: number | undefined): Action {
  const roll = prng.next();
  if (roll < 0.4) return { kind: 'read' };
  if (roll < 0.6) return { kind: 'write', doc: prng.chance(0.5) ? { w: id } : { w: id, x: `${id}x` } };
  if (roll < 0.75) return { kind: 'patch', fields: { [prng.pick(['p', 'q'])]: id } };
  if (roll < 0.85) return { kind: 'delete' };
  if (prng.chance(0.5) || lastSeenVersion === undefined) return { kind: 'write', doc: { w: id }, precondition: { ifNoneMatch: '*' } };
  return { kind: 'write', doc: { w: id }, precondition: { ifMatch: lastSeenVersion } };
}

function preconditionHolds(state: TrueState, precondition: Precondition | undefined): boolean {
  if (precondition === undefined) return true;
  if ('ifNoneMatch' in precondition) return !state.live;
  return state.live && state.version === precondition.ifMatch;
}

function toOperation(op: Pending): Operation {
  const base = { id: op.id, key: op.key, process: op.process, invokedAt: op.invokedAt, completedAt: op.completedAt };
  const action = op.action;
  if (action.kind === 'read') {
    const outcome: ReadOutcome = op.fate === 'unknown' ? { status: 'unknown' } : (op.result as ReadOutcome);
    return { ...base, kind: 'read', outcome };
  }
  const outcome: MutationOutcome =
    op.fate === 'unknown' ? { status: 'unknown' } : op.fate === 'not-applied' ? { status: 'failed', cause: 'not-applied' } : (op.result as MutationOutcome);
  if (action.kind === 'write') return { ...base, kind: 'write', doc: action.doc, outcome, ...(action.precondition === undefined ? {} : { precondition: action.precondition }) };
  if (action.kind === 'patch') return { ...base, kind: 'patch', fields: action.fields, outcome };
  return { ...base, kind: 'delete', outcome };
}
