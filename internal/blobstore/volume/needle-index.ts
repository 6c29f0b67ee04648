/**
 * The in-memory index: blob id -> where its live needle is (volume, offset, needle bytes, payload size, corrupt).
 *
 * It has to stay small (32 bytes of RAM per blob the write path creates, and a node holds millions), so it is not
 * a Map of objects but two sorted runs kept as struct of arrays:
 *
 * - the *main run* holds derived ids (`<ULID>.<part>`, internal/core/derived-ids.ts) as the ULID's 16 bytes and a
 *   one-byte part code, with volume, offset / 8, size, `needleBytes - size` (u16) and flags: 32 bytes per entry.
 *   derived-ids.ts orders part codes so that (ULID bytes, part code) sorts exactly as the ids do as text;
 * - the *text run* holds every other id (healer suffixes, ids tests choose, and any entry whose needle framing
 *   does not fit 16 bits) as text packed back to back in one Buffer (the arena), 21 bytes + the id per entry.
 *
 * A lookup parses the id once and binary-searches the run it belongs to, comparing words or bytes without building
 * strings; `list` walks both runs and merges them by text order, which is the order the healer pages through
 * inventories in.
 *
 * New ids go to a small *delta* (a Map) and are merged into the runs in one pass once the delta holds
 * `deltaEntriesMax` ids, so a put never shifts a million entries. A deleted id in a run is only flagged dead; the
 * next merge drops it. An id put again while its dead slot is still in its run reuses that slot.
 *
 * Ids are ASCII (BLOB_ID_PATTERN), so byte order, latin1 order and JavaScript string order all agree.
 */
import { assert } from '../../core/assert.js';
import { derivedBlobId, partCode, ulidToBytes, ULID_BYTES, ULID_TEXT_LENGTH } from '../../core/derived-ids.js';
import { NEEDLE_ALIGN_BYTES, NEEDLE_NAME_BYTES_MAX } from './needle.js';

export const INDEX_FLAG_DEAD = 1;
export const INDEX_FLAG_CORRUPT = 2;
const FLAG_DEAD = INDEX_FLAG_DEAD;
const FLAG_CORRUPT = INDEX_FLAG_CORRUPT;
/** Ids the delta holds before it is merged into the runs, by default. */
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
/** RAM of one main-run entry: write id 16, part 1, volume 4, offset 4, size 4, frame 2, flags 1. */
export const MAIN_ENTRY_BYTES = 32;
/** RAM of one text-run entry besides its id: id end 4, volume 4, offset 4, needle bytes 4, size 4, flags 1. */
export const TEXT_ENTRY_BYTES = 21;
/**
 * The largest `needleBytes - size` (head, data CRC, padding) a main-run entry holds. A v1 needle's is at most
 * 9,687 bytes (needle.ts NEEDLE_HEAD_BYTES_MAX + 4 + 7); a location beyond it is kept in the text run instead.
 */
export const MAIN_FRAME_BYTES_MAX = 0xffff;
/** 32-bit words a write id takes in the main run. */
const WRITE_ID_WORDS = ULID_BYTES / 4;

export interface NeedleLocation {
  volume: number;
  /** Byte offset of the needle in its volume file. */
  offset: number;
  needleBytes: number;
  /** Payload bytes. */
  size: number;
  corrupt: boolean;
}

/** The derived-id entries, ascending by (write id, part code), which is their text order. */
export interface MainRun {
  count: number;
  /**
   * Write ids, WRITE_ID_WORDS per entry: word k is bytes 4k..4k+3 of the ULID read big-endian, so comparing the
   * words in order compares the ULIDs' bytes.
   */
  writeId: Uint32Array;
  volume: Uint32Array;
  /** Offset / NEEDLE_ALIGN_BYTES. */
  offset8: Uint32Array;
  size: Uint32Array;
  /** needleBytes - size: the needle's head, data CRC and padding. */
  frame: Uint16Array;
  /** Part code (derived-ids.ts). */
  part: Uint8Array;
  /** INDEX_FLAG_DEAD | INDEX_FLAG_CORRUPT (dead entries are never exported). */
  flags: Uint8Array;
}

