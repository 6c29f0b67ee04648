/**
 * The gateway's HTTP app: routes, the error table, 404 and 405.
 */
import { Hono } from 'hono';
import { getPath } from 'hono/utils/url';
import { StrataError } from '../core/errors.js';
import { installAccessControl } from './access.js';
import { installBodyBudget } from './body-budget.js';
import { registerAdminRoutes } from './admin-routes.js';
import { registerPolicyRoutes } from './policy-routes.js';
import { registerDocsRoutes } from './docs-routes.js';
import { checkRequestOf, documentPlainRoutes, guardPlainRoutes, metricsRoute, requestStatsRoute } from './plain-route-docs.js';
import { registerDocumentRoutes } from './document-routes.js';
import { errorBody, errorResponse } from './errors.js';
import type { GatewayDeps } from './gateway-deps.js';
import { registerOpsRoutes } from './ops-routes.js';
import { registerConsoleRoutes } from '../console/console-routes.js';
import { registerHealerRoutes } from './healer-routes.js';
import { installRequestStats } from './request-stats.js';
import { registerWatchRoutes } from './watch-routes.js';
import { rawRequestPath } from './request.js';
import { instrumentGatewayApp, type GatewayObservability } from '../metrics/http-metrics.js';
import { OpenAPIHono, type GatewayApp } from './route-definition.js';

/** Paths and the methods they accept, so that a wrong method is told 405 with the right ones in Allow. */
const ROUTE_METHODS: readonly [RegExp, string][] = [
  [/^\/write$/, 'POST'],
  [/^\/read\/.+/, 'GET, HEAD'],
  [/^\/patch\/.+/, 'PATCH'],
  [/^\/delete\/.+/, 'DELETE'],
  [/^\/stat\/.+/, 'GET, HEAD'],
  [/^\/list$/, 'GET, HEAD'],
  [/^\/health(\/live|\/ready)?$/, 'GET, HEAD'],
  [/^\/cluster$/, 'GET, HEAD'],
  [/^\/node_status$/, 'GET, HEAD'],
  [/^\/storage_usage$/, 'GET, HEAD'],
  [/^\/policy(\/.*)?$/, 'GET, HEAD, PUT'],
  [/^\/metrics$/, 'GET, HEAD'],
  [/^\/(openapi\.json|docs(\/[^/]+)?)$/, 'GET, HEAD'],
  [/^\/watch$/, 'GET'],
  [/^\/healer$/, 'GET, HEAD'],
  [/^\/request_stats$/, 'GET, HEAD'],
  [/^\/(console\/.*)?$/, 'GET, HEAD'],
];

export function createGatewayApp(
  deps: GatewayDeps,
  extras: { repairBacklog?: () => number | null; observability?: GatewayObservability } = {},
): Hono {
  // Route on the request target as sent, not on the URL with its dot segments removed (see rawRequestPath).
  // OpenAPIHono: a Hono that also holds the route definitions GET /openapi.json is generated from.
  const app: GatewayApp = new OpenAPIHono({
    getPath: (request, options) => getPath({ url: `http://gateway${rawRequestPath(request.url, options?.env)}` } as Request),
  });
  // First of all: request ids, request logs and metrics wrap every other middleware; /metrics needs no API key.
  if (extras.observability) instrumentGatewayApp(app, deps.log, extras.observability, checkRequestOf(metricsRoute));
  installRequestStats(app, deps.clock, checkRequestOf(requestStatsRoute));
  // The console's static assets hold no data: registered before access control, they load without an API key.
  registerConsoleRoutes(app);
  // Before any route: API keys, rate limits and the in-flight bound apply to every route but /health*.
  installAccessControl(app, { settings: deps.config, clock: deps.clock });
  installBodyBudget(app, deps.bodies);
  // Every route takes exactly the query parameters it documents: the plain routes' check comes before them.
  guardPlainRoutes(app);
  registerDocumentRoutes(app, deps);
  registerOpsRoutes(app, deps, extras);
  registerAdminRoutes(app, deps);
  registerPolicyRoutes(app, deps);
  registerDocsRoutes(app);
  registerWatchRoutes(app, deps);
  registerHealerRoutes(app, deps, extras);
  // Last: the definitions of the routes above that are plain hono handlers.
  documentPlainRoutes(app);

  app.notFound((c) => {
    const path = c.req.path;
    for (const [pattern, methods] of ROUTE_METHODS) {
      // A method the path's route takes that still found nothing (`GET /console/nothing`) is a path no route serves.
      if (pattern.test(path) && !methods.split(', ').includes(c.req.method)) {
        c.header('Allow', methods);
        return c.json(errorBody('METHOD_NOT_ALLOWED', `${c.req.method} is not allowed on ${path.split('/').slice(0, 2).join('/')}; use ${methods}`), 405);
      }
    }
    if (/^\/(read|patch|delete|stat)\/?$/.test(path)) {
      return c.json(errorBody('INVALID_KEY', `a key is required: ${path.replace(/\/$/, '')}/<url-encoded key>`), 400);
    }
    return c.json(errorBody('ROUTE_NOT_FOUND', `no route ${c.req.method} ${path}; the API is at /docs (and docs/api.md)`), 404);
  });

  app.onError((error, c) => errorResponse(c, error, deps.log));
  return app;
}

export { StrataError };
