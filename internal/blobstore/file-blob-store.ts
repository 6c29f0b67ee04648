/**
 * A BlobStore with one file per blob (README.md in this folder has the layout, byte by byte). Simple on purpose:
 * the storage nodes run Haystack-style volumes (volume/) instead. What it must get right is durability and
 * integrity:
 *
 * - put writes a temp file, fsyncs it, renames it into place and fsyncs the directory before it resolves, so an
 *   acknowledged blob survives a crash and a crash mid-put never leaves a torn blob under its id;
 * - every read checks the payload's sha256, and a failed check marks the id corrupt until it is replaced;
 * - an id is validated before it becomes part of a path, so no id can name a file outside `dir`.
 *
 * An in-memory index (id -> BlobInfo), built on open from the headers, answers stat, list and usage without I/O.
 * Puts and deletes of one id are serialised; different ids proceed concurrently.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, statfs, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { assert } from '../core/assert.js';
import { systemClock, type Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import { isValidBlobId } from '../core/ids.js';
import { LIMITS } from '../core/limits.js';
import { encodeBlobHead, sha256Hex } from './blob-file-format.js';
import { checkBlob, readBlob, readBlobHead, type BlobFileState } from './blob-file-read.js';
import type { BlobHeader, BlobInfo, BlobStore, StoreUsage } from './blob-store.js';
import { errnoCode, fsyncDir, writeAll } from './durable-fs.js';
import { KeyedMutex } from '../core/keyed-mutex.js';
import { SortedIds } from './sorted-ids.js';
import { requireValidId, sameBlob, validateHeader as validateSharedHeader } from './blob-input.js';

/** Bytes of `writeId` and of `part` in a header. Blob ids are at most 128 characters, and so are these. */
export const BLOB_NAME_BYTES_MAX = 128;
/** Headers read in parallel while building the index on open. */
export const OPEN_CONCURRENCY_DEFAULT = 32;
/** Longest single sleep of a scrub, so that an abort is noticed promptly even when the clock cannot be cancelled. */
const SCRUB_SLEEP_SLICE_MS = 250;
/** Shard directories are named by the first byte of sha256(id), as two lowercase hex digits. */
const SHARD_NAME_PATTERN = /^[0-9a-f]{2}$/;

export interface FileBlobStoreOptions {
  /** Data directory; created when absent. The store owns everything under it. */
  dir: string;
  clock?: Clock;
  /**
   * When set, a put that would take the bytes on disk beyond it fails with DISK_FULL, and usage().bytesFree is
   * `capacityBytes - bytesUsed`. Lets an operator cap a node, and tests simulate a full disk.
   */
  capacityBytes?: number;
  openConcurrency?: number;
}

export interface ScrubOptions {
  /** Average read rate of the pass, payload and header bytes per second. */
  bytesPerSecMax: number;
  /** Stops the pass early; the report then has `aborted: true`. */
  signal?: AbortSignal;
}

export interface ScrubReport {
  /** Ids whose bytes no longer match their checksum (or whose file is unreadable), in id order. */
  corrupt: string[];
  blobsChecked: number;
  bytesChecked: number;
  aborted: boolean;
}

interface IndexEntry {
  info: BlobInfo;
  /** Bytes of the whole file (prefix, header and payload). */
  fileBytes: number;
}

/** Path of blob `id`'s file under a store directory. The id must be valid (a programmer error otherwise). */
export function blobFilePath(dir: string, id: string): string {
  assert(isValidBlobId(id), 'blob id is valid before it becomes a path');
  const blobsDir = path.resolve(dir, 'blobs');
  const file = path.join(blobsDir, shardOf(id), id);
  assert(file.startsWith(blobsDir + path.sep), 'blob path stays inside the blobs directory');
  return file;
}

function shardOf(id: string): string {
  return createHash('sha256').update(id, 'ascii').digest('hex').slice(0, 2);
}

