/**
 * One process of the local cluster (scripts/local-cluster.ts), behind one interface whatever it runs: a Strata
 * process (`cmd/storage-node`, `cmd/api`, `cmd/healer`) spawned here, or etcd, Kafka and nginx started through
 * scripts/infra. Tests use it to kill a process as a crash would and to start it again exactly as it was (same
 * environment, same port, same data), which is what failure tests need.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packageInfo } from '../../internal/core/package-info.js';

export const PROC_LIMITS = {
  /**
   * From spawn until a Strata process prints its ready line. It loads TypeScript through tsx and, for a gateway
   * or healer, connects to etcd and Kafka; about 2 s alone, several times that when a whole cluster starts at
   * once on 2 cores.
   */
  readyTimeoutMs: 90_000,
  /** From SIGTERM until SIGKILL: above the 15 s a Strata process gives itself to shut down (run-process.ts). */
  stopTimeoutMs: 20_000,
  /** Bytes of a log file quoted when a process fails to start. */
  logTailBytesMax: 4_096,
} as const;

export class LocalClusterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalClusterError';
  }
}

export type ProcKind = 'etcd' | 'kafka' | 'storage-node' | 'gateway' | 'healer' | 'nginx';

export interface Proc {
  /** `node-3`, `gateway-1`, `healer-2`, `etcd`, `kafka`, `nginx`. */
  readonly name: string;
  readonly kind: ProcKind;
  /** Where it serves: `http://127.0.0.1:PORT` (Kafka: `127.0.0.1:PORT`); null for a healer, which serves nothing. */
  readonly address: string | null;
  readonly port: number | null;
  /** The STRATA_* variables it runs with (empty for etcd, Kafka and nginx). */
  readonly env: Readonly<Record<string, string>>;
  /** Its stdout and stderr (nginx: its error log); null when only the infra script holds the output (etcd). */
  readonly logFile: string | null;
  /** Null while it is not running (and for Kafka when its JVM could not be found). */
  readonly pid: number | null;
  readonly running: boolean;
  /** Starts it, again after a stop or kill, with the same environment, port and data; resolves once it is ready. */
  start(): Promise<void>;
  /** SIGTERM, SIGKILL after PROC_LIMITS.stopTimeoutMs; resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would; resolves once it has exited. Idempotent. */
  kill(): Promise<void>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/**
 * Compiled (this file is dist/scripts/cluster/proc.js, as `npm run cluster` runs it): the processes run dist's
 * JavaScript too. From the TypeScript sources (the test suites): through tsx's loader.
 */
const COMPILED = import.meta.url.endsWith('.js');
/** The root the entry points are found under: the repository, or its dist/ when compiled. */
const CODE_ROOT = path.resolve(here, '..', '..');
const SOURCE_EXTENSION = COMPILED ? '.js' : '.ts';
const EXIT_WITH_PARENT_URL = pathToFileURL(path.join(here, `exit-with-parent${SOURCE_EXTENSION}`)).href;

// ---- Strata processes ----------------------------------------------------------------------------------------

export interface StrataProcSpec {
  name: string;
  kind: 'storage-node' | 'gateway' | 'healer';
  /** Its STRATA_* variables; the parent's own STRATA_* variables are never passed on. */
  env: Record<string, string>;
  /** The port it listens on (STRATA_PORT must say the same); null for a healer. */
  port: number | null;
  logFile: string;
  /** Called when the process exits without being asked to (a crash); not for stop() or kill(). */
  onUnexpectedExit?: (proc: Proc, code: number | null, signal: NodeJS.Signals | null) => void;
}

const ENTRY_POINT: Record<StrataProcSpec['kind'], string> = {
  'storage-node': `cmd/storage-node/main${SOURCE_EXTENSION}`,
  gateway: `cmd/api/main${SOURCE_EXTENSION}`,
  healer: `cmd/healer/main${SOURCE_EXTENSION}`,
};
const LOADER_ARGS = COMPILED ? [] : ['--import', 'tsx'];

/** Strata children still running, killed when this process exits so that a finished test run leaves none behind. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
  });
}

/**
 * The parent's environment without its STRATA_* variables (a developer's exported STRATA_DATA_DIR must not leak
 * into a cluster process) and without NODE_OPTIONS (a test runner's loader hooks are not the child's business),
 * plus the process's own variables.
 */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || name.startsWith('STRATA_') || name === 'NODE_OPTIONS') continue;
    out[name] = value;
  }
  return { ...out, ...env };
}

export class StrataProc implements Proc {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private expectingExit = false;
  /** The line the process printed when it became ready (e.g. `gateway listening on http://...`). */
  readyLine: string | null = null;

  constructor(private readonly spec: StrataProcSpec) {}

  get name(): string {
    return this.spec.name;
  }
  get kind(): ProcKind {
    return this.spec.kind;
  }
  get port(): number | null {
    return this.spec.port;
  }
  get address(): string | null {
    return this.spec.port === null ? null : `http://127.0.0.1:${this.spec.port}`;
  }
  get env(): Readonly<Record<string, string>> {
    return this.spec.env;
  }
  get logFile(): string {
    return this.spec.logFile;
  }
  get pid(): number | null {
    return this.child?.pid ?? null;
  }
  get running(): boolean {
    return this.child !== null;
  }

