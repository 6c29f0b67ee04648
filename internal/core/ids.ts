import { randomFillSync } from 'node:crypto';

/**
 * Write ids are ULIDs: 48 bits of milliseconds and 80 random bits in Crockford base32, so they sort by time.
 * Ours is generated here rather than by the `ulid` package, which asked the kernel for randomness once per
 * character (a measurable share of a write's CPU); we draw random bytes from a pooled buffer instead. Within one
 * millisecond ids stay monotonic by incrementing the random part, as the ULID spec's monotonic mode does.
 */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const RANDOM_POOL_BYTES = 4096;
const RANDOM_BYTES = 10;
const pool = Buffer.alloc(RANDOM_POOL_BYTES);
let poolOffset = RANDOM_POOL_BYTES;
let lastMs = -1;
const lastRandom = Buffer.alloc(RANDOM_BYTES);

function freshRandom(): void {
  if (poolOffset + RANDOM_BYTES > RANDOM_POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  pool.copy(lastRandom, 0, poolOffset, poolOffset + RANDOM_BYTES);
  poolOffset += RANDOM_BYTES;
}

function incrementRandom(): void {
  for (let i = RANDOM_BYTES - 1; i >= 0; i--) {
    const byte = lastRandom[i]!;
    if (byte < 255) {
      lastRandom[i] = byte + 1;
      return;
    }
    lastRandom[i] = 0;
  }
  throw new Error('ULID random part overflowed within one millisecond');
}

/** A fresh, unique, time-ordered write id. Every write, patch and delete gets one at the gateway. */
export function newWriteId(nowMs: number = Date.now()): string {
  const ms = Math.max(Math.floor(nowMs), lastMs);
  if (ms === lastMs) incrementRandom();
  else freshRandom();
  lastMs = ms;
  let out = '';
  let t = ms;
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[t % 32]! + out;
    t = Math.floor(t / 32);
  }
  // 80 random bits -> 16 base32 characters, 5 bits at a time from the most significant end.
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < RANDOM_BYTES; i++) {
    acc = (acc << 8) | lastRandom[i]!;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD[(acc >> bits) & 31]!;
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

/** Parts of one write: hot replicas are `hot-<i>`, erasure-coded shards `shard-<i>`. */
export type PartName = `hot-${number}` | `shard-${number}`;

/**
 * A blob id is the write id and the part. It is unique per write, never per version, so two concurrent writers
 * can never collide. The same id may live on a second node after a repair moves it; references are (node, id).
 */
export function blobIdOf(writeId: string, part: string): string {
  return `${writeId}.${part}`;
}

/** Blob ids are restricted to a small alphabet so a node can use them in file names without escaping. */
export const BLOB_ID_PATTERN = /^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$/;

export function isValidBlobId(id: string): boolean {
  return BLOB_ID_PATTERN.test(id) && !id.includes('..');
}
