/**
 * Admin routes of api.md ("Data format version"): the cluster's data format version and its explicit bump
 * (internal/cluster/format-version.ts has the rules). Registered with the other admin routes, behind the same
 * `admin` permission (access.ts gives every /admin/ route to it).
 */
import { DATA_FORMAT_MAX, fixedDataFormat } from '../core/data-format.js';
import { StrataError } from '../core/errors.js';
import { bumpDataFormat, formatVersionReport, type FormatVersionContext } from '../cluster/format-version.js';
import type { RegisteredProcess } from '../metadata/metadata-store.js';
import type { GatewayDeps } from './gateway-deps.js';
import { readBody } from './request.js';
import { createRoute, defineRoute, errorResponses, jsonResponse, z, type GatewayApp, type JsonSchema } from './route-definition.js';

/** A bump body is `{"to": 2}`; anything longer is not one. */
const BUMP_BODY_BYTES_MAX = 1024;

const tags = ['admin'];

const ProcessSchema = z
  .strictObject({
    id: z.string(),
    role: z.string().openapi({ description: 'storage-node, gateway or healer' }),
    format_max: z.number().int().openapi({ description: 'the newest data format the process reads' }),
    alive: z.boolean().openapi({ description: 'it announced itself within its ttl' }),
    last_heartbeat: z.string().openapi({ description: 'ISO 8601' }),
  })
  .openapi('AnnouncedProcess');
const BlockerSchema = z
  .strictObject({
    id: z.string(),
    role: z.string(),
    format_max: z.number().int(),
    alive: z.boolean(),
    why: z.string(),
  })
  .openapi('FormatBumpBlocker');
const FormatVersionSchema = z
  .strictObject({
    data_format: z.number().int().openapi({ description: "the cluster's data format version" }),
    format_max: z.number().int().openapi({ description: 'the newest data format this gateway reads and writes' }),
    recorded: z.boolean().openapi({ description: 'the cluster identity record exists (the first storage node creates it)' }),
    processes: z.array(ProcessSchema),
    blockers: z.array(BlockerSchema).openapi({ description: 'what would refuse a bump to the next format now; empty at the newest' }),
  })
  .openapi('FormatVersion');

/** What POST /admin/format-version accepts: zod parses it (the document shows the JSON Schema below). */
const BumpBody = z.strictObject({ to: z.number().int() });
const bumpBodySchema: JsonSchema = {
  type: 'object',
  required: ['to'],
  additionalProperties: false,
  properties: { to: { type: 'integer', minimum: 1, description: `the data format to raise the cluster to (this release: up to ${DATA_FORMAT_MAX})` } },
};

export const getFormatVersionRoute = createRoute({
  method: 'get',
  path: '/admin/format-version',
  tags,
  summary: "The cluster's data format version, and what each process announces it reads (operators only)",
  responses: {
    200: jsonResponse('The version and the announced processes', FormatVersionSchema),
    ...errorResponses('METADATA_UNAVAILABLE', 'FORMAT_UNSUPPORTED'),
  },
});

export const bumpFormatVersionRoute = createRoute({
  method: 'post',
  path: '/admin/format-version',
  tags,
  summary: "Raise the cluster's data format version (idempotent; never lowered)",
  request: { body: { required: true, content: { 'application/json': { schema: bumpBodySchema } } } },
  responses: {
    200: jsonResponse('The cluster is at the target (`changed`: this call raised it)', z.strictObject({ data_format: z.number().int(), changed: z.boolean() })),
    ...errorResponses('INVALID_REQUEST', 'FORMAT_BUMP_BLOCKED', 'FORMAT_DOWNGRADE_REFUSED', 'DOCUMENT_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'METADATA_UNAVAILABLE', 'FORMAT_UNSUPPORTED'),
  },
});

export function registerFormatVersionRoutes(app: GatewayApp, deps: GatewayDeps): void {
  const context: FormatVersionContext = {
    store: deps.metadata,
    clock: deps.clock,
    nodeTtlMs: deps.config.nodeTtlMs,
    // Without a source of its own, a gateway is a cluster gateway before the bump: format 1 until a record says more.
    source: deps.dataFormat ?? fixedDataFormat(1),
  };

  defineRoute(app, getFormatVersionRoute, async (c) => {
    const view = await formatVersionReport(context);
    return c.json({
      data_format: view.dataFormat,
      format_max: view.formatMax,
      recorded: view.recorded,
      processes: view.processes.map(processBody),
      blockers: view.blockers.map((b) => ({ id: b.id, role: b.role, format_max: b.formatMax, alive: b.alive, why: b.why })),
    });
  });

  defineRoute(app, bumpFormatVersionRoute, async (c) => {
    const { to } = parseBumpBody(await readBody(c, BUMP_BODY_BYTES_MAX));
    const outcome = await bumpDataFormat(context, to);
    return c.json({ data_format: outcome.dataFormat, changed: outcome.changed });
  });
}

function parseBumpBody(body: Buffer): { to: number } {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new StrataError('INVALID_REQUEST', `the body is not valid JSON (${(error as Error).message}); send {"to": ${DATA_FORMAT_MAX}}`);
  }
  const parsed = BumpBody.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `"${issue.path.join('.')}": ` : '';
    throw new StrataError('INVALID_REQUEST', `the body must be {"to": <data format>}, e.g. {"to": ${DATA_FORMAT_MAX}} (${where}${issue?.message ?? 'invalid'})`);
  }
  return parsed.data;
}

function processBody(p: RegisteredProcess) {
  return { id: p.id, role: p.role, format_max: p.formatMax, alive: p.alive, last_heartbeat: new Date(p.lastHeartbeatMs).toISOString() };
}
