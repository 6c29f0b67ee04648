/**
 * The healer's intent resolver commits WAL offsets only while its healer still leads: the WAL does not fence a
 * deposed leader's commit, so a round that ran past its lease (a long pause) must leave the offsets to whoever leads
 * now. Checked on the embedded WAL by reading the group's position back with a fresh consumer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../internal/core/clock.js';
import { IntentResolver } from '../../internal/healer/intent-resolver.js';
import { silentLogger } from '../../internal/log/logger.js';
import { newWriteId } from '../../internal/core/ids.js';
import type { WalRecord } from '../../internal/wal/write-ahead-log.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const GROUP = 'intent-fence-test';
let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startTestCluster();
});

afterAll(async () => {
  await cluster?.destroy();
});

/** Entries a fresh consumer of the group reads: everything after the group's committed position. */
async function unreadByGroup(): Promise<number> {
  const consumer = await cluster.wal.consumer(GROUP);
  try {
    return (await consumer.poll(100, 0)).length;
  } finally {
    await consumer.close();
  }
}

describe('the intent resolver and leadership', () => {
  it('commits no offset in a round whose healer no longer leads, and commits once it leads again', async () => {
    const writeId = newWriteId(systemClock.nowMs());
    const records: WalRecord[] = [
      { type: 'intent', key: 'fence/a', writeId, op: 'write', creates: [], reuses: [], atMs: systemClock.nowMs() },
      { type: 'outcome', key: 'fence/a', writeId, outcome: 'committed', atMs: systemClock.nowMs() },
    ];
    for (const record of records) await cluster.wal.append(record);
    const resolver = new IntentResolver({
      wal: cluster.wal,
      metadata: cluster.metadata,
      pool: cluster.pool,
      clock: systemClock,
      log: silentLogger,
      intentTimeoutMs: 60_000,
      nodeTimeoutMs: 5_000,
      group: GROUP,
    });
    try {
      await resolver.runOnce(async () => false);
      expect(resolver.stats.read).toBe(2);
      expect(resolver.stats.uncommitted).toBe(2);
      expect(await unreadByGroup()).toBe(2);

      await resolver.runOnce(async () => true);
      expect(resolver.stats.uncommitted).toBe(0);
      expect(await unreadByGroup()).toBe(0);
    } finally {
      await resolver.close();
    }
  });
});
