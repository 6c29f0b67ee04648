/**
 * scripts/build.mjs, which `npm start`, `npm test`, the operator tools and the `strata` bin run before anything is
 * compiled: it builds dist/ from the sources with the assets beside them, builds again only when a source changed,
 * keeps the previous build when the compiler fails, and lets an install without the compiler run the dist/ it was
 * shipped with. Exercised on a small project of its own (a copy of the script, the repository's compiler), so that
 * the repository's own dist/, which other suites run, is never rebuilt under them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.js';

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A project with one source, one asset and one README, and (unless `withCompiler` is false) the compiler. */
function project(withCompiler = true): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'strata-build-'));
  made.push(root);
  const write = (file: string, text: string): void => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  };
  write('scripts/build.mjs', readFileSync(path.join(REPO_ROOT, 'scripts/build.mjs'), 'utf8'));
  write('package.json', JSON.stringify({ name: 'strata', version: '9.9.9', type: 'module' }));
  write('tsconfig.json', JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', strict: true, types: [], noEmit: true } }));
  write('tsconfig.build.json', JSON.stringify({ extends: './tsconfig.json', compilerOptions: { noEmit: false, outDir: 'dist', rootDir: '.' }, include: ['cmd', 'internal', 'scripts'] }));
  write('internal/greeting.ts', "export const greeting: string = 'hello';\n");
  write('internal/assets/page.html', '<p>page</p>\n');
  write('internal/README.md', '# not copied\n');
  write('cmd/hello/main.ts', "import { greeting } from '../../internal/greeting.js';\nconsole.log(greeting);\n");
  if (withCompiler) {
    mkdirSync(path.join(root, 'node_modules'));
    symlinkSync(path.join(REPO_ROOT, 'node_modules/typescript'), path.join(root, 'node_modules/typescript'));
  }
  return root;
}

function build(root: string, ...args: string[]): { code: number | null; stderr: string } {
  const run = spawnSync(process.execPath, [path.join(root, 'scripts/build.mjs'), ...args], { cwd: root, encoding: 'utf8' });
  return { code: run.status, stderr: run.stderr };
}

function runCompiled(root: string): string {
  return spawnSync(process.execPath, [path.join(root, 'dist/cmd/hello/main.js')], { encoding: 'utf8' }).stdout;
}

const stampOf = (root: string): number => statSync(path.join(root, 'dist/.build-stamp')).mtimeMs;

/** Moves a file's modification time `ms` into the future, as an edit after the build would. */
function touchLater(file: string, ms = 5_000): void {
  const at = new Date(Date.now() + ms);
  utimesSync(file, at, at);
}

describe('npm run build (scripts/build.mjs)', () => {
  it('compiles the sources to dist/ and copies the files they load, but not the documentation', () => {
    const root = project();
    expect(build(root)).toMatchObject({ code: 0 });
    expect(runCompiled(root)).toBe('hello\n');
    expect(readFileSync(path.join(root, 'dist/internal/assets/page.html'), 'utf8')).toBe('<p>page</p>\n');
    expect(existsSync(path.join(root, 'dist/internal/README.md'))).toBe(false);
  });

  it('builds again with --if-stale only when a source or a configuration file is newer than the last build', () => {
    const root = project();
    expect(build(root, '--if-stale').code).toBe(0);
    const first = stampOf(root);
    expect(build(root, '--if-stale').code).toBe(0);
    expect(stampOf(root)).toBe(first);

    writeFileSync(path.join(root, 'internal/greeting.ts'), "export const greeting: string = 'changed';\n");
    touchLater(path.join(root, 'internal/greeting.ts'));
    expect(build(root, '--if-stale').code).toBe(0);
    expect(runCompiled(root)).toBe('changed\n');

    const second = stampOf(root);
    touchLater(path.join(root, 'tsconfig.build.json'), 10_000);
    expect(build(root, '--if-stale').code).toBe(0);
    expect(stampOf(root)).not.toBe(second);
  });

  it('builds once when several processes find dist/ stale at the same time, and every one of them then runs it', async () => {
    const root = project();
    const runs = await Promise.all(
      Array.from({ length: 4 }, () =>
        new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
          const child = spawn(process.execPath, [path.join(root, 'scripts/build.mjs'), '--if-stale'], { cwd: root });
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('error', reject);
          child.on('close', (code) => resolve({ code, stderr }));
        }),
      ),
    );
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(runs.filter((r) => r.stderr.includes('built dist/'))).toHaveLength(1);
    expect(runCompiled(root)).toBe('hello\n');
    expect(existsSync(path.join(root, '.build-lock'))).toBe(false);
  });

  it('takes over the lock of a build that was killed', () => {
    const root = project();
    // A process id that is not running: the highest a Linux kernel hands out is below 2^22.
    writeFileSync(path.join(root, '.build-lock'), String(2 ** 22 + 1));
    expect(build(root, '--if-stale').code).toBe(0);
    expect(runCompiled(root)).toBe('hello\n');
  });

  it('keeps the previous build whole when the compiler fails, and says so', () => {
    const root = project();
    expect(build(root).code).toBe(0);
    writeFileSync(path.join(root, 'internal/greeting.ts'), 'export const greeting: number = "not a number";\n');
    const failed = build(root);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('the TypeScript compiler failed');
    expect(failed.stderr).toContain('dist/ is unchanged');
    expect(runCompiled(root)).toBe('hello\n');
    expect(existsSync(path.join(root, 'dist.next'))).toBe(false);
  });

  it('without the compiler: keeps a shipped dist/ with --if-possible, and otherwise says what to install', () => {
    const shipped = project();
    expect(build(shipped).code).toBe(0);
    rmSync(path.join(shipped, 'node_modules'), { recursive: true });
    touchLater(path.join(shipped, 'internal/greeting.ts'));
    expect(build(shipped, '--if-stale', '--if-possible').code).toBe(0);
    expect(runCompiled(shipped)).toBe('hello\n');

    const refused = build(shipped, '--if-stale');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the TypeScript compiler is not installed');
    expect(refused.stderr).toContain('older than the sources');

    const bare = project(false);
    const missing = build(bare, '--if-stale', '--if-possible');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('dist/ is missing');
    expect(missing.stderr).toContain('npm run build');
  });

  it('refuses an option it does not know, naming the ones it does', () => {
    const refused = build(project(), '--fast');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('unknown option --fast (options: --if-stale, --if-possible)');
  });
});
