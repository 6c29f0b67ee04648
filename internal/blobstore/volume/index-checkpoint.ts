/**
 * Index checkpoints: the runs of the in-memory index (needle-index.ts) written to `index.ckpt`, with, for every
 * volume, the revision and the number of bytes the checkpoint covers. A restart loads it with one read and scans
 * only what was appended after it (README.md, "Restart"), instead of every needle of every volume.
 *
 * The file is replaced atomically (temp file, fsync, rename, directory fsync), so a crash leaves either the old
 * checkpoint or the new one, never half of one; its CRC-32C catches the rest. Any doubt about a checkpoint (bad
 * CRC, a format this release does not read, an entry that does not decode, a volume it names with another
 * revision) makes the store rebuild the index from the volumes, which is slower but always right: the volumes are
 * the truth, the checkpoint only a shortcut.
 *
 * Format 2 (written): the entries are varint coded against the previous entry, in id order, so that a blob costs
 * about 18 bytes instead of 21 plus its id as text. Entries of the main run (derived ids) store the write id as its
 * milliseconds' delta from the previous entry's and its 10 random bytes, or nothing when it is the same write id;
 * offsets are coded against where the previous needle ended, since writes in id order are near append order.
 *
 * Format 1 (read, so that a store written by the previous release restarts from its checkpoint): the run's typed
 * arrays as memory, little-endian, every id as text. Loading one splits it into the two runs; the next checkpoint
 * is written as format 2.
 */
import os from 'node:os';
import path from 'node:path';
import { assert } from '../../core/assert.js';
import { partOfCode, parseDerivedBlobId, ULID_BYTES } from '../../core/derived-ids.js';
import { crc32c } from './crc32c.js';
import {
  emptyMainRun,
  emptyTextRun,
  INDEX_FLAG_CORRUPT,
  IndexRun,
  MAIN_FRAME_BYTES_MAX,
  splitTextRun,
  type MainRun,
  type TextRun,
} from './needle-index.js';
import type { VolumeFs } from './volume-fs.js';

export const CHECKPOINT_FILE = 'index.ckpt';
const CHECKPOINT_TEMP_SUFFIX = '.tmp';
/** "STRI": Strata index. */
const CHECKPOINT_MAGIC = 0x49525453; // "STRI" read as a little-endian u32
/** The format this release writes. */
export const CHECKPOINT_VERSION = 2;
/** The format the previous release wrote, still read. */
export const CHECKPOINT_VERSION_TYPED_ARRAYS = 1;
const HEADER_BYTES = 48;
const VOLUME_ENTRY_BYTES = 16;
/** Bytes checksummed between two yields to the event loop while a checkpoint is prepared. */
const CRC_SLICE_BYTES = 4 * 1024 * 1024;
/** A checkpoint file larger than this is not one this store wrote (2^32 entries of 25 bytes + a 4 GiB arena). */
const CHECKPOINT_BYTES_MAX = 2 ** 37;
/** Format 1 entries: five u32 arrays and a u8 one. */
const V1_ENTRY_BYTES = 21;
const ID_BYTES_MAX = 128;

/** Format 2 entry flags. */
const ENTRY_SAME_WRITE_ID = 1;
const ENTRY_SAME_VOLUME = 2;
const ENTRY_CORRUPT = 4;
const MAIN_ENTRY_FLAGS = ENTRY_SAME_WRITE_ID | ENTRY_SAME_VOLUME | ENTRY_CORRUPT;
const TEXT_ENTRY_FLAGS = ENTRY_SAME_VOLUME | ENTRY_CORRUPT;
/** A ULID's milliseconds take its first 6 bytes; the rest are random. */
const ULID_TIME_BYTES = 6;
const ULID_RANDOM_BYTES = ULID_BYTES - ULID_TIME_BYTES;
const ULID_TIME_MAX = 2 ** 48 - 1;
/** Most bytes a format 2 entry takes: flags, time varint (7), random, part, volume (5), offset (5), size (5), frame (3). */
const MAIN_ENTRY_CODED_MAX = 1 + 7 + ULID_RANDOM_BYTES + 1 + 5 + 5 + 5 + 3;
/** flags, prefix and suffix lengths (2 + 2), volume (5), offset (5), size (5), needle bytes (5), plus the id. */
const TEXT_ENTRY_CODED_MAX = 1 + 4 + 20;
/** A varint longer than this is not one this store wrote (2^56 > every value coded). */
const VARINT_BYTES_MAX = 8;

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

