/**
 * Blob ids the write path makes are derived: `<write id>.<part>` (ids.ts blobIdOf), where the write id is a
 * canonical ULID. Compact formats (needle v2, the 32-byte index entry, binary manifests) store such an id as the
 * ULID's 16 raw bytes and a one-byte part code instead of its 30-odd characters of text. Every other id (healer
 * suffixes like `.r<rev>`, ids tests choose) stays text.
 *
 * Part codes are chosen so that comparing (ULID bytes, part code) gives the same order as comparing the ids as
 * text, which listing relies on: `cold-*` < `hot-*` < `shard-*`, and within `hot-` only `hot-0`..`hot-9` get a code
 * (`hot-10` sorts between `hot-1` and `hot-2` as text, so it stays a text id).
 */

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CROCKFORD_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < CROCKFORD.length; i++) CROCKFORD_VALUE[CROCKFORD.charCodeAt(i)] = i;

/** Characters of a ULID in text; 26 x 5 bits = 130 bits, of which the first two are zero in a canonical one. */
export const ULID_TEXT_LENGTH = 26;
/** Bytes of a ULID in binary (48-bit milliseconds + 80 random bits). */
export const ULID_BYTES = 16;

/** The part codes; any part not listed keeps its id as text. */
const PART_CODE_TABLE: ReadonlyArray<readonly [string, number]> = [
  ...[0, 1, 2].map((i) => [`cold-${i}`, 0x00 + i] as const),
  ...[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => [`hot-${i}`, 0x10 + i] as const),
  ...[0, 1, 2, 3, 4, 5].map((i) => [`shard-${i}`, 0x20 + i] as const),
];
const CODE_OF_PART = new Map<string, number>(PART_CODE_TABLE);
const PART_OF_CODE = new Map<number, string>(PART_CODE_TABLE.map(([part, code]) => [code, part]));

/** The one-byte code of a part, or null when the part has none. */
export function partCode(part: string): number | null {
  return CODE_OF_PART.get(part) ?? null;
}

/** The part a code stands for, or null for a byte that is not a part code. */
export function partOfCode(code: number): string | null {
  return PART_OF_CODE.get(code) ?? null;
}

/**
 * The 16 bytes of a canonical ULID (upper-case Crockford base32, first character 0-7), or null for any other text.
 * Canonical only, so that bytes -> text gives back exactly the text that was stored.
 */
export function ulidToBytes(text: string, out: Uint8Array = new Uint8Array(ULID_BYTES), offset = 0): Uint8Array | null {
  if (text.length !== ULID_TEXT_LENGTH) return null;
  const first = text.charCodeAt(0);
  if (first < 0x30 || first > 0x37) return null;
  // 130 bits, most significant first; the two leading bits are the first character's top bits (zero here).
  let acc = 0;
  let bits = 0;
  let at = offset;
  for (let i = 0; i < ULID_TEXT_LENGTH; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? CROCKFORD_VALUE[c]! : -1;
    if (v < 0) return null;
    acc = ((acc << 5) | v) & 0xfff;
    bits += 5;
    if (i === 0) bits -= 2; // drop the two zero bits that pad 128 bits to 130
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** The canonical ULID text of 16 bytes at `offset`. */
export function ulidFromBytes(bytes: Uint8Array, offset = 0): string {
  let out = '';
  let acc = 0;
  let bits = 2; // the two zero bits ahead of the 128
  for (let i = 0; i < ULID_BYTES; i++) {
    acc = ((acc << 8) | bytes[offset + i]!) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD[(acc >> bits) & 31]!;
    }
  }
  return out;
}

/** A derived blob id taken apart. */
export interface DerivedBlobId {
  writeId: string;
  /** The write id's 16 bytes. */
  writeIdBytes: Uint8Array;
  part: string;
  partCode: number;
}

/** `<canonical ULID>.<coded part>` taken apart, or null when the id must stay text. */
export function parseDerivedBlobId(id: string): DerivedBlobId | null {
  if (id.length < ULID_TEXT_LENGTH + 2 || id.charCodeAt(ULID_TEXT_LENGTH) !== 0x2e) return null;
  const part = id.slice(ULID_TEXT_LENGTH + 1);
  const code = CODE_OF_PART.get(part);
  if (code === undefined) return null;
  const writeId = id.slice(0, ULID_TEXT_LENGTH);
  const writeIdBytes = ulidToBytes(writeId);
  if (writeIdBytes === null) return null;
  return { writeId, writeIdBytes, part, partCode: code };
}

/** The id of a derived blob from its write id's bytes and its part code (the inverse of parseDerivedBlobId). */
export function derivedBlobId(writeIdBytes: Uint8Array, code: number, offset = 0): string {
  const part = PART_OF_CODE.get(code);
  if (part === undefined) throw new RangeError(`0x${code.toString(16)} is not a part code`);
  return `${ulidFromBytes(writeIdBytes, offset)}.${part}`;
}
