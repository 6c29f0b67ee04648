/**
 * Online repair of manifest records that fail verification (docs/decisions.md 20): the leading healer rebuilds the
 * manifest of each such key from the nodes' self-describing blobs, with the whole-store rebuild's rules
 * (internal/recovery/rebuild-manifests.ts: the newest write that met its quorum), and stores it through
 * MetadataStore.replaceCorruptManifest, which succeeds only while the stored record still fails verification and
 * nothing says the key's last change may have been a delete.
 *
 * Never undoing a delete: a tombstone holds no blobs, so the nodes cannot show a delete. A key is left unreadable
 * (503 METADATA_CORRUPT, its blobs kept) rather than rebuilt when any witness says its last change may have been a
 * delete: an unresolved delete intent in the WAL newer than the newest write on the nodes, or what the store keeps
 * (checked by replaceCorruptManifest in the same transaction as the replacement). A key none of whose blobs is left
 * stays unreadable too: deleted, or lost; only an operator can tell.
 *
 * Until a key is rebuilt its blobs are kept (garbage collection and rollback hold for it, healer.ts); once rebuilt,
 * the store forgets its sightings and the key is collected like any other: blobs of writes the rebuilt manifest does
 * not reference go through the usual abort-then-delete rule.
 */
import type { NodePool } from '../cluster/node-pool.js';
import type { Clock } from '../core/clock.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import type { Logger } from '../log/logger.js';
import type { Manifest } from '../manifest/manifest.js';
import type { LeaderTerm, MetadataStore } from '../metadata/metadata-store.js';
import { BlobGrouper, rebuildKeyManifest, type WriteSet } from '../recovery/rebuild-manifests.js';
import type { UnresolvedIntent } from './intent-resolver.js';
import type { Inventory } from './repairer.js';

export const MANIFEST_REBUILD_LIMITS = {
  /** Damaged keys remembered between passes; beyond it the oldest are dropped (the next audit's scan finds them again). */
  keysMax: 10_000,
  /** Keys one audit pass tries to rebuild (each reads a write's blobs back). */
  keysPerPassMax: 256,
} as const;

export interface ManifestRebuildDeps {
  metadata: MetadataStore;
  pool: NodePool;
  ec: ErasureCode;
  clock: Clock;
  log: Logger;
  nodeTimeoutMs: number;
  /** An intent younger than this without an outcome belongs to a write that may still be running. */
  intentTimeoutMs: number;
  /** The WAL intents of a key that the intent resolver has not resolved (held while the key's record is damaged). */
  unresolvedIntents(key: string): UnresolvedIntent[];
}

/** A damaged key that waits: why, since when (healer clock). */
export interface ManifestRebuildWait {
  key: string;
  /** Why the record was found damaged (the store's words). */
  damage: string;
  /** Why it is not rebuilt (yet), or null before the first attempt. */
  reason: string | null;
  sinceMs: number;
}

export interface ManifestRebuildCounters {
  /** Records replaced by a rebuilt manifest. */
  manifestsRebuilt: number;
  /** Attempts refused or put off (a key tried every pass counts every pass). */
  manifestRebuildsRefused: number;
}

type Attempt = { rebuilt: Manifest } | { waits: string; journal: boolean } | { done: string };

export class ManifestRebuilder {
  readonly counters: ManifestRebuildCounters = { manifestsRebuilt: 0, manifestRebuildsRefused: 0 };
  private readonly waiting = new Map<string, ManifestRebuildWait & { journaled: string | null }>();

  constructor(private readonly deps: ManifestRebuildDeps) {}

  /** Keys whose damaged manifest record waits for a rebuild: garbage collection and rollback keep their blobs. */
  keys(): string[] {
    this.collect();
    return [...this.waiting.keys()];
  }

  /** What waits and why (GET /healer via the journal, tests). */
  status(): ManifestRebuildWait[] {
    return [...this.waiting.values()].map(({ journaled: _journaled, ...wait }) => ({ ...wait }));
  }

