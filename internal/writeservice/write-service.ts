/**
 * The write protocol of architecture.md ("Write", one key), shared by write, patch and delete:
 *
 *   plan -> choose nodes -> append intent -> put created blobs (quorum) -> commit (CAS + no abort record)
 *        -> append outcome -> answer -> release what the previous manifest referenced and the new one does not.
 *
 * A write is visible exactly when the commit succeeds. Blob ids and intents are keyed by a fresh write id, never
 * by version. A pure hot update reuses the current cold shards, so release skips every blob the new manifest
 * still references. A commit that loses a race re-plans against the newer manifest (write) or re-applies the
 * patch to it (patch); conditional requests answer 412 instead.
 */
import type { NodePool } from '../cluster/node-pool.js';
import type { Clock } from '../core/clock.js';
import { assert } from '../core/assert.js';
import { KeyedMutex } from '../core/keyed-mutex.js';
import { StrataError, isStrataError } from '../core/errors.js';
import { blobIdOf, newWriteId } from '../core/ids.js';
import {
  EC_TOTAL_SHARDS,
  EC_WRITE_QUORUM,
  HOT_REPLICAS,
  HOT_WRITE_QUORUM,
  LIMITS,
} from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import type { JsonObject } from '../json/value.js';
import { COLD_HASH_HEX_DIGITS } from '../json/split.js';
import type { Logger } from '../log/logger.js';
import type { BlobRef, ColdLayout, Manifest, StoredManifest, Strategy } from '../manifest/manifest.js';
import { allRefs, isExpired, referencesBlob, referencesWrite, tombstoneManifest } from '../manifest/manifest.js';
import { blobHeaders, blobMeta, type DocumentSelf } from '../manifest/blob-meta.js';
import type { CommitResult, IdempotencyClaim, IdempotentResponse, LeaderTerm, MetadataStore } from '../metadata/metadata-store.js';
import { chooseNodes, requireRoom } from '../placement/rendezvous.js';
import type { WalBlob, WriteAheadLog } from '../wal/write-ahead-log.js';
import { checksum64Of, checksumOf } from '../blobio/checksum.js';
import { DATA_FORMAT_V1, DATA_FORMAT_V2, DATA_FORMAT_V3, type DataFormatSource } from '../core/data-format.js';
import { deleteAll, putAll, type PutTarget } from '../blobio/blob-io.js';
import { canReuseCold, type DocumentPlan } from './plan.js';
import {
  COLD_STORAGE_DEFAULTS,
  coldCopyPart,
  coldPlacementOf,
  storeColdText,
  type ColdStorageSettings,
} from '../coldpart/cold-layout.js';

export interface WriteServiceOptions {
  nodeTimeoutMs: number;
  /**
   * A write attempt never commits later than this after its intent was appended (the healer's GC grace period,
   * STRATA_GC_GRACE_MS). The abort record that stops a rolled-back write from committing is itself deleted a
   * grace period after the abort, so without a deadline a gateway paused long enough could commit a manifest
   * whose blobs the healer already deleted. The healer aborts no earlier than the intent timeout (<= grace) after
   * the intent, so its record lives at least intentTimeout + grace past the intent: the deadline leaves a margin
   * of at least the intent timeout for clock skew and for the commit request in flight.
   */
  commitDeadlineMs: number;
  /** Compression and small-part placement of cold parts; default COLD_STORAGE_DEFAULTS (internal/coldpart). */
  cold?: ColdStorageSettings;
}

/**
 * Points where tests (and the simulator) can pause or fail a write, to play a gateway crash between any two
 * steps of the protocol. Production wiring passes none.
 */
export interface WriteHooks {
  afterIntent?(writeId: string, key: string): Promise<void>;
  beforeCommit?(writeId: string, key: string): Promise<void>;
}

/** What a commit was, for metrics (internal/metrics); the write path works the same without an observer. */
export interface CommitEvent {
  strategy: Strategy;
  /** The commit replaced a live document (a write or patch over an existing key). */
  isUpdate: boolean;
  isPureHotUpdate: boolean;
  deleted: boolean;
}

export interface WriteObserver {
  committed(event: CommitEvent): void;
}

