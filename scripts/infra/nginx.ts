/**
 * Real nginx for tests and the local cluster, configured by the project's own `nginx.conf`: install it when missing,
 * render that file for a local run, start nginx as a child process on a free loopback port, wait until it answers,
 * reload it with other gateways, tear it down.
 *
 *   const binary = await ensureNginx();                          // installs Debian's nginx if none is found
 *   const nginx = await startNginx({ upstreams: ['127.0.0.1:8000'] });
 *   ... fetch(`${nginx.url}/read/...`) ...
 *   await nginx.reload(['127.0.0.1:8001']);                      // SIGHUP with a re-rendered config
 *   await nginx.stop();                                          // SIGTERM, wait, remove the temp prefix
 *
 * `nginx.conf` is a template only in the sense that the blocks between `# strata-render:begin NAME` and
 * `# strata-render:end NAME` are replaced (upstream servers, the listen address, log files and temp paths);
 * every other line is used as it is, so tests exercise the deployed retry policy, limits and error bodies rather
 * than a copy of them. Everything nginx writes lives in a temp prefix, so it runs as any user and beside a system
 * nginx.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEBIAN_INSTALL_LIMITS, ensureBinary, InfraError } from './debian-package.js';
import { OutputTail, freePort, sleep, stopOnExit } from './process-utils.js';

export { freePort };

export const NGINX_INFRA_LIMITS = {
  /** Installing Debian's nginx when it is missing (scripts/infra/debian-package.ts). */
  installTimeoutMs: DEBIAN_INSTALL_LIMITS.installTimeoutMs,
  /** `nginx -v`, `nginx -V` and `nginx -t`. */
  commandTimeoutMs: 30_000,
  /** From spawn until nginx answers. It binds and forks its workers in milliseconds; a bind conflict takes 2.5 s. */
  readyTimeoutMs: 15_000,
  readyPollIntervalMs: 25,
  /** Per readiness probe. */
  probeTimeoutMs: 1_000,
  /** From SIGHUP until the new workers run. */
  reloadTimeoutMs: 10_000,
  /** From SIGTERM until SIGKILL. */
  stopTimeoutMs: 10_000,
  /** Start attempts when another process grabbed the chosen port before nginx bound it. */
  startAttemptsMax: 3,
  /** Bytes of nginx's output or error log quoted in error messages. */
  outputTailBytesMax: 4_096,
} as const;

/**
 * `-e` (error log on the command line, so that nginx never opens the packaged /var/log/nginx/error.log) needs
 * 1.19.5; nginx.conf is written for 1.22, Debian 12's version.
 */
export const NGINX_VERSION_MIN = [1, 19, 5] as const;

const here = path.dirname(fileURLToPath(import.meta.url));
/** The project's nginx.conf, the one docker-compose.yaml mounts. */
export const NGINX_CONF_PATH = path.resolve(here, '..', '..', 'nginx.conf');

/** Debian installs the binary in sbin, which is not on a normal user's PATH. */
const WELL_KNOWN_PATHS = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'];

export class NginxInfraError extends InfraError {
  constructor(message: string) {
    super(message);
    this.name = 'NginxInfraError';
  }
}

// ---- ensureNginx ---------------------------------------------------------------------------------------------

const MANUAL_FIX =
  'Install it yourself with `sudo apt-get update && sudo apt-get install -y nginx` (Debian/Ubuntu), or put an nginx ' +
  `${NGINX_VERSION_MIN.join('.')}+ binary on PATH (https://nginx.org/en/linux_packages.html).`;

let ensuring: Promise<string> | null = null;

/**
 * The path of the nginx binary, installing Debian's `nginx` package first when none is found (through the
 * installer shared with etcd and Kafka, which serializes apt across test processes). Idempotent. Fails with an
 * InfraError that names what failed and what to run instead.
 */
export function ensureNginx(): Promise<string> {
  ensuring ??= (async () => {
    const binary = await ensureBinary({ binary: 'nginx', packages: ['nginx'], wellKnownPaths: WELL_KNOWN_PATHS, manualFix: MANUAL_FIX });
    await checkVersion(binary);
    return binary;
  })().catch((err: unknown) => {
    ensuring = null; // a later call may succeed once the operator fixed the cause
    throw err;
  });
  return ensuring;
}

