/**
 * Failure: a manifest row in a real strata.db fails its checksum (a byte of it changed on disk while Strata was
 * stopped). The healer rebuilds the record online from the nodes' self-describing blobs (docs/decisions.md 20): the
 * document reads back exactly, with a version above the one it had, and nothing is deleted; a client write that
 * replaced the record while the rebuild ran wins; and a damaged tombstone whose key still has blobs on the nodes is
 * never brought back.
 */
import { readFile, writeFile } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReplaceCorruptManifestRequest } from '../../internal/metadata/metadata-store.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { checkpointMetadataFile, metadataDbPath } from '../helpers/metadata-file.js';
import { blobsOfKey, docText, fullInventory, json, stat } from './durability-helpers.js';

const GC_GRACE_MS = 60_000;
const INTENT_TIMEOUT_MS = 30_000;
const ENV = { STRATA_GC_GRACE_MS: String(GC_GRACE_MS), STRATA_INTENT_TIMEOUT_MS: String(INTENT_TIMEOUT_MS) };

/**
 * The healer finds the damaged record in a first round and rebuilds it once the intent timeout has passed since
 * (a write running when it was found is known by then); returns the second round's report.
 */
async function roundsUntilRebuildIsDue(cluster: TestCluster, clock: AdvancingClock) {
  const found = await cluster.healer.runOnce({ forceAudit: true });
  expect(found.manifestsRebuilt).toBe(0);
  clock.advance(INTENT_TIMEOUT_MS + 1);
  return cluster.healer.runOnce({ forceAudit: true });
}

/** Puts a row damaged by damageManifestRow back as it was (the store's file, open by another connection). */
type RestoreRow = (db: Database.Database) => void;

/**
 * Changes `from` into `to` (same length) inside the stored manifest text of `key`, in the file's bytes (after folding
 * the WAL into it), as a flipped byte on disk would: the row's checksum column stays as it was. A binary manifest
 * (schema 6) has no such text: a bit of its row's stored checksum flips instead, the manifest bytes staying intact.
 * Returns how to put the row back as it was.
 */
async function damageManifestRow(dataDir: string, key: string, from: string, to: string): Promise<RestoreRow> {
  expect(Buffer.byteLength(from)).toBe(Buffer.byteLength(to));
  const file = metadataDbPath(dataDir);
  const { pageSize } = checkpointMetadataFile(file);
  const db = new Database(file);
  const binary = db.prepare('SELECT checksum FROM manifests_v2 WHERE key = ?').pluck().get(Buffer.from(key, 'utf8')) as Buffer | undefined;
  const original = db.prepare('SELECT manifest FROM manifests WHERE key = ?').pluck().get(Buffer.from(key, 'utf8')) as string;
  db.close();
  if (binary !== undefined) return damageBinaryRow(file, key, binary);
  const bytes = await readFile(file);
  // Every copy in the file: freed pages may still hold an older copy of the row beside the live one.
  const needle = Buffer.from(`"key":${JSON.stringify(key)}`);
  let changed = 0;
  for (let at = bytes.indexOf(needle); at >= 0; at = bytes.indexOf(needle, at + 1)) {
    const pageEnd = (Math.floor(at / pageSize) + 1) * pageSize;
    const target = bytes.indexOf(Buffer.from(from), at);
    if (target < 0 || target + from.length > pageEnd) continue;
    Buffer.from(to).copy(bytes, target);
    changed++;
  }
  expect(changed, `copies of the manifest row of ${key} damaged`).toBeGreaterThanOrEqual(1);
  await writeFile(file, bytes);
  return (restore) => void restore.prepare('UPDATE manifests SET manifest = ? WHERE key = ?').run(original, Buffer.from(key, 'utf8'));
}

