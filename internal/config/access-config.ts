/**
 * The access-control, TLS and load-limit part of the configuration (read by config.ts, which owns process.env):
 * client API keys, rate limits, the bound on requests in flight, and the certificate files. Secrets only ever
 * come from here, that is from the environment or a file it names, never from the repository.
 *
 * API keys (STRATA_API_KEYS: JSON inline; STRATA_API_KEYS_FILE: a path to the same JSON) are a list of
 *   {"id": "app-1", "secret": "<at least 16 characters>" | "sha256": "<hex of sha256(secret)>",
 *    "permissions": ["read", "write", "admin"], "prefix": "tenant-a:", "rate_per_sec": 50, "burst": 100}
 * (`prefix`, `rate_per_sec` and `burst` optional), or an object {"keys": [...]} holding that list.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Most API keys one gateway accepts: each request compares its key with all of them (constant time). */
export const API_KEYS_MAX = 1000;
/** Buckets kept by the rate limiter at most (one per API key or client address); idle ones are evicted first. */
export const RATE_LIMIT_CLIENTS_MAX_DEFAULT = 100_000;
/** Requests a gateway handles at once (health checks excluded); beyond it 503 OVERLOADED. */
export const REQUESTS_IN_FLIGHT_MAX_DEFAULT = 256;
/** An API keys file larger than this is refused (it is read whole at start-up). */
const API_KEYS_FILE_BYTES_MAX = 4 * 1024 * 1024;
const SECRET_CHARS_MIN = 16;

export const API_PERMISSIONS = ['read', 'write', 'admin'] as const;
export type ApiPermission = (typeof API_PERMISSIONS)[number];

export interface ApiKeyConfig {
  id: string;
  /** sha256 of the secret: the secret itself is not kept once hashed. */
  secretSha256: Buffer;
  permissions: ReadonlySet<ApiPermission>;
  /** The key may touch only document keys starting with this (and list only prefixes inside it); null = all. */
  prefix: string | null;
  /** This key's own rate limit; null = the default (STRATA_RATE_LIMIT_PER_SEC / _BURST). */
  ratePerSec: number | null;
  burst: number | null;
}

export interface AccessSettings {
  /** Client API keys; empty = the gateway is open (the all-in-one quick start needs no setup). */
  apiKeys: readonly ApiKeyConfig[];
  /** Requests per second per API key (or per client address when there are no keys); 0 = no rate limit. */
  rateLimitPerSec: number;
  /** Requests a client may send at once after being idle (token bucket size). */
  rateLimitBurst: number;
  rateLimitClientsMax: number;
  /** Take the client address for per-address limits from the last X-Forwarded-For entry (behind nginx). */
  trustForwardedFor: boolean;
  requestsInFlightMax: number;
  /** PEM files: the server certificate and key (HTTPS for the gateway and storage nodes) ... */
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
  /** ... and the CA that node clients verify storage nodes with (internal traffic); null = system CAs. */
  tlsCaFile: string | null;
}

type Env = Record<string, string | undefined>;

/** The access settings from `env`; `fail` builds the error to throw (config.ts's ConfigError). */
export function accessSettings(env: Env, fail: (message: string) => Error): AccessSettings {
  const rateLimitPerSec = numberVar(env, 'STRATA_RATE_LIMIT_PER_SEC', 0, 0, 1_000_000, fail);
  const settings: AccessSettings = {
    apiKeys: apiKeysVar(env, fail),
    rateLimitPerSec,
    // A burst of two seconds' worth by default, and at least one request.
    rateLimitBurst: numberVar(env, 'STRATA_RATE_LIMIT_BURST', Math.max(1, Math.ceil(rateLimitPerSec * 2)), 1, 10_000_000, fail),
    rateLimitClientsMax: numberVar(env, 'STRATA_RATE_LIMIT_CLIENTS_MAX', RATE_LIMIT_CLIENTS_MAX_DEFAULT, 1, 10_000_000, fail, true),
    trustForwardedFor: booleanVar(env, 'STRATA_TRUST_FORWARDED_FOR', fail),
    requestsInFlightMax: numberVar(env, 'STRATA_REQUESTS_IN_FLIGHT_MAX', REQUESTS_IN_FLIGHT_MAX_DEFAULT, 1, 1_000_000, fail, true),
    tlsCertFile: pathVar(env, 'STRATA_TLS_CERT'),
    tlsKeyFile: pathVar(env, 'STRATA_TLS_KEY'),
    tlsCaFile: pathVar(env, 'STRATA_TLS_CA'),
  };
  if ((settings.tlsCertFile === null) !== (settings.tlsKeyFile === null)) {
    throw fail('STRATA_TLS_CERT and STRATA_TLS_KEY must be set together (the certificate and its private key, PEM files)');
  }
  return settings;
}

function numberVar(env: Env, name: string, fallback: number, min: number, max: number, fail: (m: string) => Error, whole = false): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const pattern = whole ? /^\d+$/ : /^\d+(\.\d+)?$/;
  if (!pattern.test(raw.trim())) throw fail(`${name} must be a ${whole ? 'whole' : 'non-negative'} number, got "${raw}"`);
  const value = Number(raw.trim());
  if (value < min || value > max) throw fail(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function booleanVar(env: Env, name: string, fail: (m: string) => Error): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false') return false;
  if (raw === '1' || raw === 'true') return true;
  throw fail(`${name} must be 1/true or 0/false, got "${env[name]}"`);
}

