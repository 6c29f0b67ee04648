/**
 * Needle format 2 and format-3 volumes (internal/blobstore/volume/README.md), byte by byte, and the store writing,
 * reading, scanning, recovering, compacting and merging volumes that hold version-1 and version-2 needles side by
 * side. If a layout test fails, either the code or the README is wrong, and written volumes may no longer read.
 */
import { open as openFile, readFile, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobDescriptor, BlobHeader } from '../../internal/blobstore/blob-store.js';
import { crc32c } from '../../internal/blobstore/volume/crc32c.js';
import {
  NEEDLE_V2_FIXED_BYTES,
  decodeNeedleHead,
  encodeNeedleHead,
  encodeNeedleV2Head,
  encodeNeedleV2Tail,
  encodeTombstone,
  needleBytes,
  needleV2Bytes,
  type NeedleV2Put,
} from '../../internal/blobstore/volume/needle.js';
import { SUPERBLOCK_BYTES, decodeSuperblock, encodeSuperblock } from '../../internal/blobstore/volume/volume.js';
import {
  VOLUME_STORE_CHECKPOINT_FILE,
  VolumeBlobStore,
  type VolumeBlobStoreOptions,
} from '../../internal/blobstore/volume/volume-blob-store.js';
import { nodeVolumeFs, type VolumeFs } from '../../internal/blobstore/volume/volume-fs.js';
import { ulidToBytes } from '../../internal/core/derived-ids.js';
import { blobMeta } from '../../internal/manifest/blob-meta.js';
import { expectCode, expectedInfo, header, makeTempDir, payload, sha256, v2Header } from '../contracts/blob-fixtures.js';
import { ManualClock } from '../helpers/manual-clock.js';

const ULID = '01J9Z8Q4W6HN5R7T2XQ3K8M1VA';
const ULID2 = '01J9Z8Q4W6HN5R7T2XQ3K8M1VB';

function v2Put(id: string, data: Buffer, descriptor?: BlobDescriptor): NeedleV2Put {
  return {
    id,
    size: data.length,
    checksum: sha256(data).slice(0, 16),
    dataCrc: crc32c(data),
    createdAtMs: 1_700_000_000_123,
    ...(descriptor !== undefined ? { descriptor } : {}),
  };
}

function v2Needle(put: NeedleV2Put, data: Buffer): Buffer {
  const head = encodeNeedleV2Head(put);
  return Buffer.concat([head, data, encodeNeedleV2Tail(head.length, data.length)]);
}

function flipped(buf: Buffer, bit: number): Buffer {
  const bad = Buffer.from(buf);
  bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
  return bad;
}

/** A 'whole' descriptor of a field_hybrid hot replica with a 14-byte key: kind, key length, key, sizes, coldHash64. */
const HOT_DESCRIPTOR: BlobDescriptor = {
  kind: 'whole',
  bytes: Uint8Array.from([0x25, 14, ...Buffer.from('users/00001234'), 0x90, 0x03, ...Array.from({ length: 8 }, (_, i) => i + 1), 0xe8, 0x07]),
};

