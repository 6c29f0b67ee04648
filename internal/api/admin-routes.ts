/**
 * Admin routes of api.md ("Admin"): the node registry as operators change it. Draining a node takes it out of
 * placement for new writes (gateways and healers see it within their registry refresh, about a second); the
 * healer then moves its blobs elsewhere and reports it empty; removing it is refused until then.
 *
 * These routes change the cluster: expose them only to operators (e.g. restrict /admin/ at the proxy).
 */
import { EC_TOTAL_SHARDS } from '../core/limits.js';
import { StrataError } from '../core/errors.js';
import { allRefs } from '../manifest/manifest.js';
import type { RegisteredNode } from '../metadata/metadata-store.js';
import type { GatewayDeps } from './gateway-deps.js';
import { registerFormatVersionRoutes } from './format-version-routes.js';
import { createRoute, defineRoute, errorResponses, jsonResponse, z, type GatewayApp } from './route-definition.js';

/** Manifests read per page when checking that a node is empty before removing it. */
const EMPTY_CHECK_SCAN_PAGE = 1000;

const tags = ['admin'];
const NodeIdPath = z.string().openapi({ description: 'a storage node id as the registry holds it', example: 'node-7' });
const RegisteredNodeSchema = z
  .strictObject({
    id: z.string(),
    address: z.string(),
    zone: z.string().nullable(),
    state: z.enum(['active', 'draining']),
    alive: z.boolean().openapi({ description: 'its heartbeat lease has not expired' }),
    last_heartbeat: z.string().openapi({ description: 'ISO 8601' }),
  })
  .openapi('RegisteredNode');
const NodeResultSchema = z.strictObject({ node: RegisteredNodeSchema });

export const listNodesRoute = createRoute({
  method: 'get',
  path: '/admin/nodes',
  tags,
  summary: 'The node registry (operators only)',
  responses: {
    200: jsonResponse('Registered storage nodes', z.strictObject({ nodes: z.array(RegisteredNodeSchema) })),
    ...errorResponses('METADATA_UNAVAILABLE'),
  },
});

export const drainNodeRoute = createRoute({
  method: 'post',
  path: '/admin/nodes/{id}/drain',
  tags,
  summary: 'Drain a node: no new writes; the healer moves its blobs elsewhere (idempotent)',
  request: { params: z.object({ id: NodeIdPath }) },
  responses: {
    200: jsonResponse('Draining', NodeResultSchema),
    ...errorResponses('NODE_NOT_FOUND', 'TOO_FEW_ACTIVE_NODES', 'METADATA_UNAVAILABLE'),
  },
});

export const activateNodeRoute = createRoute({
  method: 'post',
  path: '/admin/nodes/{id}/activate',
  tags,
  summary: 'Take a draining node back into placement',
  request: { params: z.object({ id: NodeIdPath }) },
  responses: {
    200: jsonResponse('Active', NodeResultSchema),
    ...errorResponses('NODE_NOT_FOUND', 'METADATA_UNAVAILABLE'),
  },
});

export const removeNodeRoute = createRoute({
  method: 'delete',
  path: '/admin/nodes/{id}',
  tags,
  summary: 'Remove a drained node that no live manifest references any more',
  request: { params: z.object({ id: NodeIdPath }) },
  responses: {
    200: jsonResponse('Removed', z.strictObject({ removed: z.string() })),
    ...errorResponses('NODE_NOT_FOUND', 'NODE_NOT_DRAINED', 'NODE_NOT_EMPTY', 'METADATA_UNAVAILABLE'),
  },
});

export function registerAdminRoutes(app: GatewayApp, deps: GatewayDeps): void {
  defineRoute(app, listNodesRoute, async (c) => {
    const nodes = await deps.metadata.listNodes();
    return c.json({ nodes: nodes.map(nodeBody) });
  });

  defineRoute(app, drainNodeRoute, async (c, { params: { id } }) => {
    const nodes = await deps.metadata.listNodes();
    const node = findNode(nodes, id);
    if (node.state !== 'draining') {
      const remaining = activeNodeIds(deps, nodes);
      remaining.delete(id);
      if (remaining.size < EC_TOTAL_SHARDS) {
        throw new StrataError(
          'TOO_FEW_ACTIVE_NODES',
          `draining "${id}" would leave ${remaining.size} active storage nodes; writes need ${EC_TOTAL_SHARDS} (add a node first)`,
          { activeNodes: remaining.size, needed: EC_TOTAL_SHARDS },
        );
      }
      await deps.metadata.setNodeState(id, 'draining');
    }
    return c.json({ node: nodeBody({ ...node, state: 'draining' }) });
  });

  defineRoute(app, activateNodeRoute, async (c, { params: { id } }) => {
    const node = findNode(await deps.metadata.listNodes(), id);
    if (node.state !== 'active') await deps.metadata.setNodeState(id, 'active');
    return c.json({ node: nodeBody({ ...node, state: 'active' }) });
  });

  defineRoute(app, removeNodeRoute, async (c, { params: { id } }) => {
    const node = findNode(await deps.metadata.listNodes(), id);
    if (node.state !== 'draining') {
      throw new StrataError('NODE_NOT_DRAINED', `storage node "${id}" is ${node.state}; drain it first (POST /admin/nodes/${id}/drain)`, {
        node: id,
        state: node.state,
      });
    }
    const blobs = await referencedBlobs(deps, id);
    if (blobs > 0) {
      throw new StrataError(
        'NODE_NOT_EMPTY',
        `storage node "${id}" still holds ${blobs} referenced blobs; the healer is moving them (its report lists the node in drainComplete when done)`,
        { node: id, blobs },
      );
    }
    // A write planned before the drain could still commit a blob onto the node between this scan and the
    // removal; the healer then finds that ref on a node that is no longer a member and rebuilds it elsewhere.
    await deps.metadata.removeNode(id);
    return c.json({ removed: id });
  });

  registerFormatVersionRoutes(app, deps);
}

function findNode(nodes: readonly RegisteredNode[], id: string): RegisteredNode {
  const node = nodes.find((n) => n.id === id);
  if (!node) throw new StrataError('NODE_NOT_FOUND', `no storage node "${id}" is registered`, { node: id });
  return node;
}

/** Active nodes as the registry and this gateway's static list (STRATA_NODES) know them. */
function activeNodeIds(deps: GatewayDeps, nodes: readonly RegisteredNode[]): Set<string> {
  const registered = new Map(nodes.map((n) => [n.id, n]));
  const ids = new Set(nodes.filter((n) => n.state === 'active').map((n) => n.id));
  for (const node of deps.pool.placementNodes()) {
    if (!registered.has(node.id) && node.draining !== true) ids.add(node.id);
  }
  return ids;
}

/** Refs to `nodeId` in live manifests: a full scan, so its cost grows with the number of keys. */
async function referencedBlobs(deps: GatewayDeps, nodeId: string): Promise<number> {
  let count = 0;
  let after: string | null = null;
  for (;;) {
    const page = await deps.metadata.scan(after, EMPTY_CHECK_SCAN_PAGE);
    for (const { manifest } of page) {
      if (manifest.deleted) continue;
      for (const ref of allRefs(manifest)) if (ref.node === nodeId) count++;
    }
    if (page.length < EMPTY_CHECK_SCAN_PAGE) return count;
    after = page[page.length - 1]!.manifest.key;
  }
}

function nodeBody(node: RegisteredNode) {
  return {
    id: node.id,
    address: node.address,
    zone: node.zone ?? null,
    state: node.state,
    alive: node.alive,
    last_heartbeat: new Date(node.lastHeartbeatMs).toISOString(),
  };
}