async function checkVersion(binary: string): Promise<void> {
  let result: CommandResult;
  try {
    result = await run(binary, ['-v'], NGINX_INFRA_LIMITS.commandTimeoutMs);
  } catch (err) {
    throw new NginxInfraError(`nginx: cannot run \`${binary} -v\`: ${(err as Error).message}. ${MANUAL_FIX}`);
  }
  // `nginx -v` prints `nginx version: nginx/1.22.1` on stderr.
  const match = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(result.output);
  if (result.code !== 0 || match === null) {
    throw new NginxInfraError(`nginx: \`${binary} -v\` did not print a version (exit ${result.code}): ${result.output.trim()}. ${MANUAL_FIX}`);
  }
  const version = [Number(match[1]), Number(match[2]), Number(match[3])];
  for (let i = 0; i < version.length; i++) {
    if (version[i]! > NGINX_VERSION_MIN[i]!) return;
    if (version[i]! < NGINX_VERSION_MIN[i]!) {
      throw new NginxInfraError(`nginx: ${binary} is version ${version.join('.')}; Strata's tests need ${NGINX_VERSION_MIN.join('.')} or newer. ${MANUAL_FIX}`);
    }
  }
}

// ---- renderNginxConf -----------------------------------------------------------------------------------------

/** The blocks of nginx.conf that a local run replaces; every one must be present exactly once. */
export const RENDER_BLOCKS = ['main-logs', 'http-paths', 'upstream-servers', 'listen'] as const;
type RenderBlock = (typeof RENDER_BLOCKS)[number];

/** nginx's temp directories. Debian compiles them to /var/lib/nginx/..., which only root may create. */
const TEMP_PATH_DIRECTIVES = [
  ['client_body_temp_path', 'client_body'],
  ['proxy_temp_path', 'proxy'],
  ['fastcgi_temp_path', 'fastcgi'],
  ['uwsgi_temp_path', 'uwsgi'],
  ['scgi_temp_path', 'scgi'],
] as const;

export interface RenderOptions {
  /** `host:port` of each gateway, in order. */
  upstreams: readonly string[];
  /** The port to listen on (loopback unless `listenHost` says otherwise). */
  port: number;
  listenHost?: string;
  /** The directory that receives logs and temp files. */
  prefix: string;
}

/** `host:port` with a plain host name, IPv4 address or bracketed IPv6 address: nothing that could inject config. */
const UPSTREAM_PATTERN = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/;

/**
 * nginx.conf with its marked blocks replaced for a local run. Pure; throws when the template lacks a marker or a
 * block does not hold what the render expects, so that an edit which breaks rendering fails loudly.
 */
