/**
 * The healer: one elected leader at a time resolves write intents, audits and repairs, and collects garbage
 * (architecture.md, "Healer" and "Abort, rollback and garbage collection").
 *
 * Every round: renew leadership, resolve intents, repair keys a reader reported, carry out planned rebalance
 * moves (at most `rebalanceBlobsPerRoundMax` blobs and `rebalanceBytesPerRoundMax` bytes), and every
 * `auditIntervalMs` a full pass: list every node's inventory, audit every manifest against it (repairing it,
 * moving its blobs off draining nodes, and planning rebalance moves onto emptier nodes; see membership.ts), then
 * collect unreferenced blobs older than the grace period through the abort-then-delete rule, purge old
 * tombstones and expire old abort and idempotency records.
 */
import type { NodePool } from '../cluster/node-pool.js';
import type { Clock } from '../core/clock.js';
import { EC_TOTAL_SHARDS, LIMITS } from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import type { Logger } from '../log/logger.js';
import { referencesBlob, referencesWrite, type Manifest, type StoredManifest } from '../manifest/manifest.js';
import type { LeaderTerm, MetadataStore } from '../metadata/metadata-store.js';
import { isStrataError } from '../core/errors.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';
import type { BlobInfo } from '../blobstore/blob-store.js';
import { moveBlobs, type MoveCounters } from './blob-mover.js';
import { findBlobKeys } from './blob-keys.js';
import type { TieringJob } from './tiering-job.js';
import { IntentResolver, type IntentStats } from './intent-resolver.js';
import { ManifestRebuilder, type ManifestRebuildCounters, type ManifestRebuildWait } from './manifest-rebuilder.js';
import { MEMBERSHIP_LIMITS, RebalancePlanner, activeNodes, drainMoves, type RebalanceMove } from './membership.js';
import {
  observeStates,
  repairManifest,
  type Inventory,
  type RepairCounters,
  type RepairDeps,
  type RepairOutcome,
} from './repairer.js';

export const HEALER_LOCK = 'strata/healer';

export interface HealerOptions {
  holderId: string;
  intervalMs: number;
  auditIntervalMs: number;
  leaseMs: number;
  intentTimeoutMs: number;
  gcGraceMs: number;
  tombstoneGraceMs: number;
  nodeTimeoutMs: number;
  /** A node down this long has its blobs rebuilt on spare nodes (when at least six active nodes are up). */
  nodeDownGraceMs?: number;
  /** Rebalance rate: moves carried out per round at most (the rate is these per `intervalMs`). */
  rebalanceBlobsPerRoundMax?: number;
  rebalanceBytesPerRoundMax?: number;
  /**
   * A node is rebalanced onto only when it is short of the average by at least this many bytes as well as by
   * the tolerance, so that small clusters do not shuffle blobs over the noise of placement.
   */
  rebalanceDeficitBytesMin?: number;
  /**
   * Tombstones past their grace that one audit remembers for the purge after garbage collection; beyond them, the
   * purge walks the manifests again itself. Default TOMBSTONES_REMEMBERED_MAX.
   */
  tombstonesRememberedMax?: number;
}

/** Defaults of the optional HealerOptions (the same as internal/config's). */
export const HEALER_MEMBERSHIP_DEFAULTS = {
  nodeDownGraceMs: 10 * 60_000,
  rebalanceBlobsPerRoundMax: 64,
  rebalanceBytesPerRoundMax: 64 * 1024 * 1024,
  rebalanceDeficitBytesMin: 256 * 1024 * 1024,
} as const;

export interface HealerDeps {
  metadata: MetadataStore;
  wal: WriteAheadLog;
  pool: NodePool;
  ec: ErasureCode;
  clock: Clock;
  log: Logger;
  options: HealerOptions;
  /** Re-tiering, lifecycle, expiry and extra replicas (./tiering-job.ts); absent = none of it runs. */
  tiering?: TieringJob;
}

