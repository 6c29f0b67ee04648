/**
 * Building a Go program into the project's cache (`~/.cache/strata/<name>/<version>/<binary>`) once: the part that
 * scripts/infra/seaweedfs.ts and scripts/infra/go-loadgen.ts share (k6.ts predates it and keeps its own).
 *
 * Idempotent: a binary already in the cache is used as is. Concurrent callers share one build: in one process
 * through a promise per binary, across processes through a lock file beside the binary (created with O_EXCL,
 * holding the builder's pid; a lock whose owner is gone is taken over). The build writes into a temporary
 * directory beside the binary that is renamed into place, so nobody ever runs a half-written file. Failures are
 * InfraErrors that name the failed command and end with its output.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, mkdtemp, open, readFile, readdir, rename, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InfraError, findBinary, isAlive } from './debian-package.js';
import { OutputTail, sleep } from './process-utils.js';

export const GO_BUILD_LIMITS = {
  outputTailBytesMax: 4_096,
  /** How often a process waiting for another one's build looks again. */
  lockPollMs: 500,
} as const;

export interface GoBuildSpec {
  /** For messages: `SeaweedFS v0.0.0-2026...`. */
  what: string;
  /** Where the finished binary lives. */
  binaryPath: string;
  /** The whole build, waited for by other processes too; a slow machine fails rather than hangs. */
  timeoutMs: number;
  /** Builds the executable at `output` (a path inside `workDir`, a fresh directory beside the binary). */
  build(go: string, output: string, workDir: string): Promise<void>;
  log?: (line: string) => void;
}

export function cacheRoot(): string {
  return path.join(os.homedir(), '.cache', 'strata');
}

export async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Go toolchain, or an InfraError saying what to install. */
export async function findGo(what: string): Promise<string> {
  const go = await findBinary({ binary: 'go', wellKnownPaths: ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'] });
  if (go === null) {
    throw new InfraError(`${what}: the Go toolchain is needed to build it and \`go\` is not on PATH nor in /usr/local/go/bin. Install Go (https://go.dev/dl/).`);
  }
  return go;
}

const building = new Map<string, Promise<string>>();
const WORK_DIR_PREFIX = '.build-';

/** The path of the binary, building it first when the cache has none. */
export function ensureGoBinary(spec: GoBuildSpec): Promise<string> {
  let pending = building.get(spec.binaryPath);
  if (!pending) {
    pending = buildOnce(spec).catch((err: unknown) => {
      building.delete(spec.binaryPath); // a later call may succeed once Go or the network is fixed
      throw err;
    });
    building.set(spec.binaryPath, pending);
  }
  return pending;
}

async function buildOnce(spec: GoBuildSpec): Promise<string> {
  if (await isExecutable(spec.binaryPath)) return spec.binaryPath;
  const go = await findGo(spec.what);
  const dir = path.dirname(spec.binaryPath);
  await mkdir(dir, { recursive: true });
  await withBuildLock(spec, async () => {
    if (await isExecutable(spec.binaryPath)) return; // another process built it while this one waited
    // Only the lock's holder builds: a work directory already here was left by a builder that was killed.
    for (const name of await readdir(dir)) if (name.startsWith(WORK_DIR_PREFIX)) await rm(path.join(dir, name), { recursive: true, force: true });
    const workDir = await mkdtemp(path.join(dir, WORK_DIR_PREFIX));
    try {
      const output = path.join(workDir, path.basename(spec.binaryPath));
      await spec.build(go, output, workDir);
      if (!(await isExecutable(output))) throw new InfraError(`${spec.what}: the build succeeded but left no executable at ${output}`);
      await rename(output, spec.binaryPath);
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  });
  return spec.binaryPath;
}

async function withBuildLock(spec: GoBuildSpec, fn: () => Promise<void>): Promise<void> {
  const lock = `${spec.binaryPath}.build-lock`;
  const deadlineMs = Date.now() + spec.timeoutMs;
  let told = false;
  for (;;) {
    try {
      const handle = await open(lock, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(await readFile(lock, 'utf8').catch(() => ''));
      // An empty file is a lock being written this instant; only a dead owner's lock is stale.
      if (owner > 0 && !isAlive(owner)) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadlineMs) {
        throw new InfraError(`${spec.what}: process ${owner} has been building it for longer than ${spec.timeoutMs} ms (lock ${lock}); wait for it or remove the file.`);
      }
      if (!told) spec.log?.(`${spec.what}: process ${owner} is building it; waiting`);
      told = true;
      await sleep(GO_BUILD_LIMITS.lockPollMs);
    }
  }
  try {
    await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

export interface CommandOptions {
  cwd: string;
  env?: Record<string, string>;
  timeoutMs: number;
  /** For messages: what is being built. */
  what: string;
}

/**
 * Runs a command to completion and returns its standard output. An InfraError names the command as a person would
 * type it, why it failed (exit status, signal or timeout) and the end of its output, with a hint when the output
 * says the Go module proxy could not be reached or a newer Go is needed.
 */
export function runCommand(command: string, args: readonly string[], options: CommandOptions): Promise<string> {
  const shown = [path.basename(command), ...args].join(' ');
  return new Promise((resolve, reject) => {
    const tail = new OutputTail(GO_BUILD_LIMITS.outputTailBytesMax);
    const stdout: Buffer[] = [];
    const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => (stdout.push(chunk), tail.push(chunk)));
    child.stderr.on('data', (chunk: Buffer) => tail.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new InfraError(`${options.what}: could not run \`${shown}\` (in ${options.cwd}): ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(Buffer.concat(stdout).toString('utf8'));
      const why = timedOut ? `did not finish within ${options.timeoutMs} ms` : signal ? `was killed by ${signal}` : `exited with ${code}`;
      const output = tail.text();
      let hint = '';
      if (/requires go >= |toolchain not available|go: downloading go1/i.test(output)) {
        hint = ' It needs a newer Go than this machine has: set GOTOOLCHAIN to an approved newer release (export GOTOOLCHAIN=go1.27.3) and run again.';
      } else if (/proxy|dial tcp|TLS|i\/o timeout|no such host|403|404|410/i.test(output)) {
        hint = ' The Go module proxy could not be reached or refused a module: check GOPROXY (`go env GOPROXY`) and the network.';
      }
      reject(new InfraError(`${options.what}: \`${shown}\` (in ${options.cwd}) ${why}.${hint}\n--- its output (last part) ---\n${output}`));
    });
  });
}