export function renderNginxConf(template: string, options: RenderOptions): string {
  if (options.upstreams.length === 0) throw new NginxInfraError('nginx: at least one upstream (host:port) is needed');
  for (const upstream of options.upstreams) {
    if (!UPSTREAM_PATTERN.test(upstream)) throw new NginxInfraError(`nginx: upstream "${upstream}" is not host:port`);
  }
  assertPort(options.port);
  const listenHost = options.listenHost ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(listenHost)) throw new NginxInfraError(`nginx: listen host "${listenHost}" is not an address`);
  if (/[\s;'"{}]/.test(options.prefix)) throw new NginxInfraError(`nginx: prefix "${options.prefix}" must not contain white space, quotes, ";" or braces`);
  const logs = path.join(options.prefix, 'logs');
  const temp = path.join(options.prefix, 'temp');

  let text = template;
  text = replaceBlock(text, 'main-logs', () => [`error_log ${path.join(logs, 'error.log')} notice;`]);
  text = replaceBlock(text, 'http-paths', (body) => {
    // Keep the access log's format name, so the rendered file logs what the deployed one does.
    const format = /^\s*access_log\s+\S+\s+([A-Za-z0-9_]+)\s*;/m.exec(body)?.[1];
    return [
      `access_log ${path.join(logs, 'access.log')}${format === undefined ? '' : ` ${format}`};`,
      ...TEMP_PATH_DIRECTIVES.map(([directive, dir]) => `${directive} ${path.join(temp, dir)};`),
    ];
  });
  text = replaceBlock(text, 'upstream-servers', (body) => {
    // The first server line's parameters (max_fails, fail_timeout, ...) apply to every rendered server.
    const first = /^\s*server\s+\S+([^;]*);/m.exec(body);
    if (first === null) throw new NginxInfraError('nginx.conf: the upstream-servers block has no `server host:port ...;` line');
    return options.upstreams.map((upstream) => `server ${upstream}${first[1]};`);
  });
  text = replaceBlock(text, 'listen', (body) => {
    const listen = /^\s*listen\s+\S+([^;]*);/m.exec(body);
    if (listen === null) throw new NginxInfraError('nginx.conf: the listen block has no `listen ...;` line');
    return [`listen ${listenHost}:${options.port}${listen[1]};`];
  });
  return text;
}

function replaceBlock(text: string, name: RenderBlock, render: (body: string) => string[]): string {
  const begin = new RegExp(`^([ \\t]*)# strata-render:begin ${name}\\b.*\\n`, 'gm');
  const end = new RegExp(`^[ \\t]*# strata-render:end ${name}\\b.*(?:\\n|$)`, 'gm');
  const begins = [...text.matchAll(begin)];
  const ends = [...text.matchAll(end)];
  if (begins.length !== 1 || ends.length !== 1) {
    throw new NginxInfraError(
      `nginx.conf: expected one "# strata-render:begin ${name}" and one "# strata-render:end ${name}" line, ` +
        `found ${begins.length} and ${ends.length}`,
    );
  }
  const [beginMatch, endMatch] = [begins[0]!, ends[0]!];
  const bodyStart = beginMatch.index + beginMatch[0].length;
  if (endMatch.index < bodyStart) throw new NginxInfraError(`nginx.conf: "strata-render:end ${name}" comes before its begin`);
  const indent = beginMatch[1] ?? '';
  const lines = render(text.slice(bodyStart, endMatch.index)).map((line) => `${indent}${line}\n`);
  // The markers stay, so that a rendered file can be rendered again (reload) and read by a person.
  return text.slice(0, bodyStart) + lines.join('') + text.slice(endMatch.index);
}

function assertPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new NginxInfraError(`nginx: port must be 1..65535, got ${port}`);
}

// ---- checkNginxConf ------------------------------------------------------------------------------------------

export interface CheckNginxOptions {
  /** Default: one made-up loopback gateway; `nginx -t` does not connect to upstreams. */
  upstreams?: readonly string[];
  /** The template; default the project's nginx.conf. */
  templatePath?: string;
}

/**
 * Renders the template into a temp prefix and runs `nginx -t` on it. Resolves with nginx's output on success;
 * rejects with an NginxInfraError quoting it otherwise.
 */
export async function checkNginxConf(options: CheckNginxOptions = {}): Promise<string> {
  const binary = await ensureNginx();
  const prefix = await makePrefix();
  try {
    const configPath = await writeRendered(prefix, options.templatePath ?? NGINX_CONF_PATH, options.upstreams ?? ['127.0.0.1:8000'], await freePort());
    const result = await run(binary, [...baseArgs(prefix, configPath), '-t'], NGINX_INFRA_LIMITS.commandTimeoutMs);
    if (result.timedOut) throw new NginxInfraError(`nginx -t did not finish within ${NGINX_INFRA_LIMITS.commandTimeoutMs} ms`);
    if (result.code !== 0) {
      throw new NginxInfraError(`nginx -t rejected the rendered ${options.templatePath ?? NGINX_CONF_PATH}:\n${result.output.trim()}`);
    }
    return result.output.trim();
  } finally {
    await rm(prefix, { recursive: true, force: true });
  }
}

// ---- startNginx ----------------------------------------------------------------------------------------------

export interface StartNginxOptions {
  /** `host:port` of each gateway. */
  upstreams: readonly string[];
  /** Listen on this loopback port; a free one is chosen otherwise. */
  port?: number;
  /** The template; default the project's nginx.conf. */
  templatePath?: string;
}

export interface RunningNginx {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** The rendered configuration nginx runs with. */
  configPath: string;
  /** The temp prefix holding the config, logs and temp files; removed by stop(). */
  prefix: string;
  errorLogPath: string;
  accessLogPath: string;
  /** The master process id. */
  pid: number;
  /** Re-renders the config with these gateways and reloads nginx (SIGHUP); resolves once new workers run. */
  reload(upstreams: readonly string[]): Promise<void>;
  /** SIGTERM, wait for the exit (SIGKILL after a grace period), remove the prefix. Idempotent. */
  stop(): Promise<void>;
}