export interface HealerReport {
  leader: boolean;
  audited: number;
  repaired: number;
  unrepairable: number;
  /** Manifests below full protection after this pass. */
  backlog: number;
  /** Manifests this pass found below full protection, before repairing them (repaired ones included). */
  belowFullProtection: number;
  garbageDeleted: number;
  /** Unreferenced blobs this pass kept because nothing trustworthy says their key has no manifest (gcHold). */
  garbageHeld: number;
  tombstonesPurged: number;
  /** Blobs moved off draining nodes by this round's audit. */
  drained: number;
  /** Blobs moved onto emptier nodes this round. */
  rebalanced: number;
  /** Rebalance moves planned by this round's audit, carried out over the next rounds. */
  rebalancePlanned: number;
  /** Draining nodes that no manifest references any more (as of this round's audit): ready to be removed. */
  drainComplete: string[];
  /** Manifest records that failed verification and were rebuilt from the nodes' blobs this round (./manifest-rebuilder.ts). */
  manifestsRebuilt: number;
}

/** Manifests per page of the audit walk. */
const AUDIT_PAGE = 500;
/**
 * Tombstones past their grace that one audit remembers (about 100 bytes each), so that the purge after garbage
 * collection needs no second walk of every manifest, the walk whose decoding was the healer's largest cost.
 */
export const TOMBSTONES_REMEMBERED_MAX = 50_000;
/** Keys reported by readers that one round repairs. */
const HINTS_PER_ROUND = 100;

export class Healer {
  private readonly intents: IntentResolver;
  private readonly rebuilder: ManifestRebuilder;
  private term: LeaderTerm | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private lastAuditMs = Number.NEGATIVE_INFINITY;
  private leadCheckedMs = Number.NEGATIVE_INFINITY;
  private stopped = false;
  readonly counters: RepairCounters & MoveCounters & { garbageDeleted: number; rounds: number; manifestsRepaired: number } = {
    blobsRepaired: 0,
    bytesRepaired: 0,
    blobsMoved: 0,
    bytesMoved: 0,
    garbageDeleted: 0,
    rounds: 0,
    manifestsRepaired: 0,
  };
  /** Rebalance moves planned by the last audit, oldest first. */
  private rebalanceQueue: RebalanceMove[] = [];
  /** Manifests below full protection as of the last audit (null before the first one). */
  backlog: number | null = null;
  /** Manifests the last audit found below full protection before it repaired them (null before the first one). */
  belowFullProtection: number | null = null;
  /**
   * Why the last garbage-collection pass kept blobs it would otherwise have deleted, and how many (null when it
   * kept none): GET /healer, the metric strata_healer_garbage_held_blobs, the log.
   */
  gcHold: { reason: string; blobs: number; atMs: number } | null = null;

  private readonly membership: Required<Pick<HealerOptions, keyof typeof HEALER_MEMBERSHIP_DEFAULTS>>;

  constructor(private readonly deps: HealerDeps) {
    const o = deps.options;
    this.membership = {
      nodeDownGraceMs: o.nodeDownGraceMs ?? HEALER_MEMBERSHIP_DEFAULTS.nodeDownGraceMs,
      rebalanceBlobsPerRoundMax: o.rebalanceBlobsPerRoundMax ?? HEALER_MEMBERSHIP_DEFAULTS.rebalanceBlobsPerRoundMax,
      rebalanceBytesPerRoundMax: o.rebalanceBytesPerRoundMax ?? HEALER_MEMBERSHIP_DEFAULTS.rebalanceBytesPerRoundMax,
      rebalanceDeficitBytesMin: o.rebalanceDeficitBytesMin ?? HEALER_MEMBERSHIP_DEFAULTS.rebalanceDeficitBytesMin,
    };
    this.intents = new IntentResolver({
      wal: deps.wal,
      metadata: deps.metadata,
      pool: deps.pool,
      clock: deps.clock,
      log: deps.log,
      intentTimeoutMs: deps.options.intentTimeoutMs,
      nodeTimeoutMs: deps.options.nodeTimeoutMs,
      group: 'strata-healer',
    });
    this.rebuilder = new ManifestRebuilder({
      metadata: deps.metadata,
      pool: deps.pool,
      ec: deps.ec,
      clock: deps.clock,
      log: deps.log,
      nodeTimeoutMs: deps.options.nodeTimeoutMs,
      intentTimeoutMs: deps.options.intentTimeoutMs,
      unresolvedIntents: (key) => this.intents.unresolvedOf(key),
    });
  }

  /** Rebuilds of damaged manifest records: done and refused (metrics). */
  get manifestRebuilds(): Readonly<ManifestRebuildCounters> {
    return this.rebuilder.counters;
  }

