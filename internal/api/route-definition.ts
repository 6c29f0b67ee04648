/**
 * Route definitions: one `createRoute` object (@hono/zod-openapi) per operation, which both checks the operation's
 * requests and documents it (GET /openapi.json is generated from the definitions, see docs-routes.ts).
 *
 * Why `defineRoute` and not `app.openapi(route, handler)`: the latter's validators read hono's parsed query and
 * headers, would run JSON.parse on bodies, and clone every request to learn whether it has a body. The API routes
 * on the raw request path, splits field lists on literal commas before percent-decoding, parses documents
 * losslessly with internal/json/parse.ts (numbers as written, depth and member limits), and reads bodies once
 * within a byte limit. So `defineRoute`:
 * - registers the definition in the app's OpenAPI registry;
 * - routes the handler on the hono path (`/read/{key}` becomes `/read/*`: a key may contain `/`);
 * - before the handler, takes each path, query and header value the API's way (request.ts) and runs it through
 *   its schema, in the order the definition lists them. The schemas are `checked(parse)` strings whose transform
 *   is request.ts's validator, so a failure keeps its stable code and message and the handler gets typed values;
 * - checks Content-Type against the media types the body declares. Bodies are declared with plain JSON Schema
 *   for the document only: nothing here parses them.
 * The cost per request is one small map of the query and a zod parse per declared parameter.
 */
import type { Context } from 'hono';
import type { BlankEnv, BlankSchema } from 'hono/types';
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import { ERROR_STATUS, StrataError, type ErrorCode } from '../core/errors.js';
import { RETRY_AFTER_SECONDS } from './errors.js';
import { decodeComponent, rawQuery, rawRequestPath, requireMediaType } from './request.js';

export { OpenAPIHono, createRoute, z };

export type RouteConfig = Parameters<typeof createRoute>[0];
type ResponseConfig = Exclude<RouteConfig['responses'][string], { $ref: string }>;
export type ResponseHeaders = NonNullable<ResponseConfig['headers']>;
/** A plain JSON Schema object, for what the document declares but zod never parses (request bodies). */
type MediaTypeObject = Exclude<NonNullable<NonNullable<ResponseConfig['content']>[string]>, { $ref: string }>;
export type JsonSchema = Exclude<NonNullable<MediaTypeObject['schema']>, z.ZodType | { $ref: string }>;


/** The gateway's app: a Hono that also holds the route definitions GET /openapi.json is generated from. */
export type GatewayApp = OpenAPIHono<BlankEnv, BlankSchema, '/'>;

/** Query parameters that are field lists: split on literal commas first, then decoded (api.md "Field paths"). */
const RAW_QUERY_PARAMETERS: ReadonlySet<string> = new Set(['fields', 'hot_fields']);

/** The path parameter that holds a document key: everything after the route's prefix, decoded once. */
const KEY_PARAMETER = 'key';

/**
 * A string parameter (or header) whose rule is `parse`, one of request.ts's validators: it returns the typed
 * value, or throws a StrataError, which becomes a zod issue carrying the error's code and message. A parameter is
 * required in the document exactly when `parse(undefined)` throws.
 */
export function checked<T>(parse: (value: string | undefined) => T) {
  return z
    .string()
    .optional()
    .transform((value, ctx): T => {
      try {
        return parse(value);
      } catch (error) {
        if (!(error instanceof StrataError)) throw error;
        ctx.addIssue({ code: 'custom', message: error.message, params: { code: error.code } });
        return z.NEVER;
      }
    });
}

type SchemaOf<R extends RouteConfig, K extends 'params' | 'query' | 'headers'> = R['request'] extends { [P in K]?: infer S }
  ? NonNullable<S> extends z.ZodType
    ? z.output<NonNullable<S>>
    : Record<string, never>
  : Record<string, never>;

/** What a handler gets: the checked values, and the request's media type when the route has a body. */
export interface RouteInput<R extends RouteConfig> {
  params: SchemaOf<R, 'params'>;
  query: SchemaOf<R, 'query'>;
  headers: SchemaOf<R, 'headers'>;
  mediaType: string | null;
}

type Field = readonly [name: string, schema: z.ZodType];

function fieldsOf(schema: unknown): Field[] {
  if (schema === undefined) return [];
  if (!(schema instanceof z.ZodObject)) throw new Error('route definitions declare params, query and headers as z.object');
  return Object.entries(schema.shape as Record<string, z.ZodType>);
}

