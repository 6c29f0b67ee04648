/**
 * The OpenAPI document (GET /openapi.json) against the real gateway: it is well formed, it names every route the
 * gateway serves and no other, and every status it documents for an operation is one the server really answers,
 * with a body that validates against the documented schema and the documented headers.
 *
 * Each (operation, status) pair has a recipe below: a request that produces that status. A test checks that the
 * recipes and the document list the same pairs, so documenting a new status needs a recipe, and a recipe for an
 * undocumented status fails. Recipes that need faults (a commit held open or failing, storage nodes stopped, the
 * metadata store closed) run on an in-process cluster of their own with write hooks; against an external target
 * (STRATA_TEST_TARGET_URL, the nginx run) they skip themselves.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { StrataError } from '../../internal/core/errors.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { operationsOf, structuralProblems, validateSchema, type OpenApiDocument } from './openapi-support.js';
import { ApiClient, TARGET_URL_VAR, externalTargetUrl, quoted, rawRequest, startApi } from './support.js';

/** The gateway's default STRATA_BODY_BYTES_MAX: one byte more is a 413. */
const BODY_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * Routes the gateway serves that the document leaves out on purpose: the web console's page and its files; and the
 * tiering policy routes (internal/api/policy-routes.ts, plain hono for now, documented in docs/api.md "Tiering
 * policy") until they are converted to route definitions.
 */
const UNDOCUMENTED_ROUTES = /^GET \/(console(\/.*)?)?$/;

interface Targets {
  api: ApiClient;
  /** The in-process cluster with fault hooks (null against an external target). */
  faults: Faults | null;
}

interface Faults {
  api: ApiClient;
  cluster: TestCluster;
  /** Keys whose next commit waits until released. */
  hold(key: string): { reached: Promise<void>; release(): void };
  /** Keys whose commit fails with COMMIT_UNKNOWN. */
  unknown: Set<string>;
}

type Recipe = { faults?: true; run(t: Targets): Promise<Response> };

const json = { 'content-type': 'application/json' };
const bigBody = (): string => `{"a":"${'x'.repeat(BODY_BYTES_MAX_DEFAULT)}"}`;
/** A document whose cold part does not compress below the size that is erasure coded (not kept with the replicas). */
const shardedDoc = (): string => JSON.stringify({ a: 1, text: randomBytes(6000).toString('base64') });

async function withHeldCommit(faults: Faults, key: string, first: () => Promise<Response>, second: () => Promise<Response>): Promise<Response> {
  const held = faults.hold(key);
  const pending = first();
  await held.reached;
  try {
    return await second();
  } finally {
    held.release();
    expect((await pending).status).toBe(200);
  }
}

/** Runs `send` while the data directory's reserve refuses every write, as it does when the disk is full. */
async function withFullDisk(faults: Faults, send: () => Promise<Response>): Promise<Response> {
  const reserve = faults.cluster.reserve;
  const admit = reserve.admit.bind(reserve);
  reserve.admit = (_bytes: number, what: string) => {
    throw new StrataError('DISK_FULL', `${what} refused: the data directory is full; free space by deleting documents`);
  };
  try {
    return await send();
  } finally {
    reserve.admit = admit;
  }
}

/** The request producing each documented status, in the order they run (faults last, as they change the cluster). */
/** A path of each documented route with its parameters filled in, for the unknown-parameter recipes below. */
const SAMPLE_PATH_PARAMETERS: Record<string, string> = { key: 'oa%2Fdoc', prefix: 'oa%2F', id: 'node-1', asset: 'swagger-ui.css' };

/**
 * Every route answers a query parameter it does not declare with 400 UNKNOWN_PARAMETER, before looking at anything
 * else: a recipe for each documented `400` that has no recipe of its own above.
 */
function unknownParameterRecipe(method: string, path: string): Recipe {
  const url = path.replace(/\{([^}]+)\}/g, (_m, name: string) => SAMPLE_PATH_PARAMETERS[name] ?? name);
  return { run: ({ api }) => api.fetch(`${url}?stratgy=ec`, { method }) };
}

