/**
 * Operations routes of api.md: health, cluster view, node status and storage usage.
 */
import type { Hono } from 'hono';
import { EC_WRITE_QUORUM } from '../core/limits.js';
import type { GatewayDeps } from './gateway-deps.js';
import { errorBody } from './errors.js';

/** Manifests scanned per page by /storage_usage. */
const USAGE_SCAN_PAGE = 1000;

export function registerOpsRoutes(app: Hono, deps: GatewayDeps, extras: { repairBacklog?: () => number | null } = {}): void {
  app.get('/health', (c) =>
    c.json({
      status: 'healthy',
      service: 'api_gateway',
      nodes_healthy: deps.pool.healthyCount(),
      nodes_total: deps.pool.size,
      metadata: deps.backends.metadata,
      wal: deps.backends.wal,
    }),
  );

  app.get('/health/live', (c) => c.json({ status: 'alive' }));

  app.get('/health/ready', async (c) => {
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
    return c.json({ status: 'ready' });
  });

  app.get('/cluster', async (c) => {
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
      })),
      healer_leader: leader,
      metadata_backend: deps.backends.metadata,
      wal_backend: deps.backends.wal,
      repair_backlog: extras.repairBacklog?.() ?? null,
    });
  });

  app.get('/node_status', (c) => {
    const out: Record<string, string> = {};
    for (const v of deps.pool.views()) out[v.address] = v.state;
    return c.json(out);
  });

  app.get('/storage_usage', async (c) => {
    // A full scan of the manifests: exact, and linear in the number of keys. The access-statistics issue
    // replaces it with counters kept at commit time.
    let logical = 0;
    let referenced = 0;
    let liveKeys = 0;
    const referencedByNode = new Map<string, number>();
    let after: string | null = null;
    for (;;) {
      const page = await deps.metadata.scan(after, USAGE_SCAN_PAGE);
      for (const { manifest } of page) {
        if (manifest.deleted) continue;
        liveKeys++;
        logical += manifest.bytes.logical;
        for (const ref of [...manifest.hot, ...manifest.cold]) {
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
    await Promise.all(
      deps.pool.views().map(async (v) => {
        let storedBytes: number | null = null;
        let blobs: number | null = null;
        try {
          const usage = await deps.pool.client(v.id)!.usage({ timeoutMs: 2000 });
          storedBytes = usage.payloadBytes ?? usage.bytesUsed;
          blobs = usage.blobs;
          stored += storedBytes;
        } catch {
          storedBytes = null;
        }
        perNode[v.id] = {
          state: v.state,
          blobs,
          stored_bytes: storedBytes,
          referenced_bytes: referencedByNode.get(v.id) ?? 0,
        };
      }),
    );
    const pending = Math.max(0, stored - referenced);
    return c.json({
      total_system_size: referenced,
      logical_bytes: logical,
      amplification: logical > 0 ? Math.round((referenced / logical) * 1000) / 1000 : 0,
      live_keys: liveKeys,
      pending_gc_bytes: pending,
      reclaimable_bytes: pending,
      per_node: perNode,
    });
  });
}
