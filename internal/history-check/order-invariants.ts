/**
 * Ordering invariants of one key, each a direct consequence of linearizability that needs no search, so a
 * violation comes with the two or three operations that prove it: stale reads, lost acknowledged writes and
 * patches, undone deletes, versions out of order or reused.
 *
 * "Before" means real time: A completed before B was invoked (A.completedAt < B.invokedAt). Operations that
 * overlap are concurrent and may take effect in either order; equal times count as overlapping. Versions must
 * increase along real time, not along completion order: two overlapping writes may commit in either order.
 */
import {
  describeDoc,
  isAbsentRead,
  isAcknowledged,
  isFailedMutation,
  type MutationOperation,
  type Operation,
  type PatchOperation,
  type ReadOperation,
  type WriteOperation,
} from './history.js';
import type { ReadBases } from './value-invariants.js';
import type { ViolationLog } from './violations.js';

type Acknowledged = MutationOperation & { readonly outcome: { readonly status: 'ok'; readonly version: number } };

/** An acknowledged mutation or a found read that passed the value checks: something that proves a version. */
interface Witness {
  readonly op: Operation;
  readonly version: number;
}

/** The greatest versions among the witnesses that completed before some instant. */
interface Latest {
  /** Any witness. */
  any?: Witness;
  /** Acknowledged deletes. */
  delete?: Witness;
  /** Acknowledged writes (whole documents). */
  write?: Witness;
  /** Witnesses that prove a live key: acknowledged writes and patches, found reads. */
  live?: Witness;
}

export function checkOrdering(ops: readonly Operation[], bases: ReadBases, log: ViolationLog): void {
  const acknowledged = ops.filter(isAcknowledged);
  const witnesses: Witness[] = [
    ...acknowledged.map((op) => ({ op, version: op.outcome.version })),
    ...[...bases.keys()].map((op) => ({ op, version: foundVersion(op) })),
  ].sort((a, b) => a.op.completedAt - b.op.completedAt);
  const queries = [...acknowledged, ...bases.keys(), ...ops.filter(isAbsentRead)].sort((a, b) => a.invokedAt - b.invokedAt);
  const latest: Latest = {};
  let next = 0;
  for (const query of queries) {
    while (next < witnesses.length && witnesses[next]!.op.completedAt < query.invokedAt) note(latest, witnesses[next++]!);
    if (query.kind !== 'read') checkMutationVersion(query as Acknowledged, latest, log);
    else if (bases.has(query)) checkFoundRead(query, bases.get(query)!, latest, log);
    else checkAbsentRead(query, latest, ops, log);
  }
  checkPatchesKept(ops, bases, log);
  checkVersionsUnique(acknowledged, bases, log);
}

function note(latest: Latest, witness: Witness): void {
  const op = witness.op;
  const greater = (current: Witness | undefined) => current === undefined || witness.version > current.version;
  if (greater(latest.any)) latest.any = witness;
  if (op.kind === 'delete' && greater(latest.delete)) latest.delete = witness;
  if (op.kind === 'write' && greater(latest.write)) latest.write = witness;
  if (op.kind !== 'delete' && greater(latest.live)) latest.live = witness;
}

function checkMutationVersion(op: Acknowledged, latest: Latest, log: ViolationLog): void {
  const before = latest.any;
  const version = op.outcome.version;
  if (before === undefined || before.version < version) return;
  // The same version on two mutations is reported once, as version-reused.
  if (before.version === version && before.op.kind !== 'read') return;
  log.add(
    'version-order',
    op.key,
    `${op.kind} ${op.id} was acknowledged with version ${version}, but ${before.op.kind} ${before.op.id} had ${before.version} and completed before ${op.id} began`,
    [before.op, op],
  );
}