/** The text-id entries, ascending by id: the layout the whole index had in format 1 checkpoints. */
export interface TextRun {
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
  /** INDEX_FLAG_CORRUPT (dead entries are never exported). */
  flags: Uint8Array;
}

/**
 * Both runs, as written to and read from an index checkpoint (index-checkpoint.ts). `volume`, `offset8` and
 * `needleBytes` give every entry (main run first, then text run) for whoever checks a loaded checkpoint against
 * the volumes; they are built on first use, so that writing a checkpoint does not pay for them.
 */
export class IndexRun {
  private flat: { volume: Uint32Array; offset8: Uint32Array; needleBytes: Uint32Array } | null = null;

  constructor(
    readonly main: MainRun,
    readonly text: TextRun,
  ) {}

  get count(): number {
    return this.main.count + this.text.count;
  }

  get volume(): Uint32Array {
    return this.flatten().volume;
  }

  get offset8(): Uint32Array {
    return this.flatten().offset8;
  }

  get needleBytes(): Uint32Array {
    return this.flatten().needleBytes;
  }

  private flatten(): { volume: Uint32Array; offset8: Uint32Array; needleBytes: Uint32Array } {
    if (this.flat !== null) return this.flat;
    const { main, text } = this;
    const n = main.count + text.count;
    const volume = new Uint32Array(n);
    const offset8 = new Uint32Array(n);
    const needleBytes = new Uint32Array(n);
    volume.set(main.volume);
    volume.set(text.volume, main.count);
    offset8.set(main.offset8);
    offset8.set(text.offset8, main.count);
    for (let i = 0; i < main.count; i++) needleBytes[i] = (main.size[i] as number) + (main.frame[i] as number);
    needleBytes.set(text.needleBytes, main.count);
    this.flat = { volume, offset8, needleBytes };
    return this.flat;
  }
}

interface DeltaSlot {
  volume: number;
  offset: number;
  needleBytes: number;
  size: number;
  corrupt: boolean;
}

export class NeedleIndex {
  private main: MainRun;
  private text: TextRun;
  /** Entries flagged dead in each run, and the arena bytes the dead text ids take. */
  private deadMain = 0;
  private deadText = 0;
  private deadArenaBytes = 0;
  private readonly delta = new Map<string, DeltaSlot>();
  /** The delta's ids in order, built on demand for list() and dropped whenever the delta gains an id. */
  private deltaSorted: string[] | null = null;
  private readonly deltaEntriesMax: number;
  /** Lookups parse a derived id into these and compare words against the main run, allocating no arrays. */
  private readonly keyBytes = new Uint8Array(ULID_BYTES);
  private readonly keyWords = new Uint32Array(WRITE_ID_WORDS);
  private keyPart = 0;
  /** Lookups of text ids write the id here and compare bytes against the arena. */
  private readonly scratch = Buffer.alloc(NEEDLE_NAME_BYTES_MAX);
  private liveCount = 0;
  private livePayloadBytes = 0;
  private liveNeedleBytes = 0;

