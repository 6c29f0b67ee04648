/**
 * One volume: an append-only file of needles behind a 64-byte superblock (README.md has both layouts). The
 * highest-numbered volume is the *active* one that takes appends; every other volume is *sealed*: nothing is ever
 * appended to it again, only compaction replaces it, whole, by a new revision under the same number. Sealing
 * therefore needs no write of its own: creating volume N + 1 (durably) seals volume N.
 *
 * Readers *pin* the file they read from. Compaction swaps in a new file; the old one is closed only once the last
 * read pinned to it has finished, so a read that looked up an offset in the old revision never reads the new one.
 */
import path from 'node:path';
import { assert } from '../../core/assert.js';
import { StrataError } from '../../core/errors.js';
import { crc32c } from './crc32c.js';
import { readU64, writeU64 } from './needle.js';
import type { VolumeFile, VolumeFs } from './volume-fs.js';

/** "STRV": Strata volume. */
export const VOLUME_MAGIC = 0x53545256;
/**
 * Version 2 adds `firstVolume` (bytes 48 to 51) for a volume that a merge wrote (merge.ts); every other superblock
 * is still written as version 1, so a directory in which no merge ran stays readable by the previous release.
 */
export const VOLUME_FORMAT_VERSION = 2;
/** The version of a superblock without `firstVolume` (it equals the volume number). */
export const VOLUME_FORMAT_VERSION_UNMERGED = 1;
/**
 * Version 3: the volume may hold version-2 needles beside version-1 ones (needle.ts). Laid out as version 2
 * (`firstVolume` always present, equal to the volume number unless merged). Written only once the store has put a
 * version-2 needle, so that a store that never did stays readable by the previous release, which refuses it.
 */
export const VOLUME_FORMAT_VERSION_V2_NEEDLES = 3;
export const SUPERBLOCK_BYTES = 64;
/** Volume numbers are 8 decimal digits in file names. */
export const VOLUME_NUMBER_MAX = 99_999_999;
const VOLUME_FILE_PATTERN = /^(\d{8})\.vol$/;
/** Suffix of a volume being created (superblock not yet durable under its name); deleted on open. */
export const VOLUME_NEW_SUFFIX = '.new';
/** Suffix of a compacted copy not yet swapped in; deleted on open. */
export const VOLUME_COMPACT_SUFFIX = '.compact';
/** Suffix of a merged copy not yet renamed over the last of its sources; deleted on open. */
export const VOLUME_MERGE_SUFFIX = '.merge';

export interface Superblock {
  volume: number;
  /** 0 when created, + 1 per compaction. */
  revision: number;
  /** The store's next sequence number when revision 0 was created: a floor for sequence numbers after a restart. */
  createdAtSeq: number;
  /**
   * Revisions >= 1: every tombstone with a smaller sequence number was already in effect when the compaction that
   * wrote this revision chose which needles were live (compaction.ts). 0 for revision 0.
   */
  compactedBeforeSeq: number;
  /** Bytes of tombstones the compaction that wrote this revision had to keep. */
  pinnedBytes: number;
  createdAtMs: number;
  /**
   * The lowest volume number whose needles this file may hold: the volume's own number unless a merge wrote it,
   * in which case every volume numbered from here up to this one was merged into it (merge.ts). Version 1 files
   * do not carry it (it equals `volume`).
   */
  firstVolume: number;
  /** Format 3: the volume may hold version-2 needles. Absent (false) for formats 1 and 2. */
  v2Needles?: boolean;
}

