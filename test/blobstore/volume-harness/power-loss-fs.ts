/**
 * An in-memory file system for the volume store (VolumeFs) that can lose power.
 *
 * It keeps, for every file, the bytes a completed fsync made durable and the bytes written since; and for every
 * directory, the entries a completed directory fsync made durable and the entries changed since (creates,
 * renames, unlinks). A power loss keeps only what was durable, except that the last write not yet covered by an
 * fsync lands torn: a random prefix of it reaches the disk (over a hole where earlier unsynced writes were lost).
 * That is the worst a disk that honours fsync may do, and what SIGKILL cannot show, since it keeps the page cache.
 *
 * After `powerLoss()`, this instance answers every call with EIO (the machine is off); `afterPowerLoss()` gives the
 * file system the next boot sees. Directories are created durably at once: the volume store's protocol is what
 * is under test, not mkdir.
 */
import path from 'node:path';
import type { VolumeFile, VolumeFs } from '../../../internal/blobstore/volume/volume-fs.js';

/** Small deterministic PRNG (mulberry32), so that a failing seed can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Inode {
  durable: Buffer;
  current: Buffer;
  /** Writes since the last fsync, oldest first (truncates are recorded as writes of nothing). */
  pending: Array<{ position: number; bytes: Buffer }>;
}

function fsError(code: string, what: string): Error {
  return Object.assign(new Error(`${code}: ${what}`), { code });
}

export class PowerLossFs implements VolumeFs {
  private readonly dirs: Map<string, Map<string, Inode>>;
  private readonly durableDirs: Map<string, Map<string, Inode>>;
  private dead = false;
  private readonly random: () => number;
  /** Operations performed so far; the file system loses power on operation number `crashAtOp`. */
  ops = 0;
  crashAtOp = Number.POSITIVE_INFINITY;
  fsyncs = 0;
  /** What was going on when the power went: the operation, and every file name then present. */
  crashNote: { op: string; files: string[] } | null = null;

  constructor(seed: number, state?: Map<string, Map<string, Inode>>) {
    this.random = prng(seed);
    this.dirs = state ?? new Map([[path.parse(process.cwd()).root, new Map()]]);
    this.durableDirs = new Map([...this.dirs].map(([d, entries]) => [d, new Map(entries)]));
  }

  get poweredOff(): boolean {
    return this.dead;
  }

  /** Cuts the power now. */
  powerLoss(): void {
    if (!this.dead) this.crashNote = { op: 'between operations', files: this.allFiles() };
    this.dead = true;
  }

  private allFiles(): string[] {
    return [...this.dirs.values()].flatMap((entries) => [...entries.keys()]);
  }

  /** The file system after the power comes back: durable state, plus the torn last write of each file. */
  afterPowerLoss(seed: number): PowerLossFs {
    if (!this.dead) this.powerLoss();
    const random = prng(seed);
    const rebooted = new Map<string, Inode>();
    const boot = (inode: Inode): Inode => {
      let done = rebooted.get(inodeKey(inode));
      if (done !== undefined) return done;
      let bytes = Buffer.from(inode.durable);
      const last = inode.pending[inode.pending.length - 1];
      if (last !== undefined && last.bytes.length > 0) {
        const kept = Math.floor(random() * last.bytes.length);
        const end = last.position + kept;
        if (end > bytes.length) bytes = Buffer.concat([bytes, Buffer.alloc(end - bytes.length)]);
        last.bytes.copy(bytes, last.position, 0, kept);
      }
      done = { durable: bytes, current: Buffer.from(bytes), pending: [] };
      rebooted.set(inodeKey(inode), done);
      return done;
    };
    const state = new Map<string, Map<string, Inode>>();
    for (const [dir, entries] of this.durableDirs) {
      state.set(dir, new Map([...entries].map(([name, inode]) => [name, boot(inode)])));
    }
    for (const dir of this.dirs.keys()) if (!state.has(dir)) state.set(dir, new Map());
    return new PowerLossFs(Math.floor(random() * 2 ** 31), state);
  }

  /** The durable bytes of a file (tests read and flip them). */
  fileBytes(file: string): Buffer | undefined {
    return this.dirs.get(path.dirname(file))?.get(path.basename(file))?.current;
  }

