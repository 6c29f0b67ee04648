import { afterEach, describe, expect, it } from 'vitest';
import type { BlobHeader, BlobInfo, BlobStore, StoreUsage } from '../../internal/blobstore/blob-store.js';
import { FileBlobStore } from '../../internal/blobstore/file-blob-store.js';
import { StrataError } from '../../internal/core/errors.js';
import { LocalNodeClient } from '../../internal/nodeclient/local-node-client.js';
import { expectCode, flipByteOnDisk, header, makeTempDir, payload, sha256 } from '../contracts/blob-fixtures.js';
import { runNodeClientContract } from '../contracts/node-client.contract.js';

for (const copyBuffers of [true, false]) {
  runNodeClientContract(`LocalNodeClient (copyBuffers: ${copyBuffers})`, async (options) => {
    const tmp = await makeTempDir('local-node');
    const store = await FileBlobStore.open({
      dir: tmp.dir,
      ...(options.capacityBytes !== undefined ? { capacityBytes: options.capacityBytes } : {}),
    });
    const client = new LocalNodeClient({ nodeId: 'node-1', store, copyBuffers });
    return {
      client,
      corruptBlob: (id) => flipByteOnDisk(tmp.dir, id),
      makeUnavailable: async () => client.setAvailable(false),
      cleanup: async () => {
        await client.close();
        await store.close();
        await tmp.remove();
      },
    };
  });
}

/** A store that keeps the caller's Buffers and hands out its own: what LocalNodeClient must protect against. */
class SharingMemoryStore implements BlobStore {
  readonly blobs = new Map<string, { info: BlobInfo; data: Buffer }>();
  failWith: unknown = null;
  async put(h: BlobHeader, data: Buffer): Promise<BlobInfo> {
    if (this.failWith !== null) throw this.failWith;
    const info = { ...h, size: data.length, checksum: sha256(data), createdAtMs: 0 };
    this.blobs.set(h.id, { info, data });
    return info;
  }
  async get(id: string): Promise<{ info: BlobInfo; data: Buffer }> {
    const blob = this.blobs.get(id);
    if (blob === undefined) throw new StrataError('BLOB_NOT_FOUND', id);
    return blob;
  }
  async stat(id: string): Promise<BlobInfo | null> {
    return this.blobs.get(id)?.info ?? null;
  }
  async delete(id: string): Promise<boolean> {
    return this.blobs.delete(id);
  }
  async list(): Promise<BlobInfo[]> {
    return [...this.blobs.values()].map((b) => b.info);
  }
  async verify(): Promise<'ok'> {
    return 'ok';
  }
  async usage(): Promise<StoreUsage> {
    return { blobs: this.blobs.size, bytesUsed: 0, bytesFree: 0 };
  }
  async close(): Promise<void> {}
}

describe('LocalNodeClient', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('fails every call with NODE_UNAVAILABLE while set unavailable, and works again once available', async () => {
    const tmp = await makeTempDir('local-node');
    const store = await FileBlobStore.open({ dir: tmp.dir });
    cleanups.push(async () => {
      await store.close();
      await tmp.remove();
    });
    const client = new LocalNodeClient({ nodeId: 'node-3', store });
    await client.put(header('A1.hot-0'), payload(10));
    client.setAvailable(false);
    expect(client.available).toBe(false);
    const calls: Array<() => Promise<unknown>> = [
      () => client.put(header('A1.hot-1'), payload(10)),
      () => client.get('A1.hot-0'),
      () => client.stat('A1.hot-0'),
      () => client.delete('A1.hot-0'),
      () => client.list(null, 10),
      () => client.verify('A1.hot-0'),
      () => client.usage(),
    ];
    for (const call of calls) {
      const err = await expectCode(call(), 'NODE_UNAVAILABLE');
      expect(err.message).toContain('node-3');
    }
    expect(await client.ping()).toBe(false);
    expect((await store.list(null, 10)).map((b) => b.id)).toEqual(['A1.hot-0']);
    client.setAvailable(true);
    expect(await client.ping()).toBe(true);
    expect((await client.get('A1.hot-0')).equals(payload(10))).toBe(true);
  });

  it('never lets the caller and a store that shares Buffers change each other\'s bytes', async () => {
    const store = new SharingMemoryStore();
    const client = new LocalNodeClient({ nodeId: 'node-4', store });
    const input = payload(32);
    await client.put(header('B1.hot-0'), input);
    input.fill(0);
    const out = await client.get('B1.hot-0');
    out.fill(1);
    expect(store.blobs.get('B1.hot-0')?.data.equals(payload(32))).toBe(true);
    expect((await client.get('B1.hot-0')).equals(payload(32))).toBe(true);
  });

  it('reports a store failure that is not a StrataError as NODE_UNAVAILABLE, as HTTP would', async () => {
    const store = new SharingMemoryStore();
    const client = new LocalNodeClient({ nodeId: 'node-5', store });
    store.failWith = Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    await expectCode(client.put(header('E1.hot-0'), payload(1)), 'NODE_UNAVAILABLE');
    store.failWith = new StrataError('INTERNAL', 'bug');
    await expectCode(client.put(header('E1.hot-0'), payload(1)), 'NODE_UNAVAILABLE');
    store.failWith = new StrataError('DISK_FULL', 'full');
    await expectCode(client.put(header('E1.hot-0'), payload(1)), 'DISK_FULL');
  });
});
