/**
 * The in-memory index: blob id -> where its live needle is (volume, offset, needle bytes, payload size, corrupt).
 *
 * It has to stay small (the aim is <= 64 bytes of RAM per blob, and a node holds millions), so it is not a
 * Map of objects. Most entries live in a *main run*: ids sorted and packed back to back in one Buffer (the arena),
 * and every other field in a typed array at the same position (struct of arrays, 21 bytes per entry). A lookup is
 * a binary search that compares bytes in the arena without building strings; `list` walks the run in id order,
 * which is the order the healer pages through inventories in.
 *
 * New ids go to a small *delta* (a Map) and are merged into the main run in one pass once the delta holds
 * `deltaEntriesMax` ids, so a put never shifts a million entries. A deleted id in the main run is only flagged
 * dead; the next merge drops it. An id put again while its dead slot is still in the main run reuses that slot.
 *
 * Ids are ASCII (BLOB_ID_PATTERN), so byte order, latin1 order and JavaScript string order all agree.
 */
import { assert } from '../../core/assert.js';
import { NEEDLE_ALIGN_BYTES, NEEDLE_NAME_BYTES_MAX } from './needle.js';

const FLAG_DEAD = 1;
const FLAG_CORRUPT = 2;
/** Ids the delta holds before it is merged into the main run, by default. */
export const INDEX_DELTA_ENTRIES_DEFAULT = 16_384;
/**
 * RAM of one delta entry, estimated for memoryBytes(): a Map entry, a small object, and an id string of about 34
 * characters in V8's heap. Only an estimate; the benchmark measures the real figure.
 */
const DELTA_ENTRY_BYTES_ESTIMATE = 160;
/** Offsets are stored divided by the needle alignment in a Uint32Array, so a volume can reach 32 GiB. */
export const VOLUME_OFFSET_BYTES_MAX = 0xffffffff * NEEDLE_ALIGN_BYTES;
/** The arena is indexed with Uint32 offsets. */
const ARENA_BYTES_MAX = 0xffffffff;

export interface NeedleLocation {
  volume: number;
  /** Byte offset of the needle in its volume file. */
  offset: number;
  needleBytes: number;
  /** Payload bytes. */
  size: number;
  corrupt: boolean;
}

/** The main run's arrays, as written to and read from an index checkpoint (index-checkpoint.ts). */
export interface IndexRun {
  count: number;
  /** Ids back to back, in ascending order. */
  arena: Buffer;
  /** End of id i in the arena (it starts where id i - 1 ends, or at 0). */
  idEnd: Uint32Array;
  volume: Uint32Array;
  /** Offset / NEEDLE_ALIGN_BYTES. */
  offset8: Uint32Array;
  needleBytes: Uint32Array;
  size: Uint32Array;
  /** Bit 1: corrupt (dead entries are never exported). */
  flags: Uint8Array;
}

interface DeltaSlot {
  volume: number;
  offset: number;
  needleBytes: number;
  size: number;
  corrupt: boolean;
}

export class NeedleIndex {
  private run: IndexRun;
  /** Main-run entries flagged dead, and the arena bytes their ids take. */
  private deadCount = 0;
  private deadArenaBytes = 0;
  private readonly delta = new Map<string, DeltaSlot>();
  /** The delta's ids in order, built on demand for list() and dropped whenever the delta gains an id. */
  private deltaSorted: string[] | null = null;
  private readonly deltaEntriesMax: number;
  /** Lookups write the id here and compare bytes against the arena, allocating nothing. */
  private readonly scratch = Buffer.alloc(NEEDLE_NAME_BYTES_MAX);
  private liveCount = 0;
  private livePayloadBytes = 0;
  private liveNeedleBytes = 0;

  constructor(options: { deltaEntriesMax?: number; run?: IndexRun } = {}) {
    this.deltaEntriesMax = options.deltaEntriesMax ?? INDEX_DELTA_ENTRIES_DEFAULT;
    assert(Number.isInteger(this.deltaEntriesMax) && this.deltaEntriesMax >= 1, 'deltaEntriesMax >= 1');
    this.run = options.run ?? emptyRun(0, 0);
    assertRunShape(this.run);
    for (let i = 0; i < this.run.count; i++) {
      this.liveCount += 1;
      this.livePayloadBytes += this.run.size[i] as number;
      this.liveNeedleBytes += this.run.needleBytes[i] as number;
    }
  }

