/**
 * The healer: one elected leader at a time resolves write intents, audits and repairs, and collects garbage
 * (architecture.md, "Healer" and "Abort, rollback and garbage collection").
 *
 * Every round: renew leadership, resolve intents, repair keys a reader reported, and every
 * `auditIntervalMs` a full pass: list every node's inventory, audit every manifest against it, then collect
 * unreferenced blobs older than the grace period through the abort-then-delete rule, purge old tombstones and
 * expire old abort and idempotency records.
 */
import type { NodePool } from '../cluster/node-pool.js';
import type { Clock } from '../core/clock.js';
import { LIMITS } from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import type { Logger } from '../log/logger.js';
import { referencesBlob, referencesWrite, type StoredManifest } from '../manifest/manifest.js';
import type { LeaderTerm, MetadataStore } from '../metadata/metadata-store.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';
import type { BlobInfo } from '../blobstore/blob-store.js';
import { IntentResolver } from './intent-resolver.js';
import { observeStates, repairManifest, type Inventory, type RepairCounters, type RepairDeps } from './repairer.js';

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
}

export interface HealerDeps {
  metadata: MetadataStore;
  wal: WriteAheadLog;
  pool: NodePool;
  ec: ErasureCode;
  clock: Clock;
  log: Logger;
  options: HealerOptions;
}

export interface HealerReport {
  leader: boolean;
  audited: number;
  repaired: number;
  unrepairable: number;
  /** Manifests below full protection after this pass. */
  backlog: number;
  garbageDeleted: number;
  tombstonesPurged: number;
}

/** Manifests per page of the audit walk. */
const AUDIT_PAGE = 500;
/** Keys reported by readers that one round repairs. */
const HINTS_PER_ROUND = 100;

export class Healer {
  private readonly intents: IntentResolver;
  private term: LeaderTerm | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private lastAuditMs = Number.NEGATIVE_INFINITY;
  private stopped = false;
  readonly counters: RepairCounters & { garbageDeleted: number; rounds: number } = {
    blobsRepaired: 0,
    bytesRepaired: 0,
    garbageDeleted: 0,
    rounds: 0,
  };
  /** Manifests below full protection as of the last audit (null before the first one). */
  backlog: number | null = null;

  constructor(private readonly deps: HealerDeps) {
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
  }

  get isLeader(): boolean {
    return this.term !== null;
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
    const report: HealerReport = { leader: false, audited: 0, repaired: 0, unrepairable: 0, backlog: 0, garbageDeleted: 0, tombstonesPurged: 0 };
    if (!(await this.lead())) return report;
    report.leader = true;
    this.counters.rounds++;
    await this.deps.pool.probe();
    await this.intents.runOnce();
    await this.repairHinted(report);
    const now = this.deps.clock.nowMs();
    if (options.forceAudit || now - this.lastAuditMs >= this.deps.options.auditIntervalMs) {
      this.lastAuditMs = now;
      if (!(await this.lead())) return { ...report, leader: false };
      const inventories = await this.listInventories();
      await this.audit(inventories, report);
      if (!(await this.lead())) return report;
      await this.collectGarbage(inventories, report);
      await this.expireRecords();
      this.backlog = report.backlog;
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

  private repairDeps(): RepairDeps {
    const { metadata, pool, ec, log, options } = this.deps;
    return { metadata, pool, ec, log, nodeTimeoutMs: options.nodeTimeoutMs };
  }

  private async repairHinted(report: HealerReport): Promise<void> {
    const keys = await this.deps.metadata.takeRepairHints(HINTS_PER_ROUND);
    for (const key of keys) {
      const stored = await this.deps.metadata.get(key);
      if (!stored || stored.manifest.deleted) continue;
      const states = await observeStates(this.repairDeps(), stored.manifest, null, true);
      await this.repairOne(stored, states, report);
    }
  }

  private async repairOne(stored: StoredManifest, states: Parameters<typeof repairManifest>[2], report: HealerReport): Promise<void> {
    if (!this.term) return;
    const outcome = await repairManifest(this.repairDeps(), stored, states, this.term, this.counters);
    if (outcome === 'repaired') report.repaired++;
    if (outcome === 'unrepairable') report.unrepairable++;
    if (outcome === 'unrepairable' || outcome === 'waiting') report.backlog++;
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

  private async audit(inventories: Map<string, Inventory>, report: HealerReport): Promise<void> {
    let after: string | null = null;
    for (;;) {
      const page = await this.deps.metadata.scan(after, AUDIT_PAGE);
      for (const stored of page) {
        if (stored.manifest.deleted) continue;
        report.audited++;
        const states = await observeStates(this.repairDeps(), stored.manifest, inventories, false);
        await this.repairOne(stored, states, report);
      }
      if (page.length < AUDIT_PAGE) break;
      after = page[page.length - 1]!.manifest.key;
    }
  }

  /**
   * Inventory GC: a blob older than the grace period that its key's manifest does not reference is deleted.
   * If the manifest references the blob's write id elsewhere, the write committed and this copy is a stale
   * one (a repair moved it); otherwise the write id is aborted first, conditioned on the manifest being
   * unchanged, so a slow gateway can never commit it afterwards.
   */
  private async collectGarbage(inventories: Map<string, Inventory>, report: HealerReport): Promise<void> {
    const { metadata, pool, clock, options } = this.deps;
    const cutoff = clock.nowMs() - options.gcGraceMs;
    const manifests = new Map<string, StoredManifest | null>();
    for (const [node, inventory] of inventories) {
      if (!inventory) continue;
      for (const info of inventory.values()) {
        if (info.createdAtMs > cutoff) continue;
        if (!manifests.has(info.key)) manifests.set(info.key, await metadata.get(info.key));
        const stored = manifests.get(info.key) ?? null;
        if (stored && referencesBlob(stored.manifest, node, info.id)) continue;
        if (!stored || !referencesWrite(stored.manifest, info.writeId)) {
          const aborted = await metadata.abort({
            key: info.key,
            writeId: info.writeId,
            expectedModRevision: stored?.modRevision ?? 0,
            nowMs: clock.nowMs(),
          });
          if (!aborted) {
            manifests.delete(info.key); // changed under us: decide next pass
            continue;
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

  private async expireRecords(): Promise<void> {
    const { metadata, clock, options } = this.deps;
    const now = clock.nowMs();
    let after: string | null = null;
    for (;;) {
      const page = await metadata.scan(after, AUDIT_PAGE);
      for (const { manifest, modRevision } of page) {
        if (manifest.deleted && now - Date.parse(manifest.updatedAt) > options.tombstoneGraceMs) {
          await metadata.purgeTombstone(manifest.key, modRevision);
        }
      }
      if (page.length < AUDIT_PAGE) break;
      after = page[page.length - 1]!.manifest.key;
    }
    await metadata.expireAbortRecords(now - options.gcGraceMs);
    await metadata.expireIdempotency(now);
  }
}
