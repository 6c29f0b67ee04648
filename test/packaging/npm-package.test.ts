/**
 * The package as a user gets it: `npm pack` of this repository, installed into a project of its own with the
 * production dependencies only (`--omit=dev`). The typed client imports as `strata/client` (JavaScript and type
 * declarations) and talks to a running cluster; the installed `strata` CLI and an operator tool run from the
 * compiled dist/ without the compiler or tsx.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { REPO_ROOT } from '../helpers/processes.js';

/** npm pack plus an install from npm's cache: minutes on a busy 2-core machine, not seconds. */
const INSTALL_TIMEOUT_MS = 10 * 60_000;

let work: string;
let consumer: string;
let installed: string;
let cluster: TestCluster;

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): { code: number | null; out: string } {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS });
  return { code: result.status, out: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/**
 * As run(), without blocking this process: the cluster under test is served from this process's event loop, so a
 * command that talks to it must not be waited for synchronously.
 */
function runAsync(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env, input = ''): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(input);
  });
}

function mustRun(command: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const result = run(command, args, cwd, env);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.out}`);
  return result.out;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'strata-package-'));
  consumer = path.join(work, 'consumer');
  mkdirSync(consumer);
  // dist/ is built by npm test before the suites run; --ignore-scripts keeps pack from running `prepare` again.
  const pack = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`npm pack exited ${pack.status}:\n${pack.stderr}`);
  const packed = JSON.parse(pack.stdout) as { filename: string }[];
  const tarball = path.join(work, packed[0]!.filename);
  writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // Install scripts are skipped and only the small Reed-Solomon addon (which every server module loads) is compiled:
  // compiling SQLite takes minutes, and the client needs no native code while the tool below opens no database.
  mustRun('npm', ['install', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball], consumer);
  mustRun('npm', ['rebuild', '@ronomon/reed-solomon'], consumer);
  installed = path.join(consumer, 'node_modules', 'strata');
  cluster = await startTestCluster();
}, INSTALL_TIMEOUT_MS);

afterAll(async () => {
  await cluster?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('ships the compiled code, the CLI and the docs, without TypeScript sources or tests', () => {
    expect(existsSync(path.join(installed, 'dist/internal/client/strata-client.js'))).toBe(true);
    expect(existsSync(path.join(installed, 'dist/internal/client/strata-client.d.ts'))).toBe(true);
    expect(existsSync(path.join(installed, 'dist/cmd/all-in-one/main.js'))).toBe(true);
    expect(existsSync(path.join(installed, 'LICENSE'))).toBe(true);
    expect(existsSync(path.join(installed, 'CHANGELOG.md'))).toBe(true);
    expect(existsSync(path.join(installed, 'internal'))).toBe(false);
    expect(existsSync(path.join(installed, 'test'))).toBe(false);
    expect(existsSync(path.join(consumer, 'node_modules', 'tsx'))).toBe(false);
    expect(existsSync(path.join(consumer, 'node_modules', 'typescript'))).toBe(false);
  });

  it('imports the typed client as strata/client and talks to a cluster with it', async () => {
    const script = path.join(consumer, 'use-client.mjs');
    writeFileSync(
      script,
      [
        "import { StrataClient, StrataApiError } from 'strata/client';",
        'const client = new StrataClient({ baseUrl: process.argv[2] });',
        "const written = await client.write('package/doc', { like_count: 1, text: 'from the package' });",
        "const read = await client.read('package/doc');",
        'let missing;',
        "try { await client.read('package/missing'); } catch (error) { missing = error instanceof StrataApiError ? error.code : String(error); }",
        'console.log(JSON.stringify({ version: written.version, text: read.text, missing }));',
      ].join('\n'),
    );
    const used = await runAsync(process.execPath, [script, cluster.url], consumer);
    expect(used.code, used.out).toBe(0);
    const out = JSON.parse(used.out) as { version: string; text: string; missing: string };
    expect(out.text).toBe('{"like_count":1,"text":"from the package"}');
    expect(out.missing).toBe('NOT_FOUND');
  });

  it('gives TypeScript users the client\'s types through the package exports', () => {
    writeFileSync(
      path.join(consumer, 'typed.ts'),
      [
        "import { StrataClient, type WriteResult } from 'strata/client';",
        "const client = new StrataClient({ baseUrl: 'http://127.0.0.1:8000' });",
        "export const written: Promise<WriteResult> = client.write('k', { a: 1 });",
        '// @ts-expect-error: the client has no such method, and the types say so',
        'client.noSuchMethod();',
      ].join('\n'),
    );
    writeFileSync(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, types: [] }, files: ['typed.ts'] }),
    );
    const tsc = path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
    const checked = run(process.execPath, [tsc, '-p', path.join(consumer, 'tsconfig.json')], consumer);
    expect(checked.out).toBe('');
    expect(checked.code).toBe(0);
  });

  it('runs the installed strata CLI and an operator tool from dist/, without the compiler', async () => {
    const version = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(mustRun(path.join(consumer, 'node_modules/.bin/strata'), ['--version'], consumer)).toBe(`strata ${version}\n`);
    const doc = '{"n":12345678901234567890,"text":"through the installed CLI"}';
    const put = await runAsync(path.join(consumer, 'node_modules/.bin/strata'), ['put', 'package/cli', '-'], consumer, { ...process.env, STRATA_URL: cluster.url }, doc);
    expect(put.code, put.out).toBe(0);
    const got = await runAsync(path.join(consumer, 'node_modules/.bin/strata'), ['get', 'package/cli'], consumer, { ...process.env, STRATA_URL: cluster.url });
    expect(got).toEqual({ code: 0, out: `${doc}\n` });
    const verified = await runAsync(path.join(consumer, 'node_modules/.bin/strata'), ['verify', 'package/cli', '--json'], consumer, { ...process.env, STRATA_URL: cluster.url });
    expect(verified.code, verified.out).toBe(0);
    expect(JSON.parse(verified.out)).toMatchObject({ keys_checked: 1, fully_protected: 1 });
    const help = mustRun('npm', ['run', '--silent', 'recover:manifests', '--', '--help'], installed);
    expect(help).toContain('Usage: npm run recover:manifests');
    expect(help).toContain('STRATA_CLUSTER_TOKEN');
    expect(mustRun('npm', ['run', '--silent', 'verify:storage', '--', '--help'], installed)).toContain('verify:storage');
  });
});