  /** Live blobs. */
  get size(): number {
    return this.liveCount;
  }

  get payloadBytes(): number {
    return this.livePayloadBytes;
  }

  /** Bytes of the live needles on disk (heads, payloads, CRCs, padding). */
  get needleBytes(): number {
    return this.liveNeedleBytes;
  }

  get(id: string): NeedleLocation | undefined {
    const slot = this.delta.get(id);
    if (slot !== undefined) return { ...slot };
    const i = this.findInRun(id);
    return i < 0 ? undefined : this.locationAt(i);
  }

  /** Points `id` at a new needle; returns where it pointed before, if anywhere. */
  set(id: string, location: NeedleLocation): NeedleLocation | undefined {
    assertLocation(location);
    const slot = this.delta.get(id);
    if (slot !== undefined) {
      const previous = { ...slot };
      this.account(previous, -1);
      Object.assign(slot, location);
      this.account(location, +1);
      return previous;
    }
    const i = this.findSlotInRun(id);
    if (i >= 0) {
      const r = this.run;
      const wasDead = ((r.flags[i] as number) & FLAG_DEAD) !== 0;
      const previous = wasDead ? undefined : this.locationAt(i);
      if (previous !== undefined) this.account(previous, -1);
      if (wasDead) {
        this.deadCount -= 1;
        this.deadArenaBytes -= this.idBytesAt(i);
      }
      r.volume[i] = location.volume;
      r.offset8[i] = location.offset / NEEDLE_ALIGN_BYTES;
      r.needleBytes[i] = location.needleBytes;
      r.size[i] = location.size;
      r.flags[i] = location.corrupt ? FLAG_CORRUPT : 0;
      this.account(location, +1);
      return previous;
    }
    this.delta.set(id, { ...location });
    this.deltaSorted = null;
    this.account(location, +1);
    if (this.delta.size >= this.deltaEntriesMax) this.merge();
    return undefined;
  }

  /** Forgets `id`; returns where it pointed, or undefined when it was not there. */
  remove(id: string): NeedleLocation | undefined {
    const slot = this.delta.get(id);
    if (slot !== undefined) {
      this.delta.delete(id);
      this.deltaSorted = null;
      this.account(slot, -1);
      return { ...slot };
    }
    const i = this.findInRun(id);
    if (i < 0) return undefined;
    const previous = this.locationAt(i);
    this.run.flags[i] = FLAG_DEAD;
    this.deadCount += 1;
    this.deadArenaBytes += this.idBytesAt(i);
    this.account(previous, -1);
    return previous;
  }

  /** Sets or clears the corrupt mark, only while `id` still points at `expected` (the needle that was read). */
  markCorrupt(id: string, expected: NeedleLocation, corrupt: boolean): void {
    const slot = this.delta.get(id);
    if (slot !== undefined) {
      if (sameNeedle(slot, expected)) slot.corrupt = corrupt;
      return;
    }
    const i = this.findInRun(id);
    if (i >= 0 && sameNeedle(this.locationAt(i), expected)) this.run.flags[i] = corrupt ? FLAG_CORRUPT : 0;
  }

  /** Marks the live entry at (volume, offset) corrupt, whatever its id (compaction found it so while copying). */
  markCorruptAt(volume: number, offset: number): void {
    const r = this.run;
    const offset8 = offset / NEEDLE_ALIGN_BYTES;
    for (let i = 0; i < r.count; i++) {
      if (r.volume[i] === volume && r.offset8[i] === offset8 && ((r.flags[i] as number) & FLAG_DEAD) === 0) {
        r.flags[i] = FLAG_CORRUPT;
        return;
      }
    }
    for (const slot of this.delta.values()) {
      if (slot.volume === volume && slot.offset === offset) {
        slot.corrupt = true;
        return;
      }
    }
  }

