/**
 * Orphans of failed writes come back as disk space within the documented bound (README.md, "When the space of
 * overwrites, deletes and failed writes comes back"; internal/blobstore/volume/README.md, "Reclamation"), with the
 * default periods, now that a missing manifest authorises a delete only after the embedded metadata store's full
 * integrity check vouches for it (decision 18; MetadataStore.absenceTrusted):
 *
 * - the blobs of a write whose gateway died between its puts and its commit (intent, no outcome) stay until the
 *   intent timeout, and are rolled back at the first healer round after it, once a full integrity check that
 *   started after the write has passed (the round asks for one);
 * - blobs no intent ever named (a crash older than the WAL's retention, an intent entry that failed verification)
 *   stay until the GC grace period, and go at the first audit after it, on the same condition;
 * - then, once the nodes have been quiet for the volume store's idle time, each node directory's allocated bytes
 *   (st_blocks x 512, what `du` counts) are at most 1.3x its live need + 4 MiB, where the live need is the needle
 *   bytes of the blobs that live manifests reference plus the node's index checkpoint.
 *
 * The cluster runs on a manual clock: the test moves it to the edges of the periods and the healer runs when the
 * test says (`healer.runOnce()`), as its loop would, one round per STRATA_HEALER_INTERVAL_MS. What takes real time
 * (the integrity check on its worker thread, the compactions' copies) is waited for by condition.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { blobIdOf, newWriteId } from '../../internal/core/ids.js';
import { IDLE_COMPACT_AFTER_MS_DEFAULT } from '../../internal/blobstore/volume/reclamation.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { describeNodeBytes, nodeDirectoryBytes, withinAtRestBound, type NodeBytes } from '../helpers/disk-usage.js';
import { waitUntil } from '../helpers/wait.js';
import { blobsOfWrite, fullInventory } from './durability-helpers.js';

const MIB = 1024 * 1024;
/** Live documents beside the orphans, so that the live need is not zero. */
const LIVE_DOCS = 3;
/**
 * Orphaned bytes per node, for each kind of failed write: more than the 4 MiB slack plus 0.3x the live need, so
 * that a node still holding them breaks the bound (checked before the healer runs).
 */
const ORPHAN_BYTES_PER_NODE = 6 * MIB;
/** Manual time given per condition poll while the nodes compact: background copies are paced on this clock. */
const COMPACTION_STEP_MS = 250;

/** `node/blob` of every blob a live manifest references. */
async function referencedBlobs(cluster: TestCluster): Promise<Set<string>> {
  const out = new Set<string>();
  let after: string | null = null;
  for (;;) {
    const page = await cluster.metadata.scan(after, 500);
    for (const { manifest } of page) {
      if (manifest.deleted) continue;
      for (const ref of [...manifest.hot, ...manifest.cold]) out.add(`${ref.node}/${ref.blob}`);
    }
    if (page.length < 500) break;
    after = page[page.length - 1]!.manifest.key;
  }
  return out;
}

/** Per node: what its directory has allocated, against the live need of what the manifests reference on it. */
async function nodeBytes(cluster: TestCluster): Promise<NodeBytes[]> {
  const referenced = await referencedBlobs(cluster);
  return nodeDirectoryBytes(cluster, (node, store) => {
    let needles = 0;
    for (const name of referenced) {
      const [owner, blob] = name.split('/') as [string, string];
      if (owner === node) needles += store.locate(blob)?.needleBytes ?? 0;
    }
    return needles;
  });
}

/** An incompressible document of about `bytes` (no default hot field, so `ec` stores it as six shards). */
function document(bytes: number): string {
  return JSON.stringify({ device: 'dev', log: randomBytes(Math.floor((bytes * 3) / 4)).toString('base64') });
}

async function writeLiveDocuments(cluster: TestCluster): Promise<void> {
  for (let i = 0; i < LIVE_DOCS; i++) {
    expect((await cluster.write(`live/${i}`, document(MIB), '&strategy=ec')).status).toBe(200);
  }
}