export class FileBlobStore implements BlobStore {
  readonly dir: string;
  private readonly blobsDir: string;
  private readonly tmpDir: string;
  private readonly clock: Clock;
  private readonly capacityBytes: number | undefined;
  private readonly index = new Map<string, IndexEntry>();
  private readonly ids: SortedIds;
  private readonly locks = new KeyedMutex();
  /** Shard directories known to exist (and to be durable); the others are created on first use. */
  private readonly shards: Set<string>;
  private bytesUsed = 0;
  private payloadBytes = 0;
  /** Bytes of puts in progress, counted against capacityBytes so concurrent puts cannot overshoot it. */
  private bytesReserved = 0;
  private closed = false;

  private constructor(options: FileBlobStoreOptions, shards: string[], entries: IndexEntry[]) {
    this.dir = path.resolve(options.dir);
    this.blobsDir = path.join(this.dir, 'blobs');
    this.tmpDir = path.join(this.dir, 'tmp');
    this.clock = options.clock ?? systemClock;
    this.capacityBytes = options.capacityBytes;
    for (const entry of entries) {
      this.index.set(entry.info.id, entry);
      this.bytesUsed += entry.fileBytes;
      this.payloadBytes += entry.info.size;
    }
    this.ids = SortedIds.from(this.index.keys());
    this.shards = new Set(shards);
  }

