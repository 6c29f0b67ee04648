/**
 * Failure: a damaged write intent in the WAL. An intent names blobs to delete if its write did not commit, so a
 * flipped byte in its key could make the healer roll back (delete) the blobs of another, committed document. A WAL
 * entry that fails verification is never acted on: the intent resolver counts it, logs it and reads past it, and
 * the document it could have destroyed stays whole. A valid intent in the same log is still rolled back, which
 * shows the resolver was free to act.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sealWalRecord } from '../../internal/wal/wal-record-envelope.js';
import type { WalRecord } from '../../internal/wal/write-ahead-log.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';
import { docText, fullInventory, putOrphan, refNames, stat } from './durability-helpers.js';

const GRACE_MS = 600_000;
const INTENT_TIMEOUT_MS = 30_000;

/** Stores one entry in the all-in-one's WAL file behind its back, as damage on disk would leave it. */
function storeRawWalEntry(cluster: TestCluster, key: string, value: string): void {
  const db = new Database(path.join(cluster.dataDir, 'wal', 'wal.db'));
  try {
    db.prepare('INSERT INTO wal_entries (key, record) VALUES (?, ?)').run(key, value);
  } finally {
    db.close();
  }
}

describe('a damaged write intent in the WAL', () => {
  let cluster: TestCluster;
  const clock = new AdvancingClock();
  beforeAll(async () => {
    cluster = await startTestCluster({
      clock,
      env: { STRATA_INTENT_TIMEOUT_MS: String(INTENT_TIMEOUT_MS), STRATA_GC_GRACE_MS: String(GRACE_MS), STRATA_TOMBSTONE_GRACE_MS: String(GRACE_MS) },
    });
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  it('whose key was flipped to a key without a manifest rolls nothing back; the committed document it names stays whole', async () => {
    const key = 'walc/committed';
    const text = docText(7, 30_000);
    expect((await cluster.write(key, text, '&strategy=field_hybrid')).status).toBe(200);
    const committed = await stat(cluster, key);
    // The committed write's own intent, with its key flipped (a -> q): as the previous release stored it (plain
    // JSON; verified by its structure: the record must name the key it is stored under) and sealed (checksum).
    const flipped: WalRecord = {
      type: 'intent',
      key: 'walc/qommitted',
      writeId: committed.write_id,
      op: 'write',
      creates: [...committed.hot, ...committed.cold].map((r) => ({ part: r.part ?? 'hot-0', node: r.node, blob: r.blob })),
      reuses: [],
      atMs: clock.nowMs(),
    };
    storeRawWalEntry(cluster, key, JSON.stringify(flipped));
    storeRawWalEntry(cluster, key, sealWalRecord({ ...flipped, key }).replace('"key":"walc/committed"', '"key":"walc/qommitted"'));
    // The control: a genuine unfinished write, whose blob the resolver must roll back once absence is vouched for.
    const orphan = await putOrphan(cluster, 'node-3', 'walc/unfinished');
    await cluster.wal.append({
      type: 'intent',
      key: 'walc/unfinished',
      writeId: orphan.split('.')[0]!,
      op: 'write',
      creates: [{ part: 'hot-0', node: 'node-3', blob: orphan }],
      reuses: [],
      atMs: clock.nowMs(),
    });

    clock.advance(INTENT_TIMEOUT_MS + 1);
    await vi.waitFor(
      async () => {
        await cluster.healer.runOnce();
        expect((await fullInventory(cluster)).has(`node-3/${orphan}`), 'the valid intent was rolled back').toBe(false);
      },
      { timeout: CONDITION_TIMEOUT_MS, interval: 50 },
    );

    const stats = cluster.healer.intentStats;
    expect(stats.corruptEntries).toBe(2);
    expect(stats.lastCorruptEntry?.why).toMatch(/checksum/);
    const inventory = await fullInventory(cluster);
    for (const name of refNames(committed)) expect(inventory.has(name), `${name} of the committed document`).toBe(true);
    expect(await (await cluster.read(key)).text()).toBe(text);
  });
});
