/**
 * Two gateways over the same metadata store and nodes (as two gateway processes would be): concurrent patches
 * of one key race on the compare-and-set, and every patch must still land exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import { systemClock } from '../../internal/core/clock.js';
import { silentLogger } from '../../internal/log/logger.js';
import { buildGateway } from '../../internal/wiring/gateway.js';
import { serveApp, type HttpServerHandle } from '../../internal/wiring/http-server.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

describe('two gateways writing one key', () => {
  let cluster: TestCluster;
  let second: HttpServerHandle;
  beforeAll(async () => {
    cluster = await startTestCluster();
    const gateway = buildGateway({
      config: cluster.config,
      metadata: cluster.metadata,
      wal: cluster.wal,
      pool: cluster.pool,
      ec: new ReedSolomonCode(),
      clock: systemClock,
      log: silentLogger,
      backends: { metadata: 'embedded', wal: 'embedded' },
    });
    second = await serveApp(gateway.app, '127.0.0.1', 0);
  });
  afterAll(async () => {
    await second.close();
    await cluster.destroy();
  });

  it('loses no update when patches race through both gateways', async () => {
    const key = 'race/doc';
    expect((await cluster.write(key, { like_count: 0, body: 'x'.repeat(5000) })).status).toBe(200);
    const gateways = [cluster.url, second.address];
    const patches = Array.from({ length: 40 }, (_, i) =>
      fetch(`${gateways[i % 2]}/patch/${encodeURIComponent(key)}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json' },
        // Half the patches change the cold part (a new member), half only the hot counter's neighbour.
        body: JSON.stringify(i % 4 === 0 ? { [`member_${i}`]: i } : { [`member_${i}`]: i, like_count: i }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { version?: string } })),
    );
    const outcomes = await Promise.all(patches);
    for (const o of outcomes) expect(o.status, JSON.stringify(o.body)).toBe(200);
    const versions = outcomes.map((o) => BigInt(o.body.version!));
    expect(new Set(versions).size).toBe(40);
    const doc = (await (await cluster.read(key)).json()) as Record<string, unknown>;
    for (let i = 0; i < 40; i++) expect(doc[`member_${i}`], `patch ${i} is in the document`).toBe(i);
    const stat = (await (await fetch(`${second.address}/stat/${encodeURIComponent(key)}`)).json()) as { version: string };
    expect(BigInt(stat.version)).toBe(versions.reduce((a, b) => (a > b ? a : b)));
  });

  it('reads on one gateway what the other just acknowledged', async () => {
    for (let i = 0; i < 20; i++) {
      const key = `ryw/${i}`;
      const put = await fetch(`${gateways()[i % 2]}/write?key=${encodeURIComponent(key)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ like_count: i, n: i }),
      });
      const { version } = (await put.json()) as { version: string };
      const read = await fetch(`${gateways()[(i + 1) % 2]}/read/${encodeURIComponent(key)}`);
      expect(read.headers.get('x-strata-version')).toBe(version);
      expect(await read.json()).toEqual({ like_count: i, n: i });
    }
  });

  function gateways(): string[] {
    return [cluster.url, second.address];
  }
});
