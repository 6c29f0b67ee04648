/** Helpers shared by the BlobStore and NodeClient contract suites and the tests that run them. */
import { createHash } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { blobIdNames, type BlobHeader, type BlobInfo } from '../../internal/blobstore/blob-store.js';
import { crc32c } from '../../internal/blobstore/volume/crc32c.js';
import { blobFilePath } from '../../internal/blobstore/file-blob-store.js';
import { isStrataError, type ErrorCode } from '../../internal/core/errors.js';

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function header(id: string, overrides: Partial<BlobHeader> = {}): BlobHeader {
  const dot = id.indexOf('.');
  return {
    id,
    key: `key-of-${id}`,
    writeId: dot > 0 ? id.slice(0, dot) : id,
    part: dot > 0 ? id.slice(dot + 1) : 'hot-0',
    meta: '{"v":1}',
    ...overrides,
  };
}

/**
 * The format-2 header of `id`: no key or meta; they travel, as `header` would set them, in a 'whole' descriptor
 * (so that a header differing in key or meta differs here too), unless `overrides.descriptor` says otherwise.
 */
export function v2Header(id: string, overrides: Partial<BlobHeader> = {}): BlobHeader {
  const v1 = header(id, overrides);
  return {
    id,
    key: '',
    ...blobIdNames(id),
    meta: '',
    format: 2,
    descriptor: overrides.descriptor ?? { kind: 'whole', bytes: new TextEncoder().encode(`${v1.key}\n${v1.meta}`) },
  };
}

/** What a store's BlobInfo says of a put of `h` with `data` (without createdAtMs and corrupt). */
export function expectedInfo(h: BlobHeader, data: Uint8Array): Partial<BlobInfo> {
  if (h.format === 2) {
    return {
      id: h.id,
      key: '',
      ...blobIdNames(h.id),
      meta: '',
      format: 2,
      ...(h.descriptor !== undefined ? { descriptor: h.descriptor } : {}),
      size: data.length,
      checksum: sha256(data).slice(0, 16),
      crc32c: crc32c(data),
    };
  }
  return { id: h.id, key: h.key, writeId: h.writeId, part: h.part, meta: h.meta, size: data.length, checksum: sha256(data) };
}

/** Payload bytes that differ per seed, so two blobs never share a checksum by accident. */
export function payload(bytes: number, seed = 1): Buffer {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + seed * 7) & 0xff;
  return data;
}

/** Awaits `promise` and checks it rejects with a StrataError of `code`; returns the error. */
export async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isStrataError(err, code)) {
    expect.fail(`expected StrataError ${code}, got ${err === undefined ? 'success' : String(err)}`);
  }
  return err;
}

export async function makeTempDir(prefix: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `strata-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Flips every bit of one byte of a FileBlobStore blob file; `fromEnd` 1 is the payload's last byte. */
export async function flipByteOnDisk(storeDir: string, id: string, fromEnd = 1): Promise<void> {
  const file = await open(blobFilePath(storeDir, id), 'r+');
  try {
    const { size } = await file.stat();
    const position = size - fromEnd;
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, position);
    byte[0] = (byte[0] as number) ^ 0xff;
    await file.write(byte, 0, 1, position);
  } finally {
    await file.close();
  }
}

export const INVALID_IDS = ['', '..', '../x', 'a/b', '/etc/passwd', 'a/../../b', '.hidden', 'a..b', 'a\\b', 'a\u0000b', 'x'.repeat(129)];
