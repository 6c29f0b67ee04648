/**
 * File-system steps that make a change survive a crash. A rename or an unlink is only durable once the directory
 * holding the entry is fsynced; a file's bytes only once the file is.
 */
import { open, type FileHandle } from 'node:fs/promises';

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes every byte of `buffers` from position 0, looping over short writes. */
export async function writeAll(handle: FileHandle, buffers: readonly Uint8Array[]): Promise<void> {
  let position = 0;
  for (const buffer of buffers) {
    let offset = 0;
    while (offset < buffer.length) {
      const { bytesWritten } = await handle.write(buffer, offset, buffer.length - offset, position);
      offset += bytesWritten;
      position += bytesWritten;
    }
  }
}

/** Reads exactly `length` bytes at `position` into `target[offset..]`; returns the bytes read (short at EOF). */
export async function readFully(
  handle: FileHandle,
  target: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(target, offset + done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
