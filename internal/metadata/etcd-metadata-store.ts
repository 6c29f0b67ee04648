import { randomBytes } from 'node:crypto';
import {
  SortOrder,
  SortTarget,
  castGrpcError,
  GRPCUnavailableError,
  type IKeyValue,
  type IRangeRequest,
  type ICompare,
  type IRequestOp,
  type ITxnRequest,
  type IWatchResponse,
  type Watcher,
} from 'etcd3';
import { assert } from '../core/assert.js';
import { systemClock, type Clock } from '../core/clock.js';
import { StrataError, isStrataError } from '../core/errors.js';
import type { Manifest, StoredManifest } from '../manifest/manifest.js';
import { dictionaryNeeds } from '../manifest/manifest-codec.js';
import { DATA_FORMAT_V2, fixedDataFormat, type DataFormatSource } from '../core/data-format.js';
import { EtcdDictionary, type DictionaryGuard } from './etcd-dictionary.js';
import {
  BinaryManifestUnreadable,
  damagedBinaryManifest,
  decodeBinaryManifestValue,
  encodeBinaryManifestValue,
  manifestValueForm,
} from './etcd-manifest-value.js';
import {
  KeySpace,
  absent,
  createIs,
  del,
  get,
  modIs,
  prefixUpperBound,
  put,
  rangedKv,
  revisionOf,
  successor,
  utf8,
  valueIs,
} from './etcd-keyspace.js';
import { EtcdRpc, ETCD_RPC_LIMITS, type CallKind, type CallOptions, type Deadline } from './etcd-rpc.js';
import { changeable, checkedForWrite, normalisedNodeLists, openClusterIdentity, sealClusterIdentity, withDataFormat } from './cluster-identity-record.js';
import type { ClusterIdentityRecord, ClusterNodeLists, ProcessRegistration, RegisteredProcess } from './metadata-store.js';
import { EtcdProcessRegistry } from './etcd-cluster-format.js';
import { EtcdSpace } from './etcd-space.js';
import type { Logger } from '../log/logger.js';
import { IntegrityLedger } from './integrity-ledger.js';
import type { MetadataIntegrity, MetadataSpace, ReplaceCorruptManifestRequest, ReplaceCorruptManifestResult } from './metadata-store.js';
import { hintsOfManifestObject, refusalOf } from './damaged-manifest-hints.js';
import { SEALED_TEXT_PREFIX, corruptRecord, openText, sealText, type RecordKind } from './record-envelope.js';
import type {
  AbortRequest,
  ChangeWatchListener,
  HealerAction,
  CommitRequest,
  CommitResult,
  IdempotencyClaim,
  IdempotencyRecord,
  IdempotentResponse,
  LeaderTerm,
  ManifestWatch,
  ManifestWatchListener,
  MetadataStore,
  NodeMembershipState,
  NodeRegistration,
  RegisteredNode,
} from './metadata-store.js';
import { HEALER_JOURNAL_LIMITS, NODE_REGISTRY_LIMITS, TIERING_RECORD_LIMITS, idempotencyClaimMayTake } from './metadata-store.js';
import {
  assertMembershipState,
  assertRegistration,
  byNodeId,
  isPossibleNodeId,
  nodeNotDrained,
  nodeNotFound,
  tooManyNodes,
} from './node-registry.js';

/**
 * The MetadataStore on etcd v3. The key layout, the version scheme, leadership and the error mapping are
 * documented in ./README.md ("etcd"); `etcd3` itself stays behind this file, ./etcd-rpc.ts (deadlines, retries,
 * errors) and ./etcd-keyspace.ts (key layout, transaction operations).
 */

export const ETCD_METADATA_LIMITS = {
  ...ETCD_RPC_LIMITS,
  /** Read-modify-write loops (idempotency records) that keep losing their compare-and-set race give up. */
  casRetriesMax: 16,
  /**
   * Keys read and deleted per round trip by the sweeps (expiries, repair hints). It must not exceed etcd's
   * `--max-txn-ops` (default 128), because each page is deleted in one transaction.
   */
  sweepPageKeysMax: 128,
  /**
   * etcd's watchBatchMaxRevs: a catch-up response spanning this many revisions may have been cut short while its
   * header already names the current revision, so only its last event's revision counts as delivered.
   */
  watchBatchRevsMax: 1_000,
} as const;

/** Format of the value stored under a manifest key; a newer one is refused rather than misread. */
export const ETCD_MANIFEST_RECORD_FORMAT = 1;
/** Format of the value stored under a node key; a newer one is refused rather than misread. */
export const ETCD_NODE_RECORD_FORMAT = 1;

export interface EtcdMetadataStoreOptions {
  /** Where records that fail verification are reported (besides integrity()). */
  log?: Logger;
  /** Client URLs of the etcd members, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Every key this store writes starts with it; several clusters or tests can share one etcd. Default `strata/`. */
  prefix?: string;
  /** Judges idempotency expiry and this process's own view of its leader leases. Defaults to the system clock. */
  clock?: Clock;
  /** Deadline of each call, all its round trips included (ETCD_RPC_LIMITS.requestTimeoutMs by default). */
  requestTimeoutMs?: number;
  /** Round trips per RPC when etcd cannot be reached (ETCD_RPC_LIMITS.attemptsMax by default). */
  attemptsMax?: number;
  /** `open` makes one round trip and fails with METADATA_UNAVAILABLE when etcd cannot be reached. Default true. */
  checkReachable?: boolean;
  /**
   * The cluster's data format version: at 2 and above, manifests are written in the binary form
   * (./etcd-manifest-value.ts); below, as the previous release wrote them. Both are always read. Default 1.
   */
  dataFormat?: DataFormatSource;
}

/** What is stored under a manifest key (README: "Versions are revisions"). */
interface ManifestRecord {
  format: number;
  /** null: the version is this key-value's mod_revision, i.e. the revision of the commit that wrote it. */
  version: string | null;
  manifest: Omit<Manifest, 'version'>;
}

interface AbortRecord {
  key: string;
  createdMs: number;
}

interface IdempotencyValue {
  fingerprint: string;
  state: 'pending' | 'done';
  response: IdempotentResponse | null;
  expiresMs: number;
  /** The claim holding a pending token (absent in records written before leases: their lease counts as lapsed). */
  attemptId?: string;
  leaseUntilMs?: number;
  /**
   * Done by a commit: the committed version is this key-value's mod_revision (the commit's revision; a transaction
   * cannot write its own revision into a value, and a done record is never rewritten).
   */
  versionFromRevision?: boolean;
}

/**
 * The value of a token held by `claim`, member order fixed: a commit compares these exact bytes to know that the
 * claim still holds the token.
 */
/** How long stopping a watch waits for etcd to confirm the cancel. */
const WATCH_CANCEL_WAIT_MS = 1_000;

function pendingValue(claim: IdempotencyClaim): IdempotencyValue {
  return {
    fingerprint: claim.fingerprint,
    state: 'pending',
    response: null,
    expiresMs: claim.expiresAtMs,
    attemptId: claim.attemptId,
    leaseUntilMs: claim.leaseUntilMs,
  };
}

/** What is stored under `node/<id>` (no lease: it outlives the node's heartbeats; README "Node registry"). */
interface NodeRecord {
  format: number;
  address: string;
  zone: string | null;
  state: NodeMembershipState;
  lastHeartbeatMs: number;
}

/** A node lease this store granted, kept alive by the node's next registerNode call. */
interface NodeLease {
  leaseId: string;
  ttlSeconds: number;
}

/** The leader leases this process acquired, so that it stops trusting one before etcd expires it. */
interface OwnLease {
  holder: string;
  term: number;
  expiresAtMs: number;
}

function assertCount(value: number, name: string): void {
  assert(Number.isInteger(value) && value >= 0, `${name} is an integer >= 0`);
}

export class EtcdMetadataStore implements MetadataStore {
  private readonly ledger: IntegrityLedger;
  private readonly calls: EtcdRpc;
  private readonly keys: KeySpace;
  private readonly clock: Clock;
  private readonly ownLeases = new Map<string, OwnLease>();
  private readonly nodeLeases = new Map<string, NodeLease>();
  private readonly watchers = new Set<{ stop(reason: string | null): Promise<void> }>();
  private readonly spaceState: EtcdSpace;
  private readonly dataFormat: DataFormatSource;
  /** Node numbers and hot-field sets of binary manifests (./etcd-dictionary.ts), cached. */
  private readonly dictionary: EtcdDictionary;
  /** The process registry (./etcd-cluster-format.ts), on this store's calls and leases. */
  private readonly processes: EtcdProcessRegistry;