/** Operations whose only 400 is an unknown query parameter (the others have recipes of their own). */
const UNKNOWN_PARAMETER_ONLY: readonly string[] = [
  'GET /health',
  'GET /health/live',
  'GET /health/ready',
  'GET /cluster',
  'GET /node_status',
  'GET /admin/nodes',
  'POST /admin/nodes/{id}/drain',
  'POST /admin/nodes/{id}/activate',
  'DELETE /admin/nodes/{id}',
  'GET /admin/format-version',
  'GET /openapi.json',
  'GET /docs',
  'GET /docs/{asset}',
  'GET /request_stats',
  'GET /metrics',
  'GET /policy',
];

const RECIPES: Record<string, Recipe> = {
  ...Object.fromEntries(UNKNOWN_PARAMETER_ONLY.map((id) => [`${id} 400`, unknownParameterRecipe(...(id.split(' ') as [string, string]))])),
  'POST /write 200': { run: ({ api }) => api.write('oa/write', { like_count: 1, text: 'hello' }) },
  'POST /write 400': { run: ({ api }) => api.fetch('/write?key=', { method: 'POST', headers: json, body: '{}' }) },
  'POST /write 412': { run: ({ api }) => api.write('oa/doc', { a: 1 }, '', { 'if-none-match': '*' }) },
  'POST /write 413': { run: ({ api }) => api.write('oa/too-large', bigBody()) },
  'POST /write 415': { run: ({ api }) => api.fetch('/write?key=oa%2Fw415', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }) },
  'POST /write 422': { run: ({ api }) => api.write('oa/array', '[1]') },
  'GET /read/{key} 200': { run: ({ api }) => api.read('oa/doc') },
  'GET /read/{key} 304': { run: ({ api }) => api.read('oa/doc', '', { 'if-none-match': '*' }) },
  'GET /read/{key} 400': { run: ({ api }) => api.read('oa/doc', '?fields=a,,b') },
  'GET /read/{key} 404': { run: ({ api }) => api.read('oa/absent') },
  'PATCH /patch/{key} 200': { run: ({ api }) => api.patch('oa/doc', { like_count: 2 }, 'application/merge-patch+json') },
  'PATCH /patch/{key} 400': { run: ({ api }) => api.patch('oa/doc', { a: 1 }, 'application/json', { 'if-match': 'seven' }) },
  'PATCH /patch/{key} 404': { run: ({ api }) => api.patch('oa/absent', { a: 1 }) },
  'PATCH /patch/{key} 412': { run: ({ api }) => api.patch('oa/doc', { a: 1 }, 'application/json', { 'if-match': quoted('99999999999') }) },
  'PATCH /patch/{key} 413': { run: ({ api }) => api.patch('oa/doc', bigBody()) },
  'PATCH /patch/{key} 415': { run: ({ api }) => api.patch('oa/doc', { a: 1 }, 'text/plain') },
  'PATCH /patch/{key} 422': { run: ({ api }) => api.patch('oa/doc', '{"a":', 'application/merge-patch+json') },
  'DELETE /delete/{key} 200': {
    run: async ({ api }) => {
      await api.put('oa/to-delete', { a: 1 });
      return api.delete('oa/to-delete');
    },
  },
  'DELETE /delete/{key} 400': { run: ({ api }) => api.delete('oa/doc', { 'if-match': '*' }) },
  'DELETE /delete/{key} 404': { run: ({ api }) => api.delete('oa/absent') },
  'DELETE /delete/{key} 412': { run: ({ api }) => api.delete('oa/doc', { 'if-match': quoted('99999999999') }) },
  'DELETE /delete/{key} 422': {
    run: async ({ api }) => {
      const token = `oa-reused-${Date.now()}`;
      await api.put('oa/idem', { a: 1 }, '', { 'idempotency-key': token });
      return api.delete('oa/idem', { 'idempotency-key': token });
    },
  },
  'GET /stat/{key} 200': { run: ({ api }) => api.stat('oa/doc') },
  'GET /stat/{key} 400': { run: ({ api }) => api.fetch('/stat/oa%00doc') },
  'GET /stat/{key} 404': { run: ({ api }) => api.stat('oa/absent') },
  'GET /list 200': { run: ({ api }) => api.list('prefix=oa%2F&limit=2') },
  'GET /list 400': { run: ({ api }) => api.list('limit=0') },
  'GET /health 200': { run: ({ api }) => api.fetch('/health') },
  'GET /health/live 200': { run: ({ api }) => api.fetch('/health/live') },
  'GET /health/ready 200': { run: ({ api }) => api.fetch('/health/ready') },
  'GET /cluster 200': { run: ({ api }) => api.fetch('/cluster') },
  'GET /node_status 200': { run: ({ api }) => api.fetch('/node_status') },
  'GET /storage_usage 200': { run: ({ api }) => api.fetch('/storage_usage') },
  'GET /storage_usage 400': { run: ({ api }) => api.fetch('/storage_usage?prefix_depth=0') },
  'GET /admin/nodes 200': { run: ({ api }) => api.fetch('/admin/nodes') },
  'POST /admin/nodes/{id}/drain 404': { run: ({ api }) => api.fetch('/admin/nodes/oa-no-such-node/drain', { method: 'POST' }) },
  'POST /admin/nodes/{id}/activate 404': { run: ({ api }) => api.fetch('/admin/nodes/oa-no-such-node/activate', { method: 'POST' }) },
  'DELETE /admin/nodes/{id} 404': { run: ({ api }) => api.fetch('/admin/nodes/oa-no-such-node', { method: 'DELETE' }) },
  'GET /admin/format-version 200': { run: ({ api }) => api.fetch('/admin/format-version') },
  // A bump to the format the cluster is at: success without a change, on any cluster (it never bumps the target).
  'POST /admin/format-version 200': {
    run: async ({ api }) => {
      const { data_format } = (await (await api.fetch('/admin/format-version')).json()) as { data_format: number };
      return api.fetch('/admin/format-version', { method: 'POST', headers: json, body: JSON.stringify({ to: data_format }) });
    },
  },
  'POST /admin/format-version 400': { run: ({ api }) => api.fetch('/admin/format-version', { method: 'POST', headers: json, body: '{"to":"two"}' }) },
  'POST /admin/format-version 413': { run: ({ api }) => api.fetch('/admin/format-version', { method: 'POST', headers: json, body: `{"pad":"${'x'.repeat(4096)}"}` }) },
  'POST /admin/format-version 415': { run: ({ api }) => api.fetch('/admin/format-version', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"to":1}' }) },
  'GET /openapi.json 200': { run: ({ api }) => api.fetch('/openapi.json') },
  'GET /openapi.json 304': {
    run: async ({ api }) => api.fetch('/openapi.json', { headers: { 'if-none-match': (await api.fetch('/openapi.json')).headers.get('etag')! } }),
  },
  'GET /docs 200': { run: ({ api }) => api.fetch('/docs') },
  'GET /docs 304': { run: async ({ api }) => api.fetch('/docs', { headers: { 'if-none-match': (await api.fetch('/docs')).headers.get('etag')! } }) },
  'GET /docs/{asset} 200': { run: ({ api }) => api.fetch('/docs/swagger-ui.css') },
  'GET /docs/{asset} 304': {
    run: async ({ api }) =>
      api.fetch('/docs/swagger-ui.css', { headers: { 'if-none-match': `W/"x", ${(await api.fetch('/docs/swagger-ui.css')).headers.get('etag')!}` } }),
  },
  'GET /docs/{asset} 404': { run: ({ api }) => api.fetch('/docs/package.json') },
  'GET /watch 200': { run: ({ api }) => api.fetch('/watch?prefix=oa%2F') },
  'GET /watch 400': { run: ({ api }) => api.fetch('/watch?since=yesterday') },
  'GET /healer 200': { run: ({ api }) => api.fetch('/healer?limit=5') },
  'GET /healer 400': { run: ({ api }) => api.fetch('/healer?limit=0') },
  'GET /request_stats 200': { run: ({ api }) => api.fetch('/request_stats') },
  'GET /metrics 200': { run: ({ api }) => api.fetch('/metrics') },
  'GET /policy 200': { run: ({ api }) => api.fetch('/policy') },
  'GET /policy/{prefix} 200': { run: ({ api }) => api.fetch('/policy/oa%2F') },
  'GET /policy/{prefix} 400': { run: ({ api }) => api.fetch('/policy/oa') },
  'PUT /policy/{prefix} 200': { run: ({ api }) => api.fetch('/policy/oa%2F', { method: 'PUT', headers: json, body: '{"pins":["a"]}' }) },
  'PUT /policy/{prefix} 400': { run: ({ api }) => api.fetch('/policy/oa', { method: 'PUT', headers: json, body: '{"pins":["a"]}' }) },
  'PUT /policy/{prefix} 413': { run: ({ api }) => api.fetch('/policy/oa%2F', { method: 'PUT', headers: json, body: `{"pad":"${'x'.repeat(70_000)}"}` }) },
  'PUT /policy/{prefix} 415': { run: ({ api }) => api.fetch('/policy/oa%2F', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: '{}' }) },
  'PUT /policy/{prefix} 422': { run: ({ api }) => api.fetch('/policy/oa%2F', { method: 'PUT', headers: json, body: '{"bogus":1}' }) },

  // ---- faults: an in-process cluster with write hooks ----
  'POST /write 409': {
    faults: true,
    run: ({ faults: f }) => {
      const send = () => f!.api.write('oa-hold/write', { a: 1 }, '', { 'idempotency-key': 'oa-hold-write' });
      return withHeldCommit(f!, 'oa-hold/write', send, send);
    },
  },
  'PATCH /patch/{key} 409': {
    faults: true,
    run: async ({ faults: f }) => {
      await f!.api.put('oa-hold/patch', { a: 1 });
      const send = () => f!.api.patch('oa-hold/patch', { a: 2 }, 'application/merge-patch+json', { 'idempotency-key': 'oa-hold-patch' });
      return withHeldCommit(f!, 'oa-hold/patch', send, send);
    },
  },
  'DELETE /delete/{key} 409': {
    faults: true,
    run: async ({ faults: f }) => {
      await f!.api.put('oa-hold/delete', { a: 1 });
      const send = () => f!.api.delete('oa-hold/delete', { 'idempotency-key': 'oa-hold-delete' });
      return withHeldCommit(f!, 'oa-hold/delete', send, send);
    },
  },
  'POST /write 507': {
    faults: true,
    run: ({ faults: f }) => withFullDisk(f!, () => f!.api.fetch('/write?key=oa-full%2Fwrite', { method: 'POST', headers: json, body: '{"a":1}', allow5xx: true })),
  },
  'PATCH /patch/{key} 507': {
    faults: true,
    run: async ({ faults: f }) => {
      await f!.api.put('oa-full/patch', { a: 1 });
      return withFullDisk(f!, () => f!.api.fetch('/patch/oa-full%2Fpatch', { method: 'PATCH', headers: json, body: '{"a":2}', allow5xx: true }));
    },
  },
  'POST /write 504': {
    faults: true,
    run: ({ faults: f }) => {
      f!.unknown.add('oa-unknown/write');
      return f!.api.fetch('/write?key=oa-unknown%2Fwrite', { method: 'POST', headers: json, body: '{"a":1}', allow5xx: true });
    },
  },
  'PATCH /patch/{key} 504': {
    faults: true,
    run: async ({ faults: f }) => {
      await f!.api.put('oa-unknown/patch', { a: 1 });
      f!.unknown.add('oa-unknown/patch');
      return f!.api.fetch('/patch/oa-unknown%2Fpatch', { method: 'PATCH', headers: json, body: '{"a":2}', allow5xx: true });
    },
  },
  'DELETE /delete/{key} 504': {
    faults: true,
    run: async ({ faults: f }) => {
      await f!.api.put('oa-unknown/delete', { a: 1 });
      f!.unknown.add('oa-unknown/delete');
      return f!.api.fetch('/delete/oa-unknown%2Fdelete', { method: 'DELETE', allow5xx: true });
    },
  },
  // The all-in-one's six static nodes are not in the registry: register one more to drain, activate and remove.
  'POST /admin/nodes/{id}/drain 200': {
    faults: true,
    run: async ({ faults: f }) => {
      await f!.cluster.metadata.registerNode({ id: 'oa-node-x', address: 'http://127.0.0.1:9' }, 60_000);
      return f!.api.fetch('/admin/nodes/oa-node-x/drain', { method: 'POST' });
    },
  },
  // In-process only (it must not bump an external cluster): the all-in-one refuses a bump without a cluster identity
  // record, and going down once it writes a newer format than 1.
  'POST /admin/format-version 409': {
    faults: true,
    run: async ({ faults: f }) => {
      const { data_format } = (await (await f!.api.fetch('/admin/format-version')).json()) as { data_format: number };
      const to = data_format > 1 ? 1 : 2;
      return f!.api.fetch('/admin/format-version', { method: 'POST', headers: json, body: JSON.stringify({ to }) });
    },
  },
  'POST /admin/nodes/{id}/drain 409': {
    faults: true,
    run: async ({ faults: f }) => {
      // node-1 registered too: draining it would leave the five other static nodes (oa-node-x is draining).
      await f!.cluster.metadata.registerNode({ id: 'node-1', address: f!.cluster.nodes[0]!.address }, 60_000);
      return f!.api.fetch('/admin/nodes/node-1/drain', { method: 'POST' });
    },
  },
  'POST /admin/nodes/{id}/activate 200': { faults: true, run: ({ faults: f }) => f!.api.fetch('/admin/nodes/oa-node-x/activate', { method: 'POST' }) },
  'DELETE /admin/nodes/{id} 409': { faults: true, run: ({ faults: f }) => f!.api.fetch('/admin/nodes/oa-node-x', { method: 'DELETE' }) },
  'DELETE /admin/nodes/{id} 200': {
    faults: true,
    run: async ({ faults: f }) => {
      expect((await f!.api.fetch('/admin/nodes/oa-node-x/drain', { method: 'POST' })).status).toBe(200);
      return f!.api.fetch('/admin/nodes/oa-node-x', { method: 'DELETE' });
    },
  },
  'GET /watch 410': {
    faults: true,
    run: async ({ faults: f }) => {
      const before = (await f!.api.put('oa-compact/1', { a: 1 })).version;
      const later = (await f!.api.put('oa-compact/2', { a: 2 })).version;
      await f!.cluster.metadata.compactHistory(Number(later));
      return f!.api.fetch(`/watch?since=${Number(before) - 1}`);
    },
  },
  // Two storage nodes down: 4 of 6 shards are below the write quorum of 5.
  'POST /write 503': {
    faults: true,
    run: async ({ faults: f }) => {
      await f!.api.put('oa-down/ec', shardedDoc(), '&strategy=ec');
      await f!.api.put('oa-down/patch', shardedDoc());
      await stopNodes(f!, 2);
      return f!.api.fetch('/write?key=oa-down%2Fwrite', { method: 'POST', headers: json, body: shardedDoc(), allow5xx: true });
    },
  },
  'PATCH /patch/{key} 503': {
    faults: true,
    run: ({ faults: f }) => f!.api.fetch('/patch/oa-down%2Fpatch', { method: 'PATCH', headers: json, body: shardedDoc(), allow5xx: true }),
  },
  'GET /health/ready 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/health/ready', { allow5xx: true }) },
  // Three down: an erasure-coded document has 3 of the 4 shards it needs.
  'GET /read/{key} 503': {
    faults: true,
    run: async ({ faults: f }) => {
      await stopNodes(f!, 3);
      return f!.api.fetch('/read/oa-down%2Fec', { allow5xx: true });
    },
  },
  // The metadata store closed (the outage an etcd cluster's loss would be): last, as it does not come back.
  'DELETE /delete/{key} 503': {
    faults: true,
    run: async ({ faults: f }) => {
      for (const node of f!.cluster.nodes) if (!node.running) await node.start();
      await f!.cluster.metadata.close();
      return f!.api.fetch('/delete/oa-doc', { method: 'DELETE', allow5xx: true });
    },
  },
  'GET /stat/{key} 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/stat/oa-never-read', { allow5xx: true }) },
  'GET /list 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/list', { allow5xx: true }) },
  'GET /storage_usage 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/storage_usage', { allow5xx: true }) },
  'GET /watch 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/watch', { allow5xx: true }) },
  'GET /healer 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/healer', { allow5xx: true }) },
  'GET /policy 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/policy', { allow5xx: true }) },
  'GET /policy/{prefix} 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/policy/oa%2F', { allow5xx: true }) },
  'PUT /policy/{prefix} 503': {
    faults: true,
    run: ({ faults: f }) => f!.api.fetch('/policy/oa%2F', { method: 'PUT', headers: json, body: '{"pins":["a"]}', allow5xx: true }),
  },
  'GET /admin/nodes 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/admin/nodes', { allow5xx: true }) },
  'GET /admin/format-version 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/admin/format-version', { allow5xx: true }) },
  'POST /admin/format-version 503': {
    faults: true,
    run: ({ faults: f }) => f!.api.fetch('/admin/format-version', { method: 'POST', headers: json, body: '{"to":2}', allow5xx: true }),
  },
  'POST /admin/nodes/{id}/drain 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/admin/nodes/node-2/drain', { method: 'POST', allow5xx: true }) },
  'POST /admin/nodes/{id}/activate 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/admin/nodes/node-2/activate', { method: 'POST', allow5xx: true }) },
  'DELETE /admin/nodes/{id} 503': { faults: true, run: ({ faults: f }) => f!.api.fetch('/admin/nodes/node-2', { method: 'DELETE', allow5xx: true }) },
};

