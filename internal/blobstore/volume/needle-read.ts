/**
 * Reading one needle at the location the index gives: the whole needle in one positioned read (get, verify, scrub),
 * or only its head (stat, list). Every check the format allows is made; any failure, or an EIO from the disk, is
 * reported as corrupt with the violated condition, never thrown, and never returned as data.
 */
import { createHash } from 'node:crypto';
import { errnoCode } from '../durable-fs.js';
import type { NeedleLocation } from './needle-index.js';
import { NEEDLE_V2_CHECKSUM_BYTES, decodeNeedleHead, needleDataIntact, type NeedleHead } from './needle.js';
import type { PinnedFile } from './volume.js';

/** Bytes read for a head-only read: enough for the head of any needle whose key and meta are modest. */
export const HEAD_READ_BYTES = 2048;

export type NeedleRead =
  | { state: 'ok'; head: NeedleHead; raw: Buffer; headBytes: number }
  | { state: 'corrupt'; reason: string; head?: NeedleHead };

export interface ReadCounter {
  reads: number;
}

/**
 * The whole needle at `location`, checked: head (magic, lengths, CRC), id, size and length as the index has them,
 * data CRC, and with `sha256` the payload's sha256 (version 2: its first 64 bits) against the head's checksum too (verify and scrub; get relies on
 * the CRC, and the gateway checks the sha256 end to end).
 */
export async function readWholeNeedle(
  pinned: PinnedFile,
  location: NeedleLocation,
  id: string,
  counter: ReadCounter,
  options: { sha256: boolean },
): Promise<NeedleRead> {
  // Its own ArrayBuffer, never a slice of Node's shared pool: the payload handed out is a view into it.
  const raw = Buffer.allocUnsafeSlow(location.needleBytes);
  const read = await readAt(pinned, raw, location.needleBytes, location.offset, counter);
  if (typeof read === 'string') return { state: 'corrupt', reason: read };
  const decoded = decodeNeedleHead(raw, 0, read);
  if (decoded.state !== 'ok') {
    return { state: 'corrupt', reason: decoded.state === 'short' ? 'needle shorter than its head' : decoded.reason };
  }
  const { head, headBytes } = decoded;
  const mismatch = checkAgainstIndex(head, decoded.needleBytes, location, id);
  if (mismatch !== null) return { state: 'corrupt', reason: mismatch, head };
  if (read < location.needleBytes) return { state: 'corrupt', reason: 'needle cut short by the end of the file', head };
  if (!needleDataIntact(raw, 0, headBytes, head)) return { state: 'corrupt', reason: 'data CRC-32C mismatch', head };
  if (options.sha256) {
    const sum = createHash('sha256').update(raw.subarray(headBytes, headBytes + head.size)).digest('hex');
    // Version 2 keeps the first 64 bits.
    const stored = head.format === 2 ? sum.slice(0, NEEDLE_V2_CHECKSUM_BYTES * 2) : sum;
    if (stored !== head.checksum) return { state: 'corrupt', reason: 'payload sha256 != head checksum', head };
  }
  return { state: 'ok', head, raw, headBytes };
}

/** The head only: one read of HEAD_READ_BYTES, a second one only for a head larger than that. */
export async function readNeedleHead(
  pinned: PinnedFile,
  location: NeedleLocation,
  id: string,
  counter: ReadCounter,
): Promise<NeedleRead> {
  let want = Math.min(location.needleBytes, HEAD_READ_BYTES);
  for (let attempt = 0; attempt < 2; attempt++) {
    const raw = Buffer.allocUnsafe(want);
    const read = await readAt(pinned, raw, want, location.offset, counter);
    if (typeof read === 'string') return { state: 'corrupt', reason: read };
    const decoded = decodeNeedleHead(raw, 0, read);
    if (decoded.state === 'short' && read === want && decoded.bytesNeeded <= location.needleBytes && attempt === 0) {
      want = decoded.bytesNeeded;
      continue;
    }
    if (decoded.state !== 'ok') {
      return { state: 'corrupt', reason: decoded.state === 'short' ? 'needle shorter than its head' : decoded.reason };
    }
    const mismatch = checkAgainstIndex(decoded.head, decoded.needleBytes, location, id);
    if (mismatch !== null) return { state: 'corrupt', reason: mismatch, head: decoded.head };
    return { state: 'ok', head: decoded.head, raw, headBytes: decoded.headBytes };
  }
  return { state: 'corrupt', reason: 'needle head longer than its needle' };
}

/** The head must describe the needle the index points at; otherwise the bytes there are not that blob's. */
function checkAgainstIndex(head: NeedleHead, needleBytes: number, location: NeedleLocation, id: string): string | null {
  if (head.tombstone) return 'a tombstone where a blob was expected';
  if (head.id !== id) return `needle id ${head.id} != ${id}`;
  if (head.size !== location.size || needleBytes !== location.needleBytes) return 'needle length != index';
  return null;
}

/** One positioned read (a second only if the first comes back short); an EIO is corruption, not a crash. */
async function readAt(
  pinned: PinnedFile,
  target: Buffer,
  length: number,
  position: number,
  counter: ReadCounter,
): Promise<number | string> {
  let done = 0;
  try {
    while (done < length) {
      counter.reads += 1;
      const n = await pinned.file.read(target, done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    if (errnoCode(err) === 'EIO') return 'read error EIO';
    throw err;
  }
  return done;
}