/** Registers `route` in the app's OpenAPI document and its handler on the router, behind the checks above. */
export function defineRoute<R extends RouteConfig>(
  app: GatewayApp,
  route: R,
  handler: (c: Context, input: RouteInput<R>) => Response | Promise<Response>,
): void {
  app.openAPIRegistry.registerPath(withUnknownParameter(route));
  const keyPrefix = route.path.endsWith(`/{${KEY_PARAMETER}}`) ? route.path.slice(0, -`{${KEY_PARAMETER}}`.length) : null;
  const honoPath = keyPrefix !== null ? `${keyPrefix}*` : route.path.replace(/\{([^}]+)\}/g, ':$1');
  const params = fieldsOf(route.request?.params);
  const query = fieldsOf(route.request?.query);
  const headers = fieldsOf(route.request?.headers);
  const mediaTypes = route.request?.body ? Object.keys(route.request.body.content) : null;

  const accepted = acceptedParameters(route);
  app.on(route.method.toUpperCase(), honoPath, (c) => {
    const values = c.req.url.includes('?') ? rawQuery(c) : NO_QUERY;
    refuseUnknown(values, accepted, route);
    const input = { params: {}, query: {}, headers: {}, mediaType: null } as {
      params: Record<string, unknown>;
      query: Record<string, unknown>;
      headers: Record<string, unknown>;
      mediaType: string | null;
    };
    for (const [name, schema] of params) {
      let raw: string | undefined;
      if (name === KEY_PARAMETER && keyPrefix !== null) {
        const rawPath = rawRequestPath(c.req.url, c.env);
        // The router matched a decoded path: `/%72ead/x` reaches `/read/*`. Only the route's literal prefix
        // leads to a key; anything else would cut the key at the wrong place (`/%72ead/x` is not key `d/x`).
        if (!rawPath.startsWith(keyPrefix)) {
          throw new StrataError('ROUTE_NOT_FOUND', `no route ${c.req.method} ${rawPath.slice(0, 64)}; spell the route ${keyPrefix} without percent-encoding`);
        }
        raw = decodeComponent(rawPath.slice(keyPrefix.length), 'key', false);
      } else {
        raw = c.req.param(name);
      }
      input.params[name] = check(schema, raw, 'INVALID_REQUEST', `path parameter ${name}`);
    }
    if (query.length > 0) {
      for (const [name, schema] of query) {
        const raw = values.get(name);
        const value = raw === undefined || RAW_QUERY_PARAMETERS.has(name)
          ? raw
          : decodeComponent(raw, name === KEY_PARAMETER ? 'key' : `query parameter ${name}`, true);
        input.query[name] = check(schema, value, 'INVALID_REQUEST', `query parameter ${name}`);
      }
    }
    if (mediaTypes !== null) input.mediaType = requireMediaType(c, mediaTypes);
    for (const [name, schema] of headers) {
      input.headers[name] = check(schema, c.req.header(name), 'INVALID_HEADER', `header ${name}`);
    }
    return handler(c, input as RouteInput<R>);
  });
}

const NO_QUERY: ReadonlyMap<string, string> = new Map();

/** `route` as documented: every route can answer 400 UNKNOWN_PARAMETER, beside the codes its definition lists. */
function withUnknownParameter(route: RouteConfig): RouteConfig {
  const existing = route.responses[400] as ResponseConfig | undefined;
  const codes = existing === undefined ? [] : errorCodesOf(existing);
  return { ...route, responses: { ...route.responses, 400: errorResponses(...codes, 'UNKNOWN_PARAMETER')[400]! } };
}

/** The codes an errorResponses() entry names. */
function errorCodesOf(response: ResponseConfig): ErrorCode[] {
  const media = response.content?.['application/json'];
  const schema = media !== undefined && 'schema' in media ? media.schema : undefined;
  const code = schema instanceof z.ZodObject ? (schema.shape as { error?: z.ZodObject }).error?.shape.code : undefined;
  if (!(code instanceof z.ZodEnum)) throw new Error('a 400 response must be made by errorResponses()');
  return code.options as ErrorCode[];
}

/** The query parameters `route` declares, in its order. */
function acceptedParameters(route: RouteConfig): readonly string[] {
  return fieldsOf(route.request?.query).map(([name]) => name);
}

function refuseUnknown(values: ReadonlyMap<string, string>, accepted: readonly string[], route: RouteConfig): void {
  for (const name of values.keys()) {
    if (accepted.includes(name)) continue;
    const takes = accepted.length === 0 ? 'takes no query parameters' : `takes ${accepted.join(', ')}`;
    throw new StrataError(
      'UNKNOWN_PARAMETER',
      `unknown query parameter ${JSON.stringify(name.slice(0, 64))}: ${route.method.toUpperCase()} ${route.path} ${takes}; nothing was done`,
    );
  }
}