export interface WriteServiceDeps {
  metadata: MetadataStore;
  wal: WriteAheadLog;
  pool: NodePool;
  ec: ErasureCode;
  clock: Clock;
  log: Logger;
  options: WriteServiceOptions;
  hooks?: WriteHooks;
  observer?: WriteObserver;
  /**
   * The local disk's reserve when the metadata store and the log live on it (the all-in-one, internal/reserve):
   * a write it cannot take is refused with DISK_FULL before its intent is logged. Deletes never ask.
   */
  capacity?: WriteCapacity;
  /**
   * The cluster's data format version (internal/core/data-format.ts): which blob and manifest encodings this write
   * may use. Default: format 1, what every process of the previous release reads.
   */
  dataFormat?: DataFormatSource;
}

export interface WriteCapacity {
  /** Rejects with DISK_FULL (nothing changed) when `bytes` more would reach into the reserve. */
  admit(bytes: number, what: string): Promise<void>;
}

/** Metadata and log bytes of one write beside its blobs (manifest, intent, outcome, SQLite pages), for admission. */
const WRITE_METADATA_BYTES = 16 * 1024;

export interface Preconditions {
  /** `If-Match`: the current version must be this one. */
  ifMatch?: string;
  /** `If-None-Match: *`: the key must not exist. */
  ifNoneMatch?: boolean;
}

export interface CommittedWrite {
  manifest: Manifest;
  isPureHotUpdate: boolean;
  partial: boolean;
  /** The manifest this write replaced (null when the key was absent or deleted). */
  previous: Manifest | null;
  /**
   * With an IdempotentOutcome: the response its commit recorded (a template: its version is `manifest.version`).
   * Absent when the write carried none.
   */
  recordedResponse?: IdempotentResponse;
}

/**
 * A client mutation carrying an Idempotency-Key (internal/api/idempotency.ts): its commit also requires the claim to
 * still hold the token and records the response in the same transaction (MetadataStore CommitRequest.idempotency),
 * so the outcome cannot be lost after the commit, and an attempt whose claim was taken over cannot commit.
 */
export interface IdempotentOutcome {
  claim: IdempotencyClaim;
  /** The response of `write`, called just before the commit, when everything but the version is known. */
  respond(write: CommittedWrite): IdempotentResponse;
}

/** What a caller wants stored, given the manifest it was planned on. Returns null to store a tombstone. */
export type Planner = (current: StoredManifest | null) => Promise<PlannedChange>;

export type PlannedChange =
  | { kind: 'document'; plan: DocumentPlan; hotOnly?: boolean; attrs?: ManifestAttributes }
  | { kind: 'tombstone' };

/** Manifest fields a planner sets beside the plan (tiering: where hot fields and strategy came from, time to live). */
export type ManifestAttributes = Pick<Manifest, 'hotFieldsSource' | 'strategySource' | 'expiresAtMs'>;

/**
 * A rewrite by the healer (re-tiering, lifecycle): the same protocol as a client write (intent, blobs, quorum,
 * compare-and-set commit, release) but the version, the manifest's write id and its timestamps stay, the commit is
 * fenced by the healer's term, and a lost race is not retried: the caller plans again from the newer manifest.
 */
export interface Maintenance {
  fence: LeaderTerm;
}

/**
 * Thrown by a planner when the manifest it planned on went away while it read the document (a newer write
 * released the blobs): the protocol re-reads the manifest and plans again.
 */
export class StalePlanError extends Error {
  constructor(key: string) {
    super(`the blobs of "${key}" changed while planning`);
    this.name = 'StalePlanError';
  }
}

/** Thrown inside an attempt when the commit lost a compare-and-set race. */
class CommitConflict {
  constructor(readonly current: StoredManifest | null) {}
}

/** Backoff after a lost commit race: up to BASE * 2^attempt ms, capped at MAX, uniformly jittered. */
const COMMIT_BACKOFF_MS_BASE = 2;
const COMMIT_BACKOFF_MS_MAX = 100;

export class WriteService {
  private readonly releases = new Set<Promise<unknown>>();
  private readonly keyLocks = new KeyedMutex();

  constructor(private readonly deps: WriteServiceDeps) {}

