/**
 * docker-compose.yaml as the tests read it: as written (`${...}` references kept), and as Compose runs it for an
 * operator who followed the file's own instructions, that is after its `export` lines ran in a shell.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { interpolateAll } from './compose-interpolation.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const COMPOSE_PATH = path.join(ROOT, 'docker-compose.yaml');

/** How long the header's export lines may take in a shell (they run `openssl rand`). */
const EXPORTS_TIMEOUT_MS = 10_000;

export async function composeText(): Promise<string> {
  return readFile(COMPOSE_PATH, 'utf8');
}

/** The file parsed, with YAML merge keys (`<<: *anchor`) applied as Compose applies them, nothing interpolated. */
export function parseCompose<T>(text: string): T {
  return parse(text, { merge: true }) as T;
}

/** The file as Compose runs it with `env` (throws what Compose would when a required variable is missing). */
export function composeWith<T>(text: string, env: Record<string, string | undefined>): T {
  return interpolateAll(parseCompose<T>(text), env);
}

/** The `#   export NAME=...` lines at the top of the file, in order. */
export function headerExports(text: string): string[] {
  const header = text.slice(0, text.search(/^[^#\n]/m));
  return [...header.matchAll(/^#\s+(export\s+[A-Z_]+=.*)$/gm)].map((m) => m[1]!.trim());
}

/**
 * The variables the header's export lines set, run in `sh` exactly as written, so that the quoting an operator
 * copies is the quoting tested.
 */
export function operatorEnv(text: string): Record<string, string> {
  const lines = headerExports(text);
  const names = lines.map((line) => /^export\s+([A-Z_]+)=/.exec(line)![1]!);
  const script = ['set -eu', ...lines, `printf '%s\\0' ${names.map((n) => `"$${n}"`).join(' ')}`].join('\n');
  const output = execFileSync('sh', ['-c', script], { encoding: 'utf8', timeout: EXPORTS_TIMEOUT_MS, env: { PATH: process.env['PATH'] } });
  const values = output.split('\0').slice(0, names.length);
  return Object.fromEntries(names.map((name, i) => [name, values[i]!]));
}
