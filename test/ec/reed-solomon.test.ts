import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import { EC_TOTAL_SHARDS } from '../../internal/core/limits.js';
import { EC_SMALL_ENCODE_BYTES_MAX, ReedSolomonCode } from '../../internal/ec/reed-solomon.js';

const code = new ReedSolomonCode();
const SIZES = [0, 1, 7, 8, 9, 31, 33, 1024 * 1024 + 3];

/** Every set of up to two shard numbers to drop: 1 + 6 + 15 = 22 sets, 21 of them with a shard missing. */
function missingSets(): number[][] {
  const sets: number[][] = [[]];
  for (let a = 0; a < EC_TOTAL_SHARDS; a++) {
    sets.push([a]);
    for (let b = a + 1; b < EC_TOTAL_SHARDS; b++) sets.push([a, b]);
  }
  return sets;
}

function without(shards: Buffer[], missing: readonly number[]): (Buffer | null)[] {
  return shards.map((shard, index) => (missing.includes(index) ? null : shard));
}

/** True when the two views share bytes (small Buffers share Node's pool, so the same ArrayBuffer is not enough). */
function overlaps(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length;
}

async function expectInsufficientNodes(promise: Promise<unknown>, available: number): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isStrataError(error, 'INSUFFICIENT_NODES')).toBe(true);
  expect((error as Error).message).toContain(`${available} of 6 shards available`);
  expect((error as Error).message).toContain('4 needed');
}

