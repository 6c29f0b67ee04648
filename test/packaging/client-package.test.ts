/**
 * The client on its own, as a user who only talks to a cluster gets it: `npm run pack:client` (scripts/pack-client.mjs)
 * packs `strata-client` from the compiled dist/, and the tarball installs into a project of its own with no other
 * package, imports in plain Node, talks to a running cluster and type-checks against its declarations. The script
 * refuses a compiled client that imports anything but its own files and node: builtins at run time.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { REPO_ROOT } from '../helpers/processes.js';

/** The script builds dist/ first when a source changed (half a minute or more on a busy 2-core machine), then packs. */
const PACK_TIMEOUT_MS = 5 * 60_000;
const SCRIPT = path.join(REPO_ROOT, 'scripts/pack-client.mjs');
const TSC = path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc');

let work: string;
let consumer: string;
let installed: string;
let tarball: string;
let cluster: TestCluster;

function run(command: string, args: string[], cwd: string): { code: number | null; stdout: string; out: string } {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: PACK_TIMEOUT_MS });
  return { code: result.status, stdout: result.stdout ?? '', out: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

function mustRun(command: string, args: string[], cwd: string): string {
  const result = run(command, args, cwd);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.out}`);
  return result.stdout;
}

/** As run(), without blocking this process's event loop, which serves the cluster under test. */
function runAsync(command: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** Every file under `dir`, relative and `/`-separated, sorted. */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .flatMap((entry) => {
      const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      return entry.isDirectory() ? filesUnder(dir, relative) : [relative];
    })
    .sort();
}

/** Type-checks `files` of the consumer project with the repository's compiler, as a TypeScript user's build would. */
function typeCheck(name: string, files: string[]): { code: number | null; out: string } {
  const config = path.join(consumer, `tsconfig.${name}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      // skipLibCheck off: the package's own declarations are checked too, so an import in them that does not
      // resolve inside the package (core/errors.d.ts) is an error here.
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: [] },
      files,
    }),
  );
  return run(process.execPath, [TSC, '-p', config], consumer);
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'strata-client-package-'));
  consumer = path.join(work, 'consumer');
  mkdirSync(consumer);
  // The script prints the tarball's path alone on stdout; what it packed goes to stderr.
  tarball = mustRun(process.execPath, [SCRIPT, '--pack-destination', work], REPO_ROOT).trim();
  writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // --offline: a package with no dependencies installs without the registry, and would fail here if it had one.
  mustRun('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], consumer);
  installed = path.join(consumer, 'node_modules', 'strata-client');
  cluster = await startTestCluster();
}, PACK_TIMEOUT_MS);

afterAll(async () => {
  await cluster?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the strata-client package', () => {
  it('packs the client, its declarations and the license into a tarball named after the version', () => {
    const version = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(tarball).toBe(path.join(work, `strata-client-${version}.tgz`));
    expect(filesUnder(installed)).toEqual([
      'LICENSE',
      'README.md',
      'client/event-stream.d.ts',
      'client/event-stream.js',
      'client/strata-client.d.ts',
      'client/strata-client.js',
      'core/errors.d.ts',
      'package.json',
    ]);
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ name: 'strata-client', version, license: 'MIT', type: 'module', engines: { node: '>=22' } });
    expect(manifest.exports).toEqual({ '.': { types: './client/strata-client.d.ts', default: './client/strata-client.js' } });
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'scripts']) expect(manifest).not.toHaveProperty(field);
    expect(readFileSync(path.join(installed, 'LICENSE'), 'utf8')).toBe(readFileSync(path.join(REPO_ROOT, 'LICENSE'), 'utf8'));
  });

  it('installs without pulling any other package into the consumer', () => {
    const entries = readdirSync(path.join(consumer, 'node_modules')).filter((name) => name !== '.package-lock.json');
    expect(entries).toEqual(['strata-client']);
  });

  it('imports StrataClient in plain Node and writes, reads and gets NOT_FOUND from a running cluster', async () => {
    const script = path.join(consumer, 'use-client.mjs');
    writeFileSync(
      script,
      [
        "import { StrataClient, StrataApiError } from 'strata-client';",
        'const client = new StrataClient({ baseUrl: process.argv[2] });',
        "const written = await client.write('client-package/doc', { like_count: 1, text: 'from strata-client' });",
        "const read = await client.read('client-package/doc');",
        'let missing;',
        "try { await client.read('client-package/missing'); } catch (error) {",
        '  missing = error instanceof StrataApiError ? { code: error.code, status: error.status } : String(error);',
        '}',
        'console.log(JSON.stringify({ written: written.version, read: read.version, text: read.text, missing }));',
      ].join('\n'),
    );
    const used = await runAsync(process.execPath, [script, cluster.url], consumer);
    expect(used.code, used.out).toBe(0);
    const out = JSON.parse(used.out) as { written: string; read: string; text: string; missing: unknown };
    expect(out.text).toBe('{"like_count":1,"text":"from strata-client"}');
    expect(out.read).toBe(out.written);
    expect(out.missing).toEqual({ code: 'NOT_FOUND', status: 404 });
  });

  it('type-checks a TypeScript consumer and the README example against the declarations', () => {
    writeFileSync(
      path.join(consumer, 'typed.ts'),
      [
        "import { StrataApiError, StrataClient, type ReadResult, type StrataClientOptions, type WriteResult } from 'strata-client';",
        "const options: StrataClientOptions = { baseUrl: 'http://127.0.0.1:8000', timeoutMs: 5_000, retries: 2 };",
        'const client = new StrataClient(options);',
        "export const written: Promise<WriteResult> = client.write('k', { a: 1 }, { hotFields: ['a'], strategy: 'field_hybrid' });",
        "export const read: Promise<ReadResult> = client.read('k');",
        "export const isMissing = (error: unknown): boolean => error instanceof StrataApiError && error.code === 'NOT_FOUND';",
      ].join('\n'),
    );
    const example = /```ts\n([\s\S]*?)```/.exec(readFileSync(path.join(installed, 'README.md'), 'utf8'));
    expect(example, 'README.md has a ```ts example').not.toBeNull();
    // `export {}`: the example as a module of its own, so that its top-level await and names stand alone.
    writeFileSync(path.join(consumer, 'readme-example.ts'), `${example![1]}export {};\n`);
    const checked = typeCheck('good', ['typed.ts', 'readme-example.ts']);
    expect(checked.out).toBe('');
    expect(checked.code).toBe(0);
  });

  it('rejects a wrong option type, so the declarations are real types and not any', () => {
    writeFileSync(
      path.join(consumer, 'wrong.ts'),
      [
        "import { StrataClient } from 'strata-client';",
        "export const client = new StrataClient({ baseUrl: 'http://127.0.0.1:8000', timeoutMs: 'soon' });",
      ].join('\n'),
    );
    const checked = typeCheck('wrong', ['wrong.ts']);
    expect(checked.code).not.toBe(0);
    // Exactly one error, on the wrong option: nothing else in the package fails to resolve.
    const errors = checked.out.split('\n').filter((line) => /error TS\d+/.test(line));
    expect(errors, checked.out).toHaveLength(1);
    expect(errors[0]).toMatch(/^wrong\.ts\(2,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
  });
});

