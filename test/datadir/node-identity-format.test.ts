/**
 * A node directory says it may hold format-3 volumes before it does: the first format-2 blob raises
 * node-identity.json to format 2 (which the release before compact formats refuses, untouched, instead of cutting
 * the "damaged" tail off a format-3 volume), and when that cannot be written, the blob is refused and no format-3
 * volume appears.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blobIdOf, newWriteId } from '../../internal/core/ids.js';
import { IDENTITY_FORMAT_INITIAL, NODE_IDENTITY_FILE, NODE_IDENTITY_FORMAT_COMPACT } from '../../internal/datadir/identity.js';
import { startStorageNode, type StorageNode } from '../../internal/storagenode/server.js';
import { makeTempDir } from '../contracts/blob-fixtures.js';

async function identityFormat(dir: string): Promise<number> {
  return (JSON.parse(await readFile(path.join(dir, NODE_IDENTITY_FILE), 'utf8')) as { formatVersion: number }).formatVersion;
}

async function superblockFormats(dir: string): Promise<number[]> {
  const names = (await readdir(path.join(dir, 'volumes'))).filter((n) => n.endsWith('.vol')).sort();
  return Promise.all(names.map(async (n) => (await readFile(path.join(dir, 'volumes', n))).readUInt16BE(4)));
}

describe('the node identity before format-3 volumes', () => {
  let node: StorageNode | null = null;
  let remove: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await node?.stop();
    await remove?.();
    node = null;
  });

  async function start(): Promise<string> {
    let dir: string;
    ({ dir, remove } = await makeTempDir('node-identity-format'));
    node = await startStorageNode({
      nodeId: 'node-1',
      dataDir: dir,
      host: '127.0.0.1',
      port: 0,
      token: 'identity-format-token',
      identity: { clusterId: null, heldData: false, acceptEmpty: false },
    });
    return dir;
  }

  it('stays at format 1 for format-1 blobs and is raised to format 2 by the first format-2 blob', async () => {
    const dir = await start();
    const writeId = newWriteId();
    await node!.store.put({ id: blobIdOf(writeId, 'hot-0'), key: 'k', writeId, part: 'hot-0', meta: '{}' }, Buffer.from('v1'));
    expect(await identityFormat(dir)).toBe(IDENTITY_FORMAT_INITIAL);
    expect(await superblockFormats(dir)).not.toContain(3);
    await node!.store.put({ id: blobIdOf(writeId, 'hot-1'), key: '', writeId: '', part: '', meta: '', format: 2 }, Buffer.from('v2'));
    expect(await identityFormat(dir)).toBe(NODE_IDENTITY_FORMAT_COMPACT);
    expect(await superblockFormats(dir)).toContain(3);
  });

  it('refuses the format-2 blob, writing no format-3 volume, when the identity cannot be raised', async () => {
    const dir = await start();
    await writeFile(path.join(dir, NODE_IDENTITY_FILE), '{ not json');
    const writeId = newWriteId();
    await expect(
      node!.store.put({ id: blobIdOf(writeId, 'hot-1'), key: '', writeId: '', part: '', meta: '', format: 2 }, Buffer.from('v2')),
    ).rejects.toMatchObject({ code: 'DATA_DIR_UNUSABLE' });
    expect(await superblockFormats(dir)).not.toContain(3);
    expect(await node!.store.stat(blobIdOf(writeId, 'hot-1'))).toBeNull();
  });
});
