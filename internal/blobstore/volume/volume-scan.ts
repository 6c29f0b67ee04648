/**
 * Sequential scans of a volume: the tail scan after a crash, the full rebuild of the index when no usable
 * checkpoint exists, and compaction's copy pass. Reads go through a window of SCAN_WINDOW_BYTES, so a scan costs
 * one read per window, not one per needle.
 *
 * What a scan reports at each position:
 * - `needle`: a head that decodes (magic, lengths, head CRC) with the whole needle inside the scanned range;
 *   `dataIntact` says whether the data CRC matched. A needle whose data does not match but that is followed by a
 *   valid needle is *corrupt* (rot, or a write torn out of order); if nothing valid follows it, it is the torn
 *   last write of a crash, and the scan reports `torn` instead.
 * - `garbage`: bytes that are not a needle, skipped up to the next position where a valid needle starts.
 * - `torn`: from here to the end nothing is a valid needle: the tail a crash tore. Recovery truncates it.
 * - `known`: an offset the caller said holds a needle of a given length (compaction's live needles): reported
 *   with its raw bytes whether or not they verify, so that a rotted live needle is copied (and stays reported as
 *   corrupt) instead of being mistaken for the end of the data.
 */
import { assert } from '../../core/assert.js';
import {
  NEEDLE_ALIGN_BYTES,
  NEEDLE_HEAD_BYTES_MAX,
  NEEDLE_MAGIC,
  NEEDLE_V2_FIXED_BYTES,
  NEEDLE_V2_MAGIC,
  decodeNeedleHead,
  needleDataIntact,
  type NeedleHead,
} from './needle.js';
import type { VolumeFile } from './volume-fs.js';

/** Bytes read per scan read. Needles larger than this are read on their own. */
export const SCAN_WINDOW_BYTES = 4 * 1024 * 1024;

export type ScanItem =
  | {
      kind: 'needle';
      offset: number;
      head: NeedleHead;
      headBytes: number;
      needleBytes: number;
      dataIntact: boolean;
      /** The needle's bytes; valid only until the scan moves on. */
      raw: Buffer;
    }
  | { kind: 'known'; offset: number; needleBytes: number; raw: Buffer }
  | { kind: 'garbage'; offset: number; bytes: number; reason: string }
  | { kind: 'torn'; offset: number; reason: string };

/** Reads a byte range of a file through a reusable window. */
export class WindowReader {
  private window: Buffer;
  private windowStart = 0;
  private windowBytes = 0;
  /** Reads issued, for the store's counters. */
  reads = 0;

  constructor(
    private readonly file: VolumeFile,
    private readonly end: number,
    private readonly windowMax = SCAN_WINDOW_BYTES,
  ) {
    this.window = Buffer.allocUnsafeSlow(windowMax);
  }

  /** Bytes [position, position + length) clipped at the end; a view valid until the next call. */
  async view(position: number, length: number): Promise<Buffer> {
    const want = Math.max(0, Math.min(length, this.end - position));
    if (position >= this.windowStart && position + want <= this.windowStart + this.windowBytes) {
      return this.window.subarray(position - this.windowStart, position - this.windowStart + want);
    }
    if (want > this.windowMax) {
      const own = Buffer.allocUnsafeSlow(want);
      const got = await this.readInto(own, want, position);
      return own.subarray(0, got);
    }
    const fill = Math.min(this.windowMax, this.end - position);
    this.windowStart = position;
    this.windowBytes = await this.readInto(this.window, fill, position);
    return this.window.subarray(0, Math.min(want, this.windowBytes));
  }

