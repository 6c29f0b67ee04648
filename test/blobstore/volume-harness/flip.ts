/**
 * Bit rot for tests of a VolumeBlobStore: flips every bit of one payload byte of a blob's needle, in place. The
 * counterpart of flipByteOnDisk (test/contracts/blob-fixtures.ts), which knows only FileBlobStore's files.
 */
import { open } from 'node:fs/promises';
import { decodeNeedleHead } from '../../../internal/blobstore/volume/needle.js';
import type { VolumeBlobStore } from '../../../internal/blobstore/volume/volume-blob-store.js';

/** `fromEnd` 1 is the payload's last byte. */
export async function flipPayloadByteOnDisk(store: VolumeBlobStore, id: string, fromEnd = 1): Promise<void> {
  const where = store.locate(id);
  if (where === null) throw new Error(`blob ${id} is not in the store`);
  const file = await open(where.file, 'r+');
  try {
    const needle = Buffer.alloc(where.needleBytes);
    await file.read(needle, 0, needle.length, where.offset);
    const decoded = decodeNeedleHead(needle);
    if (decoded.state !== 'ok') throw new Error(`needle of ${id} does not decode: ${JSON.stringify(decoded)}`);
    if (fromEnd < 1 || fromEnd > decoded.head.size) throw new Error(`payload of ${id} has ${decoded.head.size} bytes`);
    const position = where.offset + decoded.headBytes + decoded.head.size - fromEnd;
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, position);
    byte[0] = (byte[0] as number) ^ 0xff;
    await file.write(byte, 0, 1, position);
  } finally {
    await file.close();
  }
}
