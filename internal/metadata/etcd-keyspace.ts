import {
  CompareResult,
  CompareTarget,
  type ICompare,
  type IKeyValue,
  type IRequestOp,
  type ITxnResponse,
} from 'etcd3';
import { assert } from '../core/assert.js';

/**
 * How EtcdMetadataStore lays out its records in etcd's single byte-ordered key space, and the small builders of
 * transaction operations it uses. The layout is documented in ./README.md ("etcd").
 */

export function utf8(text: string, what: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  // A lone surrogate would be encoded as U+FFFD and collide with another key; keys are validated upstream.
  assert(bytes.toString('utf8') === text, `${what} is well-formed UTF-16 (no lone surrogates)`);
  return bytes;
}

/** The smallest byte string greater than every string that starts with `prefix` (non-empty UTF-8). */
export function prefixUpperBound(prefix: Buffer): Buffer {
  const upper = Buffer.from(prefix);
  const last = upper.length - 1;
  // UTF-8 never contains 0xFF, so incrementing the last byte cannot overflow.
  assert(last >= 0 && upper[last] !== 0xff, 'prefix is non-empty UTF-8');
  upper[last] = (upper[last] ?? 0) + 1;
  return upper;
}

/** The smallest byte string greater than `key`: where a range "strictly after `key`" starts. */
export function successor(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}

/**
 * One namespace per kind of record under the store's prefix. Each is a byte range, so etcd's range reads list
 * it in UTF-8 byte order of the names.
 */
export class KeySpace {
  /** The store's whole prefix: what a manifest watch follows, so that every revision the store makes is seen. */
  readonly root: Buffer;
  /** `manifest/<key>`: the manifest record of each key, tombstones included. */
  readonly manifests: Buffer;
  /** `live/<key>`: an empty value for each key whose manifest is not a tombstone (what listKeys reads). */
  readonly live: Buffer;
  /** `abort/<writeId>`: abort records. */
  readonly aborts: Buffer;
  /** `idempotency/<token>`: idempotency records. */
  readonly idempotency: Buffer;
  /** `hint/<key>`: repair hints, taken in creation order. */
  readonly hints: Buffer;
  /** `leader/<name>`: the holder of a leadership, attached to its lease. */
  readonly leaders: Buffer;
  /** `node/<id>`: a storage node's registration (address, zone, state, last heartbeat); no lease. */
  readonly nodes: Buffer;
  /** `alive/<id>`: an empty value attached to the node's lease; present exactly while the node heartbeats. */
  readonly alive: Buffer;
  /** `healer-journal/<atMs, 15 digits>-<random>`: the healer's recent actions, in time order of the names. */
  readonly healerJournal: Buffer;
  /** `tiering/<prefix>`: the tiering record of a key prefix (internal/tiering). */
  readonly tiering: Buffer;
  /** `cluster-identity`: the cluster's identity record (./cluster-identity-record.ts), created once. */
  readonly clusterIdentity: Buffer;
  /**
   * `dict/...`: the manifest dictionary (./etcd-dictionary.ts): node numbers and hot-field sets that binary
   * manifests refer to by number; append-only, a number is never reused.
   */
  readonly dictionary: Buffer;
  /** `revision`: never written; read only for the header revision. */
  readonly revisionProbe: Buffer;

  constructor(prefix: string) {
    assert(prefix.length > 0, 'prefix is non-empty');
    const ns = (name: string) => utf8(`${prefix}${name}/`, 'prefix');
    this.root = utf8(prefix, 'prefix');
    this.manifests = ns('manifest');
    this.live = ns('live');
    this.aborts = ns('abort');
    this.idempotency = ns('idempotency');
    this.hints = ns('hint');
    this.leaders = ns('leader');
    this.nodes = ns('node');
    this.alive = ns('alive');
    this.healerJournal = ns('healer-journal');
    this.tiering = ns('tiering');
    this.clusterIdentity = utf8(`${prefix}cluster-identity`, 'prefix');
    this.dictionary = ns('dict');
    this.revisionProbe = utf8(`${prefix}revision`, 'prefix');
  }

  static under(namespace: Buffer, name: string, what: string): Buffer {
    return Buffer.concat([namespace, utf8(name, what)]);
  }

  static nameIn(namespace: Buffer, key: Buffer): string {
    assert(key.subarray(0, namespace.length).equals(namespace), 'a ranged key lies in its namespace');
    return key.subarray(namespace.length).toString('utf8');
  }
}

/** etcd's int64 revisions and counts arrive as decimal strings; Strata's revisions are safe JavaScript integers. */
export function revisionOf(text: string, what: string): number {
  const value = Number(text);
  assert(Number.isSafeInteger(value) && value >= 0, `${what} is a safe integer >= 0`);
  return value;
}

// ---- transaction operations --------------------------------------------------------------------------------

export function put(key: Buffer, value: Buffer | string, lease?: string): IRequestOp {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return { request_put: lease === undefined ? { key, value: bytes } : { key, value: bytes, lease } };
}

export function del(key: Buffer): IRequestOp {
  return { request_delete_range: { key } };
}

export function get(key: Buffer): IRequestOp {
  return { request_range: { key } };
}

export function modIs(key: Buffer, modRevision: number): ICompare {
  // For an absent key etcd compares against zero revisions, so `mod == 0` means "absent".
  return { key, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: modRevision };
}

export function createIs(key: Buffer, createRevision: number): ICompare {
  return { key, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: createRevision };
}

export function valueIs(key: Buffer, value: Buffer): ICompare {
  // False for an absent key: etcd compares values only of keys that exist.
  return { key, target: CompareTarget.Value, result: CompareResult.Equal, value };
}

export function absent(key: Buffer): ICompare {
  return { key, target: CompareTarget.Version, result: CompareResult.Equal, version: 0 };
}

/** The single key-value read by the `index`th operation of a transaction (a `get`), if the key existed. */
export function rangedKv(response: ITxnResponse, index: number): IKeyValue | null {
  const op = response.responses[index];
  assert(op?.response_range !== undefined && op.response_range !== null, `txn response ${index} is a range`);
  return op.response_range.kvs[0] ?? null;
}
