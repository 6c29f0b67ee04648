/**
 * The gateway's HTTP app: routes, the error table, 404 and 405.
 */
import { Hono } from 'hono';
import { getPath } from 'hono/utils/url';
import { StrataError } from '../core/errors.js';
import { registerAdminRoutes } from './admin-routes.js';
import { registerDocumentRoutes } from './document-routes.js';
import { errorBody, errorResponse } from './errors.js';
import type { GatewayDeps } from './gateway-deps.js';
import { registerOpsRoutes } from './ops-routes.js';
import { rawRequestPath } from './request.js';

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
];

export function createGatewayApp(deps: GatewayDeps, extras: { repairBacklog?: () => number | null } = {}): Hono {
  // Route on the request target as sent, not on the URL with its dot segments removed (see rawRequestPath).
  const app = new Hono({
    getPath: (request, options) => getPath({ url: `http://gateway${rawRequestPath(request.url, options?.env)}` } as Request),
  });
  registerDocumentRoutes(app, deps);
  registerOpsRoutes(app, deps, extras);
  registerAdminRoutes(app, deps);

  app.notFound((c) => {
    const path = c.req.path;
    for (const [pattern, methods] of ROUTE_METHODS) {
      if (pattern.test(path)) {
        c.header('Allow', methods);
        return c.json(errorBody('METHOD_NOT_ALLOWED', `${c.req.method} is not allowed on ${path.split('/').slice(0, 2).join('/')}; use ${methods}`), 405);
      }
    }
    if (/^\/(read|patch|delete|stat)\/?$/.test(path)) {
      return c.json(errorBody('INVALID_KEY', `a key is required: ${path.replace(/\/$/, '')}/<url-encoded key>`), 400);
    }
    return c.json(errorBody('ROUTE_NOT_FOUND', `no route ${c.req.method} ${path}; see the API in the README`), 404);
  });

  app.onError((error, c) => errorResponse(c, error, deps.log));
  return app;
}

export { StrataError };
