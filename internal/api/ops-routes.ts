/**
 * Operations routes of api.md: health, cluster view, node status and storage usage, each a route definition
 * (route-definition.ts) documented in GET /openapi.json.
 */
import { baseHotRefs, extraReplicaRefs } from '../manifest/manifest.js';
import { EC_WRITE_QUORUM } from '../core/limits.js';
import type { GatewayDeps } from './gateway-deps.js';
import type { MetadataIntegrity } from '../metadata/metadata-store.js';
import { gcHoldOf } from './healer-routes.js';
import { errorBody } from './errors.js';
import { writability, type Writability } from './capacity-view.js';
import { EfficiencyAccumulator } from '../efficiency/storage-efficiency.js';
import { EfficiencySchema, PrefixDepthQuery } from './storage-usage-view.js';
import { createRoute, defineRoute, errorResponses, jsonResponse, z, type GatewayApp } from './route-definition.js';

/** Manifests scanned per page by /storage_usage. */
const USAGE_SCAN_PAGE = 1000;

const tags = ['operations'];
const NodeStateSchema = z.enum(['healthy', 'down']).openapi('NodeState');
const nullableInt = z.number().int().nullable();

export const healthRoute = createRoute({
  method: 'get',
  path: '/health',
  tags,
  summary: 'Liveness with a summary of the cluster (always 200 while the process serves)',
  responses: {
    200: jsonResponse('Serving', z.strictObject({
      status: z.literal('healthy'),
      service: z.literal('api_gateway'),
      nodes_healthy: z.number().int(),
      nodes_total: z.number().int(),
      metadata: z.string().openapi({ description: 'metadata backend' }),
      wal: z.string().openapi({ description: 'write-ahead log backend' }),
    })),
  },
});

export const liveRoute = createRoute({
  method: 'get',
  path: '/health/live',
  tags,
  summary: 'Liveness: 200 while the process serves',
  responses: { 200: jsonResponse('Alive', z.strictObject({ status: z.literal('alive') })) },
});

export const readyRoute = createRoute({
  method: 'get',
  path: '/health/ready',
  tags,
  summary: `Readiness: the metadata store answers and at least ${EC_WRITE_QUORUM} storage nodes are up (a write quorum)`,
  responses: {
    200: jsonResponse('Ready', z.strictObject({
      status: z.literal('ready'),
      warnings: z.array(z.string()).optional().openapi({ description: 'metadata integrity problems that do not stop serving (damaged records are refused one by one)' }),
      writable: z.boolean().openapi({ description: 'false while writes are refused with 507 DISK_FULL (the disk is down to its reserve, or too few storage nodes have room); reads and deletes still work, so the gateway stays ready' }),
      writable_reason: z.string().nullable().openapi({ description: 'what is full and how to free space; null while writable' }),
    })),
    503: jsonResponse(
      'Not ready, with the reasons; retry after Retry-After',
      z.strictObject({
        status: z.literal('not_ready'),
        problems: z.array(z.string()),
        error: z.strictObject({ code: z.enum(['INSUFFICIENT_NODES']), message: z.string() }),
      }),
      { 'Retry-After': { description: 'seconds', schema: { type: 'string', pattern: '^[0-9]+$' } } },
    ),
  },
});

export const clusterRoute = createRoute({
  method: 'get',
  path: '/cluster',
  tags,
  summary: 'Storage nodes with their state and usage, the healer leader, the backends and the repair backlog',
  responses: {
    200: jsonResponse('The cluster as this gateway sees it', z.strictObject({
      nodes: z.array(z.strictObject({
        id: z.string(),
        address: z.string(),
        zone: z.string().nullable(),
        state: NodeStateSchema,
        draining: z.boolean(),
        last_seen: z.string().nullable().openapi({ description: 'ISO 8601' }),
        last_error: z.string().nullable(),
        bytes_used: nullableInt,
        bytes_free: nullableInt,
        blobs: nullableInt,
        writable: z.boolean().openapi({ description: 'takes new blobs (false: its disk is down to its reserve; placement skips it)' }),
        full_reason: z.string().nullable(),
      })),
      capacity: z.strictObject({
        writable: z.boolean(),
        reason: z.string().nullable().openapi({ description: 'why writes are refused with 507 DISK_FULL, and how to free space' }),
        nodes_with_room: z.number().int(),
        data_dir: z.strictObject({
          dir: z.string(),
          free_bytes: z.number().int(),
          total_bytes: z.number().int(),
          reserve_bytes: z.number().int().openapi({ description: 'kept for deletes, compaction and the databases (sizing: docs/disk-full.md)' }),
          ballast_bytes: z.number().int().openapi({ description: 'the reserve held as a file; 0 while it is released to deletes and compaction' }),
          writable_bytes: z.number().int(),
        }).nullable().openapi({ description: 'the local data directory (all-in-one); null for a gateway that keeps no data' }),
      }),
      healer_leader: z.string().nullable(),
      metadata_backend: z.string(),
      wal_backend: z.string(),
      repair_backlog: nullableInt.openapi({ description: 'manifests below full protection at the last audit; null before the first' }),
      metadata_integrity: z.strictObject({
        corrupt_records: z.number().int().openapi({ description: 'metadata records that failed verification since this gateway opened the store' }),
        recent: z.array(z.strictObject({ at: z.string(), kind: z.string(), key: z.string(), where: z.string(), why: z.string() })),
        last_check_passed: z.string().nullable().openapi({ description: 'ISO 8601 start of the last passing full integrity check (embedded store); null for etcd or none yet' }),
        last_check_failure: z.string().nullable(),
        problems: z.array(z.string()),
        gc_hold: z.string().nullable().openapi({ description: 'why garbage collection and rollback delete nothing now' }),
      }),
    })),
  },
});

