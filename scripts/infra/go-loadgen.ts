/**
 * The load generator of `npm run bench -- peers` (bench/peers/loadgen/, Go, standard library only), built into the
 * project's cache when it is missing: `~/.cache/strata/peers-loadgen/<hash>/loadgen`, where <hash> is a digest of
 * its source files, so an edited source is rebuilt and an unchanged one never is. Idempotent and shared between
 * concurrent callers (scripts/infra/go-build.ts).
 */
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheRoot, ensureGoBinary, isExecutable, runCommand } from './go-build.js';

export const LOADGEN_SOURCE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers', 'loadgen');

export const LOADGEN_BUILD_LIMITS = {
  /** Standard library only: seconds, or a minute on a busy machine with a cold Go build cache. */
  buildTimeoutMs: 10 * 60_000,
} as const;

/** A digest of go.mod and every non-test .go file, in name order. */
export async function loadgenSourceHash(dir: string = LOADGEN_SOURCE_DIR): Promise<string> {
  const names = (await readdir(dir)).filter((n) => n === 'go.mod' || (n.endsWith('.go') && !n.endsWith('_test.go'))).sort();
  const hash = createHash('sha256');
  for (const name of names) {
    hash.update(`${name}\0`);
    hash.update(await readFile(path.join(dir, name)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

export async function loadgenBinaryPath(): Promise<string> {
  return path.join(cacheRoot(), 'peers-loadgen', await loadgenSourceHash(), 'loadgen');
}

/** The cached build of the current sources, or null; never builds. */
export async function findLoadgen(): Promise<string | null> {
  const binary = await loadgenBinaryPath();
  return (await isExecutable(binary)) ? binary : null;
}

export async function ensureLoadgen(options: { log?: (line: string) => void } = {}): Promise<string> {
  const log = options.log ?? (() => undefined);
  const binaryPath = await loadgenBinaryPath();
  const what = 'the peers load generator (bench/peers/loadgen)';
  return ensureGoBinary({
    what,
    binaryPath,
    timeoutMs: LOADGEN_BUILD_LIMITS.buildTimeoutMs,
    log,
    async build(go, output) {
      log(`building ${what} into ${path.dirname(binaryPath)}`);
      await runCommand(go, ['build', '-trimpath', '-o', output, '.'], {
        cwd: LOADGEN_SOURCE_DIR,
        // Standard library only: the machine's own Go, nothing fetched; not stamped with this repository's state.
        env: { GOFLAGS: '-mod=mod -buildvcs=false', GOTOOLCHAIN: 'local' },
        timeoutMs: LOADGEN_BUILD_LIMITS.buildTimeoutMs,
        what,
      });
    },
  });
}
