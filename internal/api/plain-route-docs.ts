/**
 * Definitions of the gateway routes whose handlers are plain hono handlers with their own checks (watch-routes.ts,
 * healer-routes.ts, request-stats.ts, metrics/http-metrics.ts): registered with `documentRoute` so that
 * GET /openapi.json covers every route the gateway serves. Their handlers stay the behaviour; test/api/openapi.test.ts
 * checks that each status documented here is one the server really answers, with this body.
 */
import { HEALER_JOURNAL_LIMITS } from '../metadata/metadata-store.js';
import { HEALER_ROUTE_LIMITS } from './healer-routes.js';
import { REQUEST_STATS_LIMITS } from './request-stats.js';
import { createRoute, documentRoute, errorResponses, jsonResponse, z, type GatewayApp } from './route-definition.js';
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

/** Adds the definitions of the plain routes this gateway serves (`served`: METHOD and path as registered). */
export function documentPlainRoutes(app: GatewayApp): void {
  const served = new Set(app.routes.map((r) => `${r.method} ${r.path}`));
  for (const route of [watchRoute, healerRoute, requestStatsRoute, metricsRoute]) {
    // /metrics is served only when the gateway is wired with its metrics registry.
    if (served.has(`${route.method.toUpperCase()} ${route.path}`)) documentRoute(app, route);
  }
}