  constructor(options: { deltaEntriesMax?: number; run?: IndexRun } = {}) {
    this.deltaEntriesMax = options.deltaEntriesMax ?? INDEX_DELTA_ENTRIES_DEFAULT;
    assert(Number.isInteger(this.deltaEntriesMax) && this.deltaEntriesMax >= 1, 'deltaEntriesMax >= 1');
    this.main = options.run?.main ?? emptyMainRun(0);
    this.text = options.run?.text ?? emptyTextRun(0, 0);
    assertRunShapes(this.main, this.text);
    const m = this.main;
    for (let i = 0; i < m.count; i++) {
      const size = m.size[i] as number;
      this.livePayloadBytes += size;
      this.liveNeedleBytes += size + (m.frame[i] as number);
    }
    const t = this.text;
    for (let i = 0; i < t.count; i++) {
      this.livePayloadBytes += t.size[i] as number;
      this.liveNeedleBytes += t.needleBytes[i] as number;
    }
    this.liveCount = m.count + t.count;
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
    if (this.parseKey(id)) {
      const i = this.findMainSlot();
      if (i >= 0) return this.mainLive(i) ? this.mainLocationAt(i) : undefined;
    }
    const j = this.findTextSlot(id);
    return j >= 0 && this.textLive(j) ? this.textLocationAt(j) : undefined;
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
    if (this.parseKey(id)) {
      const i = this.findMainSlot();
      if (i >= 0) {
        const m = this.main;
        const wasDead = !this.mainLive(i);
        const previous = wasDead ? undefined : this.mainLocationAt(i);
        if (previous !== undefined) this.account(previous, -1);
        if (fitsMainRun(location)) {
          if (wasDead) this.deadMain -= 1;
          m.volume[i] = location.volume;
          m.offset8[i] = location.offset / NEEDLE_ALIGN_BYTES;
          m.size[i] = location.size;
          m.frame[i] = location.needleBytes - location.size;
          m.flags[i] = location.corrupt ? FLAG_CORRUPT : 0;
          this.account(location, +1);
        } else {
          // The slot cannot hold this needle's framing: the next merge moves the id to the text run.
          if (!wasDead) {
            m.flags[i] = FLAG_DEAD;
            this.deadMain += 1;
          }
          this.addToDelta(id, location);
        }
        return previous;
      }
    }
    const j = this.findTextSlot(id);
    if (j >= 0) {
      const t = this.text;
      const wasDead = !this.textLive(j);
      const previous = wasDead ? undefined : this.textLocationAt(j);
      if (previous !== undefined) this.account(previous, -1);
      if (wasDead) {
        this.deadText -= 1;
        this.deadArenaBytes -= this.textIdBytesAt(j);
      }
      t.volume[j] = location.volume;
      t.offset8[j] = location.offset / NEEDLE_ALIGN_BYTES;
      t.needleBytes[j] = location.needleBytes;
      t.size[j] = location.size;
      t.flags[j] = location.corrupt ? FLAG_CORRUPT : 0;
      this.account(location, +1);
      return previous;
    }
    this.addToDelta(id, location);
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
    if (this.parseKey(id)) {
      const i = this.findMainSlot();
      if (i >= 0) {
        if (!this.mainLive(i)) return undefined;
        const previous = this.mainLocationAt(i);
        this.main.flags[i] = FLAG_DEAD;
        this.deadMain += 1;
        this.account(previous, -1);
        return previous;
      }
    }
    const j = this.findTextSlot(id);
    if (j < 0 || !this.textLive(j)) return undefined;
    const previous = this.textLocationAt(j);
    this.text.flags[j] = FLAG_DEAD;
    this.deadText += 1;
    this.deadArenaBytes += this.textIdBytesAt(j);
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
    if (this.parseKey(id)) {
      const i = this.findMainSlot();
      if (i >= 0) {
        if (this.mainLive(i) && sameNeedle(this.mainLocationAt(i), expected)) this.main.flags[i] = corrupt ? FLAG_CORRUPT : 0;
        return;
      }
    }
    const j = this.findTextSlot(id);
    if (j >= 0 && this.textLive(j) && sameNeedle(this.textLocationAt(j), expected)) {
      this.text.flags[j] = corrupt ? FLAG_CORRUPT : 0;
    }
  }