/**
 * Encodes the checkpoint (format 2) into one Buffer, synchronously: the index may change as soon as this returns.
 * The last 4 bytes are left for sealCheckpoint's CRC.
 */
export function encodeCheckpoint(checkpoint: Checkpoint): Buffer {
  const { run, volumes } = checkpoint;
  const { main, text } = run;
  const worst = main.count * MAIN_ENTRY_CODED_MAX + text.count * TEXT_ENTRY_CODED_MAX + text.arena.length;
  const body = Buffer.allocUnsafeSlow(worst);
  let at = encodeMain(main, body, 0);
  at = encodeText(text, body, at);
  const entryBytes = at;
  const total = HEADER_BYTES + volumes.length * VOLUME_ENTRY_BYTES + entryBytes + 4;
  const out = Buffer.allocUnsafeSlow(total);
  out.fill(0, 0, HEADER_BYTES);
  out.writeUInt32LE(CHECKPOINT_MAGIC, 0);
  out.writeUInt16LE(CHECKPOINT_VERSION, 4);
  out.writeUInt32LE(volumes.length, 8);
  out.writeUInt32LE(main.count, 12);
  writeU64LE(out, entryBytes, 16);
  writeU64LE(out, checkpoint.nextSeq, 24);
  writeU64LE(out, checkpoint.createdAtMs, 32);
  out.writeUInt32LE(text.count, 40);
  at = HEADER_BYTES;
  for (const v of volumes) {
    out.writeUInt32LE(v.volume, at);
    out.writeUInt32LE(v.revision, at + 4);
    writeU64LE(out, v.coveredBytes, at + 8);
    at += VOLUME_ENTRY_BYTES;
  }
  at += body.copy(out, at, 0, entryBytes);
  assert(at === total - 4, 'checkpoint layout adds up');
  out.writeUInt32LE(0, at);
  return out;
}

function encodeMain(m: MainRun, out: Buffer, start: number): number {
  let at = start;
  let prevW0 = -1;
  let prevW1 = 0;
  let prevW2 = 0;
  let prevW3 = 0;
  let prevMs = 0;
  let prevVolume = 0;
  let predicted8 = 0;
  const { count, writeId, volumes, offsets8, sizes, frames, parts, flagBytes } = {
    count: m.count,
    writeId: m.writeId,
    volumes: m.volume,
    offsets8: m.offset8,
    sizes: m.size,
    frames: m.frame,
    parts: m.part,
    flagBytes: m.flags,
  };
  for (let i = 0; i < count; i++) {
    const w0 = writeId[4 * i] as number;
    const w1 = writeId[4 * i + 1] as number;
    const w2 = writeId[4 * i + 2] as number;
    const w3 = writeId[4 * i + 3] as number;
    const volume = volumes[i] as number;
    const offset8 = offsets8[i] as number;
    const size = sizes[i] as number;
    const frame = frames[i] as number;
    const sameWriteId = w0 === prevW0 && w1 === prevW1 && w2 === prevW2 && w3 === prevW3;
    let flags = (flagBytes[i] as number) & INDEX_FLAG_CORRUPT ? ENTRY_CORRUPT : 0;
    if (sameWriteId) flags |= ENTRY_SAME_WRITE_ID;
    if (volume === prevVolume) flags |= ENTRY_SAME_VOLUME;
    out[at++] = flags;
    if (!sameWriteId) {
      const ms = w0 * 0x1_0000 + (w1 >>> 16);
      assert(ms >= prevMs, 'the main run is in write id order');
      at = putVarint(out, at, ms - prevMs);
      out[at++] = w1 >>> 8;
      out[at++] = w1;
      out[at++] = w2 >>> 24;
      out[at++] = w2 >>> 16;
      out[at++] = w2 >>> 8;
      out[at++] = w2;
      out[at++] = w3 >>> 24;
      out[at++] = w3 >>> 16;
      out[at++] = w3 >>> 8;
      out[at++] = w3;
      prevMs = ms;
      prevW0 = w0;
      prevW1 = w1;
      prevW2 = w2;
      prevW3 = w3;
    }
    out[at++] = parts[i] as number;
    if (volume !== prevVolume) at = putVarint(out, at, volume);
    at = putVarint(out, at, zigzag(offset8 - predicted8));
    at = putVarint(out, at, size);
    at = putVarint(out, at, frame);
    prevVolume = volume;
    predicted8 = offset8 + Math.floor((size + frame) / 8);
  }
  return at;
}