  /**
   * Runs the protocol until a commit succeeds, re-planning after each lost race. `plan` is called with the
   * current manifest every time, so a patch re-applies itself to the newer document.
   */
  async mutate(key: string, preconditions: Preconditions, plan: Planner, idempotency?: IdempotentOutcome): Promise<CommittedWrite> {
    // Writes to one key through this gateway take turns: racing them would only make all but one lose the
    // compare-and-set and redo their blob writes. Races with other gateways are still settled by the CAS.
    return this.keyLocks.run(key, () => this.mutateLocked(key, preconditions, plan, idempotency));
  }

  private async mutateLocked(key: string, preconditions: Preconditions, plan: Planner, idempotency?: IdempotentOutcome): Promise<CommittedWrite> {
    let current = await this.deps.metadata.get(key);
    const startedMs = this.deps.clock.nowMs();
    // Retries are bounded by count and by time: another gateway may win several races in a row while it works
    // through its own queue for this key, but it cannot win forever, so a loser keeps trying for a while.
    for (let attempt = 0; attempt < LIMITS.commitRetriesMax && this.deps.clock.nowMs() - startedMs < LIMITS.commitRetryWindowMs; attempt++) {
      checkPreconditions(key, current, preconditions, this.deps.clock.nowMs());
      let change: PlannedChange;
      try {
        change = await plan(current);
      } catch (error) {
        if (!(error instanceof StalePlanError)) throw error;
        current = await this.deps.metadata.get(key);
        continue;
      }
      const outcome = await this.attempt(key, current, change, undefined, idempotency);
      if (outcome instanceof CommitConflict) {
        if (preconditions.ifMatch !== undefined || preconditions.ifNoneMatch) {
          // A conditional write never re-plans: the condition was evaluated against a version that is gone.
          checkPreconditions(key, outcome.current, preconditions, this.deps.clock.nowMs());
        }
        current = outcome.current;
        // Another gateway won: back off a little, with jitter, so that contending gateways stop colliding.
        await this.deps.clock.sleep(Math.random() * Math.min(COMMIT_BACKOFF_MS_MAX, COMMIT_BACKOFF_MS_BASE * 2 ** attempt));
        continue;
      }
      return outcome;
    }
    throw new StrataError(
      'METADATA_UNAVAILABLE',
      `the write to "${key}" kept losing the commit race to other writers of this key; retry later`,
    );
  }

  /**
   * One attempt of the protocol on behalf of the healer (see Maintenance): 'committed', or 'conflict' when a
   * client write (or another healer action) changed the manifest since `current` was read; that write wins and
   * this attempt's blobs are deleted.
   */
  async rewrite(key: string, current: StoredManifest, plan: DocumentPlan, maintenance: Maintenance): Promise<'committed' | 'conflict'> {
    return this.keyLocks.run(key, async () => {
      const outcome = await this.attempt(key, current, { kind: 'document', plan }, maintenance);
      return outcome instanceof CommitConflict ? 'conflict' : 'committed';
    });
  }

  /** Waits for background releases of superseded blobs (tests and shutdown). */
  async drain(): Promise<void> {
    while (this.releases.size > 0) await Promise.allSettled([...this.releases]);
  }