function pathVar(env: Env, name: string): string | null {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? null : raw.trim();
}

function apiKeysVar(env: Env, fail: (m: string) => Error): ApiKeyConfig[] {
  const inline = env['STRATA_API_KEYS'];
  const file = env['STRATA_API_KEYS_FILE'];
  const hasInline = inline !== undefined && inline.trim() !== '';
  const hasFile = file !== undefined && file.trim() !== '';
  if (hasInline && hasFile) throw fail('set STRATA_API_KEYS or STRATA_API_KEYS_FILE, not both');
  if (!hasInline && !hasFile) return [];
  let text: string;
  let where: string;
  if (hasFile) {
    where = `STRATA_API_KEYS_FILE (${file!.trim()})`;
    try {
      const data = readFileSync(file!.trim());
      if (data.length > API_KEYS_FILE_BYTES_MAX) throw new Error(`it is larger than ${API_KEYS_FILE_BYTES_MAX} bytes`);
      text = data.toString('utf8');
    } catch (error) {
      throw fail(`${where} cannot be read: ${(error as Error).message}`);
    }
  } else {
    where = 'STRATA_API_KEYS';
    text = inline!;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw fail(`${where} is not JSON (${(error as Error).message}); expected [{"id": ..., "secret" or "sha256": ..., "permissions": [...]}]`);
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) throw fail(`${where} must be a JSON list of keys, or {"keys": [...]}`);
  if (list.length > API_KEYS_MAX) throw fail(`${where} lists ${list.length} keys; at most ${API_KEYS_MAX}`);
  const keys = list.map((entry, index) => apiKeyEntry(entry, `${where}[${index}]`, fail));
  const ids = new Set<string>();
  const digests = new Set<string>();
  for (const key of keys) {
    if (ids.has(key.id)) throw fail(`${where}: the id "${key.id}" appears twice`);
    ids.add(key.id);
    const digest = key.secretSha256.toString('hex');
    // Two ids with one secret would make the key's identity (and so its permissions) ambiguous.
    if (digests.has(digest)) throw fail(`${where}: the key "${key.id}" has the same secret as another key`);
    digests.add(digest);
  }
  return keys;
}

function apiKeyEntry(entry: unknown, where: string, fail: (m: string) => Error): ApiKeyConfig {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw fail(`${where} must be an object`);
  const e = entry as Record<string, unknown>;
  const known = new Set(['id', 'secret', 'sha256', 'permissions', 'prefix', 'rate_per_sec', 'burst']);
  for (const name of Object.keys(e)) {
    if (!known.has(name)) throw fail(`${where}: unknown field "${name}" (known: ${[...known].join(', ')})`);
  }
  const id = e['id'];
  if (typeof id !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(id)) throw fail(`${where}.id must be 1 to 64 of A-Z a-z 0-9 _ . -`);
  const at = `${where} ("${id}")`;
  let secretSha256: Buffer;
  if (e['secret'] !== undefined && e['sha256'] !== undefined) throw fail(`${at}: give "secret" or "sha256", not both`);
  if (typeof e['secret'] === 'string') {
    if (e['secret'].length < SECRET_CHARS_MIN) throw fail(`${at}.secret must be at least ${SECRET_CHARS_MIN} characters`);
    if (/\s|,/.test(e['secret'])) throw fail(`${at}.secret must not contain white space or commas (it travels in a header)`);
    secretSha256 = createHash('sha256').update(e['secret'], 'utf8').digest();
  } else if (typeof e['sha256'] === 'string' && /^[0-9a-fA-F]{64}$/.test(e['sha256'])) {
    secretSha256 = Buffer.from(e['sha256'], 'hex');
  } else {
    throw fail(`${at} needs "secret" (at least ${SECRET_CHARS_MIN} characters) or "sha256" (64 hex digits of sha256(secret))`);
  }
  const permissions = e['permissions'];
  if (!Array.isArray(permissions) || permissions.length === 0 || !permissions.every((p) => (API_PERMISSIONS as readonly unknown[]).includes(p))) {
    throw fail(`${at}.permissions must be a non-empty list of ${API_PERMISSIONS.join(', ')}`);
  }
  const prefix = e['prefix'];
  if (prefix !== undefined && (typeof prefix !== 'string' || prefix === '')) throw fail(`${at}.prefix must be a non-empty string`);
  const rate = e['rate_per_sec'];
  if (rate !== undefined && (typeof rate !== 'number' || !(rate > 0) || rate > 1_000_000)) throw fail(`${at}.rate_per_sec must be a number in (0, 1000000]`);
  const burst = e['burst'];
  if (burst !== undefined && (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1 || burst > 10_000_000)) {
    throw fail(`${at}.burst must be a whole number in [1, 10000000]`);
  }
  // Admin routes act on the whole cluster, which a key confined to a prefix must not.
  if (typeof prefix === 'string' && (permissions as string[]).includes('admin')) {
    throw fail(`${at}: a key with a prefix cannot have the admin permission (admin routes act on the whole cluster)`);
  }
  const ratePerSec = typeof rate === 'number' ? rate : null;
  return {
    id,
    secretSha256,
    permissions: new Set(permissions as ApiPermission[]),
    prefix: typeof prefix === 'string' ? prefix : null,
    ratePerSec,
    burst: typeof burst === 'number' ? burst : ratePerSec === null ? null : Math.max(1, Math.ceil(ratePerSec * 2)),
  };
}
