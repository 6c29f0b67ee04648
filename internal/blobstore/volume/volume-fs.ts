/**
 * The file-system operations the volume store uses, behind a small interface so that tests can put a
 * fault-injecting layer under it (test/blobstore/volume-harness/power-loss-fs.ts drops every write that no
 * completed fsync covers, as a power cut does, which SIGKILL alone cannot show: the page cache survives it).
 *
 * Errors are Node's: an Error with a `code` such as ENOENT, EEXIST, ENOSPC or EIO.
 */
import { mkdir, open, readdir, rename, statfs, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from '../durable-fs.js';

export interface VolumeFs {
  /** Creates `dir` and missing parents; returns the first directory it created (as fs.mkdir recursive does). */
  mkdirp(dir: string): Promise<string | undefined>;
  readdir(dir: string): Promise<string[]>;
  /** 'r': read only. 'r+': read and write an existing file. 'wx': create a new file (EEXIST if present), read-write. */
  open(file: string, mode: 'r' | 'r+' | 'wx'): Promise<VolumeFile>;
  /** Atomic replace; durable only once the directory is fsynced. */
  rename(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  /** Makes the directory's entries (creates, renames, unlinks) durable. */
  fsyncDir(dir: string): Promise<void>;
  /** Bytes free for an unprivileged user on the file system holding `dir`. */
  freeBytes(dir: string): Promise<number>;
}

export interface VolumeFile {
  /** One positioned read (pread); returns the bytes read, fewer only at the end of the file. */
  read(target: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Writes every byte of `buffers` at `position` (pwritev), looping over short writes. */
  writev(buffers: readonly Buffer[], position: number): Promise<void>;
  /** fdatasync: the file's bytes and its length are durable when it resolves. */
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** The real file system, through fs/promises (libuv's thread pool, so no call blocks the event loop). */
export const nodeVolumeFs: VolumeFs = {
  mkdirp: (dir) => mkdir(dir, { recursive: true }),
  readdir: (dir) => readdir(dir),
  async open(file, mode) {
    return new NodeVolumeFile(await open(file, mode === 'wx' ? 'wx+' : mode, 0o644));
  },
  rename: (from, to) => rename(from, to),
  unlink: (file) => unlink(file),
  fsyncDir: (dir) => fsyncDir(dir),
  async freeBytes(dir) {
    const fs = await statfs(path.resolve(dir));
    return fs.bavail * fs.bsize;
  },
};

class NodeVolumeFile implements VolumeFile {
  constructor(private readonly handle: FileHandle) {}

  async read(target: Buffer, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(target, offset, length, position);
    return bytesRead;
  }

  async writev(buffers: readonly Buffer[], position: number): Promise<void> {
    let pending = buffers.filter((b) => b.length > 0);
    let at = position;
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending, at);
      // A write that makes no progress and reports no error would loop forever; call it what it is.
      if (bytesWritten <= 0) throw Object.assign(new Error('pwritev wrote 0 bytes'), { code: 'EIO' });
      at += bytesWritten;
      pending = dropWritten(pending, bytesWritten);
    }
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** What is left of `buffers` after the first `written` bytes went out. */
function dropWritten(buffers: readonly Buffer[], written: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = written;
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
}