  private async attempt(
    key: string,
    current: StoredManifest | null,
    change: PlannedChange,
    maintenance?: Maintenance,
    idempotency?: IdempotentOutcome,
  ): Promise<CommittedWrite | CommitConflict> {
    const { clock } = this.deps;
    const writeId = newWriteId(clock.nowMs());
    // An expired document is gone for everyone but the healer, which still rewrites what it finds.
    const live =
      current !== null && !current.manifest.deleted && (maintenance !== undefined || !isExpired(current.manifest, clock.nowMs()))
        ? current.manifest
        : null;

    if (change.kind === 'tombstone') {
      const intentAtMs = clock.nowMs();
      await this.deps.wal.append({ type: 'intent', key, writeId, op: 'delete', creates: [], reuses: [], atMs: intentAtMs });
      const manifest = tombstoneManifest(key, writeId, live, clock.nowMs());
      return this.commit(key, current, writeId, intentAtMs, manifest, [], false, undefined, idempotency);
    }

    const plan = change.plan;
    const reuse = canReuseCold(live, plan);
    const hotTargets = plan.hotPayload ? this.hotTargets(key, writeId, plan) : [];
    let coldTargets: PutTarget[] = [];
    let coldLayout = reuse ? live!.cold_layout : null;
    if (!reuse && plan.coldText) {
      // Compressed when that saves enough, then sharded, or copied beside the replicas when small (coldpart/).
      const stored = await storeColdText(this.deps.ec, plan.coldText, this.deps.options.cold ?? COLD_STORAGE_DEFAULTS, {
        keyBytes: Buffer.byteLength(key),
        format: this.dataFormat(),
      });
      coldLayout = stored.layout;
      coldTargets = this.coldTargets(key, writeId, plan, stored.payloads, stored.layout);
    }
    const format = this.dataFormat();
    if (format >= DATA_FORMAT_V2) {
      // Format 2: descriptors instead of key and meta in every blob (manifest/blob-descriptor.ts).
      const cold = coldLayout
        ? { ...coldLayout, coldHash: reuse ? live!.coldHash : plan.coldHash, writeId: reuse ? (live!.cold[0]?.writeId ?? live!.writeId) : writeId }
        : null;
      const doc: DocumentSelf = { key, strategy: plan.strategy, cold };
      for (const targets of [hotTargets, coldTargets]) {
        const headers = await blobHeaders(format, doc, targets.map((t) => ({ blob: t.header.id, writeId, part: t.header.part })));
        targets.forEach((t, i) => (t.header = headers[i]!));
      }
    }
    const checksumFor = format >= DATA_FORMAT_V2 ? checksum64Of : checksumOf;
    const coldQuorum = coldPlacementOf(coldLayout) === 'with_replicas' ? HOT_WRITE_QUORUM : EC_WRITE_QUORUM;
    const reused: BlobRef[] = reuse ? live!.cold.map((ref) => ({ ...ref })) : [];
    assert(plan.strategy === 'replication' || reuse || plan.coldText !== null, 'a plan without cold text reuses the cold shards');
    const created = [...hotTargets, ...coldTargets];
    // Refused here, before the intent, the write leaves nothing behind: running out of space is never half a write.
    await this.deps.capacity?.admit(created.reduce((sum, t) => sum + t.data.length, WRITE_METADATA_BYTES), `the write to "${key}"`);
    // The same for a metadata store whose own quota is exhausted (etcd's NOSPACE alarm): its commit would be refused,
    // and until the alarm is disarmed not even the healer could record the abort that removes the blobs.
    const metadataSpace = this.deps.metadata.space?.();
    if (metadataSpace !== undefined && !metadataSpace.writable) {
      throw new StrataError('DISK_FULL', `the write to "${key}" was refused, nothing was written: ${metadataSpace.reason}`);
    }

    const intentAtMs = clock.nowMs();
    await this.deps.wal.append({
      type: 'intent',
      key,
      writeId,
      op: 'write',
      creates: created.map(walBlob),
      reuses: reused.map((r) => ({ part: r.part, node: r.node, blob: r.blob })),
      atMs: intentAtMs,
    });
    await this.deps.hooks?.afterIntent?.(writeId, key);

    const outcomes = await putAll(this.deps.pool, created, this.deps.options.nodeTimeoutMs);
    const okParts = new Set(outcomes.filter((o) => o.ok).map((o) => `${o.target.node}/${o.target.header.id}`));
    const hotOk = hotTargets.filter((t) => okParts.has(`${t.node}/${t.header.id}`)).length;
    const coldOk = coldTargets.filter((t) => okParts.has(`${t.node}/${t.header.id}`)).length;
    if ((hotTargets.length > 0 && hotOk < HOT_WRITE_QUORUM) || (coldTargets.length > 0 && coldOk < coldQuorum)) {
      // Below quorum: nothing was committed and this gateway never will commit it, so its blobs can go now.
      const written = outcomes.filter((o) => o.ok).map((o) => ({ node: o.target.node, blob: o.target.header.id }));
      await deleteAll(this.deps.pool, written, this.deps.options.nodeTimeoutMs);
      void this.appendOutcome(key, writeId, 'failed');
      const failures = outcomes.filter((o) => !o.ok).map((o) => `${o.target.header.part} on ${o.target.node}`);
      const full = outcomes.find((o) => !o.ok && isStrataError(o.error, 'DISK_FULL'));
      if (full !== undefined) {
        throw new StrataError(
          'DISK_FULL',
          `only ${hotOk}/${hotTargets.length} replicas and ${coldOk}/${coldTargets.length} cold blobs were stored: ` +
            `${(full.error as StrataError).message}; nothing was written`,
        );
      }
      throw new StrataError(
        'INSUFFICIENT_NODES',
        `only ${hotOk}/${hotTargets.length} replicas and ${coldOk}/${coldTargets.length} cold blobs were stored ` +
          `(failed: ${failures.join(', ')}); nothing was written, retry when the storage nodes are back`,
      );
    }

    const toRef = (t: PutTarget): BlobRef => ({
      part: t.header.part,
      node: t.node,
      blob: t.header.id,
      writeId,
      size: t.data.length,
      checksum: checksumFor(t.data),
      state: okParts.has(`${t.node}/${t.header.id}`) ? 'ok' : 'missing',
    });
    const now = new Date(clock.nowMs()).toISOString();
    const hot = hotTargets.map(toRef);
    const cold = reuse ? reused : coldTargets.map(toRef);
    const manifest: Manifest = {
      formatVersion: 1,
      key,
      version: '0',
      writeId,
      deleted: false,
      strategy: plan.strategy,
      hotFields: plan.hotFields,
      hotPaths: plan.hotPaths,
      coldEmptyOffsets: plan.emptyOffsets,
      bytes: {
        logical: plan.logicalBytes,
        hot: plan.hotBytes,
        cold: plan.coldBytes,
        physical: [...hot, ...cold].reduce((sum, r) => sum + r.size, 0),
      },
      coldHash: storedColdHash(plan.coldHash, format),
      cold_layout: coldLayout,
      hot,
      cold,
      dirty: [...hot, ...cold].some((r) => r.state !== 'ok'),
      createdAt: live ? live.createdAt : now,
      updatedAt: now,
      ...(change.attrs ?? {}),
    };
    if (maintenance && live) {
      // Same version, same document: the healer changes where and how it is stored, nothing a client sees.
      manifest.version = live.version;
      manifest.writeId = live.writeId;
      manifest.updatedAt = live.updatedAt;
      for (const name of ['hotFieldsSource', 'strategySource', 'expiresAtMs'] as const) {
        if (live[name] !== undefined && manifest[name] === undefined) (manifest as unknown as Record<string, unknown>)[name] = live[name];
      }
    }
    const createdRefs = created.map((t) => ({ node: t.node, blob: t.header.id }));
    return this.commit(key, current, writeId, intentAtMs, manifest, createdRefs, reuse, maintenance, idempotency);
  }

