/**
 * The healer's tiering work, run by the leader once per round at bounded rates (internal/tiering explains the
 * policy; docs/decisions.md "Re-tiering keeps the version"):
 *
 * 1. Policy upkeep: every prefix's record is re-evaluated, so that fields nobody uses any more cool down and are
 *    demoted even when no gateway reports traffic for that prefix.
 * 2. Expiry: documents past their time to live are deleted like a client delete (intent, tombstone with a new
 *    version, release), unless a client rewrote them meanwhile.
 * 3. Re-tiering: the documents of a prefix whose learned hot set changed (its `epoch`) are rewritten to the new
 *    split, at most `retierDocsPerRoundMax` per round, resuming from the cursor kept in the prefix's record. The
 *    policy changes the set only when the move pays for itself (internal/tiering/policy.ts: every document's cold
 *    part re-encoded and hot replicas rewritten, against what the move gains in one half-life), so this walk never
 *    spends more than its decision was priced at; the upkeep in (1) evaluates with the same rule.
 * 4. Lifecycle: `replication` documents neither read nor written for the prefix's `idle_to_ec_after_ms` move to
 *    `ec` (a strategy the client chose explicitly only with `override_explicit`).
 * 5. Read-heavy documents get extra hot replicas (up to HOT_COPIES_MAX copies in all) while they stay hot, and
 *    lose them when they cool (./extra-replicas.ts).
 *
 * Rewrites (3, 4) go through the write protocol (WriteService.rewrite): new blobs under a fresh write id and an
 * intent, a compare-and-set on the manifest read, fenced by the healer's term, release of the replaced blobs. A
 * client write that lands in between wins: the rewrite's commit fails, its blobs are deleted, and the document is
 * looked at again in a later round. The version, the manifest's write id and `updatedAt` stay, so ETags and
 * If-Match keep working and the document's idle time is not reset. The document's bytes are read, parsed and
 * planned again, which reproduces them exactly (internal/json's round-trip guarantee).
 */
import type { NodePool } from '../cluster/node-pool.js';
import type { TieringSettings } from '../config/tiering-config.js';
import type { Clock } from '../core/clock.js';
import { isStrataError } from '../core/errors.js';
import { parseFieldPath } from '../json/pointer.js';
import { parseJson } from '../json/parse.js';
import { isJsonObject } from '../json/value.js';
import type { Logger } from '../log/logger.js';
import { baseHotRefs, isExpired, type Manifest, type StoredManifest, type Strategy } from '../manifest/manifest.js';
import type { LeaderTerm, MetadataStore } from '../metadata/metadata-store.js';
import { LearnedHotFieldPolicy } from '../policy/learned-hot-fields.js';
import type { StaticHotFieldPolicy } from '../policy/hot-fields.js';
import type { ReadService } from '../readservice/read-service.js';
import { evaluateFor } from '../tiering/access-recorder.js';
import { TIERING_LIMITS } from '../tiering/limits.js';
import { extraReplicasFor, normalizeFields, sameFieldSet } from '../tiering/policy.js';
import { prefixOf } from '../tiering/prefix.js';
import { asTieringRecord, lastReadMsOf, type TieringRecord } from '../tiering/record.js';
import { planDocument } from '../writeservice/plan.js';
import type { WriteService } from '../writeservice/write-service.js';
import { setExtraReplicas } from './extra-replicas.js';

export interface TieringJobDeps {
  metadata: MetadataStore;
  pool: NodePool;
  clock: Clock;
  log: Logger;
  writes: WriteService;
  reads: ReadService;
  staticPolicy: StaticHotFieldPolicy;
  settings: TieringSettings;
  nodeTimeoutMs: number;
}

export interface TieringCounters {
  retiered: number;
  movedToEc: number;
  expired: number;
  extraAdded: number;
  extraRemoved: number;
  /** Rewrites that lost to a client write (tried again later). */
  gaveWay: number;
  policyChanges: number;
}

export class TieringJob {
  readonly counters: TieringCounters = { retiered: 0, movedToEc: 0, expired: 0, extraAdded: 0, extraRemoved: 0, gaveWay: 0, policyChanges: 0 };
  private scanCursor: string | null = null;
  private records = new Map<string, TieringRecord>();
  private readonly policy: LearnedHotFieldPolicy;

  constructor(private readonly deps: TieringJobDeps) {
    this.policy = new LearnedHotFieldPolicy(deps.staticPolicy, (prefix) => this.records.get(prefix) ?? null);
  }

  private get policySettings() {
    const s = this.deps.settings;
    return { halfLifeMs: s.tieringHalfLifeMs, promoteScore: s.tieringPromoteScore, demoteScore: s.tieringDemoteScore, dwellMs: s.tieringDwellMs };
  }

