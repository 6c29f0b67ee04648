/**
 * Strata's entry points (cmd/all-in-one, cmd/storage-node, cmd/api, cmd/healer, scripts/*) run as real child
 * processes, for tests of what only a separate process shows: the ready line, exit codes, signals, the data
 * directory lock. Ports come from the kernel (freePort); start-up is waited for by condition, never by time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitUntil } from './wait.js';

export { freePort } from '../../scripts/infra/process-utils.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * How the entry point is loaded. 'loader' (the default): the TypeScript source through `node --import tsx <entry>`,
 * one process, so a signal sent to the child (a SIGKILL above all) reaches the Strata process itself, e.g. the
 * holder of a data directory's lock. 'cli': tsx's own CLI, which runs the program in a child of its own and relays
 * signals to it. 'compiled': what `npm start` and the operator tools' npm scripts run, `node scripts/run.mjs
 * <entry>`, the entry point compiled in dist/ (built first when stale), in one process; `args[0]` names the entry
 * point as its source does (`cmd/all-in-one/main.ts`).
 */
export type TsxMode = 'loader' | 'cli' | 'compiled';

export interface StrataChild {
  child: ChildProcess;
  /** Everything it has written to stdout and stderr so far, interleaved. */
  output(): string;
  /** Its exit code (null when a signal ended it). */
  exited: Promise<number | null>;
}

/** Starts `node <loader> ...args` in the repository with exactly `env` as its environment, collecting its output. */
export function spawnStrata(args: string[], env: NodeJS.ProcessEnv, tsx: TsxMode = 'loader'): StrataChild {
  const argv =
    tsx === 'loader'
      ? ['--import', 'tsx', ...args]
      : tsx === 'cli'
        ? [path.join(REPO_ROOT, 'node_modules/tsx/dist/cli.mjs'), ...args]
        : [path.join(REPO_ROOT, 'scripts/run.mjs'), args[0]!.replace(/\.ts$/, ''), ...args.slice(1)];
  const child = spawn(process.execPath, argv, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/**
 * Resolves once `started` has printed `readyText`. Fails at once, quoting its output, if it exits first, and with its
 * output if `timeoutMs` passes (generous: tsx compiles the entry point's imports on a cold start, on a busy machine).
 */
export async function waitForReady(started: StrataChild, what: string, readyText: string, timeoutMs: number): Promise<void> {
  const ended = (): boolean => started.child.exitCode !== null || started.child.signalCode !== null;
  await waitUntil(`${what} to print "${readyText}"`, () => started.output().includes(readyText) || ended(), timeoutMs).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; its output:\n${started.output()}`);
  });
  if (!started.output().includes(readyText)) {
    throw new Error(`${what} exited early (code ${started.child.exitCode}, signal ${started.child.signalCode}):\n${started.output()}`);
  }
}

/** Sends `signal` and resolves with the exit code. */
export async function stopWith(started: StrataChild, signal: NodeJS.Signals): Promise<number | null> {
  started.child.kill(signal);
  return started.exited;
}

/**
 * A command run to its end as an operator runs it (`npm run recover:manifests`, `npm run node:accept-empty`): the
 * compiled `script`, as those npm scripts run it, with PATH, HOME and `env` only; its output is returned to be
 * quoted when it fails.
 */
export async function runScript(script: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const run = spawnStrata([script, ...args], { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env }, 'compiled');
  const code = await run.exited;
  return { code, output: run.output() };
}
