/**
 * Access control and load shedding in front of every gateway route, as one hono middleware:
 *
 * 1. `/health*` passes untouched: load balancers and orchestrators probe it without credentials, and a busy
 *    gateway must still say whether it is alive.
 * 2. Authentication, when API keys are configured: no key or an unknown one is 401 UNAUTHORIZED with
 *    `WWW-Authenticate: Bearer`.
 * 3. Rate limiting, when a rate is configured (or the key has its own): a token bucket per key, or per client
 *    address without keys; an empty bucket is 429 RATE_LIMITED with `Retry-After` in whole seconds until a
 *    token is back.
 * 4. Authorization: the route's permission (read, write or admin) and the key's prefix scope; 403 FORBIDDEN.
 * 5. A bound on requests in flight: beyond it 503 OVERLOADED with `Retry-After`, so that a burst queues in the
 *    clients (and at other gateways) instead of in this process's memory.
 *
 * Without configuration only the in-flight bound applies and the gateway is as open as before.
 */
import type { IncomingMessage } from 'node:http';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { AccessSettings, ApiKeyConfig, ApiPermission } from '../config/access-config.js';
import type { Clock } from '../core/clock.js';
import { ERROR_STATUS, type ErrorCode } from '../core/errors.js';
import { ApiKeyTable, presentedApiKey } from './api-keys.js';
import { RETRY_AFTER_SECONDS, errorBody } from './errors.js';
import { TokenBucketLimiter, type RateLimit } from './rate-limiter.js';
import { decodeComponent, queryValue, rawQuery, rawRequestPath } from './request.js';

export interface AccessControlOptions {
  settings: AccessSettings;
  clock: Clock;
}

/** What a route needs: a permission, and the document key or key prefix it touches (for prefix scopes). */
interface Requirement {
  permission: ApiPermission;
  scope: { key: string } | { prefix: string } | null;
}

/** The live state of the middleware, for tests and diagnostics. */
export interface AccessControlState {
  readonly inFlight: number;
  readonly rateLimitBuckets: number;
}

/** The probes that stay open: exactly these paths as sent (which the router's decoding leaves unchanged). */
const HEALTH_PATH = /^\/health(\/live|\/ready)?$/;
/** Routes that act on one document named in the path after this prefix, and the permission they need. */
const KEY_PATH_ROUTES: ReadonlyMap<string, { prefix: string; permission: ApiPermission }> = new Map([
  ['/read/*', { prefix: '/read/', permission: 'read' }],
  ['/stat/*', { prefix: '/stat/', permission: 'read' }],
  ['/patch/*', { prefix: '/patch/', permission: 'write' }],
  ['/delete/*', { prefix: '/delete/', permission: 'write' }],
]);
/** Routes that act on the keys under their `prefix` query parameter (empty = all keys). */
const PREFIX_ROUTES: ReadonlySet<string> = new Set(['/list', '/watch']);
const RANK: Record<ApiPermission, number> = { read: 0, write: 1, admin: 2 };

/** Where the middleware leaves the id of the request's API key for the routes (idempotency fingerprints). */
const API_KEY_ID_VARIABLE = 'strataApiKeyId';

/** The id (never the secret) of the API key `c` was authenticated with; null when the gateway has no keys. */
export function authenticatedKeyId(c: Context): string | null {
  const id: unknown = c.get(API_KEY_ID_VARIABLE);
  return typeof id === 'string' ? id : null;
}

export function installAccessControl(app: Hono, options: AccessControlOptions): AccessControlState {
  const { settings, clock } = options;
  const keys = new ApiKeyTable(settings.apiKeys);
  const limiter = new TokenBucketLimiter({ clock, clientsMax: settings.rateLimitClientsMax });
  let inFlight = 0;

  const middleware: MiddlewareHandler = async (c, next) => {
    const path = rawRequestPath(c.req.url, c.env);
    if (HEALTH_PATH.test(path)) return next();

    let key: ApiKeyConfig | null = null;
    if (keys.enabled) {
      const presented = presentedApiKey(c.req.header('authorization'), c.req.header('x-api-key'));
      if (presented === null) {
        return refuse(c, 'UNAUTHORIZED', 'an API key is required: send "Authorization: Bearer <key>" or "X-Api-Key: <key>"', {
          'WWW-Authenticate': 'Bearer realm="strata"',
        });
      }
      key = keys.find(presented);
      if (key === null) {
        return refuse(c, 'UNAUTHORIZED', 'the API key is not valid', {
          'WWW-Authenticate': 'Bearer realm="strata", error="invalid_token"',
        });
      }
      c.set(API_KEY_ID_VARIABLE, key.id);
    }

    const limit = rateLimitFor(settings, key);
    if (limit !== null) {
      const client = key !== null ? `key:${key.id}` : `addr:${clientAddress(c, settings.trustForwardedFor)}`;
      const decision = limiter.take(client, limit);
      if (!decision.allowed) {
        const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
        const who = key !== null ? `API key "${key.id}"` : 'this client';
        const message = `too many requests from ${who}: the limit is ${limit.ratePerSec} per second (bursts of ${limit.burst}); retry in ${seconds} s`;
        return refuse(c, 'RATE_LIMITED', message, { 'Retry-After': String(seconds) });
      }
    }

    if (key !== null) {
      const problem = forbidden(key, requirement(c, path));
      if (problem !== null) return refuse(c, 'FORBIDDEN', problem);
    }

    if (inFlight >= settings.requestsInFlightMax) {
      const message = `this gateway is already handling ${settings.requestsInFlightMax} requests (STRATA_REQUESTS_IN_FLIGHT_MAX); retry shortly`;
      return refuse(c, 'OVERLOADED', message, { 'Retry-After': String(RETRY_AFTER_SECONDS) });
    }
    inFlight++;
    try {
      await next();
    } finally {
      inFlight--;
    }
  };
  app.use('*', middleware);
  return {
    get inFlight() {
      return inFlight;
    },
    get rateLimitBuckets() {
      return limiter.size;
    },
  };
}