  /** Up to `limit` live ids strictly after `after` (any string; from the start when null), in id order. */
  after(after: string | null, limit: number): Array<{ id: string; location: NeedleLocation }> {
    const out: Array<{ id: string; location: NeedleLocation }> = [];
    const sorted = this.sortedDelta();
    let d = after === null ? 0 : upperBoundStrings(sorted, after);
    let i = after === null ? 0 : this.upperBoundInRun(after);
    const r = this.run;
    while (out.length < limit) {
      while (i < r.count && ((r.flags[i] as number) & FLAG_DEAD) !== 0) i++;
      const runId = i < r.count ? this.idAt(i) : undefined;
      const deltaId = sorted[d];
      if (runId === undefined && deltaId === undefined) break;
      if (deltaId === undefined || (runId !== undefined && runId < deltaId)) {
        out.push({ id: runId as string, location: this.locationAt(i) });
        i++;
      } else {
        out.push({ id: deltaId, location: { ...(this.delta.get(deltaId) as DeltaSlot) } });
        d++;
      }
    }
    return out;
  }

  /** Calls `visit` with every live entry in `volume` (order unspecified). */
  forEachInVolume(volume: number, visit: (offset: number, needleBytes: number) => void): void {
    const r = this.run;
    for (let i = 0; i < r.count; i++) {
      if (r.volume[i] === volume && ((r.flags[i] as number) & FLAG_DEAD) === 0) {
        visit((r.offset8[i] as number) * NEEDLE_ALIGN_BYTES, r.needleBytes[i] as number);
      }
    }
    for (const slot of this.delta.values()) if (slot.volume === volume) visit(slot.offset, slot.needleBytes);
  }

  /**
   * Moves every live entry of `volume` to the offset `newOffsetOf(oldOffset)` returns (compaction's swap). Runs
   * synchronously, so no reader sees half the volume moved.
   */
  relocate(volume: number, newOffsetOf: (offset: number) => number): void {
    const r = this.run;
    for (let i = 0; i < r.count; i++) {
      if (r.volume[i] === volume && ((r.flags[i] as number) & FLAG_DEAD) === 0) {
        const offset = newOffsetOf((r.offset8[i] as number) * NEEDLE_ALIGN_BYTES);
        assertOffset(offset);
        r.offset8[i] = offset / NEEDLE_ALIGN_BYTES;
      }
    }
    for (const slot of this.delta.values()) {
      if (slot.volume === volume) {
        slot.offset = newOffsetOf(slot.offset);
        assertOffset(slot.offset);
      }
    }
  }

  /**
   * Moves every live entry of the volumes in `sources` into volume `target`, at the offset
   * `newOffsetOf(oldVolume, oldOffset)` returns (a merge's swap, merge.ts). Synchronous, like relocate().
   */
  relocateInto(sources: ReadonlySet<number>, target: number, newOffsetOf: (volume: number, offset: number) => number): void {
    const r = this.run;
    for (let i = 0; i < r.count; i++) {
      const volume = r.volume[i] as number;
      if (sources.has(volume) && ((r.flags[i] as number) & FLAG_DEAD) === 0) {
        const offset = newOffsetOf(volume, (r.offset8[i] as number) * NEEDLE_ALIGN_BYTES);
        assertOffset(offset);
        r.volume[i] = target;
        r.offset8[i] = offset / NEEDLE_ALIGN_BYTES;
      }
    }
    for (const slot of this.delta.values()) {
      if (sources.has(slot.volume)) {
        slot.offset = newOffsetOf(slot.volume, slot.offset);
        assertOffset(slot.offset);
        slot.volume = target;
      }
    }
  }

  /** Live needle bytes and blobs per volume (recomputed on open). */
  volumeTotals(): Map<number, { liveBytes: number; blobs: number }> {
    const totals = new Map<number, { liveBytes: number; blobs: number }>();
    const add = (volume: number, bytes: number): void => {
      const t = totals.get(volume);
      if (t === undefined) totals.set(volume, { liveBytes: bytes, blobs: 1 });
      else {
        t.liveBytes += bytes;
        t.blobs += 1;
      }
    };
    const r = this.run;
    for (let i = 0; i < r.count; i++) {
      if (((r.flags[i] as number) & FLAG_DEAD) === 0) add(r.volume[i] as number, r.needleBytes[i] as number);
    }
    for (const slot of this.delta.values()) add(slot.volume, slot.needleBytes);
    return totals;
  }

  /** Folds the delta into the main run and drops dead entries, then returns the run (shared, not a copy). */
  exportRun(): IndexRun {
    this.merge();
    return this.run;
  }

