import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiTarget, type ApiTarget } from './support.js';

describe('documents round-trip', () => {
  let cluster: ApiTarget;
  beforeAll(async () => {
    cluster = await apiTarget();
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  for (const strategy of ['replication', 'ec', 'field_hybrid'] as const) {
    it(`reads back member order and number text exactly under ${strategy}`, async () => {
      const text = '{"id":12345678901234567890,"like_count":5,"price":19.99,"one":1.0,"neg":-0,"big":1E400,"10":"ten","2":"two","text":"héllo \\u00e9 😀","stats":{"views":7,"deep":{"a":[1,2,{"b":null}]}}}';
      const res = await cluster.write(`rt/${strategy}`, text, `&strategy=${strategy}&hot_fields=like_count,/stats/views`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { strategy: string };
      expect(body.strategy).toBe(strategy);
      const read = await cluster.read(`rt/${strategy}`);
      expect(read.status).toBe(200);
      expect(read.headers.get('x-strata-strategy')).toBe(strategy);
      expect(await read.text()).toBe(text.replace('\\u00e9', 'é'));
    });
  }
});