async function damageBinaryRow(file: string, key: string, checksum: Buffer): Promise<RestoreRow> {
  const bytes = await readFile(file);
  let changed = 0;
  for (let at = bytes.indexOf(checksum); at >= 0; at = bytes.indexOf(checksum, at + 1)) {
    bytes[at + 3] = bytes[at + 3]! ^ 0x10;
    changed++;
  }
  expect(changed, `copies of the manifest row of ${key} damaged`).toBeGreaterThanOrEqual(1);
  await writeFile(file, bytes);
  return (restore) => void restore.prepare('UPDATE manifests_v2 SET checksum = ? WHERE key = ?').run(checksum, Buffer.from(key, 'utf8'));
}

async function readBack(cluster: TestCluster, key: string): Promise<{ status: number; text: string }> {
  const res = await cluster.read(key);
  return { status: res.status, text: await res.text() };
}

async function journal(cluster: TestCluster): Promise<{ kind: string; key: string; detail: string }[]> {
  return (await json(await cluster.fetch('/healer'))).recent;
}

describe('a manifest record that fails its checksum', () => {
  let cluster: TestCluster | null = null;
  afterEach(async () => {
    await cluster?.destroy();
    cluster = null;
  });

  it('is rebuilt by the healer from the blobs: the field_hybrid document reads back exactly, with a newer version, and nothing is deleted', async () => {
    const clock = new AdvancingClock();
    const first = await startTestCluster({ clock, env: ENV });
    const text = docText(7, 20_000);
    expect((await first.write('fh:doc', text, '&strategy=field_hybrid')).status).toBe(200);
    expect((await first.write('fh:other', docText(8, 5_000), '&strategy=field_hybrid')).status).toBe(200);
    const before = await stat(first, 'fh:doc');
    expect(before.strategy).toBe('field_hybrid');
    expect(before.hot.length).toBeGreaterThan(0);
    const blobsBefore = await fullInventory(first);
    await first.stop();
    await damageManifestRow(first.dataDir, 'fh:doc', '"field_hybrid"', '"field_hybric"');

    cluster = await startTestCluster({ clock, env: ENV, dataDir: first.dataDir });
    const damaged = await readBack(cluster, 'fh:doc');
    expect(damaged.status).toBe(503);
    expect(JSON.parse(damaged.text).error.code).toBe('METADATA_CORRUPT');

    clock.advance(2 * GC_GRACE_MS);
    const report = await roundsUntilRebuildIsDue(cluster, clock);
    expect(report.manifestsRebuilt).toBe(1);
    const after = await readBack(cluster, 'fh:doc');
    expect(after.status).toBe(200);
    expect(after.text).toBe(text);
    const rebuilt = await stat(cluster, 'fh:doc');
    expect(Number(rebuilt.version)).toBeGreaterThan(Number(before.version));
    expect(rebuilt.write_id).toBe(before.write_id);
    expect(rebuilt.strategy).toBe('field_hybrid');

    // Garbage collection ran in that round and runs again: no blob of either key went.
    await cluster.healer.runOnce({ forceAudit: true });
    const blobsAfter = await fullInventory(cluster);
    for (const name of blobsBefore.keys()) expect(blobsAfter.has(name), `${name} still on its node`).toBe(true);
    expect((await readBack(cluster, 'fh:doc')).text).toBe(text);
    expect(cluster.healer.manifestRebuilds.manifestsRebuilt).toBe(1);
    expect(cluster.healer.manifestsAwaitingRebuild()).toEqual([]);
    expect(cluster.metadata.integrity().recent.filter((s) => s.key === 'fh:doc')).toEqual([]);
    const entries = await journal(cluster);
    expect(entries.some((e) => e.key === 'fh:doc' && e.kind === 'repaired' && /rebuilt from the nodes' blobs/.test(e.detail))).toBe(true);
  }, 180_000);

  it('leaves a record alone that a client write replaced while the rebuild ran: the client write wins', async () => {
    const clock = new AdvancingClock();
    const first = await startTestCluster({ clock, env: ENV });
    expect((await first.write('cw:doc', docText(1, 10_000), '&strategy=field_hybrid')).status).toBe(200);
    await first.stop();
    const restoreRow = await damageManifestRow(first.dataDir, 'cw:doc', '"field_hybrid"', '"field_hybric"');

    cluster = await startTestCluster({ clock, env: ENV, dataDir: first.dataDir });
    const running = cluster;
    expect((await readBack(running, 'cw:doc')).status).toBe(503);
    const newer = docText(2, 12_000);
    let clientVersion: string | null = null;
    // Between the rebuild from the blobs and its replacement: the record is restored (as another process could) and a
    // client writes a newer document over it.
    const replace = running.metadata.replaceCorruptManifest.bind(running.metadata);
    running.metadata.replaceCorruptManifest = async (request: ReplaceCorruptManifestRequest) => {
      if (clientVersion === null) {
        const db = new Database(metadataDbPath(running.dataDir));
        restoreRow(db);
        db.close();
        const res = await running.write('cw:doc', newer, '&strategy=field_hybrid');
        expect(res.status).toBe(200);
        clientVersion = (await json(res)).version;
      }
      return replace(request);
    };

    clock.advance(2 * GC_GRACE_MS);
    const report = await roundsUntilRebuildIsDue(running, clock);
    expect(clientVersion).not.toBeNull();
    expect(report.manifestsRebuilt).toBe(0);
    const after = await readBack(running, 'cw:doc');
    expect(after.status).toBe(200);
    expect(after.text).toBe(newer);
    expect((await stat(running, 'cw:doc')).version).toBe(clientVersion);
    expect(running.healer.manifestsAwaitingRebuild()).toEqual([]);
  }, 180_000);

  it('never brings back a deleted key whose damaged tombstone hides that its blobs are still on the nodes', async () => {
    const clock = new AdvancingClock();
    const first = await startTestCluster({ clock, env: ENV });
    expect((await first.write('del:doc', docText(3, 10_000), '&strategy=field_hybrid')).status).toBe(200);
    const ofKey = await blobsOfKey(first, 'del:doc');
    const blobs = [...(await fullInventory(first))].filter(([name]) => ofKey.has(name)).map(([, b]) => b);
    const payloads = await Promise.all(blobs.map((b) => first.nodes.find((n) => n.id === b.node)!.client.get(b.id)));
    expect((await first.fetch(`/delete/${encodeURIComponent('del:doc')}`, { method: 'DELETE' })).status).toBe(200);
    await first.gateway.writes.drain();
    // The delete released the blobs; put them back, as a release that failed would have left them.
    for (const [i, b] of blobs.entries()) {
      const header = { id: b.id, key: b.key, writeId: b.writeId, part: b.part, meta: b.meta, ...(b.format === 2 ? { format: 2 as const } : {}), ...(b.descriptor ? { descriptor: b.descriptor } : {}) };
      await first.nodes.find((n) => n.id === b.node)!.client.put(header, payloads[i]!);
    }
    const kept = await blobsOfKey(first, 'del:doc');
    expect(kept.size).toBe(blobs.length);
    await first.stop();
    // The tombstone's text no longer parses, so it cannot say it is one; the row's deleted flag and the change history can.
    await damageManifestRow(first.dataDir, 'del:doc', '"deleted":true', '"deleted":trve');

    cluster = await startTestCluster({ clock, env: ENV, dataDir: first.dataDir });
    expect((await readBack(cluster, 'del:doc')).status).toBe(503);
    clock.advance(2 * GC_GRACE_MS);
    expect((await roundsUntilRebuildIsDue(cluster, clock)).manifestsRebuilt).toBe(0);
    expect([503, 404]).toContain((await readBack(cluster, 'del:doc')).status);
    const waiting = cluster.healer.manifestsAwaitingRebuild().find((w) => w.key === 'del:doc');
    expect(waiting?.reason).toMatch(/deleted/);
    const entries = await journal(cluster);
    expect(entries.some((e) => e.key === 'del:doc' && e.kind === 'unrepairable' && /not brought back/.test(e.detail))).toBe(true);
    // Its blobs are kept while its record is damaged (the safe side); nothing else is lost either.
    expect(await blobsOfKey(cluster, 'del:doc')).toEqual(kept);
  }, 180_000);
});
