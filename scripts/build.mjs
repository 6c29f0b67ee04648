// Compiles the TypeScript sources (cmd, internal, scripts) to dist/ and copies the files they load at run time
// (worker scripts, console assets, the Kafka pom). Plain JavaScript so that it runs before anything is compiled.
//
//   node scripts/build.mjs              build now
//   node scripts/build.mjs --if-stale   build only when a source is newer than the last build (npm start, npm test)
//   node scripts/build.mjs --if-stale --if-possible
//                                       as --if-stale, but a production install without the compiler keeps the
//                                       dist/ it was shipped with (npm's prepare step)
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const STAMP_NAME = '.build-stamp';
const STAMP = path.join(DIST, STAMP_NAME);
/** Held while one process builds: several starting at once (test workers, a CLI beside `npm start`) build once. */
const LOCK = path.join(ROOT, '.build-lock');
/** How long a process waits for another's build before giving up: a cold build takes about a minute here. */
const LOCK_WAIT_MS = 10 * 60_000;
const LOCK_POLL_MS = 100;
const LOCK_EMPTY_GRACE_MS = 5_000;
// bench/harness: the all-in-one the benchmarks measure runs compiled, as `npm start` does (tsconfig.build.json).
const SOURCE_DIRS = ['cmd', 'internal', 'scripts', 'bench/harness'];
const CONFIG_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json'];
/**
 * Files beside the sources that are read or run as they are: everything but TypeScript and documentation, and the
 * hand-written declarations of plain JavaScript modules (the compiler does not copy them).
 */
const isAsset = (name) => name.endsWith('.d.ts') || (!name.endsWith('.ts') && !name.endsWith('.md'));

/**
 * Builds dist/ when it is missing or older than a source (`ifStale`), or always. `ifPossible`: an install without
 * the compiler (production, `npm ci --omit=dev`) keeps the dist/ it was shipped with rather than failing. Throws
 * BuildError with what to do when it cannot build.
 */
export function ensureBuilt({ ifStale = true, ifPossible = false } = {}) {
  if (ifStale && !isStale()) return;
  const tsc = compilerPath();
  if (tsc === null) {
    if (ifPossible && existsSync(STAMP)) return;
    throw new BuildError(
      'the TypeScript compiler is not installed (it is a development dependency) and dist/ is ' +
        (existsSync(STAMP) ? 'older than the sources' : 'missing') +
        ': run `npm install` (with development dependencies), then `npm run build`',
    );
  }
  withBuildLock(() => {
    // Another process may have built while this one waited for the lock.
    if (ifStale && !isStale()) return;
    build(tsc);
  });
}

function withBuildLock(fn) {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    if (!holderAlive()) {
      // Left by a build that was killed: nobody will release it.
      rmSync(LOCK, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new BuildError(`another build (process ${readLockHolder()}) has held ${LOCK} for ${LOCK_WAIT_MS / 60_000} minutes`);
    // A synchronous pause: ensureBuilt runs before anything else in the process, with nothing to serve meanwhile.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOCK_POLL_MS);
  }
  try {
    return fn();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

function readLockHolder() {
  try {
    return Number(readFileSync(LOCK, 'utf8'));
  } catch {
    return 0;
  }
}

function holderAlive() {
  const pid = readLockHolder();
  // An empty lock file is one being written right now, unless it has stayed empty (its writer died in between).
  if (!Number.isInteger(pid) || pid <= 0) {
    try {
      return Date.now() - statSync(LOCK).mtimeMs < LOCK_EMPTY_GRACE_MS;
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

export class BuildError extends Error {}

/**
 * Compiles into a fresh directory beside dist/ and swaps it in at the end, so that a process starting meanwhile
 * finds the previous build whole, and a failed build leaves it in place.
 */
function build(tscPath) {
  const started = Date.now();
  const next = `${DIST}.next`;
  const previous = `${DIST}.previous`;
  rmSync(next, { recursive: true, force: true });
  // Required here, not at the top: every start checks staleness, and only a build runs the compiler.
  const { spawnSync } = createRequire(import.meta.url)('node:child_process');
  const result = spawnSync(process.execPath, [tscPath, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', next], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    rmSync(next, { recursive: true, force: true });
    throw new BuildError(`the TypeScript compiler failed (exit ${result.status ?? result.signal}); dist/ is unchanged`);
  }
  let assets = 0;
  for (const dir of SOURCE_DIRS) {
    for (const file of walk(path.join(ROOT, dir))) {
      if (!isAsset(file)) continue;
      const target = path.join(next, path.relative(ROOT, file));
      mkdirSync(path.dirname(target), { recursive: true });
      cpSync(file, target);
      assets++;
    }
  }
  writeFileSync(path.join(next, STAMP_NAME), `${new Date().toISOString()}\n`);
  rmSync(previous, { recursive: true, force: true });
  if (existsSync(DIST)) renameSync(DIST, previous);
  renameSync(next, DIST);
  rmSync(previous, { recursive: true, force: true });
  console.error(`strata: built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s (${assets} asset files copied)`);
}

/** True when dist/ is missing or any source or configuration file changed after the last build. */
function isStale() {
  if (!existsSync(STAMP)) return true;
  const built = statSync(STAMP).mtimeMs;
  for (const file of CONFIG_FILES) {
    const at = path.join(ROOT, file);
    if (existsSync(at) && statSync(at).mtimeMs > built) return true;
  }
  for (const dir of SOURCE_DIRS) {
    for (const file of walk(path.join(ROOT, dir))) if (statSync(file).mtimeMs > built) return true;
  }
  return false;
}

function compilerPath() {
  try {
    // The package's exports do not name its bin: found beside its package.json.
    const manifest = createRequire(path.join(ROOT, 'package.json')).resolve('typescript/package.json');
    const tsc = path.join(path.dirname(manifest), 'bin', 'tsc');
    return existsSync(tsc) ? tsc : null;
  } catch {
    return null;
  }
}

function* walk(dir) {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const at = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(at);
    else if (entry.isFile()) yield at;
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const unknown = args.filter((arg) => !['--if-stale', '--if-possible'].includes(arg));
  try {
    if (unknown.length > 0) throw new BuildError(`unknown option ${unknown[0]} (options: --if-stale, --if-possible)`);
    ensureBuilt({ ifStale: args.includes('--if-stale'), ifPossible: args.includes('--if-possible') });
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    console.error(`strata build: ${error.message}`);
    process.exit(1);
  }
}