  private constructor(options: EtcdMetadataStoreOptions) {
    this.calls = new EtcdRpc(options);
    this.keys = new KeySpace(options.prefix ?? 'strata/');
    this.clock = options.clock ?? systemClock;
    this.ledger = new IntegrityLedger(this.clock, options.log, 'etcd metadata store');
    this.spaceState = new EtcdSpace(this.calls, options.log);
    this.dataFormat = options.dataFormat ?? fixedDataFormat(1);
    this.dictionary = new EtcdDictionary(
      {
        range: async (what, key, rangeEnd, limit) => {
          const response = await this.rpc(what, 'idempotent', this.deadline(), (options) => this.client.kv.range({ key, range_end: rangeEnd, limit }, options));
          return { kvs: response.kvs, more: response.more };
        },
        // Safe to repeat: an assignment compares that its keys are absent, so a repeat of one applied fails.
        txn: (what, request) => this.rpc(what, 'idempotent', this.deadline(), (options) => this.client.kv.txn(request, options)),
      },
      this.keys.dictionary,
    );
    this.processes = new EtcdProcessRegistry({
      root: this.keys.root,
      clock: this.clock,
      client: () => this.client,
      deadline: () => this.deadline(),
      rpc: (what, kind, deadline, send) => this.rpc(what, kind, deadline, send),
      keepAliveOnce: (leaseId, deadline, what) => this.keepAliveOnce(leaseId, deadline, what),
    });
  }

  /** etcd's NOSPACE alarm: while raised, every put is refused (DISK_FULL) and reads work (./etcd-space.ts). */
  space(): MetadataSpace {
    return this.spaceState.status();
  }

  /** etcd checks its own store (its corruption checks are enabled in the deployments); Strata counts what it met. */
  integrity(): MetadataIntegrity {
    const recent = this.ledger.sightings();
    const problems =
      recent.length === 0
        ? []
        : [
            `${this.ledger.count} metadata records failed verification (latest: the ${recent[0]!.kind} record of ${JSON.stringify(recent[0]!.key)}: ${recent[0]!.why}); ` +
              'they are not served. See metadata_integrity.recent in GET /cluster',
          ];
    return { corruptRecords: this.ledger.count, recent, checks: null, problems, gcHold: null };
  }

  /**
   * etcd answers a missing key from its own store, which it checks itself (--experimental-initial-corrupt-check,
   * --experimental-corrupt-check-time): a missing key is trusted. A damaged record is a thrown get, never "absent".
   */
  async absenceTrusted(_sinceMs: number): Promise<boolean> {
    return true;
  }

  /** Connects (lazily, as gRPC does) and, unless `checkReachable` is false, makes sure etcd answers. */
  static async open(options: EtcdMetadataStoreOptions): Promise<EtcdMetadataStore> {
    const store = new EtcdMetadataStore(options);
    if (options.checkReachable ?? true) {
      try {
        await store.currentRevision();
        // Binary manifests name nodes by number: known before the first read (an unknown number re-reads it).
        await store.dictionary.reload();
      } catch (err) {
        await store.close();
        throw err;
      }
    }
    store.spaceState.start();
    return store;
  }

  // ---- manifests ---------------------------------------------------------------------------------------------

