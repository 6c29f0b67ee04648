/**
 * The history model: what a client did to which key, when, and what it learned. The partition test records one
 * Operation per client request (a request and its retries under one Idempotency-Key count as one operation, from
 * the first send to the last answer) and hands the list to checkHistory (check-history.ts).
 *
 * Times are numbers from the test's injected clock (any unit, only their order matters), never wall time read
 * here. Versions are Strata's decimal version strings parsed to numbers (etcd revisions and the embedded counter
 * stay far below 2^53). Documents are reduced by the feeder to flat maps of field name to token, each token a
 * value written once in the whole run (see Doc).
 */
import { assert } from '../core/assert.js';

/**
 * A document as the checker sees it: field name to a string token. The feeder keeps only the fields its workload
 * writes (for example `{ w: 'w-17' }` for a write and `{ p3: 'p-41' }` for a patch merging field `p3`) and gives
 * each write and patch fresh tokens, so a token names the operation that wrote it.
 */
export type Doc = Readonly<Record<string, string>>;

/** `If-Match: "<version>"` (applies only to a live key at exactly that version) or `If-None-Match: *` (create-only). */
export type Precondition = { readonly ifMatch: number } | { readonly ifNoneMatch: '*' };

/**
 * What a mutation's client learned.
 * - `ok`: acknowledged (200), with the version the server answered.
 * - `failed`, cause `refused`: the server answered that the key's state did not allow it (412 VERSION_MISMATCH or
 *   ALREADY_EXISTS, 404 NOT_FOUND for a patch or delete). Not applied, and checked as an observation: the key's
 *   state at some instant during the operation must refuse it. The two codes are not told apart (which one a
 *   gateway answers for `If-Match` on an absent key is its choice).
 * - `failed`, cause `not-applied`: definitely not applied for a reason that says nothing about the key (a
 *   validation 4xx, 507, a 503 that docs/api.md says changes nothing, a connection refused before anything was
 *   sent). Ignored by the search.
 * - `unknown`: may or may not have been applied (a timeout, a connection dropped after sending, 504
 *   COMMIT_UNKNOWN, another 5xx after sending). It may take effect at any instant after its invocation, even after
 *   its client gave up, or never.
 */
export type MutationOutcome =
  | { readonly status: 'ok'; readonly version: number }
  | { readonly status: 'failed'; readonly cause: 'refused' | 'not-applied' }
  | { readonly status: 'unknown' };

/** What a read's client learned. A failed or unknown read tells nothing and is ignored by the checks. */
export type ReadOutcome =
  | { readonly status: 'ok'; readonly found: true; readonly doc: Doc; readonly version: number }
  | { readonly status: 'ok'; readonly found: false }
  | { readonly status: 'failed' }
  | { readonly status: 'unknown' };

interface OperationBase {
  /** Unique in the history; named in violations. */
  readonly id: string;
  readonly key: string;
  /** The client or worker that issued it; for messages only. */
  readonly process?: string;
  /** When the client sent the request. */
  readonly invokedAt: number;
  /**
   * When the client got its answer (or, for an unknown outcome, gave up; the search then treats the completion
   * as never, and this time is used in messages only).
   */
  readonly completedAt: number;
}

/** POST /write: replaces the whole document. */
export interface WriteOperation extends OperationBase {
  readonly kind: 'write';
  readonly doc: Doc;
  readonly precondition?: Precondition;
  readonly outcome: MutationOutcome;
}

/**
 * PATCH /patch as a JSON Merge Patch that sets each of `fields` (never removes one): the result is the current
 * document with these fields replaced, so it needs a live key (404 otherwise). Modelled natively rather than as a
 * write of its result, because the client does not know the result: the server applies the patch to whatever
 * document is current when it commits (re-applied on a commit race), and answers only with a version.
 */
export interface PatchOperation extends OperationBase {
  readonly kind: 'patch';
  readonly fields: Doc;
  readonly precondition?: Precondition;
  readonly outcome: MutationOutcome;
}

/** DELETE /delete: the key becomes a tombstone with a new version; needs a live key (404 otherwise). */
export interface DeleteOperation extends OperationBase {
  readonly kind: 'delete';
  readonly precondition?: Precondition;
  readonly outcome: MutationOutcome;
}

/** GET /read: the whole document and its version, or not found (404). */
export interface ReadOperation extends OperationBase {
  readonly kind: 'read';
  readonly outcome: ReadOutcome;
}

export type MutationOperation = WriteOperation | PatchOperation | DeleteOperation;
export type Operation = MutationOperation | ReadOperation;
export type OperationKind = Operation['kind'];

export function isAcknowledged(op: Operation): op is MutationOperation & { readonly outcome: { readonly status: 'ok'; readonly version: number } } {
  return op.kind !== 'read' && op.outcome.status === 'ok';
}

