/**
 * Index checkpoints: the main run of the in-memory index (needle-index.ts) written to `index.ckpt`, with, for
 * every volume, the revision and the number of bytes the checkpoint covers. A restart loads it with one read and
 * scans only what was appended after it (README.md, "Restart"), instead of every needle of every volume.
 *
 * The file is replaced atomically (temp file, fsync, rename, directory fsync), so a crash leaves either the old
 * checkpoint or the new one, never half of one; its CRC-32C catches the rest. Any doubt about a checkpoint (bad
 * CRC, a volume it names with another revision) makes the store rebuild the index from the volumes, which is
 * slower but always right: the volumes are the truth, the checkpoint only a shortcut.
 *
 * The arrays are stored as the typed arrays' memory, little-endian (every platform Node supports in practice),
 * so that loading them is one read and a few views, with no per-entry decoding.
 */
import os from 'node:os';
import path from 'node:path';
import { assert } from '../../core/assert.js';
import { crc32c } from './crc32c.js';
import type { IndexRun } from './needle-index.js';
import type { VolumeFs } from './volume-fs.js';

export const CHECKPOINT_FILE = 'index.ckpt';
const CHECKPOINT_TEMP_SUFFIX = '.tmp';
/** "STRI": Strata index. */
const CHECKPOINT_MAGIC = 0x49525453; // "STRI" read as a little-endian u32
export const CHECKPOINT_VERSION = 1;
const HEADER_BYTES = 48;
const VOLUME_ENTRY_BYTES = 16;
/** Bytes checksummed between two yields to the event loop while a checkpoint is prepared. */
const CRC_SLICE_BYTES = 4 * 1024 * 1024;
/** A checkpoint file larger than this is not one this store wrote (2^32 entries of 25 bytes + a 4 GiB arena). */
const CHECKPOINT_BYTES_MAX = 2 ** 37;

export interface CheckpointVolume {
  volume: number;
  revision: number;
  /** Needles below this offset are reflected in the checkpoint's index; the rest is scanned on open. */
  coveredBytes: number;
}

export interface Checkpoint {
  /** The store's next sequence number when the checkpoint was taken. */
  nextSeq: number;
  createdAtMs: number;
  volumes: CheckpointVolume[];
  run: IndexRun;
}

/** Copies the checkpoint into one Buffer, synchronously: the index may change as soon as this returns. */
export function encodeCheckpoint(checkpoint: Checkpoint): Buffer {
  assert(os.endianness() === 'LE', 'index checkpoints are written on little-endian hosts');
  const { run, volumes } = checkpoint;
  const n = run.count;
  const total = HEADER_BYTES + volumes.length * VOLUME_ENTRY_BYTES + 21 * n + run.arena.length + 4;
  const out = Buffer.allocUnsafeSlow(total);
  out.fill(0, 0, HEADER_BYTES);
  out.writeUInt32LE(CHECKPOINT_MAGIC, 0);
  out.writeUInt16LE(CHECKPOINT_VERSION, 4);
  out.writeUInt32LE(volumes.length, 8);
  out.writeUInt32LE(n, 12);
  writeU64LE(out, run.arena.length, 16);
  writeU64LE(out, checkpoint.nextSeq, 24);
  writeU64LE(out, checkpoint.createdAtMs, 32);
  let at = HEADER_BYTES;
  for (const v of volumes) {
    out.writeUInt32LE(v.volume, at);
    out.writeUInt32LE(v.revision, at + 4);
    writeU64LE(out, v.coveredBytes, at + 8);
    at += VOLUME_ENTRY_BYTES;
  }
  for (const array of [run.idEnd, run.volume, run.offset8, run.needleBytes, run.size, run.flags]) {
    at += Buffer.from(array.buffer, array.byteOffset, array.byteLength).copy(out, at);
  }
  at += run.arena.copy(out, at);
  assert(at === total - 4, 'checkpoint layout adds up');
  return out;
}

/** Seals an encoded checkpoint with its CRC, in slices so that a large index does not stall the event loop. */
export async function sealCheckpoint(encoded: Buffer): Promise<void> {
  const end = encoded.length - 4;
  let crc = 0;
  for (let at = 0; at < end; at += CRC_SLICE_BYTES) {
    crc = crc32c(encoded, crc, at, Math.min(end, at + CRC_SLICE_BYTES));
    if (at + CRC_SLICE_BYTES < end) await new Promise((resolve) => setImmediate(resolve));
  }
  encoded.writeUInt32LE(crc, end);
}

/** Writes a sealed checkpoint durably under CHECKPOINT_FILE, replacing the previous one atomically. */
export async function writeCheckpointFile(fs: VolumeFs, dir: string, sealed: Buffer): Promise<void> {
  const finalPath = path.join(dir, CHECKPOINT_FILE);
  const tempPath = finalPath + CHECKPOINT_TEMP_SUFFIX;
  await fs.unlink(tempPath).catch(() => undefined);
  const file = await fs.open(tempPath, 'wx');
  try {
    await file.writev([sealed], 0);
    await file.datasync();
  } catch (err) {
    await file.close().catch(() => undefined);
    await fs.unlink(tempPath).catch(() => undefined);
    throw err;
  }
  await file.close();
  await fs.rename(tempPath, finalPath);
  await fs.fsyncDir(dir);
}

