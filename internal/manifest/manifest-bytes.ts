/**
 * The byte-level pieces of the binary manifest (manifest-codec.ts): a writer that refuses any value its form
 * cannot carry exactly, and a reader that checks every length against the bytes that are left, so that a
 * truncated or damaged record is reported with the field it broke in rather than read past its end.
 */

import { ulidToBytes } from '../core/derived-ids.js';

/** Bytes a varint may take: 8 x 7 bits hold every safe integer (53 bits). */
export const VARINT_BYTES_MAX = 8;

/**
 * Thrown while encoding when a value has no compact form (not a safe non-negative integer, not canonical hex, a
 * node without a number...). Never leaves the codec: the manifest is then written in the escape form.
 */
export class NotCompactable extends Error {
  constructor(what: string) {
    super(`no compact form for ${what}`);
    this.name = 'NotCompactable';
  }
}

/** A binary manifest that cannot be decoded: damaged, truncated, or naming something this store does not know. */
export class ManifestDecodeError extends Error {
  /** What is wrong, in words an operator can act on (which field, what was found). */
  readonly why: string;
  constructor(why: string) {
    super(`the binary manifest cannot be decoded: ${why}`);
    this.name = 'ManifestDecodeError';
    this.why = why;
  }
}

const utf8Encoder = new TextEncoder();
// ignoreBOM: a text that begins with U+FEFF keeps it (by default the decoder would drop it).
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8Bytes(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

export function utf8Text(bytes: Uint8Array, what: string): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw new ManifestDecodeError(`${what} is not valid UTF-8`);
  }
}

/** Zigzag: small magnitudes of either sign become small unsigned numbers (0, -1, 1, -2 -> 0, 1, 2, 3). */
function zigzag(value: number, what: string): number {
  if (!Number.isSafeInteger(value)) throw new NotCompactable(what);
  const z = value >= 0 ? value * 2 : -value * 2 - 1;
  if (!Number.isSafeInteger(z)) throw new NotCompactable(what);
  return z;
}

export class ByteWriter {
  private readonly bytes: number[] = [];

  u8(value: number): void {
    this.bytes.push(value & 0xff);
  }

  /** Unsigned LEB128 of a safe non-negative integer. */
  varint(value: number, what: string): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new NotCompactable(what);
    let v = value;
    while (v >= 0x80) {
      this.bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.bytes.push(v);
  }

  signed(value: number, what: string): void {
    this.varint(zigzag(value, what), what);
  }

  raw(bytes: Uint8Array): void {
    for (const b of bytes) this.bytes.push(b);
  }

  /** UTF-8 text after its byte length. */
  text(value: string): void {
    const bytes = utf8Bytes(value);
    this.varint(bytes.length, 'a text length');
    this.raw(bytes);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

export class ByteReader {
  private at: number;

  constructor(
    private readonly bytes: Uint8Array,
    offset: number,
  ) {
    this.at = offset;
  }

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  u8(what: string): number {
    if (this.at >= this.bytes.length) throw this.truncated(what, 1);
    return this.bytes[this.at++]!;
  }

  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      const b = this.u8(what);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        // The encoder writes the shortest form only; a longer one (a trailing zero group) is not ours.
        if (b === 0 && i > 0) throw new ManifestDecodeError(`${what} is a varint with a needless trailing zero byte`);
        if (!Number.isSafeInteger(value)) throw new ManifestDecodeError(`${what} (${value}) is beyond 2^53`);
        return value;
      }
      scale *= 0x80;
    }
    throw new ManifestDecodeError(`${what} is a varint longer than ${VARINT_BYTES_MAX} bytes`);
  }

  signed(what: string): number {
    const z = this.varint(what);
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  raw(length: number, what: string): Uint8Array {
    if (length > this.remaining) throw this.truncated(what, length);
    const out = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return out;
  }

  text(what: string): string {
    const length = this.varint(`the length of ${what}`);
    return utf8Text(this.raw(length, what), what);
  }

  /**
   * A count of items that each take at least `bytesPerItem` bytes: refused when the bytes left cannot hold them,
   * so that a damaged count never makes the decoder allocate or loop for items that are not there.
   */
  count(what: string, bytesPerItem = 1): number {
    const n = this.varint(`the count of ${what}`);
    if (n * bytesPerItem > this.remaining) {
      throw new ManifestDecodeError(`it claims ${n} ${what} but only ${this.remaining} bytes follow (truncated or damaged)`);
    }
    return n;
  }

  /** The record must end exactly where its last field does. */
  end(): void {
    if (this.remaining !== 0) {
      throw new ManifestDecodeError(`${this.remaining} bytes follow the last field (a damaged record, or two run together)`);
    }
  }

  private truncated(what: string, needed: number): ManifestDecodeError {
    return new ManifestDecodeError(
      `it ends inside ${what} (needs ${needed} more bytes at offset ${this.at}, ${this.remaining} left): truncated`,
    );
  }
}

const HEX = '0123456789abcdef';

/** The value of a lowercase hex digit's char code, or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** Raw bytes of lowercase hex text, or null for anything else (upper case would not come back as it was). */
export function lowerHexToBytes(text: string): Uint8Array | null {
  if (text.length % 2 !== 0) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(text.charCodeAt(2 * i));
    const lo = hexValue(text.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return null;
    out[i] = hi * 16 + lo;
  }
  return out;
}

export function bytesToLowerHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += HEX[b >> 4]! + HEX[b & 15]!;
  return out;
}

// Values the compact form carries only in one exact shape; anything else is NotCompactable.

/** The position of a value in a code table. */
export function indexIn<T>(table: readonly T[], value: T, what: string): number {
  const i = table.indexOf(value);
  if (i < 0) throw new NotCompactable(what);
  return i;
}

/** The 16 bytes of a canonical ULID. */
export function ulidBytesOf(text: string, what: string): Uint8Array {
  const bytes = typeof text === 'string' ? ulidToBytes(text) : null;
  if (bytes === null) throw new NotCompactable(`${what} (not a canonical ULID)`);
  return bytes;
}

/** The raw bytes of lowercase hex text of exactly `length` bytes. */
export function hexBytes(text: string, length: number, what: string): Uint8Array {
  const bytes = typeof text === 'string' ? lowerHexToBytes(text) : null;
  if (bytes === null || bytes.length !== length) throw new NotCompactable(what);
  return bytes;
}

const DAY_MS = 86_400_000;
let cachedDay = Number.NaN;
let cachedDayPrefix = '';

/**
 * `new Date(ms).toISOString()`, with the date part kept from the previous call: a scan decodes two dates per manifest,
 * nearly all of the same few days, and formatting a whole Date each time showed in profiles. `ms` is a valid Date time.
 */
export function isoDateOfMs(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  if (day !== cachedDay) {
    const iso = new Date(day * DAY_MS).toISOString();
    cachedDayPrefix = iso.slice(0, iso.indexOf('T') + 1);
    cachedDay = day;
  }
  let rest = ms - day * DAY_MS;
  const millis = rest % 1000;
  rest = (rest - millis) / 1000;
  const seconds = rest % 60;
  rest = (rest - seconds) / 60;
  const minutes = rest % 60;
  const hours = (rest - minutes) / 60;
  return `${cachedDayPrefix}${twoDigits(hours)}:${twoDigits(minutes)}:${twoDigits(seconds)}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

function twoDigits(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}
