/**
 * The all-in-one mode (`npm start`) in a child process (all-in-one-child.ts) with its data in a temporary
 * directory, controlled over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchTarget, TargetOptions } from './target.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Compiled, as `npm start` runs: what is measured is the product as it ships, not a TypeScript loader. */
const CHILD = path.join(REPO_ROOT, 'dist', 'bench', 'harness', 'all-in-one-child.js');

export const ALL_IN_ONE_LIMITS = {
  /** From fork until the cluster is up, on a busy 2-core machine. */
  startTimeoutMs: 60_000,
  /** One IPC request (stopping or starting a node). */
  requestTimeoutMs: 60_000,
  /** After a stop request, before SIGKILL. */
  stopTimeoutMs: 20_000,
} as const;

export type ChildRequest =
  | { id: number; type: 'stop-node'; node: string }
  | { id: number; type: 'start-node'; node: string; empty: boolean }
  | { id: number; type: 'stop' };

export interface ChildAnswer {
  id: number;
  ok: boolean;
  error?: string;
  ready?: { url: string; token: string; nodes: { id: string; address: string }[] };
}

type Pending = { resolve: (a: ChildAnswer) => void; reject: (e: Error) => void };

export async function startAllInOneTarget(options: TargetOptions): Promise<BenchTarget> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('STRATA_') && name !== 'NODE_OPTIONS') env[name] = value;
  Object.assign(env, {
    STRATA_DATA_DIR: options.dataDir,
    STRATA_PORT: '0',
    STRATA_NODE_PORT_BASE: '0',
    STRATA_LOG_LEVEL: 'warn',
    ...options.env,
  });
  const { ensureBuilt } = (await import(pathToFileURL(path.join(REPO_ROOT, 'scripts', 'build.mjs')).href)) as { ensureBuilt(options: { ifStale: boolean }): void };
  ensureBuilt({ ifStale: true });
  const execArgv: string[] = [];
  if (options.cpuProfDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`);
  const child: ChildProcess = fork(CHILD, [], { cwd: REPO_ROOT, env, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));

  const ready = await new Promise<NonNullable<ChildAnswer['ready']>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the all-in-one did not start within ${ALL_IN_ONE_LIMITS.startTimeoutMs} ms`)), ALL_IN_ONE_LIMITS.startTimeoutMs);
    child.once('exit', (code, signal) => reject(new Error(`the all-in-one exited during start-up (code ${code}, signal ${signal})`)));
    child.on('message', (message: ChildAnswer) => {
      if (message.id === 0 && message.ready) {
        clearTimeout(timer);
        resolve(message.ready);
        return;
      }
      const p = pending.get(message.id);
      if (!p) return;
      pending.delete(message.id);
      if (message.ok) p.resolve(message);
      else p.reject(new Error(message.error ?? 'all-in-one request failed'));
    });
  }).catch((error: Error) => {
    child.kill('SIGKILL');
    throw error;
  });
  child.on('exit', () => {
    for (const p of pending.values()) p.reject(new Error('the all-in-one exited'));
    pending.clear();
  });

  const request = (body: ChildRequest extends infer R ? (R extends ChildRequest ? Omit<R, 'id'> : never) : never): Promise<ChildAnswer> =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error('the all-in-one is not running'));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the all-in-one did not answer ${body.type} within ${ALL_IN_ONE_LIMITS.requestTimeoutMs} ms`));
      }, ALL_IN_ONE_LIMITS.requestTimeoutMs);
      pending.set(id, {
        resolve: (a) => (clearTimeout(timer), resolve(a)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      child.send({ ...body, id } as ChildRequest);
    });

  let stopping: Promise<void> | null = null;
  return {
    mode: 'all-in-one',
    url: ready.url,
    token: ready.token,
    nodes: ready.nodes,
    backends: { metadata: 'embedded (SQLite)', wal: 'embedded (SQLite)' },
    description:
      'one Node.js process: the gateway, six storage nodes (in-process calls, STRATA_NODE_TRANSPORT=local) and the healer; ' +
      'embedded SQLite metadata and WAL; all data on one disk in a temporary directory',
    processes: () => (exited || child.pid === undefined ? [] : [{ name: 'all-in-one', pid: child.pid }]),
    async stopNode(id) {
      await request({ type: 'stop-node', node: id });
    },
    async startNode(id, { empty }) {
      await request({ type: 'start-node', node: id, empty });
    },
    stop() {
      stopping ??= (async () => {
        if (!exited) {
          // A clean stop lets `--cpu-prof` write its profile; SIGKILL only when it hangs.
          await request({ type: 'stop' }).catch(() => undefined);
          child.disconnect();
          const timer = setTimeout(() => child.kill('SIGKILL'), ALL_IN_ONE_LIMITS.stopTimeoutMs);
          await exitPromise;
          clearTimeout(timer);
        }
        await rm(options.dataDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
