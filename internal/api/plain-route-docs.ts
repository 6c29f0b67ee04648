/**
 * Definitions of the gateway routes whose handlers are plain hono handlers with their own checks (watch-routes.ts,
 * healer-routes.ts, policy-routes.ts, request-stats.ts, metrics/http-metrics.ts): registered with `documentRoute` so that
 * GET /openapi.json covers every route the gateway serves. Their handlers stay the behaviour; test/api/openapi.test.ts
 * checks that each status documented here is one the server really answers, with this body.
 */
import { HEALER_JOURNAL_LIMITS } from '../metadata/metadata-store.js';
import { HEALER_ROUTE_LIMITS } from './healer-routes.js';
import { REQUEST_STATS_LIMITS } from './request-stats.js';
import type { Context } from 'hono';
import { createRoute, documentRoute, errorResponses, jsonResponse, refuseUnknownParameters, z, type GatewayApp, type RouteConfig } from './route-definition.js';
import { WATCH_LIMITS } from './watch-routes.js';

const plainString = { schema: { type: 'string' as const } };

export const watchRoute = createRoute({
  method: 'get',
  path: '/watch',
  tags: ['documents'],
  summary: 'Change feed: committed changes of keys under a prefix as server-sent events, resumable from a version',
  description:
    'Events: `ready` once (`{"prefix", "version"}`), then `change` per commit (`{"key", "version", "kind": "put"|"delete"}`, ' +
    'the event id is the version); an `error` event (`{"error": {"code", "message"}}`) ends the stream. ' +
    'Comment lines are heartbeats.',
  request: {
    query: z.object({
      prefix: z.string().optional().openapi({ description: 'only keys starting with this prefix (key rules apply)' }),
      since: z.string().optional().openapi({
        pattern: `^[0-9]{1,${WATCH_LIMITS.versionDigitsMax}}$`,
        description: 'resume after this version (an event id or an X-Strata-Version); default: from now',
      }),
    }),
    headers: z.object({
      'Last-Event-ID': z.string().optional().openapi({ description: 'as `since` (sent by a reconnecting EventSource); wins over it' }),
    }),
  },
  responses: {
    200: { description: 'The event stream', content: { 'text/event-stream': plainString } },
    ...errorResponses('INVALID_REQUEST', 'HISTORY_COMPACTED', 'TOO_MANY_WATCHERS', 'METADATA_UNAVAILABLE'),
  },
});

export const healerRoute = createRoute({
  method: 'get',
  path: '/healer',
  tags: ['operations'],
  summary: "The healer's leader and its recent repairs (from the healer journal in the metadata store)",
  request: {
    query: z.object({
      limit: z.string().optional().openapi({
        type: 'integer',
        minimum: 1,
        maximum: HEALER_JOURNAL_LIMITS.entriesMax,
        default: HEALER_ROUTE_LIMITS.recentDefault,
        description: 'journal entries, newest first',
      }),
    }),
  },
  responses: {
    200: jsonResponse('The healer', z.strictObject({
      leader: z.string().nullable(),
      repair_backlog: z.number().int().nullable(),
      gc_hold: z.string().nullable().openapi({ description: 'why garbage collection and rollback keep blobs they would otherwise delete; null when nothing is held back' }),
      recent: z.array(z.strictObject({
        at: z.string().openapi({ description: 'ISO 8601' }),
        kind: z.enum(['repaired', 'unrepairable']),
        key: z.string(),
        detail: z.string(),
      })),
    })),
    ...errorResponses('INVALID_LIMIT', 'METADATA_UNAVAILABLE'),
  },
});

export const requestStatsRoute = createRoute({
  method: 'get',
  path: '/request_stats',
  tags: ['operations'],
  summary: "This gateway's request counts: totals by status class and per second over the last minute",
  responses: {
    200: jsonResponse('Counts since the gateway started', z.strictObject({
      since: z.string().openapi({ description: 'ISO 8601' }),
      total: z.number().int(),
      by_class: z.strictObject({ '2xx': z.number().int(), '3xx': z.number().int(), '4xx': z.number().int(), '5xx': z.number().int() }),
      per_second: z.array(z.number().int()).openapi({ description: `the last ${REQUEST_STATS_LIMITS.windowSec} seconds, oldest first` }),
    })),
  },
});

export const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  tags: ['operations'],
  summary: 'Prometheus metrics (text exposition format)',
  responses: { 200: { description: 'Metrics', content: { 'text/plain': plainString } } },
});

const prefixPath = z.object({
  prefix: z.string().openapi({
    description: 'the key prefix, percent-encoded (`user%3A`, `logs%2F`); empty for the root prefix (`/policy/`)',
  }),
});

const PolicyListSchema = z.strictObject({
  prefixes: z.array(z.strictObject({
    prefix: z.string(),
    hot_fields: z.array(z.string()),
    epoch: z.number().int(),
    changed_at: z.string().nullable().openapi({ description: 'ISO 8601; null before the first change' }),
  })),
});

const nullableIso = z.string().nullable().openapi({ description: 'ISO 8601, or null' });