/**
 * Lets the nodes' idle pass run: the clock moves past the quiet time after the healer's last delete, then on in
 * small steps (background compactions pace themselves on it) until every node directory is within the bound.
 */
async function expectNodesBackWithinBound(cluster: TestCluster, clock: ManualClock): Promise<void> {
  clock.advance(IDLE_COMPACT_AFTER_MS_DEFAULT + 1);
  let last: NodeBytes[] = [];
  await waitUntil(
    'every node directory is within 1.3x its live need + 4 MiB',
    async () => {
      last = await nodeBytes(cluster);
      if (last.every(withinAtRestBound)) return true;
      clock.advance(COMPACTION_STEP_MS);
      return false;
    },
    60_000,
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; last seen: ${describeNodeBytes(last)}`);
  });
  // Every node holds garbage, so every node compacted: the need cannot have been met by luck.
  for (const node of cluster.nodes) expect((await node.server!.store.usage()).reclaimedBytes, node.id).toBeGreaterThan(ORPHAN_BYTES_PER_NODE / 2);
}

/** The start time of the last full integrity check of the metadata store that passed (null: none yet). */
function lastPassedCheckStartMs(cluster: TestCluster): number | null {
  return cluster.metadata.integrity().checks?.lastPassedAtMs ?? null;
}

describe('orphans of failed writes are reclaimed within the documented bound', () => {
  const clusters: TestCluster[] = [];
  afterEach(async () => {
    for (const cluster of clusters.splice(0)) await cluster.destroy();
  });

  it('blobs of writes whose gateway died before the commit stay until the intent timeout, then go once an integrity check vouches, and the nodes come back within 1.3x their live need + 4 MiB', async () => {
    const clock = new ManualClock();
    let crashBeforeCommit = false;
    const crashed: string[] = [];
    const cluster = await startTestCluster({
      clock,
      hooks: {
        beforeCommit: async (writeId) => {
          if (!crashBeforeCommit) return;
          crashed.push(writeId);
          throw new Error('simulated gateway crash after the blobs were stored, before the commit');
        },
      },
    });
    clusters.push(cluster);
    const { intentTimeoutMs, healerIntervalMs } = cluster.config;
    await writeLiveDocuments(cluster);

    // Six writes of new keys whose gateway dies after its puts: each leaves an intent without outcome and six
    // shards of 1 MiB, one on every node.
    crashBeforeCommit = true;
    for (let i = 0; i < ORPHAN_BYTES_PER_NODE / MIB; i++) {
      expect((await cluster.write(`failed/${i}`, document(4 * MIB), '&strategy=ec')).status).toBeGreaterThanOrEqual(500);
    }
    crashBeforeCommit = false;
    expect(crashed).toHaveLength(ORPHAN_BYTES_PER_NODE / MIB);
    const failedAtMs = clock.nowMs();
    const orphans = (await Promise.all(crashed.map((writeId) => blobsOfWrite(cluster, writeId)))).flat();
    expect(orphans).toHaveLength(crashed.length * 6);
    const before = await nodeBytes(cluster);
    expect(before.some(withinAtRestBound), `the orphans alone break the bound: ${describeNodeBytes(before)}`).toBe(false);
    // No check that started after the writes has passed yet: only one can let the rollbacks through.
    expect(lastPassedCheckStartMs(cluster) ?? Number.NEGATIVE_INFINITY).toBeLessThanOrEqual(failedAtMs);

    // The last round before the timeout leaves everything: the writes could still be committing.
    clock.advance(intentTimeoutMs - healerIntervalMs);
    await cluster.healer.runOnce();
    expect(cluster.healer.intentStats.rolledBack).toBe(0);
    for (const writeId of crashed) expect(await blobsOfWrite(cluster, writeId)).toHaveLength(6);

    // The next round is past the timeout: it asks for a full check, which passes, and rolls every write back. It
    // is repeated (at the same clock time) only while the check's rate bound, which counts real time, defers it.
    clock.advance(healerIntervalMs);
    await waitUntil(
      'the healer rolled back every crashed write',
      async () => {
        await cluster.healer.runOnce();
        return cluster.healer.intentStats.rolledBack === crashed.length;
      },
      60_000,
    );
    expect(clock.nowMs() - failedAtMs).toBeLessThanOrEqual(intentTimeoutMs + healerIntervalMs);
    for (const writeId of crashed) {
      expect(await blobsOfWrite(cluster, writeId)).toEqual([]);
      expect(await cluster.metadata.isAborted(writeId)).toBe(true);
    }
    expect(lastPassedCheckStartMs(cluster)).toBeGreaterThan(failedAtMs);
    for (let i = 0; i < crashed.length; i++) expect((await cluster.read(`failed/${i}`)).status).toBe(404);

    await expectNodesBackWithinBound(cluster, clock);
    for (let i = 0; i < LIVE_DOCS; i++) expect((await cluster.read(`live/${i}`)).status).toBe(200);
  }, 180_000);

  it('blobs that no intent names stay until the GC grace period, then go at the next audit once an integrity check vouches, and the nodes come back within 1.3x their live need + 4 MiB', async () => {
    const clock = new ManualClock();
    const cluster = await startTestCluster({ clock });
    clusters.push(cluster);
    const { gcGraceMs, auditIntervalMs } = cluster.config;
    await writeLiveDocuments(cluster);

    // Two 3 MiB blobs on every node, under write ids that never had an intent, for keys that have no manifest.
    const orphans: string[] = [];
    for (const node of cluster.nodes) {
      for (let i = 0; i < 2; i++) {
        const writeId = newWriteId(clock.nowMs());
        const id = blobIdOf(writeId, 'shard-0');
        const header = { id, key: `orphan/${node.id}/${i}`, writeId, part: 'shard-0', meta: '{"strategy":"ec","role":"cold"}' };
        await node.client.put(header, randomBytes(ORPHAN_BYTES_PER_NODE / 2));
        orphans.push(`${node.id}/${id}`);
      }
    }
    const orphanedAtMs = clock.nowMs();
    const present = async (): Promise<string[]> => {
      const inventory = await fullInventory(cluster);
      return orphans.filter((name) => inventory.has(name));
    };
    const before = await nodeBytes(cluster);
    expect(before.some(withinAtRestBound), `the orphans alone break the bound: ${describeNodeBytes(before)}`).toBe(false);
    expect(lastPassedCheckStartMs(cluster) ?? Number.NEGATIVE_INFINITY).toBeLessThanOrEqual(orphanedAtMs);

    // An audit just before the grace ends keeps them, and is the worst phase: the next one is a whole interval later.
    clock.advance(gcGraceMs - 1);
    const early = await cluster.healer.runOnce({ forceAudit: true });
    expect(early.garbageDeleted).toBe(0);
    expect(await present()).toEqual(orphans);

    // The healer's loop audits again auditIntervalMs later: that audit asks for a full check and collects them. It
    // is repeated (at the same clock time) only while the check's rate bound, which counts real time, defers it.
    clock.advance(auditIntervalMs);
    let audits = 0;
    await waitUntil(
      'the inventory pass collected every orphan',
      async () => {
        await cluster.healer.runOnce({ forceAudit: audits++ > 0 });
        return (await present()).length === 0;
      },
      60_000,
    );
    expect(clock.nowMs() - orphanedAtMs).toBeLessThanOrEqual(gcGraceMs + auditIntervalMs);
    expect(cluster.healer.gcHold).toBeNull();
    expect(lastPassedCheckStartMs(cluster)).toBeGreaterThan(orphanedAtMs);

    await expectNodesBackWithinBound(cluster, clock);
    for (let i = 0; i < LIVE_DOCS; i++) expect((await cluster.read(`live/${i}`)).status).toBe(200);
  }, 180_000);
});
