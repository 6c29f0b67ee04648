/**
 * The on-disk formats of internal/blobstore/volume/README.md, byte by byte: CRC-32C, the needle, the superblock.
 * If one of these fails, either the code or the README is wrong, and old volumes may no longer read.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crc32c } from '../../internal/blobstore/volume/crc32c.js';
import {
  NEEDLE_FIXED_BYTES,
  decodeNeedleHead,
  encodeNeedleHead,
  encodeNeedleTail,
  encodeTombstone,
  needleBytes,
} from '../../internal/blobstore/volume/needle.js';
import { decodeSuperblock, encodeSuperblock, SUPERBLOCK_BYTES } from '../../internal/blobstore/volume/volume.js';
import { VolumeBlobStore } from '../../internal/blobstore/volume/volume-blob-store.js';
import { ulidToBytes } from '../../internal/core/derived-ids.js';
import { header, makeTempDir, payload, sha256 } from '../contracts/blob-fixtures.js';
import { ManualClock } from '../helpers/manual-clock.js';

describe('CRC-32C', () => {
  it('matches the standard check values (RFC 3720 B.4 and "123456789")', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('continues over pieces and ranges exactly as over the whole', () => {
    const data = payload(1000, 3);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)))).toBe(crc32c(data));
      expect(crc32c(data, crc32c(data, 0, 0, cut), cut, data.length)).toBe(crc32c(data));
    }
  });
});

describe('needle format 1', () => {
  const fields = {
    tombstone: false,
    id: 'W1.hot-0',
    key: 'k/é',
    writeId: 'W1',
    part: 'hot-0',
    meta: '{"v":1}',
    size: 5,
    checksum: sha256(Buffer.from('hello')),
    createdAtMs: 1_700_000_000_123,
    seq: 2 ** 40 + 7,
    targetVolume: 0,
  };

  it('lays the head out as README.md documents', () => {
    const head = encodeNeedleHead(fields);
    const keyBytes = Buffer.byteLength(fields.key);
    expect(head.length).toBe(NEEDLE_FIXED_BYTES + 8 + keyBytes + 2 + 5 + 7 + 4);
    expect(head.subarray(0, 4).toString('latin1')).toBe('STRN');
    expect([head[4], head[5], head[6], head[7], head[8], head[9]]).toEqual([1, 0, 8, 2, 5, 0]);
    expect(head.readUInt16BE(10)).toBe(keyBytes);
    expect(head.readUInt16BE(12)).toBe(7);
    expect(head.readUInt16BE(14)).toBe(0);
    expect(head.readUInt32BE(16)).toBe(5);
    expect(head.readUInt32BE(20)).toBe(0);
    expect(head.readBigUInt64BE(24)).toBe(BigInt(fields.seq));
    expect(head.readBigUInt64BE(32)).toBe(BigInt(fields.createdAtMs));
    expect(head.subarray(40, 72).toString('hex')).toBe(fields.checksum);
    const variable = head.subarray(72, head.length - 4).toString('utf8');
    expect(variable).toBe(`W1.hot-0${fields.key}W1hot-0{"v":1}`);
    expect(head.readUInt32BE(head.length - 4)).toBe(crc32c(head.subarray(0, head.length - 4)));
  });

  it('ends with the data CRC and zero padding to a multiple of 8', () => {
    const head = encodeNeedleHead(fields);
    const tail = encodeNeedleTail(crc32c(Buffer.from('hello')), head.length, 5);
    const whole = Buffer.concat([head, Buffer.from('hello'), tail]);
    expect(whole.length).toBe(needleBytes(head.length, 5));
    expect(whole.length % 8).toBe(0);
    expect(whole.readUInt32BE(head.length + 5)).toBe(crc32c(Buffer.from('hello')));
    expect(whole.subarray(head.length + 9).every((b) => b === 0)).toBe(true);
    const decoded = decodeNeedleHead(whole);
    expect(decoded).toMatchObject({ state: 'ok', headBytes: head.length, needleBytes: whole.length, head: fields });
  });

  it('encodes a tombstone as a bare head naming its target volume', () => {
    const tomb = encodeTombstone('W1.hot-0', 9, 1234, 3);
    expect(tomb.length).toBe(needleBytes(NEEDLE_FIXED_BYTES + 8 + 4, 0));
    expect(tomb[5]).toBe(1);
    expect(tomb.readUInt32BE(20)).toBe(3);
    expect(decodeNeedleHead(tomb)).toMatchObject({ state: 'ok', head: { tombstone: true, id: 'W1.hot-0', seq: 9, targetVolume: 3 } });
  });

  it('refuses a head with any single flipped bit', () => {
    const head = encodeNeedleHead(fields);
    for (let bit = 0; bit < head.length * 8; bit++) {
      const bad = Buffer.from(head);
      bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
      const decoded = decodeNeedleHead(Buffer.concat([bad, Buffer.alloc(64)]));
      expect(decoded.state, `bit ${bit}`).not.toBe('ok');
    }
  });

  it('asks for more bytes rather than guessing at a short head', () => {
    const head = encodeNeedleHead(fields);
    expect(decodeNeedleHead(head.subarray(0, 10))).toEqual({ state: 'short', bytesNeeded: NEEDLE_FIXED_BYTES });
    expect(decodeNeedleHead(head.subarray(0, head.length - 1))).toEqual({ state: 'short', bytesNeeded: head.length });
  });
});

describe('superblock format 1', () => {
  it('lays the superblock out as README.md documents and refuses any flipped bit', () => {
    const sb = { volume: 7, revision: 2, createdAtSeq: 100, compactedBeforeSeq: 250, pinnedBytes: 96, createdAtMs: 1_700_000_000_000, firstVolume: 7 };
    const bytes = encodeSuperblock(sb);
    expect(bytes.length).toBe(SUPERBLOCK_BYTES);
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('STRV');
    expect(bytes.readUInt16BE(4)).toBe(1);
    expect(bytes.readUInt32BE(8)).toBe(7);
    expect(bytes.readUInt32BE(12)).toBe(2);
    expect(bytes.readBigUInt64BE(16)).toBe(100n);
    expect(bytes.readBigUInt64BE(24)).toBe(250n);
    expect(bytes.readBigUInt64BE(32)).toBe(96n);
    expect(bytes.readBigUInt64BE(40)).toBe(1_700_000_000_000n);
    expect(bytes.readUInt32BE(60)).toBe(crc32c(bytes.subarray(0, 60)));
    expect(decodeSuperblock(bytes, 7)).toEqual(sb);
    expect(decodeSuperblock(bytes, 8)).toMatch(/file name/);
    for (let bit = 0; bit < SUPERBLOCK_BYTES * 8; bit++) {
      const bad = Buffer.from(bytes);
      bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
      expect(typeof decodeSuperblock(bad, 7), `bit ${bit}`).toBe('string');
    }
  });
});

describe('index checkpoint format 2', () => {
  it('lays the checkpoint out as README.md documents', async () => {
    const { dir, remove } = await makeTempDir('vbs-ckpt');
    const derived = '01HF7YAT00Y60PAT1HKDBP5XCX.hot-1';
    try {
      const store = await VolumeBlobStore.open({ dir });
      await store.put(header('K2.hot-0'), payload(10));
      await store.put(header('K1.hot-0'), payload(20));
      await store.put(header(derived), payload(30));
      await store.close();
      const file = await readFile(path.join(dir, 'index.ckpt'));
      const [k1, k2, d] = (await locateAll(dir, ['K1.hot-0', 'K2.hot-0', derived])) as [Where, Where, Where];
      expect(file.subarray(0, 4).toString('latin1')).toBe('STRI');
      expect(file.readUInt16LE(4)).toBe(2);
      expect(file.readUInt16LE(6)).toBe(0);
      expect(file.readUInt32LE(8)).toBe(1); // volumes
      expect(file.readUInt32LE(12)).toBe(1); // main-run entries
      const entriesAt = 48 + 16;
      expect(Number(file.readBigUInt64LE(16))).toBe(file.length - entriesAt - 4); // entry bytes
      expect(Number(file.readBigUInt64LE(24))).toBe(4); // next sequence number
      expect([file.readUInt32LE(40), file.readUInt32LE(44)]).toEqual([2, 0]); // text-run entries, reserved
      expect([file.readUInt32LE(48), file.readUInt32LE(52)]).toEqual([1, 0]); // volume 1, revision 0
      const ulid = Buffer.from(ulidToBytes(derived.slice(0, 26)) as Uint8Array);
      const ms = ulid.readUIntBE(0, 6);
      const zigzag = (n: number): number => (n >= 0 ? 2 * n : -2 * n - 1);
      const expected = [
        // main run: the derived id (flags 0: a new write id, a new volume)
        0, ...varint(ms), ...ulid.subarray(6), 0x11, 1, ...varint(zigzag(d.offset / 8)), 30, ...varint(d.needleBytes - 30),
        // text run: K1.hot-0 then K2.hot-0 (flags 2: same volume; 1 byte shared with K1.hot-0)
        0, 0, 8, ...Buffer.from('K1.hot-0'), 1, ...varint(zigzag(k1.offset / 8)), 20, ...varint(zigzag(k1.needleBytes - 20)),
        2, 1, 7, ...Buffer.from('2.hot-0'), ...varint(zigzag(k2.offset / 8 - (k1.offset / 8 + Math.floor(k1.needleBytes / 8)))),
        10, ...varint(zigzag(k2.needleBytes - 10)),
      ];
      expect([...file.subarray(entriesAt, file.length - 4)]).toEqual(expected);
      expect(file.readUInt32LE(file.length - 4)).toBe(crc32c(file.subarray(0, file.length - 4)));
    } finally {
      await remove();
    }
  });
});

/** Unsigned LEB128, as README.md documents for checkpoint format 2. */
function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

