// `npm test`: builds dist/ when stale, type-checks everything, runs the whole suite on the newest supported Node LTS
// line and the unit suites on the oldest (scripts/node-runtime.mjs installs either from the npm registry when this
// machine's Node is not that line), then puts back the SQLite binding of the Node that Strata runs on here.
//
//   npm test                     everything, as CI runs it
//   npm test -- test/api/x.test.ts [vitest options]
//                                those files only, on the newest line
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuildError, ensureBuilt } from './build.mjs';
import { NODE_LINES, RuntimeError, ensureRuntime, installedNode, useSqliteBindingFor } from './node-runtime.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Suites that need nothing but the code and SQLite: what the oldest supported line runs. */
const UNIT_SUITES = [
  'test/json/',
  'test/manifest/',
  'test/core/',
  'test/config/',
  'test/ec/',
  'test/coldpart/',
  'test/placement/',
  'test/metadata/sqlite',
  'test/upgrade/',
  'test/packaging/build',
  'test/packaging/node-runtime',
];

const requireHere = createRequire(path.join(ROOT, 'package.json'));
const VITEST = path.join(path.dirname(requireHere.resolve('vitest/package.json')), 'vitest.mjs');
const TSC = path.join(path.dirname(requireHere.resolve('typescript/package.json')), 'bin', 'tsc');

/** This machine's Node when it is `line`'s major, else that line's pinned release from the cache. */
function nodeOf(line) {
  if (Number(process.versions.node.split('.')[0]) === line.major) return { node: process.execPath, version: process.versions.node, dir: undefined };
  return installedNode(line.version);
}

function step(what, node, args) {
  console.error(`\nstrata test: ${what}`);
  const result = spawnSync(node, args, { cwd: ROOT, stdio: 'inherit' });
  return result.status === 0;
}

const selected = process.argv.slice(2);
let passed = false;
try {
  ensureBuilt({ ifStale: true });
  // The binding of this machine's own Node, kept before any other is put in place (a no-op after the first run).
  if (ensureRuntime().node === process.execPath) useSqliteBindingFor(process.execPath);
  passed = step('type check', process.execPath, [TSC, '--noEmit', '-p', path.join(ROOT, 'tsconfig.json')]);
  if (passed) {
    const newest = nodeOf(NODE_LINES.newest);
    useSqliteBindingFor(newest.node, newest.dir);
    passed = step(`${selected.length > 0 ? 'the selected suites' : 'the whole suite'} on Node ${newest.version}`, newest.node, [VITEST, 'run', ...selected]);
  }
  if (passed && selected.length === 0) {
    const oldest = nodeOf(NODE_LINES.oldest);
    useSqliteBindingFor(oldest.node, oldest.dir);
    passed = step(`the unit suites on Node ${oldest.version}`, oldest.node, [VITEST, 'run', ...UNIT_SUITES]);
  }
} catch (error) {
  if (!(error instanceof BuildError || error instanceof RuntimeError)) throw error;
  console.error(`strata test: ${error.message}`);
  passed = false;
} finally {
  // `npm start` after `npm test` runs on the runtime again, with its own binding.
  ensureRuntime();
}
process.exit(passed ? 0 : 1);