export function encodeSuperblock(sb: Superblock): Buffer {
  assert(Number.isInteger(sb.volume) && sb.volume >= 1 && sb.volume <= VOLUME_NUMBER_MAX, 'volume in [1, VOLUME_NUMBER_MAX]');
  assert(Number.isInteger(sb.revision) && sb.revision >= 0 && sb.revision <= 0xffffffff, 'revision is u32');
  for (const field of ['createdAtSeq', 'compactedBeforeSeq', 'pinnedBytes', 'createdAtMs'] as const) {
    assert(Number.isSafeInteger(sb[field]) && sb[field] >= 0, `superblock ${field} is a non-negative safe integer`);
  }
  assert(Number.isInteger(sb.firstVolume) && sb.firstVolume >= 1 && sb.firstVolume <= sb.volume, 'firstVolume in [1, volume]');
  const merged = sb.firstVolume !== sb.volume;
  const out = Buffer.alloc(SUPERBLOCK_BYTES);
  out.writeUInt32BE(VOLUME_MAGIC, 0);
  const version = sb.v2Needles === true ? VOLUME_FORMAT_VERSION_V2_NEEDLES : merged ? VOLUME_FORMAT_VERSION : VOLUME_FORMAT_VERSION_UNMERGED;
  out.writeUInt16BE(version, 4);
  out.writeUInt32BE(sb.volume, 8);
  out.writeUInt32BE(sb.revision, 12);
  writeU64(out, sb.createdAtSeq, 16);
  writeU64(out, sb.compactedBeforeSeq, 24);
  writeU64(out, sb.pinnedBytes, 32);
  writeU64(out, sb.createdAtMs, 40);
  if (version !== VOLUME_FORMAT_VERSION_UNMERGED) out.writeUInt32BE(sb.firstVolume, 48);
  out.writeUInt32BE(crc32c(out, 0, 0, 60), 60);
  return out;
}

/** The superblock, or the violated condition. `volume` is the number the file name carries. */
export function decodeSuperblock(buf: Buffer, volume: number): Superblock | string {
  if (buf.length < SUPERBLOCK_BYTES) return 'file shorter than the superblock';
  if (buf.readUInt32BE(0) !== VOLUME_MAGIC) return 'magic != "STRV"';
  if (crc32c(buf, 0, 0, 60) !== buf.readUInt32BE(60)) return 'superblock CRC-32C mismatch';
  const version = buf.readUInt16BE(4);
  // A later format would be read by the code that knows it; this code refuses rather than guess.
  if (version !== VOLUME_FORMAT_VERSION && version !== VOLUME_FORMAT_VERSION_UNMERGED && version !== VOLUME_FORMAT_VERSION_V2_NEEDLES) {
    return `volume format ${version} is not ${VOLUME_FORMAT_VERSION_UNMERGED}, ${VOLUME_FORMAT_VERSION} or ${VOLUME_FORMAT_VERSION_V2_NEEDLES}`;
  }
  const hasFirstVolume = version !== VOLUME_FORMAT_VERSION_UNMERGED;
  const reservedFrom = hasFirstVolume ? 52 : 48;
  if (buf.readUInt16BE(6) !== 0 || !buf.subarray(reservedFrom, 60).equals(Buffer.alloc(60 - reservedFrom))) {
    return 'reserved bytes != 0';
  }
  const sb: Superblock = {
    volume: buf.readUInt32BE(8),
    revision: buf.readUInt32BE(12),
    createdAtSeq: readU64(buf, 16),
    compactedBeforeSeq: readU64(buf, 24),
    pinnedBytes: readU64(buf, 32),
    createdAtMs: readU64(buf, 40),
    firstVolume: hasFirstVolume ? buf.readUInt32BE(48) : buf.readUInt32BE(8),
  };
  if (version === VOLUME_FORMAT_VERSION_V2_NEEDLES) sb.v2Needles = true;
  if (sb.volume !== volume) return `superblock volume ${sb.volume} != file name ${volume}`;
  if (version === VOLUME_FORMAT_VERSION && (sb.firstVolume < 1 || sb.firstVolume >= sb.volume)) {
    return `superblock firstVolume ${sb.firstVolume} is not below volume ${sb.volume}`;
  }
  if (version === VOLUME_FORMAT_VERSION_V2_NEEDLES && (sb.firstVolume < 1 || sb.firstVolume > sb.volume)) {
    return `superblock firstVolume ${sb.firstVolume} is not in [1, volume ${sb.volume}]`;
  }
  for (const field of ['createdAtSeq', 'compactedBeforeSeq', 'pinnedBytes', 'createdAtMs'] as const) {
    if (!Number.isSafeInteger(sb[field])) return `superblock ${field} is not a safe integer`;
  }
  return sb;
}

