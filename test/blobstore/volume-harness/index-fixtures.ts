/**
 * Helpers for the index and checkpoint tests: blob ids of every kind the index meets, realistic needle locations,
 * and a format 1 checkpoint laid out exactly as the previous release wrote it (its encoder is gone from the code).
 */
import { crc32c } from '../../../internal/blobstore/volume/crc32c.js';
import type { CheckpointVolume } from '../../../internal/blobstore/volume/index-checkpoint.js';
import type { NeedleLocation } from '../../../internal/blobstore/volume/needle-index.js';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A canonical ULID from a time and a random source in [0, 1). */
export function ulidAt(ms: number, random: () => number): string {
  let time = '';
  let t = ms;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time;
    t = Math.floor(t / 32);
  }
  let rest = '';
  for (let i = 0; i < 16; i++) rest += CROCKFORD[Math.floor(random() * 32)];
  return time + rest;
}

/** The parts a derived id can have, and parts that keep an id text although it starts with a ULID. */
export const CODED_PARTS = [
  ...[0, 1, 2].map((i) => `cold-${i}`),
  ...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `hot-${i}`),
  ...[0, 1, 2, 3, 4, 5].map((i) => `shard-${i}`),
];
export const TEXT_PARTS = ['hot-10', 'hot-11', 'hot-1.r2s', 'shard-3.m1k', 'cold-0.x9', 'shard-6', 'hot-'];

/**
 * `count` ids of both kinds for write ids from `random`: derived ids, healer-suffixed and uncoded parts of the
 * same write ids (which sort among them as text), lower-case ULIDs, and ids tests choose.
 */
export function mixedIds(count: number, random: () => number): string[] {
  const ids = new Set<string>();
  const writeIds: string[] = [];
  while (ids.size < count) {
    const r = random();
    if (writeIds.length === 0 || r < 0.15) writeIds.push(ulidAt(1_700_000_000_000 + Math.floor(random() * 50), random));
    const writeId = writeIds[Math.floor(random() * writeIds.length)] as string;
    const kind = random();
    if (kind < 0.6) ids.add(`${writeId}.${CODED_PARTS[Math.floor(random() * CODED_PARTS.length)]}`);
    else if (kind < 0.8) ids.add(`${writeId}.${TEXT_PARTS[Math.floor(random() * TEXT_PARTS.length)]}`);
    else if (kind < 0.87) ids.add(`${writeId.toLowerCase()}.hot-0`);
    else if (kind < 0.93) ids.add(`${writeId}`);
    else ids.add(`id${String(Math.floor(random() * 1000)).padStart(4, '0')}.hot-${Math.floor(random() * 3)}`);
  }
  return [...ids];
}

/** A location whose needle framing is what v1 and v2 needles have: head, data, 4-byte CRC, padding to 8. */
export function needleLocation(n: number, random: () => number, corrupt = false): NeedleLocation {
  const size = Math.floor(random() * 5000);
  const head = 36 + Math.floor(random() * 400);
  return { volume: 1 + (n % 5), offset: 64 + 8 * n, needleBytes: Math.ceil((head + size + 4) / 8) * 8, size, corrupt };
}

/** A location no main-run entry can hold: its framing takes more than 16 bits, or less than nothing. */
export function oddLocation(n: number): NeedleLocation {
  return n % 2 === 0
    ? { volume: 2, offset: 8 * n, needleBytes: 80_000, size: 100, corrupt: false }
    : { volume: 3, offset: 8 * n, needleBytes: 16, size: 700, corrupt: false };
}

/** A format 1 checkpoint (the previous release's): header, volumes, five u32 arrays and one u8, the ids, CRC. */
export function encodeFormat1Checkpoint(
  entries: ReadonlyArray<{ id: string; location: NeedleLocation }>,
  volumes: readonly CheckpointVolume[],
  nextSeq: number,
  createdAtMs: number,
): Buffer {
  const sorted = [...entries].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const n = sorted.length;
  const arenaBytes = sorted.reduce((sum, e) => sum + e.id.length, 0);
  const out = Buffer.alloc(48 + 16 * volumes.length + 21 * n + arenaBytes + 4);
  out.writeUInt32LE(0x49525453, 0);
  out.writeUInt16LE(1, 4);
  out.writeUInt32LE(volumes.length, 8);
  out.writeUInt32LE(n, 12);
  out.writeUInt32LE(arenaBytes, 16);
  out.writeUInt32LE(nextSeq, 24);
  out.writeUInt32LE(createdAtMs % 2 ** 32, 32);
  out.writeUInt32LE(Math.floor(createdAtMs / 2 ** 32), 36);
  let at = 48;
  for (const v of volumes) {
    out.writeUInt32LE(v.volume, at);
    out.writeUInt32LE(v.revision, at + 4);
    out.writeUInt32LE(v.coveredBytes, at + 8);
    at += 16;
  }
  const column = (value: (e: { id: string; location: NeedleLocation }, i: number) => number): void => {
    sorted.forEach((e, i) => out.writeUInt32LE(value(e, i), at + 4 * i));
    at += 4 * n;
  };
  let end = 0;
  column((e) => (end += e.id.length));
  column((e) => e.location.volume);
  column((e) => e.location.offset / 8);
  column((e) => e.location.needleBytes);
  column((e) => e.location.size);
  sorted.forEach((e, i) => out.writeUInt8(e.location.corrupt ? 2 : 0, at + i));
  at += n;
  for (const e of sorted) at += out.write(e.id, at, 'latin1');
  out.writeUInt32LE(crc32c(out, 0, 0, at), at);
  return out;
}
