/**
 * The NodeClient contract (internal/nodeclient/node-client.ts): every implementation runs this suite unchanged,
 * against a node backed by a real store, so that callers see the same results and error codes whichever client
 * the wiring picks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LIMITS } from '../../internal/core/limits.js';
import type { NodeClient } from '../../internal/nodeclient/node-client.js';
import { INVALID_IDS, expectCode, header, payload, sha256 } from './blob-fixtures.js';

export interface NodeClientFixture {
  client: NodeClient;
  /** Damages the stored bytes of blob `id` on the node's disk. */
  corruptBlob(id: string): Promise<void>;
  /** Takes the node away (stops its server, marks it unavailable): calls must fail with NODE_UNAVAILABLE. */
  makeUnavailable(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface NodeClientFixtureOptions {
  /** Simulates a node whose disk holds this many bytes. */
  capacityBytes?: number;
}

export function runNodeClientContract(
  name: string,
  factory: (options: NodeClientFixtureOptions) => Promise<NodeClientFixture>,
): void {
  describe(`NodeClient contract: ${name}`, () => {
    const fixtures: NodeClientFixture[] = [];
    const make = async (options: NodeClientFixtureOptions = {}): Promise<NodeClientFixture> => {
      const fixture = await factory(options);
      fixtures.push(fixture);
      return fixture;
    };
    afterEach(async () => {
      for (const fixture of fixtures.splice(0)) await fixture.cleanup();
    });

    it('puts a blob and gets the same bytes back, with its info from stat', async () => {
      const { client } = await make();
      const data = payload(200_000);
      const info = await client.put(header('N1.hot-0'), data);
      expect(info).toMatchObject({ id: 'N1.hot-0', writeId: 'N1', part: 'hot-0', size: 200_000, checksum: sha256(data) });
      expect((await client.get('N1.hot-0')).equals(data)).toBe(true);
      expect(await client.stat('N1.hot-0')).toEqual(info);
      expect(await client.stat('N1.hot-1')).toBeNull();
    });

    it('round-trips an empty payload and keys and meta with unicode, "%", "/", quotes and newlines', async () => {
      const { client } = await make();
      const h = header('N2.shard-5', { key: 'a/b%2F c/"é"/\u{1F600}\n', meta: '{"geometry":{"k":4,"m":2},"s":"%"}' });
      await client.put(h, Buffer.alloc(0));
      expect((await client.get('N2.shard-5')).length).toBe(0);
      expect(await client.stat('N2.shard-5')).toMatchObject({ key: h.key, meta: h.meta, size: 0 });
    });

    it('carries the largest key and meta, even in characters that need escaping', async () => {
      const { client } = await make();
      const h = header('N2.shard-4', { key: '/'.repeat(LIMITS.keyBytesMax), meta: '"'.repeat(LIMITS.blobMetaBytesMax) });
      await client.put(h, payload(10));
      expect(await client.stat('N2.shard-4')).toMatchObject({ key: h.key, meta: h.meta });
    });

    it('accepts an identical retry and refuses different bytes with BLOB_EXISTS', async () => {
      const { client } = await make();
      const first = await client.put(header('N3.hot-0'), payload(100, 1));
      expect(await client.put(header('N3.hot-0'), payload(100, 1))).toEqual(first);
      await expectCode(client.put(header('N3.hot-0'), payload(100, 2)), 'BLOB_EXISTS');
    });

    it('answers BLOB_NOT_FOUND for an absent blob and deletes exactly once', async () => {
      const { client } = await make();
      await expectCode(client.get('N4.hot-0'), 'BLOB_NOT_FOUND');
      await client.put(header('N4.hot-0'), payload(10));
      expect(await client.delete('N4.hot-0')).toBe(true);
      expect(await client.delete('N4.hot-0')).toBe(false);
      await expectCode(client.get('N4.hot-0'), 'BLOB_NOT_FOUND');
    });

    it('lists the inventory in id order, page by page', async () => {
      const { client } = await make();
      const ids = Array.from({ length: 15 }, (_, i) => `N5x${String(14 - i).padStart(2, '0')}.hot-0`);
      for (const id of ids) await client.put(header(id), payload(10));
      const seen: string[] = [];
      let after: string | null = null;
      for (let page = await client.list(after, 4); page.length > 0; page = await client.list(after, 4)) {
        seen.push(...page.map((b) => b.id));
        after = page[page.length - 1]?.id ?? null;
      }
      expect(seen).toEqual([...ids].sort());
      const [info] = await client.list('N5x03.hot-0', 1);
      expect(info).toEqual(await client.stat('N5x04.hot-0'));
    });

    it('refuses a list limit outside [1, inventoryPageMax] with INVALID_LIMIT', async () => {
      const { client } = await make();
      await expectCode(client.list(null, 0), 'INVALID_LIMIT');
      await expectCode(client.list(null, LIMITS.inventoryPageMax + 1), 'INVALID_LIMIT');
    });

    it('reports corrupt stored bytes: get BLOB_CORRUPT, verify corrupt, listed corrupt', async () => {
      const fixture = await make();
      const { client } = fixture;
      await client.put(header('N6.hot-0'), payload(5000));
      expect(await client.verify('N6.hot-0')).toBe('ok');
      expect(await client.verify('N6.hot-1')).toBe('missing');
      await fixture.corruptBlob('N6.hot-0');
      await expectCode(client.get('N6.hot-0'), 'BLOB_CORRUPT');
      expect(await client.verify('N6.hot-0')).toBe('corrupt');
      expect((await client.list(null, 10))[0]).toMatchObject({ id: 'N6.hot-0', corrupt: true });
    });

    it('reports usage', async () => {
      const { client } = await make();
      await client.put(header('N7.hot-0'), payload(1000));
      const usage = await client.usage();
      expect(usage.blobs).toBe(1);
      expect(usage.bytesUsed).toBeGreaterThanOrEqual(1000);
      expect(usage.bytesFree).toBeGreaterThan(0);
    });

    it('refuses a payload over blobBytesMax and meta over blobMetaBytesMax with BLOB_TOO_LARGE', async () => {
      const { client } = await make();
      await expectCode(client.put(header('N8.hot-0'), Buffer.alloc(LIMITS.blobBytesMax + 1)), 'BLOB_TOO_LARGE');
      const meta = 'm'.repeat(LIMITS.blobMetaBytesMax + 1);
      await expectCode(client.put(header('N8.hot-1', { meta }), payload(10)), 'BLOB_TOO_LARGE');
      expect(await client.list(null, 10)).toEqual([]);
    });

    it('refuses invalid ids with INVALID_REQUEST', async () => {
      const { client } = await make();
      for (const id of INVALID_IDS) {
        await expectCode(client.put(header(id), payload(10)), 'INVALID_REQUEST');
        await expectCode(client.get(id), 'INVALID_REQUEST');
        await expectCode(client.stat(id), 'INVALID_REQUEST');
        await expectCode(client.delete(id), 'INVALID_REQUEST');
        await expectCode(client.verify(id), 'INVALID_REQUEST');
      }
    });

    it('answers DISK_FULL when the node has no room left', async () => {
      const { client } = await make({ capacityBytes: 5000 });
      await client.put(header('N9.hot-0'), payload(3000, 1));
      await expectCode(client.put(header('N9.hot-1'), payload(3000, 2)), 'DISK_FULL');
    });

    it('hands out Buffers that the caller may change', async () => {
      const { client } = await make();
      await client.put(header('N10.hot-0'), payload(100));
      (await client.get('N10.hot-0')).fill(0);
      expect((await client.get('N10.hot-0')).equals(payload(100))).toBe(true);
    });

    it('pings true while up; a node that is down answers NODE_UNAVAILABLE at once and pings false', async () => {
      const fixture = await make();
      const { client } = fixture;
      await client.put(header('N11.hot-0'), payload(10));
      expect(await client.ping()).toBe(true);
      await fixture.makeUnavailable();
      // "At once": the calls fail on the node being down, not at a deadline (a client waiting for its deadline
      // would say "did not answer ... within"); no assertion depends on how fast the machine is.
      const calls = [() => client.get('N11.hot-0'), () => client.put(header('N11.hot-1'), payload(10)), () => client.list(null, 1), () => client.usage()];
      for (const call of calls) {
        const err = await expectCode(call(), 'NODE_UNAVAILABLE');
        expect(err.message).not.toMatch(/did not answer .* within/);
      }
      expect(await client.ping()).toBe(false);
    });

    it('rejects with the reason of an already aborted signal', async () => {
      const { client } = await make();
      const controller = new AbortController();
      const reason = new Error('caller gave up');
      controller.abort(reason);
      await expect(client.get('N12.hot-0', { signal: controller.signal })).rejects.toBe(reason);
    });

    it('fails calls after close with NODE_UNAVAILABLE', async () => {
      const { client } = await make();
      await client.close();
      await expectCode(client.stat('N13.hot-0'), 'NODE_UNAVAILABLE');
      expect(await client.ping()).toBe(false);
    });
  });
}
