/**
 * Guarantee: acknowledged writes survive the crash and restart of every process; versions keep increasing
 * across restarts and never repeat; a deleted key stays deleted; a write a crashed gateway left unfinished is
 * still resolved after the restart, from the durable WAL (architecture.md, "Identities", "Guarantees").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { STRATEGIES, blobsOfWrite, docText, json, recordAborts, refNames, fullInventory, stat } from './durability-helpers.js';

// Every cluster here runs on one AdvancingClock (time goes on across the restarts, as it does for real): the test
// moves it past the intent timeout when the restarted healer should settle the crashed write. Both periods are
// long, so that no write of the setup reaches its commit deadline (the GC grace), however slow the machine.
const INTENT_TIMEOUT_MS = 30_000;
const ENV = { STRATA_INTENT_TIMEOUT_MS: String(INTENT_TIMEOUT_MS), STRATA_GC_GRACE_MS: '60000' };
const clock = new AdvancingClock();

describe('whole-cluster restart on the same data directory', () => {
  let dataDir: string;
  let cluster: TestCluster | null = null;
  const docs = new Map<string, { text: string; version: string }>();
  let maxVersion = 0n;
  let crashedWriteId: string | null = null;
  const deletedKey = 'restart/deleted';
  let aborted = new Set<string>();

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-restart-'));
    let crash = false;
    const first = await startTestCluster({
      dataDir,
      clock,
      env: ENV,
      hooks: {
        beforeCommit: async (writeId) => {
          if (!crash) return;
          crashedWriteId = writeId;
          throw new Error('simulated gateway crash before the commit');
        },
      },
    });
    for (const strategy of STRATEGIES) {
      for (const size of [400, 300 * 1024]) {
        const key = `restart/${strategy}/${size}`;
        let text = docText(size % 97, size);
        let body = await json(await first.write(key, text, `&strategy=${strategy}`));
        // A second version: pure hot for field_hybrid (reused shards must survive the restart too).
        text = docText(size % 97, size, { like_count: 5 });
        body = await json(await first.write(key, text));
        expect(body.status).toBe('ok');
        docs.set(key, { text, version: body.version });
      }
    }
    expect((await first.write(deletedKey, docText(3, 10_000))).status).toBe(200);
    const del = await json(await first.fetch(`/delete/${encodeURIComponent(deletedKey)}`, { method: 'DELETE' }));
    for (const v of [...[...docs.values()].map((d) => d.version), del.version]) if (BigInt(v) > maxVersion) maxVersion = BigInt(v);
    // A write the gateway never finished: its blobs are on the nodes, its intent in the WAL, no outcome.
    crash = true;
    expect((await first.write('restart/unfinished', docText(4, 50_000))).status).toBeGreaterThanOrEqual(500);
    crash = false;
    await first.stop();
  });

  afterAll(async () => {
    await cluster?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('every document reads back with the same version and bytes after the restart', async () => {
    cluster = await startTestCluster({ dataDir, clock, env: ENV, transport: 'http' });
    aborted = recordAborts(cluster);
    for (const [key, doc] of docs) {
      const read = await cluster.read(key);
      expect(read.status, key).toBe(200);
      expect(read.headers.get('x-strata-version'), key).toBe(doc.version);
      expect(await read.text() === doc.text, `${key} bytes`).toBe(true);
    }
  });

  it('a deleted key stays deleted after the restart and after the healer audits', async () => {
    expect((await cluster!.read(deletedKey)).status).toBe(404);
    await cluster!.healer.runOnce({ forceAudit: true });
    expect((await cluster!.read(deletedKey)).status).toBe(404);
    expect((await cluster!.fetch(`/stat/${encodeURIComponent(deletedKey)}`)).status).toBe(404);
  });

  it('the write a crashed gateway left unfinished is rolled back by the restarted healer', async () => {
    expect(crashedWriteId).not.toBeNull();
    expect((await cluster!.read('restart/unfinished')).status).toBe(404);
    clock.advance(INTENT_TIMEOUT_MS + 1);
    await cluster!.healer.runOnce();
    // Whichever round resolved it (the audit above may have), the abort record was written after the restart.
    expect(aborted.has(crashedWriteId!)).toBe(true);
    expect(await blobsOfWrite(cluster!, crashedWriteId!)).toEqual([]);
  });

  it('versions keep increasing after the restart', async () => {
    const key = [...docs.keys()][0]!;
    const res = await json(await cluster!.write(key, docText(9, 1_000)));
    expect(BigInt(res.version)).toBeGreaterThan(maxVersion);
    const recreated = await json(await cluster!.write(deletedKey, docText(10, 1_000)));
    expect(BigInt(recreated.version)).toBeGreaterThan(BigInt(res.version));
    docs.set(key, { text: docText(9, 1_000), version: res.version });
    const del = await json(await cluster!.fetch(`/delete/${encodeURIComponent(deletedKey)}`, { method: 'DELETE' }));
    expect(BigInt(del.version)).toBeGreaterThan(BigInt(recreated.version));
  });

  it('a second restart keeps all of it, and every referenced blob is still stored', async () => {
    await cluster!.stop();
    cluster = await startTestCluster({ dataDir, clock, env: ENV });
    expect((await cluster.read(deletedKey)).status).toBe(404);
    const inv = await fullInventory(cluster);
    for (const [key, doc] of docs) {
      const read = await cluster.read(key);
      expect(read.headers.get('x-strata-version'), key).toBe(doc.version);
      expect(await read.text() === doc.text, `${key} bytes`).toBe(true);
      for (const name of refNames(await stat(cluster, key))) expect(inv.has(name), name).toBe(true);
    }
  });
});
