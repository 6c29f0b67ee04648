/**
 * SeaweedFS's `weed`, the system `npm run bench -- peers` compares Strata with, built from a pinned commit of its
 * Go module into the project's cache (`~/.cache/strata/seaweedfs/<version>/weed`) when it is missing.
 *
 * `go install github.com/seaweedfs/seaweedfs/weed@<version>` refuses this module (its go.mod has replace
 * directives, which only a main module may have), so the build does what a checkout would: `go mod download -json`
 * the module, copy its directory out of the read-only module cache, and `go build ./weed` inside the copy, where
 * go.mod is the main module and its replace directives apply. Idempotent and shared between concurrent callers
 * (scripts/infra/go-build.ts). A cold build downloads a few hundred modules and compiles for minutes on 2 cores.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { InfraError } from './debian-package.js';
import { cacheRoot, ensureGoBinary, isExecutable, runCommand } from './go-build.js';

export const SEAWEEDFS_MODULE = 'github.com/seaweedfs/seaweedfs';
/** A commit the Go module proxy serves (it lists no tagged release of this module). */
export const SEAWEEDFS_VERSION = 'v0.0.0-20261109003541-7506e5f91cd6';
/** What `weed version` reports for that commit (weed/util/version/constants.go). */
export const SEAWEEDFS_RELEASE = '4.53';

export const SEAWEEDFS_BUILD_LIMITS = {
  downloadTimeoutMs: 10 * 60_000,
  copyTimeoutMs: 5 * 60_000,
  /** A cold build on a busy 2-core machine: downloads and compiles about 400 packages. */
  buildTimeoutMs: 45 * 60_000,
  versionTimeoutMs: 30_000,
} as const;

export function seaweedfsBinaryPath(version: string = SEAWEEDFS_VERSION): string {
  return path.join(cacheRoot(), 'seaweedfs', version, 'weed');
}

/** The cached `weed` if it is there, else null; never builds. */
export async function findSeaweedfs(version: string = SEAWEEDFS_VERSION): Promise<string | null> {
  const binary = seaweedfsBinaryPath(version);
  return (await isExecutable(binary)) ? binary : null;
}

/** The path of the pinned `weed`, building it first when the cache has none. */
export function ensureSeaweedfs(options: { version?: string; log?: (line: string) => void } = {}): Promise<string> {
  const version = options.version ?? SEAWEEDFS_VERSION;
  const what = `SeaweedFS ${version}`;
  const log = options.log ?? (() => undefined);
  return ensureGoBinary({
    what,
    binaryPath: seaweedfsBinaryPath(version),
    timeoutMs: SEAWEEDFS_BUILD_LIMITS.downloadTimeoutMs + SEAWEEDFS_BUILD_LIMITS.copyTimeoutMs + SEAWEEDFS_BUILD_LIMITS.buildTimeoutMs,
    log,
    async build(go, output, workDir) {
      log(`building ${what} into ${seaweedfsBinaryPath(version)} (go mod download, then go build ./weed in a copy); a first build takes 10 minutes or more`);
      const moduleDir = await downloadModule(go, version, workDir, what);
      const source = path.join(workDir, 'src');
      // The module cache is read-only: the copy must be writable for go to update go.sum and for rm to clean up.
      await runCommand('cp', ['-R', moduleDir, source], { cwd: workDir, timeoutMs: SEAWEEDFS_BUILD_LIMITS.copyTimeoutMs, what });
      await runCommand('chmod', ['-R', 'u+w', source], { cwd: workDir, timeoutMs: SEAWEEDFS_BUILD_LIMITS.copyTimeoutMs, what });
      await runCommand(go, ['build', '-o', output, './weed'], {
        cwd: source,
        // -buildvcs=false: the copy is not a repository. -mod=mod: go.sum may lack a line a newer Go wants.
        env: { GOFLAGS: '-mod=mod -buildvcs=false' },
        timeoutMs: SEAWEEDFS_BUILD_LIMITS.buildTimeoutMs,
        what,
      });
      const reported = await runCommand(output, ['version'], { cwd: workDir, timeoutMs: SEAWEEDFS_BUILD_LIMITS.versionTimeoutMs, what });
      if (!reported.includes(SEAWEEDFS_RELEASE) && version === SEAWEEDFS_VERSION) {
        throw new InfraError(`${what}: \`weed version\` says ${JSON.stringify(reported.trim())}, not release ${SEAWEEDFS_RELEASE}`);
      }
      log(`built ${what}: ${reported.trim().split('\n')[0]}`);
    },
  });
}

/** `go mod download -json module@version`: the module's directory in the (read-only) module cache. */
async function downloadModule(go: string, version: string, cwd: string, what: string): Promise<string> {
  const target = `${SEAWEEDFS_MODULE}@${version}`;
  // Outside any module (cwd is the fresh work directory), so that no project's go.mod is consulted.
  const out = await runCommand(go, ['mod', 'download', '-json', target], {
    cwd,
    env: { GOFLAGS: '-mod=mod' },
    timeoutMs: SEAWEEDFS_BUILD_LIMITS.downloadTimeoutMs,
    what,
  });
  let info: { Dir?: string; Error?: string };
  try {
    info = JSON.parse(out) as { Dir?: string; Error?: string };
  } catch {
    throw new InfraError(`${what}: \`go mod download -json ${target}\` printed no JSON:\n${out.slice(0, 2000)}`);
  }
  if (info.Error || !info.Dir) throw new InfraError(`${what}: \`go mod download -json ${target}\` failed: ${info.Error ?? 'no Dir in its answer'}`);
  try {
    await readFile(path.join(info.Dir, 'go.mod'), 'utf8');
  } catch {
    throw new InfraError(`${what}: \`go mod download -json ${target}\` named ${info.Dir}, which has no go.mod`);
  }
  return info.Dir;
}