function encodeText(t: TextRun, out: Buffer, start: number): number {
  let at = start;
  let prevStart = 0;
  let prevEnd = 0;
  let prevVolume = 0;
  let predicted8 = 0;
  for (let i = 0; i < t.count; i++) {
    const idStart = i === 0 ? 0 : (t.idEnd[i - 1] as number);
    const idEnd = t.idEnd[i] as number;
    const volume = t.volume[i] as number;
    const offset8 = t.offset8[i] as number;
    const size = t.size[i] as number;
    const needleBytes = t.needleBytes[i] as number;
    let flags = (t.flags[i] as number) & INDEX_FLAG_CORRUPT ? ENTRY_CORRUPT : 0;
    if (volume === prevVolume) flags |= ENTRY_SAME_VOLUME;
    out[at++] = flags;
    let shared = 0;
    const most = Math.min(prevEnd - prevStart, idEnd - idStart);
    while (shared < most && t.arena[prevStart + shared] === t.arena[idStart + shared]) shared++;
    at = putVarint(out, at, shared);
    at = putVarint(out, at, idEnd - idStart - shared);
    at += t.arena.copy(out, at, idStart + shared, idEnd);
    if (volume !== prevVolume) at = putVarint(out, at, volume);
    at = putVarint(out, at, zigzag(offset8 - predicted8));
    at = putVarint(out, at, size);
    at = putVarint(out, at, zigzag(needleBytes - size));
    prevStart = idStart;
    prevEnd = idEnd;
    prevVolume = volume;
    predicted8 = offset8 + Math.floor(needleBytes / 8);
  }
  return at;
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

/** The checkpoint in `buf`, or the first reason it cannot be used. */
export function decodeCheckpoint(buf: Buffer): Checkpoint | string {
  if (buf.length < HEADER_BYTES + 4) return `checkpoint length ${buf.length} out of range`;
  if (buf.readUInt32LE(0) !== CHECKPOINT_MAGIC) return 'magic != "STRI"';
  const format = buf.readUInt16LE(4);
  if (format !== CHECKPOINT_VERSION && format !== CHECKPOINT_VERSION_TYPED_ARRAYS) {
    return `checkpoint format ${format} is not one this release reads (${CHECKPOINT_VERSION_TYPED_ARRAYS} or ${CHECKPOINT_VERSION})`;
  }
  const end = buf.length - 4;
  if (crc32c(buf, 0, 0, end) !== buf.readUInt32LE(end)) return 'checkpoint CRC-32C mismatch';
  return format === CHECKPOINT_VERSION ? decodeFormat2(buf) : decodeFormat1(buf);
}

function decodeVolumes(buf: Buffer, count: number): CheckpointVolume[] {
  const volumes: CheckpointVolume[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    volumes.push({ volume: buf.readUInt32LE(at), revision: buf.readUInt32LE(at + 4), coveredBytes: readU64LE(buf, at + 8) });
    at += VOLUME_ENTRY_BYTES;
  }
  return volumes;
}

function decodeFormat2(buf: Buffer): Checkpoint | string {
  const volumeCount = buf.readUInt32LE(8);
  const mainCount = buf.readUInt32LE(12);
  const entryBytes = readU64LE(buf, 16);
  const textCount = buf.readUInt32LE(40);
  if (buf.readUInt16LE(6) !== 0 || buf.readUInt32LE(44) !== 0) return 'checkpoint reserved header bytes != 0';
  const entriesAt = HEADER_BYTES + volumeCount * VOLUME_ENTRY_BYTES;
  if (entriesAt + entryBytes + 4 !== buf.length) return `checkpoint length ${buf.length} != ${entriesAt + entryBytes + 4} from its header`;
  // Every entry takes at least 5 bytes: a count the bytes cannot hold is refused before anything is allocated.
  if (5 * (mainCount + textCount) > entryBytes) return 'checkpoint entry counts exceed its bytes';
  const reader = new Reader(buf, entriesAt, entriesAt + entryBytes);
  try {
    const main = decodeMain(reader, mainCount);
    const text = decodeText(reader, textCount, main);
    if (reader.at !== reader.end) throw new Malformed(`${reader.end - reader.at} bytes after the last entry`);
    return {
      nextSeq: readU64LE(buf, 24),
      createdAtMs: readU64LE(buf, 32),
      volumes: decodeVolumes(buf, volumeCount),
      run: new IndexRun(main, text),
    };
  } catch (err) {
    if (err instanceof Malformed) return `checkpoint entries do not decode: ${err.message}`;
    throw err;
  }
}

/**
 * The main run's entries. This loop is most of a restart's work, so it reads bytes without a bounds check each:
 * a read past the entries' end yields undefined (taken as 0) or bytes of the CRC, and is caught by the check that
 * the entries ended exactly where the header says (`at` only grows, so ending there means every read was inside).
 */
function decodeMain(r: Reader, count: number): MainRun {
  const m = emptyMainRun(count);
  const buf = r.buf;
  let at = r.at;
  let w0 = 0;
  let w1 = 0;
  let w2 = 0;
  let w3 = 0;
  let ms = 0;
  let prevPart = -1;
  let volume = 0;
  let predicted8 = 0;
  for (let i = 0; i < count; i++) {
    const flags = buf[at++] as number;
    if ((flags & ~MAIN_ENTRY_FLAGS) !== 0) throw new Malformed(`entry ${i} has unknown flags ${flags}`);
    if ((flags & ENTRY_SAME_WRITE_ID) === 0) {
      at = readVarint(buf, at);
      ms += varintValue;
      if (ms > ULID_TIME_MAX) throw new Malformed(`entry ${i} has a write id time beyond 48 bits`);
      const n0 = Math.floor(ms / 0x1_0000);
      const n1 = (((ms % 0x1_0000) << 16) | ((buf[at] as number) << 8) | (buf[at + 1] as number)) >>> 0;
      const n2 = (((buf[at + 2] as number) << 24) | ((buf[at + 3] as number) << 16) | ((buf[at + 4] as number) << 8) | (buf[at + 5] as number)) >>> 0;
      const n3 = (((buf[at + 6] as number) << 24) | ((buf[at + 7] as number) << 16) | ((buf[at + 8] as number) << 8) | (buf[at + 9] as number)) >>> 0;
      at += ULID_RANDOM_BYTES;
      if (i > 0 && compareWords(n0, n1, n2, n3, w0, w1, w2, w3) <= 0) throw new Malformed(`entry ${i} is not after the one before`);
      w0 = n0;
      w1 = n1;
      w2 = n2;
      w3 = n3;
      prevPart = -1;
    } else if (i === 0) {
      throw new Malformed('the first entry repeats a write id');
    }
    const part = buf[at++] as number;
    if (part === undefined || partOfCode(part) === null) throw new Malformed(`entry ${i} has part code ${part}`);
    if (part <= prevPart) throw new Malformed(`entry ${i} is not after the one before`);
    prevPart = part;
    if ((flags & ENTRY_SAME_VOLUME) === 0) {
      at = readVarint(buf, at);
      volume = varintValue;
    }
    if (volume < 1 || volume > 0xffffffff) throw new Malformed(`entry ${i} has volume ${volume}`);
    at = readVarint(buf, at);
    const offset8 = predicted8 + unzigzag(varintValue);
    at = readVarint(buf, at);
    const size = varintValue;
    at = readVarint(buf, at);
    const frame = varintValue;
    if (offset8 < 0 || offset8 > 0xffffffff) throw new Malformed(`entry ${i} has an offset out of range`);
    if (size > 0xffffffff || frame > MAIN_FRAME_BYTES_MAX || size + frame < 1) throw new Malformed(`entry ${i} has lengths out of range`);
    m.writeId[4 * i] = w0;
    m.writeId[4 * i + 1] = w1;
    m.writeId[4 * i + 2] = w2;
    m.writeId[4 * i + 3] = w3;
    m.part[i] = part;
    m.volume[i] = volume;
    m.offset8[i] = offset8;
    m.size[i] = size;
    m.frame[i] = frame;
    m.flags[i] = (flags & ENTRY_CORRUPT) !== 0 ? INDEX_FLAG_CORRUPT : 0;
    predicted8 = offset8 + Math.floor((size + frame) / 8);
  }
  if (at > r.end) throw new Malformed('entries cut short');
  r.at = at;
  return m;
}

/** The value readVarint read last (a module variable, so that the hot loop allocates nothing). */
let varintValue = 0;

/** Reads the varint at `at` into varintValue; returns where it ends. Reads past the buffer give 0 (see decodeMain). */
function readVarint(buf: Buffer, at: number): number {
  const first = buf[at] ?? 0;
  if (first < 0x80) {
    varintValue = first;
    return at + 1;
  }
  let value = first & 0x7f;
  let scale = 0x80;
  for (let k = 1; k < VARINT_BYTES_MAX; k++) {
    const b = buf[at + k] ?? 0;
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      varintValue = value;
      return at + k + 1;
    }
    scale *= 0x80;
  }
  throw new Malformed('varint longer than 8 bytes');
}