  async get(key: string): Promise<StoredManifest | null> {
    const deadline = this.deadline();
    const response = await this.rpc('get', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key: this.manifestKey(key) }, options),
    );
    const kv = response.kvs[0];
    return kv === undefined ? null : this.readManifest(kv);
  }

  async commit(request: CommitRequest): Promise<CommitResult> {
    const { key, expectedModRevision, writeId, manifest, assignVersion, fence, idempotency } = request;
    assertCount(expectedModRevision, 'expectedModRevision');
    assert(manifest.key === key, 'manifest.key equals the committed key');
    assert(idempotency === undefined || assignVersion, 'an idempotent commit creates a version');
    const deadline = this.deadline();
    // A deposed leader has no authority at all; this process knows its own lease ran out even before etcd has
    // revoked it (etcd checks expiry about every 500 ms).
    if (fence !== undefined && this.ownLeaseLapsed(fence)) return { ok: false, reason: 'fenced' };

    const manifestKey = this.manifestKey(key);
    const liveKey = KeySpace.under(this.keys.live, key, 'key');
    const abortKey = KeySpace.under(this.keys.aborts, writeId, 'writeId');
    const leaderKey = fence === undefined ? null : KeySpace.under(this.keys.leaders, fence.name, 'leader name');
    const { version, ...rest } = manifest;

    const compare: ICompare[] = [];
    if (fence !== undefined && leaderKey !== null) {
      // The leader key exists only while its lease lives, and its create_revision is the term.
      compare.push(createIs(leaderKey, fence.term), valueIs(leaderKey, utf8(fence.holder, 'holder')));
    }
    compare.push(absent(abortKey));
    // The outcome of an idempotent mutation is part of its commit: only while its claim holds the token (the exact
    // pending value it reserved), and the token's record becomes done in the same transaction.
    const tokenKey = idempotency === undefined ? null : KeySpace.under(this.keys.idempotency, idempotency.claim.token, 'token');
    const claimValue = idempotency === undefined ? null : Buffer.from(sealIdempotency(idempotency.claim.token, pendingValue(idempotency.claim)), 'utf8');
    const outcome: IRequestOp[] = [];
    if (idempotency !== undefined && tokenKey !== null && claimValue !== null) {
      compare.push(valueIs(tokenKey, claimValue));
      const done: IdempotencyValue = {
        ...pendingValue(idempotency.claim),
        state: 'done',
        response: idempotency.response,
        versionFromRevision: true,
      };
      outcome.push(put(tokenKey, sealIdempotency(idempotency.claim.token, done)));
    }
    compare.push(modIs(manifestKey, expectedModRevision));
    for (let attempt = 1; ; attempt++) {
      const encoded = await this.manifestValue(key, manifest, assignVersion);
      const txn: ITxnRequest = {
        compare: [...compare, ...encoded.guard.compare],
        // The live index lets listKeys skip tombstones without reading manifests.
        success: [put(manifestKey, encoded.value), manifest.deleted ? del(liveKey) : put(liveKey, ''), ...outcome],
        // Read back in the same snapshot, so that the reason for a failure is exact.
        failure: [
          ...(leaderKey === null ? [] : [get(leaderKey)]),
          get(abortKey),
          ...(tokenKey === null ? [] : [get(tokenKey)]),
          get(manifestKey),
          ...encoded.guard.reads,
        ],
      };
      const response = await this.rpc(`commit of "${key}"`, 'commit', deadline, (options) => this.client.kv.txn(txn, options));

      if (response.succeeded) {
        // Every change in a transaction gets the transaction's revision: the new mod_revision of the manifest key.
        const modRevision = revisionOf(response.header.revision, 'commit revision');
        const stored: Manifest = { ...JSON.parse(JSON.stringify(rest)), version: assignVersion ? String(modRevision) : version };
        return { ok: true, modRevision, manifest: stored };
      }
      let index = 0;
      if (fence !== undefined) {
        const leader = rangedKv(response, index++);
        const holds =
          leader !== null &&
          revisionOf(leader.create_revision, 'leader create_revision') === fence.term &&
          leader.value.toString('utf8') === fence.holder;
        if (!holds) return { ok: false, reason: 'fenced' };
      }
      if (rangedKv(response, index++) !== null) return { ok: false, reason: 'aborted' };
      if (claimValue !== null) {
        const token = rangedKv(response, index++);
        if (token === null || !token.value.equals(claimValue)) return { ok: false, reason: 'superseded' };
      }
      const current = rangedKv(response, index);
      const currentModRevision = current === null ? 0 : revisionOf(current.mod_revision, 'mod_revision');
      if (currentModRevision === expectedModRevision) {
        // Only the dictionary check can have failed: etcd holds other entries than those encoded with (restored
        // from a backup since they were cached). Encode again with what etcd holds; the manifest was not written.
        assert(encoded.guard.stale(response, index + 1), 'a failed commit failed one of its conditions');
        if (attempt >= DICTIONARY_STALE_ATTEMPTS_MAX) throw staleDictionary(key);
        await this.dictionary.reload();
        continue;
      }
      return { ok: false, reason: 'conflict', current: current === null ? null : await this.readManifest(current) };
    }
  }

  /**
   * MetadataStore.replaceCorruptManifest. etcd cannot verify a checksum inside a transaction, so the record is read
   * and checked here, and the transaction puts the rebuilt one only if neither the manifest key nor its live-index
   * key moved since that read: the record replaced is exactly the one found damaged. The witnesses of a delete: the
   * live-index key (a delete removes it in the same transaction that writes the tombstone; it holds no checksum to
   * damage) and the damaged record's content where it still parses.
   */
  async replaceCorruptManifest(request: ReplaceCorruptManifestRequest): Promise<ReplaceCorruptManifestResult> {
    const { key, manifest, fence } = request;
    assert(manifest.key === key, 'manifest.key equals the repaired key');
    assert(!manifest.deleted, 'a repair stores a live manifest');
    if (this.ownLeaseLapsed(fence)) return { ok: false, reason: 'fenced', why: 'the caller no longer leads' };
    const manifestKey = this.manifestKey(key);
    const liveKey = KeySpace.under(this.keys.live, key, 'key');
    const leaderKey = KeySpace.under(this.keys.leaders, fence.name, 'leader name');
    const { version: _version, ...rest } = manifest;
    // A record that moves between the read and the transaction is looked at again: it may be intact now.
    for (let attempt = 0; attempt < REPAIR_ATTEMPTS_MAX; attempt++) {
      const deadline = this.deadline();
      const read = await this.rpc(`read of "${key}" for its repair`, 'idempotent', deadline, (options) =>
        this.client.kv.txn({ compare: [], success: [get(manifestKey), get(liveKey)], failure: [] }, options),
      );
      const kv = rangedKv(read, 0);
      if (kv === null) return { ok: false, reason: 'absent', why: 'the key has no record' };
      // FORMAT_UNSUPPORTED is thrown, not "corrupt": a record a newer release wrote is never rebuilt over.
      if ((await this.keepIfCorruptAsync(() => this.readManifest(kv))) !== null) {
        // The record verifies now: its sightings no longer hold the key's garbage collection.
        this.ledger.forgetManifest(key);
        return { ok: false, reason: 'intact', why: 'the stored record verifies (replaced since it was found damaged)' };
      }
      const live = rangedKv(read, 1);
      if (live === null) return { ok: false, reason: 'deleted', why: "the key's live-index entry is gone: its last commit wrote a tombstone" };
      let damaged: unknown;
      if (manifestValueForm(kv.value, key) === 'binary') {
        const decodeDamaged = () => damagedBinaryManifest(kv.value, key, revisionOf(kv.mod_revision, 'mod_revision'), this.dictionary);
        // Bytes that decode to nothing may only name numbers this process has not cached: read the dictionary once.
        damaged = decodeDamaged();
        if (damaged === null) {
          await this.dictionary.reload();
          damaged = decodeDamaged();
        }
      } else {
        damaged = damagedRecordContent(kv.value.toString('utf8'))?.['manifest'];
      }
      const refusal = refusalOf(hintsOfManifestObject(damaged, key), manifest.writeId);
      if (refusal !== null) return { ok: false, ...refusal };
      const encoded = await this.manifestValue(key, manifest, true);
      const txn: ITxnRequest = {
        compare: [
          createIs(leaderKey, fence.term),
          valueIs(leaderKey, utf8(fence.holder, 'holder')),
          modIs(manifestKey, revisionOf(kv.mod_revision, 'mod_revision')),
          modIs(liveKey, revisionOf(live.mod_revision, 'mod_revision')),
          ...encoded.guard.compare,
        ],
        success: [put(manifestKey, encoded.value)],
        failure: [get(leaderKey), ...encoded.guard.reads],
      };
      const response = await this.rpc(`repair of "${key}"`, 'commit', deadline, (options) => this.client.kv.txn(txn, options));
      if (response.succeeded) {
        const modRevision = revisionOf(response.header.revision, 'repair revision');
        this.ledger.forgetManifest(key);
        return { ok: true, modRevision, manifest: { ...(JSON.parse(JSON.stringify(rest)) as Omit<Manifest, 'version'>), version: String(modRevision) } };
      }
      const leader = rangedKv(response, 0);
      const holds = leader !== null && revisionOf(leader.create_revision, 'leader create_revision') === fence.term && leader.value.toString('utf8') === fence.holder;
      if (!holds) return { ok: false, reason: 'fenced', why: 'the caller no longer leads' };
      if (encoded.guard.stale(response, 1)) await this.dictionary.reload();
    }
    return { ok: false, reason: 'intact', why: `the record kept changing over ${REPAIR_ATTEMPTS_MAX} attempts; looked at again next round` };
  }

  async abort(request: AbortRequest): Promise<boolean> {
    const { key, writeId, expectedModRevision, nowMs } = request;
    assertCount(expectedModRevision, 'expectedModRevision');
    assert(Number.isSafeInteger(nowMs), 'nowMs is a safe integer');
    const deadline = this.deadline();
    const abortKey = KeySpace.under(this.keys.aborts, writeId, 'writeId');
    const record = sealText('abort', writeId, JSON.stringify({ key, createdMs: nowMs } satisfies AbortRecord));
    const response = await this.rpc(`abort of write ${writeId}`, 'once', deadline, (options) =>
      this.client.kv.txn(
        {
          compare: [absent(abortKey), modIs(this.manifestKey(key), expectedModRevision)],
          success: [put(abortKey, record)],
          failure: [get(abortKey)],
        },
        options,
      ),
    );
    // A record that already exists answers true: aborting is idempotent.
    return response.succeeded || rangedKv(response, 0) !== null;
  }

  async isAborted(writeId: string): Promise<boolean> {
    const deadline = this.deadline();
    const key = KeySpace.under(this.keys.aborts, writeId, 'writeId');
    const response = await this.rpc('isAborted', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key, count_only: true }, options),
    );
    return revisionOf(response.count, 'count') > 0;
  }

  async listKeys(prefix: string, startAfter: string | null, limit: number): Promise<string[]> {
    assertCount(limit, 'limit');
    // etcd reads `limit: 0` as "no limit".
    if (limit === 0) return [];
    const prefixBytes = utf8(prefix, 'prefix');
    let lower: Buffer = Buffer.concat([this.keys.live, prefixBytes]);
    if (startAfter !== null) {
      const after = utf8(startAfter, 'startAfter');
      if (Buffer.compare(after, prefixBytes) >= 0) lower = successor(Buffer.concat([this.keys.live, after]));
    }
    const upper = prefixUpperBound(Buffer.concat([this.keys.live, prefixBytes]));
    if (Buffer.compare(lower, upper) >= 0) return [];
    const deadline = this.deadline();
    const response = await this.rpc('listKeys', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key: lower, range_end: upper, limit, keys_only: true }, options),
    );
    return response.kvs.map((kv) => KeySpace.nameIn(this.keys.live, kv.key));
  }

  async scan(startAfter: string | null, limit: number): Promise<StoredManifest[]> {
    assertCount(limit, 'limit');
    if (limit === 0) return [];
    const namespace = this.keys.manifests;
    let lower = startAfter === null ? namespace : successor(this.manifestKey(startAfter));
    const deadline = this.deadline();
    const out: StoredManifest[] = [];
    // A record that fails verification is skipped (and noted in the ledger), and the scan reads on so that a page
    // stays full: a short page means the end to every caller.
    for (;;) {
      const want = limit - out.length;
      const response = await this.rpc('scan', 'idempotent', deadline, (options) =>
        this.client.kv.range({ key: lower, range_end: prefixUpperBound(namespace), limit: want }, options),
      );
      // A record in a format this release does not know fails the scan (FORMAT_UNSUPPORTED): skipping it would
      // read as "absent" to the healer.
      for (const kv of response.kvs) {
        const stored = await this.keepIfCorruptAsync(() => this.readManifest(kv));
        if (stored !== null) out.push(stored);
      }
      const last = response.kvs[response.kvs.length - 1];
      if (out.length >= limit || !response.more || last === undefined) return out;
      lower = successor(last.key);
    }
  }

  async purgeTombstone(key: string, modRevision: number): Promise<boolean> {
    assertCount(modRevision, 'modRevision');
    // Revision 0 means "absent", and there is nothing to purge.
    if (modRevision === 0) return false;
    const deadline = this.deadline();
    const manifestKey = this.manifestKey(key);
    const liveKey = KeySpace.under(this.keys.live, key, 'key');
    const response = await this.rpc(`purge of "${key}"`, 'once', deadline, (options) =>
      this.client.kv.txn(
        // A manifest without its live index entry is a tombstone.
        { compare: [modIs(manifestKey, modRevision), absent(liveKey)], success: [del(manifestKey)], failure: [] },
        options,
      ),
    );
    return response.succeeded;
  }

  async expireAbortRecords(beforeMs: number): Promise<number> {
    return this.sweep('expireAbortRecords', this.keys.aborts, (kv) => {
      // A damaged abort record is kept: while it exists its write cannot commit, the safe side. It is reported.
      const record = this.keepIfCorrupt(() => this.openSealed<AbortRecord>(kv, 'abort', KeySpace.nameIn(this.keys.aborts, kv.key), 'abort record'));
      return record !== null && record.createdMs < beforeMs;
    });
  }

  async currentRevision(): Promise<number> {
    const deadline = this.deadline();
    // A linearizable read (the etcd3 default) of any key: its header carries the store's revision.
    const response = await this.rpc('currentRevision', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key: this.keys.revisionProbe, count_only: true }, options),
    );
    return revisionOf(response.header.revision, 'header revision');
  }

  /**
   * Manifest watch (MetadataStore.watchManifests): one etcd watch on the store's whole prefix from
   * `fromRevision + 1`, so that every revision this store makes (heartbeats, hints and leases included) moves
   * `onRevision`, not only manifest changes; the client requests etcd's progress notifications as well. A
   * response's header revision is complete for the prefix (etcd sends events of a revision together), except a
   * catch-up batch spanning ETCD_METADATA_LIMITS.watchBatchRevsMax revisions, which counts up to its last event.
   * A lost connection, a compacted start revision or an undecodable manifest stops the watch with `onReset`
   * (the etcd3 client would resume on its own, but it may skip revisions on a second reconnect).
   * Revisions made by other users of the same etcd outside the prefix are not seen: a cache waiting for one
   * falls back to reading the store directly.
   */
  async watchManifests(fromRevision: number, listener: ManifestWatchListener): Promise<ManifestWatch> {
    assertCount(fromRevision, 'fromRevision');
    const deadline = this.deadline();
    let done = false;
    let watcher: Watcher | null = null;
    const handle = {
      stop: async (reason: string | null): Promise<void> => {
        if (done) return;
        done = true;
        this.watchers.delete(handle);
        if (reason !== null) safely(() => listener.onReset(reason));
        if (watcher !== null) await cancelWatcher(watcher);
      },
    };
    // Responses are handled one after another: decoding a binary manifest may wait for a dictionary read (a node
    // number another gateway assigned), and the listener must still see changes in revision order.
    let delivered: Promise<void> = Promise.resolve();
    const onData = (res: IWatchResponse): void => {
      delivered = delivered.then(() => deliver(res));
    };
    const deliver = async (res: IWatchResponse): Promise<void> => {
      if (done) return;
      try {
        let last = 0;
        let first = 0;
        for (const event of res.events) {
          const revision = revisionOf(event.kv.mod_revision, 'event mod_revision');
          if (first === 0) first = revision;
          last = revision;
          if (!event.kv.key.subarray(0, this.keys.manifests.length).equals(this.keys.manifests)) continue;
          const key = KeySpace.nameIn(this.keys.manifests, event.kv.key);
          const stored = event.type === 'Delete' ? null : await this.readManifest(event.kv);
          if (done) return;
          safely(() => listener.onChange(key, stored, revision));
          if (done) return;
        }
        const header = revisionOf(res.header.revision, 'watch header revision');
        const cutShort = res.events.length > 0 && last - first + 1 >= ETCD_METADATA_LIMITS.watchBatchRevsMax;
        safely(() => listener.onRevision(cutShort ? last : header));
      } catch (err) {
        void handle.stop(`etcd watch delivered an unreadable change: ${(err as Error).message}`);
      }
    };
    this.watchers.add(handle);
    const w = this.client.watch().prefix(this.keys.root).startRevision(String(fromRevision + 1)).watcher();
    watcher = w;
    w.on('data', onData);
    try {
      await watchConnected(w, deadline);
    } catch (err) {
      await handle.stop(null);
      throw new StrataError('METADATA_UNAVAILABLE', `etcd (${this.calls.endpoints.join(', ')}): cannot watch manifests: ${(err as Error).message}`);
    }
    if (!done) {
      w.on('disconnected', (err: Error) => void handle.stop(`etcd watch disconnected: ${err.message}`));
      w.on('error', (err: Error) => void handle.stop(`etcd watch cancelled: ${err.message}`));
    }
    return { close: () => handle.stop(null) };
  }

  /**
   * Change history (MetadataStore.watchChanges): one etcd watch on `manifest/<prefix>` from `fromRevision + 1`;
   * etcd replays what it still has (everything since its last compaction) and then follows. A commit writes its
   * manifest key once, so each commit is one event; puts whose record carries an explicit version (healer
   * repairs) and deletes (tombstone purges) are skipped. A compacted start revision is HISTORY_COMPACTED; a lost
   * stream ends the watch rather than letting the etcd3 client resume it (it may skip revisions on a second
   * reconnect), and the gateway's client resumes from its last event id instead.
   */
  async watchChanges(prefix: string, fromRevision: number, listener: ChangeWatchListener): Promise<ManifestWatch> {
    assertCount(fromRevision, 'fromRevision');
    const deadline = this.deadline();
    const range = Buffer.concat([this.keys.manifests, utf8(prefix, 'prefix')]);
    let done = false;
    let watcher: Watcher | null = null;
    const handle = {
      stop: async (reason: string | StrataError | null): Promise<void> => {
        if (done) return;
        done = true;
        this.watchers.delete(handle);
        if (reason !== null) {
          const error = typeof reason === 'string' ? new StrataError('METADATA_UNAVAILABLE', reason) : reason;
          safely(() => listener.onEnd(error));
        }
        if (watcher !== null) await cancelWatcher(watcher);
      },
    };
    // One response after another, as in watchManifests: a decode may wait for a dictionary read.
    let delivered: Promise<void> = Promise.resolve();
    const onData = (res: IWatchResponse): void => {
      delivered = delivered.then(() => deliver(res));
    };
    const deliver = async (res: IWatchResponse): Promise<void> => {
      if (done) return;
      try {
        for (const event of res.events) {
          if (event.type !== 'Put') continue;
          const revision = revisionOf(event.kv.mod_revision, 'event mod_revision');
          const stored = await this.readManifest(event.kv);
          if (done) return;
          // A version other than the put's own revision was kept by a healer repair: not a change of the document.
          if (stored.manifest.version !== String(revision)) continue;
          const key = KeySpace.nameIn(this.keys.manifests, event.kv.key);
          safely(() => listener.onChange({ key, revision, kind: stored.manifest.deleted ? 'delete' : 'put' }));
          if (done) return;
        }
      } catch (err) {
        void handle.stop(`etcd watch delivered an unreadable change: ${(err as Error).message}`);
      }
    };
    const failure = (err: Error, what: string): StrataError =>
      /compacted/i.test(err.message)
        ? new StrataError('HISTORY_COMPACTED', `changes after version ${fromRevision} are no longer kept (etcd compacted its history); list the keys again and watch from a fresh version`, { fromRevision })
        : new StrataError('METADATA_UNAVAILABLE', `etcd (${this.calls.endpoints.join(', ')}): ${what}: ${err.message}`);
    // etcd accepts a watch from a compacted revision and only then cancels it; a read at that revision tells
    // up front, so that the caller can answer HISTORY_COMPACTED before it starts a stream (a compaction in
    // between still ends the watch through onEnd).
    try {
      await this.rpc('watchChanges', 'idempotent', deadline, (options) =>
        this.client.kv.range({ key: this.keys.revisionProbe, revision: String(fromRevision + 1), count_only: true }, options),
      );
    } catch (err) {
      if (/compacted/i.test((err as Error).message)) throw failure(err as Error, 'cannot watch changes');
      // "a future revision": nothing to replay yet, which the watch handles by waiting.
      if (!/future revision/i.test((err as Error).message)) throw err;
    }
    this.watchers.add(handle);
    const w = this.client.watch().prefix(range).startRevision(String(fromRevision + 1)).watcher();
    watcher = w;
    w.on('data', onData);
    try {
      await watchConnected(w, deadline);
    } catch (err) {
      await handle.stop(null);
      throw failure(err as Error, 'cannot watch changes');
    }
    if (!done) {
      w.on('disconnected', (err: Error) => void handle.stop(`etcd watch disconnected: ${err.message}`));
      w.on('error', (err: Error) => void handle.stop(failure(err, 'the change watch was cancelled')));
    }
    return { close: () => handle.stop(null) };
  }

  // ---- the healer's journal ------------------------------------------------------------------------------------

  async appendHealerActions(actions: readonly HealerAction[]): Promise<void> {
    assert(actions.length <= HEALER_JOURNAL_LIMITS.appendMax, 'actions.length <= HEALER_JOURNAL_LIMITS.appendMax');
    if (actions.length === 0) return;
    const deadline = this.deadline();
    const namespace = this.keys.healerJournal;
    // Names sort by time (zero-padded milliseconds); the random suffix keeps two entries of one millisecond apart.
    const puts = actions.map((action) => {
      assert(Number.isSafeInteger(action.atMs) && action.atMs >= 0, 'atMs is an integer >= 0');
      const name = `${String(action.atMs).padStart(15, '0')}-${randomBytes(6).toString('hex')}`;
      const entry: HealerAction = { ...action, detail: truncateUtf8(action.detail, HEALER_JOURNAL_LIMITS.detailBytesMax) };
      return put(KeySpace.under(namespace, name, 'journal entry'), JSON.stringify(entry));
    });
    await this.rpc('appendHealerActions', 'once', deadline, (options) =>
      this.client.kv.txn({ compare: [], success: puts, failure: [] }, options),
    );
    // Trim to the newest entriesMax: count, then delete the oldest surplus (at most one sweep page per append).
    const span = { key: namespace, range_end: prefixUpperBound(namespace) };
    const counted = await this.rpc('appendHealerActions', 'idempotent', deadline, (options) =>
      this.client.kv.range({ ...span, count_only: true }, options),
    );
    const surplus = revisionOf(counted.count, 'journal count') - HEALER_JOURNAL_LIMITS.entriesMax;
    if (surplus <= 0) return;
    const oldest = await this.rpc('appendHealerActions', 'idempotent', deadline, (options) =>
      this.client.kv.range({ ...span, keys_only: true, limit: Math.min(surplus, ETCD_METADATA_LIMITS.sweepPageKeysMax) }, options),
    );
    await this.deleteUnchanged('appendHealerActions', deadline, oldest.kvs);
  }

  async recentHealerActions(limit: number): Promise<HealerAction[]> {
    assertCount(limit, 'limit');
    if (limit === 0) return [];
    const deadline = this.deadline();
    const namespace = this.keys.healerJournal;
    const response = await this.rpc('recentHealerActions', 'idempotent', deadline, (options) =>
      this.client.kv.range(
        {
          key: namespace,
          range_end: prefixUpperBound(namespace),
          limit: Math.min(limit, HEALER_JOURNAL_LIMITS.entriesMax),
          sort_target: SortTarget.Key,
          sort_order: SortOrder.Descend,
        },
        options,
      ),
    );
    return response.kvs.map((kv) => this.decodeJson<HealerAction>(kv, 'healer journal entry'));
  }

  // ---- idempotency records -------------------------------------------------------------------------------------

  async reserveIdempotency(claim: IdempotencyClaim): Promise<IdempotencyRecord | null> {
    const key = KeySpace.under(this.keys.idempotency, claim.token, 'token');
    return this.readModifyWrite<IdempotencyValue, IdempotencyRecord | null>('reserveIdempotency', key, this.idempotencyCodec(claim.token), (current, kv) => {
      const view = current === null ? null : { ...current, leaseUntilMs: current.leaseUntilMs ?? 0, expiresAtMs: current.expiresMs };
      if (!idempotencyClaimMayTake(view, claim, this.clock.nowMs())) return { result: toIdempotencyRecord(current!, kv!) };
      // Absent, expired, or a lapsed lease of the same request: the claim takes the token.
      return { result: null, write: pendingValue(claim) };
    });
  }

  async completeIdempotency(claim: IdempotencyClaim, response: IdempotentResponse): Promise<boolean> {
    const key = KeySpace.under(this.keys.idempotency, claim.token, 'token');
    return this.readModifyWrite<IdempotencyValue, boolean>('completeIdempotency', key, this.idempotencyCodec(claim.token), (current) => {
      // A claim that was taken over, or a reservation swept meanwhile, changes nothing (and is not recreated).
      if (!holdsToken(current, claim)) return { result: false };
      return { result: true, write: { ...current!, state: 'done', response } };
    });
  }

  async releaseIdempotency(claim: IdempotencyClaim): Promise<void> {
    const key = KeySpace.under(this.keys.idempotency, claim.token, 'token');
    await this.readModifyWrite<IdempotencyValue, undefined>('releaseIdempotency', key, this.idempotencyCodec(claim.token), (current) => {
      // Only the claim holding the token releases it; a completed response is never dropped.
      if (!holdsToken(current, claim)) return { result: undefined };
      return { result: undefined, write: 'delete' };
    });
  }

  async expireIdempotency(nowMs: number): Promise<number> {
    return this.sweep('expireIdempotency', this.keys.idempotency, (kv) => {
      // A record that fails verification is kept (its token keeps answering METADATA_CORRUPT): deleting it would
      // let a retry of an applied request run again. It is reported in the ledger; an operator deletes the key.
      const value = this.keepIfCorrupt(() => this.idempotencyCodec(KeySpace.nameIn(this.keys.idempotency, kv.key)).decode(kv));
      return value !== null && value.expiresMs <= nowMs;
    });
  }

  // ---- tiering records (one JSON value under `tiering/<prefix>`, updated by compare-and-set) ----------------

  async getTieringRecord(prefix: string): Promise<unknown | null> {
    const deadline = this.deadline();
    const response = await this.rpc('getTieringRecord', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key: this.tieringKey(prefix) }, options),
    );
    const kv = response.kvs[0];
    return kv === undefined ? null : this.decodeJson<unknown>(kv, 'tiering record');
  }

  async updateTieringRecord(prefix: string, update: (current: unknown | null) => unknown | null): Promise<unknown | null> {
    return this.readModifyWrite<unknown, unknown | null>('updateTieringRecord', this.tieringKey(prefix), this.plainCodec<unknown>('tiering record'), (current) => {
      const next = update(current);
      if (next === null) return { result: current };
      // Round-tripped so that the caller gets exactly what is stored.
      const stored = JSON.parse(JSON.stringify(next)) as unknown;
      assert(JSON.stringify(stored).length <= TIERING_RECORD_LIMITS.bytesMax, 'a tiering record fits TIERING_RECORD_LIMITS.bytesMax');
      return { result: stored, write: stored };
    });
  }

  async listTieringRecords(startAfter: string | null, limit: number): Promise<{ prefix: string; record: unknown }[]> {
    assertCount(limit, 'limit');
    if (limit === 0) return [];
    const namespace = this.keys.tiering;
    const lower = startAfter === null ? namespace : successor(this.tieringKey(startAfter));
    const deadline = this.deadline();
    const response = await this.rpc('listTieringRecords', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key: lower, range_end: prefixUpperBound(namespace), limit }, options),
    );
    return response.kvs.map((kv) => ({ prefix: KeySpace.nameIn(namespace, kv.key), record: this.decodeJson<unknown>(kv, 'tiering record') }));
  }

  private tieringKey(prefix: string): Buffer {
    assert(Buffer.byteLength(prefix) <= TIERING_RECORD_LIMITS.prefixBytesMax, 'prefix fits TIERING_RECORD_LIMITS.prefixBytesMax');
    return KeySpace.under(this.keys.tiering, prefix, 'prefix');
  }

  // ---- cluster identity (one sealed value under `cluster-identity`: ./cluster-identity-record.ts) ------------

  async getClusterIdentity(): Promise<ClusterIdentityRecord | null> {
    const deadline = this.deadline();
    const response = await this.rpc('getClusterIdentity', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key: this.keys.clusterIdentity }, options),
    );
    const kv = response.kvs[0];
    return kv === undefined ? null : this.clusterIdentityCodec().decode(kv);
  }

  async createClusterIdentity(proposed: ClusterIdentityRecord): Promise<ClusterIdentityRecord> {
    const record = checkedForWrite(proposed);
    const key = this.keys.clusterIdentity;
    const deadline = this.deadline();
    // Put only if absent; otherwise the transaction reads back the record that won.
    const response = await this.rpc('createClusterIdentity', 'idempotent', deadline, (options) =>
      this.client.kv.txn({ compare: [absent(key)], success: [put(key, sealClusterIdentity(record))], failure: [get(key)] }, options),
    );
    if (response.succeeded) return record;
    const kv = rangedKv(response, 0);
    assert(kv !== null, 'a cluster identity that exists reads back');
    return this.clusterIdentityCodec().decode(kv);
  }

  async updateClusterNodes(update: (current: ClusterIdentityRecord) => ClusterNodeLists | null): Promise<ClusterIdentityRecord> {
    const where = 'etcd metadata store';
    return this.readModifyWrite<ClusterIdentityRecord, ClusterIdentityRecord>('updateClusterNodes', this.keys.clusterIdentity, this.clusterIdentityCodec(), (current) => {
      if (current === null) {
        throw new StrataError('METADATA_UNAVAILABLE', `${where}: there is no cluster identity to change (a storage node creates it when it starts)`);
      }
      const lists = update(changeable(current, where));
      if (lists === null) return { result: current };
      const next = checkedForWrite({ ...current, ...normalisedNodeLists(lists) });
      return { result: next, write: next };
    });
  }

  async raiseClusterDataFormat(to: number): Promise<ClusterIdentityRecord> {
    const where = 'etcd metadata store';
    return this.readModifyWrite<ClusterIdentityRecord, ClusterIdentityRecord>('raiseClusterDataFormat', this.keys.clusterIdentity, this.clusterIdentityCodec(), (current) => {
      if (current === null) {
        throw new StrataError('METADATA_UNAVAILABLE', `${where}: there is no cluster identity to change (a storage node creates it when it starts)`);
      }
      const next = withDataFormat(changeable(current, where), to);
      return next === null ? { result: current } : { result: next, write: next };
    });
  }

  /**
   * MetadataStore.watchClusterIdentity: one etcd watch on the `cluster-identity` key. Each response is only a nudge
   * (the caller reads the record again), so a spurious one costs a read and the etcd3 client's resume after a
   * reconnect needs no care here; a lost watch is covered by the caller's slower poll.
   */
  async watchClusterIdentity(onChange: () => void): Promise<{ close(): Promise<void> }> {
    const deadline = this.deadline();
    const w = this.client.watch().key(this.keys.clusterIdentity).watcher();
    const handle = {
      stop: async (): Promise<void> => {
        this.watchers.delete(handle);
        await cancelWatcher(w);
      },
    };
    this.watchers.add(handle);
    w.on('data', () => safely(onChange));
    w.on('error', () => undefined);
    try {
      await watchConnected(w, deadline);
    } catch (err) {
      await handle.stop();
      throw new StrataError('METADATA_UNAVAILABLE', `etcd (${this.calls.endpoints.join(', ')}): cannot watch the cluster identity: ${(err as Error).message}`);
    }
    return { close: () => handle.stop() };
  }

  // ---- process registry (`process/<id>`, lease-bound: ./etcd-cluster-format.ts) --------------------------------

  registerProcess(process: ProcessRegistration, ttlMs: number): Promise<void> {
    return this.processes.register(process, ttlMs);
  }

  deregisterProcess(id: string): Promise<void> {
    return this.processes.deregister(id);
  }

  listProcesses(): Promise<RegisteredProcess[]> {
    return this.processes.list();
  }

  /** The sealed cluster identity; a value that fails verification is noted in the ledger and refused. */
  private clusterIdentityCodec(): ValueCodec<ClusterIdentityRecord> {
    return {
      decode: (kv) => {
        try {
          return openClusterIdentity(kv.value.toString('utf8'), 'etcd metadata store');
        } catch (error) {
          throw this.ledger.noteError(error, 'cluster identity');
        }
      },
      encode: (record) => sealClusterIdentity(record),
    };
  }

  // ---- repair hints ------------------------------------------------------------------------------------------

  async addRepairHint(key: string): Promise<void> {
    const deadline = this.deadline();
    const hintKey = KeySpace.under(this.keys.hints, key, 'key');
    // Put only if absent: an existing hint keeps its creation revision, hence its place in the queue.
    await this.rpc('addRepairHint', 'idempotent', deadline, (options) =>
      this.client.kv.txn({ compare: [absent(hintKey)], success: [put(hintKey, '')], failure: [] }, options),
    );
  }

  async takeRepairHints(limit: number): Promise<string[]> {
    assertCount(limit, 'limit');
    if (limit === 0) return [];
    const deadline = this.deadline();
    const namespace = this.keys.hints;
    // Oldest first; one page at most, because the page is deleted in one transaction (fewer is allowed).
    const request: IRangeRequest = {
      key: namespace,
      range_end: prefixUpperBound(namespace),
      limit: Math.min(limit, ETCD_METADATA_LIMITS.sweepPageKeysMax),
      sort_target: SortTarget.Create,
      sort_order: SortOrder.Ascend,
      keys_only: true,
    };
    const response = await this.rpc('takeRepairHints', 'idempotent', deadline, (options) =>
      this.client.kv.range(request, options),
    );
    const taken = await this.deleteUnchanged('takeRepairHints', deadline, response.kvs);
    return taken.map((kv) => KeySpace.nameIn(namespace, kv.key));
  }

  // ---- leadership --------------------------------------------------------------------------------------------

  async acquireLeadership(name: string, holder: string, ttlMs: number): Promise<LeaderTerm | null> {
    assert(holder.length > 0, 'holder is non-empty');
    assert(Number.isInteger(ttlMs) && ttlMs > 0, 'ttlMs is an integer > 0');
    const deadline = this.deadline();
    const leaderKey = KeySpace.under(this.keys.leaders, name, 'leader name');
    // Taken before any request: the lease cannot expire earlier than ttlMs after this.
    const startedMs = this.clock.nowMs();
    const found = await this.rpc('acquireLeadership', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key: leaderKey }, options),
    );
    const current = found.kvs[0];
    if (current !== undefined) {
      if (current.value.toString('utf8') !== holder) return null;
      // A renewal: the key, hence the term, stays; only its lease is kept alive.
      const ttlSeconds = await this.keepAliveOnce(current.lease, deadline);
      if (ttlSeconds > 0) {
        const term = revisionOf(current.create_revision, 'leader create_revision');
        return this.rememberLease(name, holder, term, startedMs + Math.min(ttlMs, ttlSeconds * 1000));
      }
      // The lease ran out between the read and the keep-alive; etcd deletes the key, so campaign afresh.
    }

    // etcd leases have whole seconds (and a floor of about 2 s by default, which etcd applies silently).
    const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const grant = await this.rpc('acquireLeadership', 'once', deadline, (options) =>
      this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }, options),
    );
    const leaseId = grant.ID;
    const created = await this.rpc('acquireLeadership', 'once', deadline, (options) =>
      this.client.kv.txn(
        {
          compare: [createIs(leaderKey, 0)],
          success: [put(leaderKey, utf8(holder, 'holder'), leaseId)],
          failure: [],
        },
        options,
      ),
    );
    if (!created.succeeded) {
      // Someone else campaigned in between; the unused lease would expire by itself, but free it now.
      await this.revokeQuietly(leaseId, deadline);
      return null;
    }
    // The key was created by this transaction, so its create_revision (the term) is the transaction's revision,
    // which is greater than that of every earlier leader key.
    const term = revisionOf(created.header.revision, 'leader create revision');
    return this.rememberLease(name, holder, term, startedMs + Math.min(ttlMs, revisionOf(grant.TTL, 'TTL') * 1000));
  }

  async releaseLeadership(term: LeaderTerm): Promise<void> {
    const deadline = this.deadline();
    const leaderKey = KeySpace.under(this.keys.leaders, term.name, 'leader name');
    const response = await this.rpc('releaseLeadership', 'idempotent', deadline, (options) =>
      this.client.kv.txn(
        {
          compare: [createIs(leaderKey, term.term), valueIs(leaderKey, utf8(term.holder, 'holder'))],
          success: [get(leaderKey), del(leaderKey)],
          failure: [],
        },
        options,
      ),
    );
    const own = this.ownLeases.get(term.name);
    if (own !== undefined && own.holder === term.holder && own.term === term.term) this.ownLeases.delete(term.name);
    // Deleting the key ended the leadership; the lease has nothing left to keep, so free it.
    const released = response.succeeded ? rangedKv(response, 0) : null;
    if (released !== null && released.lease !== '0') await this.revokeQuietly(released.lease, deadline);
  }

  async currentLeader(name: string): Promise<string | null> {
    const deadline = this.deadline();
    const leaderKey = KeySpace.under(this.keys.leaders, name, 'leader name');
    const response = await this.rpc('currentLeader', 'idempotent', deadline, (options) =>
      this.client.kv.range({ key: leaderKey }, options),
    );
    return response.kvs[0]?.value.toString('utf8') ?? null;
  }

  // ---- storage-node registry ---------------------------------------------------------------------------------

  async registerNode(node: NodeRegistration, ttlMs: number): Promise<void> {
    assertRegistration(node, ttlMs);
    const recordKey = KeySpace.under(this.keys.nodes, node.id, 'node id');
    const aliveKey = KeySpace.under(this.keys.alive, node.id, 'node id');
    try {
      const leaseId = await this.nodeLease(node.id, ttlMs);
      const lastHeartbeatMs = this.clock.nowMs();
      await this.readModifyWrite<NodeRecord, undefined>('registerNode', recordKey, this.plainCodec<NodeRecord>('node record'), (current) => {
        if (current !== null) this.checkNodeFormat(current, node.id);
        const record: NodeRecord = {
          format: ETCD_NODE_RECORD_FORMAT,
          address: node.address,
          zone: node.zone ?? null,
          // A refresh keeps the state an operator set; a new (or removed and returning) node starts active.
          state: current?.state ?? 'active',
          lastHeartbeatMs,
        };
        // The alive key lives exactly as long as the lease: etcd deletes it when the node stops renewing.
        return { result: undefined, write: record, alsoOnWrite: [put(aliveKey, '', leaseId)] };
      });
    } catch (err) {
      // The lease may be what failed (expired between the keep-alive and the put): grant a fresh one next time.
      // Not under etcd's NOSPACE alarm: it refuses the record's put and any new lease, but keep-alives still work,
      // so keeping this lease alive keeps the node up for gateways (reads go on) until the alarm is disarmed.
      if (!isStrataError(err, 'DISK_FULL')) this.nodeLeases.delete(node.id);
      throw err;
    }
  }

  async deregisterNode(id: string): Promise<void> {
    if (!isPossibleNodeId(id)) return;
    const known = this.nodeLeases.get(id);
    this.nodeLeases.delete(id);
    if (known !== undefined) {
      // Revoking the lease deletes the alive key with it; the node record (and its state) stays.
      await this.rpc('deregisterNode (lease revoke)', 'idempotent', this.deadline(), (options) =>
        this.client.leaseClient.leaseRevoke({ ID: known.leaseId }, options),
      );
      return;
    }
    // Registered by another client of this store (or before a restart): delete the alive key itself.
    const aliveKey = KeySpace.under(this.keys.alive, id, 'node id');
    await this.rpc('deregisterNode', 'idempotent', this.deadline(), (options) => this.client.kv.deleteRange({ key: aliveKey }, options));
  }

  async listNodes(): Promise<RegisteredNode[]> {
    const deadline = this.deadline();
    const { nodes, alive } = this.keys;
    // One more than the limit, so that a registry beyond it is reported instead of silently cut.
    const limit = NODE_REGISTRY_LIMITS.nodesMax + 1;
    const range = (key: Buffer, keysOnly: boolean): IRequestOp => ({
      request_range: { key, range_end: prefixUpperBound(key), limit, keys_only: keysOnly },
    });
    // Both ranges in one transaction: one snapshot, so a node's record and its liveness agree.
    const response = await this.rpc('listNodes', 'idempotent', deadline, (options) =>
      this.client.kv.txn({ compare: [], success: [range(nodes, false), range(alive, true)], failure: [] }, options),
    );
    const records = response.responses[0]?.response_range?.kvs ?? [];
    const aliveKvs = response.responses[1]?.response_range?.kvs ?? [];
    if (records.length > NODE_REGISTRY_LIMITS.nodesMax) throw tooManyNodes(records.length);
    const aliveIds = new Set(aliveKvs.map((kv) => KeySpace.nameIn(alive, kv.key)));
    return records
      .map((kv): RegisteredNode => {
        const id = KeySpace.nameIn(nodes, kv.key);
        const record = this.checkNodeFormat(this.decodeJson<NodeRecord>(kv, 'node record'), id);
        const node: RegisteredNode = {
          id,
          address: record.address,
          state: record.state,
          alive: aliveIds.has(id),
          lastHeartbeatMs: record.lastHeartbeatMs,
        };
        if (record.zone !== null) node.zone = record.zone;
        return node;
      })
      .sort(byNodeId);
  }

  async setNodeState(id: string, state: NodeMembershipState): Promise<void> {
    assertMembershipState(state);
    if (!isPossibleNodeId(id)) throw nodeNotFound(id);
    const recordKey = KeySpace.under(this.keys.nodes, id, 'node id');
    await this.readModifyWrite<NodeRecord, undefined>('setNodeState', recordKey, this.plainCodec<NodeRecord>('node record'), (current) => {
      if (current === null) throw nodeNotFound(id);
      this.checkNodeFormat(current, id);
      if (current.state === state) return { result: undefined };
      return { result: undefined, write: { ...current, state } };
    });
  }

  async removeNode(id: string): Promise<void> {
    if (!isPossibleNodeId(id)) throw nodeNotFound(id);
    const recordKey = KeySpace.under(this.keys.nodes, id, 'node id');
    const aliveKey = KeySpace.under(this.keys.alive, id, 'node id');
    await this.readModifyWrite<NodeRecord, undefined>('removeNode', recordKey, this.plainCodec<NodeRecord>('node record'), (current) => {
      if (current === null) throw nodeNotFound(id);
      this.checkNodeFormat(current, id);
      if (current.state !== 'draining') throw nodeNotDrained(id, current.state);
      // The lease belongs to the node's own process; deleting the alive key is enough to forget it.
      return { result: undefined, write: 'delete', alsoOnWrite: [del(aliveKey)] };
    });
    this.nodeLeases.delete(id);
  }

  /** The lease for `id`'s alive key: the one granted before, kept alive once, or a fresh one. */
  private async nodeLease(id: string, ttlMs: number): Promise<string> {
    const deadline = this.deadline();
    // etcd leases have whole seconds (and a floor of about 2 s by default, which etcd applies silently).
    const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const known = this.nodeLeases.get(id);
    if (known !== undefined && known.ttlSeconds === ttlSeconds) {
      if ((await this.keepAliveOnce(known.leaseId, deadline, 'registerNode')) > 0) return known.leaseId;
    }
    // First registration, a changed ttl, or a lease that lapsed: a new lease (an old one expires by itself).
    const grant = await this.rpc('registerNode (lease grant)', 'once', deadline, (options) =>
      this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }, options),
    );
    this.nodeLeases.set(id, { leaseId: grant.ID, ttlSeconds });
    return grant.ID;
  }

  private checkNodeFormat(record: NodeRecord, id: string): NodeRecord {
    if (record.format !== ETCD_NODE_RECORD_FORMAT) {
      throw new StrataError(
        'METADATA_UNAVAILABLE',
        `etcd record of storage node "${id}" has format ${record.format}; this Strata reads format ${ETCD_NODE_RECORD_FORMAT}`,
      );
    }
    return record;
  }

  async close(): Promise<void> {
    await Promise.all([...this.watchers].map((w) => w.stop('metadata store closed')));
    this.spaceState.close();
    this.calls.close();
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  private get client() {
    return this.calls.client;
  }

  private deadline(): Deadline {
    return this.calls.deadline();
  }

  private async rpc<T>(what: string, kind: CallKind, deadline: Deadline, send: (options: CallOptions) => Promise<T>): Promise<T> {
    try {
      return await this.calls.call(what, kind, deadline, send);
    } catch (err) {
      // etcd's quota is exhausted: known at once here, so that the next writes are refused before their blobs.
      if (isStrataError(err, 'DISK_FULL')) this.spaceState.noted();
      throw err;
    }
  }

  private manifestKey(key: string): Buffer {
    return KeySpace.under(this.keys.manifests, key, 'key');
  }

  /**
   * A record in the envelope, verified against the key it was read under (METADATA_CORRUPT otherwise, noted in
   * the ledger); a record without one (written by the previous release) is parsed as it is.
   */
  private openSealed<T>(kv: IKeyValue, kind: RecordKind, key: string, what: string): T {
    let opened;
    try {
      opened = openText(kind, key, kv.value.toString('utf8'), 'etcd metadata store');
    } catch (error) {
      throw this.ledger.noteError(error, 'read');
    }
    try {
      return JSON.parse(opened.content) as T;
    } catch {
      throw this.ledger.noteError(corruptRecord(kind, key, 'etcd metadata store', `it does not hold a readable ${what}`), 'read');
    }
  }

  /**
   * The manifest a stored value holds (./etcd-manifest-value.ts), either form. A binary one that names a node
   * number or hot-field set this process has not cached yet (another gateway assigned it) is decoded again after
   * one dictionary read; only then is it corrupt.
   */
  private async readManifest(kv: IKeyValue): Promise<StoredManifest> {
    try {
      return this.decodeManifest(kv, false);
    } catch (error) {
      if (!(error instanceof BinaryManifestUnreadable)) throw error;
      await this.dictionary.reload();
      return this.decodeManifest(kv, true);
    }
  }

  /**
   * `readManifest` without waiting: throws BinaryManifestUnreadable (not noted) when a binary value missed the
   * dictionary cache and `missIsFinal` is false; every other failure is noted in the ledger and thrown.
   */
  private decodeManifest(kv: IKeyValue, missIsFinal: boolean): StoredManifest {
    const modRevision = revisionOf(kv.mod_revision, 'mod_revision');
    const key = KeySpace.nameIn(this.keys.manifests, kv.key);
    if (manifestValueForm(kv.value, key) === 'binary') {
      try {
        const manifest = decodeBinaryManifestValue(kv.value, key, modRevision, this.dictionary, 'etcd metadata store');
        assert(typeof manifest.key === 'string' && manifest.formatVersion === 1, 'stored manifest');
        return { manifest, modRevision };
      } catch (error) {
        if (!(error instanceof BinaryManifestUnreadable)) throw error;
        if (error.dictionaryMiss && !missIsFinal) throw error;
        throw this.ledger.noteError(error.error, 'read');
      }
    }
    const record = this.openSealed<ManifestRecord>(kv, 'manifest', key, 'manifest record');
    // Sealed or not, the manifest must name the key it is stored under (the only check an unsealed record allows).
    if (typeof record !== 'object' || record === null || typeof record.manifest !== 'object' || record.manifest === null || record.manifest.key !== key) {
      throw this.ledger.noteError(corruptRecord('manifest', key, 'etcd metadata store', 'its content is not a manifest of this key'), 'read');
    }
    if (record.format !== ETCD_MANIFEST_RECORD_FORMAT) {
      throw new StrataError(
        'METADATA_UNAVAILABLE',
        `etcd key ${kv.key.toString('utf8')} holds manifest record format ${record.format}; this Strata reads format ${ETCD_MANIFEST_RECORD_FORMAT}`,
      );
    }
    const version = record.version ?? String(modRevision);
    const manifest = { ...record.manifest, version } as Manifest;
    assert(typeof manifest.key === 'string' && manifest.formatVersion === 1, 'stored manifest');
    return { manifest, modRevision };
  }

  /** A JSON value without envelope (records that decide no commit or delete: tiering records). */
  private plainCodec<V>(what: string): ValueCodec<V> {
    return { decode: (kv) => this.decodeJson<V>(kv, what), encode: (value) => JSON.stringify(value) };
  }

  /**
   * An idempotency record in the envelope (kind `idempotency`, key = the token): it decides whether a retried
   * request is replayed or applied. One the previous release wrote (no envelope) is read after its structure is
   * checked.
   */
  private idempotencyCodec(token: string): ValueCodec<IdempotencyValue> {
    return {
      decode: (kv) => {
        const value = this.openSealed<IdempotencyValue>(kv, 'idempotency', token, 'idempotency record');
        const ok =
          typeof value === 'object' && value !== null && typeof value.fingerprint === 'string' && typeof value.expiresMs === 'number' &&
          (value.state === 'pending' || (value.state === 'done' && typeof value.response === 'object' && value.response !== null));
        if (!ok) throw this.ledger.noteError(corruptRecord('idempotency', token, 'etcd metadata store', 'its content is not an idempotency record'), 'read');
        return value;
      },
      encode: (value) => sealIdempotency(token, value),
    };
  }

  /** `read()`, or null when it threw METADATA_CORRUPT (already noted in the ledger by the reader). */
  private keepIfCorrupt<T>(read: () => T): T | null {
    try {
      return read();
    } catch (error) {
      if (isStrataError(error, 'METADATA_CORRUPT')) return null;
      throw error;
    }
  }

  private async keepIfCorruptAsync<T>(read: () => Promise<T>): Promise<T | null> {
    try {
      return await read();
    } catch (error) {
      if (isStrataError(error, 'METADATA_CORRUPT')) return null;
      throw error;
    }
  }

  /**
   * The value a manifest write stores: at data format 2 and above the binary form, after making sure the
   * dictionary numbers it needs exist in etcd; below, the v1 JSON record as the previous release writes it.
   * `versionFromRevision`: the version is the revision of the transaction that stores it. `guard`: what the
   * transaction must also compare about the dictionary (nothing for the JSON form).
   */
  private async manifestValue(key: string, manifest: Manifest, versionFromRevision: boolean): Promise<{ value: Buffer | string; guard: DictionaryGuard }> {
    if (this.dataFormat.current() < DATA_FORMAT_V2) {
      const { version, ...rest } = manifest;
      const record: ManifestRecord = { format: ETCD_MANIFEST_RECORD_FORMAT, version: versionFromRevision ? null : version, manifest: rest };
      return { value: sealText('manifest', key, JSON.stringify(record)), guard: NO_DICTIONARY_GUARD };
    }
    const needs = dictionaryNeeds(manifest);
    try {
      await this.dictionary.ensure(needs);
    } catch (error) {
      throw this.ledger.noteError(error, 'commit');
    }
    const guard = this.dictionary.guard(needs);
    return { value: encodeBinaryManifestValue(key, manifest, versionFromRevision, this.dictionary), guard };
  }

  private decodeJson<T>(kv: IKeyValue, what: string): T {
    try {
      return JSON.parse(kv.value.toString('utf8')) as T;
    } catch {
      // Written by something other than this store (or damaged): report it rather than crash the caller.
      throw new StrataError('METADATA_UNAVAILABLE', `etcd key ${kv.key.toString('utf8')} does not hold a readable ${what}`);
    }
  }

  /**
   * A compare-and-set loop on one JSON record: read it, let `decide` choose, write (or delete) it if its
   * mod_revision has not moved, else start over with the value the failed transaction read back.
   */
  private async readModifyWrite<V, R>(
    what: string,
    key: Buffer,
    codec: ValueCodec<V>,
    decide: (current: V | null, kv: IKeyValue | null) => { result: R; write?: V | 'delete'; alsoOnWrite?: IRequestOp[] },
  ): Promise<R> {
    const deadline = this.deadline();
    const first = await this.rpc(what, 'idempotent', deadline, (options) => this.client.kv.range({ key }, options));
    let kv = first.kvs[0] ?? null;
    for (let attempt = 1; attempt <= ETCD_METADATA_LIMITS.casRetriesMax; attempt++) {
      const current = kv === null ? null : codec.decode(kv);
      const { result, write, alsoOnWrite = [] } = decide(current, kv);
      if (write === undefined) return result;
      const modRevision = kv === null ? 0 : revisionOf(kv.mod_revision, 'mod_revision');
      const response = await this.rpc(what, 'once', deadline, (options) =>
        this.client.kv.txn(
          {
            compare: [modIs(key, modRevision)],
            success: [write === 'delete' ? del(key) : put(key, codec.encode(write)), ...alsoOnWrite],
            failure: [get(key)],
          },
          options,
        ),
      );
      if (response.succeeded) return result;
      kv = rangedKv(response, 0);
    }
    throw new StrataError('METADATA_UNAVAILABLE', `etcd: ${what} lost its compare-and-set race ${ETCD_METADATA_LIMITS.casRetriesMax} times`);
  }

  /**
   * Deletes, page by page, the records of `namespace` that `expired` selects; returns how many went. Each page
   * has its own deadline: a sweep's length grows with the data, a page's does not.
   */
  private async sweep(what: string, namespace: Buffer, expired: (kv: IKeyValue) => boolean): Promise<number> {
    const end = prefixUpperBound(namespace);
    let from = namespace;
    let deleted = 0;
    for (;;) {
      const deadline = this.deadline();
      const page = await this.rpc(what, 'idempotent', deadline, (options) =>
        this.client.kv.range({ key: from, range_end: end, limit: ETCD_METADATA_LIMITS.sweepPageKeysMax }, options),
      );
      const last = page.kvs[page.kvs.length - 1];
      deleted += (await this.deleteUnchanged(what, deadline, page.kvs.filter(expired))).length;
      if (!page.more || last === undefined) return deleted;
      from = successor(last.key);
    }
  }

  /**
   * Deletes the given key-values if each is still at the revision read; returns those deleted. One transaction
   * for all; if any changed meanwhile, one per key so that the others still go.
   */
  private async deleteUnchanged(what: string, deadline: Deadline, kvs: IKeyValue[]): Promise<IKeyValue[]> {
    if (kvs.length === 0) return [];
    assert(kvs.length <= ETCD_METADATA_LIMITS.sweepPageKeysMax, 'a deletion batch fits in one etcd transaction');
    const unchanged = (kv: IKeyValue) => modIs(kv.key, revisionOf(kv.mod_revision, 'mod_revision'));
    const all = await this.rpc(what, 'once', deadline, (options) =>
      this.client.kv.txn({ compare: kvs.map(unchanged), success: kvs.map((kv) => del(kv.key)), failure: [] }, options),
    );
    if (all.succeeded) return kvs;
    const deleted: IKeyValue[] = [];
    for (const kv of kvs) {
      const one = await this.rpc(what, 'once', deadline, (options) =>
        this.client.kv.txn({ compare: [unchanged(kv)], success: [del(kv.key)], failure: [] }, options),
      );
      if (one.succeeded) deleted.push(kv);
    }
    return deleted;
  }

  /** Renews a lease once; returns its remaining TTL in seconds, 0 when it had already expired. */
  private async keepAliveOnce(leaseId: string, deadline: Deadline, what = 'acquireLeadership'): Promise<number> {
    if (leaseId === '0') return 0;
    return this.rpc(`${what} (lease keep-alive)`, 'idempotent', deadline, async (options) => {
      const stream = await this.client.leaseClient.leaseKeepAlive(options);
      return new Promise<number>((resolve, reject) => {
        stream.on('data', (answer) => {
          resolve(revisionOf(answer.TTL, 'TTL'));
          stream.end();
        });
        stream.on('error', (err) => reject(castGrpcError(err)));
        stream.on('end', () => reject(new GRPCUnavailableError('lease keep-alive stream ended without an answer')));
        stream.write({ ID: leaseId });
      });
    });
  }

  private async revokeQuietly(leaseId: string, deadline: Deadline): Promise<void> {
    try {
      await this.rpc('lease revoke', 'idempotent', deadline, (options) => this.client.leaseClient.leaseRevoke({ ID: leaseId }, options));
    } catch {
      // Only a clean-up: an unrevoked lease expires by itself after its TTL.
    }
  }

  private rememberLease(name: string, holder: string, term: number, expiresAtMs: number): LeaderTerm {
    this.ownLeases.set(name, { holder, term, expiresAtMs });
    return { name, holder, term };
  }

  private ownLeaseLapsed(fence: LeaderTerm): boolean {
    const own = this.ownLeases.get(fence.name);
    if (own === undefined || own.holder !== fence.holder || own.term !== fence.term) return false;
    return own.expiresAtMs <= this.clock.nowMs();
  }
}

