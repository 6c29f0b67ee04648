/**
 * Installing what the tests need from Debian's packages, when it is missing: find a binary on PATH or in
 * well-known places, else `apt-get update && apt-get install -y <packages>` as root, serialized across
 * processes (vitest runs test files in parallel forks, and dpkg has one lock). Failures are InfraErrors that
 * name the command that failed and what to run instead.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, open, readFile, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const DEBIAN_INSTALL_LIMITS = {
  /** `apt-get update` plus `apt-get install` together; a slow mirror fails rather than hangs a test run. */
  installTimeoutMs: 10 * 60_000,
  /** Bytes of a command's output kept for error messages. */
  outputTailBytesMax: 4_096,
} as const;

const INSTALL_LOCK_PATH = path.join(os.tmpdir(), 'strata-infra-apt-install.lock');

export class InfraError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InfraError';
  }
}

export interface BinarySpec {
  /** The command's name, e.g. `etcd`. */
  binary: string;
  /** Debian packages that provide it, e.g. ['etcd-server']. */
  packages: readonly string[];
  /** Looked at besides PATH (a minimal PATH under cron or systemd misses /usr/sbin). */
  wellKnownPaths?: readonly string[];
  /** What to tell a person who must install it by hand. */
  manualFix: string;
}

const ensuring = new Map<string, Promise<string>>();

/** The path of `spec.binary`, installing its packages first when it is not found. Idempotent. */
export function ensureBinary(spec: BinarySpec): Promise<string> {
  let pending = ensuring.get(spec.binary);
  if (!pending) {
    pending = ensureOnce(spec).catch((err: unknown) => {
      ensuring.delete(spec.binary); // a later call may succeed once the operator fixed the cause
      throw err;
    });
    ensuring.set(spec.binary, pending);
  }
  return pending;
}

async function ensureOnce(spec: BinarySpec): Promise<string> {
  const found = await findBinary(spec);
  if (found !== null) return found;
  await install(spec);
  const installed = await findBinary(spec);
  if (installed === null) {
    throw new InfraError(
      `${spec.binary}: \`apt-get install -y ${spec.packages.join(' ')}\` succeeded but no \`${spec.binary}\` is on PATH or in ` +
        `${(spec.wellKnownPaths ?? []).join(', ') || 'the usual places'}. Check with \`dpkg -L ${spec.packages[0]} | grep bin/\`.`,
    );
  }
  return installed;
}

export async function findBinary(spec: Pick<BinarySpec, 'binary' | 'wellKnownPaths'>): Promise<string | null> {
  const dirs = (process.env['PATH'] ?? '').split(path.delimiter).filter((dir) => dir.length > 0);
  const candidates = [...dirs.map((dir) => path.join(dir, spec.binary)), ...(spec.wellKnownPaths ?? [])];
  for (const candidate of candidates) {
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here; try the next one
    }
  }
  return null;
}

async function install(spec: BinarySpec): Promise<void> {
  const what = `${spec.binary} is not installed`;
  if (process.platform !== 'linux') {
    throw new InfraError(`${what} and automatic installation only works on Debian/Ubuntu. ${spec.manualFix}`);
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new InfraError(`${what} and installing it needs root (this process is not). ${spec.manualFix}`);
  }
  try {
    await access('/usr/bin/apt-get', fsConstants.X_OK);
  } catch {
    throw new InfraError(`${what} and there is no apt-get on this machine. ${spec.manualFix}`);
  }
  await withInstallLock(spec, async () => {
    // Another process may have installed it while this one waited for the lock.
    if ((await findBinary(spec)) !== null) return;
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run(spec, 'apt-get', ['update'], env);
    await run(spec, 'apt-get', ['install', '-y', ...spec.packages], env);
  });
}

/** Runs a command to completion; an InfraError names the command, its exit status and the end of its output. */
function run(spec: BinarySpec, command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const shown = [command, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-DEBIAN_INSTALL_LIMITS.outputTailBytesMax);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new InfraError(`${spec.binary} install: \`${shown}\` did not finish within ${DEBIAN_INSTALL_LIMITS.installTimeoutMs} ms (slow or unreachable package mirror?). ${spec.manualFix}`));
    }, DEBIAN_INSTALL_LIMITS.installTimeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new InfraError(`${spec.binary} install: cannot run \`${shown}\`: ${err.message}. ${spec.manualFix}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const status = signal === null ? `exit code ${code}` : `signal ${signal}`;
      reject(new InfraError(`${spec.binary} install: \`${shown}\` failed with ${status}. ${spec.manualFix}\n--- its output (last part) ---\n${output}`));
    });
  });
}

/**
 * A lock file created with O_EXCL, holding the owner's pid. A lock whose owner is gone is stale and taken over;
 * waiting is bounded by the install timeout.
 */
async function withInstallLock(spec: BinarySpec, fn: () => Promise<void>): Promise<void> {
  const deadlineMs = Date.now() + DEBIAN_INSTALL_LIMITS.installTimeoutMs;
  for (;;) {
    try {
      const handle = await open(INSTALL_LOCK_PATH, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(await readFile(INSTALL_LOCK_PATH, 'utf8').catch(() => ''));
      if (!isAlive(owner)) {
        await unlink(INSTALL_LOCK_PATH).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadlineMs) {
        throw new InfraError(`${spec.binary} install: process ${owner} has held ${INSTALL_LOCK_PATH} for too long; wait for it or remove the file.`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    await fn();
  } finally {
    await unlink(INSTALL_LOCK_PATH).catch(() => undefined);
  }
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