describe('needle format 2', () => {
  it('lays out a derived id with no descriptor as README.md documents: 48 bytes of head, no tail', () => {
    const data = payload(16, 3);
    const put = v2Put(`${ULID}.shard-3`, data);
    const head = encodeNeedleV2Head(put);
    expect(head.length).toBe(48);
    expect(head.subarray(0, 4).toString('latin1')).toBe('STR2');
    expect([head[4], head[5], head[6], head[7]]).toEqual([0, 0x23, 0, 0]);
    expect(head.readUInt32BE(8)).toBe(16);
    expect(head.readUInt32BE(12)).toBe(1_700_000_001); // seconds, rounded up
    expect(head.readUInt32BE(16)).toBe(crc32c(data));
    expect(head.subarray(20, 28).toString('hex')).toBe(sha256(data).slice(0, 16));
    expect(head.subarray(28, 44)).toEqual(Buffer.from(ulidToBytes(ULID) as Uint8Array));
    expect(head.readUInt32BE(44)).toBe(crc32c(head.subarray(0, 44)));
    const whole = v2Needle(put, data);
    expect(whole.length).toBe(64);
    expect(decodeNeedleHead(whole)).toEqual({
      state: 'ok',
      headBytes: 48,
      needleBytes: 64,
      head: {
        tombstone: false,
        id: `${ULID}.shard-3`,
        key: '',
        writeId: ULID,
        part: 'shard-3',
        meta: '',
        size: 16,
        checksum: sha256(data).slice(0, 16),
        createdAtMs: 1_700_000_001_000,
        seq: 0,
        targetVolume: 0,
        format: 2,
        dataCrc: crc32c(data),
      },
    });
  });

  it('lays out a whole descriptor after the id, and pads the needle to a multiple of 8', () => {
    const data = payload(100, 4);
    const put = v2Put(`${ULID}.hot-2`, data, HOT_DESCRIPTOR);
    const head = encodeNeedleV2Head(put);
    expect(HOT_DESCRIPTOR.bytes.length).toBe(28);
    expect(head.length).toBe(48 + 28);
    expect([head[4], head[5], head[6], head[7]]).toEqual([1 << 2, 0x12, 28, 0]);
    expect(head.subarray(44, 72)).toEqual(Buffer.from(HOT_DESCRIPTOR.bytes));
    expect(head.readUInt32BE(72)).toBe(crc32c(head.subarray(0, 72)));
    const whole = v2Needle(put, data);
    expect(whole.length).toBe(needleV2Bytes(76, 100));
    expect(whole.length).toBe(176);
    const decoded = decodeNeedleHead(whole);
    expect(decoded).toMatchObject({ state: 'ok', headBytes: 76, head: { id: `${ULID}.hot-2`, part: 'hot-2', descriptor: HOT_DESCRIPTOR } });
    // A scan decodes without the descriptor and the checksum (decoding them is a scan's time, not its need).
    const scanned = decodeNeedleHead(whole, 0, whole.length, false);
    expect(scanned).toMatchObject({ state: 'ok', headBytes: 76, head: { id: `${ULID}.hot-2`, checksum: '' } });
    expect(scanned.state === 'ok' && scanned.head.descriptor).toBe(undefined);
  });

  it('spells out an id that is not derived (healer suffixes, other ids) as text, with a fragment descriptor', () => {
    const data = payload(24, 5);
    const fragment: BlobDescriptor = { kind: 'fragment', bytes: Uint8Array.from({ length: 8 }, (_, i) => 0xa0 + i) };
    for (const id of [`${ULID}.hot-0.r5`, 'W1.hot-0', `${ULID}.hot-10`, `${ULID.toLowerCase()}.hot-0`]) {
      const head = encodeNeedleV2Head(v2Put(id, data, fragment));
      expect(head.length).toBe(NEEDLE_V2_FIXED_BYTES + id.length + 8 + 4);
      expect([head[4], head[5], head[6]]).toEqual([2 | (2 << 2), id.length, 8]);
      expect(head.subarray(28, 28 + id.length).toString('latin1')).toBe(id);
      expect(head.subarray(28 + id.length, 36 + id.length)).toEqual(Buffer.from(fragment.bytes));
      const decoded = decodeNeedleHead(Buffer.concat([head, data]));
      expect(decoded).toMatchObject({ state: 'ok', head: { id, format: 2, descriptor: fragment } });
    }
    const decoded = decodeNeedleHead(v2Needle(v2Put(`${ULID}.hot-0.r5`, data), data));
    expect(decoded).toMatchObject({ state: 'ok', head: { writeId: ULID, part: 'hot-0' } });
  });

  it('refuses a head or a needle with any single flipped bit (padding aside)', () => {
    const data = payload(40, 6);
    for (const put of [v2Put(`${ULID}.shard-1`, data), v2Put(`${ULID}.hot-0`, data, HOT_DESCRIPTOR), v2Put('W1.hot-0.x1', data)]) {
      const whole = v2Needle(put, data);
      const head = encodeNeedleV2Head(put);
      const meaningful = head.length + data.length;
      for (let bit = 0; bit < meaningful * 8; bit++) {
        const bad = flipped(whole, bit);
        const decoded = decodeNeedleHead(bad);
        const intact = decoded.state === 'ok' && crc32c(bad, 0, decoded.headBytes, decoded.headBytes + decoded.head.size) === decoded.head.dataCrc;
        expect(intact, `${put.id} bit ${bit}`).toBe(false);
      }
    }
  });

  it('asks for more bytes at every truncation of a head rather than guessing', () => {
    const data = payload(8, 7);
    for (const put of [v2Put(`${ULID}.shard-1`, data), v2Put('W1.hot-0.x1', data, HOT_DESCRIPTOR)]) {
      const head = encodeNeedleV2Head(put);
      for (let cut = 4; cut < head.length; cut++) {
        const decoded = decodeNeedleHead(head.subarray(0, cut));
        expect(decoded.state, `cut at ${cut}`).toBe('short');
        expect(decoded.state === 'short' && decoded.bytesNeeded > cut).toBe(true);
      }
    }
  });

  it('refuses what an encoder never writes: tombstone flag, unknown part code, kind without length', () => {
    const data = payload(8, 8);
    const head = encodeNeedleV2Head(v2Put(`${ULID}.shard-1`, data));
    const recrc = (buf: Buffer): Buffer => {
      buf.writeUInt32BE(crc32c(buf.subarray(0, buf.length - 4)), buf.length - 4);
      return buf;
    };
    const withByte = (at: number, value: number): Buffer => {
      const bad = Buffer.from(head);
      bad[at] = value;
      return recrc(bad);
    };
    expect(decodeNeedleHead(withByte(4, 1))).toMatchObject({ state: 'invalid', reason: 'unknown flags 1' });
    expect(decodeNeedleHead(withByte(5, 0x26))).toMatchObject({ state: 'invalid', reason: 'unknown part code 38' });
    expect(decodeNeedleHead(withByte(4, 1 << 2))).toMatchObject({ state: 'invalid', reason: 'descriptor kind and length disagree' });
    expect(decodeNeedleHead(withByte(4, 3 << 2))).toMatchObject({ state: 'invalid' });
    expect(decodeNeedleHead(withByte(7, 1))).toMatchObject({ state: 'invalid', reason: 'reserved head byte != 0' });
  });

  it('costs 48 bytes beyond a shard (56 with an 8-byte fragment) where version 1 costs 320, measured', () => {
    const shard = payload(256, 9);
    const shardMeta = blobMeta('ec', 'shard-3', {
      dataBytes: 1000,
      shardBytes: 256,
      coldHash: sha256(Buffer.from('x')),
      codec: 'identity',
      textBytes: 1000,
    } as never);
    const v1Head = encodeNeedleHead({
      tombstone: false,
      id: `${ULID}.shard-3`,
      key: 'users/00001234',
      writeId: ULID,
      part: 'shard-3',
      meta: shardMeta,
      size: shard.length,
      checksum: sha256(shard),
      createdAtMs: 1_700_000_000_000,
      seq: 1,
      targetVolume: 0,
    });
    const v1Shard = needleBytes(v1Head.length, shard.length) - shard.length;
    const bare = v2Needle(v2Put(`${ULID}.shard-3`, shard), shard).length - shard.length;
    const fragment = v2Needle(v2Put(`${ULID}.shard-3`, shard, { kind: 'fragment', bytes: new Uint8Array(8) }), shard).length - shard.length;
    const hot = payload(1024, 10);
    const v1HotHead = encodeNeedleHead({
      tombstone: false,
      id: `${ULID}.hot-0`,
      key: 'users/00001234',
      writeId: ULID,
      part: 'hot-0',
      meta: blobMeta('field_hybrid', 'hot-0', null),
      size: hot.length,
      checksum: sha256(hot),
      createdAtMs: 1_700_000_000_000,
      seq: 1,
      targetVolume: 0,
    });
    const v1Hot = needleBytes(v1HotHead.length, hot.length) - hot.length;
    const v2Hot = v2Needle(v2Put(`${ULID}.hot-0`, hot, HOT_DESCRIPTOR), hot).length - hot.length;
    // The figures in README.md's byte tables.
    const tombstone = encodeTombstone(`${ULID}.shard-3`, 1, 1_700_000_000_000, 1).length;
    expect({ v1Shard, bare, fragment, v1Hot, v2Hot, tombstone }).toEqual({ v1Shard: 320, bare: 48, fragment: 56, v1Hot: 200, v2Hot: 80, tombstone: 120 });
  });
});

