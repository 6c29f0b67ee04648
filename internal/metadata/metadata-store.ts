import type { StrataError } from '../core/errors.js';
import type { Manifest, StoredManifest } from '../manifest/manifest.js';

/**
 * The metadata store: manifests with compare-and-set, abort records, idempotency records, a leader lease and
 * the storage-node registry. Implementations: embedded (SQLite, this folder) and etcd (the cluster mode).
 *
 * Revisions: the store keeps one monotonic revision counter. Every successful mutation of a manifest bumps it
 * and stamps the manifest's `modRevision`. A commit that creates a new version sets `manifest.version` to that
 * revision (as a decimal string), so versions strictly increase per key and never repeat, even across delete
 * and re-create. Healer writes (repair) keep the version and only change `modRevision`.
 *
 * Errors: an unreachable store throws StrataError('METADATA_UNAVAILABLE'). A call whose outcome cannot be known
 * (a timeout after the request was sent) throws StrataError('COMMIT_UNKNOWN').
 */
export interface MetadataStore {
  /** The manifest of `key` (tombstones included), or null when the key never existed or was purged. */
  get(key: string): Promise<StoredManifest | null>;

  /**
   * The commit point of a write (architecture.md step 7), one transaction:
   * - the key's current modRevision equals `expectedModRevision` (0 = the key has no manifest at all), and
   * - no abort record exists for `writeId`, and
   * - when `fence` is given, the caller still holds that leadership term;
   * then stores `manifest`. With `assignVersion`, `manifest.version` is set to the new revision. With
   * `idempotency`, also: its claim still holds its token (else 'superseded', checked after 'aborted' and before
   * the revision), and the token's record becomes done in the same transaction (see CommitRequest.idempotency).
   */
  commit(request: CommitRequest): Promise<CommitResult>;

  /**
   * Writes an abort record for `writeId` if the key's manifest is still at `expectedModRevision` (0 = absent).
   * Returns false when the manifest changed since the caller read it (the caller must re-check). Once an abort
   * record exists, `commit` for that write id fails with reason 'aborted' forever (until the record expires).
   */
  abort(request: AbortRequest): Promise<boolean>;

  isAborted(writeId: string): Promise<boolean>;

  /** Live (non-tombstone) keys with `prefix`, in UTF-8 byte order, strictly after `startAfter`. */
  listKeys(prefix: string, startAfter: string | null, limit: number): Promise<string[]>;

  /** Every manifest (tombstones included) strictly after `startAfter`, in key byte order; for the healer. */
  scan(startAfter: string | null, limit: number): Promise<StoredManifest[]>;

  /** Removes a tombstone if it is still at `modRevision`. */
  purgeTombstone(key: string, modRevision: number): Promise<boolean>;

  /** Deletes abort records created before `beforeMs`; returns how many went. */
  expireAbortRecords(beforeMs: number): Promise<number>;

  /** The store's current revision. */
  currentRevision(): Promise<number>;

  /**
   * Follows every change of a manifest made after `fromRevision`, in revision order, for the gateways' manifest
   * caches (internal/readservice/manifest-cache.ts). `onChange` reports a key's new stored manifest (tombstones
   * included) at the revision of the change; `onRevision(r)` promises that every change up to `r` has been
   * reported, and it advances even while no manifest changes (so a cache can tell it has caught up with
   * `currentRevision()`). A store may report the removal of a purged tombstone as `null` or not at all: a purged
   * tombstone and a tombstone both read as "no live document".
   *
   * When the watch breaks (a lost connection, a compacted revision, a closed store) `onReset` is called once and
   * nothing is reported afterwards: the follower must drop what it learned and watch again from a fresh
   * `currentRevision()`. `close` stops the watch; closing the store closes its watches too.
   */
  watchManifests(fromRevision: number, listener: ManifestWatchListener): Promise<ManifestWatch>;

  /**
   * The change history (GET /watch): every commit that created a new version of a key starting with `prefix`
   * (a write, patch or delete: `assignVersion`), with a revision greater than `fromRevision`, one call of
   * `onChange` per commit, in revision order, without gaps or repeats; first those already made (replayed from
   * the history), then new ones as they are committed. Healer repairs (which keep the version) and tombstone
   * purges are not reported: they change no document.
   *
   * The store keeps a bounded history: when changes after `fromRevision` are no longer all retained (etcd
   * compacted them; the embedded store pruned its oldest), none of them is reported: the promise rejects with
   * StrataError('HISTORY_COMPACTED'), or, when the compaction happens while the watch starts, `onEnd` reports
   * that error first; a running watch that falls that far behind also ends with `onEnd` and that error. Any other failure ends it with `onEnd` (METADATA_UNAVAILABLE, or the store being closed); nothing is
   * reported after `onEnd`. `close` stops the watch without `onEnd`.
   */
  watchChanges(prefix: string, fromRevision: number, listener: ChangeWatchListener): Promise<ManifestWatch>;