function decodeText(r: Reader, count: number, main: MainRun): TextRun {
  // The ids' total length is known only once they are decoded: collect them first, then pack the arena.
  const ids: Buffer[] = [];
  const fields = emptyTextRun(count, 0);
  let arenaBytes = 0;
  let previous = Buffer.alloc(0);
  let volume = 0;
  let predicted8 = 0;
  for (let i = 0; i < count; i++) {
    const flags = r.byte();
    if ((flags & ~TEXT_ENTRY_FLAGS) !== 0) throw new Malformed(`text entry ${i} has unknown flags ${flags}`);
    const shared = r.varint();
    const suffix = r.varint();
    if (shared > previous.length || shared + suffix < 1 || shared + suffix > ID_BYTES_MAX) {
      throw new Malformed(`text entry ${i} has an id length out of range`);
    }
    const id = Buffer.allocUnsafe(shared + suffix);
    previous.copy(id, 0, 0, shared);
    r.bytes(suffix).copy(id, shared);
    if (i > 0 && Buffer.compare(previous, id) >= 0) throw new Malformed(`text entry ${i} is not after the one before`);
    if (inMainRun(main, id)) throw new Malformed(`text entry ${i} is also in the main run`);
    if ((flags & ENTRY_SAME_VOLUME) === 0) volume = r.varint();
    if (volume < 1 || volume > 0xffffffff) throw new Malformed(`text entry ${i} has volume ${volume}`);
    const offset8 = predicted8 + unzigzag(r.varint());
    const size = r.varint();
    const needleBytes = size + unzigzag(r.varint());
    if (offset8 < 0 || offset8 > 0xffffffff) throw new Malformed(`text entry ${i} has an offset out of range`);
    if (size > 0xffffffff || needleBytes < 1 || needleBytes > 0xffffffff) throw new Malformed(`text entry ${i} has lengths out of range`);
    ids.push(id);
    arenaBytes += id.length;
    fields.volume[i] = volume;
    fields.offset8[i] = offset8;
    fields.size[i] = size;
    fields.needleBytes[i] = needleBytes;
    fields.flags[i] = (flags & ENTRY_CORRUPT) !== 0 ? INDEX_FLAG_CORRUPT : 0;
    previous = id;
    predicted8 = offset8 + Math.floor(needleBytes / 8);
  }
  const t = emptyTextRun(count, arenaBytes);
  t.volume.set(fields.volume);
  t.offset8.set(fields.offset8);
  t.size.set(fields.size);
  t.needleBytes.set(fields.needleBytes);
  t.flags.set(fields.flags);
  let ao = 0;
  for (let i = 0; i < count; i++) {
    ao += (ids[i] as Buffer).copy(t.arena, ao);
    t.idEnd[i] = ao;
  }
  return t;
}