describe('superblock format 3', () => {
  it('is version 2 laid out with firstVolume always present, and refuses any flipped bit and format 4', () => {
    const sb = { volume: 7, revision: 1, createdAtSeq: 10, compactedBeforeSeq: 20, pinnedBytes: 0, createdAtMs: 1_700_000_000_000, firstVolume: 7, v2Needles: true };
    const bytes = encodeSuperblock(sb);
    expect(bytes.readUInt16BE(4)).toBe(3);
    expect(bytes.readUInt32BE(48)).toBe(7);
    expect(decodeSuperblock(bytes, 7)).toEqual(sb);
    const merged = { ...sb, firstVolume: 3 };
    expect(decodeSuperblock(encodeSuperblock(merged), 7)).toEqual(merged);
    for (let bit = 0; bit < SUPERBLOCK_BYTES * 8; bit++) expect(typeof decodeSuperblock(flipped(bytes, bit), 7), `bit ${bit}`).toBe('string');
    const format4 = Buffer.from(bytes);
    format4.writeUInt16BE(4, 4);
    format4.writeUInt32BE(crc32c(format4.subarray(0, 60)), 60);
    expect(decodeSuperblock(format4, 7)).toMatch(/volume format 4 is not/);
    // Formats 1 and 2 are unchanged: no v2Needles, version 1 unless merged.
    expect(encodeSuperblock({ ...sb, v2Needles: false }).readUInt16BE(4)).toBe(1);
    expect(encodeSuperblock({ ...merged, v2Needles: false }).readUInt16BE(4)).toBe(2);
  });
});

