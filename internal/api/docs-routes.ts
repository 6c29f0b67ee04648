/**
 * The API's own description: GET /openapi.json, generated from the route definitions (route-definition.ts) the
 * first time it is asked for, and GET /docs, Swagger UI on that document. Swagger UI's files come from the
 * swagger-ui-dist package and are served by the gateway itself, so the page works without internet access.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Context } from 'hono';
import { StrataError } from '../core/errors.js';
import { packageInfo } from '../core/package-info.js';
import { checked, createRoute, defineRoute, errorResponses, z, type GatewayApp, type ResponseHeaders } from './route-definition.js';

/** The OpenAPI version of the document (3.1: JSON Schema 2020-12 for bodies, `null` as a type). */
export const OPENAPI_VERSION = '3.1.0';

/** Swagger UI files /docs/{asset} serves, with their media types. Nothing else from the package is reachable. */
const UI_ASSETS: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};
/** Our start-up script for the page (not part of swagger-ui-dist). */
const INIT_ASSET = 'init.js';

/** Clients revalidate with If-None-Match (answered 304) rather than keep a copy across a gateway upgrade. */
const CACHE_CONTROL = 'no-cache';

const tags = ['documentation'];
const IfNoneMatch = checked(parseEntityTags).openapi({ description: 'the ETag of a copy the client holds: 304 when it is current' });
const etagHeaders: ResponseHeaders = { ETag: { description: 'a hash of the content', schema: { type: 'string' } } };

export const openApiRoute = createRoute({
  method: 'get',
  path: '/openapi.json',
  tags,
  summary: 'This document: OpenAPI 3.1, generated from the gateway\'s route definitions',
  request: { headers: z.object({ 'If-None-Match': IfNoneMatch }) },
  responses: {
    200: {
      description: 'The OpenAPI document',
      headers: etagHeaders,
      content: { 'application/json': { schema: { type: 'object', required: ['openapi', 'info', 'paths'] } } },
    },
    304: { description: 'Not modified', headers: etagHeaders },
  },
});

export const docsRoute = createRoute({
  method: 'get',
  path: '/docs',
  tags,
  summary: 'Interactive API documentation (Swagger UI) for this document',
  request: { headers: z.object({ 'If-None-Match': IfNoneMatch }) },
  responses: {
    200: { description: 'An HTML page', headers: etagHeaders, content: { 'text/html': { schema: { type: 'string' } } } },
    304: { description: 'Not modified', headers: etagHeaders },
  },
});

const assetNames = [...Object.keys(UI_ASSETS), INIT_ASSET];
export const docsAssetRoute = createRoute({
  method: 'get',
  path: '/docs/{asset}',
  tags,
  summary: 'The files of the /docs page',
  request: {
    params: z.object({
      asset: checked((name) => {
        if (name === undefined || !assetNames.includes(name)) {
          throw new StrataError('ROUTE_NOT_FOUND', `no file /docs/${String(name).slice(0, 100)}; the page at /docs loads ${assetNames.join(', ')}`);
        }
        return name;
      }).openapi({ enum: assetNames }),
    }),
    headers: z.object({ 'If-None-Match': IfNoneMatch }),
  },
  responses: {
    200: {
      description: 'The file',
      headers: etagHeaders,
      content: {
        'text/css': { schema: { type: 'string' } },
        'text/javascript': { schema: { type: 'string' } },
        'image/png': { schema: { type: 'string', contentEncoding: 'binary' } },
      },
    },
    304: { description: 'Not modified', headers: etagHeaders },
    ...errorResponses('ROUTE_NOT_FOUND'),
  },
});

interface Cached {
  body: Uint8Array<ArrayBuffer>;
  etag: string;
  type: string;
}

function cached(body: Uint8Array<ArrayBuffer>, type: string): Cached {
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** `If-None-Match`: `*`, or the opaque tags of a list of (weak or strong) entity tags. */
function parseEntityTags(header: string | undefined): ReadonlySet<string> | '*' | undefined {
  if (header === undefined) return undefined;
  if (header.trim() === '*') return '*';
  return new Set([...header.matchAll(/(?:W\/)?"([^"]*)"/g)].map((m) => m[1]!));
}

/** Answers 304 when If-None-Match names the content's ETag, else the content; both with ETag and Cache-Control. */
function sendCached(c: Context, content: Cached, ifNoneMatch: ReadonlySet<string> | '*' | undefined): Response {
  c.header('ETag', content.etag);
  c.header('Cache-Control', CACHE_CONTROL);
  if (ifNoneMatch === '*' || ifNoneMatch?.has(content.etag.slice(1, -1))) return c.body(null, 304);
  c.header('Content-Type', content.type);
  return c.body(content.body, 200);
}

/** The package's version, for `info.version`. */
function packageVersion(): string {
  return packageInfo().version;
}

function swaggerUiDirectory(): string {
  return path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Strata API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/swagger-ui-standalone-preset.js"></script>
<script src="docs/${INIT_ASSET}"></script>
</body>
</html>
`;

// Relative URLs throughout, so that the page also works behind a proxy that mounts the gateway under a prefix.
const INIT_SCRIPT = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: 'openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout',
  });
});
`;

const DESCRIPTION = [
  'A field-level hybrid JSON object store: hot fields replicated three times, the rest Reed-Solomon 4+2.',
  'Every GET route also answers HEAD. Errors are `{"error": {"code", "message"}}` with stable codes; a route that',
  'does not exist is 404 ROUTE_NOT_FOUND and a method a route does not take is 405 METHOD_NOT_ALLOWED with `Allow`.',
  'See docs/api.md for the full contract.',
].join(' ');

export function registerDocsRoutes(app: GatewayApp): void {
  const text = (s: string) => new TextEncoder().encode(s) as Uint8Array<ArrayBuffer>;
  // Generated on first use: every route is registered by then, and a gateway nobody asks pays nothing.
  let document: Cached | null = null;
  const openApiDocument = (): Cached => {
    document ??= cached(
      text(JSON.stringify(app.getOpenAPI31Document({
        openapi: OPENAPI_VERSION,
        info: { title: 'Strata', version: packageVersion(), description: DESCRIPTION },
        servers: [{ url: '/' }],
      }))),
      'application/json',
    );
    return document;
  };
  const page = cached(text(DOCS_PAGE), 'text/html; charset=utf-8');
  const assets = new Map<string, Cached>([[INIT_ASSET, cached(text(INIT_SCRIPT), 'text/javascript; charset=utf-8')]]);
  const asset = (name: string): Cached => {
    let content = assets.get(name);
    if (content === undefined) {
      const bytes = readFileSync(path.join(swaggerUiDirectory(), name));
      content = cached(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Uint8Array<ArrayBuffer>, UI_ASSETS[name]!);
      assets.set(name, content);
    }
    return content;
  };

  defineRoute(app, openApiRoute, (c, { headers }) => sendCached(c, openApiDocument(), headers['If-None-Match']));
  defineRoute(app, docsRoute, (c, { headers }) => sendCached(c, page, headers['If-None-Match']));
  defineRoute(app, docsAssetRoute, (c, { params, headers }) => sendCached(c, asset(params.asset), headers['If-None-Match']));
}