  /** Damaged manifest records waiting for a rebuild, and why (metrics, tests). */
  manifestsAwaitingRebuild(): ManifestRebuildWait[] {
    return this.rebuilder.status();
  }

  /** The tiering work this healer does each round (counters for tests and reports), if wired. */
  get tiering(): TieringJob | undefined {
    return this.deps.tiering;
  }

  get isLeader(): boolean {
    return this.term !== null;
  }

  /** The intent resolver's progress through the WAL (metrics: unresolved intents, consumer lag). */
  get intentStats(): Readonly<IntentStats> {
    return this.intents.stats;
  }

  start(): void {
    const loop = async (): Promise<void> => {
      if (this.stopped) return;
      try {
        await this.runOnce();
      } catch (error) {
        this.deps.log.warn({ err: error }, 'healer round failed; retrying next round');
      }
      if (!this.stopped) this.timer = setTimeout(() => void (this.running = loop()), this.deps.options.intervalMs);
    };
    this.running = loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
    await this.intents.close();
    if (this.term) await this.deps.metadata.releaseLeadership(this.term).catch(() => undefined);
    this.term = null;
  }

  /** One round. `forceAudit` runs the full audit and GC pass now (tests, tools). */
  async runOnce(options: { forceAudit?: boolean } = {}): Promise<HealerReport> {
    const report: HealerReport = {
      leader: false,
      audited: 0,
      repaired: 0,
      unrepairable: 0,
      backlog: 0,
      belowFullProtection: 0,
      garbageDeleted: 0,
      garbageHeld: 0,
      tombstonesPurged: 0,
      drained: 0,
      rebalanced: 0,
      rebalancePlanned: 0,
      drainComplete: [],
      manifestsRebuilt: 0,
    };
    if (!(await this.lead())) {
      // A plan made while leading is stale by the time leadership comes back.
      this.rebalanceQueue = [];
      return report;
    }
    report.leader = true;
    this.counters.rounds++;
    await this.deps.pool.probe();
    await this.intents.runOnce(() => this.stillLeads());
    await this.repairHinted(report);
    await this.rebalance(report);
    if (this.term) await this.deps.tiering?.runRound(this.term, () => this.stillLeads());
    const now = this.deps.clock.nowMs();
    if (options.forceAudit || now - this.lastAuditMs >= this.deps.options.auditIntervalMs) {
      this.lastAuditMs = now;
      if (!(await this.lead())) return { ...report, leader: false };
      const inventories = await this.listInventories();
      const planner = new RebalancePlanner(this.deps.pool, inventories, this.membership.rebalanceDeficitBytesMin);
      const tombstonesDue = new TombstonesDue(this.deps.options.tombstonesRememberedMax ?? TOMBSTONES_REMEMBERED_MAX);
      await this.audit(inventories, report, planner, tombstonesDue);
      this.rebalanceQueue = planner.finish();
      report.rebalancePlanned = this.rebalanceQueue.length;
      if (report.rebalancePlanned > 0) {
        this.deps.log.info({ moves: report.rebalancePlanned, nodes: planner.underfull() }, 'planned rebalance moves onto emptier nodes');
      }
      // After the audit, whose scan reports the damaged records it skips; before garbage collection, which holds
      // the blobs of every key still waiting and resumes for the ones rebuilt.
      if (this.term) report.manifestsRebuilt = await this.rebuilder.runPass(inventories, this.term, () => this.stillLeads());
      if (!(await this.lead())) return report;
      await this.collectGarbage(inventories, report);
      await this.expireRecords(tombstonesDue);
      this.backlog = report.backlog;
      this.belowFullProtection = report.belowFullProtection;
    }
    return report;
  }

  private async lead(): Promise<boolean> {
    const { metadata, options } = this.deps;
    const term = await metadata.acquireLeadership(HEALER_LOCK, options.holderId, options.leaseMs);
    if (this.term && (!term || term.term !== this.term.term)) this.deps.log.warn('healer lost leadership');
    if (term && (!this.term || term.term !== this.term.term)) this.deps.log.info({ term: term.term }, 'healer leads');
    this.term = term;
    return term !== null;
  }

  /** Leadership, re-checked at most once per `leaseMs / 4` so long passes stay cheap. */
  private async stillLeads(): Promise<boolean> {
    const now = this.deps.clock.nowMs();
    if (this.term && now - this.leadCheckedMs < this.deps.options.leaseMs / 4) return true;
    this.leadCheckedMs = now;
    return this.lead();
  }