/** The body; of an event stream (which does not end), the first chunk, and the stream is closed. */
async function bodyOf(res: Response): Promise<string> {
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) return res.text();
  const reader = res.body!.getReader();
  const { value } = await reader.read();
  await reader.cancel();
  return new TextDecoder().decode(value);
}

async function stopNodes(faults: Faults, count: number): Promise<void> {
  for (const node of faults.cluster.nodes.slice(0, count)) if (node.running) await node.stop();
  await faults.cluster.pool.probe();
}

async function startFaults(): Promise<Faults> {
  const waiting = new Map<string, { reached: () => void; gate: Promise<void> }>();
  const unknown = new Set<string>();
  const cluster = await startTestCluster({
    hooks: {
      async beforeCommit(_writeId, key) {
        const held = waiting.get(key);
        if (held) {
          waiting.delete(key);
          held.reached();
          await held.gate;
        }
        if (unknown.delete(key)) throw new StrataError('COMMIT_UNKNOWN', `test fault: the commit of "${key}" could not be confirmed`);
      },
    },
  });
  const api = new ApiClient({ url: cluster.url, internals: cluster, fetch: cluster.fetch, write: cluster.write, read: cluster.read, destroy: () => cluster.destroy() });
  return {
    api,
    cluster,
    unknown,
    hold(key) {
      let reached!: () => void;
      let release!: () => void;
      const reachedPromise = new Promise<void>((r) => (reached = r));
      const gate = new Promise<void>((r) => (release = r));
      waiting.set(key, { reached, gate });
      return { reached: reachedPromise, release };
    },
  };
}