  /** Marks the live entry at (volume, offset) corrupt, whatever its id (compaction found it so while copying). */
  markCorruptAt(volume: number, offset: number): void {
    const offset8 = offset / NEEDLE_ALIGN_BYTES;
    for (const r of [this.main, this.text]) {
      for (let i = 0; i < r.count; i++) {
        if (r.volume[i] === volume && r.offset8[i] === offset8 && ((r.flags[i] as number) & FLAG_DEAD) === 0) {
          r.flags[i] = FLAG_CORRUPT;
          return;
        }
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
    let i = after === null ? 0 : this.upperBoundMain(after);
    let j = after === null ? 0 : this.upperBoundText(after);
    const m = this.main;
    const t = this.text;
    // The next candidate of each run, as text; undefined when it has to be (re)computed or the run is done.
    let mainId: string | undefined;
    let textId: string | undefined;
    while (out.length < limit) {
      if (mainId === undefined) {
        while (i < m.count && !this.mainLive(i)) i++;
        if (i < m.count) mainId = this.mainIdAt(i);
      }
      if (textId === undefined) {
        while (j < t.count && !this.textLive(j)) j++;
        if (j < t.count) textId = this.textIdAt(j);
      }
      const deltaId = sorted[d];
      let next = deltaId;
      if (mainId !== undefined && (next === undefined || mainId < next)) next = mainId;
      if (textId !== undefined && (next === undefined || textId < next)) next = textId;
      if (next === undefined) break;
      if (next === mainId) {
        out.push({ id: mainId, location: this.mainLocationAt(i) });
        i++;
        mainId = undefined;
      } else if (next === textId) {
        out.push({ id: textId, location: this.textLocationAt(j) });
        j++;
        textId = undefined;
      } else {
        out.push({ id: next, location: { ...(this.delta.get(next) as DeltaSlot) } });
        d++;
      }
    }
    return out;
  }

  /** Calls `visit` with every live entry in `volume` (order unspecified). */
  forEachInVolume(volume: number, visit: (offset: number, needleBytes: number) => void): void {
    const m = this.main;
    for (let i = 0; i < m.count; i++) {
      if (m.volume[i] === volume && this.mainLive(i)) {
        visit((m.offset8[i] as number) * NEEDLE_ALIGN_BYTES, (m.size[i] as number) + (m.frame[i] as number));
      }
    }
    const t = this.text;
    for (let i = 0; i < t.count; i++) {
      if (t.volume[i] === volume && this.textLive(i)) {
        visit((t.offset8[i] as number) * NEEDLE_ALIGN_BYTES, t.needleBytes[i] as number);
      }
    }
    for (const slot of this.delta.values()) if (slot.volume === volume) visit(slot.offset, slot.needleBytes);
  }

  /**
   * Moves every live entry of `volume` to the offset `newOffsetOf(oldOffset)` returns (compaction's swap). Runs
   * synchronously, so no reader sees half the volume moved.
   */
  relocate(volume: number, newOffsetOf: (offset: number) => number): void {
    for (const r of [this.main, this.text]) {
      for (let i = 0; i < r.count; i++) {
        if (r.volume[i] === volume && ((r.flags[i] as number) & FLAG_DEAD) === 0) {
          const offset = newOffsetOf((r.offset8[i] as number) * NEEDLE_ALIGN_BYTES);
          assertOffset(offset);
          r.offset8[i] = offset / NEEDLE_ALIGN_BYTES;
        }
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
    for (const r of [this.main, this.text]) {
      for (let i = 0; i < r.count; i++) {
        const volume = r.volume[i] as number;
        if (sources.has(volume) && ((r.flags[i] as number) & FLAG_DEAD) === 0) {
          const offset = newOffsetOf(volume, (r.offset8[i] as number) * NEEDLE_ALIGN_BYTES);
          assertOffset(offset);
          r.volume[i] = target;
          r.offset8[i] = offset / NEEDLE_ALIGN_BYTES;
        }
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
    const m = this.main;
    for (let i = 0; i < m.count; i++) {
      if (this.mainLive(i)) add(m.volume[i] as number, (m.size[i] as number) + (m.frame[i] as number));
    }
    const t = this.text;
    for (let i = 0; i < t.count; i++) if (this.textLive(i)) add(t.volume[i] as number, t.needleBytes[i] as number);
    for (const slot of this.delta.values()) add(slot.volume, slot.needleBytes);
    return totals;
  }

  /** Folds the delta into the runs and drops dead entries, then returns the runs (shared, not copies). */
  exportRun(): IndexRun {
    this.merge();
    return new IndexRun(this.main, this.text);
  }

  /** RAM the index holds: the main run, the text run with its arena, and an estimate for the delta. */
  memoryBytes(): number {
    return this.memoryBreakdown().total;
  }

  /** memoryBytes() by part, for the benchmark and the memory-budget test. */
  memoryBreakdown(): { mainRun: number; textRun: number; delta: number; total: number } {
    const mainRun = MAIN_ENTRY_BYTES * this.main.count;
    const textRun = TEXT_ENTRY_BYTES * this.text.count + this.text.arena.byteLength;
    const delta = this.delta.size * DELTA_ENTRY_BYTES_ESTIMATE;
    return { mainRun, textRun, delta, total: mainRun + textRun + delta };
  }

  /** Merges the delta into the runs in one pass each; dead entries are dropped on the way. */
  merge(): void {
    if (this.delta.size === 0 && this.deadMain === 0 && this.deadText === 0) return;
    const mainKeys: string[] = [];
    const textKeys: string[] = [];
    for (const key of this.sortedDelta()) {
      if (fitsMainRun(this.delta.get(key) as DeltaSlot) && this.parseKey(key)) mainKeys.push(key);
      else textKeys.push(key);
    }
    if (mainKeys.length > 0 || this.deadMain > 0) this.mergeMain(mainKeys);
    if (textKeys.length > 0 || this.deadText > 0) this.mergeText(textKeys);
    this.delta.clear();
    this.deltaSorted = null;
  }

  private mergeMain(keys: readonly string[]): void {
    const src = this.main;
    const dst = emptyMainRun(src.count - this.deadMain + keys.length);
    let o = 0;
    let i = 0;
    for (const key of keys) {
      this.parseKey(key);
      const p = this.lowerBoundMain(i);
      o = copyLiveMain(src, i, p, dst, o);
      i = p;
      const slot = this.delta.get(key) as DeltaSlot;
      dst.writeId.set(this.keyWords, WRITE_ID_WORDS * o);
      dst.part[o] = this.keyPart;
      dst.volume[o] = slot.volume;
      dst.offset8[o] = slot.offset / NEEDLE_ALIGN_BYTES;
      dst.size[o] = slot.size;
      dst.frame[o] = slot.needleBytes - slot.size;
      dst.flags[o] = slot.corrupt ? FLAG_CORRUPT : 0;
      o++;
    }
    o = copyLiveMain(src, i, src.count, dst, o);
    assert(o === dst.count, 'merge filled the new main run exactly');
    this.main = dst;
    this.deadMain = 0;
  }

  private mergeText(keys: readonly string[]): void {
    const src = this.text;
    let arenaBytes = src.arena.length - this.deadArenaBytes;
    for (const key of keys) arenaBytes += key.length;
    assert(arenaBytes <= ARENA_BYTES_MAX, 'index arena bytes <= 2^32 - 1');
    const dst = emptyTextRun(src.count - this.deadText + keys.length, arenaBytes);
    let o = 0;
    let ao = 0;
    let i = 0;
    for (const key of keys) {
      const p = this.lowerBoundText(key, i);
      [o, ao] = copyLiveText(src, i, p, dst, o, ao);
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
    [o, ao] = copyLiveText(src, i, src.count, dst, o, ao);
    assert(o === dst.count && ao === arenaBytes, 'merge filled the new text run exactly');
    this.text = dst;
    this.deadText = 0;
    this.deadArenaBytes = 0;
  }

  private addToDelta(id: string, location: NeedleLocation): void {
    this.delta.set(id, { ...location });
    this.deltaSorted = null;
    this.account(location, +1);
    if (this.delta.size >= this.deltaEntriesMax) this.merge();
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

  /** Parses `id` into keyWords/keyPart when it is a derived id (its main-run form); false for a text id. */
  private parseKey(id: string): boolean {
    if (id.length < ULID_TEXT_LENGTH + 2 || id.charCodeAt(ULID_TEXT_LENGTH) !== 0x2e) return false;
    const code = partCode(id.slice(ULID_TEXT_LENGTH + 1));
    if (code === null) return false;
    if (ulidToBytes(id.slice(0, ULID_TEXT_LENGTH), this.keyBytes) === null) return false;
    const b = this.keyBytes;
    for (let k = 0; k < WRITE_ID_WORDS; k++) {
      this.keyWords[k] = (((b[4 * k] as number) << 24) | ((b[4 * k + 1] as number) << 16) | ((b[4 * k + 2] as number) << 8) | (b[4 * k + 3] as number)) >>> 0;
    }
    this.keyPart = code;
    return true;
  }

  /** Position of the parsed key in the main run, dead or alive, or -1. */
  private findMainSlot(): number {
    const i = this.lowerBoundMain(0);
    return i < this.main.count && this.compareMain(i) === 0 ? i : -1;
  }

  /** First position >= `from` whose entry is >= the parsed key. */
  private lowerBoundMain(from: number): number {
    let lo = from;
    let hi = this.main.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareMain(mid) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Sign of (entry at i) - (parsed key). */
  private compareMain(i: number): number {
    const w = this.main.writeId;
    const at = WRITE_ID_WORDS * i;
    for (let k = 0; k < WRITE_ID_WORDS; k++) {
      const a = w[at + k] as number;
      const b = this.keyWords[k] as number;
      if (a !== b) return a < b ? -1 : 1;
    }
    return (this.main.part[i] as number) - this.keyPart;
  }

  /** First main-run position whose id is > `after`, for any cursor string (compared as text, like list()). */
  private upperBoundMain(after: string): number {
    let lo = 0;
    let hi = this.main.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.mainIdAt(mid) <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Position of `id` in the text run, dead or alive, or -1. */
  private findTextSlot(id: string): number {
    if (id.length > this.scratch.length || this.text.count === 0) return -1;
    const keyBytes = this.scratch.write(id, 0, 'latin1');
    const i = this.lowerBoundTextBytes(keyBytes, 0);
    return i < this.text.count && this.compareText(i, keyBytes) === 0 ? i : -1;
  }

  /** First text-run position >= `from` whose id is >= `id` (a valid id: ASCII, at most 128 bytes). */
  private lowerBoundText(id: string, from: number): number {
    const keyBytes = this.scratch.write(id, 0, 'latin1');
    assert(keyBytes === id.length, 'index keys are ASCII ids of at most 128 bytes');
    return this.lowerBoundTextBytes(keyBytes, from);
  }

  private lowerBoundTextBytes(keyBytes: number, from: number): number {
    let lo = from;
    let hi = this.text.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareText(mid, keyBytes) > 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First text-run position whose id is > `after`, for any cursor string. */
  private upperBoundText(after: string): number {
    let lo = 0;
    let hi = this.text.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.textIdAt(mid) <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Sign of (scratch key) - (text id at i), by bytes. */
  private compareText(i: number, keyBytes: number): number {
    const t = this.text;
    const start = i === 0 ? 0 : (t.idEnd[i - 1] as number);
    return this.scratch.compare(t.arena, start, t.idEnd[i] as number, 0, keyBytes);
  }

  private mainLive(i: number): boolean {
    return ((this.main.flags[i] as number) & FLAG_DEAD) === 0;
  }

  private textLive(i: number): boolean {
    return ((this.text.flags[i] as number) & FLAG_DEAD) === 0;
  }

  private mainIdAt(i: number): string {
    const m = this.main;
    return derivedBlobId(writeIdBytesAt(m, i, this.keyBytes), m.part[i] as number);
  }

  private textIdAt(i: number): string {
    const t = this.text;
    return t.arena.toString('latin1', i === 0 ? 0 : (t.idEnd[i - 1] as number), t.idEnd[i] as number);
  }

  private textIdBytesAt(i: number): number {
    const t = this.text;
    return (t.idEnd[i] as number) - (i === 0 ? 0 : (t.idEnd[i - 1] as number));
  }

  private mainLocationAt(i: number): NeedleLocation {
    const m = this.main;
    const size = m.size[i] as number;
    return {
      volume: m.volume[i] as number,
      offset: (m.offset8[i] as number) * NEEDLE_ALIGN_BYTES,
      needleBytes: size + (m.frame[i] as number),
      size,
      corrupt: ((m.flags[i] as number) & FLAG_CORRUPT) !== 0,
    };
  }

  private textLocationAt(i: number): NeedleLocation {
    const t = this.text;
    return {
      volume: t.volume[i] as number,
      offset: (t.offset8[i] as number) * NEEDLE_ALIGN_BYTES,
      needleBytes: t.needleBytes[i] as number,
      size: t.size[i] as number,
      corrupt: ((t.flags[i] as number) & FLAG_CORRUPT) !== 0,
    };
  }
}

/** True when a main-run entry can hold `location` (its framing fits 16 bits). */
export function fitsMainRun(location: { needleBytes: number; size: number }): boolean {
  const frame = location.needleBytes - location.size;
  return frame >= 0 && frame <= MAIN_FRAME_BYTES_MAX;
}

/** The 16 bytes of the write id of main-run entry `i`, written into `out`. */
export function writeIdBytesAt(run: MainRun, i: number, out: Uint8Array = new Uint8Array(ULID_BYTES)): Uint8Array {
  for (let k = 0; k < WRITE_ID_WORDS; k++) {
    const w = run.writeId[WRITE_ID_WORDS * i + k] as number;
    out[4 * k] = w >>> 24;
    out[4 * k + 1] = (w >>> 16) & 0xff;
    out[4 * k + 2] = (w >>> 8) & 0xff;
    out[4 * k + 3] = w & 0xff;
  }
  return out;
}

/**
 * A main run's arrays share one allocation, 32 bytes per entry. One large block rather than eight: the allocator
 * maps a block this size on its own and gives it back to the system when a merge drops it, where several medium
 * blocks would stay in the process's heap and inflate its RSS after every merge.
 */
export function emptyMainRun(count: number): MainRun {
  const memory = new ArrayBuffer(MAIN_ENTRY_BYTES * count);
  return {
    count,
    writeId: new Uint32Array(memory, 0, WRITE_ID_WORDS * count),
    volume: new Uint32Array(memory, 16 * count, count),
    offset8: new Uint32Array(memory, 20 * count, count),
    size: new Uint32Array(memory, 24 * count, count),
    frame: new Uint16Array(memory, 28 * count, count),
    part: new Uint8Array(memory, 30 * count, count),
    flags: new Uint8Array(memory, 31 * count, count),
  };
}

/** A text run's arrays and arena in one allocation (see emptyMainRun), laid out as in a format 1 checkpoint. */
export function emptyTextRun(count: number, arenaBytes: number): TextRun {
  const memory = new ArrayBuffer(TEXT_ENTRY_BYTES * count + arenaBytes);
  const u32 = (i: number): Uint32Array => new Uint32Array(memory, 4 * count * i, count);
  return {
    count,
    idEnd: u32(0),
    volume: u32(1),
    offset8: u32(2),
    needleBytes: u32(3),
    size: u32(4),
    flags: new Uint8Array(memory, 20 * count, count),
    arena: Buffer.from(memory, TEXT_ENTRY_BYTES * count, arenaBytes),
  };
}

/**
 * Splits a run of text ids (a format 1 checkpoint holds every id as text) into the main run, for the derived ids
 * whose framing fits, and a text run for the rest. One pass; `all` must be ascending, as a checked checkpoint is.
 */
export function splitTextRun(all: TextRun): IndexRun {
  const isMain = new Uint8Array(all.count);
  const bytes = new Uint8Array(ULID_BYTES);
  let mainCount = 0;
  let mainArena = 0;
  const ids: Array<{ writeId: Uint8Array; part: number } | null> = [];
  for (let i = 0; i < all.count; i++) {
    const start = i === 0 ? 0 : (all.idEnd[i - 1] as number);
    const end = all.idEnd[i] as number;
    const parsed =
      fitsMainRun({ needleBytes: all.needleBytes[i] as number, size: all.size[i] as number }) && end - start >= ULID_TEXT_LENGTH + 2
        ? parseDerivedBytes(all.arena, start, end, bytes)
        : null;
    ids.push(parsed);
    if (parsed !== null) {
      isMain[i] = 1;
      mainCount += 1;
      mainArena += end - start;
    }
  }
  const main = emptyMainRun(mainCount);
  const text = emptyTextRun(all.count - mainCount, all.arena.length - mainArena);
  let o = 0;
  let t = 0;
  let ao = 0;
  for (let i = 0; i < all.count; i++) {
    const parsed = ids[i];
    if (parsed !== null && parsed !== undefined) {
      const w = parsed.writeId;
      for (let k = 0; k < WRITE_ID_WORDS; k++) {
        main.writeId[WRITE_ID_WORDS * o + k] =
          (((w[4 * k] as number) << 24) | ((w[4 * k + 1] as number) << 16) | ((w[4 * k + 2] as number) << 8) | (w[4 * k + 3] as number)) >>> 0;
      }
      main.part[o] = parsed.part;
      main.volume[o] = all.volume[i] as number;
      main.offset8[o] = all.offset8[i] as number;
      main.size[o] = all.size[i] as number;
      main.frame[o] = (all.needleBytes[i] as number) - (all.size[i] as number);
      main.flags[o] = (all.flags[i] as number) & FLAG_CORRUPT;
      o++;
    } else {
      const start = i === 0 ? 0 : (all.idEnd[i - 1] as number);
      const end = all.idEnd[i] as number;
      all.arena.copy(text.arena, ao, start, end);
      ao += end - start;
      text.idEnd[t] = ao;
      text.volume[t] = all.volume[i] as number;
      text.offset8[t] = all.offset8[i] as number;
      text.needleBytes[t] = all.needleBytes[i] as number;
      text.size[t] = all.size[i] as number;
      text.flags[t] = (all.flags[i] as number) & FLAG_CORRUPT;
      t++;
    }
  }
  return new IndexRun(main, text);
}

/** The write id and part code of the derived id in `arena[start, end)`, or null when it is a text id. */
function parseDerivedBytes(arena: Buffer, start: number, end: number, scratch: Uint8Array): { writeId: Uint8Array; part: number } | null {
  if (arena[start + ULID_TEXT_LENGTH] !== 0x2e) return null;
  const code = partCode(arena.toString('latin1', start + ULID_TEXT_LENGTH + 1, end));
  if (code === null) return null;
  if (ulidToBytes(arena.toString('latin1', start, start + ULID_TEXT_LENGTH), scratch) === null) return null;
  return { writeId: scratch.slice(), part: code };
}

function copyLiveMain(src: MainRun, from: number, to: number, dst: MainRun, o: number): number {
  let j = from;
  while (j < to) {
    while (j < to && ((src.flags[j] as number) & FLAG_DEAD) !== 0) j++;
    const start = j;
    while (j < to && ((src.flags[j] as number) & FLAG_DEAD) === 0) j++;
    if (start === j) continue;
    dst.writeId.set(src.writeId.subarray(WRITE_ID_WORDS * start, WRITE_ID_WORDS * j), WRITE_ID_WORDS * o);
    dst.part.set(src.part.subarray(start, j), o);
    dst.volume.set(src.volume.subarray(start, j), o);
    dst.offset8.set(src.offset8.subarray(start, j), o);
    dst.size.set(src.size.subarray(start, j), o);
    dst.frame.set(src.frame.subarray(start, j), o);
    dst.flags.set(src.flags.subarray(start, j), o);
    o += j - start;
  }
  return o;
}

/** Copies the live entries of a text run in [from, to) to `dst` at (o, ao), a contiguous stretch at a time. */
function copyLiveText(src: TextRun, from: number, to: number, dst: TextRun, o: number, ao: number): [number, number] {
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

function assertRunShapes(main: MainRun, text: TextRun): void {
  const m = main.count;
  assert(
    main.writeId.length === WRITE_ID_WORDS * m &&
      main.volume.length === m &&
      main.offset8.length === m &&
      main.size.length === m &&
      main.frame.length === m &&
      main.part.length === m &&
      main.flags.length === m,
    'every main run array has count entries',
  );
  const n = text.count;
  assert(
    text.idEnd.length === n &&
      text.volume.length === n &&
      text.offset8.length === n &&
      text.needleBytes.length === n &&
      text.size.length === n &&
      text.flags.length === n,
    'every text run array has count entries',
  );
  assert(n === 0 || text.idEnd[n - 1] === text.arena.length, 'the last id ends at the end of the arena');
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