  private async commit(
    key: string,
    current: StoredManifest | null,
    writeId: string,
    intentAtMs: number,
    manifest: Manifest,
    createdRefs: { node: string; blob: string }[],
    isPureHotUpdate: boolean,
    maintenance?: Maintenance,
    idempotency?: IdempotentOutcome,
  ): Promise<CommittedWrite | CommitConflict> {
    await this.deps.hooks?.beforeCommit?.(writeId, key);
    const previous = current && !current.manifest.deleted ? current.manifest : null;
    // Built before the commit so that the commit can record it; the version is filled in from the commit.
    const recordedResponse = idempotency?.respond({ manifest, isPureHotUpdate, partial: manifest.dirty, previous });
    // Checked immediately before the commit request (nothing is awaited in between): see commitDeadlineMs. Past
    // it the healer may have rolled this write back and its abort record may be gone, so only not committing is
    // safe. The blobs are left to the healer: the 'failed' outcome lets it resolve the intent (abort, delete) now.
    if (this.deps.clock.nowMs() - intentAtMs >= this.deps.options.commitDeadlineMs) {
      void this.appendOutcome(key, writeId, 'failed');
      throw new StrataError(
        'WRITE_ABORTED',
        `the write to "${key}" took longer than ${this.deps.options.commitDeadlineMs} ms to reach its commit and ` +
          'may have been rolled back by the healer; nothing was written, retry',
      );
    }
    let result: CommitResult;
    try {
      result = await this.deps.metadata.commit({
        key,
        expectedModRevision: current?.modRevision ?? 0,
        writeId,
        manifest,
        assignVersion: maintenance === undefined,
        ...(maintenance ? { fence: maintenance.fence } : {}),
        ...(idempotency && recordedResponse ? { idempotency: { claim: idempotency.claim, response: recordedResponse } } : {}),
      });
    } catch (error) {
      if (!isStrataError(error, 'COMMIT_UNKNOWN')) {
        // The store refused before applying anything; the intent lets the healer remove the blobs.
        void this.appendOutcome(key, writeId, 'failed');
        throw error;
      }
      result = await this.confirmCommit(key, writeId);
    }
    if (!result.ok) {
      if (result.reason === 'conflict') {
        // Lost the race: these blobs will never be committed under this write id, so remove them now.
        await deleteAll(this.deps.pool, createdRefs, this.deps.options.nodeTimeoutMs);
        void this.appendOutcome(key, writeId, 'failed');
        return new CommitConflict(result.current);
      }
      if (result.reason === 'superseded') {
        // The Idempotency-Key's claim was taken over (this attempt outlived its lease) or released: this write id
        // can never commit, so its blobs go now. The attempt that holds the token answers for it.
        await deleteAll(this.deps.pool, createdRefs, this.deps.options.nodeTimeoutMs);
        void this.appendOutcome(key, writeId, 'failed');
        throw new StrataError(
          'IDEMPOTENCY_IN_PROGRESS',
          `the write to "${key}" took so long that a retry with the same Idempotency-Key took over; nothing was written by ` +
            'this attempt, retry to get the outcome',
        );
      }
      void this.appendOutcome(key, writeId, 'failed');
      throw new StrataError(
        'WRITE_ABORTED',
        `the write to "${key}" took too long and was rolled back by the healer; nothing was written, retry`,
      );
    }
    void this.appendOutcome(key, writeId, 'committed');
    this.deps.observer?.committed({
      strategy: result.manifest.strategy,
      isUpdate: previous !== null && !result.manifest.deleted,
      isPureHotUpdate,
      deleted: result.manifest.deleted,
    });
    if (current) this.release(current.manifest, result.manifest);
    return {
      manifest: result.manifest,
      isPureHotUpdate,
      partial: result.manifest.dirty,
      previous,
      ...(recordedResponse ? { recordedResponse } : {}),
    };
  }