/**
 * The version of a superblock that is whole (magic and CRC hold) but of a format this code does not know, or null.
 * Such a volume was written by a later release, not damaged: reading it as damaged would take its needles for
 * garbage and cut them off as a torn tail, so the store refuses to open instead.
 */
export function unknownSuperblockFormat(buf: Buffer): number | null {
  if (buf.length < SUPERBLOCK_BYTES || buf.readUInt32BE(0) !== VOLUME_MAGIC) return null;
  if (crc32c(buf, 0, 0, 60) !== buf.readUInt32BE(60)) return null;
  const version = buf.readUInt16BE(4);
  const known = version === VOLUME_FORMAT_VERSION_UNMERGED || version === VOLUME_FORMAT_VERSION || version === VOLUME_FORMAT_VERSION_V2_NEEDLES;
  return known ? null : version;
}

export function volumeFileName(volume: number): string {
  assert(Number.isInteger(volume) && volume >= 1 && volume <= VOLUME_NUMBER_MAX, 'volume in [1, VOLUME_NUMBER_MAX]');
  return `${String(volume).padStart(8, '0')}.vol`;
}

/** The volume number a file name carries, or null for any other file. */
export function parseVolumeFileName(name: string): number | null {
  const match = VOLUME_FILE_PATTERN.exec(name);
  if (match === null) return null;
  const volume = Number(match[1]);
  return volume >= 1 ? volume : null;
}

/** A file handle shared by the reads pinned to it; closed once retired and unpinned. */
export interface PinnedFile {
  readonly file: VolumeFile;
  pins: number;
  retired: boolean;
  /** Resolves once the handle is closed. */
  readonly closed: Promise<void>;
  markClosed: () => void;
  closing: boolean;
}

function pinnedFile(file: VolumeFile): PinnedFile {
  let markClosed = (): void => undefined;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  return { file, pins: 0, retired: false, closed, markClosed, closing: false };
}

export class Volume {
  readonly number: number;
  /** null when the superblock did not decode: the needles are still read, compaction treats it cautiously. */
  superblock: Superblock | null;
  /** Length of the file: the next append goes here. */
  fileBytes: number;
  /** Needles below this are durable and applied to the index; an index checkpoint covers up to here. */
  appliedBytes: number;
  /** Bytes of the needles the index points at in this volume. */
  liveBytes = 0;
  private current: PinnedFile;
  private readonly retiredFiles = new Set<PinnedFile>();

  constructor(number: number, file: VolumeFile, superblock: Superblock | null, fileBytes: number) {
    assert(Number.isInteger(number) && number >= 1 && number <= VOLUME_NUMBER_MAX, 'volume in [1, VOLUME_NUMBER_MAX]');
    this.number = number;
    this.superblock = superblock;
    this.fileBytes = fileBytes;
    this.appliedBytes = fileBytes;
    this.current = pinnedFile(file);
  }

  get revision(): number {
    return this.superblock?.revision ?? -1;
  }

  /** Format 3: version-2 needles may be appended here (a store that writes them rotates into such a volume). */
  get holdsV2Needles(): boolean {
    return this.superblock?.v2Needles === true;
  }

  /** The lowest volume number whose needles this file may hold (merge.ts); its own number unless merged. */
  get firstVolume(): number {
    return this.superblock?.firstVolume ?? this.number;
  }

  /** Bytes that are neither the superblock nor a live needle: dead needles, tombstones, torn tails. */
  get garbageBytes(): number {
    return Math.max(0, this.fileBytes - SUPERBLOCK_BYTES - this.liveBytes);
  }