function checkFoundRead(read: ReadOperation, readBases: readonly WriteOperation[], latest: Latest, log: ViolationLog): void {
  const version = foundVersion(read);
  const olderThan = (witness: Witness) => readBases.every((base) => isAcknowledged(base) && base.outcome.version < witness.version);
  const deleted = latest.delete;
  if (deleted !== undefined && version <= deleted.version) {
    log.add(
      'resurrected-delete',
      read.key,
      `read ${read.id} found version ${version}, but delete ${deleted.op.id} (version ${deleted.version}) was acknowledged before ${read.id} began`,
      [deleted.op, read],
    );
    return;
  }
  if (deleted !== undefined && olderThan(deleted)) {
    log.add(
      'resurrected-delete',
      read.key,
      `read ${read.id} found the document of write ${readBases[0]!.id} (version ${versionText(readBases[0]!)}), ` +
        `deleted by ${deleted.op.id} (version ${deleted.version}), which was acknowledged before ${read.id} began`,
      [readBases[0]!, deleted.op, read],
    );
    return;
  }
  const newest = latest.any;
  if (newest !== undefined && version < newest.version) {
    log.add(
      'stale-read',
      read.key,
      `read ${read.id} returned version ${version}, older than version ${newest.version} of ` +
        `${newest.op.kind} ${newest.op.id}, which completed before ${read.id} began`,
      [newest.op, read],
    );
    return;
  }
  const written = latest.write;
  if (written !== undefined && !readBases.includes(written.op as WriteOperation) && olderThan(written)) {
    log.add(
      'lost-write',
      read.key,
      `write ${written.op.id} (version ${written.version}) is lost: read ${read.id}, which began after it completed, ` +
        `returned version ${version} built on the older write ${readBases[0]!.id} (version ${versionText(readBases[0]!)})`,
      [written.op, readBases[0]!, read],
    );
  }
}

/** A read that found nothing after the key was seen live needs a delete that could have come in between. */
function checkAbsentRead(read: Operation, latest: Latest, ops: readonly Operation[], log: ViolationLog): void {
  const live = latest.live;
  if (live === undefined) return;
  if (latest.delete !== undefined && latest.delete.version > live.version) return;
  const deleteBetween = ops.some(
    (op) =>
      op.kind === 'delete' &&
      op.invokedAt <= read.completedAt &&
      (op.outcome.status === 'unknown' || (op.outcome.status === 'ok' && op.outcome.version > live.version)),
  );
  if (deleteBetween) return;
  const what = live.op.kind === 'read' ? `read ${live.op.id} found version ${live.version}` : `${live.op.kind} ${live.op.id} was acknowledged with version ${live.version}`;
  log.add(
    live.op.kind === 'read' ? 'stale-read' : 'lost-write',
    read.key,
    `read ${read.id} found nothing, but ${what} before ${read.id} began, and no delete could have come in between`,
    [live.op, read],
  );
}

/**
 * An acknowledged patch's fields stay until something replaces them: a later write, a delete, or a patch of the
 * same field. A read at or after the patch's version without them, and with nothing that could have replaced
 * them, lost the patch (the lost update of two concurrent read-modify-writes).
 */
function checkPatchesKept(ops: readonly Operation[], bases: ReadBases, log: ViolationLog): void {
  const reads = [...bases.keys()].sort((a, b) => a.invokedAt - b.invokedAt);
  for (const patch of ops) {
    if (patch.kind !== 'patch' || patch.outcome.status !== 'ok') continue;
    const patchVersion = patch.outcome.version;
    const fields = Object.keys(patch.fields);
    // Reads that began after an acknowledged replacement of a field completed need not keep it (a read older
    // than the replacement is a stale read, reported as such); this bounds the reads checked per patch.
    const replacedAt = fields.map((field) => replacementCompletedAt(patch, patchVersion, field, ops));
    const settledAt = Math.max(...replacedAt);
    for (const read of reads) {
      if (read.invokedAt > settledAt) break;
      if (read.invokedAt <= patch.completedAt || foundVersion(read) < patchVersion) continue;
      const doc = foundDoc(read);
      const missing = fields.find((field, at) => read.invokedAt <= replacedAt[at]! && doc[field] !== patch.fields[field]);
      if (missing === undefined || replaceable(patchVersion, patch, missing, read, ops)) continue;
      log.add(
        'lost-write',
        read.key,
        `patch ${patch.id} (${missing}=${patch.fields[missing]}, version ${patchVersion}) is lost: read ${read.id}, ` +
          `which began after it completed, returned version ${foundVersion(read)} with ${missing}=${doc[missing] ?? '(absent)'}, ` +
          `and no write, delete or patch of ${missing} could have come in between`,
        [patch, read],
      );
      break;
    }
  }
}

