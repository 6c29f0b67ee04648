/**
 * k6, the load generator `benchmark.js` is written for, built from source with the Go toolchain when it is
 * missing: `go install go.k6.io/k6@<K6_VERSION>` with GOBIN set to a cache directory of its own
 * (`~/.cache/strata/k6/<version>/k6`), so that it never lands on the user's PATH or mixes with other versions.
 * Idempotent: a binary already in the cache is used as is; concurrent callers in one process share one build,
 * and the build goes to a temporary GOBIN renamed into place, so another process never sees a half-written file.
 * Failures are InfraErrors that name the failed command and what to do instead.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InfraError, findBinary } from './debian-package.js';
import { OutputTail } from './process-utils.js';

/** A released k6 that the Go module proxy serves (`go list -m -versions go.k6.io/k6`). */
export const K6_VERSION = 'v1.8.1';

export const K6_LIMITS = {
  /** A cold build downloads about 100 modules and compiles them on 2 cores: minutes, not hours. */
  buildTimeoutMs: 20 * 60_000,
  outputTailBytesMax: 4_096,
} as const;

/** Where the pinned k6 lives once built. */
export function k6CacheDir(version: string = K6_VERSION): string {
  return path.join(os.homedir(), '.cache', 'strata', 'k6', version);
}

export function k6BinaryPath(version: string = K6_VERSION): string {
  return path.join(k6CacheDir(version), 'k6');
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The cached k6 if it is there, else null; never builds. */
export async function findK6(version: string = K6_VERSION): Promise<string | null> {
  const binary = k6BinaryPath(version);
  return (await isExecutable(binary)) ? binary : null;
}

const building = new Map<string, Promise<string>>();

/** The path of the pinned k6, building it first when the cache has none. */
export function ensureK6(options: { version?: string; log?: (line: string) => void } = {}): Promise<string> {
  const version = options.version ?? K6_VERSION;
  let pending = building.get(version);
  if (!pending) {
    pending = buildOnce(version, options.log ?? (() => undefined)).catch((err: unknown) => {
      building.delete(version); // a later call may succeed once Go or the network is fixed
      throw err;
    });
    building.set(version, pending);
  }
  return pending;
}

async function buildOnce(version: string, log: (line: string) => void): Promise<string> {
  const cached = await findK6(version);
  if (cached !== null) return cached;
  const go = await findBinary({ binary: 'go', wellKnownPaths: ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'] });
  if (go === null) {
    throw new InfraError(
      `k6: the Go toolchain is needed to build k6 ${version} and \`go\` is not on PATH nor in /usr/local/go/bin. ` +
        `Install Go 1.23 or newer (https://go.dev/dl/), or put a k6 binary at ${k6BinaryPath(version)}.`,
    );
  }
  const dir = k6CacheDir(version);
  await mkdir(dir, { recursive: true });
  const tmpBin = await mkdtemp(path.join(dir, '.build-'));
  const command = `go install go.k6.io/k6@${version}`;
  log(`building k6 ${version} (${command}, GOBIN=${dir}); a first build takes a few minutes`);
  try {
    await runGo(go, ['install', `go.k6.io/k6@${version}`], { GOBIN: tmpBin }, command);
    const built = path.join(tmpBin, 'k6');
    if (!(await isExecutable(built))) throw new InfraError(`k6: \`${command}\` succeeded but left no executable at ${built}`);
    await rename(built, k6BinaryPath(version));
  } finally {
    await rm(tmpBin, { recursive: true, force: true });
  }
  return k6BinaryPath(version);
}

function runGo(go: string, args: string[], env: Record<string, string>, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const tail = new OutputTail(K6_LIMITS.outputTailBytesMax);
    // Module mode regardless of the caller's directory: the build must not pick up the project's go.mod, if any.
    const child = spawn(go, args, { cwd: os.tmpdir(), env: { ...process.env, GOFLAGS: '-mod=mod', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => tail.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => tail.push(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), K6_LIMITS.buildTimeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new InfraError(`k6: could not run \`${command}\`: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const why = signal ? `was killed by ${signal} (timeout ${K6_LIMITS.buildTimeoutMs} ms?)` : `exited with ${code}`;
      const output = tail.text();
      const proxyHint = /proxy|dial tcp|TLS|i\/o timeout|no such host|403|404/i.test(output)
        ? ' The Go module proxy could not be reached or refused the module: check GOPROXY (`go env GOPROXY`) and the network.'
        : '';
      reject(new InfraError(`k6: \`${command}\` ${why}.${proxyHint}\n${output}`));
    });
  });
}