function refuse(c: Context, code: ErrorCode, message: string, headers: Record<string, string> = {}): Response {
  for (const [name, value] of Object.entries(headers)) c.header(name, value);
  return c.json(errorBody(code, message), ERROR_STATUS[code] as 401);
}

function rateLimitFor(settings: AccessSettings, key: ApiKeyConfig | null): RateLimit | null {
  if (key !== null && key.ratePerSec !== null) return { ratePerSec: key.ratePerSec, burst: key.burst ?? 1 };
  if (settings.rateLimitPerSec > 0) return { ratePerSec: settings.rateLimitPerSec, burst: settings.rateLimitBurst };
  return null;
}

/**
 * The client's address for per-address buckets: the peer of the connection, or, behind a proxy that is trusted
 * to append it (nginx's $proxy_add_x_forwarded_for), the last X-Forwarded-For entry. Earlier entries are the
 * client's own say and are ignored.
 */
function clientAddress(c: Context, trustForwardedFor: boolean): string {
  if (trustForwardedFor) {
    const forwarded = c.req.header('x-forwarded-for');
    const last = forwarded?.split(',').pop()?.trim();
    if (last !== undefined && last !== '') return last;
  }
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket?.remoteAddress ?? 'unknown';
}

/**
 * The permission and scope of a request, from the routes the router matched (not from the path as sent: the
 * router decodes it, so `/%61dmin/nodes` is the admin route). A route not listed here needs `read` when it only
 * reads (GET, HEAD) and `admin` otherwise, so a route added later is never less protected than it should be.
 *
 * Document keys and prefixes are taken as the routes take them: the first `key=` of /write, the raw path after the
 * route's prefix, the `prefix` query parameter. A key route whose raw path does not start with its prefix literally
 * (an encoded route name) gets an impossible scope, so a prefix-scoped key is refused rather than left to guess
 * which key the route will see. One that cannot be decoded gets no scope; its route answers 400 without acting.
 */
function requirement(c: Context, path: string): Requirement {
  let permission: ApiPermission = 'read';
  let scope: Requirement['scope'] = null;
  for (const route of matchedRoutes(c)) {
    if (route.path === '*' || route.path === '/*') continue; // middleware, such as this one
    let needed: ApiPermission;
    const keyRoute = KEY_PATH_ROUTES.get(route.path);
    if (route.path === '/admin' || route.path.startsWith('/admin/')) {
      needed = 'admin';
    } else if (route.path === '/write') {
      needed = 'write';
      scope ??= keyScope(() => queryValue(rawQuery(c), 'key'));
    } else if (keyRoute !== undefined) {
      needed = keyRoute.permission;
      scope ??= path.startsWith(keyRoute.prefix)
        ? keyScope(() => decodeComponent(path.slice(keyRoute.prefix.length), 'key', false))
        : { key: '' };
    } else if (PREFIX_ROUTES.has(route.path)) {
      needed = 'read';
      const prefix = safely(() => queryValue(rawQuery(c), 'prefix'));
      scope ??= { prefix: prefix ?? '' };
    } else {
      needed = route.method === 'GET' || route.method === 'HEAD' ? 'read' : 'admin';
    }
    if (RANK[needed] > RANK[permission]) permission = needed;
  }
  return { permission, scope };
}

function keyScope(decode: () => string | undefined): { key: string } | null {
  const key = safely(decode);
  return key === undefined ? null : { key };
}

function safely<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/** Why `key` may not do what `need` says, or null when it may. */
function forbidden(key: ApiKeyConfig, need: Requirement): string | null {
  if (!key.permissions.has(need.permission)) {
    return `the API key "${key.id}" lacks the ${need.permission} permission (it has ${[...key.permissions].join(', ')})`;
  }
  if (key.prefix === null || need.scope === null) return null;
  if ('key' in need.scope) {
    if (need.scope.key.startsWith(key.prefix)) return null;
    return `the API key "${key.id}" may only touch keys starting with ${JSON.stringify(key.prefix)}`;
  }
  if (need.scope.prefix.startsWith(key.prefix)) return null;
  return `the API key "${key.id}" may only list keys starting with ${JSON.stringify(key.prefix)}: ask with prefix=${encodeURIComponent(key.prefix)}...`;
}