  async start(): Promise<void> {
    if (this.child) throw new LocalClusterError(`${this.name} is already running (pid ${this.pid})`);
    await mkdir(path.dirname(this.spec.logFile), { recursive: true });
    const log = createWriteStream(this.spec.logFile, { flags: 'a' });
    log.on('error', () => undefined); // a log that cannot be written must not take the cluster down
    const entry = path.join(CODE_ROOT, ENTRY_POINT[this.spec.kind]);
    log.write(`--- ${new Date().toISOString()} starting ${this.name}: node ${[...LOADER_ARGS, entry].join(' ')}\n`);
    installExitHook();
    // detached: a process group of its own, so that Ctrl-C in a terminal reaches only the cluster script, which
    // stops the processes in order; exit-with-parent.ts covers the script dying without doing so.
    const child = spawn(process.execPath, [...LOADER_ARGS, '--import', EXIT_WITH_PARENT_URL, entry], {
      cwd: packageInfo().root,
      env: childEnv(this.spec.env),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    this.expectingExit = false;
    this.readyLine = null;
    liveChildren.add(child);
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });

    const ready = new Promise<string>((resolve, reject) => {
      let text = '';
      const onData = (chunk: Buffer): void => {
        text += chunk.toString('utf8');
        const newline = text.indexOf('\n');
        if (newline < 0) return;
        child.stdout!.off('data', onData);
        resolve(text.slice(0, newline));
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code, signal) => reject(new LocalClusterError(`it exited during start-up (code ${code}, signal ${signal})`)));
      child.once('error', reject);
    });
    // 'close', not 'exit': the output is complete only once the pipes have closed.
    this.exited = new Promise<void>((resolve) => {
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        liveChildren.delete(child);
        if (this.child === child) this.child = null;
        log.end(`--- ${new Date().toISOString()} ${this.name} exited (code ${code}, signal ${signal})\n`);
        // A start-up failure is start()'s to report; a crash after it is the callback's.
        if (!this.expectingExit && this.readyLine !== null) this.spec.onUnexpectedExit?.(this, code, signal);
        resolve();
      });
    });

    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new LocalClusterError(`no ready line within ${PROC_LIMITS.readyTimeoutMs} ms`)), PROC_LIMITS.readyTimeoutMs);
    });
    try {
      this.readyLine = await Promise.race([ready, timeout]);
    } catch (err) {
      await this.kill();
      throw new LocalClusterError(
        `${this.name} did not start: ${(err as Error).message}\n--- ${this.spec.logFile} (last part) ---\n${await readTail(this.spec.logFile)}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.expectingExit = true;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), PROC_LIMITS.stopTimeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.expectingExit = true;
    child.kill('SIGKILL');
    await this.exited;
  }
}

// ---- etcd, Kafka and nginx -----------------------------------------------------------------------------------

/** What the infra scripts hand back for a started service, reduced to what a Proc needs. */
export interface ServiceHandle {
  address: string;
  port: number;
  pid: number | null;
  logFile: string | null;
  stop(): Promise<void>;
  /** SIGKILL; resolves once the process has exited. */
  kill(): Promise<void>;
}

export class ServiceProc implements Proc {
  private handle: ServiceHandle | null = null;
  private last: ServiceHandle | null = null;
  readonly env: Readonly<Record<string, string>> = Object.freeze({});

  constructor(
    readonly name: string,
    readonly kind: 'etcd' | 'kafka' | 'nginx',
    /** Starts the service; called again by start() after a stop, and must then reuse the same port and data. */
    private readonly launch: () => Promise<ServiceHandle>,
  ) {}

  get address(): string | null {
    return (this.handle ?? this.last)?.address ?? null;
  }
  get port(): number | null {
    return (this.handle ?? this.last)?.port ?? null;
  }
  get logFile(): string | null {
    return (this.handle ?? this.last)?.logFile ?? null;
  }
  get pid(): number | null {
    return this.handle?.pid ?? null;
  }
  get running(): boolean {
    return this.handle !== null;
  }

  async start(): Promise<void> {
    if (this.handle) throw new LocalClusterError(`${this.name} is already running`);
    this.handle = await this.launch();
    this.last = this.handle;
  }

  async stop(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    await handle.stop();
    this.handle = null;
  }

  async kill(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    await handle.kill();
    this.handle = null;
  }
}

// ---- helpers -------------------------------------------------------------------------------------------------

/** The last PROC_LIMITS.logTailBytesMax bytes of a file ('' when it cannot be read). */
export async function readTail(file: string): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, PROC_LIMITS.logTailBytesMax);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      return buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
}

/**
 * The pid of the process whose command line has `argument` (Linux /proc), for display only: scripts/infra/kafka.ts
 * does not expose its JVM's pid. Null when none is found or /proc is not there.
 */
export async function pidWithArgument(argument: string): Promise<number | null> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return null;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(path.join('/proc', entry, 'cmdline'), 'utf8').catch(() => '');
    if (cmdline.split('\0').includes(argument)) return Number(entry);
  }
  return null;
}
