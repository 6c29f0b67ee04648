/**
 * Resolves write intents from the WAL (architecture.md, "Abort, rollback and garbage collection"). An intent
 * whose outcome is `committed` needs nothing. One whose outcome is `failed`, or that has no outcome after
 * `intentTimeoutMs`, is resolved from the manifest: committed if the manifest references its write id,
 * otherwise aborted (abort record first, conditioned on the manifest being unchanged) and then its created
 * blobs are deleted. Offsets are committed, per partition, only up to the oldest unresolved intent of that partition.
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../log/logger.js';
import { referencesWrite } from '../manifest/manifest.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { CorruptWalEntry, WalConsumer, WalPosition, WalRecord, WriteAheadLog } from '../wal/write-ahead-log.js';
import type { NodePool } from '../cluster/node-pool.js';
import { deleteAll } from '../blobio/blob-io.js';
import { isStrataError } from '../core/errors.js';

type Intent = Extract<WalRecord, { type: 'intent' }>;

interface Tracked {
  position: WalPosition;
  /** Null for outcome records (resolved as soon as read). */
  writeId: string | null;
}

/** WAL entries read per poll. */
const POLL_BATCH_MAX = 1000;
/** Intents kept in memory while unresolved; beyond this the resolver stops reading until some resolve. */
const PENDING_MAX = 100_000;

export interface IntentStats {
  read: number;
  resolvedCommitted: number;
  rolledBack: number;
  /** Intents read and not yet resolved (as of the end of the last round). */
  pending: number;
  /** WAL entries read whose offsets are not committed yet: the consumer's lag behind what it has read. */
  uncommitted: number;
  /** When the oldest unresolved intent was appended (ms), or null when none is pending. */
  oldestPendingAtMs: number | null;
  /** Rollbacks put off because the metadata store could not vouch for the key's missing manifest (so far). */
  rollbacksHeld: number;
  /** Why the latest rollback was put off, or null once one went through after it. */
  lastHoldReason: string | null;
  /** WAL entries that failed verification (so far): none was acted on. */
  corruptEntries: number;
  /** The latest of them, for GET /healer. */
  lastCorruptEntry: { partition: number; offset: number; why: string; atMs: number } | null;
}

/** An intent read from the WAL and not resolved yet (IntentResolver.unresolvedOf). */
export interface UnresolvedIntent {
  writeId: string;
  op: 'write' | 'delete';
  atMs: number;
  failed: boolean;
}

export class IntentResolver {
  private consumer: WalConsumer | null = null;
  private readonly pending = new Map<string, { intent: Intent; failed: boolean }>();
  /**
   * Entries read and not yet committed, per partition in offset order. Order (and so the committed offset) is
   * per partition: an unresolved intent holds back only its own partition, and each partition gets its own commit.
   */
  private readonly order = new Map<number, Tracked[]>();
  readonly stats: IntentStats = { read: 0, resolvedCommitted: 0, rolledBack: 0, pending: 0, uncommitted: 0, oldestPendingAtMs: null, rollbacksHeld: 0, lastHoldReason: null, corruptEntries: 0, lastCorruptEntry: null };

  constructor(
    private readonly deps: {
      wal: WriteAheadLog;
      metadata: MetadataStore;
      pool: NodePool;
      clock: Clock;
      log: Logger;
      intentTimeoutMs: number;
      nodeTimeoutMs: number;
      group: string;
    },
  ) {}

  /**
   * One round: read what is new, resolve what is due, commit the offsets that are safe. `stillLeads` is asked
   * right before offsets are committed: the WAL does not fence a deposed leader's commit, so a round that ran past
   * its lease (a long pause) must not commit what a newer leader may already have moved past.
   */
  async runOnce(stillLeads: () => Promise<boolean> = async () => true): Promise<void> {
    this.consumer ??= await this.deps.wal.consumer(this.deps.group);
    while (this.pending.size < PENDING_MAX) {
      const entries = await this.consumer.poll(POLL_BATCH_MAX, 0);
      if (entries.length === 0) break;
      for (const entry of entries) {
        const { position, record } = entry;
        this.stats.read++;
        if (record === null) {
          this.noteCorrupt(entry);
          this.track({ position, writeId: null });
        } else if (record.type === 'intent') {
          this.pending.set(record.writeId, { intent: record, failed: false });
          this.track({ position, writeId: record.writeId });
        } else {
          const p = this.pending.get(record.writeId);
          if (p && record.outcome === 'committed') this.pending.delete(record.writeId);
          else if (p) p.failed = true;
          this.track({ position, writeId: null });
        }
      }
      if (entries.length < POLL_BATCH_MAX) break;
    }
    const now = this.deps.clock.nowMs();
    for (const [writeId, p] of [...this.pending]) {
      if (!p.failed && now - p.intent.atMs < this.deps.intentTimeoutMs) continue;
      if (await this.resolve(p.intent)) this.pending.delete(writeId);
    }
    if (await stillLeads()) await this.commitSafeOffset();
    this.stats.pending = this.pending.size;
    let uncommitted = 0;
    for (const queue of this.order.values()) uncommitted += queue.length;
    this.stats.uncommitted = uncommitted;
    let oldest: number | null = null;
    for (const { intent } of this.pending.values()) if (oldest === null || intent.atMs < oldest) oldest = intent.atMs;
    this.stats.oldestPendingAtMs = oldest;
  }

