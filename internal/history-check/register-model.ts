/**
 * The sequential specification of one key: a register with versions, as docs/api.md describes it. The search
 * (linearizability.ts) asks `step` whether an operation can take effect in a state, and what state follows.
 *
 * State: live or not (absent or deleted), the document when live, and the version. Every key starts absent.
 * - A found read needs a live key with exactly its document and version; a not-found read needs a dead key.
 * - An acknowledged mutation with version V needs its requirements (below) and V greater than the version
 *   (versions strictly increase per key, also across delete and re-create); it leaves version V.
 * - Requirements: a plain write none; `If-None-Match: *` a dead key; `If-Match: X` a live key at version X; a patch
 *   or delete a live key. A refused mutation (412, 404) needs a state where they do not hold, and changes nothing.
 * - An unknown mutation may take effect where its requirements hold, or never (the search decides); the version it
 *   got is not known, so the state records only that the version is greater than the one before (versionExact
 *   false). A later read or If-Match that names a version pins it, if it is greater.
 *
 * Two relaxations keep the state small; both can only accept more histories, never flag a valid one:
 * versions are treated as dense (an unknown version between V1 and V2 needs V2 > V1, not V2 > V1 + 1), and a
 * refused If-Match against an unknown version does not record which version the key does not have.
 */
import type { DocTable } from './doc-table.js';
import type { Operation } from './history.js';

export interface RegisterState {
  readonly live: boolean;
  /** DocTable id of the document, -1 when not live. */
  readonly docId: number;
  /** The version when versionExact; otherwise a bound: the real version is greater. */
  readonly version: number;
  readonly versionExact: boolean;
}

/** A key nobody has written: no document, and any first version is possible. */
export const ABSENT: RegisterState = Object.freeze({ live: false, docId: -1, version: 0, versionExact: false });

/** How an operation enters the search; operations that tell nothing (failed reads, `not-applied`) do not. */
export type ModelEffect = 'read-found' | 'read-absent' | 'acknowledged' | 'unknown' | 'refused';

export interface ModelOperation {
  readonly effect: ModelEffect;
  readonly kind: Operation['kind'];
  /** The written document (write) or the patch's fields, or a found read's document; -1 otherwise. */
  readonly docId: number;
  /** The acknowledged or read version; 0 otherwise. */
  readonly version: number;
  readonly ifMatch: number | undefined;
  readonly ifNoneMatch: boolean;
}

/** The operation as the model sees it, or undefined when it says nothing about the key's state. */
export function toModelOperation(op: Operation, docs: DocTable): ModelOperation | undefined {
  if (op.kind === 'read') {
    const outcome = op.outcome;
    if (outcome.status !== 'ok') return undefined;
    if (!outcome.found) return { effect: 'read-absent', kind: 'read', docId: -1, version: 0, ifMatch: undefined, ifNoneMatch: false };
    return { effect: 'read-found', kind: 'read', docId: docs.intern(outcome.doc), version: outcome.version, ifMatch: undefined, ifNoneMatch: false };
  }
  const outcome = op.outcome;
  if (outcome.status === 'failed' && outcome.cause === 'not-applied') return undefined;
  const effect: ModelEffect = outcome.status === 'ok' ? 'acknowledged' : outcome.status === 'unknown' ? 'unknown' : 'refused';
  const docId = op.kind === 'write' ? docs.intern(op.doc) : op.kind === 'patch' ? docs.intern(op.fields) : -1;
  const precondition = op.precondition;
  return {
    effect,
    kind: op.kind,
    docId,
    version: outcome.status === 'ok' ? outcome.version : 0,
    ifMatch: precondition !== undefined && 'ifMatch' in precondition ? precondition.ifMatch : undefined,
    ifNoneMatch: precondition !== undefined && 'ifNoneMatch' in precondition,
  };
}

/** The state after `op` takes effect in `state`, or undefined when it cannot take effect there. */
export function step(state: RegisterState, op: ModelOperation, docs: DocTable): RegisterState | undefined {
  switch (op.effect) {
    case 'read-found':
      return state.live && state.docId === op.docId ? pinVersion(state, op.version) : undefined;
    case 'read-absent':
      return state.live ? undefined : state;
    case 'refused':
      return canRefuse(state, op) ? state : undefined;
    case 'acknowledged': {
      const admitted = admit(state, op);
      if (admitted === undefined || !(op.version > admitted.version)) return undefined;
      return applied(admitted, op, docs, op.version, true);
    }
    case 'unknown': {
      const admitted = admit(state, op);
      return admitted === undefined ? undefined : applied(admitted, op, docs, admitted.version, false);
    }
  }
}

/** A short key for the search's cache: equal states, equal keys. */
export function stateKey(state: RegisterState): string {
  return `${state.live ? 'L' : 'D'}${state.versionExact ? '=' : '>'}${state.version}#${state.docId}`;
}

export function describeState(state: RegisterState, docs: DocTable): string {
  const version = state.versionExact ? `v${state.version}` : state.version === 0 ? 'an unknown version' : `a version > ${state.version}`;
  if (!state.live) return state.version === 0 && !state.versionExact ? 'absent' : `deleted at ${version}`;
  return `${docs.describe(state.docId)} at ${version}`;
}

/** The state with its version pinned to `version`, or undefined when it cannot be that version. */
function pinVersion(state: RegisterState, version: number): RegisterState | undefined {
  if (state.versionExact) return state.version === version ? state : undefined;
  return version > state.version ? { ...state, version, versionExact: true } : undefined;
}

/** The state as `op` sees it when its requirements hold (an If-Match pins an unknown version), else undefined. */
function admit(state: RegisterState, op: ModelOperation): RegisterState | undefined {
  if ((op.kind === 'patch' || op.kind === 'delete') && !state.live) return undefined;
  if (op.ifNoneMatch && state.live) return undefined;
  if (op.ifMatch !== undefined) return state.live ? pinVersion(state, op.ifMatch) : undefined;
  return state;
}

/** Whether some version consistent with `state` makes `op`'s requirements fail. */
function canRefuse(state: RegisterState, op: ModelOperation): boolean {
  if ((op.kind === 'patch' || op.kind === 'delete') && !state.live) return true;
  if (op.ifNoneMatch) return state.live || op.kind !== 'write';
  if (op.ifMatch !== undefined) return !state.live || !state.versionExact || state.version !== op.ifMatch;
  return false;
}

function applied(state: RegisterState, op: ModelOperation, docs: DocTable, version: number, versionExact: boolean): RegisterState {
  if (op.kind === 'delete') return { live: false, docId: -1, version, versionExact };
  const docId = op.kind === 'patch' ? docs.merge(state.docId, op.docId) : op.docId;
  return { live: true, docId, version, versionExact };
}