  /**
   * The healer's journal of recent actions (GET /healer, the web console): appended by the leading healer,
   * read by any gateway. The store keeps only the newest HEALER_JOURNAL_LIMITS.entriesMax entries.
   */
  appendHealerActions(actions: readonly HealerAction[]): Promise<void>;
  /** The newest `limit` entries, newest first. */
  recentHealerActions(limit: number): Promise<HealerAction[]>;

  /**
   * Idempotency records (api.md "Idempotency-Key", docs/decisions.md 15). A token's record is `pending` while one
   * attempt holds it (the attempt's claim, told apart by `attemptId`) and `done` once it has an outcome. Lease and
   * expiry are judged by the store's clock (the claim's times come from the caller's; skew is harmless, see
   * CommitRequest.idempotency).
   * - `reserveIdempotency(claim)`: null when the claim now holds the token: it had no record, or its record expired
   *   (`expiresAtMs`), or it was pending for the same fingerprint and its lease (`leaseUntilMs`) lapsed (a take-over:
   *   the earlier claim is void from then on). Otherwise the record as it is, untouched.
   * - `completeIdempotency(claim, response)`: the record becomes done with `response` (and `version` null), only if
   *   the claim still holds the token; true when it did. For outcomes that changed nothing (4xx).
   * - `releaseIdempotency(claim)`: removes the record only if the claim still holds the token, so that the next
   *   attempt reserves it afresh; a done record is never removed (only expired).
   * - A commit carrying the claim (CommitRequest.idempotency) completes it in the commit's own transaction.
   */
  reserveIdempotency(claim: IdempotencyClaim): Promise<IdempotencyRecord | null>;
  completeIdempotency(claim: IdempotencyClaim, response: IdempotentResponse): Promise<boolean>;
  releaseIdempotency(claim: IdempotencyClaim): Promise<void>;
  expireIdempotency(nowMs: number): Promise<number>;

  /**
   * Tiering records (internal/tiering): one small JSON object per key prefix holding that prefix's access
   * statistics, learned hot fields, pins, lifecycle settings and re-tiering progress, shared by every gateway and
   * the healer. `updateTieringRecord` reads the record (null when absent), calls `update` with it and stores what
   * `update` returns (null: leave the record as it is), atomically: when another process changed the record in
   * between, `update` is called again with the newer one. So `update` must be a synchronous, pure function of its
   * argument (it merges the caller's contribution into whatever the others stored; it never overwrites them).
   * Resolves to the record as stored afterwards. A record is at most TIERING_RECORD_LIMITS.bytesMax bytes of JSON.
   */
  getTieringRecord(prefix: string): Promise<unknown | null>;
  updateTieringRecord(prefix: string, update: (current: unknown | null) => unknown | null): Promise<unknown | null>;
  /** Records in prefix byte order, strictly after `startAfter` (null: from the first). */
  listTieringRecords(startAfter: string | null, limit: number): Promise<{ prefix: string; record: unknown }[]>;

  /** Keys a reader found damaged; the healer audits them first. */
  addRepairHint(key: string): Promise<void>;
  takeRepairHints(limit: number): Promise<string[]>;

  /**
   * Leader lease for `name`. Returns a fencing term when `holder` now leads (fresh or renewed), null when
   * someone else holds an unexpired lease.
   */
  acquireLeadership(name: string, holder: string, ttlMs: number): Promise<LeaderTerm | null>;
  releaseLeadership(term: LeaderTerm): Promise<void>;
  currentLeader(name: string): Promise<string | null>;

