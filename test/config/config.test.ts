import { describe, expect, it } from 'vitest';
import os from 'node:os';
import { ConfigError, DEFAULT_HOT_FIELDS, defaultAdvertiseUrl, loadConfig } from '../../internal/config/config.js';

describe('configuration', () => {
  it('has working defaults for npm start', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8000);
    expect(config.nodeCount).toBe(6);
    expect(config.defaultStrategy).toBe('field_hybrid');
    expect(config.defaultHotFields).toEqual(DEFAULT_HOT_FIELDS);
    expect(config.dataDir.endsWith('/data')).toBe(true);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('names the variable in every error', () => {
    const cases: [Record<string, string>, string][] = [
      [{ STRATA_PORT: 'x' }, 'STRATA_PORT'],
      [{ STRATA_PORT: '70000' }, 'STRATA_PORT'],
      [{ STRATA_DEFAULT_STRATEGY: 'raid5' }, 'STRATA_DEFAULT_STRATEGY'],
      [{ STRATA_NODE_TRANSPORT: 'pigeon' }, 'STRATA_NODE_TRANSPORT'],
      [{ STRATA_HOT_FIELDS_BY_PREFIX: '[1]' }, 'STRATA_HOT_FIELDS_BY_PREFIX'],
      [{ STRATA_HOT_FIELDS_BY_PREFIX: '{"a:": "x"}' }, 'STRATA_HOT_FIELDS_BY_PREFIX'],
      [{ STRATA_NODES: 'node-1=ftp://x' }, 'STRATA_NODES'],
      [{ STRATA_CLUSTER_TOKEN: 'short' }, 'STRATA_CLUSTER_TOKEN'],
      [{ STRATA_LOG_LEVEL: 'loud' }, 'STRATA_LOG_LEVEL'],
      [{ STRATA_NODE_COUNT: '5' }, 'STRATA_NODE_COUNT'],
      [{ STRATA_GC_GRACE_MS: '100', STRATA_INTENT_TIMEOUT_MS: '1000' }, 'STRATA_GC_GRACE_MS'],
      [{ STRATA_NODE_ID: 'node 1' }, 'STRATA_NODE_ID'],
      [{ STRATA_NODE_ZONE: 'zone/a' }, 'STRATA_NODE_ZONE'],
      [{ STRATA_ADVERTISE_URL: '10.0.0.7:8101' }, 'STRATA_ADVERTISE_URL'],
      [{ STRATA_NODE_TTL_MS: '1000' }, 'STRATA_NODE_TTL_MS'],
    ];
    for (const [env, name] of cases) {
      expect(() => loadConfig(env), JSON.stringify(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(name);
    }
  });

  it('parses node lists with zones and per-prefix hot fields', () => {
    const config = loadConfig({
      STRATA_NODES: 'node-1=http://10.0.0.1:8101@zone-a, node-2=http://10.0.0.2:8101/',
      STRATA_HOT_FIELDS_BY_PREFIX: '{"user:": ["like_count", "/stats/views"]}',
      STRATA_HOT_FIELDS: 'a, b ,c',
    });
    expect(config.nodes).toEqual([
      { id: 'node-1', address: 'http://10.0.0.1:8101', zone: 'zone-a' },
      { id: 'node-2', address: 'http://10.0.0.2:8101' },
    ]);
    expect(config.hotFieldsByPrefix.get('user:')).toEqual(['like_count', '/stats/views']);
    expect(config.defaultHotFields).toEqual(['a', 'b', 'c']);
  });

  it('registers a storage node at its listen address unless STRATA_ADVERTISE_URL says otherwise', () => {
    expect(loadConfig({}).advertiseUrl).toBeNull();
    expect(loadConfig({}).nodeTtlMs).toBe(10_000);
    expect(loadConfig({}).nodeDownGraceMs).toBe(600_000);
    expect(loadConfig({ STRATA_ADVERTISE_URL: 'http://storage-node-3:8101/' }).advertiseUrl).toBe('http://storage-node-3:8101');
    expect(defaultAdvertiseUrl('10.0.0.7', 8101)).toBe('http://10.0.0.7:8101');
    // A wildcard listen address cannot be dialled; the host name stands in for it.
    expect(defaultAdvertiseUrl('0.0.0.0', 8101)).toBe(`http://${os.hostname()}:8101`);
  });
});