/** How a read-modify-write loop reads and writes its record. */
interface ValueCodec<V> {
  decode(kv: IKeyValue): V;
  encode(value: V): string;
}

/** An idempotency record's stored value: the envelope's text form, deterministic (a commit compares its bytes). */
function sealIdempotency(token: string, value: IdempotencyValue): string {
  return sealText('idempotency', token, JSON.stringify(value));
}

function toIdempotencyRecord(value: IdempotencyValue, kv: IKeyValue): IdempotencyRecord {
  if (value.state === 'pending') return { state: 'pending', fingerprint: value.fingerprint, leaseUntilMs: value.leaseUntilMs ?? 0 };
  assert(value.response !== null, 'a done idempotency record has a response');
  const version = value.versionFromRevision === true ? String(revisionOf(kv.mod_revision, 'mod_revision')) : null;
  return { state: 'done', fingerprint: value.fingerprint, response: value.response, version };
}

/** `claim` still holds the token whose record is `current` (pending, same attempt). */
function holdsToken(current: IdempotencyValue | null, claim: IdempotencyClaim): boolean {
  return current !== null && current.state === 'pending' && current.attemptId === claim.attemptId;
}

/** Journal details are for people: an oversized one is cut rather than refused, so a repair is never blocked. */
function truncateUtf8(text: string, bytesMax: number): string {
  if (Buffer.byteLength(text, 'utf8') <= bytesMax) return text;
  let out = text.slice(0, bytesMax);
  while (Buffer.byteLength(out, 'utf8') > bytesMax - 3) out = out.slice(0, -1);
  return `${out}...`;
}