  /**
   * One pass over the damaged keys known so far, with the inventories the audit just listed (every node's blobs):
   * rebuilds what can be rebuilt. Returns how many records were replaced. Stops when leadership is lost.
   */
  async runPass(inventories: Map<string, Inventory>, term: LeaderTerm, stillLeads: () => Promise<boolean>): Promise<number> {
    this.collect();
    if (this.waiting.size === 0) return 0;
    const keys = [...this.waiting.keys()].slice(0, MANIFEST_REBUILD_LIMITS.keysPerPassMax);
    const unlisted = [...inventories].filter(([, inventory]) => inventory === null).map(([node]) => node);
    const byKey = await blobsOf(new Set(keys), inventories, this.deps.ec);
    let rebuilt = 0;
    for (const key of keys) {
      if (!(await stillLeads())) return rebuilt;
      const wait = this.waiting.get(key)!;
      const attempt = await this.attempt(wait, byKey.get(key) ?? new Map(), unlisted, term).catch(
        (error: unknown): Attempt => ({ waits: `the rebuild failed: ${(error as Error).message}`, journal: false }),
      );
      if ('rebuilt' in attempt) {
        rebuilt++;
        this.counters.manifestsRebuilt++;
        this.waiting.delete(key);
        await this.noteRebuilt(key, wait.damage, attempt.rebuilt);
      } else if ('done' in attempt) {
        this.waiting.delete(key);
        this.deps.log.info({ key, why: attempt.done }, `damaged manifest record of ${JSON.stringify(key)} not rebuilt: ${attempt.done}`);
      } else {
        this.counters.manifestRebuildsRefused++;
        wait.reason = attempt.waits;
        if (attempt.journal && wait.journaled !== attempt.waits) {
          wait.journaled = attempt.waits;
          await this.noteWaiting(key, attempt.waits);
        }
      }
    }
    return rebuilt;
  }

  /** Takes the damaged manifest records the store has reported (sightings from reads, scans and watches). */
  private collect(): void {
    for (const sighting of this.deps.metadata.integrity().recent) {
      if (sighting.kind !== 'manifest' || this.waiting.has(sighting.key)) continue;
      this.waiting.set(sighting.key, { key: sighting.key, damage: sighting.why, reason: null, sinceMs: this.deps.clock.nowMs(), journaled: null });
    }
    for (const key of this.waiting.keys()) {
      if (this.waiting.size <= MANIFEST_REBUILD_LIMITS.keysMax) break;
      this.waiting.delete(key);
    }
  }