describe('the OpenAPI document', () => {
  let api: ApiClient;
  let faults: Faults | null = null;
  let spec: OpenApiDocument;

  beforeAll(async () => {
    api = await startApi();
    await api.put('oa/doc', { like_count: 1, text: 'z'.repeat(300) });
    const res = await api.fetch('/openapi.json');
    expect(res.status).toBe(200);
    spec = (await res.json()) as OpenApiDocument;
  });
  afterAll(async () => {
    await api?.cluster.destroy();
    // Its metadata store was closed by the last recipes; stopping closes it again, which may refuse.
    await faults?.cluster.destroy().catch(() => undefined);
  });

  function faultsOrSkip(context: TestContext): Faults {
    if (externalTargetUrl() !== null) return context.skip(`needs an in-process cluster with write hooks; ${TARGET_URL_VAR} points at an external one`);
    if (faults === null) throw new Error('the fault cluster is not running');
    return faults;
  }

  it('is OpenAPI 3.1 with the package version, relative servers, an ETag and Cache-Control', async () => {
    const res = await api.fetch('/openapi.json');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('etag')).toMatch(/^"[^"]+"$/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(spec.openapi).toBe('3.1.0');
    expect(spec.info.version).toBe(PACKAGE_VERSION);
    expect(spec.servers).toEqual([{ url: '/' }]);
    const again = await api.fetch('/openapi.json', { headers: { 'if-none-match': res.headers.get('etag')! } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
  });

  it('is well formed: every path has operations with described responses, path parameters declared, every $ref resolves', () => {
    expect(structuralProblems(spec)).toEqual([]);
    expect(operationsOf(spec).length).toBeGreaterThan(15);
  });

  it('documents the stable error codes of each error status with the error body', () => {
    for (const { id, operation } of operationsOf(spec)) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (Number(status) < 400 || id === 'GET /health/ready') continue;
        const schema = response.content?.['application/json']?.schema;
        expect(schema, `${id} ${status}`).toBeDefined();
        const error = (schema!.properties as { error?: { properties?: { code?: { enum?: string[] } } } }).error;
        expect(error?.properties?.code?.enum?.length ?? 0, `${id} ${status} names its codes`).toBeGreaterThan(0);
      }
    }
  });

  it('documents every route the gateway serves, and the gateway serves every route it documents', async (context) => {
    const internals = api.cluster.internals;
    if (internals === null) return context.skip(`reads the gateway's route table in-process; ${TARGET_URL_VAR} points at an external one`);
    const served = new Set(
      internals.gateway.app.routes
        .filter((r) => r.method !== 'ALL')
        .map((r) => `${r.method} ${r.path.replace(/^\/(read|patch|delete|stat)\/\*$/, '/$1/{key}').replace(/^\/policy\/\*$/, '/policy/{prefix}').replace(/:([^/]+)/g, '{$1}')}`)
        .filter((id) => !UNDOCUMENTED_ROUTES.test(id)),
    );
    const documented = new Set(operationsOf(spec).map((o) => o.id));
    expect([...served].filter((id) => !documented.has(id)), 'served but not documented').toEqual([]);
    expect([...documented].filter((id) => !served.has(id)), 'documented but not served').toEqual([]);
  });

  it('answers a query parameter an operation does not declare with 400 UNKNOWN_PARAMETER naming it and the accepted ones', async () => {
    for (const { id } of operationsOf(spec)) {
      const [method, path] = id.split(' ') as [string, string];
      const res = await unknownParameterRecipe(method, path).run({ api, faults });
      const body = await bodyOf(res);
      expect(res.status, `${id}: ${body.slice(0, 200)}`).toBe(400);
      const { error } = JSON.parse(body) as { error: { code: string; message: string } };
      expect(error.code, id).toBe('UNKNOWN_PARAMETER');
      expect(error.message, id).toContain('"stratgy"');
      const declared = (spec.paths[path]![method.toLowerCase()]!.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      for (const name of declared) expect(error.message, id).toContain(name);
    }
  });

  it('has a recipe below for every documented status, and documents every status a recipe produces', () => {
    const documented = operationsOf(spec).flatMap(({ id, operation }) => Object.keys(operation.responses).map((s) => `${id} ${s}`));
    expect(documented.filter((pair) => !(pair in RECIPES)), 'documented statuses without a recipe').toEqual([]);
    expect(Object.keys(RECIPES).filter((pair) => !documented.includes(pair)), 'recipes for undocumented statuses').toEqual([]);
  });

  describe('answers each documented status with the documented body and headers', () => {
    beforeAll(async () => {
      if (externalTargetUrl() === null) faults = await startFaults();
    });

    for (const [pair, recipe] of Object.entries(RECIPES)) {
      it(pair, async (context) => {
        const targets: Targets = { api, faults: recipe.faults ? faultsOrSkip(context) : faults };
        const [method, path, statusText] = pair.split(' ') as [string, string, string];
        const documented = spec.paths[path]?.[method.toLowerCase()]?.responses[statusText];
        expect(documented, `${pair} is documented`).toBeDefined();
        const res = await recipe.run(targets);
        const body = await bodyOf(res);
        expect(res.status, body.slice(0, 300)).toBe(Number(statusText));
        for (const header of Object.keys(documented!.headers ?? {})) {
          expect(res.headers.get(header), `${pair}: header ${header}`).not.toBeNull();
        }
        if (documented!.content === undefined) {
          expect(body).toBe('');
          return;
        }
        const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
        expect(Object.keys(documented!.content), `${pair}: Content-Type ${type} is documented`).toContain(type);
        if (type !== 'application/json') return;
        const schema = documented!.content[type]!.schema!;
        expect(validateSchema(spec, schema, JSON.parse(body)), `${pair}: ${body.slice(0, 300)}`).toEqual([]);
      }, 60_000);
    }
  });
});