  /**
   * Storage-node registry. Creates the node's entry (state 'active') or refreshes it: address and zone as given,
   * `lastHeartbeatMs` = now, and a lease of `ttlMs` (an etcd lease kept alive by repeated calls; an expiry time
   * in the embedded store). The state an operator set ('draining') is kept. A node that stops calling is no
   * longer `alive` once `ttlMs` has passed since its last call (etcd: whole seconds, rounded up, at least its
   * minimum lease of about 2 s, and expiry is checked about every 500 ms). A removed node that calls again is
   * registered afresh, as 'active'.
   */
  registerNode(node: NodeRegistration, ttlMs: number): Promise<void>;
  /**
   * A node leaving on purpose (graceful shutdown): it is no longer `alive` from now on, instead of after its ttl,
   * so gateways and healers stop calling it at once. Its entry and the state an operator set stay: a restarted
   * node registers again. An id that is not registered is ignored.
   */
  deregisterNode(id: string): Promise<void>;
  /** Every registered node, alive or not, in id order (UTF-8 bytes). */
  listNodes(): Promise<RegisteredNode[]>;
  /** Throws StrataError('NODE_NOT_FOUND') for an id that is not registered. */
  setNodeState(id: string, state: NodeMembershipState): Promise<void>;
  /**
   * Forgets a node. Only a 'draining' node may be removed: otherwise StrataError('NODE_NOT_DRAINED'), and
   * StrataError('NODE_NOT_FOUND') for an id that is not registered. Whether the node still holds referenced
   * blobs is for the caller to check (the admin route scans the manifests first).
   */
  removeNode(id: string): Promise<void>;

  /**
   * The cluster's identity (./cluster-identity-record.ts): its id, format version and the storage nodes whose
   * directories it initialised, read by every storage node at start (internal/datadir/cluster-membership.ts).
   * Sealed in the record envelope: a damaged record is refused with METADATA_CORRUPT, never trusted.
   * - `getClusterIdentity()`: the record, or null before the first storage node created it.
   * - `createClusterIdentity(proposed)`: stores `proposed` only if there is no record yet (a compare-and-set
   *   create); resolves to the record as stored, so of two processes racing to create it both get the winner's.
   *   An existing record is never overwritten.
   * - `updateClusterNodes(update)`: changes the node lists only, atomically (`update` is called again with the
   *   newer record when another process changed it in between, so it must be a pure function of its argument;
   *   null: no change). The id, format version and creation time stay as created. Throws
   *   StrataError('METADATA_UNAVAILABLE') when there is no record (callers create it first; it is never deleted).
   */
  getClusterIdentity(): Promise<ClusterIdentityRecord | null>;
  createClusterIdentity(proposed: ClusterIdentityRecord): Promise<ClusterIdentityRecord>;
  updateClusterNodes(update: (current: ClusterIdentityRecord) => ClusterNodeLists | null): Promise<ClusterIdentityRecord>;
  /**
   * The cluster's data format bump (internal/cluster/format-version.ts decides whether it is allowed): raises the
   * record's `dataFormat` to `to` in one compare-and-set, leaving everything else as it is; a record already at `to`
   * or above is left unchanged (never lowered). Resolves to the record as stored. Throws
   * StrataError('METADATA_UNAVAILABLE') when there is no record, or when it is of a newer record or data format
   * than this release knows (it is never rewritten by an older release).
   */
  raiseClusterDataFormat(to: number): Promise<ClusterIdentityRecord>;
  /**
   * Calls `onChange` soon after the cluster identity record changes (and possibly at other times: it is a nudge to
   * read the record again, never the record itself). Absent where the store has no change notification (the
   * embedded store: its readers poll).
   */
  watchClusterIdentity?(onChange: () => void): Promise<{ close(): Promise<void> }>;

  /**
   * The process registry (internal/cluster/format-version.ts): what each running process of the cluster can read,
   * so that the data format bump waits until every one of them reads the new format. Storage nodes, gateways and
   * healers register themselves at start and then every ttl/3, as nodes heartbeat.
   * - `registerProcess(p, ttlMs)`: creates or refreshes `p` with `lastHeartbeatMs` = now. It stays listed until
   *   PROCESS_REGISTRY_LIMITS.lingerTtls x `ttlMs` after its last call (etcd: a lease of that length), so that a
   *   process paused past its ttl is still seen by the bump; it is `alive` for `ttlMs` after the call.
   * - `deregisterProcess(id)`: a process leaving on purpose is forgotten at once. Unknown ids are ignored.
   * - `listProcesses()`: the listed processes in id order; more than PROCESS_REGISTRY_LIMITS.processesMax is
   *   refused (METADATA_UNAVAILABLE) rather than cut.
   */
  registerProcess(process: ProcessRegistration, ttlMs: number): Promise<void>;
  deregisterProcess(id: string): Promise<void>;
  listProcesses(): Promise<RegisteredProcess[]>;