/** A listener's failure is its own business; it must not stop the watch. */
function safely(run: () => void): void {
  try {
    run();
  } catch {
    // ignored: see above
  }
}

/** Resolves once etcd confirms the watch, rejects on its error or at `deadline` (epoch ms). */
/** Stops a watch without waiting long: cancelling waits for etcd's answer, which never comes while it is unreachable. */
/** A JSON manifest value relies on no dictionary entry. */
const NO_DICTIONARY_GUARD: DictionaryGuard = { compare: [], reads: [], stale: () => false };

/**
 * Transactions of one commit whose dictionary check failed (etcd holds other entries than this process cached:
 * restored from a backup since); each reloads the dictionary and encodes again.
 */
const DICTIONARY_STALE_ATTEMPTS_MAX = 3;

function staleDictionary(key: string): StrataError {
  return new StrataError(
    'METADATA_UNAVAILABLE',
    `etcd: the commit of ${JSON.stringify(key)} kept finding the manifest dictionary changed under it (${DICTIONARY_STALE_ATTEMPTS_MAX} attempts); nothing was written, retry`,
  );
}

/** Read-check-replace rounds of one replaceCorruptManifest call. */
const REPAIR_ATTEMPTS_MAX = 3;

/** The parsed content of a damaged etcd record (after its envelope header, when it has one), or null. */
function damagedRecordContent(text: string): Record<string, unknown> | null {
  const newline = text.indexOf('\n');
  const content = text.startsWith(SEALED_TEXT_PREFIX) && newline >= 0 ? text.slice(newline + 1) : text;
  try {
    const parsed: unknown = JSON.parse(content);
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

async function cancelWatcher(w: Watcher): Promise<void> {
  w.removeAllListeners();
  w.on('error', () => undefined);
  await Promise.race([w.cancel().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, WATCH_CANCEL_WAIT_MS).unref())]);
}

function watchConnected(w: Watcher, deadline: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the watch was not created before the deadline')), Math.max(0, deadline - Date.now()));
    timer.unref();
    w.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    w.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