  /**
   * Opens (creating if needed) the store in `options.dir`: removes the temp files of puts a crash interrupted,
   * then reads every blob's header into the index. Payloads are not checked here; scrub does that.
   */
  static async open(options: FileBlobStoreOptions): Promise<FileBlobStore> {
    assert(typeof options.dir === 'string' && options.dir.length > 0, 'options.dir is a non-empty path');
    const capacity = options.capacityBytes;
    assert(capacity === undefined || (Number.isSafeInteger(capacity) && capacity >= 0), 'capacityBytes >= 0');
    const concurrency = options.openConcurrency ?? OPEN_CONCURRENCY_DEFAULT;
    assert(Number.isInteger(concurrency) && concurrency >= 1, 'openConcurrency >= 1');

    const dir = path.resolve(options.dir);
    const blobsDir = path.join(dir, 'blobs');
    const tmpDir = path.join(dir, 'tmp');
    const created = await mkdir(dir, { recursive: true });
    // A fresh data directory must itself survive a crash, or the blobs put into it would vanish with it.
    if (created !== undefined) await fsyncDir(path.dirname(created));
    await mkdir(blobsDir, { recursive: true });
    await mkdir(tmpDir, { recursive: true });
    await fsyncDir(dir);

    // A temp file is a put that never reached its rename: it was never acknowledged, so it goes.
    for (const name of await readdir(tmpDir)) await rm(path.join(tmpDir, name), { force: true, recursive: true });
    await fsyncDir(tmpDir);

    const shards = (await readdir(blobsDir)).filter((name) => SHARD_NAME_PATTERN.test(name));
    const ids: string[] = [];
    for (const shard of shards) {
      for (const name of await readdir(path.join(blobsDir, shard))) {
        // Anything else was not written by this store; leave it alone rather than guess.
        if (isValidBlobId(name) && shardOf(name) === shard) ids.push(name);
      }
    }
    const entries: IndexEntry[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ids.length) {
        const id = ids[next++] as string;
        const entry = await loadEntry(dir, id);
        if (entry !== null) entries.push(entry);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
    return new FileBlobStore(options, shards, entries);
  }

  async put(header: BlobHeader, data: Buffer): Promise<BlobInfo> {
    this.assertOpen();
    validateHeader(header);
    // The benchmark's baseline keeps format 1 only: storing a format-2 header here would drop its descriptor.
    if (header.format !== undefined || header.descriptor !== undefined) {
      throw new StrataError('INVALID_REQUEST', 'FileBlobStore stores format 1 blobs only; use the volume store for format 2');
    }
    assert(Buffer.isBuffer(data), 'data is a Buffer');
    if (data.length > LIMITS.blobBytesMax) {
      throw new StrataError('BLOB_TOO_LARGE', `blob is ${data.length} bytes; blobBytesMax is ${LIMITS.blobBytesMax}`);
    }
    // The caller must not change `data` until put resolves (as with fs.write).
    const checksum = sha256Hex(data);
    return this.locks.run(header.id, () => this.putLocked(header, data, checksum));
  }

  // A put or delete that was accepted before close() still completes: close waits for it.
  private async putLocked(header: BlobHeader, data: Buffer, checksum: string): Promise<BlobInfo> {
    const existing = this.index.get(header.id);
    if (existing !== undefined) {
      // Check the stored copy first: a corrupt copy is replaced, a good one decides between retry and conflict.
      const state = existing.info.corrupt === true ? 'corrupt' : await this.checkEntry(header.id, existing);
      if (state === 'ok') {
        if (sameBlob(existing.info, header, checksum, data.length)) return copyInfo(existing.info);
        throw new StrataError('BLOB_EXISTS', `blob ${header.id} exists with different bytes or header`);
      }
    }

    const stored = {
      id: header.id,
      key: header.key,
      writeId: header.writeId,
      part: header.part,
      meta: header.meta,
      size: data.length,
      checksum,
      createdAtMs: this.clock.nowMs(),
    };
    const head = encodeBlobHead(stored);
    const fileBytes = head.length + data.length;
    this.reserve(header.id, fileBytes);
    try {
      const finalPath = blobFilePath(this.dir, header.id);
      const tmpPath = path.join(this.tmpDir, `${header.id}.${randomBytes(8).toString('hex')}.tmp`);
      await writeTempFile(tmpPath, head, data);
      try {
        await this.ensureShardDir(path.dirname(finalPath));
        await rename(tmpPath, finalPath);
      } catch (err) {
        await rm(tmpPath, { force: true });
        throw err;
      }
      // From here the file is in place: index it even if the directory fsync fails, so a retry finds it.
      this.setEntry({ info: stored, fileBytes });
      await fsyncDir(path.dirname(finalPath));
      return copyInfo(stored);
    } catch (err) {
      throw diskFullOr(err, header.id);
    } finally {
      this.bytesReserved -= fileBytes;
    }
  }

  async get(id: string): Promise<{ info: BlobInfo; data: Buffer }> {
    this.assertOpen();
    requireValidId(id);
    const entry = this.index.get(id);
    if (entry === undefined) throw notFound(id);
    const result = await readBlob(blobFilePath(this.dir, id), id);
    this.noteState(id, entry, result);
    if (result.state === 'missing') throw notFound(id);
    if (result.state === 'corrupt') throw new StrataError('BLOB_CORRUPT', `blob ${id} is corrupt: ${result.reason}`);
    return { info: copyInfo(result.header), data: result.data };
  }

  async stat(id: string): Promise<BlobInfo | null> {
    this.assertOpen();
    requireValidId(id);
    const entry = this.index.get(id);
    return entry === undefined ? null : copyInfo(entry.info);
  }

  async delete(id: string): Promise<boolean> {
    this.assertOpen();
    requireValidId(id);
    return this.locks.run(id, async () => {
      if (!this.index.has(id)) return false;
      const file = blobFilePath(this.dir, id);
      try {
        await unlink(file);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      this.removeEntry(id);
      await fsyncDir(path.dirname(file));
      return true;
    });
  }

  async list(after: string | null, limit: number): Promise<BlobInfo[]> {
    this.assertOpen();
    if (after !== null && typeof after !== 'string') throw new StrataError('INVALID_CURSOR', 'after is not a string');
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.inventoryPageMax) {
      throw new StrataError('INVALID_LIMIT', `limit ${limit} is not an integer in [1, ${LIMITS.inventoryPageMax}]`);
    }
    return this.ids.after(after, limit).map((id) => copyInfo((this.index.get(id) as IndexEntry).info));
  }

  async verify(id: string): Promise<'ok' | 'corrupt' | 'missing'> {
    this.assertOpen();
    requireValidId(id);
    const entry = this.index.get(id);
    if (entry === undefined) return 'missing';
    return this.checkEntry(id, entry);
  }

  async usage(): Promise<StoreUsage> {
    this.assertOpen();
    let bytesFree: number;
    if (this.capacityBytes !== undefined) {
      bytesFree = Math.max(0, this.capacityBytes - this.bytesUsed - this.bytesReserved);
    } else {
      const fs = await statfs(this.dir);
      bytesFree = fs.bavail * fs.bsize;
    }
    return { blobs: this.index.size, payloadBytes: this.payloadBytes, bytesUsed: this.bytesUsed, bytesFree };
  }

  /**
   * One pass over every blob, in id order, checking payloads against their checksums at no more than
   * `bytesPerSecMax` on average, so that a background scrub never starves foreground reads. Blobs put during
   * the pass are checked when their id comes after the cursor; deleted ones are skipped.
   */
  async scrub(options: ScrubOptions): Promise<ScrubReport> {
    const { bytesPerSecMax, signal } = options;
    assert(Number.isFinite(bytesPerSecMax) && bytesPerSecMax > 0, 'scrub bytesPerSecMax > 0');
    const report: ScrubReport = { corrupt: [], blobsChecked: 0, bytesChecked: 0, aborted: false };
    const startMs = this.clock.nowMs();
    let cursor: string | null = null;
    for (;;) {
      if (signal?.aborted === true || this.closed) {
        report.aborted = true;
        return report;
      }
      const id: string | undefined = this.ids.after(cursor, 1)[0];
      if (id === undefined) return report;
      cursor = id;
      const entry = this.index.get(id);
      if (entry === undefined) continue;
      const state = await this.checkEntry(id, entry);
      if (state === 'corrupt') report.corrupt.push(id);
      report.blobsChecked += 1;
      report.bytesChecked += entry.fileBytes;
      const dueMs = startMs + (report.bytesChecked * 1000) / bytesPerSecMax;
      await this.sleepUnlessAborted(dueMs - this.clock.nowMs(), signal);
    }
  }

  /** Waits for puts and deletes in progress, then refuses every further call. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.locks.idle();
  }

  /** Re-reads one blob and records what it found in the index. */
  private async checkEntry(id: string, entry: IndexEntry): Promise<'ok' | 'corrupt' | 'missing'> {
    const result = await checkBlob(blobFilePath(this.dir, id), id);
    this.noteState(id, entry, result);
    return result.state;
  }

  /**
   * Records the outcome of reading `entry`'s file. Only while the index still holds that same entry: a read that
   * raced with the replacement of a corrupt copy must not mark the fresh copy corrupt.
   */
  private noteState(id: string, entry: IndexEntry, result: BlobFileState<object>): void {
    if (this.index.get(id) !== entry) return;
    if (result.state === 'corrupt') entry.info.corrupt = true;
    else if (result.state === 'ok') delete entry.info.corrupt;
    // The file vanished behind the store's back (an operator, a failing disk): the blob is gone.
    else this.removeEntry(id);
  }

  /** Creates a shard directory on first use, durably: its entry in blobs/ is fsynced before a blob goes in. */
  private async ensureShardDir(shardDir: string): Promise<void> {
    const shard = path.basename(shardDir);
    if (this.shards.has(shard)) return;
    await mkdir(shardDir, { recursive: true });
    await fsyncDir(this.blobsDir);
    this.shards.add(shard);
  }

  private reserve(id: string, fileBytes: number): void {
    if (this.capacityBytes !== undefined && this.bytesUsed + this.bytesReserved + fileBytes > this.capacityBytes) {
      throw new StrataError(
        'DISK_FULL',
        `blob ${id} needs ${fileBytes} bytes; ${this.bytesUsed + this.bytesReserved} of capacity ` +
          `${this.capacityBytes} are used`,
      );
    }
    this.bytesReserved += fileBytes;
  }

  private setEntry(entry: IndexEntry): void {
    const id = entry.info.id;
    const previous = this.index.get(id);
    if (previous !== undefined) {
      this.bytesUsed -= previous.fileBytes;
      this.payloadBytes -= previous.info.size;
    }
    this.index.set(id, entry);
    this.ids.insert(id);
    this.bytesUsed += entry.fileBytes;
    this.payloadBytes += entry.info.size;
  }

  private removeEntry(id: string): void {
    const previous = this.index.get(id);
    if (previous === undefined) return;
    this.index.delete(id);
    this.ids.remove(id);
    this.bytesUsed -= previous.fileBytes;
    this.payloadBytes -= previous.info.size;
  }

  /**
   * Sleeps on the injected clock, in slices, returning early on abort: a clock that only moves when a test says so
   * must not hold up a node's stop().
   */
  private async sleepUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (ms <= 0) return;
    let onAbort = (): void => undefined;
    const aborted = new Promise<void>((resolve) => {
      onAbort = resolve;
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      let remainingMs = ms;
      while (remainingMs > 0 && signal?.aborted !== true && !this.closed) {
        const sliceMs = Math.min(remainingMs, SCRUB_SLEEP_SLICE_MS);
        await Promise.race([this.clock.sleep(sliceMs), aborted]);
        remainingMs -= sliceMs;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StrataError('NODE_UNAVAILABLE', `blob store ${this.dir} is closed`);
  }
}

/** The index entry for one file, or null when the file disappeared between readdir and open. */
async function loadEntry(dir: string, id: string): Promise<IndexEntry | null> {
  const head = await readBlobHead(blobFilePath(dir, id), id);
  if (head.state === 'missing') return null;
  if (head.state === 'ok') return { info: { ...head.header }, fileBytes: head.fileBytes };
  // The header cannot be trusted, so nothing in it is reported; the id (the file name) is still listed, as
  // corrupt, so that the healer can repair it from another copy.
  return {
    info: {
      id,
      key: '',
      writeId: '',
      part: '',
      meta: '',
      size: 0,
      checksum: '',
      createdAtMs: head.mtimeMs,
      corrupt: true,
    },
    fileBytes: head.fileBytes,
  };
}

async function writeTempFile(tmpPath: string, head: Buffer, data: Buffer): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmpPath, 'wx', 0o644);
    await writeAll(handle, [head, data]);
    await handle.sync();
  } catch (err) {
    await handle?.close().catch(() => undefined);
    handle = undefined;
    await rm(tmpPath, { force: true });
    throw err;
  } finally {
    await handle?.close();
  }
}

/** The file system is out of space (or quota): an operating condition with its own code, not an I/O failure. */
function diskFullOr(err: unknown, id: string): unknown {
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new StrataError('DISK_FULL', `no space left on the device for blob ${id} (${code})`);
  }
  return err;
}

function validateHeader(header: BlobHeader): void {
  validateSharedHeader(header, BLOB_NAME_BYTES_MAX);
}


/** Callers get copies: the index's objects are never handed out. */
function copyInfo(info: BlobInfo): BlobInfo {
  const copy: BlobInfo = {
    id: info.id,
    key: info.key,
    writeId: info.writeId,
    part: info.part,
    meta: info.meta,
    size: info.size,
    checksum: info.checksum,
    createdAtMs: info.createdAtMs,
  };
  if (info.corrupt === true) copy.corrupt = true;
  return copy;
}

function notFound(id: string): StrataError {
  return new StrataError('BLOB_NOT_FOUND', `blob ${id} not found`);
}
