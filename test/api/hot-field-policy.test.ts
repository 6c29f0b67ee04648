/**
 * Which fields are hot: the request's hot_fields, else the fields pinned for the key's prefix (longest prefix
 * wins), else the configured default list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiTarget, type ApiTarget } from './support.js';

interface WriteAnswer {
  hot_fields: string[];
  bytes: { hot: number; cold: number };
}

describe('hot-field policy', () => {
  let cluster: ApiTarget;
  beforeAll(async () => {
    cluster = await apiTarget({
      env: {
        STRATA_HOT_FIELDS: 'score,/meta/seen',
        STRATA_HOT_FIELDS_BY_PREFIX: JSON.stringify({ 'user:': ['likes'], 'user:vip:': ['likes', '/stats/views'] }),
      },
    });
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  const doc = { likes: 1, score: 2, meta: { seen: 3, other: 4 }, stats: { views: 5 }, body: 'b' };

  async function hotFieldsOf(key: string, query = ''): Promise<string[]> {
    const res = await cluster.write(key, doc, query);
    expect(res.status).toBe(200);
    return ((await res.json()) as WriteAnswer).hot_fields;
  }

  it('uses the configured default list for keys without a pinned prefix', async () => {
    expect(await hotFieldsOf('other:1')).toEqual(['score', '/meta/seen']);
  });

  it('uses the fields pinned for the key prefix', async () => {
    expect(await hotFieldsOf('user:1')).toEqual(['likes']);
  });

  it('lets the longest matching prefix win', async () => {
    expect(await hotFieldsOf('user:vip:7')).toEqual(['likes', '/stats/views']);
  });

  it('lets hot_fields on the request override every policy', async () => {
    expect(await hotFieldsOf('user:vip:8', '&hot_fields=body')).toEqual(['body']);
  });

  it('records the fields in force and serves projections of them from the hot tier alone', async () => {
    await hotFieldsOf('user:vip:9');
    const stat = (await (await cluster.fetch('/stat/user%3Avip%3A9')).json()) as { configured_hot_fields: string[] };
    expect(stat.configured_hot_fields).toEqual(['likes', '/stats/views']);
    const read = await cluster.read('user:vip:9', '?fields=/stats/views,likes');
    expect(read.headers.get('x-strata-cold-read')).toBe('0');
    expect(await read.json()).toEqual({ stats: { views: 5 }, likes: 1 });
  });
});