/** The checkpoint in `dir`; null when there is none; the violated condition when it cannot be used. */
export async function readCheckpointFile(fs: VolumeFs, dir: string): Promise<Checkpoint | null | string> {
  let file;
  try {
    file = await fs.open(path.join(dir, CHECKPOINT_FILE), 'r');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const total = await file.size();
    if (total < HEADER_BYTES + 4 || total > CHECKPOINT_BYTES_MAX) return `checkpoint length ${total} out of range`;
    // Its own ArrayBuffer at offset 0, so that the Uint32Array views below are aligned.
    const buf = Buffer.allocUnsafeSlow(total);
    let done = 0;
    while (done < total) {
      const n = await file.read(buf, done, total - done, done);
      if (n === 0) return 'checkpoint shorter than its length';
      done += n;
    }
    return decodeCheckpoint(buf);
  } finally {
    await file.close();
  }
}

export function decodeCheckpoint(buf: Buffer): Checkpoint | string {
  if (os.endianness() !== 'LE') return 'checkpoints are only read on little-endian hosts';
  if (buf.readUInt32LE(0) !== CHECKPOINT_MAGIC) return 'magic != "STRI"';
  if (buf.readUInt16LE(4) !== CHECKPOINT_VERSION) return `checkpoint version ${buf.readUInt16LE(4)} != ${CHECKPOINT_VERSION}`;
  const end = buf.length - 4;
  if (crc32c(buf, 0, 0, end) !== buf.readUInt32LE(end)) return 'checkpoint CRC-32C mismatch';
  const volumeCount = buf.readUInt32LE(8);
  const n = buf.readUInt32LE(12);
  const arenaBytes = readU64LE(buf, 16);
  const expected = HEADER_BYTES + volumeCount * VOLUME_ENTRY_BYTES + 21 * n + arenaBytes + 4;
  if (expected !== buf.length) return `checkpoint length ${buf.length} != ${expected} from its header`;
  const volumes: CheckpointVolume[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < volumeCount; i++) {
    volumes.push({
      volume: buf.readUInt32LE(at),
      revision: buf.readUInt32LE(at + 4),
      coveredBytes: readU64LE(buf, at + 8),
    });
    at += VOLUME_ENTRY_BYTES;
  }
  assert(buf.byteOffset % 4 === 0, 'checkpoint buffer is aligned for Uint32Array views');
  const u32 = (): Uint32Array => {
    const view = new Uint32Array(buf.buffer, buf.byteOffset + at, n);
    at += 4 * n;
    return view;
  };
  const idEnd = u32();
  const volume = u32();
  const offset8 = u32();
  const needleBytes = u32();
  const size = u32();
  const flags = new Uint8Array(buf.buffer, buf.byteOffset + at, n);
  at += n;
  const arena = buf.subarray(at, at + arenaBytes);
  const run: IndexRun = { count: n, arena, idEnd, volume, offset8, needleBytes, size, flags };
  const shape = checkRunShape(run);
  if (shape !== null) return shape;
  return { nextSeq: readU64LE(buf, 24), createdAtMs: readU64LE(buf, 32), volumes, run };
}

/** A CRC-valid checkpoint written by a buggy build must still not crash the store: check what the index relies on. */
function checkRunShape(run: IndexRun): string | null {
  let previousEnd = 0;
  for (let i = 0; i < run.count; i++) {
    const idEnd = run.idEnd[i] as number;
    if (idEnd <= previousEnd || idEnd - previousEnd > 128) return `checkpoint id ${i} has a bad length`;
    if ((run.volume[i] as number) < 1 || (run.needleBytes[i] as number) < 1) return `checkpoint entry ${i} is invalid`;
    // compare() answers 1 when the target (the previous id) sorts before the source (this id), as it must.
    if (i > 0 && run.arena.compare(run.arena, previousEnd - prevLength(run, i - 1), previousEnd, previousEnd, idEnd) !== 1) {
      return `checkpoint ids are not in ascending order at ${i}`;
    }
    previousEnd = idEnd;
  }
  return run.count === 0 || previousEnd === run.arena.length ? null : 'checkpoint arena length mismatch';
}

function prevLength(run: IndexRun, i: number): number {
  return (run.idEnd[i] as number) - (i === 0 ? 0 : (run.idEnd[i - 1] as number));
}

function writeU64LE(buf: Buffer, value: number, at: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'u64 fields hold non-negative safe integers');
  buf.writeUInt32LE(value >>> 0, at);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}

function readU64LE(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + 4) * 0x1_0000_0000 + buf.readUInt32LE(at);
}