export const nodeStatusRoute = createRoute({
  method: 'get',
  path: '/node_status',
  tags,
  summary: 'Each storage node address and its state',
  responses: { 200: jsonResponse('Node address -> state', z.record(z.string(), NodeStateSchema)) },
});

export const storageUsageRoute = createRoute({
  method: 'get',
  path: '/storage_usage',
  tags,
  summary: 'Bytes stored against logical bytes (a scan of the manifests: its cost grows with the number of keys)',
  request: { query: z.object({ prefix_depth: PrefixDepthQuery }) },
  responses: {
    200: jsonResponse('Usage', z.strictObject({
      total_system_size: z.number().int().openapi({ description: 'bytes of blobs referenced by live manifests' }),
      logical_bytes: z.number().int(),
      amplification: z.number(),
      live_keys: z.number().int(),
      pending_gc_bytes: z.number().int().openapi({ description: 'payload bytes of blobs stored but no longer referenced, waiting for the healer to delete them' }),
      reclaimable_bytes: z.number().int().openapi({ description: 'bytes of the nodes\' volume files that compaction would give back now (deleted and superseded blobs, tombstones), summed over the nodes that answered' }),
      reclaimed_bytes: z.number().int().openapi({ description: 'bytes compaction gave back since each node started, summed over the nodes that answered' }),
      per_node: z.record(z.string(), z.strictObject({
        state: NodeStateSchema,
        blobs: nullableInt,
        stored_bytes: nullableInt,
        referenced_bytes: z.number().int(),
        reclaimable_bytes: nullableInt,
        reclaimed_bytes: nullableInt,
      })),
      extra_replica_bytes: z.number().int().openapi({ description: 'extra replicas of read-heavy documents: temporary, not in total_system_size' }),
      efficiency: EfficiencySchema,
    })),
    ...errorResponses('INVALID_REQUEST', 'METADATA_UNAVAILABLE'),
  },
});