/** GET and PUT /policy/{prefix} answer the same explanation (policy-routes.ts `explain`). */
const PolicySchema = z
  .strictObject({
    prefix: z.string(),
    hot_fields: z.array(z.string()).openapi({ description: 'what a write under the prefix without hot_fields gets now' }),
    pins: z.strictObject({ api: z.array(z.string()), config: z.array(z.string()) }).openapi({
      description: '`api`: pinned with PUT; `config`: from STRATA_HOT_FIELDS_BY_PREFIX',
    }),
    defaults: z.array(z.string()).openapi({ description: 'STRATA_HOT_FIELDS, unless configuration pins the prefix' }),
    learned: z.array(z.strictObject({ field: z.string(), hot: z.boolean(), since: nullableIso, reason: z.string() })),
    fields: z.array(z.strictObject({
      field: z.string(),
      hot: z.boolean(),
      score: z.number(),
      projection_reads: z.number(),
      changes: z.number(),
      value_bytes: z.number().int(),
      benefit_bytes: z.number().int(),
      cost_bytes: z.number().int(),
      move_bytes: z.number().int(),
    })).openapi({ description: 'what the policy knows of each field, highest score first' }),
    thresholds: z.strictObject({
      promote_score: z.number(),
      demote_score: z.number(),
      dwell_ms: z.number().int(),
      half_life_ms: z.number().int(),
      promote_margin: z.number(),
    }),
    cost_model: z.strictObject({
      hot_extra_copies: z.number(),
      cold_write_copies: z.number(),
      hot_write_copies: z.number(),
      stored_byte_weight: z.number(),
    }),
    stats: z.strictObject({
      at: nullableIso,
      reads: z.number(),
      projections: z.number(),
      changes: z.number(),
      cold_bytes: z.number().int(),
      hot_bytes: z.number().int(),
      documents_tracked: z.number().int(),
    }),
    epoch: z.number().int().openapi({ description: 'bumped whenever the hot fields change; re-tiering works towards it' }),
    changed_at: nullableIso,
    retier: z.strictObject({ epoch: z.number().int(), done_epoch: z.number().int(), cursor: z.string().nullable(), complete: z.boolean() }),
    lifecycle: z.strictObject({
      idle_to_ec_after_ms: z.number().int().nullable().openapi({ description: 'in force (the prefix\'s, else STRATA_IDLE_TO_EC_AFTER_MS)' }),
      configured: z.number().int().nullable(),
      override_explicit: z.boolean(),
    }),
    read_heavy: z.array(z.strictObject({ key: z.string(), reads: z.number(), last_read_at: nullableIso })),
  })
  .openapi('Policy');

const policyTags = ['policy'];

export const policyListRoute = createRoute({
  method: 'get',
  path: '/policy',
  tags: policyTags,
  summary: 'Every key prefix with a policy record: its hot fields now',
  responses: { 200: jsonResponse('The prefixes', PolicyListSchema), ...errorResponses('METADATA_UNAVAILABLE') },
});

export const policyGetRoute = createRoute({
  method: 'get',
  path: '/policy/{prefix}',
  tags: policyTags,
  summary: 'A prefix\'s hot fields and why: pins, defaults, learned decisions, field scores, thresholds, lifecycle',
  request: { params: prefixPath },
  responses: { 200: jsonResponse('The policy', PolicySchema), ...errorResponses('INVALID_PREFIX', 'METADATA_UNAVAILABLE') },
});

export const policyPutRoute = createRoute({
  method: 'put',
  path: '/policy/{prefix}',
  tags: policyTags,
  summary: 'Pin hot fields for a prefix by hand and set its lifecycle',
  request: {
    params: prefixPath,
    body: {
      required: true,
      content: {
        'application/json': {
          schema: {
            type: 'object',
            additionalProperties: false,
            properties: {
              pins: { type: ['array', 'null'], items: { type: 'string' }, description: 'field paths to keep hot; [] or null clears them' },
              idle_to_ec_after_ms: { type: ['integer', 'null'], minimum: 0, description: 'documents idle this long move to ec; null: the default' },
              override_explicit: { type: 'boolean', description: 'also move documents whose writer named a strategy' },
            },
          },
        },
      },
    },
  },
  responses: {
    200: jsonResponse('The policy after the change', PolicySchema),
    ...errorResponses('INVALID_PREFIX', 'INVALID_REQUEST', 'UNSUPPORTED_MEDIA_TYPE', 'DOCUMENT_TOO_LARGE', 'INVALID_POLICY', 'METADATA_UNAVAILABLE'),
  },
});

const PLAIN_ROUTES = [watchRoute, healerRoute, requestStatsRoute, metricsRoute, policyListRoute, policyGetRoute, policyPutRoute];

/** The router's path of a definition: `{prefix}` is the rest of the path (`/policy/*`), other parameters `:name`. */
function honoPathOf(route: RouteConfig): string {
  return route.path.replace(/\/\{prefix\}$/, '/*').replace(/\{([^}]+)\}/g, ':$1');
}

/**
 * Refuses query parameters that a plain route does not declare, as defineRoute does for its routes. Register it
 * before the plain routes' handlers (/metrics and /request_stats take `checkRequestOf` instead: their handlers come
 * first).
 */
export function guardPlainRoutes(app: GatewayApp): void {
  for (const route of PLAIN_ROUTES) {
    if (route === metricsRoute || route === requestStatsRoute) continue;
    app.on(route.method.toUpperCase(), honoPathOf(route), async (c, next) => {
      refuseUnknownParameters(c, route);
      await next();
    });
  }
}

/** The check of a plain route whose handler registers early, for it to run first. */
export function checkRequestOf(route: RouteConfig): (c: Context) => void {
  return (c) => refuseUnknownParameters(c, route);
}

/** Adds the definitions of the plain routes this gateway serves (`served`: METHOD and path as registered). */
export function documentPlainRoutes(app: GatewayApp): void {
  const served = new Set(app.routes.map((r) => `${r.method} ${r.path}`));
  for (const route of PLAIN_ROUTES) {
    // /metrics is served only when the gateway is wired with its metrics registry.
    if (served.has(`${route.method.toUpperCase()} ${honoPathOf(route)}`)) documentRoute(app, route);
  }
}