describe('VolumeBlobStore with format-2 puts', () => {
  let dir: string;
  let remove: () => Promise<void>;
  const opened: VolumeBlobStore[] = [];
  const clock = new ManualClock();
  const openStore = async (options: Partial<VolumeBlobStoreOptions> = {}): Promise<VolumeBlobStore> => {
    const store = await VolumeBlobStore.open({ dir, clock, autoCompact: false, ...options });
    opened.push(store);
    return store;
  };
  const closeAll = async (): Promise<void> => {
    for (const store of opened.splice(0)) await store.close();
  };
  const volumeFormat = async (store: VolumeBlobStore, id: string): Promise<number> => {
    const where = store.locate(id);
    if (where === null) throw new Error(`${id} is not stored`);
    return (await readFile(where.file)).readUInt16BE(4);
  };
  const needleMagic = async (store: VolumeBlobStore, id: string): Promise<string> => {
    const where = store.locate(id);
    if (where === null) throw new Error(`${id} is not stored`);
    return (await readFile(where.file)).subarray(where.offset, where.offset + 4).toString('latin1');
  };

  /** v1 and v2 blobs of every id form, with what a read must return. */
  const mixed: Array<{ h: BlobHeader; data: Buffer }> = [
    { h: header('A1.hot-0'), data: payload(300, 1) },
    { h: v2Header(`${ULID}.shard-0`, { descriptor: { kind: 'fragment', bytes: new Uint8Array(8).fill(1) } }), data: payload(256, 2) },
    { h: { ...v2Header(`${ULID}.hot-1`), descriptor: HOT_DESCRIPTOR }, data: payload(1000, 3) },
    { h: v2Header(`${ULID}.hot-1.r2`), data: payload(1000, 3) },
    { h: { id: `${ULID2}.cold-0`, key: '', writeId: '', part: '', meta: '', format: 2 }, data: payload(77, 4) },
    { h: header('A2.hot-0'), data: payload(10, 5) },
  ];
  const expectAllRead = async (store: VolumeBlobStore, blobs: typeof mixed): Promise<void> => {
    for (const { h, data } of blobs) {
      const got = await store.get(h.id);
      expect(got.data.equals(data), h.id).toBe(true);
      expect(got.info).toMatchObject(expectedInfo(h, data));
      expect(await store.stat(h.id)).toEqual(got.info);
      expect(await store.verify(h.id)).toBe('ok');
    }
    const listed = await store.list(null, 100);
    expect(listed.map((b) => b.id)).toEqual(blobs.map((b) => b.h.id).sort());
    for (const info of listed) expect(info).toEqual(await store.stat(info.id));
  };

  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('vbs-v2'));
  });
  afterEach(async () => {
    await closeAll();
    await remove();
  });

  it('seals a format-1 volume at the first format-2 put and writes format 3 from then on, v1 needles too', async () => {
    const store = await openStore();
    await store.put(header('A0.hot-0'), payload(10));
    expect(await volumeFormat(store, 'A0.hot-0')).toBe(1);
    const info = await store.put(v2Header(`${ULID}.hot-0`), payload(20));
    expect(info).toMatchObject(expectedInfo(v2Header(`${ULID}.hot-0`), payload(20)));
    expect(info.createdAtMs).toBe(Math.ceil(clock.nowMs() / 1000) * 1000);
    expect(store.locate(`${ULID}.hot-0`)?.volume).toBe(2);
    expect(await volumeFormat(store, `${ULID}.hot-0`)).toBe(3);
    expect(await needleMagic(store, `${ULID}.hot-0`)).toBe('STR2');
    await store.put(header('A9.hot-0'), payload(30));
    expect(store.locate('A9.hot-0')?.volume).toBe(2);
    expect(await needleMagic(store, 'A9.hot-0')).toBe('STRN');
    await closeAll();
    // Reopened, the store keeps writing format 3: a later rotation does not go back to format 1.
    const again = await openStore({ volumeBytesMax: 4096 });
    for (let i = 0; i < 8; i++) await again.put(header(`B${i}.hot-0`), payload(1000, i));
    expect(again.locate('B7.hot-0')?.volume).toBeGreaterThan(2);
    expect(await volumeFormat(again, 'B7.hot-0')).toBe(3);
  });

  it('turns an empty active volume into format 3 in place rather than leaving it behind empty', async () => {
    let store = await openStore();
    await store.put(v2Header(`${ULID}.hot-0`), payload(20));
    expect(store.locate(`${ULID}.hot-0`)?.volume).toBe(1);
    expect(store.stats().volumes).toBe(1);
    expect(await volumeFormat(store, `${ULID}.hot-0`)).toBe(3);
    await closeAll();
    store = await openStore();
    expect(store.stats().recovery.checkpoint).toBe('loaded');
    await expectAllRead(store, [{ h: v2Header(`${ULID}.hot-0`), data: payload(20) }]);
  });

  it('after failing to reformat an empty active volume (EIO once its new file is renamed in), appends nothing to the old file', async () => {
    let armed = false;
    let failNextDirSync = false;
    const fs: VolumeFs = {
      ...nodeVolumeFs,
      rename: async (from, to) => {
        await nodeVolumeFs.rename(from, to);
        if (armed && from.endsWith('.vol.new') && to.endsWith('00000001.vol')) failNextDirSync = true;
      },
      fsyncDir: async (d) => {
        if (failNextDirSync) {
          failNextDirSync = false;
          throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        }
        await nodeVolumeFs.fsyncDir(d);
      },
    };
    let store = await openStore({ fs });
    armed = true;
    await expect(store.put(v2Header(`${ULID}.hot-0`), payload(20, 1))).rejects.toMatchObject({ code: 'EIO' });
    await store.put(v2Header(`${ULID}.hot-1`), payload(20, 2));
    await store.put(header('A1.hot-0'), payload(20, 3));
    expect(store.locate(`${ULID}.hot-1`)?.volume).toBe(2);
    const live = [
      { h: v2Header(`${ULID}.hot-1`), data: payload(20, 2) },
      { h: header('A1.hot-0'), data: payload(20, 3) },
    ];
    await expectAllRead(store, live);
    await closeAll();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    store = await openStore();
    await expectAllRead(store, live);
  });

  it('refuses to open a directory holding a volume of a later format (FORMAT_UNSUPPORTED) and changes nothing in it', async () => {
    const store = await openStore();
    await store.put(v2Header(`${ULID}.hot-0`), payload(20));
    const file = store.locate(`${ULID}.hot-0`)?.file as string;
    await closeAll();
    const bytes = await readFile(file);
    bytes.writeUInt16BE(4, 4);
    bytes.writeUInt32BE(crc32c(bytes.subarray(0, 60)), 60);
    // Needles of that later format would look like garbage to this release: the tail it would cut off.
    bytes.write('STR9', SUPERBLOCK_BYTES, 'latin1');
    const handle = await openFile(file, 'r+');
    await handle.write(bytes, 0, bytes.length, 0);
    await handle.close();
    // A temp file that release left: not this release's to delete either.
    const stray = path.join(path.dirname(file), '00000002.vol.new');
    await (await openFile(stray, 'wx')).close();
    const err = await expectCode(openStore(), 'FORMAT_UNSUPPORTED');
    expect(err.message).toMatch(/format 4, written by a later release/);
    expect(await readFile(file)).toEqual(bytes);
    expect((await readFile(stray)).length).toBe(0);
  });

  it('never writes format 3 for a store that only ever put format 1', async () => {
    const store = await openStore({ volumeBytesMax: 4096 });
    for (let i = 0; i < 8; i++) await store.put(header(`B${i}.hot-0`), payload(1000, i));
    for (let i = 0; i < 8; i++) expect(await volumeFormat(store, `B${i}.hot-0`)).toBe(1);
  });

  it('answers a retried format-2 put with the stored info, and BLOB_EXISTS for another descriptor or format', async () => {
    const store = await openStore();
    const h = mixed[2]?.h as BlobHeader;
    const first = await store.put(h, payload(1000, 3));
    clock.advance(5000);
    expect(await store.put(h, payload(1000, 3))).toEqual(first);
    await expectCode(store.put({ ...h, descriptor: { kind: 'fragment', bytes: HOT_DESCRIPTOR.bytes } }, payload(1000, 3)), 'BLOB_EXISTS');
    await expectCode(store.put({ ...h, descriptor: undefined }, payload(1000, 3)), 'BLOB_EXISTS');
    await expectCode(store.put(header(h.id, { key: '', meta: '' }), payload(1000, 3)), 'BLOB_EXISTS');
    await store.put(header('A1.hot-0'), payload(5));
    await expectCode(store.put(v2Header('A1.hot-0'), payload(5)), 'BLOB_EXISTS');
  });

  it('refuses format-2 headers that would not read back as put with INVALID_REQUEST or BLOB_TOO_LARGE', async () => {
    const store = await openStore();
    const id = `${ULID}.hot-0`;
    await expectCode(store.put({ ...v2Header(id), key: 'k' }, payload(5)), 'INVALID_REQUEST');
    await expectCode(store.put({ ...v2Header(id), meta: '{}' }, payload(5)), 'INVALID_REQUEST');
    await expectCode(store.put({ ...v2Header(id), writeId: 'other' }, payload(5)), 'INVALID_REQUEST');
    await expectCode(store.put({ ...v2Header(id), part: 'hot-1' }, payload(5)), 'INVALID_REQUEST');
    await expectCode(store.put({ ...v2Header(id), format: 3 as never }, payload(5)), 'INVALID_REQUEST');
    await expectCode(store.put({ ...header(id), descriptor: HOT_DESCRIPTOR }, payload(5)), 'INVALID_REQUEST');
    await expectCode(store.put({ ...v2Header(id), descriptor: { kind: 'whole', bytes: new Uint8Array(0) } }, payload(5)), 'INVALID_REQUEST');
    await expectCode(store.put({ ...v2Header(id), descriptor: { kind: 'other' as never, bytes: new Uint8Array(1) } }, payload(5)), 'INVALID_REQUEST');
    await expectCode(store.put({ ...v2Header(id), descriptor: { kind: 'whole', bytes: new Uint8Array(256) } }, payload(5)), 'BLOB_TOO_LARGE');
    expect(await store.list(null, 10)).toEqual([]);
  });

  it('reads a format-3 volume of v1 and v2 needles back after a restart from the checkpoint and from a scan', async () => {
    let store = await openStore();
    for (const { h, data } of mixed) await store.put(h, data);
    await store.delete('A2.hot-0');
    await store.delete(`${ULID}.hot-1.r2`);
    const live = mixed.filter((b) => b.h.id !== 'A2.hot-0' && b.h.id !== `${ULID}.hot-1.r2`);
    await expectAllRead(store, live);
    await closeAll();
    store = await openStore();
    expect(store.stats().recovery.checkpoint).toBe('loaded');
    await expectAllRead(store, live);
    await closeAll();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    store = await openStore();
    expect(store.stats().recovery).toMatchObject({ fullRebuild: true, corruptNeedles: 0, garbageBytes: 0, tornBytesTruncated: 0 });
    await expectAllRead(store, live);
  });

  it('cuts a torn format-2 needle off the tail, keeping every needle before it', async () => {
    let store = await openStore();
    for (const { h, data } of mixed.slice(0, 3)) await store.put(h, data);
    await store.checkpoint();
    const last = mixed[3] as (typeof mixed)[number];
    await store.put(last.h, last.data);
    const where = store.locate(last.h.id);
    if (where === null) throw new Error('not stored');
    await closeAll();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    // Every cut inside the last needle (a write a crash tore) loses that needle only.
    for (const cut of [4, NEEDLE_V2_FIXED_BYTES + 3, where.needleBytes - 500, where.needleBytes - 1]) {
      await truncate(where.file, where.offset + cut);
      store = await openStore();
      expect(store.stats().recovery.tornBytesTruncated, `cut ${cut}`).toBe(cut);
      await expectAllRead(store, mixed.slice(0, 3));
      await closeAll();
    }
  });

  it('finds a flipped bit anywhere in a v2 needle on get, verify and scrub, and a put of the good bytes repairs it', async () => {
    const store = await openStore();
    const { h, data } = mixed[2] as (typeof mixed)[number];
    await store.put(h, data);
    const where = store.locate(h.id);
    if (where === null) throw new Error('not stored');
    const flip = async (byte: number): Promise<void> => {
      const file = await openFile(where.file, 'r+');
      const one = Buffer.alloc(1);
      await file.read(one, 0, 1, where.offset + byte);
      one[0] = (one[0] as number) ^ 0x10;
      await file.write(one, 0, 1, where.offset + byte);
      await file.close();
    };
    const meaningful = 48 + 28 + data.length;
    for (let byte = 0; byte < meaningful; byte += byte < 80 ? 1 : 97) {
      await flip(byte);
      await expectCode(store.get(h.id), 'BLOB_CORRUPT');
      expect(await store.verify(h.id), `byte ${byte}`).toBe('corrupt');
      await flip(byte);
    }
    await flip(200);
    expect((await store.scrub({ bytesPerSecMax: 1e12 })).corrupt).toEqual([h.id]);
    expect((await store.stat(h.id))?.corrupt).toBe(true);
    await store.put(h, data);
    expect((await store.get(h.id)).data.equals(data)).toBe(true);
    expect(await store.verify(h.id)).toBe('ok');
  });

  it('verify catches payload bytes whose data CRC was rewritten to match, by the 64-bit checksum', async () => {
    const store = await openStore();
    const { h, data } = mixed[1] as (typeof mixed)[number];
    await store.put(h, data);
    const where = store.locate(h.id);
    if (where === null) throw new Error('not stored');
    const file = await openFile(where.file, 'r+');
    const needle = Buffer.alloc(where.needleBytes);
    await file.read(needle, 0, needle.length, where.offset);
    const headBytes = 48 + 8;
    needle[headBytes] = (needle[headBytes] as number) ^ 1;
    needle.writeUInt32BE(crc32c(needle.subarray(headBytes, headBytes + data.length)), 16);
    needle.writeUInt32BE(crc32c(needle.subarray(0, headBytes - 4)), headBytes - 4);
    await file.write(needle, 0, needle.length, where.offset);
    await file.close();
    expect((await store.get(h.id)).data.equals(data)).toBe(false); // the CRCs agree with the lie
    expect(await store.verify(h.id)).toBe('corrupt');
    await expectCode(store.get(h.id), 'BLOB_CORRUPT');
  });

  it('compacts a format-3 volume of v1 and v2 needles into format 3, and deleted ids stay deleted after a rebuild', async () => {
    let store = await openStore();
    for (const { h, data } of mixed) await store.put(h, data);
    await store.delete(`${ULID}.shard-0`);
    await store.delete('A1.hot-0');
    const live = mixed.filter((b) => b.h.id !== `${ULID}.shard-0` && b.h.id !== 'A1.hot-0');
    const outcomes = await store.compact({ sealActive: true });
    expect(outcomes.some((o) => o.kind === 'swapped')).toBe(true);
    for (const { h } of live) expect(await volumeFormat(store, h.id)).toBe(3);
    await expectAllRead(store, live);
    await closeAll();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    store = await openStore();
    await expectAllRead(store, live);
  });

  it('merges format-1 and format-3 volumes into one format-3 volume, every blob read back, deletes kept', async () => {
    let store = await openStore({ mergeAfterSealedVolumes: 1, mergeBytesMax: 1 << 20 });
    await store.put(header('M1.hot-0'), payload(500, 1));
    await store.put(header('M2.hot-0'), payload(500, 2));
    await store.put(v2Header(`${ULID}.hot-0`), payload(500, 3));
    await store.delete('M2.hot-0');
    await store.put(v2Header(`${ULID2}.hot-0`), payload(500, 4));
    await store.compact({ sealActive: true });
    await store.put(v2Header(`${ULID2}.hot-1`), payload(500, 5));
    await store.compact({ sealActive: true });
    const outcomes = await store.merge();
    expect(outcomes.some((o) => o.kind === 'merged')).toBe(true);
    const live = [
      { h: header('M1.hot-0'), data: payload(500, 1) },
      { h: v2Header(`${ULID}.hot-0`), data: payload(500, 3) },
      { h: v2Header(`${ULID2}.hot-0`), data: payload(500, 4) },
      { h: v2Header(`${ULID2}.hot-1`), data: payload(500, 5) },
    ];
    expect(await volumeFormat(store, 'M1.hot-0')).toBe(3);
    expect(store.locate('M1.hot-0')?.volume).toBe(store.locate(`${ULID}.hot-0`)?.volume);
    await expectAllRead(store, live);
    await closeAll();
    await rm(path.join(dir, VOLUME_STORE_CHECKPOINT_FILE));
    store = await openStore();
    await expectAllRead(store, live);
  });
});