/** Starts nginx in front of `upstreams` and resolves once it answers requests. */
export async function startNginx(options: StartNginxOptions): Promise<RunningNginx> {
  const binary = await ensureNginx();
  let lastError: unknown;
  for (let attempt = 1; attempt <= NGINX_INFRA_LIMITS.startAttemptsMax; attempt++) {
    try {
      return await startOnce(binary, options);
    } catch (err) {
      lastError = err;
      // Only a port race is worth another try, and only when the port was ours to choose.
      if (options.port !== undefined || !(err instanceof PortInUseError)) break;
    }
  }
  throw lastError;
}

class PortInUseError extends NginxInfraError {}

async function startOnce(binary: string, options: StartNginxOptions): Promise<RunningNginx> {
  const templatePath = options.templatePath ?? NGINX_CONF_PATH;
  const port = options.port ?? (await freePort());
  const prefix = await makePrefix();
  const errorLogPath = path.join(prefix, 'logs', 'error.log');
  let configPath: string;
  try {
    configPath = await writeRendered(prefix, templatePath, options.upstreams, port);
  } catch (err) {
    await rm(prefix, { recursive: true, force: true });
    throw err;
  }
  // `daemon off` keeps the master as our child, so that its exit is observable and stop() can wait for it.
  const pidPath = path.join(prefix, 'nginx.pid');
  const args = baseArgs(prefix, configPath, 'daemon off; ');
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  stopOnExit(child, 'SIGTERM');
  const output = new OutputTail(NGINX_INFRA_LIMITS.outputTailBytesMax);
  child.stdout?.on('data', (chunk: Buffer) => output.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk));
  let hasExited = false;
  const exited = new Promise<void>((resolve) => {
    const done = (): void => {
      hasExited = true;
      resolve();
    };
    child.once('exit', done);
    child.once('error', done);
  });

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!hasExited) {
        // SIGTERM is nginx's fast shutdown: the master stops its workers, closing open connections.
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), NGINX_INFRA_LIMITS.stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }
      await rm(prefix, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    await waitUntilAnswering(port, pidPath, child.pid, () => hasExited);
  } catch (err) {
    const log = await readTail(errorLogPath);
    await stop();
    const details = `--- nginx error log (last part) ---\n${log}\n--- nginx output ---\n${output.text()}`;
    if (/address already in use/i.test(log + output.text())) {
      throw new PortInUseError(`nginx: port ${port} is already in use.\n${details}`);
    }
    throw new NginxInfraError(`nginx: ${(err as Error).message} (${binary} ${args.join(' ')})\n${details}`);
  }
  if (child.pid === undefined) throw new NginxInfraError('nginx answered but its process has no pid');

  const reload = async (upstreams: readonly string[]): Promise<void> => {
    if (hasExited) throw new NginxInfraError('nginx: cannot reload, it has exited');
    const rendered = renderNginxConf(await readFile(templatePath, 'utf8'), { upstreams, port, prefix });
    const staging = `${configPath}.next`;
    await writeFile(staging, rendered);
    await rename(staging, configPath);
    const logOffset = (await stat(errorLogPath).catch(() => ({ size: 0 }))).size;
    child.kill('SIGHUP');
    await waitForReload(errorLogPath, logOffset);
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    configPath,
    prefix,
    errorLogPath,
    accessLogPath: path.join(prefix, 'logs', 'access.log'),
    pid: child.pid,
    reload,
    stop,
  };
}

/**
 * The command line that keeps every file nginx touches inside the prefix. -e: nginx opens its error log before
 * it reads the config; without -e that is the packaged path, which a normal user cannot write. The pid file too
 * (even `nginx -t` opens it); nginx.conf has no `pid` line, so this does not clash with it.
 */
function baseArgs(prefix: string, configPath: string, globals = ''): string[] {
  const pid = `pid ${path.join(prefix, 'nginx.pid')};`;
  return ['-p', `${prefix}/`, '-c', configPath, '-e', path.join(prefix, 'logs', 'error.log'), '-g', `${globals}${pid}`];
}

async function makePrefix(): Promise<string> {
  const prefix = await mkdtemp(path.join(os.tmpdir(), 'strata-nginx-'));
  // Started as root, nginx runs its workers as an unprivileged user (www-data, nobody) that must reach the temp
  // directories inside; nginx itself creates those and hands them to that user.
  await chmod(prefix, 0o755);
  await mkdir(path.join(prefix, 'logs'));
  await mkdir(path.join(prefix, 'temp'));
  await mkdir(path.join(prefix, 'conf'));
  return prefix;
}