  /** RAM the index holds: its typed arrays, its arena, and an estimate for the delta. */
  memoryBytes(): number {
    const r = this.run;
    return (
      r.arena.byteLength +
      r.idEnd.byteLength +
      r.volume.byteLength +
      r.offset8.byteLength +
      r.needleBytes.byteLength +
      r.size.byteLength +
      r.flags.byteLength +
      this.delta.size * DELTA_ENTRY_BYTES_ESTIMATE
    );
  }

  /** Merges the delta into the main run in one pass; dead entries are dropped on the way. */
  merge(): void {
    if (this.delta.size === 0 && this.deadCount === 0) return;
    const keys = this.sortedDelta();
    const src = this.run;
    let arenaBytes = src.arena.length - this.deadArenaBytes;
    for (const key of keys) arenaBytes += key.length;
    assert(arenaBytes <= ARENA_BYTES_MAX, 'index arena bytes <= 2^32 - 1');
    const dst = emptyRun(src.count - this.deadCount + keys.length, arenaBytes);
    let o = 0;
    let ao = 0;
    let i = 0;
    for (const key of keys) {
      const p = this.lowerBoundInRun(key, i);
      [o, ao] = this.copyLive(i, p, dst, o, ao);
      i = p;
      const slot = this.delta.get(key) as DeltaSlot;
      ao += dst.arena.write(key, ao, 'latin1');
      dst.idEnd[o] = ao;
      dst.volume[o] = slot.volume;
      dst.offset8[o] = slot.offset / NEEDLE_ALIGN_BYTES;
      dst.needleBytes[o] = slot.needleBytes;
      dst.size[o] = slot.size;
      dst.flags[o] = slot.corrupt ? FLAG_CORRUPT : 0;
      o++;
    }
    [o, ao] = this.copyLive(i, src.count, dst, o, ao);
    assert(o === dst.count && ao === arenaBytes, 'merge filled the new run exactly');
    this.run = dst;
    this.delta.clear();
    this.deltaSorted = null;
    this.deadCount = 0;
    this.deadArenaBytes = 0;
  }

  /** Copies the live entries of the main run in [from, to) to `dst` at (o, ao), a contiguous stretch at a time. */
  private copyLive(from: number, to: number, dst: IndexRun, o: number, ao: number): [number, number] {
    const src = this.run;
    let j = from;
    while (j < to) {
      while (j < to && ((src.flags[j] as number) & FLAG_DEAD) !== 0) j++;
      const start = j;
      while (j < to && ((src.flags[j] as number) & FLAG_DEAD) === 0) j++;
      if (start === j) continue;
      const arenaStart = start === 0 ? 0 : (src.idEnd[start - 1] as number);
      const arenaEnd = src.idEnd[j - 1] as number;
      src.arena.copy(dst.arena, ao, arenaStart, arenaEnd);
      const shift = ao - arenaStart;
      for (let k = start; k < j; k++) dst.idEnd[o + k - start] = (src.idEnd[k] as number) + shift;
      dst.volume.set(src.volume.subarray(start, j), o);
      dst.offset8.set(src.offset8.subarray(start, j), o);
      dst.needleBytes.set(src.needleBytes.subarray(start, j), o);
      dst.size.set(src.size.subarray(start, j), o);
      dst.flags.set(src.flags.subarray(start, j), o);
      o += j - start;
      ao += arenaEnd - arenaStart;
    }
    return [o, ao];
  }

  private account(location: NeedleLocation, sign: 1 | -1): void {
    this.liveCount += sign;
    this.livePayloadBytes += sign * location.size;
    this.liveNeedleBytes += sign * location.needleBytes;
  }

  private sortedDelta(): string[] {
    this.deltaSorted ??= [...this.delta.keys()].sort();
    return this.deltaSorted;
  }

  /** Position of live `id` in the main run, or -1. */
  private findInRun(id: string): number {
    const i = this.findSlotInRun(id);
    return i >= 0 && ((this.run.flags[i] as number) & FLAG_DEAD) === 0 ? i : -1;
  }

  /** Position of `id` in the main run, dead or alive, or -1. */
  private findSlotInRun(id: string): number {
    if (id.length > this.scratch.length) return -1;
    const keyBytes = this.scratch.write(id, 0, 'latin1');
    const i = this.lowerBoundBytes(keyBytes, 0);
    return i < this.run.count && this.compareAt(i, keyBytes) === 0 ? i : -1;
  }

