/**
 * Reed-Solomon 4+2 on top of the native `@ronomon/reed-solomon` addon. The addon does its work on the libuv thread
 * pool, so encoding megabytes never stalls the event loop; this module arranges buffers around it, and encodes
 * small data itself with the packet XORs it reads off the addon (EC_SMALL_ENCODE_BYTES_MAX).
 *
 * Layout: the four data shards are the data cut into `shardBytesFor(n)`-byte pieces, the last zero padded, and the
 * two parity shards follow. See README.md beside this file.
 */
import { createRequire } from 'node:module';
import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import { EC_DATA_SHARDS, EC_PARITY_SHARDS, EC_TOTAL_SHARDS, LIMITS } from '../core/limits.js';
import type { ErasureCode } from './erasure-code.js';

/**
 * The part of the addon's API that we use (it ships no types). `create(k, m)` returns an immutable context that
 * may be shared by concurrent calls. `encode` reads the shards flagged in `sources` (at least k) and writes those
 * flagged in `targets` (1 to m), where bit i is data shard i for i < k and parity shard i - k otherwise. It throws
 * synchronously on bad arguments (the message is the violated condition) and calls `end` when done. Version 6
 * calls `end` with no arguments; the README documents `end(error)`, so both are handled.
 */
interface RonomonReedSolomon {
  readonly MAX_K: number;
  readonly MAX_M: number;
  create(k: number, m: number): Buffer;
  encode(
    context: Buffer,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    end: (error?: Error | null) => void,
  ): void;
}

// The addon is CommonJS with a .node entry point, which an ES module can only load through require.
const native = createRequire(import.meta.url)('@ronomon/reed-solomon') as RonomonReedSolomon;

/** The addon requires every shard to be a multiple of this many bytes. */
const SHARD_ALIGN_BYTES = 8;
/**
 * Largest `dataBytes` accepted: four shards of the largest blob a storage node takes. This also keeps every size
 * handed to the addon far below its uint32 limit.
 */
export const EC_DATA_BYTES_MAX = EC_DATA_SHARDS * LIMITS.blobBytesMax;

/**
 * Data up to this size is encoded on the calling thread, as XORs of packets, instead of on the thread pool: a
 * small document's parity takes microseconds to compute, while a pool job waits behind the storage nodes'
 * fsyncs, which hold the pool's threads under a write load (a field_hybrid write encodes its cold part and its
 * descriptor).
 */
export const EC_SMALL_ENCODE_BYTES_MAX = 4 * 1024;

const ALL_DATA_FLAGS = (1 << EC_DATA_SHARDS) - 1;
const ALL_PARITY_FLAGS = ((1 << EC_PARITY_SHARDS) - 1) << EC_DATA_SHARDS;
const ALL_FLAGS = ALL_DATA_FLAGS | ALL_PARITY_FLAGS;

export interface ReedSolomonOptions {
  /** EC_SMALL_ENCODE_BYTES_MAX by default; 0 sends every encode to the thread pool. */
  smallEncodeBytesMax?: number;
}

export class ReedSolomonCode implements ErasureCode {
  readonly dataShards = EC_DATA_SHARDS;
  readonly parityShards = EC_PARITY_SHARDS;
  private readonly context: Buffer;
  private readonly smallEncodeBytesMax: number;

  constructor(options: ReedSolomonOptions = {}) {
    this.context = native.create(EC_DATA_SHARDS, EC_PARITY_SHARDS);
    this.smallEncodeBytesMax = options.smallEncodeBytesMax ?? EC_SMALL_ENCODE_BYTES_MAX;
    assert(Number.isSafeInteger(this.smallEncodeBytesMax) && this.smallEncodeBytesMax >= 0, 'smallEncodeBytesMax >= 0');
  }

  /**
   * `dataBytes`: an integer, 0 <= dataBytes <= EC_DATA_BYTES_MAX.
   * Returns ceil(dataBytes / 4) rounded up to a multiple of 8, and at least 8 (the addon refuses empty shards, so
   * an empty document still has six 8-byte shards).
   */
  shardBytesFor(dataBytes: number): number {
    assertDataBytes(dataBytes);
    const bytes = Math.ceil(dataBytes / EC_DATA_SHARDS);
    return Math.max(SHARD_ALIGN_BYTES, Math.ceil(bytes / SHARD_ALIGN_BYTES) * SHARD_ALIGN_BYTES);
  }

