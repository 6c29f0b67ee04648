/**
 * Failures of cold parts in their new forms (internal/coldpart): a small cold part kept as three copies beside
 * the replicas is repaired from a sibling copy when one is lost or rots, its blobs are garbage collected like any
 * other, and a compressed cold part whose stored bytes would decompress past the recorded size (a hostile or
 * corrupt blob that still matches its checksum) is refused as corrupt instead of taking the gateway down.
 */
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checksumOf } from '../../internal/blobio/checksum.js';
import { headerFor } from '../../internal/manifest/blob-meta.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { blobsOfKey, flipPayloadByte, fullInventory, json, refNames, stat, storeOf } from './durability-helpers.js';

// The GC grace is also every write's commit deadline: long, so that no setup write reaches it however slow the
// machine; the test moves the cluster's clock past it when the copies should be collected.
const GRACE_MS = 60_000;

describe('cold parts kept with the replicas, and compressed cold parts', () => {
  let cluster: TestCluster;
  const clock = new AdvancingClock();
  beforeAll(async () => {
    cluster = await startTestCluster({ clock, env: { STRATA_INTENT_TIMEOUT_MS: String(GRACE_MS), STRATA_GC_GRACE_MS: String(GRACE_MS) } });
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  async function write(key: string, text: string, query: string): Promise<void> {
    const res = await cluster.write(key, text, query);
    expect(res.status, JSON.stringify(await json(res.clone()))).toBe(200);
  }

  it('repairs a lost and a rotten cold copy from the surviving one, and reads back exactly meanwhile', async () => {
    const key = 'copies/repair';
    const text = '{"like_count":4,"name":"Ada","bio":"a small cold part","n":12345678901234567890}';
    await write(key, text, '&strategy=field_hybrid');
    const before = await stat(cluster, key);
    expect(before.cold).toHaveLength(3);
    const [lost, rotten] = before.cold;
    await storeOf(cluster, lost!.node).delete(lost!.blob);
    await flipPayloadByte(cluster, rotten!.node, rotten!.blob);
    expect(await (await cluster.read(key)).text()).toBe(text);

    await cluster.healer.runOnce({ forceAudit: true });
    const after = await stat(cluster, key);
    expect(after.dirty).toBe(false);
    expect(after.cold.every((c) => c.state === 'ok')).toBe(true);
    expect(after.cold.map((c) => c.blob)).not.toEqual(before.cold.map((c) => c.blob));
    // Each repaired copy is on a node and holds the same bytes as the survivor.
    const inventory = await fullInventory(cluster);
    const checksums = new Set(after.cold.map((c) => inventory.get(`${c.node}/${c.blob}`)?.checksum));
    expect(checksums.size).toBe(1);
    expect(checksums.has(undefined)).toBe(false);
    expect(await (await cluster.read(key)).text()).toBe(text);
  });

  it('collects cold copies nothing references once they are older than the grace period, and keeps referenced ones', async () => {
    const key = 'copies/gc';
    await write(key, '{"like_count":1,"body":"first"}', '&strategy=field_hybrid');
    const first = await stat(cluster, key);
    // An orphan copy, as a gateway that crashed after its blob writes would leave (no intent outcome, no manifest).
    const manifest = (await cluster.metadata.get(key))!.manifest;
    const orphanRef = { ...manifest.cold[0]!, writeId: '01ARZ3NDEKTSV4RRFFQ69G5FAV', blob: '01ARZ3NDEKTSV4RRFFQ69G5FAV.cold-0' };
    await storeOf(cluster, orphanRef.node).put(headerFor(manifest, orphanRef), Buffer.from('{"body":"orphan"}'));
    await write(key, '{"like_count":1,"body":"second"}', '');
    await cluster.gateway.writes.drain();
    const second = await stat(cluster, key);
    expect(second.cold.map((c) => c.blob)).not.toEqual(first.cold.map((c) => c.blob));

    clock.advance(GRACE_MS + 1);
    await cluster.healer.runOnce({ forceAudit: true });
    const left = await blobsOfKey(cluster, key);
    expect([...left].sort()).toEqual(refNames(second).sort());
    expect(await (await cluster.read(key)).text()).toBe('{"like_count":1,"body":"second"}');
  });

  it('answers BLOB_CORRUPT for a compressed cold part that would decompress past its recorded size, and keeps serving', async () => {
    const key = 'copies/bomb';
    await write(key, `{"like_count":1,"body":"${'x'.repeat(5000)}"}`, '&strategy=field_hybrid');
    const stored = (await cluster.metadata.get(key))!;
    const m = stored.manifest;
    expect(m.cold_layout).toMatchObject({ placement: 'with_replicas', codec: 'brotli' });
    // Replace every copy by a small stream that expands to 64 MiB, with checksums that match it: only the bound
    // on decompression stands between it and the gateway's memory.
    const bomb = zlib.brotliCompressSync(Buffer.alloc(64 * 1024 * 1024, 0x20), { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } });
    const next = structuredClone(m);
    next.cold_layout = { ...m.cold_layout!, dataBytes: bomb.length, shardBytes: bomb.length };
    for (const ref of next.cold) {
      ref.blob = `${ref.blob}.bomb`;
      ref.size = bomb.length;
      ref.checksum = checksumOf(bomb);
      await storeOf(cluster, ref.node).put(headerFor(next, ref), bomb);
    }
    const committed = await cluster.metadata.commit({ key, expectedModRevision: stored.modRevision, writeId: m.writeId, manifest: next, assignVersion: false });
    expect(committed.ok).toBe(true);

    const res = await cluster.read(key);
    expect(res.status).not.toBe(200);
    expect(res.status).toBeLessThan(500);
    expect((await json(res)).error.code).toBe('BLOB_CORRUPT');
    // A hot projection does not touch the cold part; the gateway keeps serving other keys.
    expect(await (await cluster.read(key, '?fields=like_count')).text()).toBe('{"like_count":1}');
    await write('copies/after-bomb', '{"a":1}', '');
    expect(await (await cluster.read('copies/after-bomb')).text()).toBe('{"a":1}');
  });
});
