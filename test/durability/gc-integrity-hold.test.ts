/**
 * Failure: the embedded metadata file fails SQLite's integrity check (a damaged page, which REINDEX cannot
 * repair, written behind the store's back as a bad sector would). Garbage collection trusts no
 * lookup then: the blob of a write that never committed (no manifest) and a stale blob of a live key both stay,
 * and the healer says why (its gcHold, GET /healer gc_hold, the metrics). Once the damage is gone and a full
 * check has passed, after the blobs were written, the next pass collects both.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchHealer } from '../../internal/metrics/healer-metrics.js';
import { watchMetadataIntegrity } from '../../internal/metrics/integrity-metrics.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { parsePrometheusText, sumOf } from '../helpers/prometheus-text.js';
import { docText, fullInventory, json, putOrphan } from './durability-helpers.js';

const GRACE_MS = 60_000;

function withMetadataFile(cluster: TestCluster, change: (db: Database.Database) => void): void {
  const db = new Database(path.join(cluster.dataDir, 'metadata', 'strata.db'));
  try {
    change(db);
  } finally {
    db.close();
  }
}

/**
 * Damages the metadata file the way a bad sector would, where no request reads: a table of its own, whose root
 * page gets an invalid page type (integrity_check reports it; REINDEX cannot rebuild it). `repair` writes the
 * byte back and drops the table (a commit, which also makes every connection drop its cached pages).
 */
function damageSpareTable(cluster: TestCluster): { repair(): void } {
  const file = path.join(cluster.dataDir, 'metadata', 'strata.db');
  let offset = 0;
  withMetadataFile(cluster, (db) => {
    db.exec("CREATE TABLE spare_for_damage (x TEXT); INSERT INTO spare_for_damage VALUES ('x')");
    // Everything into the main file, so that the page written below is the one every reader sees.
    const [checkpoint] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    expect(checkpoint?.busy).toBe(0);
    const root = db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'spare_for_damage'").pluck().get() as number;
    offset = (root - 1) * (db.pragma('page_size', { simple: true }) as number);
  });
  const fd = openSync(file, 'r+');
  const original = Buffer.alloc(1);
  try {
    readSync(fd, original, 0, 1, offset);
    expect(original[0]).toBe(0x0d); // a table leaf page
    writeSync(fd, Buffer.from([0x00]), 0, 1, offset);
  } finally {
    closeSync(fd);
  }
  return {
    repair() {
      const restore = openSync(file, 'r+');
      try {
        writeSync(restore, original, 0, 1, offset);
      } finally {
        closeSync(restore);
      }
      withMetadataFile(cluster, (db) => db.exec('DROP TABLE spare_for_damage'));
    },
  };
}

/** The healer's and the metadata store's metrics, registered as the wiring registers them. */
function metricsOf(cluster: TestCluster, clock: AdvancingClock): (name: string) => Promise<number> {
  const registry = new Registry();
  watchHealer(registry, cluster.healer, clock);
  watchMetadataIntegrity(registry, cluster.metadata, clock);
  return async (name) => sumOf(parsePrometheusText(await registry.metrics()), name);
}

describe('garbage collection while the metadata file fails its integrity check', () => {
  let cluster: TestCluster;
  const clock = new AdvancingClock();
  beforeAll(async () => {
    cluster = await startTestCluster({
      clock,
      env: { STRATA_GC_GRACE_MS: String(GRACE_MS), STRATA_INTENT_TIMEOUT_MS: String(GRACE_MS / 2), STRATA_TOMBSTONE_GRACE_MS: String(GRACE_MS) },
    });
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  it('deletes nothing and says why while the check fails; collects both blobs once a check passes after them', async () => {
    const metric = metricsOf(cluster, clock);
    expect((await cluster.write('gci/live', docText(3, 20_000), '&strategy=field_hybrid')).status).toBe(200);
    const never = await putOrphan(cluster, 'node-3', 'gci/never-committed');
    const stale = await putOrphan(cluster, 'node-2', 'gci/live');
    const damage = damageSpareTable(cluster);
    await cluster.metadata.checkIntegrity();
    expect(cluster.metadata.integrity().checks?.lastFailure).toMatch(/malformed|page|tree/i);

    clock.advance(GRACE_MS + 1);
    const held = await cluster.healer.runOnce({ forceAudit: true });
    let inventory = await fullInventory(cluster);
    expect(inventory.has(`node-3/${never}`), 'the blob of a write without manifest').toBe(true);
    expect(inventory.has(`node-2/${stale}`), 'a stale blob of a live key').toBe(true);
    expect(held.garbageDeleted).toBe(0);
    expect(held.garbageHeld).toBeGreaterThanOrEqual(2);
    expect(cluster.healer.gcHold?.reason).toMatch(/integrity check of the metadata store failed/);
    const healerView = await json(await cluster.fetch('/healer'));
    expect(healerView.gc_hold).toMatch(/integrity check .* failed/);
    expect(await metric('strata_healer_garbage_held_blobs')).toBeGreaterThanOrEqual(2);
    expect(await metric('strata_metadata_gc_hold')).toBe(1);
    expect(await metric('strata_metadata_integrity_check_ok')).toBe(0);

    damage.repair();
    await cluster.metadata.checkIntegrity();
    expect(cluster.metadata.integrity().checks?.lastFailure).toBeNull();
    expect(await metric('strata_metadata_integrity_check_ok')).toBe(1);

    const collected = await cluster.healer.runOnce({ forceAudit: true });
    inventory = await fullInventory(cluster);
    expect(inventory.has(`node-3/${never}`)).toBe(false);
    expect(inventory.has(`node-2/${stale}`)).toBe(false);
    expect(collected.garbageDeleted).toBeGreaterThanOrEqual(2);
    expect(cluster.healer.gcHold).toBeNull();
    expect(await metric('strata_metadata_gc_hold')).toBe(0);
  });
});