  /**
   * `data`: a Buffer of at most EC_DATA_BYTES_MAX bytes; it is copied, so the caller may reuse it at once.
   * Returns six shards of `shardBytesFor(data.length)` bytes: data 0-3 (the last zero padded), then parity 4-5.
   * The six are views of one allocation owned by the result, which costs one copy of the data and nothing else.
   */
  async encode(data: Buffer): Promise<Buffer[]> {
    assert(Buffer.isBuffer(data), '!Buffer.isBuffer(data)');
    const shardBytes = this.shardBytesFor(data.length);
    // Unsafe allocation is safe here: the data region is filled by the copy and the zero fill, and the parity
    // region is entirely written by the addon (a parity shard that is not a source is always recomputed).
    const work = Buffer.allocUnsafe(shardBytes * EC_TOTAL_SHARDS);
    const dataRegion = work.subarray(0, shardBytes * EC_DATA_SHARDS);
    const parityRegion = work.subarray(shardBytes * EC_DATA_SHARDS);
    data.copy(dataRegion, 0);
    dataRegion.fill(0, data.length);
    if (data.length <= this.smallEncodeBytesMax) {
      encodeParityFromPlan(await parityPlan(this.context), dataRegion, parityRegion, shardBytes);
    } else {
      await this.run(ALL_DATA_FLAGS, ALL_PARITY_FLAGS, dataRegion, parityRegion, shardBytes);
    }
    return splitShards(work, shardBytes);
  }

  /**
   * `shards`: exactly six entries, index = shard number; null, or a Buffer of any other length than
   * `shardBytesFor(dataBytes)`, counts as missing. At least four must be usable, else INSUFFICIENT_NODES.
   * `dataBytes`: the length of the data that was encoded (the padding is not recorded in the shards).
   * Returns a new Buffer of `dataBytes` bytes that shares no memory with `shards`. When the four data shards are
   * usable this is one copy and no native call; otherwise the missing data is decoded on the thread pool.
   */
  async reconstruct(shards: (Buffer | null)[], dataBytes: number): Promise<Buffer> {
    const shardBytes = this.shardBytesFor(dataBytes);
    const usable = usableFlags(shards, shardBytes);
    if ((usable & ALL_DATA_FLAGS) === ALL_DATA_FLAGS) return concatData(shards, shardBytes, dataBytes);
    // Data and parity in separate allocations, so that the result can be a view of the data region without
    // keeping the parity region alive or copying the data a second time.
    const dataRegion = Buffer.allocUnsafe(shardBytes * EC_DATA_SHARDS);
    const parityRegion = Buffer.allocUnsafe(shardBytes * EC_PARITY_SHARDS);
    copyUsable(shards, usable, dataRegion, parityRegion, shardBytes);
    await this.run(usable, ~usable & ALL_FLAGS, dataRegion, parityRegion, shardBytes);
    return dataRegion.subarray(0, dataBytes);
  }

  /**
   * Arguments as for `reconstruct`. Returns all six shards, each `shardBytesFor(dataBytes)` bytes, the usable
   * ones copied and the missing ones recomputed; none shares memory with `shards`. The usable shards are trusted:
   * a shard with the right length but wrong bytes must be caught by its checksum before it gets here.
   */
  async rebuildShards(shards: (Buffer | null)[], dataBytes: number): Promise<Buffer[]> {
    const shardBytes = this.shardBytesFor(dataBytes);
    const usable = usableFlags(shards, shardBytes);
    const work = Buffer.allocUnsafe(shardBytes * EC_TOTAL_SHARDS);
    const dataRegion = work.subarray(0, shardBytes * EC_DATA_SHARDS);
    const parityRegion = work.subarray(shardBytes * EC_DATA_SHARDS);
    copyUsable(shards, usable, dataRegion, parityRegion, shardBytes);
    const missing = ~usable & ALL_FLAGS;
    if (missing !== 0) await this.run(usable, missing, dataRegion, parityRegion, shardBytes);
    return splitShards(work, shardBytes);
  }