  async mkdirp(dir: string): Promise<string | undefined> {
    await this.step('mkdir');
    let first: string | undefined;
    const missing: string[] = [];
    for (let d = path.resolve(dir); !this.dirs.has(d) && d !== path.dirname(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      first ??= d;
      this.dirs.set(d, new Map());
      this.durableDirs.set(d, new Map());
    }
    return first;
  }

  async readdir(dir: string): Promise<string[]> {
    await this.step('readdir');
    const entries = this.dirs.get(path.resolve(dir));
    if (entries === undefined) throw fsError('ENOENT', dir);
    return [...entries.keys()];
  }

  async open(file: string, mode: 'r' | 'r+' | 'wx'): Promise<VolumeFile> {
    await this.step('open');
    const { entries, name } = this.entry(file);
    let inode = entries.get(name);
    if (mode === 'wx') {
      if (inode !== undefined) throw fsError('EEXIST', file);
      inode = { durable: Buffer.alloc(0), current: Buffer.alloc(0), pending: [] };
      entries.set(name, inode);
    } else if (inode === undefined) {
      throw fsError('ENOENT', file);
    }
    return new PowerLossFile(this, inode, mode !== 'r');
  }

  async rename(from: string, to: string): Promise<void> {
    await this.step('rename');
    const source = this.entry(from);
    const inode = source.entries.get(source.name);
    if (inode === undefined) throw fsError('ENOENT', from);
    const target = this.entry(to);
    source.entries.delete(source.name);
    target.entries.set(target.name, inode);
  }

  async unlink(file: string): Promise<void> {
    await this.step('unlink');
    const { entries, name } = this.entry(file);
    if (!entries.delete(name)) throw fsError('ENOENT', file);
  }

  async fsyncDir(dir: string): Promise<void> {
    await this.step('fsyncDir');
    const entries = this.dirs.get(path.resolve(dir));
    if (entries === undefined) throw fsError('ENOENT', dir);
    this.durableDirs.set(path.resolve(dir), new Map(entries));
  }

  async freeBytes(): Promise<number> {
    await this.step('statfs');
    return 1e12;
  }

  /** Every operation passes here: it yields (so that concurrent callers interleave), counts, and may cut power. */
  async step(what: string, onCrash?: () => void): Promise<void> {
    if (this.dead) throw fsError('EIO', `${what} after power loss`);
    await new Promise((resolve) => setImmediate(resolve));
    if (this.dead) throw fsError('EIO', `${what} after power loss`);
    this.ops += 1;
    if (this.ops >= this.crashAtOp) {
      // The operation was under way when the power went: a write may land torn, nothing else happens.
      onCrash?.();
      this.crashNote = { op: what, files: this.allFiles() };
      this.dead = true;
      throw fsError('EIO', `power lost during ${what}`);
    }
    // A little randomness in timing, so that batches form differently from run to run.
    if (this.random() < 0.3) await new Promise((resolve) => setImmediate(resolve));
  }

  private entry(file: string): { entries: Map<string, Inode>; name: string } {
    const entries = this.dirs.get(path.dirname(path.resolve(file)));
    if (entries === undefined) throw fsError('ENOENT', path.dirname(file));
    return { entries, name: path.basename(file) };
  }
}

const inodeIds = new WeakMap<Inode, string>();
let nextInodeId = 0;
function inodeKey(inode: Inode): string {
  let id = inodeIds.get(inode);
  if (id === undefined) {
    id = String(nextInodeId++);
    inodeIds.set(inode, id);
  }
  return id;
}

class PowerLossFile implements VolumeFile {
  private closed = false;

  constructor(
    private readonly fs: PowerLossFs,
    private readonly inode: Inode,
    private readonly writable: boolean,
  ) {}

  async read(target: Buffer, offset: number, length: number, position: number): Promise<number> {
    await this.check('read');
    const available = Math.max(0, Math.min(length, this.inode.current.length - position));
    this.inode.current.copy(target, offset, position, position + available);
    return available;
  }

  async writev(buffers: readonly Buffer[], position: number): Promise<void> {
    const bytes = Buffer.concat(buffers);
    const apply = (): void => {
      this.inode.pending.push({ position, bytes });
      const end = position + bytes.length;
      if (end > this.inode.current.length) {
        this.inode.current = Buffer.concat([this.inode.current, Buffer.alloc(end - this.inode.current.length)]);
      }
      bytes.copy(this.inode.current, position);
    };
    await this.check('write', apply);
    if (!this.writable) throw fsError('EBADF', 'write to a read-only file');
    apply();
  }

  async datasync(): Promise<void> {
    await this.check('fsync');
    this.inode.durable = Buffer.from(this.inode.current);
    this.inode.pending = [];
    this.fs.fsyncs += 1;
  }

  async truncate(length: number): Promise<void> {
    await this.check('truncate');
    const current = this.inode.current;
    this.inode.current = length <= current.length ? Buffer.from(current.subarray(0, length)) : Buffer.concat([current, Buffer.alloc(length - current.length)]);
    this.inode.pending.push({ position: length, bytes: Buffer.alloc(0) });
  }

  async size(): Promise<number> {
    await this.check('size');
    return this.inode.current.length;
  }

  async close(): Promise<void> {
    // Closing needs no power: the process lets go of the handle either way.
    this.closed = true;
  }

  private async check(what: string, onCrash?: () => void): Promise<void> {
    if (this.closed) throw fsError('EBADF', `${what} on a closed file`);
    await this.fs.step(what, onCrash);
  }
}
