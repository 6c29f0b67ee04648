// Packs the typed HTTP client as a package of its own, `strata-client`, for projects that talk to a Strata cluster
// and should not install the server's dependencies (hono, better-sqlite3, kafkajs, etcd3, ...). The files come from
// the compiled dist/; the package has no dependencies at all, so every run-time import of the compiled client must
// be one of its own files or a node: builtin, and this script refuses to pack it otherwise. Plain JavaScript, like
// build.mjs, so that it runs before anything is compiled.
//
//   node scripts/pack-client.mjs                          build dist/ if stale, pack into the repository root
//   node scripts/pack-client.mjs --pack-destination DIR   the same, the tarball written to DIR
//   node scripts/pack-client.mjs --check-only DIR         only check the .js and .d.ts files under DIR (a package
//                                                         directory laid out as below), exit 1 on a bad import
//
// The tarball's path is the one line printed on stdout; what it contains goes to stderr.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BuildError, ensureBuilt } from './build.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const PACKAGE_NAME = 'strata-client';

/**
 * dist/ path → path in the package. The layout keeps the client's directory beside core/, so that the relative type
 * import `../core/errors.js` in strata-client.d.ts resolves as it does in the repository. core/errors.js is not
 * shipped: the client imports only a type from it, which the compiler erases.
 */
export const CLIENT_FILES = [
  ['internal/client/strata-client.js', 'client/strata-client.js'],
  ['internal/client/strata-client.d.ts', 'client/strata-client.d.ts'],
  ['internal/client/event-stream.js', 'client/event-stream.js'],
  ['internal/client/event-stream.d.ts', 'client/event-stream.d.ts'],
  ['internal/core/errors.d.ts', 'core/errors.d.ts'],
];
const ENTRY_JS = './client/strata-client.js';
const ENTRY_TYPES = './client/strata-client.d.ts';
/** npm pack of five small files; generous for a busy machine. */
const PACK_TIMEOUT_MS = 2 * 60_000;

export class PackError extends Error {}