  /**
   * What the store knows about its own integrity (./README.md, "Record envelope" and "Integrity"): records that
   * failed verification, the state of the store's own checks, and whether garbage collection must hold. Cheap and
   * synchronous: /health/ready, GET /cluster and GET /healer read it on every call.
   */
  integrity(): MetadataIntegrity;

  /**
   * May "no record for this key" be trusted to decide a delete of what was created at `sinceMs` (by the store's
   * clock)? A record checksum catches a wrong record, never a missing one, so the garbage collector and the intent
   * resolver abort and delete the blobs of a key without a manifest only when this is true. etcd answers a missing
   * key from its own checked store: true. The embedded store: true when a full integrity check that started after
   * `sinceMs` passed and no record has failed verification since that check started; otherwise it runs such a
   * check (off the event loop, at a bounded rate) and answers by its outcome, or false when the rate forbids one now.
   */
  absenceTrusted(sinceMs: number): Promise<boolean>;

  /**
   * The healer's repair of a manifest record that fails verification (docs/decisions.md 20): stores `manifest`, which
   * the healer rebuilt from the nodes' self-describing blobs, under `key`, in one transaction, only while
   * - the record stored under `key` still fails verification: one that verifies (a client's write or an earlier
   *   repair replaced it) is never overwritten ('intact'), and no record at all is never created ('absent');
   * - nothing the store keeps says the key's last committed change may have been a delete ('deleted'): the damaged
   *   record's own deleted flag or content where still readable, the embedded store's change history, etcd's live-key
   *   index. A tombstone holds no blobs, so a rebuild from blobs could only bring a deleted key back;
   * - the damaged record, where it still names a write id, names none newer than `manifest.writeId` ('newer'):
   *   a newer committed change has no blobs left to rebuild it from (a delete, or a write whose blobs are lost);
   * - the caller still holds `fence` ('fenced').
   * The manifest gets a new version, the store's next revision, as a commit with assignVersion would: above every
   * version the store ever issued, so no reader sees a version go backwards (a client's old ETag answers 412). On
   * success, and on 'intact', the store forgets its sightings of the damaged record (integrity().recent), so that
   * garbage collection of the key resumes.
   */
  replaceCorruptManifest(request: ReplaceCorruptManifestRequest): Promise<ReplaceCorruptManifestResult>;

  /**
   * Whether the store takes changes, for stores with a space quota of their own (etcd's NOSPACE alarm): cheap and
   * synchronous, read by write admission, /health/ready and /metrics. Absent where the data directory's reserve
   * covers the store (the embedded store).
   */
  space?(): MetadataSpace;

  close(): Promise<void>;
}

/** The node lists of the cluster identity (MetadataStore.updateClusterNodes); node ids sorted, no repeats. */
export interface ClusterNodeLists {
  /** Nodes whose directories were initialised (or adopted) for this cluster: an empty directory of one is suspect. */
  nodes: string[];
  /** Of those, the ones an operator accepted as empty (a replaced disk): their next start may initialise one. */
  acceptedEmpty: string[];
}

/** The cluster's identity record (MetadataStore.getClusterIdentity). */
export interface ClusterIdentityRecord extends ClusterNodeLists {
  clusterId: string;
  /** The record's format; a reader that meets a newer one refuses to act on it. */
  formatVersion: number;
  createdAtMs: number;
  /**
   * The cluster's data format version (internal/core/data-format.ts), in record format 2; absent in format 1,
   * which means DATA_FORMAT_V1 (cluster-identity-record.ts `dataFormatOf`).
   */
  dataFormat?: number;
}

/** What a process of the cluster announces in the process registry (MetadataStore.registerProcess). */
export interface ProcessRegistration {
  /** Unique per running process: PROCESS_ID_PATTERN (a storage node: `storage-node:<node id>`). */
  id: string;
  role: ProcessRole;
  /** The newest data format this process's release reads (its DATA_FORMAT_MAX). */
  formatMax: number;
}

export type ProcessRole = 'storage-node' | 'gateway' | 'healer';

export interface RegisteredProcess extends ProcessRegistration {
  /** It called registerProcess within its ttl. */
  alive: boolean;
  /** When its last registerProcess call was made, by the clock of the process that made it. */
  lastHeartbeatMs: number;
}

export const PROCESS_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

