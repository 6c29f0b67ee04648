import { createHash } from 'node:crypto';

/** sha256 of a payload, hex: the end-to-end checksum a manifest records for every blob. */
export function checksumOf(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hex digits of a 64-bit checksum: the first 64 bits of sha256 (binary manifests, docs/design/compact-formats.md 3.1). */
export const CHECKSUM64_HEX_DIGITS = 16;
const SHA256_HEX_DIGITS = 64;

/** The 64-bit checksum of a payload as binary manifests record it: the first 16 hex digits of its sha256. */
export function checksum64Of(data: Buffer | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, CHECKSUM64_HEX_DIGITS);
}

/**
 * Whether a payload whose sha256 is `actualSha256Hex` is the one a manifest recorded as `expected`: a v1 manifest
 * records the whole sha256 (64 hex digits), a binary one its first 16. Any other length matches nothing.
 */
export function checksumMatches(expected: string, actualSha256Hex: string): boolean {
  if (actualSha256Hex.length !== SHA256_HEX_DIGITS) return false;
  if (expected.length === SHA256_HEX_DIGITS) return expected === actualSha256Hex;
  return expected.length === CHECKSUM64_HEX_DIGITS && actualSha256Hex.startsWith(expected);
}

/**
 * Whether a node's recorded checksum for a blob (BlobInfo.checksum: 64 hex digits in format 1, 16 in format 2) is
 * the one a manifest records: equal, or the manifest's 16 digits are the prefix of the node's 64. A manifest's 64
 * digits are never satisfied by a node's 16: that would check fewer bits than the manifest promises.
 */
export function recordedChecksumMatches(expected: string, recorded: string): boolean {
  if (recorded.length === SHA256_HEX_DIGITS) return checksumMatches(expected, recorded);
  return recorded.length === CHECKSUM64_HEX_DIGITS && expected === recorded;
}
