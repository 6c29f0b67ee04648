import { randomBytes } from 'node:crypto';
/**
 * Operations endpoints. The tests run in order: the healthy cluster first, then with one and two storage nodes
 * stopped, then with them back. Against an external target (support.ts) the node-stopping tests skip themselves:
 * they stop nodes in-process; test/cluster/backend-outage.test.ts kills nodes of the local cluster instead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, internalsOrSkip, startApi, type ApiClient } from './support.js';
import { waitUntil } from '../helpers/wait.js';

interface ClusterBody {
  nodes: {
    id: string;
    address: string;
    zone: string | null;
    state: string;
    bytes_used: number | null;
    bytes_free: number | null;
  }[];
  healer_leader: string | null;
  metadata_backend: string;
  wal_backend: string;
  repair_backlog: number | null;
}

// Large and incompressible enough to be erasure coded over all six nodes.
const OPS_DOC = { like_count: 1, body: randomBytes(48 * 1024).toString('base64') };

describe('operations endpoints', () => {
  let api: ApiClient;

  beforeAll(async () => {
    api = await startApi();
    // Large and incompressible enough to be erasure coded over all six nodes (small cold parts stay with the
    // three replicas), so that every node holds bytes.
    await api.put('ops/doc', OPS_DOC);
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  async function json<T>(path: string, allow5xx = false): Promise<{ res: Response; body: T }> {
    const res = await api.fetch(path, { allow5xx });
    return { res, body: (await res.json()) as T };
  }

  /**
   * Probes until the pool reflects the nodes' state. One `pool.probe()` can return before probing when the
   * background probe is running at the same moment, so this repeats it until the expectation holds.
   */
  async function probeUntil(check: () => Promise<boolean>): Promise<void> {
    await waitUntil('the node pool to reach the expected state', async () => {
      await api.cluster.internals!.pool.probe();
      return check();
    });
  }

  async function nodeStatus(): Promise<Record<string, string>> {
    return (await json<Record<string, string>>('/node_status')).body;
  }

  describe('with every node up', () => {
    it('GET /health answers healthy for the api_gateway service', async () => {
      const { res, body } = await json<Record<string, unknown>>('/health');
      expect(res.status).toBe(200);
      expect(body).toMatchObject({ status: 'healthy', service: 'api_gateway', nodes_healthy: 6, nodes_total: 6 });
    });

    it('GET /health/live answers 200', async () => {
      const { res } = await json('/health/live');
      expect(res.status).toBe(200);
    });

    it('GET /health/ready answers 200', async () => {
      const { res, body } = await json<{ status: string }>('/health/ready');
      expect(res.status).toBe(200);
      expect(body.status).toBe('ready');
    });

    it('GET /cluster lists six healthy nodes with their bytes, the backends and the healer leader', async () => {
      const internals = api.cluster.internals;
      // In-process the healer runs only when called; an external cluster's healers elect a leader by themselves.
      if (internals) await internals.healer.runOnce();
      const { res, body } = await json<ClusterBody>('/cluster');
      expect(res.status).toBe(200);
      expect(body.nodes.map((n) => n.id)).toEqual(['node-1', 'node-2', 'node-3', 'node-4', 'node-5', 'node-6']);
      // The addresses the nodes were started on; an external target's are known only from /node_status.
      const addresses = internals ? internals.nodes.map((n) => n.address) : Object.keys(await nodeStatus());
      for (const [i, node] of body.nodes.entries()) {
        expect(node.address).toBe(addresses[i]);
        expect(node.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(node).toHaveProperty('zone');
        expect(node.state).toBe('healthy');
        expect(node.bytes_used).toEqual(expect.any(Number));
        expect(node.bytes_free).toEqual(expect.any(Number));
        expect(node.bytes_used!).toBeGreaterThan(0);
        expect(node.bytes_free!).toBeGreaterThan(0);
      }
      expect(body.healer_leader).toEqual(expect.any(String));
      expect(body.healer_leader!.length).toBeGreaterThan(0);
      // In-process: the embedded backends. An external cluster may run either kind.
      expect(body.metadata_backend).toMatch(internals ? /SQLite/i : /SQLite|etcd/i);
      expect(body.wal_backend).toMatch(internals ? /SQLite/i : /SQLite|kafka/i);
      expect(body).toHaveProperty('repair_backlog');
    });

    it('GET /node_status maps every node address to healthy', async () => {
      const status = await nodeStatus();
      const internals = api.cluster.internals;
      const addresses = internals
        ? internals.nodes.map((n) => n.address)
        : (await json<ClusterBody>('/cluster')).body.nodes.map((n) => n.address);
      expect(addresses).toHaveLength(6);
      expect(status).toEqual(Object.fromEntries(addresses.map((address) => [address, 'healthy'])));
    });
  });

  describe('with storage nodes stopped', () => {
    const needs = 'stops storage nodes in-process';

    it('shows a stopped node as down in /node_status and /cluster, and stays ready with five nodes up', async (context) => {
      const stopped = internalsOrSkip(api, context, needs).nodes[5]!;
      await stopped.stop();
      await probeUntil(async () => (await nodeStatus())[stopped.address] === 'down');
      const status = await nodeStatus();
      expect(Object.values(status).filter((s) => s === 'down')).toHaveLength(1);
      expect(Object.values(status).filter((s) => s === 'healthy')).toHaveLength(5);
      const { body } = await json<ClusterBody>('/cluster');
      const view = body.nodes.find((n) => n.id === stopped.id)!;
      expect(view.state).toBe('down');
      expect(view.bytes_used).toBeNull();
      const ready = await api.fetch('/health/ready');
      expect(ready.status).toBe(200);
      // Five nodes are still a write quorum.
      expect((await api.write('ops/five-up', { a: 1 })).status).toBe(200);
    });

    it('answers /health/ready 503 with Retry-After when two nodes are down (4 < a quorum of 5)', async (context) => {
      const second = internalsOrSkip(api, context, needs).nodes[4]!;
      await second.stop();
      await probeUntil(async () => (await nodeStatus())[second.address] === 'down');
      const res = await api.fetch('/health/ready', { allow5xx: true });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('INSUFFICIENT_NODES');
      expect(body.error.message).toMatch(/4 storage nodes/);
    });

    it('keeps /health and /health/live at 200 while not ready', async (context) => {
      internalsOrSkip(api, context, needs);
      expect((await api.fetch('/health/live')).status).toBe(200);
      const { res, body } = await json<{ nodes_healthy: number }>('/health');
      expect(res.status).toBe(200);
      expect(body.nodes_healthy).toBe(4);
    });

    it('becomes ready again once the nodes are back', async (context) => {
      const internals = internalsOrSkip(api, context, needs);
      await internals.nodes[4]!.start();
      await internals.nodes[5]!.start();
      await probeUntil(async () => Object.values(await nodeStatus()).every((s) => s === 'healthy'));
      const ready = await api.fetch('/health/ready');
      expect(ready.status).toBe(200);
      expect(await (await api.read('ops/doc')).json()).toEqual(OPS_DOC);
    });
  });

  describe('other endpoints api.md lists', () => {
    it('serves Prometheus text at GET /metrics, counting the requests it has served by route', async () => {
      await api.read('ops/doc');
      const res = await api.fetch('/metrics');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      expect(text).toMatch(/^# TYPE strata_http_requests_total counter$/m);
      expect(text).toMatch(/^strata_http_requests_total\{[^}]*route="\/read\/\*"[^}]*\} [1-9]\d*$/m);
    });
    // test/api/openapi.test.ts checks the document against every route and status in depth.
    it('serves the OpenAPI 3 description at GET /openapi.json, generated from the route schemas', async () => {
      const { res, body } = await json<{ openapi: string; paths: Record<string, Record<string, unknown>> }>('/openapi.json');
      expect(res.status).toBe(200);
      expect(res.headers.get('etag')).toMatch(/^"[^"]+"$/);
      expect(body.openapi).toMatch(/^3\.\d+\.\d+$/);
      for (const path of ['/health', '/health/ready', '/cluster', '/node_status', '/storage_usage']) {
        expect(Object.keys(body.paths[path] ?? {}), path).toContain('get');
      }
    });

    it('serves interactive API documentation at GET /docs', async () => {
      const res = await api.fetch('/docs');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      const page = await res.text();
      expect(page).toContain('swagger-ui-bundle.js');
      const script = await api.fetch('/docs/swagger-ui-bundle.js');
      expect(script.status).toBe(200);
      expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
      expect((await script.arrayBuffer()).byteLength).toBeGreaterThan(0);
    });

    it('answers HEAD on the ops routes like GET without a body', async () => {
      for (const path of ['/health', '/health/live', '/cluster', '/node_status', '/storage_usage']) {
        const res = await api.fetch(path, { method: 'HEAD' });
        expect(res.status, path).toBe(200);
        expect(await res.text()).toBe('');
      }
    });

    it('answers 405 METHOD_NOT_ALLOWED for a write method on an ops route', async () => {
      const res = await api.fetch('/health', { method: 'POST' });
      await expectError(res, 405, 'METHOD_NOT_ALLOWED');
    });
  });
});
