/**
 * A small filesystem of a test's own (a tmpfs of a chosen size), for tests of a full disk: mounted before the file's
 * tests, unmounted after them. Mounting needs root; without it the tests skip with the reason instead of failing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, type TestContext } from 'vitest';

export interface Tmpfs {
  /** Where it is mounted; null when it could not be (or before beforeAll ran). */
  readonly dir: string | null;
  /** Skips the running test, with the reason, when there is no tmpfs; returns its directory otherwise. */
  dirOrSkip(context: TestContext): string;
}

/**
 * Registers beforeAll/afterAll hooks that mount a tmpfs of `sizeBytes` on a new directory named `prefix...` and
 * unmount it. `cleanUpFirst` runs in afterAll before the unmount (processes that still have files open on it).
 */
export function useTmpfs(prefix: string, sizeBytes: number, cleanUpFirst?: () => Promise<void>, afterAllTimeoutMs?: number): Tmpfs {
  let dir: string | null = null;
  let skipReason: string | null = null;
  beforeAll(async () => {
    const made = await mkdtemp(path.join(os.tmpdir(), prefix));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', made], { stdio: 'pipe' });
      dir = made;
    } catch (err) {
      skipReason = `cannot mount a tmpfs (needs root): ${(err as Error).message.split('\n')[0]}`;
      await rmdir(made).catch(() => undefined);
    }
  });
  afterAll(async () => {
    await cleanUpFirst?.();
    if (dir === null) return;
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    await rmdir(dir);
  }, afterAllTimeoutMs);
  return {
    get dir() {
      return dir;
    },
    dirOrSkip(context: TestContext): string {
      if (dir === null) context.skip(skipReason ?? 'no tmpfs');
      return dir!;
    },
  };
}

/**
 * Fills what is left of the filesystem holding `file` with that file (another program on the same disk), down to
 * the last bytes; returns the bytes written.
 */
export async function fillFilesystem(file: string): Promise<number> {
  const handle = await open(file, 'w');
  let written = 0;
  try {
    for (const chunkBytes of [1024 * 1024, 64 * 1024, 512]) {
      const chunk = Buffer.alloc(chunkBytes, 7);
      for (;;) {
        try {
          const n = (await handle.write(chunk)).bytesWritten;
          if (n === 0) break;
          written += n;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
  return written;
}
