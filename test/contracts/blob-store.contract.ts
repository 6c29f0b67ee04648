/**
 * The BlobStore contract (internal/blobstore/blob-store.ts): every implementation runs this suite unchanged.
 * Behaviour that depends on a medium (files, crashes, capacity) is tested beside each implementation.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../internal/blobstore/blob-store.js';
import { LIMITS } from '../../internal/core/limits.js';
import type { BlobHeader } from '../../internal/blobstore/blob-store.js';
import { INVALID_IDS, expectCode, expectedInfo, header as v1Header, payload, sha256, v2Header } from './blob-fixtures.js';

export interface BlobStoreFixture {
  store: BlobStore;
  dir: string;
  cleanup(): Promise<void>;
}

export interface BlobStoreContractOptions {
  /** 2: every put carries a format-2 header (blob-fixtures.ts v2Header), and the expectations follow it. */
  format?: 2;
}

export function runBlobStoreContract(name: string, makeStore: () => Promise<BlobStoreFixture>, options: BlobStoreContractOptions = {}): void {
  const v2 = options.format === 2;
  const header = (id: string, overrides: Partial<BlobHeader> = {}): BlobHeader => (v2 ? v2Header(id, overrides) : v1Header(id, overrides));
  describe(`BlobStore contract: ${name}${v2 ? ', format-2 headers' : ''}`, () => {
    let fixture: BlobStoreFixture;
    let store: BlobStore;

    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    it('returns the bytes and header that were put, with size and sha256', async () => {
      const data = payload(5000);
      const info = await store.put(header('W1.hot-0'), data);
      expect(info).toMatchObject(
        v2
          ? expectedInfo(header('W1.hot-0'), data)
          : { id: 'W1.hot-0', key: 'key-of-W1.hot-0', writeId: 'W1', part: 'hot-0', meta: '{"v":1}', size: 5000, checksum: sha256(data) },
      );
      expect(typeof info.createdAtMs).toBe('number');
      expect(info.corrupt).toBeUndefined();
      const got = await store.get('W1.hot-0');
      expect(got.data.equals(data)).toBe(true);
      expect(got.info).toEqual(info);
      expect(await store.stat('W1.hot-0')).toEqual(info);
    });

    it('stores an empty payload', async () => {
      await store.put(header('W1.shard-0'), Buffer.alloc(0));
      const got = await store.get('W1.shard-0');
      expect(got.data.length).toBe(0);
      expect(got.info.checksum).toBe(expectedInfo(header('W1.shard-0'), Buffer.alloc(0)).checksum);
    });

    it('keeps keys and meta with unicode, slashes, percent signs and quotes exactly', async () => {
      const h = header('W2.hot-1', { key: 'users/é/%20/"q"/\u{1F600}/..', meta: '{"k":"v\\"x","n":[1,2]}' });
      await store.put(h, payload(10));
      expect(await store.stat('W2.hot-1')).toMatchObject(expectedInfo(h, payload(10)));
      expect((await store.get('W2.hot-1')).info).toMatchObject(expectedInfo(h, payload(10)));
    });

    it('accepts a retried put of identical bytes and header and keeps the first copy', async () => {
      const first = await store.put(header('W3.hot-0'), payload(100));
      const again = await store.put(header('W3.hot-0'), payload(100));
      expect(again).toEqual(first);
      expect((await store.usage()).blobs).toBe(1);
    });

    it('refuses different bytes under an existing id with BLOB_EXISTS and keeps the stored bytes', async () => {
      await store.put(header('W4.hot-0'), payload(100, 1));
      await expectCode(store.put(header('W4.hot-0'), payload(100, 2)), 'BLOB_EXISTS');
      await expectCode(store.put(header('W4.hot-0'), payload(101, 1)), 'BLOB_EXISTS');
      expect((await store.get('W4.hot-0')).data.equals(payload(100, 1))).toBe(true);
    });

    it('refuses the same bytes with a different header with BLOB_EXISTS', async () => {
      await store.put(header('W5.hot-0'), payload(100));
      await expectCode(store.put(header('W5.hot-0', { key: 'other' }), payload(100)), 'BLOB_EXISTS');
      await expectCode(store.put(header('W5.hot-0', { meta: '{}' }), payload(100)), 'BLOB_EXISTS');
    });

    it('lets exactly one of two concurrent puts with different bytes win', async () => {
      const results = await Promise.allSettled([
        store.put(header('W6.hot-0'), payload(3000, 1)),
        store.put(header('W6.hot-0'), payload(3000, 2)),
        store.put(header('W6.hot-0'), payload(3000, 1)),
      ]);
      const winner = (await store.get('W6.hot-0')).data;
      const winnerSeed = winner.equals(payload(3000, 1)) ? 1 : 2;
      const expected = winnerSeed === 1 ? ['fulfilled', 'rejected', 'fulfilled'] : ['rejected', 'fulfilled', 'rejected'];
      expect(results.map((r) => r.status)).toEqual(expected);
    });

    it('reports an absent blob: get BLOB_NOT_FOUND, stat null, verify missing, delete false', async () => {
      await expectCode(store.get('nope.hot-0'), 'BLOB_NOT_FOUND');
      expect(await store.stat('nope.hot-0')).toBeNull();
      expect(await store.verify('nope.hot-0')).toBe('missing');
      expect(await store.delete('nope.hot-0')).toBe(false);
    });

    it('deletes a blob once; it is gone from get, stat, list and usage, and the id can be put again', async () => {
      await store.put(header('W7.hot-0'), payload(10, 1));
      await store.put(header('W7.hot-1'), payload(10, 2));
      expect(await store.delete('W7.hot-0')).toBe(true);
      expect(await store.delete('W7.hot-0')).toBe(false);
      await expectCode(store.get('W7.hot-0'), 'BLOB_NOT_FOUND');
      expect(await store.stat('W7.hot-0')).toBeNull();
      expect((await store.list(null, 10)).map((b) => b.id)).toEqual(['W7.hot-1']);
      expect((await store.usage()).blobs).toBe(1);
      await store.put(header('W7.hot-0'), payload(20, 3));
      expect((await store.get('W7.hot-0')).data.equals(payload(20, 3))).toBe(true);
    });

    it('lists in id order, strictly after the cursor, in pages', async () => {
      const ids = Array.from({ length: 25 }, (_, i) => `W${String((i * 7) % 25).padStart(2, '0')}.hot-0`);
      for (const [i, id] of ids.entries()) await store.put(header(id), payload(1 + i, i));
      const sorted = [...ids].sort();
      const seen: string[] = [];
      let after: string | null = null;
      for (;;) {
        const page = await store.list(after, 10);
        if (page.length === 0) break;
        expect(page.length).toBeLessThanOrEqual(10);
        seen.push(...page.map((b) => b.id));
        after = page[page.length - 1]?.id ?? null;
      }
      expect(seen).toEqual(sorted);
      expect((await store.list('W12.hot-0', 3)).map((b) => b.id)).toEqual(['W13.hot-0', 'W14.hot-0', 'W15.hot-0']);
      expect((await store.list('W12', 1)).map((b) => b.id)).toEqual(['W12.hot-0']);
      expect(await store.list('Z', 10)).toEqual([]);
      const [first] = await store.list(null, 1);
      expect(first).toEqual(await store.stat(sorted[0] as string));
    });

    it('refuses a list limit outside [1, inventoryPageMax] with INVALID_LIMIT', async () => {
      for (const limit of [0, -1, 1.5, LIMITS.inventoryPageMax + 1]) {
        await expectCode(store.list(null, limit), 'INVALID_LIMIT');
      }
      expect(await store.list(null, LIMITS.inventoryPageMax)).toEqual([]);
    });

    it('verifies a good blob as ok', async () => {
      await store.put(header('W8.hot-0'), payload(1000));
      expect(await store.verify('W8.hot-0')).toBe('ok');
    });

    it('counts blobs and bytes in usage, and gives the bytes back on delete', async () => {
      const empty = await store.usage();
      expect(empty.blobs).toBe(0);
      await store.put(header('W9.hot-0'), payload(1000));
      await store.put(header('W9.hot-1'), payload(2000));
      const full = await store.usage();
      expect(full.blobs).toBe(2);
      expect(full.bytesUsed).toBeGreaterThanOrEqual(empty.bytesUsed + 3000);
      expect(full.bytesFree).toBeGreaterThanOrEqual(0);
      if (full.payloadBytes !== undefined) expect(full.payloadBytes).toBe(3000);
      await store.delete('W9.hot-0');
      await store.delete('W9.hot-1');
      expect(await store.usage()).toMatchObject({ blobs: 0, bytesUsed: empty.bytesUsed });
    });

    it('refuses a payload over blobBytesMax and meta over blobMetaBytesMax with BLOB_TOO_LARGE', async () => {
      await expectCode(store.put(header('W10.hot-0'), Buffer.alloc(LIMITS.blobBytesMax + 1)), 'BLOB_TOO_LARGE');
      if (v2) {
        // Format 2 carries no meta: its descriptor has the one-byte length limit instead.
        const descriptor = (n: number): Partial<BlobHeader> => ({ descriptor: { kind: 'whole', bytes: new Uint8Array(n).fill(7) } });
        await expectCode(store.put(header('W10.hot-1', descriptor(256)), payload(10)), 'BLOB_TOO_LARGE');
        expect(await store.list(null, 10)).toEqual([]);
        await store.put(header('W10.hot-2', descriptor(255)), payload(10));
        expect((await store.stat('W10.hot-2'))?.descriptor).toEqual(descriptor(255).descriptor);
        return;
      }
      const meta = 'm'.repeat(LIMITS.blobMetaBytesMax + 1);
      await expectCode(store.put(header('W10.hot-1', { meta }), payload(10)), 'BLOB_TOO_LARGE');
      expect(await store.list(null, 10)).toEqual([]);
      const metaMax = 'm'.repeat(LIMITS.blobMetaBytesMax);
      await store.put(header('W10.hot-2', { meta: metaMax }), payload(10));
      expect((await store.stat('W10.hot-2'))?.meta).toBe(metaMax);
    });

    it('refuses invalid ids (slashes, dot-dot, empty, too long) with INVALID_REQUEST on every call', async () => {
      for (const id of INVALID_IDS) {
        await expectCode(store.put(header(id), payload(10)), 'INVALID_REQUEST');
        await expectCode(store.get(id), 'INVALID_REQUEST');
        await expectCode(store.stat(id), 'INVALID_REQUEST');
        await expectCode(store.delete(id), 'INVALID_REQUEST');
        await expectCode(store.verify(id), 'INVALID_REQUEST');
      }
      expect(await store.list(null, 10)).toEqual([]);
    });

    it('never shares payload Buffers with its caller', async () => {
      const data = payload(64);
      await store.put(header('W11.hot-0'), data);
      data.fill(0);
      const first = await store.get('W11.hot-0');
      expect(first.data.equals(payload(64))).toBe(true);
      first.data.fill(1);
      expect((await store.get('W11.hot-0')).data.equals(payload(64))).toBe(true);
    });

    it('never shares BlobInfo objects with its caller', async () => {
      const info = await store.put(header('W12.hot-0'), payload(8));
      info.key = 'changed';
      info.descriptor?.bytes.fill(0);
      const stat = await store.stat('W12.hot-0');
      expect(stat?.key).toBe(v2 ? '' : 'key-of-W12.hot-0');
      expect(stat?.descriptor).toEqual(header('W12.hot-0').descriptor);
      if (stat) stat.size = 0;
      expect((await store.list(null, 1))[0]?.size).toBe(8);
    });
  });
}