  private repairDeps(): RepairDeps {
    const { metadata, pool, ec, log, options } = this.deps;
    return { metadata, pool, ec, log, nodeTimeoutMs: options.nodeTimeoutMs };
  }

  private async repairHinted(report: HealerReport): Promise<void> {
    const keys = await this.deps.metadata.takeRepairHints(HINTS_PER_ROUND);
    for (const key of keys) {
      const stored = await getUnlessCorrupt(this.deps.metadata, key);
      if (!stored || stored.manifest.deleted) continue;
      const states = await observeStates(this.repairDeps(), stored.manifest, null, true, this.goneNodes());
      await this.repairOne(stored, states, report);
    }
  }

  private async repairOne(stored: StoredManifest, states: Parameters<typeof repairManifest>[2], report: HealerReport): Promise<RepairOutcome | null> {
    if (!this.term) return null;
    const outcome = await repairManifest(this.repairDeps(), stored, states, this.term, this.counters);
    if (outcome !== 'healthy' && outcome !== 'conflict') report.belowFullProtection++;
    if (outcome === 'repaired') {
      report.repaired++;
      this.counters.manifestsRepaired++;
    }
    if (outcome === 'unrepairable') report.unrepairable++;
    if (outcome === 'unrepairable' || outcome === 'waiting') report.backlog++;
    if (outcome === 'repaired' || outcome === 'unrepairable') await this.journal(outcome, stored, states);
    return outcome;
  }

  /**
   * Records a repair in the metadata store's healer journal, where every gateway can read it (GET /healer, the
   * console) whichever process the healer runs in. The journal is for people: failing to write it is logged and
   * never fails the repair.
   */
  private async journal(kind: 'repaired' | 'unrepairable', stored: StoredManifest, states: Parameters<typeof repairManifest>[2]): Promise<void> {
    const refs = [...stored.manifest.hot, ...stored.manifest.cold];
    const damaged = refs
      .map((ref, i) => ({ ref, state: states[i] }))
      .filter(({ state }) => state === 'missing' || state === 'corrupt')
      .map(({ ref, state }) => `${ref.part} on ${ref.node} (${state})`);
    const detail = damaged.length > 0 ? damaged.join(', ') : 'recorded blob states brought up to date';
    try {
      await this.deps.metadata.appendHealerActions([{ atMs: this.deps.clock.nowMs(), kind, key: stored.manifest.key, detail }]);
    } catch (error) {
      this.deps.log.warn({ err: error, key: stored.manifest.key }, 'could not record a repair in the healer journal');
    }
  }

  /**
   * Nodes whose blobs the audit treats as lost, so that the repairer rebuilds them elsewhere: nodes down for
   * longer than `nodeDownGraceMs`, and nodes that are no longer members at all (removed from the registry). Only
   * while at least EC_TOTAL_SHARDS active nodes are up, so that a shard has a spare node to go to; otherwise
   * every node counts as merely down and nothing is moved.
   */
  private goneNodes(): (nodeId: string) => boolean {
    const { pool } = this.deps;
    const graceMs = this.membership.nodeDownGraceMs;
    if (activeNodes(pool).length < EC_TOTAL_SHARDS) return () => false;
    return (nodeId) => {
      const downForMs = pool.downForMs(nodeId);
      return downForMs === null || downForMs > graceMs;
    };
  }

