import { createHash } from 'node:crypto';

/** sha256 of a payload, hex: the end-to-end checksum a manifest records for every blob. */
export function checksumOf(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
