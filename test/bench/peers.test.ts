/**
 * `npm run bench -- peers` end to end, very short: SeaweedFS built from its pinned commit (when the cache has
 * none), its two configurations and two fresh Strata all-in-ones, the Go load generator against each. The JSON
 * result must hold every system and figure with requests served and no errors, and nothing may be left behind:
 * no process, no temporary directory. Speed is not checked: a one-second run on a shared machine says nothing.
 *
 * The run gets a temporary directory of its own as TMPDIR, so that everything it creates there (SeaweedFS's and
 * Strata's data, the processes' environment) can be told apart from what other tests on this machine create.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { PeersResult } from '../../bench/peers/result.js';
import { FIGURE_IDS, SYSTEM_IDS } from '../../bench/peers/settings.js';
import { OutputTail } from '../../scripts/infra/process-utils.js';
import { findGo } from '../../scripts/infra/go-build.js';
import { LOADGEN_SOURCE_DIR } from '../../scripts/infra/go-loadgen.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Generous on purpose: with an empty cache this test builds SeaweedFS from source first (`go mod download` of a
 * few hundred modules from the Go module proxy, then about 1,700 packages compiled): 31 minutes were measured on
 * this 2-core machine while other work kept it busy (load average 6 to 15). Then four deployments start (SeaweedFS's
 * master defers its first volumes by about 10 s) and each runs four one-second figures: about a minute with a warm
 * cache.
 */
const RUN_TIMEOUT_MS = 60 * 60_000;

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const tail = new OutputTail(64 * 1024);
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => tail.push(c));
    child.stderr.on('data', (c: Buffer) => tail.push(c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output: tail.text() }));
  });
}

/** Processes whose command line or environment mentions `text` (the run's TMPDIR). */
async function processesMentioning(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    for (const file of ['cmdline', 'environ']) {
      const content = await readFile(`/proc/${pid}/${file}`, 'utf8').catch(() => '');
      if (content.includes(text)) {
        found.push(`${pid}: ${(await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ')}`);
        break;
      }
    }
  }
  return found;
}

describe('npm run bench -- peers', () => {
  it(
    'measures every system and figure, writes the JSON result, and leaves no process or directory behind',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-peers-test-'));
      dirs.push(dir);
      const tmp = path.join(dir, 'tmp');
      await mkdir(tmp);
      const out = path.join(dir, 'result.json');
      const args = [
        path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'),
        'bench/main.ts', 'peers',
        '--rounds', '1', '--duration', '1', '--warmup', '0.2',
        '--clients', '4', '--clients-large', '2', '--keys', '20',
        '--out', out,
      ];
      const { code, output } = await run(process.execPath, args, { ...process.env, TMPDIR: tmp }, REPO_ROOT);
      expect(code, output).toBe(0);

      const result = JSON.parse(await readFile(out, 'utf8')) as PeersResult;
      expect(result.systems.map((s) => s.id)).toEqual([...SYSTEM_IDS]);
      expect(result.settings).toMatchObject({ rounds: 1, durationMs: 1000, warmupMs: 200, keys: 20 });
      expect(result.machine.cores).toBeGreaterThan(0);
      expect(result.seaweedfs.release).toBe('4.53');
      for (const system of SYSTEM_IDS) {
        for (const figure of FIGURE_IDS) {
          const runs = result.runs.filter((r) => r.system === system && r.figure === figure);
          expect(runs, `${system} ${figure}`).toHaveLength(1);
          const r = runs[0]!;
          expect(r.ops, `${system} ${figure}`).toBeGreaterThan(0);
          expect(r.errors, `${system} ${figure}: ${r.errorSamples.join('; ')}`).toBe(0);
          expect(r.opsPerSec).toBeGreaterThan(0);
          expect(r.latencyMs.p99).toBeGreaterThan(0);
          expect(r.latencyMs.p50).toBeLessThanOrEqual(r.latencyMs.p99);
          expect(r.sizeBytes).toBe(figure.endsWith('100k') ? 100 * 1024 : 1024);
          expect(r.serverCpuSeconds, `${system} ${figure}`).toBeGreaterThan(0);
          expect(typeof r.loadAverage1m.end).toBe('number');
          expect(result.summary.find((s) => s.system === system && s.figure === figure)?.opsPerSec).toBeGreaterThan(0);
        }
      }
      for (const goal of result.goals) expect(goal.measured, goal.figure).toBeGreaterThan(0);
      // The printed table names every system.
      for (const s of result.systems) expect(output).toContain(s.label);

      expect(await processesMentioning(tmp)).toEqual([]);
      // tsx keeps a compile cache in the temporary directory; everything the run itself made is gone.
      expect((await readdir(tmp)).filter((name) => !name.startsWith('tsx-'))).toEqual([]);
    },
    RUN_TIMEOUT_MS,
  );

  it('the load generator\'s own Go tests pass (documents, latency histogram)', async () => {
    const go = await findGo('the peers load generator tests');
    const { code, output } = await run(go, ['test', './...'], { ...process.env, GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local' }, LOADGEN_SOURCE_DIR);
    expect(code, output).toBe(0);
  }, 10 * 60_000);
});