  /**
   * Carries out planned rebalance moves, at most the per-round limits (the first move of a round may exceed the
   * byte limit, so that a blob larger than it still moves). Each move is re-checked against the current
   * manifest: a key that changed, a ref that moved, or a target that is no longer a good place is skipped.
   */
  private async rebalance(report: HealerReport): Promise<void> {
    const { metadata, pool } = this.deps;
    const options = this.membership;
    let blobs = 0;
    let bytes = 0;
    // Stale plans are skipped cheaply, but each costs a manifest read: bound those too.
    let attempts = 0;
    while (this.rebalanceQueue.length > 0 && blobs < options.rebalanceBlobsPerRoundMax && attempts < 2 * options.rebalanceBlobsPerRoundMax) {
      const move = this.rebalanceQueue[0]!;
      if (blobs > 0 && bytes + move.size > options.rebalanceBytesPerRoundMax) break;
      this.rebalanceQueue.shift();
      attempts++;
      if (!this.term) return;
      const stored = await getUnlessCorrupt(metadata, move.key);
      if (!stored || stored.manifest.deleted || stored.manifest.dirty) continue;
      const refs = move.tier === 'hot' ? stored.manifest.hot : stored.manifest.cold;
      const index = refs.findIndex((r) => r.part === move.part);
      const ref = refs[index];
      if (!ref || ref.node !== move.from || ref.state !== 'ok' || ref.size !== move.size) continue;
      if (refs.some((r) => r.node === move.to) || !pool.isHealthy(move.from)) continue;
      if (!pool.isHealthy(move.to) || pool.isDraining(move.to)) continue;
      const outcome = await moveBlobs(this.repairDeps(), stored, [{ tier: move.tier, index, to: move.to }], this.term, this.counters);
      if (outcome !== 'moved') continue;
      blobs++;
      bytes += move.size;
      report.rebalanced++;
    }
    if (report.rebalanced > 0) {
      this.deps.log.info({ blobs, bytes, queued: this.rebalanceQueue.length }, 'rebalanced blobs onto emptier nodes');
    }
  }

  private async listInventories(): Promise<Map<string, Inventory>> {
    const out = new Map<string, Inventory>();
    await Promise.all(
      this.deps.pool.ids().map(async (id) => {
        const client = this.deps.pool.client(id)!;
        const blobs = new Map<string, BlobInfo>();
        let after: string | null = null;
        try {
          for (;;) {
            const page = await client.list(after, LIMITS.inventoryPageMax, { timeoutMs: this.deps.options.nodeTimeoutMs });
            for (const info of page) blobs.set(info.id, info);
            if (page.length < LIMITS.inventoryPageMax) break;
            after = page[page.length - 1]!.id;
          }
          out.set(id, blobs);
        } catch (error) {
          this.deps.pool.observe(id, error);
          out.set(id, null);
        }
      }),
    );
    return out;
  }

  /**
   * Moves the blobs of a healthy manifest off draining nodes; returns the moved refs (`tier/index`). A manifest
   * with nothing on a draining node is offered to the rebalance planner instead.
   */
  private async moveOffDraining(stored: StoredManifest, anyDraining: boolean, planner: RebalancePlanner, report: HealerReport): Promise<Set<string>> {
    if (!this.term) return new Set();
    const moves = anyDraining && report.drained < MEMBERSHIP_LIMITS.drainBlobsPerPassMax ? drainMoves(stored.manifest, this.deps.pool) : [];
    if (moves.length === 0) {
      planner.consider(stored.manifest);
      return new Set();
    }
    const result = await moveBlobs(this.repairDeps(), stored, moves, this.term, this.counters);
    if (result !== 'moved') return new Set();
    report.drained += moves.length;
    return new Set(moves.map((m) => `${m.tier}/${m.index}`));
  }

  /**
   * Walks every manifest: repairs it; when it is healthy, moves its blobs off draining nodes (or, with none
   * there, lets the planner consider it for rebalancing); and counts what still references each draining node,
   * so that an emptied one is reported in `drainComplete`.
   */
  private async audit(
    inventories: Map<string, Inventory>,
    report: HealerReport,
    planner: RebalancePlanner,
    due: TombstonesDue,
  ): Promise<void> {
    const { pool, log } = this.deps;
    const now = this.deps.clock.nowMs();
    const gone = this.goneNodes();
    const draining = pool.ids().filter((id) => pool.isDraining(id));
    const stillReferenced = new Map(draining.map((id) => [id, 0]));
    let after: string | null = null;
    for (;;) {
      const page = await this.deps.metadata.scan(after, AUDIT_PAGE);
      for (const stored of page) {
        if (stored.manifest.deleted) {
          if (this.tombstoneDue(stored.manifest, now)) due.note(stored);
          continue;
        }
        report.audited++;
        const states = await observeStates(this.repairDeps(), stored.manifest, inventories, false, gone);
        const outcome = await this.repairOne(stored, states, report);
        // Only a healthy manifest moves: one being repaired (or waiting for a node) is dealt with first.
        const moved = outcome === 'healthy' ? await this.moveOffDraining(stored, draining.length > 0, planner, report) : new Set<string>();
        const tally = (tier: 'hot' | 'cold') => (ref: { node: string }, index: number) => {
          const count = stillReferenced.get(ref.node);
          if (count !== undefined && !moved.has(`${tier}/${index}`)) stillReferenced.set(ref.node, count + 1);
        };
        stored.manifest.hot.forEach(tally('hot'));
        stored.manifest.cold.forEach(tally('cold'));
      }
      if (page.length < AUDIT_PAGE) break;
      after = page[page.length - 1]!.manifest.key;
    }
    for (const [node, count] of stillReferenced) {
      if (count === 0) {
        report.drainComplete.push(node);
        log.info({ node }, `draining node ${node} holds no referenced blob any more; it can be removed (DELETE /admin/nodes/${node})`);
      } else {
        log.info({ node, blobs: count }, `draining node ${node} still holds referenced blobs`);
      }
    }
  }

