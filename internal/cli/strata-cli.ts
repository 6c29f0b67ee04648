/**
 * `strata`, the command-line client: argument parsing, help, and the mapping from outcomes to exit codes.
 * The commands themselves are in commands.ts; the entry point (cmd/strata/main.ts) only hands over argv, the
 * environment and the standard streams, so that this module never touches process globals.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { StrataApiError, StrataClient, StrataNetworkError } from '../client/strata-client.js';
import { packageInfo } from '../core/package-info.js';
import { COMMANDS, UsageError, type CliIo, type Command } from './commands.js';
import { nodeFetch } from './http-transport.js';
import { showWaiting } from './progress.js';
import { EXIT_VERIFY_FAILED } from './verify-command.js';

/** Exit codes are part of the CLI's contract: scripts branch on them. */
export const EXIT = {
  OK: 0,
  API_ERROR: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  UNAVAILABLE: 4,
  VERIFY_FAILED: EXIT_VERIFY_FAILED,
} as const;

export const DEFAULT_URL = 'http://127.0.0.1:8000';
/** The CLI retries safe requests a few times with short steps: a person is waiting. */
const CLI_RETRIES = 3;
const CLI_RETRY_BASE_MS = 200;
const CLI_TIMEOUT_MS = 60_000;

export interface CliEnv {
  STRATA_URL?: string | undefined;
  STRATA_API_KEY?: string | undefined;
}

const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

function topLevelHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'strata: the command-line client of a Strata cluster',
    '',
    'Usage: strata [--url URL] [--json] COMMAND [ARGS]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Global options (anywhere on the line):',
    `  --url URL   the gateway (default: $STRATA_URL, else ${DEFAULT_URL})`,
    '  --json      print JSON for scripts instead of the human view',
    '  -h, --help  this help; `strata COMMAND --help` for one command',
    '  -V, --version  print the CLI\'s version and exit',
    '',
    'Environment: STRATA_URL (gateway), STRATA_API_KEY (sent as a bearer token).',
    '',
    'Exit codes:',
    '  0  success',
    '  1  the API answered with an error (the code and message are printed on stderr); rm --prefix: some deletes failed',
    '  2  usage error: unknown command or option, missing argument, unreadable input file, a question without a terminal',
    '  3  not found: the key has no live version',
    '  4  unavailable: the gateway could not be reached, or answered 503 after retries; health: not ready',
    '  5  verify found keys that are under-protected or unreadable',
    '  (the reader of the output going away, as with `strata ls | head`, ends the command quietly with 0)',
    '',
    'put, patch and rm send an Idempotency-Key, so they are retried safely after a 503 or a dropped connection.',
    'On a terminal, operations longer than a second draw a progress line on stderr.',
    '',
  ].join('\n');
}

function commandHelp(c: Command): string {
  return [`Usage: strata ${c.synopsis} [--url URL] [--json]`, '', `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`, '', c.details, ''].join('\n');
}

/** The first argument that is neither an option nor the value of a global option that takes one. */
function findCommand(argv: readonly string[]): { name: string | undefined; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if (arg === '--url') {
      i++;
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') continue;
    return { name: arg, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { name: undefined, rest: [...argv] };
}

export async function runCli(argv: readonly string[], env: CliEnv, io: CliIo): Promise<number> {
  const { name, rest } = findCommand(argv);
  if (name === 'help') {
    const target = COMMANDS.find((c) => c.name === rest.find((a) => !a.startsWith('-')));
    io.stdout(target ? commandHelp(target) : topLevelHelp());
    return EXIT.OK;
  }
  if (name === undefined) {
    if (rest.includes('--version') || rest.includes('-V')) {
      io.stdout(`strata ${packageInfo().version}\n`);
      return EXIT.OK;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout(topLevelHelp());
      return EXIT.OK;
    }
    io.stderr(`strata: missing command\n\n${topLevelHelp()}`);
    return EXIT.USAGE;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(`strata: unknown command ${JSON.stringify(name)}; run 'strata --help' for the list\n`);
    return EXIT.USAGE;
  }

  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { ...GLOBAL_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (error) {
    return usageError(io, command, (error as Error).message);
  }
  if (values.help) {
    io.stdout(commandHelp(command));
    return EXIT.OK;
  }
  if (values.version) {
    io.stdout(`strata ${packageInfo().version}\n`);
    return EXIT.OK;
  }
  if (positionals.length < command.positionalsMin) return usageError(io, command, 'missing argument');
  if (positionals.length > command.positionalsMax) return usageError(io, command, `unexpected argument ${JSON.stringify(positionals[command.positionalsMax])}`);

  let client: StrataClient;
  const baseUrl = (values.url as string | undefined) ?? (env.STRATA_URL || DEFAULT_URL);
  try {
    client = new StrataClient({
      baseUrl,
      retries: CLI_RETRIES,
      retryBaseMs: CLI_RETRY_BASE_MS,
      timeoutMs: CLI_TIMEOUT_MS,
      fetch: nodeFetch,
      ...(env.STRATA_API_KEY ? { apiKey: env.STRATA_API_KEY } : {}),
    });
  } catch (error) {
    return usageError(io, command, `--url: ${(error as Error).message}`);
  }

  const waiting = command.drawsProgress ? null : showWaiting(io, `strata ${command.name}`);
  try {
    const code = await command.run({ client, json: values.json === true, io, values, positionals });
    return code ?? EXIT.OK;
  } catch (error) {
    return reportFailure(io, command, error);
  } finally {
    waiting?.stop();
  }
}

function usageError(io: CliIo, command: Command, message: string): number {
  io.stderr(`strata ${command.name}: ${message}\nUsage: strata ${command.synopsis}\nRun 'strata ${command.name} --help' for details.\n`);
  return EXIT.USAGE;
}

function reportFailure(io: CliIo, command: Command, error: unknown): number {
  if (error instanceof UsageError) return usageError(io, command, error.message);
  if (error instanceof StrataNetworkError) {
    io.stderr(`strata ${command.name}: ${error.message}\n`);
    return EXIT.UNAVAILABLE;
  }
  if (error instanceof StrataApiError) {
    const retry = error.attempts > 1 ? ` after ${error.attempts} attempts` : '';
    io.stderr(`strata ${command.name}: ${error.code} (HTTP ${error.status}${retry}): ${error.message}\n`);
    if (error.status === 404 && error.code === 'NOT_FOUND') return EXIT.NOT_FOUND;
    if (error.status === 503) return EXIT.UNAVAILABLE;
    return EXIT.API_ERROR;
  }
  // Anything else is a bug in the CLI: say so loudly rather than dress it up as an API error.
  throw error;
}