  /**
   * Creates volume `number` durably: the superblock goes to a temp name, is fsynced, then renamed into place and
   * the directory fsynced, so a volume file under its real name always starts with a whole superblock.
   */
  static async create(fs: VolumeFs, dir: string, superblock: Superblock): Promise<Volume> {
    const finalPath = path.join(dir, volumeFileName(superblock.volume));
    const tempPath = finalPath + VOLUME_NEW_SUFFIX;
    const file = await fs.open(tempPath, 'wx');
    try {
      await file.writev([encodeSuperblock(superblock)], 0);
      await file.datasync();
      await fs.rename(tempPath, finalPath);
      await fs.fsyncDir(dir);
    } catch (err) {
      await file.close().catch(() => undefined);
      await fs.unlink(tempPath).catch(() => undefined);
      throw err;
    }
    return new Volume(superblock.volume, file, superblock, SUPERBLOCK_BYTES);
  }

  /**
   * Opens an existing volume file for reads and appends; the superblock is decoded, not trusted blindly. A whole
   * superblock of an unknown (later) format is FORMAT_UNSUPPORTED: nothing in the file is touched.
   */
  static async open(fs: VolumeFs, dir: string, number: number): Promise<{ volume: Volume; superblockError?: string }> {
    const file = await fs.open(path.join(dir, volumeFileName(number)), 'r+');
    try {
      const fileBytes = await file.size();
      const buf = Buffer.alloc(SUPERBLOCK_BYTES);
      const read = await file.read(buf, 0, SUPERBLOCK_BYTES, 0);
      const decoded = decodeSuperblock(buf.subarray(0, read), number);
      const unknown = unknownSuperblockFormat(buf.subarray(0, read));
      if (unknown !== null) {
        throw new StrataError(
          'FORMAT_UNSUPPORTED',
          `volume ${volumeFileName(number)} in ${dir} is format ${unknown}, written by a later release: this release reads formats ` +
            `${VOLUME_FORMAT_VERSION_UNMERGED} to ${VOLUME_FORMAT_VERSION_V2_NEEDLES}; run the release that wrote it`,
        );
      }
      if (typeof decoded === 'string') {
        return { volume: new Volume(number, file, null, Math.max(fileBytes, SUPERBLOCK_BYTES)), superblockError: decoded };
      }
      return { volume: new Volume(number, file, decoded, fileBytes) };
    } catch (err) {
      await file.close().catch(() => undefined);
      throw err;
    }
  }

  /** The file reads go to now; pair with unpin(). */
  pin(): PinnedFile {
    this.current.pins += 1;
    return this.current;
  }

  unpin(pinned: PinnedFile): void {
    assert(pinned.pins > 0, 'unpin of a pinned file');
    pinned.pins -= 1;
    if (pinned.retired && pinned.pins === 0) this.closeRetired(pinned);
  }

  /** The current file, for appends by the one writer (group commit) and for compaction's sequential reads. */
  get file(): VolumeFile {
    return this.current.file;
  }

  /** Compaction's swap: the new revision's file takes over; the old one closes after its last pinned read. */
  replaceFile(file: VolumeFile, superblock: Superblock, fileBytes: number): void {
    const old = this.current;
    this.current = pinnedFile(file);
    this.superblock = superblock;
    this.fileBytes = fileBytes;
    this.appliedBytes = fileBytes;
    this.retire(old);
  }

  /** Stops using the file (the volume was closed or deleted); resolves once it is closed. */
  async close(): Promise<void> {
    this.retire(this.current);
    await Promise.all([...this.retiredFiles].map((f) => f.closed));
  }

  private retire(pinned: PinnedFile): void {
    if (pinned.retired) return;
    pinned.retired = true;
    this.retiredFiles.add(pinned);
    if (pinned.pins === 0) this.closeRetired(pinned);
  }

  private closeRetired(pinned: PinnedFile): void {
    if (pinned.closing) return;
    pinned.closing = true;
    // Every durable byte was fsynced before it was acknowledged, so a failing close loses nothing; there is nothing
    // useful to do with its error.
    void pinned.file
      .close()
      .catch(() => undefined)
      .then(() => {
        this.retiredFiles.delete(pinned);
        pinned.markClosed();
      });
  }
}