export const PROCESS_REGISTRY_LIMITS = {
  /** Listed processes; a registry beyond it is refused rather than truncated (bounds the bump's read). */
  processesMax: 4096,
  /**
   * A process stays listed this many ttls after its last heartbeat: its ttl, then 2 x ttl during which a bump still
   * counts it (a process paused past its lease may wake up as an old release and write).
   */
  lingerTtls: 3,
} as const;

/** MetadataStore.replaceCorruptManifest. */
export interface ReplaceCorruptManifestRequest {
  key: string;
  /** The rebuilt manifest (`key` is its key; its version is replaced by the new one). */
  manifest: Manifest;
  fence: LeaderTerm;
}

export type ReplaceCorruptManifestResult =
  | { ok: true; modRevision: number; manifest: Manifest }
  | { ok: false; reason: 'intact' | 'absent' | 'deleted' | 'newer' | 'fenced'; why: string };

/** MetadataStore.space: false while every change is refused with DISK_FULL; reads still work. */
export interface MetadataSpace {
  writable: boolean;
  /** What is full and how to recover; null while writable. */
  reason: string | null;
}

/** One record that failed verification (MetadataStore.integrity). */
export interface CorruptRecordSighting {
  atMs: number;
  kind: string;
  key: string;
  /** Where it was met (`get`, `scan`, `watch`, ...) and why it failed. */
  where: string;
  why: string;
  /** The key a damaged manifest names inside itself, when that differs from `key` (its blobs are held too). */
  ownKey?: string;
}

export interface MetadataIntegrity {
  /** Records that failed verification since this process opened the store (a record met twice counts twice). */
  corruptRecords: number;
  /** The latest sightings, newest first (at most METADATA_INTEGRITY_LIMITS.sightingsKept). */
  recent: CorruptRecordSighting[];
  /** The store's own checks (the embedded store's SQLite checks); null where the backend checks itself (etcd). */
  checks: {
    /** When the last full check that passed started (store clock), or null. */
    lastPassedAtMs: number | null;
    /** The last failed check's findings, or null when the latest check passed. */
    lastFailure: string | null;
    running: boolean;
    /** Indexes rebuilt (REINDEX) after a check found them inconsistent with their tables. */
    reindexed: number;
  } | null;
  /** What an operator must act on, in sentences; empty when nothing is wrong. */
  problems: string[];
  /** Why a missing record cannot authorise a delete right now, or null when it can (as of the last check). */
  gcHold: string | null;
}

export const METADATA_INTEGRITY_LIMITS = {
  /** Sightings of corrupt records kept for /cluster and /healer. */
  sightingsKept: 20,
} as const;

export interface ManifestWatchListener {
  /** `stored` is null when the key's manifest was removed (a purged tombstone). */
  onChange(key: string, stored: StoredManifest | null, revision: number): void;
  /** Every change up to `revision` has been delivered. */
  onRevision(revision: number): void;
  /** The watch broke and stopped; what it delivered may have gaps from here on. */
  onReset(reason: string): void;
}

/** One committed change of the history (MetadataStore.watchChanges). */
export interface ManifestChange {
  key: string;
  /** The revision of the commit, which is also the version it gave the key. */
  revision: number;
  /** 'delete' when the commit wrote a tombstone. */
  kind: 'put' | 'delete';
}

export interface ChangeWatchListener {
  onChange(change: ManifestChange): void;
  /** The watch ended and reports nothing more: HISTORY_COMPACTED, METADATA_UNAVAILABLE. */
  onEnd(error: StrataError): void;
}

/** One entry of the healer's journal. */
export interface HealerAction {
  /** When it happened, by the healer's clock (ms since the epoch). */
  atMs: number;
  /** 'repaired': replicas or shards rebuilt; 'unrepairable': too few good copies left to rebuild from. */
  kind: 'repaired' | 'unrepairable';
  key: string;
  /** What was rebuilt and where, for people: `cold shard 2 on node-3 (missing)`. */
  detail: string;
}

export const HEALER_JOURNAL_LIMITS = {
  /** Entries the store keeps; older ones are dropped as new ones arrive. */
  entriesMax: 200,
  /** Entries one append may carry. */
  appendMax: 64,
  /** Bytes of one entry's detail. */
  detailBytesMax: 1024,
} as const;

export const TIERING_RECORD_LIMITS = {
  /** Bytes of one tiering record's JSON; internal/tiering bounds its records far below this. */
  bytesMax: 512 * 1024,
  /** Bytes of a prefix. */
  prefixBytesMax: 1024,
} as const;

export interface ManifestWatch {
  close(): Promise<void>;
}