/** True when the derived id spelled by `id` has an entry in `main` (a text entry must not repeat one). */
function inMainRun(main: MainRun, id: Buffer): boolean {
  const parsed = parseDerivedBlobId(id.toString('latin1'));
  if (parsed === null) return false;
  const b = parsed.writeIdBytes;
  const word = (k: number): number =>
    (((b[4 * k] as number) << 24) | ((b[4 * k + 1] as number) << 16) | ((b[4 * k + 2] as number) << 8) | (b[4 * k + 3] as number)) >>> 0;
  const k0 = word(0);
  const k1 = word(1);
  const k2 = word(2);
  const k3 = word(3);
  let lo = 0;
  let hi = main.count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const w = main.writeId;
    let c = compareWords(w[4 * mid] as number, w[4 * mid + 1] as number, w[4 * mid + 2] as number, w[4 * mid + 3] as number, k0, k1, k2, k3);
    if (c === 0) c = (main.part[mid] as number) - parsed.partCode;
    if (c === 0) return true;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

function decodeFormat1(buf: Buffer): Checkpoint | string {
  if (os.endianness() !== 'LE') return 'format 1 checkpoints are only read on little-endian hosts';
  const volumeCount = buf.readUInt32LE(8);
  const n = buf.readUInt32LE(12);
  const arenaBytes = readU64LE(buf, 16);
  const expected = HEADER_BYTES + volumeCount * VOLUME_ENTRY_BYTES + V1_ENTRY_BYTES * n + arenaBytes + 4;
  if (expected !== buf.length) return `checkpoint length ${buf.length} != ${expected} from its header`;
  let at = HEADER_BYTES + volumeCount * VOLUME_ENTRY_BYTES;
  // The Uint32Array views below need an aligned start; a Buffer from readCheckpointFile has its own ArrayBuffer.
  let aligned = buf;
  if (buf.byteOffset % 4 !== 0) {
    aligned = Buffer.allocUnsafeSlow(buf.length);
    buf.copy(aligned);
  }
  const u32 = (): Uint32Array => {
    const view = new Uint32Array(aligned.buffer, aligned.byteOffset + at, n);
    at += 4 * n;
    return view;
  };
  const idEnd = u32();
  const volume = u32();
  const offset8 = u32();
  const needleBytes = u32();
  const size = u32();
  const flags = new Uint8Array(aligned.buffer, aligned.byteOffset + at, n);
  at += n;
  const arena = aligned.subarray(at, at + arenaBytes);
  const run: TextRun = { count: n, arena, idEnd, volume, offset8, needleBytes, size, flags };
  const shape = checkFormat1Run(run);
  if (shape !== null) return shape;
  return { nextSeq: readU64LE(buf, 24), createdAtMs: readU64LE(buf, 32), volumes: decodeVolumes(buf, volumeCount), run: splitTextRun(run) };
}

/** A CRC-valid checkpoint written by a buggy build must still not crash the store: check what the index relies on. */
function checkFormat1Run(run: TextRun): string | null {
  let previousEnd = 0;
  for (let i = 0; i < run.count; i++) {
    const idEnd = run.idEnd[i] as number;
    if (idEnd <= previousEnd || idEnd - previousEnd > ID_BYTES_MAX) return `checkpoint id ${i} has a bad length`;
    if ((run.volume[i] as number) < 1 || (run.needleBytes[i] as number) < 1) return `checkpoint entry ${i} is invalid`;
    // compare() answers 1 when the target (the previous id) sorts before the source (this id), as it must.
    if (i > 0 && run.arena.compare(run.arena, previousEnd - prevLength(run, i - 1), previousEnd, previousEnd, idEnd) !== 1) {
      return `checkpoint ids are not in ascending order at ${i}`;
    }
    previousEnd = idEnd;
  }
  return run.count === 0 || previousEnd === run.arena.length ? null : 'checkpoint arena length mismatch';
}

function prevLength(run: TextRun, i: number): number {
  return (run.idEnd[i] as number) - (i === 0 ? 0 : (run.idEnd[i - 1] as number));
}

/** Entries that do not decode; caught in decodeFormat2 and reported as the reason the checkpoint is not used. */
class Malformed extends Error {}

/** Reads a format 2 entry stream; every read is bounds-checked against the end of the entries. */
class Reader {
  constructor(
    readonly buf: Buffer,
    public at: number,
    readonly end: number,
  ) {}

  byte(): number {
    if (this.at >= this.end) throw new Malformed('entries cut short');
    return this.buf[this.at++] as number;
  }

  bytes(n: number): Buffer {
    if (this.at + n > this.end) throw new Malformed('entries cut short');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let k = 0; k < VARINT_BYTES_MAX; k++) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    throw new Malformed('varint longer than 8 bytes');
  }
}

/** Little-endian base-128 varint of a non-negative safe integer. */
function putVarint(out: Buffer, at: number, value: number): number {
  if (value < 0x80) {
    out[at] = value;
    return at + 1;
  }
  let v = value;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** Signed -> unsigned so that small magnitudes stay small: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ... */
function zigzag(n: number): number {
  return n >= 0 ? 2 * n : -2 * n - 1;
}

function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

function compareWords(a0: number, a1: number, a2: number, a3: number, b0: number, b1: number, b2: number, b3: number): number {
  if (a0 !== b0) return a0 < b0 ? -1 : 1;
  if (a1 !== b1) return a1 < b1 ? -1 : 1;
  if (a2 !== b2) return a2 < b2 ? -1 : 1;
  if (a3 !== b3) return a3 < b3 ? -1 : 1;
  return 0;
}

function writeU64LE(buf: Buffer, value: number, at: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'u64 fields hold non-negative safe integers');
  buf.writeUInt32LE(value >>> 0, at);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}

function readU64LE(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + 4) * 0x1_0000_0000 + buf.readUInt32LE(at);
}