  /**
   * Inventory GC: a blob older than the grace period that its key's manifest does not reference is deleted.
   * If the manifest references the blob's write id elsewhere, the write committed and this copy is a stale
   * one (a repair moved it); otherwise the write id is aborted first, conditioned on the manifest being
   * unchanged, so a slow gateway can never commit it afterwards.
   */
  private async collectGarbage(inventories: Map<string, Inventory>, report: HealerReport): Promise<void> {
    const { clock, options } = this.deps;
    const cutoff = clock.nowMs() - options.gcGraceMs;
    const holds = new GcHolds();
    try {
      await this.collectGarbageOn(inventories, report, cutoff, holds);
    } finally {
      report.garbageHeld = holds.blobs;
      this.gcHold = holds.blobs === 0 ? null : { reason: holds.summary(), blobs: holds.blobs, atMs: clock.nowMs() };
      if (this.gcHold !== null) {
        this.deps.log.warn({ heldBlobs: holds.blobs, reason: this.gcHold.reason }, 'garbage collection kept unreferenced blobs: ' + this.gcHold.reason);
      }
    }
  }

  private async collectGarbageOn(inventories: Map<string, Inventory>, report: HealerReport, cutoff: number, holds: GcHolds): Promise<void> {
    const { metadata, pool, clock, options } = this.deps;
    // Keys whose manifest record was met damaged: their blobs wait for the record's repair, whatever a lookup says.
    const suspect = new Set(metadata.integrity().recent.flatMap((s) => (s.kind === 'manifest' ? [s.key, ...(s.ownKey === undefined ? [] : [s.ownKey])] : [])));
    // And those waiting for a rebuild, which the store's bounded list of recent sightings may have dropped.
    for (const key of this.rebuilder.keys()) suspect.add(key);
    // While the store's own integrity check fails, nothing is deleted at all: the file is damaged somewhere, and
    // a stale-looking blob could be one that a record the damage hides still references.
    const failedCheck = metadata.integrity().checks?.lastFailure ?? null;
    const keys = await findBlobKeys(inventories);
    const everyNodeListed = [...inventories.values()].every((inventory) => inventory !== null);
    for (const [node, inventory] of inventories) {
      if (!inventory) continue;
      for (const info of inventory.values()) {
        if (info.createdAtMs > cutoff) continue;
        if (failedCheck !== null) {
          holds.hold(`the last integrity check of the metadata store failed (${failedCheck}); garbage collection deletes nothing until one passes`);
          continue;
        }
        // A deposed leader must not delete on the strength of what it saw while it led.
        if (!(await this.stillLeads())) return;
        const key = keys.keyOf(info);
        if (key === null) {
          // A shard of a write with fewer than four shards left anywhere: no manifest can read that set (blob-keys.ts).
          const unreadable = info.descriptor?.kind === 'fragment' && keys.shardsOf(info.writeId) < this.deps.ec.dataShards;
          if (!unreadable || !everyNodeListed) {
            holds.hold('format-2 blobs whose key their descriptors do not name are kept until every node can be listed');
            continue;
          }
          try {
            if (await pool.client(node)!.delete(info.id, { timeoutMs: options.nodeTimeoutMs })) {
              report.garbageDeleted++;
              this.counters.garbageDeleted++;
            }
          } catch (error) {
            pool.observe(node, error);
          }
          continue;
        }
        if (suspect.has(key)) {
          holds.hold(`the manifest record of ${JSON.stringify(key)} failed verification`);
          continue;
        }
        // Read the manifest afresh for every candidate: a cached one could predate a repair that made this very
        // blob referenced again (repairs and writes only ever reference ids they just created, so a fresh read
        // that does not name the blob is final).
        let stored;
        try {
          stored = await metadata.get(key);
        } catch (error) {
          if (isStrataError(error, 'FORMAT_UNSUPPORTED')) {
            holds.hold(`the manifest record of ${JSON.stringify(key)} is in a format this release cannot read`);
            continue;
          }
          if (!isStrataError(error, 'METADATA_CORRUPT')) throw error;
          holds.hold(`the manifest record of ${JSON.stringify(key)} failed verification`);
          continue;
        }
        if (stored && referencesBlob(stored.manifest, node, info.id)) continue;
        // A lookup that finds nothing never authorises a delete on its own: a damaged index or a lost row reads
        // as "no manifest" too. Only a store that can vouch for the absence (etcd; SQLite after a passing
        // integrity check since the blob was created) lets it through. A tombstone is a record, verified.
        if (!stored && !(await metadata.absenceTrusted(info.createdAtMs))) {
          holds.hold(metadata.integrity().gcHold ?? 'the metadata store cannot vouch for a missing manifest yet');
          continue;
        }
        if (!stored || !referencesWrite(stored.manifest, info.writeId)) {
          const aborted = await metadata.abort({
            key,
            writeId: info.writeId,
            expectedModRevision: stored?.modRevision ?? 0,
            nowMs: clock.nowMs(),
          });
          if (!aborted) {
            continue; // changed under us: decide next pass
          }
        }
        try {
          if (await pool.client(node)!.delete(info.id, { timeoutMs: options.nodeTimeoutMs })) {
            report.garbageDeleted++;
            this.counters.garbageDeleted++;
          }
        } catch (error) {
          pool.observe(node, error);
        }
      }
    }
  }