  /** First position >= `from` whose id is >= `id` (a valid id: ASCII, at most 128 bytes). */
  private lowerBoundInRun(id: string, from: number): number {
    const keyBytes = this.scratch.write(id, 0, 'latin1');
    assert(keyBytes === id.length, 'index keys are ASCII ids of at most 128 bytes');
    return this.lowerBoundBytes(keyBytes, from);
  }

  private lowerBoundBytes(keyBytes: number, from: number): number {
    let lo = from;
    let hi = this.run.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareAt(mid, keyBytes) > 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First position whose id is > `after`, for any cursor string (compared as JavaScript strings, like list()). */
  private upperBoundInRun(after: string): number {
    let lo = 0;
    let hi = this.run.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.idAt(mid) <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Sign of (scratch key) - (id at i), by bytes. */
  private compareAt(i: number, keyBytes: number): number {
    const r = this.run;
    const start = i === 0 ? 0 : (r.idEnd[i - 1] as number);
    return this.scratch.compare(r.arena, start, r.idEnd[i] as number, 0, keyBytes);
  }

  private idAt(i: number): string {
    const r = this.run;
    return r.arena.toString('latin1', i === 0 ? 0 : (r.idEnd[i - 1] as number), r.idEnd[i] as number);
  }

  private idBytesAt(i: number): number {
    const r = this.run;
    return (r.idEnd[i] as number) - (i === 0 ? 0 : (r.idEnd[i - 1] as number));
  }

  private locationAt(i: number): NeedleLocation {
    const r = this.run;
    return {
      volume: r.volume[i] as number,
      offset: (r.offset8[i] as number) * NEEDLE_ALIGN_BYTES,
      needleBytes: r.needleBytes[i] as number,
      size: r.size[i] as number,
      corrupt: ((r.flags[i] as number) & FLAG_CORRUPT) !== 0,
    };
  }
}

/**
 * A run's arrays and arena share one allocation, laid out as in a checkpoint. One large block rather than seven:
 * the allocator maps a block this size on its own and gives it back to the system when a merge drops it, where
 * several medium blocks would stay in the process's heap and inflate its RSS after every merge.
 */
function emptyRun(count: number, arenaBytes: number): IndexRun {
  const memory = new ArrayBuffer(21 * count + arenaBytes);
  const u32 = (i: number): Uint32Array => new Uint32Array(memory, 4 * count * i, count);
  return {
    count,
    idEnd: u32(0),
    volume: u32(1),
    offset8: u32(2),
    needleBytes: u32(3),
    size: u32(4),
    flags: new Uint8Array(memory, 20 * count, count),
    arena: Buffer.from(memory, 21 * count, arenaBytes),
  };
}

function assertRunShape(run: IndexRun): void {
  const n = run.count;
  assert(
    run.idEnd.length === n &&
      run.volume.length === n &&
      run.offset8.length === n &&
      run.needleBytes.length === n &&
      run.size.length === n &&
      run.flags.length === n,
    'every index run array has count entries',
  );
  assert(n === 0 || run.idEnd[n - 1] === run.arena.length, 'the last id ends at the end of the arena');
}

function assertLocation(location: NeedleLocation): void {
  assert(Number.isInteger(location.volume) && location.volume >= 1 && location.volume <= 0xffffffff, 'volume is u32 >= 1');
  assertOffset(location.offset);
  assert(Number.isInteger(location.needleBytes) && location.needleBytes > 0 && location.needleBytes <= 0xffffffff, 'needleBytes is u32 > 0');
  assert(Number.isInteger(location.size) && location.size >= 0 && location.size <= 0xffffffff, 'size is u32');
}

function assertOffset(offset: number): void {
  assert(Number.isInteger(offset) && offset >= 0 && offset <= VOLUME_OFFSET_BYTES_MAX, 'offset in [0, VOLUME_OFFSET_BYTES_MAX]');
  assert(offset % NEEDLE_ALIGN_BYTES === 0, 'needle offsets are aligned');
}

function sameNeedle(a: NeedleLocation, b: NeedleLocation): boolean {
  return a.volume === b.volume && a.offset === b.offset && a.needleBytes === b.needleBytes;
}

/** First position in ascending `sorted` whose string is > `after`. */
function upperBoundStrings(sorted: readonly string[], after: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
