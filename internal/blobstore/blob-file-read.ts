/**
 * Reading blob files: the header alone (to build the index on open), the whole blob (get), or a streaming check
 * of the payload against its checksum (verify, scrub). Every function reports a file that is not a valid blob as
 * `corrupt` with the violated condition, and a file that is not there as `missing`; other I/O errors throw.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import {
  BLOB_FILE_BYTES_MAX,
  BLOB_FILE_PREFIX_BYTES,
  BlobFormatError,
  blobFileBytes,
  decodeBlobHeader,
  decodeBlobPrefix,
  sha256Hex,
  type StoredHeader,
} from './blob-file-format.js';
import { errnoCode, readFully } from './durable-fs.js';

export type BlobFileState<T> =
  | ({ state: 'ok'; header: StoredHeader; fileBytes: number } & T)
  | { state: 'corrupt'; reason: string; fileBytes: number; mtimeMs: number }
  | { state: 'missing' };

/** Payload bytes hashed per read while checking; bounds the memory a verify or scrub needs. */
const CHECK_CHUNK_BYTES = 1024 * 1024;

/** Header only, plus a check that the file length matches it (a torn or truncated file is corrupt). */
export function readBlobHead(path: string, id: string): Promise<BlobFileState<object>> {
  return withBlobFile(path, id, async () => ({}));
}

/** Header and payload; the payload is a fresh Buffer the caller owns. */
export function readBlob(path: string, id: string): Promise<BlobFileState<{ data: Buffer }>> {
  return withBlobFile(path, id, async (handle, header, payloadPosition) => {
    // Its own ArrayBuffer (never a slice of Node's shared pool), so handing it out leaks nothing else.
    const data = Buffer.allocUnsafeSlow(header.size);
    const read = await readFully(handle, data, 0, header.size, payloadPosition);
    if (read !== header.size) throw new BlobFormatError('payload shorter than header.size');
    if (sha256Hex(data) !== header.checksum) throw new BlobFormatError('payload sha256 != header.checksum');
    return { data };
  });
}

/** Streams the payload through sha256 in bounded chunks and compares it with the header's checksum. */
export function checkBlob(path: string, id: string): Promise<BlobFileState<object>> {
  return withBlobFile(path, id, async (handle, header, payloadPosition) => {
    const hash = createHash('sha256');
    const chunk = Buffer.allocUnsafe(Math.min(CHECK_CHUNK_BYTES, Math.max(header.size, 1)));
    let done = 0;
    while (done < header.size) {
      const want = Math.min(chunk.length, header.size - done);
      const read = await readFully(handle, chunk, 0, want, payloadPosition + done);
      if (read !== want) throw new BlobFormatError('payload shorter than header.size');
      hash.update(chunk.subarray(0, read));
      done += read;
    }
    if (hash.digest('hex') !== header.checksum) throw new BlobFormatError('payload sha256 != header.checksum');
    return {};
  });
}

async function withBlobFile<T extends object>(
  path: string,
  id: string,
  body: (handle: FileHandle, header: StoredHeader, payloadPosition: number) => Promise<T>,
): Promise<BlobFileState<T>> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { state: 'missing' };
    throw err;
  }
  let fileBytes = 0;
  let mtimeMs = 0;
  try {
    const stats = await handle.stat();
    fileBytes = stats.size;
    mtimeMs = stats.mtimeMs;
    if (fileBytes > BLOB_FILE_BYTES_MAX) throw new BlobFormatError('file longer than BLOB_FILE_BYTES_MAX');
    const prefixBytes = Buffer.alloc(BLOB_FILE_PREFIX_BYTES);
    const prefixRead = await readFully(handle, prefixBytes, 0, BLOB_FILE_PREFIX_BYTES, 0);
    const prefix = decodeBlobPrefix(prefixBytes.subarray(0, prefixRead));
    const json = Buffer.alloc(prefix.headerBytes);
    const read = await readFully(handle, json, 0, prefix.headerBytes, BLOB_FILE_PREFIX_BYTES);
    const header = decodeBlobHeader(json.subarray(0, read), prefix, id);
    if (blobFileBytes(prefix.headerBytes, header.size) !== fileBytes) {
      throw new BlobFormatError(`file length ${fileBytes} != prefix + header + header.size`);
    }
    const extra = await body(handle, header, BLOB_FILE_PREFIX_BYTES + prefix.headerBytes);
    return { state: 'ok', header, fileBytes, ...extra };
  } catch (err) {
    if (err instanceof BlobFormatError) return { state: 'corrupt', reason: err.reason, fileBytes, mtimeMs };
    // A sector the disk cannot read is lost bytes, as good as a checksum mismatch.
    if (errnoCode(err) === 'EIO') return { state: 'corrupt', reason: 'read error EIO', fileBytes, mtimeMs };
    throw err;
  } finally {
    await handle.close();
  }
}