export function registerOpsRoutes(app: GatewayApp, deps: GatewayDeps, extras: { repairBacklog?: () => number | null } = {}): void {
  defineRoute(app, healthRoute, (c) =>
    c.json({
      status: 'healthy',
      service: 'api_gateway',
      nodes_healthy: deps.pool.healthyCount(),
      nodes_total: deps.pool.size,
      metadata: deps.backends.metadata,
      wal: deps.backends.wal,
    }),
  );

  defineRoute(app, liveRoute, (c) => c.json({ status: 'alive' }));

  defineRoute(app, readyRoute, async (c) => {
    const problems: string[] = [];
    try {
      await deps.metadata.currentRevision();
    } catch (error) {
      problems.push(`metadata store unreachable: ${(error as Error).message}`);
    }
    const healthy = deps.pool.healthyCount();
    if (healthy < EC_WRITE_QUORUM) problems.push(`only ${healthy} storage nodes are up; ${EC_WRITE_QUORUM} are needed for a write quorum`);
    if (problems.length > 0) {
      c.header('Retry-After', '1');
      return c.json({ status: 'not_ready', problems, ...errorBody('INSUFFICIENT_NODES', problems.join('; ')) }, 503);
    }
    // A damaged record fails only its own requests, and a full disk only writes: the gateway stays ready (load
    // balancers must keep routing reads and the deletes that free space) and says what is wrong.
    const warnings = deps.metadata.integrity().problems;
    const capacity = writability(deps.pool, deps.capacity, deps.metadata);
    const write = { writable: capacity.writable, writable_reason: capacity.reason };
    return c.json(warnings.length > 0 ? { status: 'ready' as const, warnings, ...write } : { status: 'ready' as const, ...write });
  });

  defineRoute(app, clusterRoute, async (c) => {
    const views = deps.pool.views();
    const usage = await Promise.all(
      views.map(async (v) => {
        if (v.state !== 'healthy') return null;
        try {
          return await deps.pool.client(v.id)!.usage({ timeoutMs: 2000 });
        } catch {
          return null;
        }
      }),
    );
    let leader: string | null = null;
    try {
      leader = await deps.metadata.currentLeader(deps.healerLockName);
    } catch {
      leader = null;
    }
    return c.json({
      nodes: views.map((v, i) => ({
        id: v.id,
        address: v.address,
        zone: v.zone ?? null,
        state: v.state,
        draining: v.draining,
        last_seen: v.lastSeenMs === null ? null : new Date(v.lastSeenMs).toISOString(),
        last_error: v.lastError,
        bytes_used: usage[i]?.bytesUsed ?? null,
        bytes_free: usage[i]?.bytesFree ?? null,
        blobs: usage[i]?.blobs ?? null,
        writable: v.writable,
        full_reason: v.fullReason,
      })),
      capacity: capacityView(writability(deps.pool, deps.capacity, deps.metadata)),
      healer_leader: leader,
      metadata_backend: deps.backends.metadata,
      wal_backend: deps.backends.wal,
      repair_backlog: extras.repairBacklog?.() ?? null,
      metadata_integrity: integrityView(deps.metadata.integrity()),
    });
  });

  defineRoute(app, nodeStatusRoute, (c) => {
    const out: Record<string, string> = {};
    for (const v of deps.pool.views()) out[v.address] = v.state;
    return c.json(out);
  });

  defineRoute(app, storageUsageRoute, async (c, { query }) => {
    const efficiency = new EfficiencyAccumulator(query.prefix_depth);
    // A full scan of the manifests: exact, and linear in the number of keys (counters kept at commit
    // time would make it constant).
    let logical = 0;
    let referenced = 0;
    let liveKeys = 0;
    let extraReplicaBytes = 0;
    const referencedByNode = new Map<string, number>();
    let after: string | null = null;
    for (;;) {
      const page = await deps.metadata.scan(after, USAGE_SCAN_PAGE);
      for (const { manifest } of page) {
        if (manifest.deleted) continue;
        liveKeys++;
        efficiency.add(manifest);
        logical += manifest.bytes.logical;
        // Extra replicas of read-heavy documents are temporary: reported apart, outside the space figures.
        for (const ref of extraReplicaRefs(manifest)) if (ref.state !== 'missing') extraReplicaBytes += ref.size;
        for (const ref of [...baseHotRefs(manifest), ...manifest.cold]) {
          if (ref.state === 'missing') continue;
          referenced += ref.size;
          referencedByNode.set(ref.node, (referencedByNode.get(ref.node) ?? 0) + ref.size);
        }
      }
      if (page.length < USAGE_SCAN_PAGE) break;
      after = page[page.length - 1]!.manifest.key;
    }
    const perNode: Record<string, unknown> = {};
    let stored = 0;
    let reclaimable = 0;
    let reclaimed = 0;
    await Promise.all(
      deps.pool.views().map(async (v) => {
        let storedBytes: number | null = null;
        let blobs: number | null = null;
        let nodeReclaimable: number | null = null;
        let nodeReclaimed: number | null = null;
        try {
          const usage = await deps.pool.client(v.id)!.usage({ timeoutMs: 2000 });
          storedBytes = usage.payloadBytes ?? usage.bytesUsed;
          blobs = usage.blobs;
          stored += storedBytes;
          nodeReclaimable = usage.reclaimableBytes ?? null;
          nodeReclaimed = usage.reclaimedBytes ?? null;
          reclaimable += nodeReclaimable ?? 0;
          reclaimed += nodeReclaimed ?? 0;
        } catch {
          storedBytes = null;
        }
        perNode[v.id] = {
          state: v.state,
          blobs,
          stored_bytes: storedBytes,
          referenced_bytes: referencedByNode.get(v.id) ?? 0,
          reclaimable_bytes: nodeReclaimable,
          reclaimed_bytes: nodeReclaimed,
        };
      }),
    );
    const pending = Math.max(0, stored - referenced - extraReplicaBytes);
    return c.json({
      total_system_size: referenced,
      logical_bytes: logical,
      amplification: logical > 0 ? Math.round((referenced / logical) * 1000) / 1000 : 0,
      live_keys: liveKeys,
      pending_gc_bytes: pending,
      reclaimable_bytes: reclaimable,
      reclaimed_bytes: reclaimed,
      per_node: perNode,
      extra_replica_bytes: extraReplicaBytes,
      efficiency: efficiency.report(),
    });
  });
}

function capacityView(w: Writability) {
  const local = w.local;
  return {
    writable: w.writable,
    reason: w.reason,
    nodes_with_room: w.nodesWithRoom,
    data_dir:
      local === null
        ? null
        : {
            dir: local.dir,
            free_bytes: local.freeBytes,
            total_bytes: local.totalBytes,
            reserve_bytes: local.reserveBytes,
            ballast_bytes: local.ballastBytes,
            writable_bytes: local.writableBytes,
          },
  };
}

function integrityView(integrity: MetadataIntegrity) {
  return {
    corrupt_records: integrity.corruptRecords,
    recent: integrity.recent.map((s) => ({ at: new Date(s.atMs).toISOString(), kind: s.kind, key: s.key, where: s.where, why: s.why })),
    last_check_passed: integrity.checks?.lastPassedAtMs == null ? null : new Date(integrity.checks.lastPassedAtMs).toISOString(),
    last_check_failure: integrity.checks?.lastFailure ?? null,
    problems: integrity.problems,
    gc_hold: gcHoldOf(integrity),
  };
}