export function isFoundRead(op: Operation): op is ReadOperation & { readonly outcome: { readonly status: 'ok'; readonly found: true; readonly doc: Doc; readonly version: number } } {
  return op.kind === 'read' && op.outcome.status === 'ok' && op.outcome.found;
}

export function isAbsentRead(op: Operation): op is ReadOperation {
  return op.kind === 'read' && op.outcome.status === 'ok' && !op.outcome.found;
}

/** Definitely not applied (either failure cause). */
export function isFailedMutation(op: Operation): boolean {
  return op.kind !== 'read' && op.outcome.status === 'failed';
}

/** The version an operation carries: an acknowledged mutation's or a found read's. */
export function versionOf(op: Operation): number | undefined {
  if (op.outcome.status !== 'ok') return undefined;
  if (op.kind === 'read') return op.outcome.found ? op.outcome.version : undefined;
  return op.outcome.version;
}

/**
 * Checks that a history is well formed. A malformed history is a bug in the test that recorded it, so this
 * asserts rather than reporting a violation.
 */
export function assertWellFormed(history: readonly Operation[]): void {
  const ids = new Set<string>();
  for (const op of history) {
    assert(typeof op.id === 'string' && op.id.length > 0, `operation id is a non-empty string (got ${String(op.id)})`);
    assert(!ids.has(op.id), `operation ids are unique (${op.id} repeats)`);
    ids.add(op.id);
    assert(typeof op.key === 'string', `${op.id}: key is a string`);
    assert(Number.isFinite(op.invokedAt), `${op.id}: invokedAt is finite`);
    assert(Number.isFinite(op.completedAt), `${op.id}: completedAt is finite`);
    assert(op.completedAt >= op.invokedAt, `${op.id}: completedAt >= invokedAt`);
    const version = versionOf(op);
    if (version !== undefined) assert(Number.isSafeInteger(version) && version > 0, `${op.id}: version is a positive safe integer`);
    if (op.kind === 'write') assertDoc(op.doc, `${op.id}: doc`);
    if (op.kind === 'patch') assertDoc(op.fields, `${op.id}: fields`);
    if (op.kind === 'read' && op.outcome.status === 'ok' && op.outcome.found) assertDoc(op.outcome.doc, `${op.id}: read doc`);
    if (op.kind !== 'read' && op.precondition !== undefined && 'ifMatch' in op.precondition) {
      assert(Number.isSafeInteger(op.precondition.ifMatch), `${op.id}: ifMatch is a safe integer`);
    }
  }
}

function assertDoc(doc: Doc, what: string): void {
  assert(doc !== null && typeof doc === 'object' && !Array.isArray(doc), `${what} is an object`);
  const names = Object.keys(doc);
  assert(names.length > 0, `${what} has at least one field`);
  for (const name of names) assert(typeof doc[name] === 'string', `${what}.${name} is a string token`);
}

/** A document in one line, fields sorted: `{a=w-1, p=p-7}`. */
export function describeDoc(doc: Doc): string {
  const names = Object.keys(doc).sort();
  return `{${names.map((name) => `${name}=${doc[name]}`).join(', ')}}`;
}

/** An operation in one line, for messages: `w12 write {w=a} if-match 5 -> ok v7 [10, 14]`. */
export function describeOperation(op: Operation): string {
  const time = op.outcome.status === 'unknown' ? `[${op.invokedAt}, gave up ${op.completedAt}]` : `[${op.invokedAt}, ${op.completedAt}]`;
  const who = op.process === undefined ? '' : ` by ${op.process}`;
  return `${op.id} ${describeAction(op)} -> ${describeOutcome(op)} ${time}${who}`;
}

function describeAction(op: Operation): string {
  const condition = op.kind !== 'read' && op.precondition !== undefined ? ` ${describePrecondition(op.precondition)}` : '';
  if (op.kind === 'write') return `write ${describeDoc(op.doc)}${condition}`;
  if (op.kind === 'patch') return `patch ${describeDoc(op.fields)}${condition}`;
  if (op.kind === 'delete') return `delete${condition}`;
  return 'read';
}

export function describePrecondition(precondition: Precondition): string {
  return 'ifMatch' in precondition ? `if-match ${precondition.ifMatch}` : 'if-none-match *';
}

function describeOutcome(op: Operation): string {
  const outcome = op.outcome;
  if (outcome.status === 'unknown') return 'unknown';
  if (outcome.status === 'failed') return 'cause' in outcome ? `failed (${outcome.cause})` : 'failed';
  if ('version' in outcome && op.kind !== 'read') return `ok v${outcome.version}`;
  if ('found' in outcome) return outcome.found ? `${describeDoc(outcome.doc)} v${outcome.version}` : 'not found';
  return 'ok';
}
