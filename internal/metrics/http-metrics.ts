/**
 * Request instrumentation for the gateway's and the storage nodes' hono apps: a request id, one log line and the
 * request counters and latency histograms per request, and `GET /metrics` (Prometheus text format).
 *
 * Labels stay bounded: the route is the template the router matched (`/read/*`, `/v1/blobs/:id`), never the raw
 * path with its key or blob id; the method is one of the standard ones or OTHER; the strategy is one of the three
 * or `none` (requests that touch no document).
 */
import type { Context, Hono } from 'hono';
import { matchedRoutes, routePath } from 'hono/route';
import { Counter, Histogram, type Registry } from 'prom-client';
import { errorStatus } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { REQUEST_ID_HEADER, newRequestId, requestIdProblem, type RequestContext, type RequestScope } from '../log/request-context.js';
import type { NodeInstruments } from './node-metrics.js';
import { LATENCY_BUCKETS_SECONDS, renderMetrics, secondsSince } from './registry.js';

export const METRICS_PATH = '/metrics';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : 'OTHER';
}

/**
 * The route template of the request. Inside a middleware, after `next()`, hono's route index points at the last
 * handler that ran. When that is a catch-all middleware (access control answering 401 or 429, say), the request
 * is labelled with the most specific template it matched; a request that matched catch-alls only is `unmatched`
 * (the 404/405 handler answered it).
 */
function routeLabel(c: Context): string {
  const current = routePath(c);
  if (!isCatchAll(current)) return current;
  const matched = matchedRoutes(c);
  for (let i = matched.length - 1; i >= 0; i--) {
    const path = matched[i]!.path;
    if (!isCatchAll(path)) return path;
  }
  return 'unmatched';
}

function isCatchAll(path: string): boolean {
  return path === '' || path === '*' || path === '/*';
}

/**
 * Headers set with `c.header()` before `next()` are lost when a handler returns a Response it built itself, so the
 * header is checked on the final response (and the response copied when its headers are immutable).
 */
function ensureHeader(c: Context, name: string, value: string): void {
  if (c.res.headers.get(name) === value) return;
  try {
    c.res.headers.set(name, value);
  } catch {
    const copy = new Response(c.res.body, c.res);
    copy.headers.set(name, value);
    c.res = copy;
  }
}

/** The gateway's HTTP instruments, created once per registry. */
export class GatewayHttpMetrics {
  private readonly requests: Counter<'route' | 'method' | 'status' | 'strategy'>;
  private readonly requestSeconds: Histogram<'route' | 'method' | 'strategy'>;

  constructor(readonly registry: Registry) {
    this.requests = new Counter({
      name: 'strata_http_requests_total',
      help: 'Gateway HTTP requests by route template, method, status and document strategy (none when no document was involved).',
      labelNames: ['route', 'method', 'status', 'strategy'],
      registers: [registry],
    });
    this.requestSeconds = new Histogram({
      name: 'strata_http_request_duration_seconds',
      help: 'Gateway HTTP request latency by route template, method and document strategy.',
      labelNames: ['route', 'method', 'strategy'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers: [registry],
    });
  }

  observe(route: string, method: string, status: number, strategy: string, seconds: number): void {
    this.requests.inc({ route, method, status: String(status), strategy });
    this.requestSeconds.observe({ route, method, strategy }, seconds);
  }
}

export interface GatewayObservability {
  registry: Registry;
  http: GatewayHttpMetrics;
  context: RequestContext;
}

/**
 * Registers the gateway's request middleware and `GET /metrics` on `app`. Call it before any route, so that the
 * middleware wraps every request (404s and 405s included).
 */
export function instrumentGatewayApp(
  app: Hono,
  log: Logger,
  observability: GatewayObservability,
  /** Runs before `GET /metrics` answers; what it throws is the answer (the API's check of query parameters). */
  checkMetricsRequest: (c: Context) => void = () => undefined,
): void {
  const { http, context, registry } = observability;
  app.use('*', async (c, next) => {
    const startedNs = process.hrtime.bigint();
    const incoming = c.req.header(REQUEST_ID_HEADER);
    const problem = incoming === undefined ? null : requestIdProblem(incoming);
    const scope: RequestScope = { requestId: incoming !== undefined && problem === null ? incoming : newRequestId() };
    c.header(REQUEST_ID_HEADER, scope.requestId);
    try {
      if (problem !== null) {
        // Refused rather than replaced: a client that sends ids means to find them in the logs.
        c.res = c.json(
          { error: { code: 'INVALID_HEADER', message: `${problem}; send a safe id or none (the gateway then assigns one)` } },
          errorStatus('INVALID_HEADER') as 400,
        );
      } else {
        await context.run(scope, next);
      }
    } finally {
      ensureHeader(c, REQUEST_ID_HEADER, scope.requestId);
      const seconds = secondsSince(startedNs);
      const route = routeLabel(c);
      const method = methodLabel(c.req.method);
      const status = c.res.status;
      http.observe(route, method, status, scope.strategy ?? 'none', seconds);
      if (log.isLevelEnabled('info')) {
        log.info({ reqId: scope.requestId, method, route, status, durationMs: Math.round(seconds * 1e6) / 1e3 }, 'request');
      }
    }
  });
  app.get(METRICS_PATH, async (c) => {
    checkMetricsRequest(c);
    const { body, contentType } = await renderMetrics(registry);
    return c.body(body, 200, { 'content-type': contentType });
  });
}

/**
 * The storage node's request middleware and `GET /metrics`. The request id comes from the gateway (or healer)
 * that called; a node never makes one up, and an id that is not a safe one is left out of the log rather than
 * refused (the caller is our own code). Request lines are logged at debug level: a document write makes nine
 * node calls, so they are for following one request, not for always-on logging.
 */
export function instrumentNodeApp(app: Hono, log: Logger, metrics: NodeInstruments | undefined): void {
  app.use('*', async (c, next) => {
    const startedNs = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const seconds = secondsSince(startedNs);
      const route = routeLabel(c);
      const method = methodLabel(c.req.method);
      const status = c.res.status;
      metrics?.request({ route, method, status, seconds });
      const level = status >= 500 ? 'error' : 'debug';
      if (log.isLevelEnabled(level)) {
        const incoming = c.req.header(REQUEST_ID_HEADER);
        const reqId = incoming !== undefined && requestIdProblem(incoming) === null ? incoming : undefined;
        log[level]({ reqId, method, route, status, durationMs: Math.round(seconds * 1e6) / 1e3 }, 'node request');
      }
    }
  });
  if (metrics) {
    const registry = metrics.registry;
    // Served without the cluster token, like a health check: it names no keys, and Prometheus scrapes it as is.
    app.get(METRICS_PATH, async (c) => {
      const { body, contentType } = await renderMetrics(registry);
      return c.body(body, 200, { 'content-type': contentType });
    });
  }
}