  /** One round of all five kinds of work; `stillLeads` is checked between documents. */
  async runRound(term: LeaderTerm, stillLeads: () => Promise<boolean> = async () => true): Promise<void> {
    await this.upkeep();
    let budget = this.deps.settings.retierDocsPerRoundMax;
    for (const record of this.records.values()) {
      if (budget <= 0 || !(await stillLeads())) break;
      budget -= await this.retierPrefix(record, budget, term);
    }
    await this.scan(term, stillLeads);
  }

  /** Re-evaluates every record (time alone can demote a field) and caches them for this round. */
  private async upkeep(): Promise<void> {
    const next = new Map<string, TieringRecord>();
    let after: string | null = null;
    while (next.size < TIERING_LIMITS.prefixesMax) {
      const page = await this.deps.metadata.listTieringRecords(after, TIERING_LIMITS.recordsPageMax);
      for (const { prefix, record } of page) {
        const parsed = asTieringRecord(record, prefix);
        if (!parsed) continue;
        const now = this.deps.clock.nowMs();
        const evaluated = evaluateFor(parsed, now, this.policySettings, this.deps.staticPolicy);
        if (evaluated.epoch === parsed.epoch) {
          next.set(prefix, parsed);
          continue;
        }
        // Stored only when a decision changed; the update re-evaluates whatever is stored by then.
        const stored = await this.deps.metadata.updateTieringRecord(prefix, (current) => {
          const fresh = asTieringRecord(current, prefix);
          if (!fresh) return null;
          const result = evaluateFor(fresh, now, this.policySettings, this.deps.staticPolicy);
          return result.epoch === fresh.epoch ? null : result;
        });
        const saved = asTieringRecord(stored, prefix);
        if (saved && saved.epoch !== parsed.epoch) this.counters.policyChanges++;
        if (saved) next.set(prefix, saved);
      }
      if (page.length < TIERING_LIMITS.recordsPageMax) break;
      after = page[page.length - 1]!.prefix;
    }
    this.records = next;
  }

  /** Rewrites up to `budget` documents of `record.prefix` whose split differs from the policy's; returns how many. */
  private async retierPrefix(record: TieringRecord, budget: number, term: LeaderTerm): Promise<number> {
    const progress = record.retier;
    if (progress.doneEpoch >= record.epoch) return 0;
    let cursor = progress.epoch === record.epoch ? progress.cursor : null;
    const scanMax = budget * TIERING_LIMITS.retierScanFactor;
    const keys = await this.deps.metadata.listKeys(record.prefix, cursor, scanMax);
    let done = 0;
    let finished = keys.length < scanMax;
    for (const key of keys) {
      if (done >= budget) {
        finished = false;
        break;
      }
      if (prefixOf(key) !== record.prefix) {
        cursor = key;
        continue;
      }
      const outcome = await this.retierOne(key, term);
      if (outcome === 'gave-way') {
        // A client write won (or the nodes could not be read): stop before this key, so that the next round
        // starts with it again; the client's write kept the split of the version it replaced.
        finished = false;
        break;
      }
      cursor = key;
      if (outcome === 'rewritten') done++;
    }
    const epoch = record.epoch;
    await this.deps.metadata.updateTieringRecord(record.prefix, (current) => {
      const fresh = asTieringRecord(current, record.prefix);
      if (!fresh || fresh.epoch !== epoch) return null;
      const complete = finished && keys.length < scanMax;
      return { ...fresh, retier: { epoch, cursor: complete ? null : cursor, doneEpoch: complete ? epoch : fresh.retier.doneEpoch } };
    });
    if (done > 0) this.deps.log.info({ prefix: record.prefix, documents: done, epoch }, 're-tiered documents to the new hot-field split');
    return done;
  }

  private async retierOne(key: string, term: LeaderTerm): Promise<'skipped' | 'rewritten' | 'gave-way'> {
    const stored = await this.deps.metadata.get(key);
    if (!stored) return 'skipped';
    const m = stored.manifest;
    if (m.deleted || m.dirty || m.strategy !== 'field_hybrid' || m.hotFieldsSource === 'request') return 'skipped';
    if (isExpired(m, this.deps.clock.nowMs())) return 'skipped';
    const target = [...this.policy.fieldsFor(key)];
    if (sameFieldSet(normalizeFields(m.hotFields), target)) return 'skipped';
    const outcome = await this.rewrite(stored, 'field_hybrid', target, term);
    if (outcome === 'committed') this.counters.retiered++;
    return outcome === 'committed' ? 'rewritten' : 'gave-way';
  }

