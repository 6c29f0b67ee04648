/**
 * Envelope version 2 (internal/metadata/record-envelope.ts): the raw checksum of records with byte fields (binary
 * manifests), covering the kind, the key and every field, and never equal to a version-1 checksum.
 */
import { describe, expect, it } from 'vitest';
import { checksumBytesMatch, recordChecksum, recordChecksumBytes } from '../../internal/metadata/record-envelope.js';

describe('record envelope version 2', () => {
  const manifest = Uint8Array.from([2, 0, 7, 255, 0, 1]);
  const sum = recordChecksumBytes('manifest', 'users/1', [manifest, 12, 0]);

  it('is 8 raw bytes that verify for exactly the record they were made for', () => {
    expect(sum.length).toBe(8);
    expect(checksumBytesMatch('manifest', 'users/1', [manifest, 12, 0], sum)).toBe(true);
    expect(checksumBytesMatch('manifest', 'users/1', [Buffer.from(manifest), 12, 0], Buffer.from(sum))).toBe(true);
  });

  it('a different kind, key, byte, length or later field fails verification', () => {
    const flipped = Uint8Array.from(manifest);
    flipped[3] = flipped[3]! ^ 0x01;
    expect(checksumBytesMatch('abort', 'users/1', [manifest, 12, 0], sum)).toBe(false);
    expect(checksumBytesMatch('manifest', 'users/2', [manifest, 12, 0], sum)).toBe(false);
    expect(checksumBytesMatch('manifest', 'users/1', [flipped, 12, 0], sum)).toBe(false);
    expect(checksumBytesMatch('manifest', 'users/1', [manifest.subarray(0, 5), 12, 0], sum)).toBe(false);
    expect(checksumBytesMatch('manifest', 'users/1', [manifest, 13, 0], sum)).toBe(false);
    expect(checksumBytesMatch('manifest', 'users/1', [manifest, 12, 1], sum)).toBe(false);
    // Bytes moved from the end of the binary field into the next field cannot keep the checksum: the length counts.
    expect(checksumBytesMatch('manifest', 'users/1', [manifest.subarray(0, 5), '\u0001', 12, 0], sum)).toBe(false);
  });

  it('refuses anything but 8 bytes, and differs from the version-1 checksum of the same text fields', () => {
    expect(checksumBytesMatch('manifest', 'users/1', [manifest, 12, 0], sum.toString('hex'))).toBe(false);
    expect(checksumBytesMatch('manifest', 'users/1', [manifest, 12, 0], Buffer.concat([sum, Buffer.from([0])]))).toBe(false);
    expect(recordChecksumBytes('counter', 'revision', [5]).toString('hex')).not.toBe(recordChecksum('counter', 'revision', [5]));
  });
});
