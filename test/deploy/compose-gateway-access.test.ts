/**
 * A gateway with the API keys docker-compose.yaml gives it (its header's instructions, run in a shell): clients
 * need the key, while what runs without one still does: Prometheus's scrape of /metrics (deploy/prometheus.yml
 * sends no credentials) and the health checks of compose and nginx.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { composeText, composeWith, operatorEnv } from './compose-file.js';

interface Compose {
  services: Record<string, { environment?: Record<string, string> }>;
}

let cluster: TestCluster;
let apiKey: string;

beforeAll(async () => {
  const text = await composeText();
  const operator = operatorEnv(text);
  apiKey = operator['STRATA_API_KEY']!;
  expect(apiKey, 'the header exports the key clients send as STRATA_API_KEY').toMatch(/^\S{16,}$/);
  const apiKeys = composeWith<Compose>(text, operator).services['api-1']!.environment!['STRATA_API_KEYS']!;
  cluster = await startTestCluster({ env: { STRATA_API_KEYS: apiKeys } });
});

afterAll(async () => {
  await cluster?.destroy();
});

describe("a gateway configured as docker-compose.yaml's", () => {
  it('refuses a client without the key, and serves one that sends it', async () => {
    const anonymous = await cluster.read('k');
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');

    const written = await cluster.write('k', { like_count: 1 }, '', { authorization: `Bearer ${apiKey}` });
    expect(written.status).toBe(200);
    expect((await cluster.read('k', '', { authorization: `Bearer ${apiKey}` })).status).toBe(200);
  });

  it('lets Prometheus scrape /metrics without a key', async () => {
    const response = await cluster.fetch('/metrics');
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(/^strata_http_requests_total\{/m);
  });

  it('answers the health checks of compose and nginx (/health/live) without a key', async () => {
    expect((await cluster.fetch('/health/live')).status).toBe(200);
  });
});