  /**
   * Writes the shards flagged in `targets` from those flagged in `sources`, on the libuv thread pool.
   * `dataRegion` holds data shards 0-3 and `parityRegion` parity shards 4-5, each shard `shardBytes` long.
   */
  private run(
    sources: number,
    targets: number,
    dataRegion: Buffer,
    parityRegion: Buffer,
    shardBytes: number,
  ): Promise<void> {
    assert(dataRegion.length === shardBytes * EC_DATA_SHARDS, 'dataRegion.length != shardBytes * EC_DATA_SHARDS');
    assert(parityRegion.length === shardBytes * EC_PARITY_SHARDS,
      'parityRegion.length != shardBytes * EC_PARITY_SHARDS');
    return new Promise<void>((resolve, reject) => {
      // The addon holds references to both regions until it calls back, so they cannot be collected under it.
      native.encode(this.context, sources, targets, dataRegion, 0, dataRegion.length, parityRegion, 0,
        parityRegion.length, (error) => (error ? reject(error) : resolve()));
    });
  }
}

/**
 * The code's parity as XORs of whole packets, read off the addon itself so that both paths give the same bytes.
 * The addon codes bit-sliced (Cauchy Reed-Solomon over GF(2^8) as a GF(2) bit matrix): each shard is eight
 * packets of shardBytes / 8 bytes, and parity packet k' of parity shard p is the XOR of the data packets (i, k)
 * that the bit matrix marks. Which ones is found by encoding, for every data packet, data that is all ones there
 * and zero elsewhere. Built once per process (the code's matrix is fixed: every context codes alike).
 */
const PACKETS_PER_SHARD = 8;
/** plan[p][k']: the data packets (shard * 8 + packet) whose XOR is packet k' of parity shard p. */
type ParityPlan = number[][][];

let planOnce: Promise<ParityPlan> | null = null;
function parityPlan(context: Buffer): Promise<ParityPlan> {
  planOnce ??= buildParityPlan(context).catch((err: unknown) => {
    planOnce = null;
    throw err;
  });
  return planOnce;
}

async function buildParityPlan(context: Buffer): Promise<ParityPlan> {
  const packetBytes = SHARD_ALIGN_BYTES;
  const shardBytes = packetBytes * PACKETS_PER_SHARD;
  const plan: ParityPlan = Array.from({ length: EC_PARITY_SHARDS }, () => Array.from({ length: PACKETS_PER_SHARD }, () => []));
  for (let source = 0; source < EC_DATA_SHARDS * PACKETS_PER_SHARD; source++) {
    const dataRegion = Buffer.alloc(shardBytes * EC_DATA_SHARDS);
    dataRegion.fill(0xff, source * packetBytes, (source + 1) * packetBytes);
    const parityRegion = Buffer.alloc(shardBytes * EC_PARITY_SHARDS);
    await new Promise<void>((resolve, reject) => {
      native.encode(context, ALL_DATA_FLAGS, ALL_PARITY_FLAGS, dataRegion, 0, dataRegion.length, parityRegion, 0,
        parityRegion.length, (error) => (error ? reject(error) : resolve()));
    });
    for (let p = 0; p < EC_PARITY_SHARDS; p++) {
      for (let k = 0; k < PACKETS_PER_SHARD; k++) {
        const packet = parityRegion.subarray(p * shardBytes + k * packetBytes, p * shardBytes + (k + 1) * packetBytes);
        const ones = packet.every((b) => b === 0xff);
        // Anything but a whole packet of ones or of zeros is a layout this reading does not know: refuse it.
        assert(ones || packet.every((b) => b === 0), 'the addon codes whole packets');
        if (ones) plan[p]![k]!.push(source);
      }
    }
  }
  return plan;
}