/** Whether `op` replaces `field` when it takes effect: a write or delete replaces every field, a patch its own. */
function replacesField(op: Operation, field: string): boolean {
  return op.kind === 'write' || op.kind === 'delete' || (op.kind === 'patch' && field in op.fields);
}

/** When the first acknowledged replacement of `field`, newer than the patch, completed (Infinity: none). */
function replacementCompletedAt(patch: PatchOperation, patchVersion: number, field: string, ops: readonly Operation[]): number {
  let at = Infinity;
  for (const op of ops) {
    if (op === patch || !isAcknowledged(op) || !replacesField(op, field)) continue;
    if (op.outcome.version > patchVersion && op.completedAt < at) at = op.completedAt;
  }
  return at;
}

/** Whether some operation that was not definitely refused could replace `field` between the patch and the read. */
function replaceable(patchVersion: number, patch: PatchOperation, field: string, read: ReadOperation, ops: readonly Operation[]): boolean {
  const readVersion = foundVersion(read);
  return ops.some((op) => {
    if (op === patch || isFailedMutation(op) || op.invokedAt > read.completedAt || !replacesField(op, field)) return false;
    if (op.outcome.status === 'unknown') return true;
    const version = (op.outcome as { version: number }).version;
    return version > patchVersion && version <= readVersion;
  });
}

/** A version names one commit: one mutation, and one document. */
function checkVersionsUnique(acknowledged: readonly Acknowledged[], bases: ReadBases, log: ViolationLog): void {
  const mutations = new Map<number, Acknowledged[]>();
  for (const op of acknowledged) push(mutations, op.outcome.version, op);
  const reads = new Map<number, ReadOperation[]>();
  for (const read of bases.keys()) push(reads, foundVersion(read), read);
  for (const [version, ops] of mutations) {
    if (ops.length > 1) {
      log.add('version-reused', ops[0]!.key, `${ops[0]!.kind} ${ops[0]!.id} and ${ops[1]!.kind} ${ops[1]!.id} were both acknowledged with version ${version}`, ops.slice(0, 2));
    }
  }
  for (const [version, readsAt] of reads) {
    const mutation = mutations.get(version)?.[0];
    const conflict = readsAt.find((read) => (mutation !== undefined ? !matches(mutation, foundDoc(read)) : !sameDoc(foundDoc(read), foundDoc(readsAt[0]!))));
    if (conflict === undefined) continue;
    const other: Operation = mutation ?? readsAt[0]!;
    log.add(
      'version-reused',
      conflict.key,
      `version ${version} names two states: read ${conflict.id} returned ${describeDoc(foundDoc(conflict))}, but ${describeVersionOwner(other)}`,
      [other, conflict],
    );
  }
}

function matches(mutation: Acknowledged, doc: Readonly<Record<string, string>>): boolean {
  if (mutation.kind === 'delete') return false;
  if (mutation.kind === 'write') return sameDoc(mutation.doc, doc);
  return Object.keys(mutation.fields).every((field) => doc[field] === mutation.fields[field]);
}

function describeVersionOwner(op: Operation): string {
  if (op.kind === 'read') return `read ${op.id} returned ${describeDoc(foundDoc(op))}`;
  if (op.kind === 'delete') return `it is the version of delete ${op.id}`;
  if (op.kind === 'write') return `write ${op.id} wrote ${describeDoc(op.doc)} with it`;
  return `patch ${op.id} set ${describeDoc(op.fields)} with it`;
}

function sameDoc(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const names = Object.keys(a);
  return names.length === Object.keys(b).length && names.every((name) => a[name] === b[name]);
}

function push<T>(map: Map<number, T[]>, version: number, value: T): void {
  const list = map.get(version);
  if (list === undefined) map.set(version, [value]);
  else list.push(value);
}

function foundVersion(read: ReadOperation): number {
  const outcome = read.outcome;
  if (outcome.status !== 'ok' || !outcome.found) throw new Error(`read ${read.id} found a document`);
  return outcome.version;
}

function foundDoc(read: ReadOperation): Readonly<Record<string, string>> {
  const outcome = read.outcome;
  if (outcome.status !== 'ok' || !outcome.found) throw new Error(`read ${read.id} found a document`);
  return outcome.doc;
}

function versionText(op: MutationOperation): string {
  return op.outcome.status === 'ok' ? String(op.outcome.version) : 'unknown';
}