  private async readInto(target: Buffer, length: number, position: number): Promise<number> {
    let done = 0;
    while (done < length) {
      this.reads += 1;
      const n = await this.file.read(target, done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }
}

/**
 * Scans `[from, end)` of a volume file. `known` maps offsets to needle lengths the caller vouches for (see above);
 * it must be sorted by offset.
 */
export async function* scanVolume(
  file: VolumeFile,
  from: number,
  end: number,
  known: ReadonlyArray<{ offset: number; needleBytes: number }> = [],
): AsyncGenerator<ScanItem> {
  assert(from % NEEDLE_ALIGN_BYTES === 0, 'scans start at an aligned offset');
  const reader = new WindowReader(file, end);
  let k = 0;
  let position = from;
  while (position < end) {
    while (k < known.length && (known[k] as { offset: number }).offset < position) k++;
    const nextKnown = known[k];
    if (nextKnown !== undefined && nextKnown.offset === position) {
      const raw = await reader.view(position, nextKnown.needleBytes);
      assert(raw.length === nextKnown.needleBytes, 'a known needle lies inside the volume');
      yield { kind: 'known', offset: position, needleBytes: nextKnown.needleBytes, raw };
      position += nextKnown.needleBytes;
      continue;
    }
    const limit = nextKnown?.offset ?? end;
    const parsed = await readNeedleAt(reader, position, limit);
    if (parsed.kind === 'needle' && parsed.dataIntact) {
      yield parsed;
      position += parsed.needleBytes;
      continue;
    }
    // Something is wrong here. Find where the data continues: the next known needle, or the next valid one.
    const resumeFrom = parsed.kind === 'needle' ? position + parsed.needleBytes : position + NEEDLE_ALIGN_BYTES;
    const next = await findValidNeedle(reader, resumeFrom, limit);
    const resume = next ?? (nextKnown !== undefined ? nextKnown.offset : null);
    if (resume === null) {
      yield { kind: 'torn', offset: position, reason: parsed.kind === 'needle' ? 'data CRC-32C mismatch' : parsed.reason };
      return;
    }
    if (parsed.kind === 'needle') {
      // A head that verified, data that did not, and valid data after it: this needle rotted (or was torn out of
      // order by a crash); its id is reported so that the store can list it as corrupt. The search above moved
      // the window, so the needle's bytes are read again.
      yield { ...parsed, raw: await reader.view(position, parsed.needleBytes) };
      if (resume > position + parsed.needleBytes) {
        const at = position + parsed.needleBytes;
        yield { kind: 'garbage', offset: at, bytes: resume - at, reason: 'no needle starts here' };
      }
    } else {
      yield { kind: 'garbage', offset: position, bytes: resume - position, reason: parsed.reason };
    }
    position = resume;
  }
}

type Parsed = Extract<ScanItem, { kind: 'needle' }> | { kind: 'invalid'; reason: string };

async function readNeedleAt(reader: WindowReader, position: number, limit: number): Promise<Parsed> {
  const headView = await reader.view(position, Math.min(NEEDLE_HEAD_BYTES_MAX, limit - position));
  const decoded = decodeNeedleHead(headView, 0, headView.length, false);
  if (decoded.state === 'short') return { kind: 'invalid', reason: 'needle head runs past the end' };
  if (decoded.state === 'invalid') return { kind: 'invalid', reason: decoded.reason };
  if (position + decoded.needleBytes > limit) return { kind: 'invalid', reason: 'needle runs past the end' };
  const raw = await reader.view(position, decoded.needleBytes);
  return {
    kind: 'needle',
    offset: position,
    head: decoded.head,
    headBytes: decoded.headBytes,
    needleBytes: decoded.needleBytes,
    dataIntact: needleDataIntact(raw, 0, decoded.headBytes, decoded.head),
    raw,
  };
}

/**
 * The first aligned offset in [from, limit) where a needle (either version: a format-3 volume holds both) with a
 * valid head and valid data starts, or null.
 */
async function findValidNeedle(reader: WindowReader, from: number, limit: number): Promise<number | null> {
  // The shortest head of either version: no needle starts closer to the end than this.
  for (let position = from; position + NEEDLE_V2_FIXED_BYTES <= limit; position += NEEDLE_ALIGN_BYTES) {
    const probe = await reader.view(position, 4);
    const magic = probe.length === 4 ? probe.readUInt32BE(0) : 0;
    if (magic !== NEEDLE_MAGIC && magic !== NEEDLE_V2_MAGIC) continue;
    const parsed = await readNeedleAt(reader, position, limit);
    if (parsed.kind === 'needle' && parsed.dataIntact) return position;
  }
  return null;
}