  /** Reads the document and stores it again with `strategy` and `hotFields` (same bytes, same version). */
  private async rewrite(stored: StoredManifest, strategy: Strategy, hotFields: string[], term: LeaderTerm): Promise<'committed' | 'conflict'> {
    const m = stored.manifest;
    try {
      const bytes = await this.deps.reads.readDocument(m);
      const doc = parseJson(bytes, { depthMax: Number.MAX_SAFE_INTEGER, membersMax: Number.MAX_SAFE_INTEGER, what: 'stored document' });
      if (!isJsonObject(doc)) throw new Error(`stored document ${m.key} is not an object`);
      const plan = planDocument(doc, strategy, hotFields, hotFields.map((f) => parseFieldPath(f, 'INVALID_HOT_FIELDS')));
      const outcome = await this.deps.writes.rewrite(m.key, stored, plan, { fence: term });
      if (outcome === 'conflict') this.counters.gaveWay++;
      return outcome;
    } catch (error) {
      // Unreadable now (nodes down), aborted or fenced: nothing changed; the document comes round again.
      if (!isStrataError(error)) throw error;
      this.deps.log.warn({ err: error, key: m.key }, 'rewriting a document for tiering failed; it is tried again later');
      this.counters.gaveWay++;
      return 'conflict';
    }
  }

  /** Walks the next TIERING_LIMITS.lifecycleScanPerRound manifests: expiry, lifecycle and extra replicas, each at its own bounded rate. */
  private async scan(term: LeaderTerm, stillLeads: () => Promise<boolean>): Promise<void> {
    const page = await this.deps.metadata.scan(this.scanCursor, TIERING_LIMITS.lifecycleScanPerRound);
    this.scanCursor = page.length < TIERING_LIMITS.lifecycleScanPerRound ? null : page[page.length - 1]!.manifest.key;
    let lifecycleBudget = this.deps.settings.lifecycleDocsPerRoundMax;
    for (const stored of page) {
      if (lifecycleBudget <= 0 || !(await stillLeads())) return;
      const m = stored.manifest;
      if (m.deleted) continue;
      const now = this.deps.clock.nowMs();
      if (isExpired(m, now)) {
        lifecycleBudget--;
        await this.expire(m.key);
        continue;
      }
      const record = this.records.get(prefixOf(m.key)) ?? null;
      if (this.idleForEc(m, record, now)) {
        lifecycleBudget--;
        const outcome = await this.rewrite(stored, 'ec', m.hotFields, term);
        if (outcome === 'committed') {
          this.counters.movedToEc++;
          this.deps.log.info({ key: m.key }, 'moved an idle document from replication to ec');
        }
        continue;
      }
      await this.adjustExtraReplicas(stored, record, now, term);
    }
  }

  private idleForEc(m: Manifest, record: TieringRecord | null, now: number): boolean {
    if (m.strategy !== 'replication' || m.dirty) return false;
    const idleMs = record?.lifecycle.idleToEcAfterMs ?? this.deps.settings.idleToEcAfterMs;
    if (!idleMs) return false;
    if (m.strategySource === 'request' && !record?.lifecycle.overrideExplicit) return false;
    const lastAccessMs = Math.max(Date.parse(m.updatedAt), lastReadMsOf(record, m.key));
    return now - lastAccessMs >= idleMs;
  }

  private async expire(key: string): Promise<void> {
    try {
      await this.deps.writes.mutate(key, {}, async (current) => {
        if (!current || current.manifest.deleted || !isExpired(current.manifest, this.deps.clock.nowMs())) {
          throw new NotExpired();
        }
        return { kind: 'tombstone' };
      });
      this.counters.expired++;
    } catch (error) {
      if (error instanceof NotExpired) return; // rewritten (or deleted) by a client meanwhile
      if (!isStrataError(error)) throw error;
      this.deps.log.warn({ err: error, key }, 'deleting an expired document failed; it reads as absent and is tried again');
    }
  }

  private async adjustExtraReplicas(stored: StoredManifest, record: TieringRecord | null, now: number, term: LeaderTerm): Promise<void> {
    const m = stored.manifest;
    if (m.dirty || m.hot.length === 0) return;
    const current = m.extraReplicas ?? 0;
    const s = this.deps.settings;
    const wanted = extraReplicasFor(record, m.key, current, now, {
      halfLifeMs: s.tieringHalfLifeMs,
      readsMin: s.readHeavyReadsMin,
      factor: s.readHeavyFactor,
      extraMax: s.extraReplicasMax,
    });
    if (wanted === current) return;
    const outcome = await setExtraReplicas(
      { metadata: this.deps.metadata, pool: this.deps.pool, log: this.deps.log, nodeTimeoutMs: this.deps.nodeTimeoutMs },
      stored,
      wanted,
      term,
    );
    if (outcome !== 'changed') return;
    if (wanted > current) this.counters.extraAdded += wanted - current;
    else this.counters.extraRemoved += current - wanted;
    this.deps.log.info({ key: m.key, extra: wanted, base: baseHotRefs(m).length }, 'changed the extra hot replicas of a read-heavy document');
  }
}

class NotExpired extends Error {}
