/**
 * Format-2 blobs through the node's HTTP protocol: the descriptor travels in a header and comes back in every
 * BlobInfo (put, stat, list), the node keeps a 64-bit checksum that the client checks a GET against, and a
 * malformed format or descriptor header is a 400 that stores nothing.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobIdOf, newWriteId } from '../../internal/core/ids.js';
import { HttpNodeClient } from '../../internal/nodeclient/http-node-client.js';
import { startStorageNode, type StorageNode } from '../../internal/storagenode/server.js';
import { makeTempDir } from '../contracts/blob-fixtures.js';

const TOKEN = 'format-2-token';

describe('format-2 blobs over the node protocol', () => {
  let node: StorageNode;
  let client: HttpNodeClient;
  let remove: () => Promise<void>;

  beforeAll(async () => {
    let dir: string;
    ({ dir, remove } = await makeTempDir('node-format-2'));
    node = await startStorageNode({ nodeId: 'node-1', dataDir: dir, host: '127.0.0.1', port: 0, token: TOKEN });
    client = new HttpNodeClient({ nodeId: 'node-1', address: node.address, token: TOKEN, timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await client.close();
    await node.stop();
    await remove();
  });

  it('stores a format-2 blob with its descriptor and reports both in put, stat and list', async () => {
    const writeId = newWriteId();
    const id = blobIdOf(writeId, 'shard-2');
    const data = Buffer.from('a shard payload of a format-2 document.');
    const descriptor = { kind: 'fragment' as const, bytes: Uint8Array.from([1, 2, 3, 250, 0, 9, 8, 7]) };
    const put = await client.put({ id, key: '', writeId, part: 'shard-2', meta: '', format: 2, descriptor }, data);
    const sha = createHash('sha256').update(data).digest('hex');
    expect(put).toMatchObject({ id, key: '', writeId, part: 'shard-2', meta: '', format: 2, size: data.length, checksum: sha.slice(0, 16) });
    expect(put.descriptor).toEqual(descriptor);
    expect(await client.stat(id)).toMatchObject({ format: 2, descriptor, checksum: sha.slice(0, 16) });
    const listed = (await client.list(null, 100)).find((b) => b.id === id);
    expect(listed?.descriptor).toEqual(descriptor);
    expect(await client.get(id)).toEqual(data);
  });

  it('keeps writing format-1 blobs with key and meta for callers that send no format', async () => {
    const writeId = newWriteId();
    const id = blobIdOf(writeId, 'hot-0');
    const data = Buffer.from('{"a":1}');
    const put = await client.put({ id, key: 'k/1', writeId, part: 'hot-0', meta: '{"strategy":"replication","role":"hot"}' }, data);
    expect(put.format).toBeUndefined();
    expect(put.descriptor).toBeUndefined();
    expect(put.checksum).toBe(createHash('sha256').update(data).digest('hex'));
    expect(put.key).toBe('k/1');
  });

  it('refuses a format it does not know and a malformed descriptor with a 400, storing nothing', async () => {
    const writeId = newWriteId();
    const id = blobIdOf(writeId, 'hot-1');
    const send = (extra: Record<string, string>): Promise<Response> =>
      fetch(`${node.address}/v1/blobs/${id}`, {
        method: 'PUT',
        body: Buffer.from('x'),
        duplex: 'half',
        headers: { authorization: `Bearer ${TOKEN}`, 'x-strata-key': '', 'x-strata-write-id': writeId, 'x-strata-part': 'hot-1', ...extra },
      } as RequestInit);
    const cases: Record<string, string>[] = [
      { 'x-strata-format': '3' },
      { 'x-strata-format': '2', 'x-strata-descriptor': 'whole' },
      { 'x-strata-format': '2', 'x-strata-descriptor': 'half:AAAA' },
      { 'x-strata-format': '2', 'x-strata-descriptor': 'whole:not base64!' },
      { 'x-strata-format': '2', 'x-strata-descriptor': `whole:${Buffer.alloc(256).toString('base64url')}` },
    ];
    for (const extra of cases) {
      const res = await send(extra);
      expect(res.status, JSON.stringify(extra)).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_HEADER');
    }
    expect(await client.stat(id)).toBeNull();
  });
});