  private tombstoneDue(manifest: Manifest, now: number): boolean {
    return manifest.deleted && now - Date.parse(manifest.updatedAt) > this.deps.options.tombstoneGraceMs;
  }

  /**
   * Purges the tombstones the audit found past their grace (walking the manifests again only when there were more
   * than it keeps), then the expired abort and idempotency records. They act on records the store verified
   * (purgeTombstone re-verifies the tombstone it deletes, at the revision the audit saw).
   */
  private async expireRecords(due: TombstonesDue): Promise<void> {
    const { metadata, clock, options } = this.deps;
    const now = clock.nowMs();
    for (const { key, modRevision } of due.listed) await metadata.purgeTombstone(key, modRevision);
    if (due.overflowed) {
      let after: string | null = null;
      for (;;) {
        const page = await metadata.scan(after, AUDIT_PAGE);
        for (const { manifest, modRevision } of page) {
          if (this.tombstoneDue(manifest, now)) await metadata.purgeTombstone(manifest.key, modRevision);
        }
        if (page.length < AUDIT_PAGE) break;
        after = page[page.length - 1]!.manifest.key;
      }
    }
    await metadata.expireAbortRecords(now - options.gcGraceMs);
    await metadata.expireIdempotency(now);
  }
}

/** Tombstones an audit found past their grace, up to a bound. */
class TombstonesDue {
  readonly listed: { key: string; modRevision: number }[] = [];
  overflowed = false;

  constructor(private readonly max: number) {}

  note(stored: StoredManifest): void {
    if (this.listed.length < this.max) this.listed.push({ key: stored.manifest.key, modRevision: stored.modRevision });
    else this.overflowed = true;
  }
}

/** Reasons garbage collection kept blobs this pass, counted. */
class GcHolds {
  blobs = 0;
  private readonly reasons = new Map<string, number>();

  hold(reason: string): void {
    this.blobs++;
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
  }

  summary(): string {
    const parts = [...this.reasons].slice(0, 5).map(([reason, n]) => `${reason} (${n} blobs)`);
    const more = this.reasons.size > 5 ? `; and ${this.reasons.size - 5} more reasons` : '';
    return `${parts.join('; ')}${more}`;
  }
}

/** A key's manifest, or null when its record is damaged (the store reported it): repairs and moves skip it. */
async function getUnlessCorrupt(metadata: MetadataStore, key: string): Promise<StoredManifest | null> {
  try {
    return await metadata.get(key);
  } catch (error) {
    if (isStrataError(error, 'METADATA_CORRUPT')) return null;
    throw error;
  }
}