/**
 * 'active': takes new writes. 'draining': set by an operator; takes no new writes, keeps serving reads, and the
 * healer moves its blobs elsewhere until it can be removed.
 */
export type NodeMembershipState = 'active' | 'draining';

export interface NodeRegistration {
  /** The node's id as it appears in manifests: `[A-Za-z0-9_-]{1,64}`. */
  id: string;
  /** The base URL gateways and healers dial, e.g. `http://10.0.0.7:8101`. */
  address: string;
  /** Failure domain (rack, zone); placement spreads replicas and shards over zones. */
  zone?: string;
}

export interface RegisteredNode extends NodeRegistration {
  state: NodeMembershipState;
  /** The node's lease has not expired: it called registerNode within its ttl. */
  alive: boolean;
  /** When its last registerNode call was made, by the clock of the process that made it. */
  lastHeartbeatMs: number;
}

/** The registry part of the store: what storage nodes, gateways, healers and the admin routes need. */
export type NodeRegistry = Pick<MetadataStore, 'registerNode' | 'deregisterNode' | 'listNodes' | 'setNodeState' | 'removeNode'>;

/** Node ids as STRATA_NODES and STRATA_NODE_ID accept them; they are also etcd key suffixes and blob-path safe. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const NODE_REGISTRY_LIMITS = {
  /** Registered nodes a store lists in one answer; a registry beyond it is refused rather than truncated. */
  nodesMax: 1024,
  /** Bytes of a node's address. */
  addressBytesMax: 512,
} as const;

export interface LeaderTerm {
  name: string;
  holder: string;
  /** Strictly increases with each new leadership; commits fenced by an older term fail. */
  term: number;
}

export interface CommitRequest {
  key: string;
  expectedModRevision: number;
  writeId: string;
  manifest: Manifest;
  assignVersion: boolean;
  fence?: LeaderTerm;
  /**
   * A client mutation carrying an Idempotency-Key makes its outcome part of its commit: the commit happens only if
   * `claim` still holds the token, and then the token's record is done with `response`, whose version is this
   * commit's (a later `reserveIdempotency` returns the record with `version` = the committed manifest's version; the
   * response itself is stored as given, as a template). So a crash after the commit cannot lose the outcome, and an
   * attempt whose claim was taken over or released can never commit afterwards, whatever the clocks say. Only with
   * `assignVersion`.
   */
  idempotency?: { claim: IdempotencyClaim; response: IdempotentResponse };
}

export type CommitResult =
  | { ok: true; modRevision: number; manifest: Manifest }
  | { ok: false; reason: 'conflict'; current: StoredManifest | null }
  | { ok: false; reason: 'aborted' }
  | { ok: false; reason: 'fenced' }
  /** The commit carried an idempotency claim that no longer holds its token (taken over, released or done). */
  | { ok: false; reason: 'superseded' };

export interface AbortRequest {
  key: string;
  writeId: string;
  expectedModRevision: number;
  nowMs: number;
}

export interface IdempotentResponse {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** One attempt's hold on an Idempotency-Key token (see MetadataStore.reserveIdempotency). */
export interface IdempotencyClaim {
  token: string;
  /** What the request was (method, key, parameters, body): the same token with another request is refused. */
  fingerprint: string;
  /** Unique per attempt (random): what tells this attempt's claim from a later one on the same token. */
  attemptId: string;
  /** Until then no other attempt may take the pending token over (ms since the epoch). */
  leaseUntilMs: number;
  /** The record, pending or done, counts until then (api.md: 24 hours). */
  expiresAtMs: number;
}

export type IdempotencyRecord =
  | { state: 'pending'; fingerprint: string; leaseUntilMs: number }
  /** `version`: the committed version when a commit recorded the outcome (the response is its template), else null. */
  | { state: 'done'; fingerprint: string; response: IdempotentResponse; version: string | null };

/** The rule both stores apply in reserveIdempotency: may `claim` take a token whose record is `current`? */
export function idempotencyClaimMayTake(
  current: { state: 'pending' | 'done'; fingerprint: string; leaseUntilMs: number; expiresAtMs: number } | null,
  claim: IdempotencyClaim,
  nowMs: number,
): boolean {
  if (current === null || current.expiresAtMs <= nowMs) return true;
  // A lapsed lease is taken over only by the same request: another request with the token is refused (422).
  return current.state === 'pending' && current.fingerprint === claim.fingerprint && current.leaseUntilMs <= nowMs;
}