describe('the client package check', () => {
  let fixtures: string;

  beforeAll(() => {
    fixtures = mkdtempSync(path.join(os.tmpdir(), 'strata-client-check-'));
  });

  afterAll(() => {
    if (fixtures) rmSync(fixtures, { recursive: true, force: true });
  });

  /** A package directory holding `files` (path → text), checked by `pack-client.mjs --check-only`. */
  function check(name: string, files: Record<string, string>): { code: number | null; out: string } {
    const dir = path.join(fixtures, name);
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    return run(process.execPath, [SCRIPT, '--check-only', dir], REPO_ROOT);
  }

  const cleanClient = {
    'client/strata-client.js': "import { readEventStream } from './event-stream.js';\nimport { setTimeout } from 'node:timers/promises';\n",
    'client/strata-client.d.ts': "import type { ErrorCode } from '../core/errors.js';\n",
    'client/event-stream.js': 'export async function* readEventStream() {}\n',
    'core/errors.d.ts': "export type ErrorCode = 'NOT_FOUND';\n",
  };

  it('accepts a client that imports only its own files and node: builtins', () => {
    const checked = check('clean', cleanClient);
    expect(checked.code, checked.out).toBe(0);
  });

  it('refuses a compiled client that imports a server module at run time', () => {
    const checked = check('server-import', {
      ...cleanClient,
      'client/strata-client.js': "import { readEventStream } from './event-stream.js';\nimport { ERROR_STATUS } from '../core/errors.js';\n",
    });
    expect(checked.code).toBe(1);
    expect(checked.out).toContain("client/strata-client.js imports '../core/errors.js' at run time, which strata-client does not ship");
  });

  it('refuses a compiled client that imports a dependency at run time', () => {
    const checked = check('dependency-import', { ...cleanClient, 'client/event-stream.js': "export { Hono } from 'hono';\n" });
    expect(checked.code).toBe(1);
    expect(checked.out).toContain("client/event-stream.js imports 'hono' at run time: strata-client has no dependencies");
  });

  it('refuses a dynamic import of a computed name, which it cannot check', () => {
    const checked = check('computed-import', { ...cleanClient, 'client/event-stream.js': 'export const load = (name) => import(name);\n' });
    expect(checked.code).toBe(1);
    expect(checked.out).toContain('client/event-stream.js imports a computed module name at run time');
  });

  it('refuses declarations that need another package\'s types', () => {
    const checked = check('foreign-types', { ...cleanClient, 'client/event-stream.d.ts': "import type { Dispatcher } from 'undici';\n" });
    expect(checked.code).toBe(1);
    expect(checked.out).toContain("client/event-stream.d.ts imports types from 'undici'");
  });
});