describe('the /docs page', () => {
  let api: ApiClient;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  it('is an HTML page whose scripts and styles load from the gateway itself with their media types', async () => {
    const res = await api.fetch('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(4);
    const types: Record<string, RegExp> = { js: /^text\/javascript/, css: /^text\/css/, png: /^image\/png/ };
    for (const asset of assets) {
      // No CDN: every URL is relative to the gateway.
      expect(asset, asset).not.toMatch(/^[a-z]+:|^\/\//i);
      const url = new URL(asset, 'http://gateway/docs').pathname;
      const file = await api.fetch(url);
      expect(file.status, url).toBe(200);
      expect(file.headers.get('content-type'), url).toMatch(types[url.split('.').pop()!]!);
      expect((await file.arrayBuffer()).byteLength, url).toBeGreaterThan(0);
    }
  });

  it('starts Swagger UI on /openapi.json', async () => {
    const html = await (await api.fetch('/docs')).text();
    const init = [...html.matchAll(/src="([^"]+)"/g)].map((m) => m[1]!).find((src) => src.endsWith('init.js'))!;
    const script = await (await api.fetch(new URL(init, 'http://gateway/docs').pathname)).text();
    expect(script).toMatch(/SwaggerUIBundle\(/);
    expect(new URL(/url: '([^']+)'/.exec(script)![1]!, 'http://gateway/docs').pathname).toBe('/openapi.json');
  });

  it('refuses files outside the ones the page loads', async () => {
    for (const path of ['/docs/package.json', '/docs/..%2Fpackage.json', '/docs/index.html']) {
      const res = await rawRequest(api.cluster.url, { path });
      expect(res.status, path).toBe(404);
      expect(JSON.parse(res.body).error.code).toBe('ROUTE_NOT_FOUND');
    }
  });
});