  /**
   * The intents of `key` read and not resolved yet, oldest first: what the rebuild of a damaged manifest record
   * weighs (./manifest-rebuilder.ts). `failed`: the gateway reported that the write did not commit.
   */
  unresolvedOf(key: string): UnresolvedIntent[] {
    const out: UnresolvedIntent[] = [];
    for (const { intent, failed } of this.pending.values()) {
      if (intent.key === key) out.push({ writeId: intent.writeId, op: intent.op, atMs: intent.atMs, failed });
    }
    return out.sort((a, b) => a.atMs - b.atMs);
  }

  /** Returns true when the intent is settled (committed, or aborted and its blobs removed). */
  private async resolve(intent: Intent): Promise<boolean> {
    const { metadata, log } = this.deps;
    let stored;
    try {
      stored = await metadata.get(intent.key);
    } catch (error) {
      // A damaged manifest record decides nothing: the intent waits, its blobs stay, until the record is repaired.
      if (!isStrataError(error, 'METADATA_CORRUPT')) throw error;
      this.noteHeld(intent, `the manifest record of ${JSON.stringify(intent.key)} failed verification`);
      return false;
    }
    if (stored && referencesWrite(stored.manifest, intent.writeId)) {
      this.stats.resolvedCommitted++;
      return true;
    }
    // While the store's own integrity check fails, no rollback deletes anything (as garbage collection).
    const failedCheck = metadata.integrity().checks?.lastFailure ?? null;
    if (failedCheck !== null) {
      this.noteHeld(intent, `the last integrity check of the metadata store failed (${failedCheck}); rollbacks wait until one passes`);
      return false;
    }
    // A lookup that finds nothing never authorises a rollback on its own (healer.ts, collectGarbage).
    if (!stored && !(await metadata.absenceTrusted(intent.atMs))) {
      this.noteHeld(intent, metadata.integrity().gcHold ?? 'the metadata store cannot vouch for a missing manifest yet');
      return false;
    }
    const aborted = await metadata.abort({
      key: intent.key,
      writeId: intent.writeId,
      expectedModRevision: stored?.modRevision ?? 0,
      nowMs: this.deps.clock.nowMs(),
    });
    if (!aborted) return false; // the manifest moved since we read it: look again next round
    // The abort record now makes a commit of this write impossible, so its created blobs can go.
    await deleteAll(this.deps.pool, intent.creates, this.deps.nodeTimeoutMs);
    this.stats.rolledBack++;
    this.stats.lastHoldReason = null;
    log.info({ key: intent.key, writeId: intent.writeId, blobs: intent.creates.length }, 'rolled back an unfinished write');
    return true;
  }

  /**
   * A WAL entry that failed verification is never acted on: a damaged intent could name another key's blobs, a
   * damaged outcome could hide a failure. It is reported (log, GET /healer, strata_wal_corrupt_entries_total) and
   * read past: the WAL is the fast path of rollback, not its authority. Blobs of a write whose intent was lost this
   * way stay until inventory garbage collection finds them unreferenced, which deletes only when the manifest store
   * vouches for the missing manifest (metadata.absenceTrusted), and an outcome lost this way is settled from the
   * manifest like an intent without outcome. Reading past it (rather than stopping at it) keeps every later intent
   * resolved and the log's retention going; what was stored is in the log line.
   */
  private noteCorrupt(entry: CorruptWalEntry): void {
    const { position, corrupt } = entry;
    this.stats.corruptEntries++;
    this.stats.lastCorruptEntry = { partition: position.partition, offset: position.offset, why: corrupt.why, atMs: this.deps.clock.nowMs() };
    this.deps.log.error(
      { partition: position.partition, offset: position.offset, storedKey: corrupt.storedKey, why: corrupt.why, stored: corrupt.excerpt },
      `write-ahead log entry at partition ${position.partition} offset ${position.offset} failed verification (${corrupt.why}) ` +
        'and was not acted on: no rollback or delete follows from it. If it was an intent, its blobs are left to garbage ' +
        'collection, which deletes them only once the metadata store vouches that their key has no manifest. Check the ' +
        'WAL storage (the disk under the SQLite write-ahead log, or the Kafka brokers) for other damage',
    );
  }

  private noteHeld(intent: Intent, reason: string): void {
    this.stats.rollbacksHeld++;
    if (this.stats.lastHoldReason !== reason) {
      this.deps.log.warn({ key: intent.key, writeId: intent.writeId, reason }, `rollback of an unfinished write put off: ${reason}`);
    }
    this.stats.lastHoldReason = reason;
  }

  private track(entry: Tracked): void {
    const queue = this.order.get(entry.position.partition);
    if (queue) queue.push(entry);
    else this.order.set(entry.position.partition, [entry]);
  }

  /** Commits, in each partition, the last entry before its oldest unresolved intent. */
  private async commitSafeOffset(): Promise<void> {
    for (const queue of this.order.values()) {
      let last: WalPosition | null = null;
      let resolved = 0;
      while (resolved < queue.length) {
        const head = queue[resolved]!;
        if (head.writeId !== null && this.pending.has(head.writeId)) break;
        last = head.position;
        resolved++;
      }
      if (last === null || !this.consumer) continue;
      await this.consumer.commit(last);
      // Forgotten only once committed: a failed commit is retried next round.
      queue.splice(0, resolved);
    }
  }

  async close(): Promise<void> {
    await this.consumer?.close();
    this.consumer = null;
  }
}
