/**
 * Docker Compose's variable interpolation, so that tests can read docker-compose.yaml as Compose would with a
 * given environment: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
 * `${VAR:+replacement}`, `${VAR+replacement}` (defaults may nest), and `$$` for a literal `$`
 * (https://docs.docker.com/reference/compose-file/interpolation/). A required variable without a value throws
 * what `docker compose` prints and exits with.
 */

export class ComposeInterpolationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ComposeInterpolationError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;
const OPERATORS = [':-', '-', ':?', '?', ':+', '+'] as const;

/** `text` with every variable reference replaced from `env`. */
export function interpolate(text: string, env: Env): string {
  let result = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar === -1) return result + text.slice(i);
    result += text.slice(i, dollar);
    const next = text[dollar + 1];
    if (next === '$') {
      result += '$';
      i = dollar + 2;
    } else if (next === '{') {
      const close = matchingBrace(text, dollar + 2);
      result += expand(text.slice(dollar + 2, close), env);
      i = close + 1;
    } else {
      const name = NAME.exec(text.slice(dollar + 1))?.[0];
      result += name === undefined ? '$' : (env[name] ?? '');
      i = dollar + 1 + (name?.length ?? 0);
    }
  }
  return result;
}

/** Every string value of `value` (a parsed YAML document) interpolated; keys are left as they are, as Compose does. */
export function interpolateAll<T>(value: T, env: Env): T {
  if (typeof value === 'string') return interpolate(value, env) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => interpolateAll(item, env)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v, env)])) as T;
  }
  return value;
}

/** The names a `${...}` reference of `text` requires (`:?` or `?`), in order. */
export function requiredVariables(text: string): string[] {
  return [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*):?\?/g)].map((m) => m[1]!);
}

/** The index of the `}` closing the `${` whose body starts at `start`. */
function matchingBrace(text: string, start: number): number {
  let depth = 1;
  for (let i = start; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (text[i] === '}' && --depth === 0) {
      return i;
    }
  }
  throw new ComposeInterpolationError(`invalid interpolation format: "\${${text.slice(start)}" has no closing brace`);
}

function expand(body: string, env: Env): string {
  const name = NAME.exec(body)?.[0];
  if (name === undefined) throw new ComposeInterpolationError(`invalid interpolation format: "\${${body}}"`);
  const rest = body.slice(name.length);
  const value = env[name];
  if (rest === '') return value ?? '';
  const operator = OPERATORS.find((op) => rest.startsWith(op));
  if (operator === undefined) throw new ComposeInterpolationError(`invalid interpolation format: "\${${body}}"`);
  const argument = rest.slice(operator.length);
  const unset = value === undefined;
  const missing = operator.startsWith(':') ? unset || value === '' : unset;
  switch (operator) {
    case ':-':
    case '-':
      return missing ? interpolate(argument, env) : value!;
    case ':?':
    case '?':
      if (missing) throw new ComposeInterpolationError(`required variable ${name} is missing a value: ${interpolate(argument, env)}`);
      return value!;
    case ':+':
    case '+':
      return missing ? '' : interpolate(argument, env);
  }
}