function encodeParityFromPlan(plan: ParityPlan, dataRegion: Buffer, parityRegion: Buffer, shardBytes: number): void {
  // Four bytes at a time where the packets and both regions allow it (they do whenever shards are a multiple of
  // 32 bytes and the regions come from one aligned allocation, as encode's do).
  const wide = shardBytes % 32 === 0 && dataRegion.byteOffset % 4 === 0 && parityRegion.byteOffset % 4 === 0;
  const unit = wide ? 4 : 1;
  const data = wide ? new Int32Array(dataRegion.buffer, dataRegion.byteOffset, dataRegion.length / 4) : dataRegion;
  const parity = wide ? new Int32Array(parityRegion.buffer, parityRegion.byteOffset, parityRegion.length / 4) : parityRegion;
  const packet = shardBytes / PACKETS_PER_SHARD / unit;
  for (let p = 0; p < EC_PARITY_SHARDS; p++) {
    for (let k = 0; k < PACKETS_PER_SHARD; k++) {
      const out = (p * PACKETS_PER_SHARD + k) * packet;
      parity.fill(0, out, out + packet);
      for (const source of plan[p]![k]!) {
        const from = source * packet;
        for (let w = 0; w < packet; w++) parity[out + w]! ^= data[from + w]!;
      }
    }
  }
}

function assertDataBytes(dataBytes: number): void {
  assert(Number.isSafeInteger(dataBytes), '!Number.isSafeInteger(dataBytes)');
  assert(dataBytes >= 0, 'dataBytes < 0');
  assert(dataBytes <= EC_DATA_BYTES_MAX, 'dataBytes > EC_DATA_BYTES_MAX');
}

/** Bit i set when shard i is present and of the right length; throws INSUFFICIENT_NODES below four. */
function usableFlags(shards: readonly (Buffer | null)[], shardBytes: number): number {
  assert(Array.isArray(shards), '!Array.isArray(shards)');
  assert(shards.length === EC_TOTAL_SHARDS, 'shards.length != EC_TOTAL_SHARDS');
  let flags = 0;
  let count = 0;
  for (let index = 0; index < EC_TOTAL_SHARDS; index++) {
    const shard = shards[index];
    assert(shard === null || Buffer.isBuffer(shard), `shards[${index}] is neither null nor a Buffer`);
    if (shard !== null && shard.length === shardBytes) {
      flags |= 1 << index;
      count++;
    }
  }
  if (count < EC_DATA_SHARDS) {
    throw new StrataError(
      'INSUFFICIENT_NODES',
      `${count} of ${EC_TOTAL_SHARDS} shards available (of ${shardBytes} bytes each), ` +
        `${EC_DATA_SHARDS} needed to reconstruct`,
      { shardsAvailable: count, shardsNeeded: EC_DATA_SHARDS },
    );
  }
  return flags;
}

function copyUsable(
  shards: readonly (Buffer | null)[],
  usable: number,
  dataRegion: Buffer,
  parityRegion: Buffer,
  shardBytes: number,
): void {
  for (let index = 0; index < EC_TOTAL_SHARDS; index++) {
    if ((usable & (1 << index)) === 0) continue;
    const shard = shards[index];
    assert(shard != null, 'usable shard is null');
    if (index < EC_DATA_SHARDS) shard.copy(dataRegion, index * shardBytes);
    else shard.copy(parityRegion, (index - EC_DATA_SHARDS) * shardBytes);
  }
}

/** The fast path: the first `dataBytes` bytes of data shards 0-3, copied into one new Buffer. */
function concatData(shards: readonly (Buffer | null)[], shardBytes: number, dataBytes: number): Buffer {
  const data = Buffer.allocUnsafe(dataBytes);
  for (let index = 0, offset = 0; offset < dataBytes; index++, offset += shardBytes) {
    const shard = shards[index];
    assert(shard != null, 'data shard is null');
    shard.copy(data, offset, 0, Math.min(shardBytes, dataBytes - offset));
  }
  return data;
}

function splitShards(work: Buffer, shardBytes: number): Buffer[] {
  const shards: Buffer[] = [];
  for (let index = 0; index < EC_TOTAL_SHARDS; index++) {
    shards.push(work.subarray(index * shardBytes, (index + 1) * shardBytes));
  }
  return shards;
}