/**
 * For the plain routes (documentRoute): refuses a query parameter `route` does not declare, as defineRoute does for
 * its own, so that every route accepts exactly what GET /openapi.json says.
 */
export function refuseUnknownParameters(c: Context, route: RouteConfig): void {
  if (c.req.url.includes('?')) refuseUnknown(rawQuery(c), acceptedParameters(route), route);
}

/**
 * Documents a route whose handler is registered elsewhere as a plain hono handler (its checks live in that
 * handler). The document then covers every route the gateway serves.
 */
export function documentRoute(app: GatewayApp, route: RouteConfig): void {
  app.openAPIRegistry.registerPath(withUnknownParameter(route));
}

function check(schema: z.ZodType, value: string | undefined, fallbackCode: ErrorCode, what: string): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const code = (issue as { params?: { code?: ErrorCode } }).params?.code;
  // Only `checked` schemas carry codes; any other schema's failure is still the client's: a 4xx naming the input.
  if (code !== undefined) throw new StrataError(code, issue.message);
  throw new StrataError(fallbackCode, `${what}: ${issue.message}`);
}

// ---- shared pieces of definitions ----

/** The error body every 4xx and 5xx carries. */
export const ErrorBodySchema = z
  .strictObject({
    error: z.strictObject({
      code: z.string().openapi({ description: 'stable error code (api.md); branch on this, not on the message' }),
      message: z.string().openapi({ description: 'what was wrong and what to do, for people' }),
    }),
  })
  .openapi('Error');

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad request: the request is malformed; nothing was changed',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  408: 'Request timeout',
  409: 'Conflict',
  412: 'Precondition failed: nothing was changed',
  413: 'Payload too large: nothing was changed',
  415: 'Unsupported media type: nothing was changed',
  422: 'Unprocessable content: nothing was changed',
  429: 'Too many requests',
  431: 'Request header fields too large',
  500: 'Internal error (a bug)',
  503: 'The cluster cannot do it right now (nodes, metadata store or write-ahead log unavailable); retry after Retry-After',
  504: 'The outcome of the commit is unknown: read the key (or retry with If-Match) to learn its state',
};

/** The error responses of an operation, grouped by the status ERROR_STATUS gives each code. */
export function errorResponses(...codes: ErrorCode[]): Record<number, ResponseConfig> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<number, ResponseConfig> = {};
  for (const [status, group] of byStatus) {
    const schema = z.strictObject({
      error: z.strictObject({
        code: z.enum(group as [ErrorCode, ...ErrorCode[]]).openapi({ description: 'stable error code' }),
        message: z.string().openapi({ description: 'what was wrong and what to do, for people' }),
      }),
    });
    responses[status] = {
      description: `${STATUS_TEXT[status] ?? 'Error'}. Codes: ${group.join(', ')}`,
      content: { 'application/json': { schema } },
      ...(status === 503 ? { headers: { 'Retry-After': retryAfterHeader } } : {}),
      ...(group.includes('IDEMPOTENCY_IN_PROGRESS') ? { headers: { 'Retry-After': leaseRetryAfterHeader } } : {}),
    };
  }
  return responses;
}

const retryAfterHeader = {
  description: `seconds to wait before retrying (${RETRY_AFTER_SECONDS})`,
  schema: { type: 'string' as const, pattern: '^[0-9]+$' },
};

/** 409 IDEMPOTENCY_IN_PROGRESS (internal/api/idempotency.ts). */
const leaseRetryAfterHeader = {
  description: 'seconds until the attempt holding the Idempotency-Key can no longer commit (a retry may come sooner)',
  schema: { type: 'string' as const, pattern: '^[0-9]+$' },
};

/** A JSON response (`application/json`) with `schema`. */
export function jsonResponse(description: string, schema: z.ZodType, headers?: ResponseHeaders): ResponseConfig {
  return { description, content: { 'application/json': { schema } }, ...(headers ? { headers } : {}) };
}

/** A response header holding a version: `ETag` and `X-Strata-Version`. */
export const versionHeaders: ResponseHeaders = {
  ETag: { description: 'the version in quotes, `"<version>"`', schema: { type: 'string' } },
  'X-Strata-Version': { description: 'the version (decimal digits)', schema: { type: 'string', pattern: '^[1-9][0-9]*$' } },
};
