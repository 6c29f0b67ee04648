import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../log/logger.js';
import type { IntegrityLedger } from './integrity-ledger.js';
import { SQLITE_BUSY_TIMEOUT_MS } from './sqlite-group-commit.js';

/**
 * SQLite's own checks of the embedded metadata file, and the rule that lets a missing record authorise a delete
 * (MetadataStore.absenceTrusted; ./README.md "Integrity").
 *
 * - At open, `PRAGMA quick_check` (pages, records, no index-to-table comparison), then a full
 *   `PRAGMA integrity_check` (which also finds an index entry that points at the wrong row or is missing), both on
 *   a worker thread with its own read-only connection: reads are served meanwhile, and a failure is reported
 *   (/health/ready, /cluster, the log), never fatal.
 * - Then a full check every `intervalMs` after the last one (`retryAfterFailureMs` after one that failed), and whenever the garbage collector needs one, at a bounded rate: a check
 *   starts only once the time since the last one ended is at least `dutyFactor` times the last one's duration (so
 *   checks take at most 1 / (1 + dutyFactor) of one core's time).
 * - A check that finds an index inconsistent with its table rebuilds the indexes (`REINDEX`, which SQLite can do
 *   from the tables alone) and checks again.
 * - A missing record is trusted to mean "no such key" for something created at `sinceMs` only when a full check
 *   that started after `sinceMs` passed and no record has failed verification since that check started.
 */

export interface IntegrityCheckResult {
  ok: boolean;
  /** SQLite's findings (at most SQLITE_INTEGRITY_LIMITS.findingsMax), empty when ok. */
  findings: string[];
  durationMs: number;
}

/** Runs SQLite's checks somewhere other than the caller's connection. */
export interface SqliteIntegrityRunner {
  run(kind: 'quick_check' | 'integrity_check'): Promise<IntegrityCheckResult>;
  close(): Promise<void>;
}

export const SQLITE_INTEGRITY_LIMITS = {
  /** Findings one check reports (SQLite stops after this many). */
  findingsMax: 20,
  /** Full checks run at least this often. */
  intervalMs: 60 * 60_000,
  /** A check waits this many times the last one's duration after it (10% of a core at most). */
  dutyFactor: 9,
  /** absenceTrusted waits at most this long for the rate to allow a check; beyond it, it answers false. */
  absenceWaitMsMax: 2_000,
  /**
   * After a failed check the next one runs this soon (or after the duty factor allows, if later), not an hour
   * later: a check that could not run (its worker died) or that a repair has since answered must not stop
   * garbage collection and rollback for a whole interval.
   */
  retryAfterFailureMs: 60_000,
} as const;

/** The default runner: a worker thread with a read-only connection to `path`, started on first use. */
export function workerIntegrityRunner(path: string): SqliteIntegrityRunner {
  let worker: Worker | null = null;
  let nextId = 1;
  const waiting = new Map<number, { resolve: (r: IntegrityCheckResult) => void; reject: (e: Error) => void }>();
  const failAll = (error: Error): void => {
    for (const w of waiting.values()) w.reject(error);
    waiting.clear();
    worker = null;
  };
  const start = (): Worker => {
    const w = new Worker(new URL('./sqlite-integrity-worker.mjs', import.meta.url), {
      workerData: { path, busyTimeoutMs: SQLITE_BUSY_TIMEOUT_MS },
    });
    w.unref();
    w.on('message', (message: IntegrityCheckResult & { id: number }) => {
      const w2 = waiting.get(message.id);
      waiting.delete(message.id);
      w2?.resolve({ ok: message.ok, findings: message.findings, durationMs: message.durationMs });
    });
    w.on('error', (error) => failAll(error));
    w.on('exit', (code) => failAll(new Error(`the integrity-check worker exited (code ${code})`)));
    return w;
  };
  return {
    run(kind) {
      worker ??= start();
      const id = nextId++;
      const w = worker;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        w.postMessage({ id, kind, findingsMax: SQLITE_INTEGRITY_LIMITS.findingsMax });
      });
    },
    async close() {
      const w = worker;
      worker = null;
      if (w !== null) await w.terminate();
    },
  };
}