type Where = { offset: number; needleBytes: number };

/** Where the store has each of `ids`. */
async function locateAll(dir: string, ids: string[]): Promise<Where[]> {
  const store = await VolumeBlobStore.open({ dir });
  const found = ids.map((id) => store.locate(id) ?? { offset: -1, needleBytes: -1 });
  await store.close();
  return found;
}

describe('VolumeBlobStore on disk', () => {
  let dir: string;
  let remove: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, remove } = await makeTempDir('vbs-format'));
  });
  afterEach(async () => {
    await remove();
  });

  it('writes a superblock, then each needle at the offset the store reports, as documented', async () => {
    const store = await VolumeBlobStore.open({ dir, clock: new ManualClock(1234) });
    const data = payload(300);
    await store.put(header('L1.hot-0', { key: 'k', meta: '{}' }), data);
    const where = store.locate('L1.hot-0');
    expect(where).toMatchObject({ volume: 1, offset: SUPERBLOCK_BYTES, file: path.join(dir, 'volumes', '00000001.vol') });
    await store.close();
    const file = await readFile(path.join(dir, 'volumes', '00000001.vol'));
    expect(decodeSuperblock(file.subarray(0, SUPERBLOCK_BYTES), 1)).toMatchObject({ volume: 1, revision: 0 });
    const decoded = decodeNeedleHead(file, SUPERBLOCK_BYTES);
    expect(decoded).toMatchObject({
      state: 'ok',
      head: { id: 'L1.hot-0', key: 'k', writeId: 'L1', part: 'hot-0', meta: '{}', size: 300, createdAtMs: 1234, seq: 1 },
    });
    if (decoded.state !== 'ok') return;
    const dataAt = SUPERBLOCK_BYTES + decoded.headBytes;
    expect(file.subarray(dataAt, dataAt + 300).equals(data)).toBe(true);
    expect(createHash('sha256').update(file.subarray(dataAt, dataAt + 300)).digest('hex')).toBe(decoded.head.checksum);
    expect(file.length).toBe(SUPERBLOCK_BYTES + decoded.needleBytes);
  });
});

describe('superblock format 2', () => {
  it('writes version 2 with firstVolume only for a merged volume, and refuses a range that does not end below it', () => {
    const sb = { volume: 9, revision: 3, createdAtSeq: 10, compactedBeforeSeq: 400, pinnedBytes: 0, createdAtMs: 1_700_000_000_000, firstVolume: 4 };
    const bytes = encodeSuperblock(sb);
    expect(bytes.readUInt16BE(4)).toBe(2);
    expect(bytes.readUInt32BE(48)).toBe(4);
    expect(bytes.subarray(52, 60).equals(Buffer.alloc(8))).toBe(true);
    expect(decodeSuperblock(bytes, 9)).toEqual(sb);
    // An unmerged volume keeps version 1, which the previous release reads.
    expect(encodeSuperblock({ ...sb, firstVolume: 9 }).readUInt16BE(4)).toBe(1);
    const selfRange = Buffer.from(bytes);
    selfRange.writeUInt32BE(9, 48);
    selfRange.writeUInt32BE(crc32c(selfRange.subarray(0, 60)), 60);
    expect(decodeSuperblock(selfRange, 9)).toMatch(/firstVolume/);
  });
});