  private async attempt(wait: ManifestRebuildWait, writes: Map<string, WriteSet>, unlisted: string[], term: LeaderTerm): Promise<Attempt> {
    const { metadata, pool, clock, intentTimeoutMs } = this.deps;
    const key = wait.key;
    const now = clock.nowMs();
    // A write of the key that was running when the damage was found may not have reached the intent resolver yet
    // (its intent is in the WAL, unread): only once the intent timeout has passed since are all such writes known
    // (unresolvedIntents) or past their commit deadline. It also leaves an operator time to restore the record.
    if (now - wait.sinceMs < intentTimeoutMs) {
      return { waits: `found damaged ${Math.round((now - wait.sinceMs) / 1000)} s ago; rebuilt once the intent timeout (${intentTimeoutMs} ms) has passed`, journal: false };
    }
    const intents = this.deps.unresolvedIntents(key);
    const running = intents.find((i) => !i.failed && now - i.atMs < intentTimeoutMs);
    if (running) return { waits: `a ${running.op} of the key (write ${running.writeId}) may still be running`, journal: false };
    if (unlisted.length > 0) return { waits: `${unlisted.join(', ')} could not be listed: a newer write of the key may be there`, journal: false };
    if (writes.size === 0) {
      return {
        waits: 'no blob of the key is left on any node: it was deleted, or its blobs are lost. It stays unreadable (503) until an operator restores its record',
        journal: true,
      };
    }
    // A write whose gateway reported a failed commit never committed: its blobs are no candidate.
    const failed = new Set(intents.filter((i) => i.failed).map((i) => i.writeId));
    const nodes = pool.ids().map((id) => pool.client(id)!);
    let manifest: Manifest;
    try {
      manifest = await rebuildKeyManifest({ nodes, ec: this.deps.ec, timeoutMs: this.deps.nodeTimeoutMs }, key, writes, failed);
    } catch (error) {
      return { waits: `it cannot be rebuilt from the nodes' blobs (${(error as Error).message})`, journal: true };
    }
    const newerDelete = intents.find((i) => i.op === 'delete' && !i.failed && i.writeId > manifest.writeId);
    if (newerDelete) {
      return {
        waits: `a delete of the key (write ${newerDelete.writeId}) newer than its newest write on the nodes has no known outcome: it may have committed, so the key is not brought back`,
        journal: true,
      };
    }
    const result = await metadata.replaceCorruptManifest({ key, manifest, fence: term });
    if (result.ok) return { rebuilt: result.manifest };
    switch (result.reason) {
      case 'intact':
        return { done: result.why };
      case 'absent':
        // No record at all (a damaged index entry, since rebuilt?): nothing to replace; a missing record never
        // authorises a delete on its own, so the key's blobs stay until the store vouches for the absence.
        return { waits: result.why, journal: false };
      case 'fenced':
        return { waits: 'this healer no longer leads', journal: false };
      case 'deleted':
        return { waits: `the key may have been deleted (${result.why}), so it is not brought back`, journal: true };
      case 'newer':
        return { waits: `${result.why}; the key is not rolled back to an older write`, journal: true };
    }
  }

  private async noteRebuilt(key: string, damage: string, manifest: Manifest): Promise<void> {
    const missing = [...manifest.hot, ...manifest.cold].filter((r) => r.state !== 'ok').length;
    const detail =
      `manifest record rebuilt from the nodes' blobs (it failed verification: ${damage}): write ${manifest.writeId}, ` +
      `new version ${manifest.version}` + (missing > 0 ? `, ${missing} missing blobs left to the next audit's repair` : '');
    this.deps.log.warn({ key, writeId: manifest.writeId, version: manifest.version, missing }, `${JSON.stringify(key)}: ${detail}`);
    await this.journal('repaired', key, detail);
  }

  private async noteWaiting(key: string, reason: string): Promise<void> {
    const detail = `damaged manifest record not rebuilt: ${reason}`;
    this.deps.log.warn({ key, reason }, `${JSON.stringify(key)}: ${detail}`);
    await this.journal('unrepairable', key, detail);
  }

  /** The journal is for people: failing to write it is logged and never fails the rebuild. */
  private async journal(kind: 'repaired' | 'unrepairable', key: string, detail: string): Promise<void> {
    try {
      await this.deps.metadata.appendHealerActions([{ atMs: this.deps.clock.nowMs(), kind, key, detail }]);
    } catch (error) {
      this.deps.log.warn({ err: error, key }, 'could not record a manifest rebuild in the healer journal');
    }
  }
}

/**
 * The blobs of `keys` in the inventories, grouped by key and write id as the whole-store rebuild groups them.
 * Format-2 blobs name their key only in their descriptors (a shard's only with three other shards), so every one
 * is grouped and only the keys asked for are kept.
 */
async function blobsOf(keys: ReadonlySet<string>, inventories: Map<string, Inventory>, ec: ErasureCode): Promise<Map<string, Map<string, WriteSet>>> {
  const grouper = new BlobGrouper();
  for (const [node, inventory] of inventories) {
    if (inventory === null) continue;
    for (const info of inventory.values()) if (info.format === 2 || keys.has(info.key)) grouper.add(node, info);
  }
  await grouper.resolve(ec, (key) => keys.has(key));
  for (const key of [...grouper.byKey.keys()]) if (!keys.has(key)) grouper.byKey.delete(key);
  return grouper.byKey;
}