describe('ReedSolomonCode', () => {
  it('encodes small data on the calling thread to exactly the shards the thread pool gives', async () => {
    const local = new ReedSolomonCode();
    const pool = new ReedSolomonCode({ smallEncodeBytesMax: 0 });
    for (const size of [0, 1, 7, 8, 31, 32, 100, 975, 4096, EC_SMALL_ENCODE_BYTES_MAX - 3, EC_SMALL_ENCODE_BYTES_MAX]) {
      for (const data of [randomBytes(size), Buffer.alloc(size, 0xff)]) {
        expect(await local.encode(data), `${size} bytes`).toEqual(await pool.encode(data));
      }
    }
  });

  it('reconstructs small data encoded on the calling thread from any four shards', async () => {
    const code = new ReedSolomonCode();
    const data = randomBytes(975);
    const shards = await code.encode(data);
    for (let a = 0; a < EC_TOTAL_SHARDS; a++) {
      for (let b = a + 1; b < EC_TOTAL_SHARDS; b++) {
        const some = shards.map((s, i) => (i === a || i === b ? null : s));
        expect((await code.reconstruct(some, data.length)).equals(data), `without ${a} and ${b}`).toBe(true);
      }
    }
  });

  it('has a 4+2 geometry and shards that are a multiple of 8 bytes, at least 8', () => {
    expect(code.dataShards).toBe(4);
    expect(code.parityShards).toBe(2);
    expect(code.shardBytesFor(0)).toBe(8);
    expect(code.shardBytesFor(1)).toBe(8);
    expect(code.shardBytesFor(32)).toBe(8);
    expect(code.shardBytesFor(33)).toBe(16);
    expect(code.shardBytesFor(1024 * 1024 + 3)).toBe(262_152);
    expect(() => code.shardBytesFor(-1)).toThrow('dataBytes < 0');
    expect(() => code.shardBytesFor(1.5)).toThrow('!Number.isSafeInteger(dataBytes)');
  });

  it('encodes six zero-padded shards of shardBytesFor(n) bytes', async () => {
    const data = randomBytes(9);
    const shards = await code.encode(data);
    expect(shards).toHaveLength(6);
    for (const shard of shards) expect(shard.length).toBe(8);
    expect(shards[0]).toEqual(data.subarray(0, 8));
    expect(shards[1]).toEqual(Buffer.from([data[8] ?? -1, 0, 0, 0, 0, 0, 0, 0]));
    expect(shards[2]).toEqual(Buffer.alloc(8));
  });

  it('encodes deterministically, and shards do not alias the input', async () => {
    const data = randomBytes(1000);
    const first = await code.encode(data);
    const copy = first.map((shard) => Buffer.from(shard));
    data.fill(0xff);
    expect(first).toEqual(copy);
    // Buffers come from allocUnsafe: equal output from equal input shows no stale memory leaks into the shards.
    expect(await code.encode(data)).toEqual(await code.encode(Buffer.from(data)));
  });

  for (const size of SIZES) {
    it(`reconstructs ${size} bytes from every set of four or more shards`, async () => {
      const data = randomBytes(size);
      const shards = await code.encode(data);
      for (const missing of missingSets()) {
        const result = await code.reconstruct(without(shards, missing), size);
        expect(result.length, `missing ${missing.join(',')}`).toBe(size);
        expect(result.equals(data), `missing ${missing.join(',')}`).toBe(true);
      }
    });
  }

  it('returns data that shares no memory with the shards it was given', async () => {
    const data = randomBytes(100);
    const shards = await code.encode(data);
    for (const missing of [[], [1]]) {
      const input = without(shards, missing);
      const result = await code.reconstruct(input, 100);
      for (const shard of input) if (shard) expect(overlaps(result, shard)).toBe(false);
      expect(result.equals(data)).toBe(true);
    }
  });

  it('fails with INSUFFICIENT_NODES when three shards are missing', async () => {
    const shards = await code.encode(randomBytes(100));
    await expectInsufficientNodes(code.reconstruct(without(shards, [0, 3, 5]), 100), 3);
    await expectInsufficientNodes(code.rebuildShards(without(shards, [1, 2, 4]), 100), 3);
  });

  it('treats a shard of the wrong length as missing', async () => {
    const data = randomBytes(100);
    const shards = await code.encode(data);
    const truncated: (Buffer | null)[] = [...shards];
    truncated[0] = shards[0]?.subarray(0, 8) ?? null;
    expect((await code.reconstruct(truncated, 100)).equals(data)).toBe(true);
    truncated[4] = Buffer.concat([shards[4] ?? Buffer.alloc(0), Buffer.alloc(8)]);
    expect((await code.reconstruct(truncated, 100)).equals(data)).toBe(true);
    truncated[2] = Buffer.alloc(0);
    await expectInsufficientNodes(code.reconstruct(truncated, 100), 3);
  });

  it('fails with INSUFFICIENT_NODES when dataBytes does not match the shards', async () => {
    const shards = await code.encode(randomBytes(100));
    await expectInsufficientNodes(code.reconstruct(shards, 1000), 0);
  });

  it('rebuilds identical shards from every set of four or more', async () => {
    for (const size of [0, 33, 65_536 + 5]) {
      const shards = await code.encode(randomBytes(size));
      for (const missing of missingSets()) {
        const input = without(shards, missing);
        const rebuilt = await code.rebuildShards(input, size);
        // Buffer.equals, not toEqual: a deep comparison byte by byte is slow on 64 KiB shards.
        const same = rebuilt.map((shard, index) => shard.equals(shards[index] ?? Buffer.alloc(0)));
        expect(same, `size ${size}, missing ${missing.join(',')}`).toEqual([true, true, true, true, true, true]);
        for (const [index, shard] of rebuilt.entries()) {
          const given = input[index];
          if (given) expect(overlaps(shard, given), 'rebuilt shard aliases its input').toBe(false);
        }
      }
    }
  });

  it('encodes 8 MiB (throughput printed, not asserted)', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    await code.encode(data); // warm up
    const runs = 10;
    const started = process.hrtime.bigint();
    for (let run = 0; run < runs; run++) await code.encode(data);
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    const megabytesPerSecond = (data.length * runs) / 1e6 / (elapsedMs / 1000);
    const degraded = await code.encode(data);
    const reconstructStarted = process.hrtime.bigint();
    for (let run = 0; run < runs; run++) await code.reconstruct(without(degraded, [0, 2]), data.length);
    const reconstructMs = Number(process.hrtime.bigint() - reconstructStarted) / 1e6;
    const reconstructMegabytesPerSecond = (data.length * runs) / 1e6 / (reconstructMs / 1000);
    console.log(
      `reed-solomon 4+2, 8 MiB: encode ${(elapsedMs / runs).toFixed(2)} ms = ` +
        `${megabytesPerSecond.toFixed(0)} MB/s; ` +
        `reconstruct without shards 0,2 ${(reconstructMs / runs).toFixed(2)} ms = ` +
        `${reconstructMegabytesPerSecond.toFixed(0)} MB/s`,
    );
  });
});