// The import forms a compiled ES module or declaration file can contain. They are matched in the whole text,
// comments and strings included: a comment that looks like an import is a false alarm, reworded in a minute, while
// a missed import ships a package that fails on its user's machine.
/** `import x from '...'`, `import type { X } from '...'`, `export * from '...'`. */
const FROM_PATTERN = /(?<![\w$.])from\s*(['"])([^'"\n]*)\1/g;
/** `import '...'`: a module loaded for its side effects. */
const BARE_IMPORT_PATTERN = /(?<![\w$.])import\s*(['"])([^'"\n]*)\1/g;
/** `import('...')`, `require('...')`, and type queries `import('...').X`; group 3 is missing for a computed name. */
const CALL_PATTERN = /(?<![\w$.])(import|require)\s*\(\s*(?:(['"])([^'"\n]*)\2\s*[,)])?/g;
/** `/// <reference types="..." />` and `/// <reference path="..." />`. */
const REFERENCE_PATTERN = /^\/\/\/\s*<reference\s+(types|path)\s*=\s*(['"])([^'"]*)\2/gm;

/**
 * Every module specifier in a compiled file's text, in order of appearance; `null` for an import() or require()
 * of a computed name, which no reading of the text can check.
 */
export function findImports(text) {
  const found = [];
  for (const match of text.matchAll(FROM_PATTERN)) found.push({ at: match.index, specifier: match[2] });
  for (const match of text.matchAll(BARE_IMPORT_PATTERN)) found.push({ at: match.index, specifier: match[2] });
  for (const match of text.matchAll(CALL_PATTERN)) found.push({ at: match.index, specifier: match[3] ?? null });
  return found.sort((a, b) => a.at - b.at).map((entry) => entry.specifier);
}

/**
 * What is wrong with the imports of the package files under `dir` (paths relative to it, `/`-separated), as
 * sentences naming the file and the import; empty when nothing is. Compiled JavaScript may import only files under
 * `dir` and node: builtins; declarations only declarations under `dir`, since a consumer has no other package's
 * types (not even @types/node) to resolve them against.
 */
export function checkPackageFiles(dir) {
  const files = new Set(listFiles(dir));
  const problems = [];
  for (const file of files) {
    const isDeclaration = /\.d\.[cm]?ts$/.test(file);
    if (!isDeclaration && !/\.[cm]?js$/.test(file)) continue;
    const text = readFileSync(path.join(dir, file), 'utf8');
    for (const specifier of findImports(text)) {
      const problem = isDeclaration ? checkTypeImport(file, specifier, files) : checkRunTimeImport(file, specifier, files);
      if (problem !== null) problems.push(problem);
    }
    if (isDeclaration) {
      for (const match of text.matchAll(REFERENCE_PATTERN)) {
        const [, kind, , target] = match;
        if (kind === 'types') problems.push(`${file} references the types of '${target}': a consumer of ${PACKAGE_NAME} does not have them`);
        else if (!files.has(resolveRelative(file, target))) problems.push(`${file} references ${target}, which ${PACKAGE_NAME} does not ship`);
      }
    }
  }
  return problems;
}

function checkRunTimeImport(file, specifier, files) {
  if (specifier === null) return `${file} imports a computed module name at run time, which cannot be checked: import a literal path`;
  if (specifier.startsWith('node:')) return null;
  if (!isRelative(specifier)) {
    return `${file} imports '${specifier}' at run time: ${PACKAGE_NAME} has no dependencies, so the client may import only its own files and node: builtins`;
  }
  if (files.has(resolveRelative(file, specifier))) return null;
  return `${file} imports '${specifier}' at run time, which ${PACKAGE_NAME} does not ship: a server module must not be imported by the client, and a new client file belongs in CLIENT_FILES of scripts/pack-client.mjs`;
}

function checkTypeImport(file, specifier, files) {
  if (specifier === null) return `${file} imports the types of a computed module name, which cannot be checked`;
  if (!isRelative(specifier)) return `${file} imports types from '${specifier}': a consumer of ${PACKAGE_NAME} does not have that package's types`;
  // As TypeScript resolves a relative import in a declaration: './x.js' is declared by './x.d.ts'.
  const declaration = resolveRelative(file, specifier).replace(/\.(c|m)?js$/, '.d.$1ts');
  if (files.has(declaration)) return null;
  return `${file} imports types from '${specifier}', whose declarations (${declaration}) ${PACKAGE_NAME} does not ship: add them to CLIENT_FILES of scripts/pack-client.mjs`;
}

function isRelative(specifier) {
  return specifier.startsWith('./') || specifier.startsWith('../');
}

function resolveRelative(fromFile, specifier) {
  return path.posix.normalize(path.posix.join(path.posix.dirname(fromFile), specifier));
}

function listFiles(dir, prefix = '') {
  const out = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...listFiles(dir, relative));
    else if (entry.isFile()) out.push(relative);
  }
  return out;
}

/** Copies the client's compiled files, the license and a package.json and README of its own into `dir`. */
function stagePackage(dir) {
  const main = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  for (const [from, to] of CLIENT_FILES) {
    const source = path.join(DIST, from);
    if (!existsSync(source)) throw new PackError(`dist/${from} is missing after the build: is the client still at internal/client/?`);
    mkdirSync(path.dirname(path.join(dir, to)), { recursive: true });
    cpSync(source, path.join(dir, to));
  }
  cpSync(path.join(ROOT, 'LICENSE'), path.join(dir, 'LICENSE'));
  const manifest = {
    name: PACKAGE_NAME,
    version: main.version,
    description: 'Typed HTTP client for Strata, the field-level hybrid JSON object store. No dependencies.',
    license: main.license,
    type: 'module',
    engines: main.engines,
    // For TypeScript projects still on `moduleResolution: node10`, which does not read `exports`.
    types: ENTRY_TYPES,
    exports: { '.': { types: ENTRY_TYPES, default: ENTRY_JS } },
  };
  writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(path.join(dir, 'README.md'), readme(main.version, main.engines?.node));
}

function readme(version, nodeRange) {
  return `# ${PACKAGE_NAME}

The typed HTTP client of Strata, a JSON object store that keeps hot fields replicated and the rest Reed-Solomon
coded, as a package of its own. It is the same \`StrataClient\` as \`strata/client\` in the full \`strata\` package,
without the server's dependencies: it has none. It needs Node.js \`${nodeRange}\` (for its global \`fetch\`), and
includes its type declarations.

## Install

\`\`\`sh
npm install ${PACKAGE_NAME}
# or, from a tarball made by \`npm run pack:client\` in the Strata repository:
npm install ./${PACKAGE_NAME}-${version}.tgz
\`\`\`

## Example

\`\`\`ts
import { StrataApiError, StrataClient } from '${PACKAGE_NAME}';

const strata = new StrataClient({ baseUrl: 'http://127.0.0.1:8000' });
const { version } = await strata.write('user:1001', { like_count: 1 }, { hotFields: ['like_count'] });
const doc = await strata.read('user:1001');
console.log(version, doc.text);
try {
  await strata.read('user:missing');
} catch (error) {
  if (!(error instanceof StrataApiError && error.code === 'NOT_FOUND')) throw error;
}
\`\`\`

## Documentation

Every method, option, retry rule and error code: \`docs/cli.md\`, section "The typed client", in the Strata
repository.
`;
}

/** Runs `npm pack` in `dir`; returns npm's description of the tarball, its path made absolute. */
function npmPack(dir, destination) {
  const result = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', destination], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: PACK_TIMEOUT_MS,
  });
  if (result.status !== 0) throw new PackError(`npm pack exited ${result.status ?? result.signal ?? result.error?.message}`);
  const [packed] = JSON.parse(result.stdout);
  return { ...packed, path: path.join(destination, packed.filename) };
}

/** Builds dist/ if stale, stages the package in a temporary directory, checks it, and packs it into `destination`. */
export function packClient(destination) {
  ensureBuilt({ ifStale: true });
  const staging = mkdtempSync(path.join(os.tmpdir(), `${PACKAGE_NAME}-`));
  try {
    stagePackage(staging);
    const problems = checkPackageFiles(staging);
    if (problems.length > 0) throw new PackError(`the compiled client cannot be packed on its own:\n  ${problems.join('\n  ')}`);
    mkdirSync(destination, { recursive: true });
    return npmPack(staging, destination);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function parseArgs(args) {
  const options = { packDestination: ROOT, checkOnly: null };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg !== '--pack-destination' && arg !== '--check-only') {
      throw new PackError(`unknown option ${arg} (options: --pack-destination DIR, --check-only DIR)`);
    }
    const value = args[++i];
    if (value === undefined || value.startsWith('--')) throw new PackError(`${arg} needs a directory`);
    if (arg === '--pack-destination') options.packDestination = path.resolve(value);
    else options.checkOnly = path.resolve(value);
  }
  return options;
}

function main(args) {
  const options = parseArgs(args);
  if (options.checkOnly !== null) {
    if (!existsSync(options.checkOnly)) throw new PackError(`--check-only ${options.checkOnly}: no such directory`);
    const problems = checkPackageFiles(options.checkOnly);
    if (problems.length > 0) throw new PackError(`the client's imports are not self-contained:\n  ${problems.join('\n  ')}`);
    console.error(`${PACKAGE_NAME}: the imports under ${options.checkOnly} are self-contained`);
    return;
  }
  const packed = packClient(options.packDestination);
  for (const file of packed.files) console.error(`  ${String(file.size).padStart(7)} B  ${file.path}`);
  console.error(`${PACKAGE_NAME}@${packed.version}: ${packed.entryCount} files, ${packed.size} B packed, ${packed.unpackedSize} B unpacked`);
  console.log(packed.path);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof PackError) && !(error instanceof BuildError)) throw error;
    console.error(`strata pack:client: ${error.message}`);
    process.exit(1);
  }
}