async function writeRendered(prefix: string, templatePath: string, upstreams: readonly string[], port: number): Promise<string> {
  let template: string;
  try {
    template = await readFile(templatePath, 'utf8');
  } catch (err) {
    throw new NginxInfraError(`nginx: cannot read the template ${templatePath}: ${(err as Error).message}`);
  }
  const configPath = path.join(prefix, 'conf', 'nginx.conf');
  await writeFile(configPath, renderNginxConf(template, { upstreams, port, prefix }));
  return configPath;
}

/**
 * Ready = a request that nginx answers by itself: an HTTP/1.1 request without Host is nginx's own 400, so the
 * probe never reaches an upstream (tests count what their upstreams receive). The pid check in the loop makes sure
 * the answer is not from someone else's server on a port that nginx then failed to bind.
 */
async function waitUntilAnswering(port: number, pidPath: string, pid: number | undefined, hasExited: () => boolean): Promise<void> {
  const deadlineMs = Date.now() + NGINX_INFRA_LIMITS.readyTimeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadlineMs) {
    if (hasExited()) throw new NginxInfraError('nginx exited during start-up');
    try {
      const answer = await probe(port);
      if (/^HTTP\/1\.1 400 /.test(answer) && (await pidFileNames(pidPath, pid))) return;
      last = `unexpected answer: ${answer.slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(NGINX_INFRA_LIMITS.readyPollIntervalMs);
  }
  throw new NginxInfraError(`nginx on port ${port} did not answer within ${NGINX_INFRA_LIMITS.readyTimeoutMs} ms (last probe: ${last})`);
}

/** nginx writes its pid file after it has bound its listening sockets. */
async function pidFileNames(pidPath: string, pid: number | undefined): Promise<boolean> {
  const text = await readFile(pidPath, 'utf8').catch(() => '');
  return pid !== undefined && Number(text.trim()) === pid;
}

function probe(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(NGINX_INFRA_LIMITS.probeTimeoutMs, () => socket.destroy(new Error('probe timed out')));
    socket.on('connect', () => socket.write('GET /strata-nginx-probe HTTP/1.1\r\nConnection: close\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/**
 * A reload is done when the master has started new workers (logged at `notice`, the level the rendered config
 * uses) and told the old ones to finish; a config the master refused is logged as `[emerg]` and rejects.
 */
async function waitForReload(errorLogPath: string, offset: number): Promise<void> {
  const deadlineMs = Date.now() + NGINX_INFRA_LIMITS.reloadTimeoutMs;
  let fresh = '';
  while (Date.now() < deadlineMs) {
    fresh = await readFrom(errorLogPath, offset);
    const emerg = /\[emerg\].*/.exec(fresh);
    if (emerg !== null) throw new NginxInfraError(`nginx refused the new config and kept the old one: ${emerg[0]}`);
    if (/start worker process/.test(fresh) && /gracefully shutting down/.test(fresh)) return;
    await sleep(NGINX_INFRA_LIMITS.readyPollIntervalMs);
  }
  throw new NginxInfraError(`nginx did not reload within ${NGINX_INFRA_LIMITS.reloadTimeoutMs} ms; its log since the signal:\n${fresh}`);
}

async function readFrom(file: string, offset: number): Promise<string> {
  const text = await readFile(file).catch(() => Buffer.alloc(0));
  return text.subarray(Math.min(offset, text.length)).toString('utf8');
}

async function readTail(file: string): Promise<string> {
  const text = await readFile(file).catch(() => Buffer.alloc(0));
  return text.subarray(Math.max(0, text.length - NGINX_INFRA_LIMITS.outputTailBytesMax)).toString('utf8');
}

// ---- helpers -------------------------------------------------------------------------------------------------

interface CommandResult {
  code: number | null;
  timedOut: boolean;
  /** The last part of stdout and stderr together. */
  output: string;
}

/** Runs a command to completion; a command that cannot be started (ENOENT) rejects. */
function run(command: string, args: string[], timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const output = new OutputTail(NGINX_INFRA_LIMITS.outputTailBytesMax);
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, output: output.text() });
    });
  });
}