  /**
   * The commit's outcome is unknown (the store timed out after the request left). Read the key back: if the
   * manifest carries our write id the commit happened. Otherwise it may still be applied later, so we cannot
   * say either way, and we must not delete our blobs: the healer resolves the intent (and its abort record
   * makes a late commit impossible once it has removed them).
   */
  private async confirmCommit(key: string, writeId: string): Promise<CommitResult> {
    try {
      const after = await this.deps.metadata.get(key);
      if (after && (after.manifest.writeId === writeId || referencesWrite(after.manifest, writeId))) {
        return { ok: true, modRevision: after.modRevision, manifest: after.manifest };
      }
    } catch {
      // Fall through: still unknown.
    }
    throw new StrataError(
      'COMMIT_UNKNOWN',
      `the commit of "${key}" could not be confirmed; read the key (or retry with If-Match) to learn its state`,
      { writeId },
    );
  }

  /** Deletes what `previous` referenced and `next` does not, in the background. */
  private release(previous: Manifest, next: Manifest): void {
    const stale = allRefs(previous)
      .filter((ref) => !referencesBlob(next, ref.node, ref.blob))
      .map((ref) => ({ node: ref.node, blob: ref.blob }));
    if (stale.length === 0) return;
    const task = deleteAll(this.deps.pool, stale, this.deps.options.nodeTimeoutMs).catch((error) =>
      this.deps.log.warn({ err: error, key: previous.key }, 'releasing superseded blobs failed; GC will retry'),
    );
    this.releases.add(task);
    void task.finally(() => this.releases.delete(task));
  }

  private async appendOutcome(key: string, writeId: string, outcome: 'committed' | 'failed'): Promise<void> {
    // Not awaited by the caller: a lost outcome only delays the healer, which then checks the manifest itself.
    try {
      await this.deps.wal.append({ type: 'outcome', key, writeId, outcome, atMs: this.deps.clock.nowMs() });
    } catch (error) {
      this.deps.log.warn({ err: error, key, writeId }, 'appending a write outcome failed');
    }
  }

  private dataFormat(): number {
    return this.deps.dataFormat?.current() ?? DATA_FORMAT_V1;
  }