/**
 * Runs the checks on the given connection, on the caller's thread. Only for the in-process simulation, whose
 * scheduler must see every piece of work finish; a served store always uses the worker.
 */
export function inlineIntegrityRunner(db: Database.Database): SqliteIntegrityRunner {
  return {
    async run(kind) {
      const started = performance.now();
      const rows = db.pragma(`${kind}(${SQLITE_INTEGRITY_LIMITS.findingsMax})`) as Record<string, unknown>[];
      const findings = rows.map((row) => String(Object.values(row)[0]));
      const ok = findings.length === 1 && findings[0] === 'ok';
      return { ok, findings: ok ? [] : findings, durationMs: performance.now() - started };
    },
    async close() {},
  };
}

/** Index findings of integrity_check: what REINDEX rebuilds from the tables. */
function onlyIndexFindings(findings: readonly string[]): boolean {
  return findings.length > 0 && findings.every((f) => /index|missing from index|wrong # of entries/i.test(f));
}

export interface SqliteIntegrityChecksOptions {
  intervalMs?: number;
  dutyFactor?: number;
  retryAfterFailureMs?: number;
}

export class SqliteIntegrityChecks {
  private lastPassed: { startedMs: number; corruptSeqAtStart: number } | null = null;
  private lastFailure: string | null = null;
  private quickCheckFailure: string | null = null;
  private running: Promise<void> | null = null;
  private lastDurationMs = 0;
  private lastEndedAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  reindexed = 0;
  private readonly intervalMs: number;
  private readonly dutyFactor: number;
  private readonly retryAfterFailureMs: number;

  constructor(
    private readonly runner: SqliteIntegrityRunner,
    private readonly reindex: () => Promise<void>,
    private readonly ledger: IntegrityLedger,
    private readonly clock: Clock,
    private readonly log: Logger | undefined,
    private readonly label: string,
    options: SqliteIntegrityChecksOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? SQLITE_INTEGRITY_LIMITS.intervalMs;
    this.dutyFactor = options.dutyFactor ?? SQLITE_INTEGRITY_LIMITS.dutyFactor;
    this.retryAfterFailureMs = options.retryAfterFailureMs ?? SQLITE_INTEGRITY_LIMITS.retryAfterFailureMs;
  }

  /** Starts the open-time checks (quick, then full) in the background and the periodic full check. */
  start(): void {
    this.running = this.openChecks().finally(() => {
      this.running = null;
      this.schedule();
    });
  }

  get isRunning(): boolean {
    return this.running !== null;
  }

  status(): { lastPassedAtMs: number | null; lastFailure: string | null; running: boolean; reindexed: number } {
    return {
      lastPassedAtMs: this.lastPassed?.startedMs ?? null,
      lastFailure: this.quickCheckFailure ?? this.lastFailure,
      running: this.running !== null,
      reindexed: this.reindexed,
    };
  }

  /** Why a missing record cannot be trusted now (for anything created before now), or null. */
  holdReason(): string | null {
    if (this.lastFailure !== null) return `the last integrity check of the ${this.label} failed: ${this.lastFailure}`;
    if (this.lastPassed === null) {
      return this.quickCheckFailure !== null
        ? `the start-up quick_check of the ${this.label} failed: ${this.quickCheckFailure}`
        : `no full integrity check of the ${this.label} has passed yet`;
    }
    if (this.ledger.count !== this.lastPassed.corruptSeqAtStart) {
      return `a metadata record failed verification since the last integrity check passed (${this.ledger.count - this.lastPassed.corruptSeqAtStart} sightings)`;
    }
    return null;
  }

  private trusted(sinceMs: number): boolean {
    return (
      this.lastFailure === null &&
      this.lastPassed !== null &&
      this.lastPassed.startedMs > sinceMs &&
      this.ledger.count === this.lastPassed.corruptSeqAtStart
    );
  }

  async absenceTrusted(sinceMs: number): Promise<boolean> {
    if (this.trusted(sinceMs)) return true;
    if (this.running !== null) {
      await this.running;
      if (this.trusted(sinceMs)) return true;
    }
    if (this.closed) return false;
    const waitMs = this.lastEndedAt + this.lastDurationMs * this.dutyFactor - performance.now();
    if (waitMs > SQLITE_INTEGRITY_LIMITS.absenceWaitMsMax) return false;
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs).unref());
    await this.fullCheck();
    return this.trusted(sinceMs);
  }

  /**
   * Resolves once a full check that started after this call has ended: one running now started before it (it may
   * predate a repair the caller just made), so it is waited for and the next one is shared by all who waited.
   */
  async fullCheck(): Promise<void> {
    if (this.running !== null) await this.running.catch(() => undefined);
    if (this.closed) return;
    this.running ??= this.checkAndRepair().finally(() => {
      this.running = null;
      // The next periodic check counts from this one, and comes soon when this one failed.
      this.schedule();
    });
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.runner.close();
    await this.running?.catch(() => undefined);
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.fullCheck();
    }, this.nextCheckInMs());
    this.timer.unref();
  }

  /** The periodic interval while checks pass; soon again after one failed (bounded by the duty factor). */
  private nextCheckInMs(): number {
    const healthy = this.lastFailure === null && this.quickCheckFailure === null;
    if (healthy) return this.intervalMs;
    const retryMs = Math.max(this.retryAfterFailureMs, this.lastDurationMs * this.dutyFactor);
    return Math.min(this.intervalMs, retryMs);
  }

  private async openChecks(): Promise<void> {
    const quick = await this.runChecked('quick_check');
    if (quick !== null && !quick.ok) {
      this.quickCheckFailure = quick.findings.join('; ');
      this.log?.error(
        { findings: quick.findings },
        `the ${this.label} failed its start-up quick_check; reads are served, garbage collection and rollback delete nothing until a full check passes`,
      );
    }
    await this.checkAndRepair();
  }

  private async runChecked(kind: 'quick_check' | 'integrity_check'): Promise<IntegrityCheckResult | null> {
    if (this.closed) return null;
    try {
      const result = await this.runner.run(kind);
      this.lastDurationMs = result.durationMs;
      this.lastEndedAt = performance.now();
      return result;
    } catch (error) {
      if (this.closed) return null;
      return { ok: false, findings: [`the check could not run: ${(error as Error).message}`], durationMs: 0 };
    }
  }

  /** One full check; indexes found inconsistent are rebuilt and the check runs once more. */
  private async checkAndRepair(): Promise<void> {
    for (let attempt = 1; attempt <= 2; attempt++) {
      const startedMs = this.clock.nowMs();
      const corruptSeqAtStart = this.ledger.count;
      const result = await this.runChecked('integrity_check');
      if (result === null) return;
      if (result.ok) {
        this.lastPassed = { startedMs, corruptSeqAtStart };
        this.lastFailure = null;
        this.quickCheckFailure = null;
        return;
      }
      this.lastFailure = result.findings.join('; ');
      const rebuildable = onlyIndexFindings(result.findings);
      this.log?.error(
        { findings: result.findings, reindex: rebuildable && attempt === 1 },
        rebuildable && attempt === 1
          ? `the ${this.label} failed its integrity check with inconsistent indexes; rebuilding them (REINDEX) online`
          : `the ${this.label} failed its integrity check; garbage collection and rollback delete nothing until it passes. ` +
              'Stop the process, keep a copy of the metadata directory, and restore it from a backup or run `npm run recover:manifests`',
      );
      if (!rebuildable || attempt === 2) return;
      try {
        await this.reindex();
        this.reindexed++;
      } catch (error) {
        this.log?.error({ err: error }, `REINDEX of the ${this.label} failed`);
        return;
      }
    }
  }
}