  private requireHealthy(quorum: number, what: string): void {
    const healthy = this.deps.pool.healthyCount();
    if (healthy < quorum) {
      throw new StrataError(
        'INSUFFICIENT_NODES',
        `only ${healthy} of ${this.deps.pool.size} storage nodes are up; ${quorum} are needed to store ${what}`,
      );
    }
  }

  /** Full nodes are skipped by placement; when too few others have room the write is refused with DISK_FULL. */
  private requireRoom(quorum: number, what: string): void {
    const full = this.deps.pool.views().flatMap((v) => (v.fullReason !== null ? [v.fullReason] : []));
    requireRoom(this.deps.pool.placementNodes(), quorum, what, full);
  }

  private hotTargets(key: string, writeId: string, plan: DocumentPlan): PutTarget[] {
    this.requireHealthy(HOT_WRITE_QUORUM, 'hot replicas');
    this.requireRoom(HOT_WRITE_QUORUM, 'hot replicas');
    const nodes = chooseNodes(`${key}/hot`, this.deps.pool.placementNodes(), HOT_REPLICAS);
    return nodes.map((node, i) => {
      const part = `hot-${i}`;
      const meta = blobMeta(plan.strategy, part, null);
      return { node, header: { id: blobIdOf(writeId, part), key, writeId, part, meta }, data: plan.hotPayload! };
    });
  }

  private coldTargets(key: string, writeId: string, plan: DocumentPlan, payloads: Buffer[], layout: ColdLayout): PutTarget[] {
    if (coldPlacementOf(layout) === 'with_replicas') {
      // Whole copies on the nodes of the hot replicas (the same ranking): the document lives on three nodes.
      this.requireHealthy(HOT_WRITE_QUORUM, 'cold copies');
      this.requireRoom(HOT_WRITE_QUORUM, 'cold copies');
      const nodes = chooseNodes(`${key}/hot`, this.deps.pool.placementNodes(), HOT_REPLICAS);
      return nodes.map((node, i) => {
        const part = coldCopyPart(i);
        const meta = blobMeta(plan.strategy, part, { ...layout, coldHash: plan.coldHash });
        return { node, header: { id: blobIdOf(writeId, part), key, writeId, part, meta }, data: payloads[i]! };
      });
    }
    this.requireHealthy(EC_WRITE_QUORUM, 'erasure-coded shards');
    this.requireRoom(EC_WRITE_QUORUM, 'erasure-coded shards');
    const nodes = chooseNodes(`${key}/cold`, this.deps.pool.placementNodes(), EC_TOTAL_SHARDS);
    return nodes.map((node, i) => {
      const part = `shard-${i}`;
      const meta = blobMeta(plan.strategy, part, { ...layout, coldHash: plan.coldHash });
      return { node, header: { id: blobIdOf(writeId, part), key, writeId, part, meta }, data: payloads[i]! };
    });
  }
}

function walBlob(t: PutTarget): WalBlob {
  return { part: t.header.part, node: t.node, blob: t.header.id };
}


export function checkPreconditions(key: string, current: StoredManifest | null, pre: Preconditions, nowMs = 0): void {
  const live = current !== null && !current.manifest.deleted && !isExpired(current.manifest, nowMs) ? current.manifest : null;
  if (pre.ifNoneMatch && live) {
    throw new StrataError('ALREADY_EXISTS', `"${key}" already exists (version ${live.version}) and If-None-Match: * was given`);
  }
  if (pre.ifMatch !== undefined) {
    if (!live) throw new StrataError('VERSION_MISMATCH', `"${key}" does not exist, so it cannot match version ${pre.ifMatch}`);
    if (live.version !== pre.ifMatch) {
      throw new StrataError(
        'VERSION_MISMATCH',
        `"${key}" is at version ${live.version}, not ${pre.ifMatch}; read it again and retry with the new ETag`,
      );
    }
  }
}

export type { Strategy };

/** The cold hash a manifest stores: from data format 3 on, the first 128 bits (manifest format 3 stores 16 bytes). */
function storedColdHash(hash: string | null, format: number): string | null {
  return hash !== null && format >= DATA_FORMAT_V3 ? hash.slice(0, COLD_HASH_HEX_DIGITS.short) : hash;
}
