/**
 * docker-compose.yaml, nginx.conf and deploy/prometheus.yml cannot be run here (no Docker engine), so this checks
 * that they agree with the code and with each other: the variables the services set are ones the config reads,
 * names and ports line up across files, the defaults are safe (ports on 127.0.0.1, an API key and Grafana's
 * password required, nginx looking the gateways up again), and nginx itself accepts nginx.conf (`nginx -t`).
 */
import { access, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../internal/config/config.js';
import { LIMITS } from '../../internal/core/limits.js';
import type { NodePool } from '../../internal/cluster/node-pool.js';
import { systemClock } from '../../internal/core/clock.js';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import type { Healer } from '../../internal/healer/healer.js';
import { measureErasureCode } from '../../internal/metrics/ec-metrics.js';
import { GatewayMetrics, watchNodePool } from '../../internal/metrics/gateway-metrics.js';
import { watchHealer } from '../../internal/metrics/healer-metrics.js';
import { GatewayHttpMetrics } from '../../internal/metrics/http-metrics.js';
import { StorageNodeMetrics } from '../../internal/metrics/node-metrics.js';
import { createProcessRegistry } from '../../internal/metrics/registry.js';
import { checkNginxConf, ensureNginx, NGINX_INFRA_LIMITS, RENDER_BLOCKS, renderNginxConf } from '../../scripts/infra/nginx.js';
import { composeWith, operatorEnv, parseCompose } from './compose-file.js';
import { ComposeInterpolationError, requiredVariables } from './compose-interpolation.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (file: string): Promise<string> => readFile(path.join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  environment?: Record<string, string | number | boolean | null>;
  volumes?: string[];
  ports?: (string | number | { target: number; published?: string | number; host_ip?: string })[];
  networks?: Record<string, { aliases?: string[] } | null> | string[];
  network_mode?: string;
  depends_on?: Record<string, unknown> | string[];
  healthcheck?: { test?: string[] | string };
}

interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** The compose file as written: `${...}` references not interpolated. */
let compose: Compose;
let composeText: string;
/** The variables the compose file's header tells an operator to export (its secrets). */
let operator: Record<string, string>;
/** The compose file as Compose runs it for that operator. */
let deployed: Compose;
let nginxConf: string;
/** internal/config/*.ts: the only code that reads process.env. */
let configSource: string;

beforeAll(async () => {
  composeText = await read('docker-compose.yaml');
  // The compose file shares environment blocks through YAML merge keys (`<<: *anchor`), as Compose does.
  compose = parseCompose<Compose>(composeText);
  operator = operatorEnv(composeText);
  deployed = composeWith<Compose>(composeText, operator);
  nginxConf = await read('nginx.conf');
  const configFiles = (await readdir(path.join(ROOT, 'internal', 'config'))).filter((f) => f.endsWith('.ts'));
  configSource = (await Promise.all(configFiles.map((f) => read(`internal/config/${f}`)))).join('\n');
});

// ---- helpers --------------------------------------------------------------------------------------------------

function env(service: Service): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, String(v)]));
}

/** The Strata entry point a service runs (`dist/cmd/api/main.js` -> `api`), or null for other images. */
function entryPoint(service: Service): string | null {
  const command = Array.isArray(service.command) ? service.command.join(' ') : (service.command ?? '');
  return /^dist\/cmd\/([a-z-]+)\/main\.js$/.exec(command)?.[1] ?? null;
}

function servicesRunning(name: string, file: Compose = compose): [string, Service][] {
  return Object.entries(file.services).filter(([, s]) => entryPoint(s) === name);
}

function strataServices(file: Compose = compose): [string, Service][] {
  return Object.entries(file.services).filter(([, s]) => entryPoint(s) !== null);
}

function commandArgs(service: Service): string[] {
  return Array.isArray(service.command) ? service.command : (service.command ?? '').split(/\s+/);
}

function flag(service: Service, name: string): string | undefined {
  const prefix = `--${name}=`;
  return commandArgs(service).find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

/** STRATA_NODES entries, as internal/config/config.ts parses them. */
function parseNodes(value: string): { id: string; host: string; port: number; zone: string | undefined }[] {
  return value.split(',').map((entry) => {
    const match = /^([A-Za-z0-9_-]+)=http:\/\/([^:/@]+):(\d+)(?:@([A-Za-z0-9_-]+))?$/.exec(entry.trim());
    if (match === null) throw new Error(`STRATA_NODES entry ${entry} is not id=http://host:port[@zone]`);
    return { id: match[1]!, host: match[2]!, port: Number(match[3]), zone: match[4] };
  });
}

interface PublishedPort {
  /** null: every interface of the host. */
  hostIp: string | null;
  /** null: a port Docker picks. */
  hostPort: string | null;
  containerPort: string;
}

/** A `ports:` entry in Compose's short (`[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`) or long syntax. */
function publishedPort(entry: NonNullable<Service['ports']>[number]): PublishedPort {
  if (typeof entry === 'object') {
    return { hostIp: entry.host_ip ?? null, hostPort: entry.published === undefined ? null : String(entry.published), containerPort: String(entry.target) };
  }
  const text = String(entry).replace(/\/(tcp|udp)$/, '');
  const bracketed = /^\[([^\]]+)\]:(.*)$/.exec(text);
  const [ip, rest] = bracketed !== null ? [bracketed[1]!, bracketed[2]!.split(':')] : [null, text.split(':')];
  if (ip !== null) return { hostIp: ip, hostPort: rest[0] ?? null, containerPort: rest.at(-1)! };
  if (rest.length === 3) return { hostIp: rest[0]!, hostPort: rest[1]!, containerPort: rest[2]! };
  if (rest.length === 2) return { hostIp: null, hostPort: rest[0]!, containerPort: rest[1]! };
  return { hostIp: null, hostPort: null, containerPort: rest[0]! };
}

/** Every published port of `file`, as `service -> port`. */
function publishedPorts(file: Compose): { service: string; port: PublishedPort }[] {
  return Object.entries(file.services).flatMap(([service, s]) => (s.ports ?? []).map((entry) => ({ service, port: publishedPort(entry) })));
}

/** The network aliases a service has on the compose file's default network. */
function defaultNetworkAliases(service: Service): string[] {
  if (service.networks === undefined || Array.isArray(service.networks)) return [];
  return service.networks['default']?.aliases ?? [];
}

/** The `server host:port ...;` lines of nginx.conf's strata_gateways upstream. */
function nginxUpstreams(conf: string): string[] {
  const block = /upstream\s+strata_gateways\s*\{([\s\S]*?)\n\s*\}/.exec(conf)?.[1] ?? '';
  return [...block.matchAll(/^\s*server\s+(\S+)[^;]*;/gm)].map((m) => m[1]!);
}

/** The `host:port` that the Docker lines of nginx.conf (in its `listen` block, which a local run drops) send requests to. */
function dockerUpstream(conf: string): string {
  const block = /# strata-render:begin listen\b[^\n]*\n([\s\S]*?)# strata-render:end listen/.exec(conf)?.[1] ?? '';
  const targets = [...directives(block).matchAll(/^\s*set\s+\$strata_upstream\s+([^;\s]+);/gm)].map((m) => m[1]!);
  expect(targets, 'one `set $strata_upstream host:port;` in the listen block').toHaveLength(1);
  return targets[0]!;
}

/** Directives of nginx.conf with comments removed, for checks on what is actually configured. */
function directives(conf: string): string {
  return conf
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, ''))
    .join('\n');
}

// ---- docker-compose.yaml ----------------------------------------------------------------------------------------

describe('docker-compose.yaml', () => {
  it('sets only STRATA_* variables that internal/config reads', () => {
    const read = new Set([...configSource.matchAll(/['"`](STRATA_[A-Z0-9_]+)['"`]/g)].map((m) => m[1]!));
    const unknown: string[] = [];
    for (const [name, service] of Object.entries(compose.services)) {
      for (const variable of Object.keys(env(service))) {
        if (variable.startsWith('STRATA_') && !read.has(variable)) unknown.push(`${name}: ${variable}`);
      }
    }
    expect(unknown, 'set in docker-compose.yaml but never read by internal/config').toEqual([]);
  });

  it("gives every Strata service an environment that the config accepts and reads as the compose file means it", () => {
    // As Compose runs it: ${STRATA_CLUSTER_TOKEN:?...} and the others filled from the operator's environment.
    for (const [name, service] of strataServices(deployed)) {
      const e = env(service);
      const config = loadConfig(e);
      if (e['STRATA_PORT'] !== undefined) expect(config.port, name).toBe(Number(e['STRATA_PORT']));
      if (e['STRATA_ETCD_ENDPOINTS'] !== undefined) expect(config.etcdEndpoints, name).toHaveLength(3);
      if (e['STRATA_NODES'] !== undefined) expect(config.nodes.map((n) => n.zone), name).toEqual(['zone-a', 'zone-a', 'zone-b', 'zone-b', 'zone-c', 'zone-c']);
    }
  });

  it('runs 3 gateways, 6 storage nodes, 2 healers, 3 etcd members and one Redpanda broker', () => {
    expect(servicesRunning('api').map(([n]) => n).sort()).toEqual(['api-1', 'api-2', 'api-3']);
    expect(servicesRunning('storage-node').map(([n]) => n).sort()).toEqual([1, 2, 3, 4, 5, 6].map((i) => `storage-node-${i}`));
    expect(servicesRunning('healer').map(([n]) => n).sort()).toEqual(['healer-1', 'healer-2']);
    const etcd = Object.entries(compose.services).filter(([, s]) => /\betcd\b/.test(s.image ?? ''));
    expect(etcd.map(([n]) => n).sort()).toEqual(['etcd-1', 'etcd-2', 'etcd-3']);
    expect(compose.services['redpanda']?.image).toMatch(/redpanda/);
    for (const service of ['nginx', 'prometheus', 'grafana']) expect(compose.services[service], service).toBeDefined();
  });

  it('runs every Strata service from a compiled entry point that exists, built by the Dockerfile', async () => {
    const dockerfile = await read('Dockerfile');
    for (const [name, service] of strataServices()) {
      const entry = entryPoint(service)!;
      await expect(access(path.join(ROOT, 'cmd', entry, 'main.ts')), name).resolves.toBeUndefined();
      // npm test builds dist/ before the suites run.
      await expect(access(path.join(ROOT, 'dist', 'cmd', entry, 'main.js')), name).resolves.toBeUndefined();
      expect(service.build, `${name} builds the project's image`).toBeDefined();
    }
    expect(dockerfile).toMatch(/^FROM node:26-bookworm-slim/m); // the newest LTS line, the one the whole suite runs on
    expect(dockerfile).toMatch(/npm ci/);
    expect(dockerfile).toMatch(/npm run build/);
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node"\]$/m);
    expect(dockerfile).not.toMatch(/tsx/);
    expect(dockerfile).toMatch(/python3/); // native dependencies are compiled at build time
  });

  it('makes gateways and storage nodes listen on all interfaces, so that other containers reach them', () => {
    for (const [name, service] of [...servicesRunning('api'), ...servicesRunning('storage-node')]) {
      expect(env(service)['STRATA_HOST'], name).toBe('0.0.0.0');
    }
  });

  it('shares one cluster token among all Strata services and takes it from the environment, not the file', () => {
    const tokens = new Set(strataServices().map(([, s]) => env(s)['STRATA_CLUSTER_TOKEN']));
    expect(tokens.size).toBe(1);
    const [token] = [...tokens];
    expect(token).toMatch(/^\$\{STRATA_CLUSTER_TOKEN:\?.+\}$/);
  });

  it('lists in STRATA_NODES of every gateway and healer exactly the storage-node services, with their ids, ports and zones', () => {
    const nodeServices = new Map(servicesRunning('storage-node'));
    for (const [name, service] of [...servicesRunning('api'), ...servicesRunning('healer')]) {
      const listed = parseNodes(env(service)['STRATA_NODES'] ?? '');
      expect(listed.map((n) => n.host).sort(), `${name}: STRATA_NODES hosts`).toEqual([...nodeServices.keys()].sort());
      for (const node of listed) {
        const nodeEnv = env(nodeServices.get(node.host)!);
        expect(node.id, `${name}: ${node.host}'s id`).toBe(nodeEnv['STRATA_NODE_ID']);
        expect(String(node.port), `${name}: ${node.host}'s port`).toBe(nodeEnv['STRATA_PORT']);
        expect(node.zone, `${name}: ${node.host}'s zone`).toBe(nodeEnv['STRATA_NODE_ZONE']);
      }
    }
  });

  it('gives every storage node its own volume at STRATA_DATA_DIR, its own id, and spreads them 2 per zone over 3 zones', () => {
    const volumes = new Set<string>();
    const ids = new Set<string>();
    const zones = new Map<string, number>();
    for (const [name, service] of servicesRunning('storage-node')) {
      const e = env(service);
      const dataDir = e['STRATA_DATA_DIR'];
      const mount = (service.volumes ?? []).find((v) => v.split(':')[1] === dataDir);
      expect(mount, `${name} mounts a volume at STRATA_DATA_DIR (${dataDir})`).toBeDefined();
      const volume = mount!.split(':')[0]!;
      expect(compose.volumes ?? {}, `${name}: ${volume} is a named volume`).toHaveProperty(volume);
      volumes.add(volume);
      ids.add(e['STRATA_NODE_ID']!);
      // The registry address gateways and healers will call: this service's own name and port.
      expect(e['STRATA_ADVERTISE_URL'], `${name} advertises its own address`).toBe(`http://${name}:${e['STRATA_PORT']}`);
      zones.set(e['STRATA_NODE_ZONE']!, (zones.get(e['STRATA_NODE_ZONE']!) ?? 0) + 1);
    }
    expect(volumes.size).toBe(6);
    expect(ids.size).toBe(6);
    expect([...zones.values()]).toEqual([2, 2, 2]);
  });

  it('points STRATA_ETCD_ENDPOINTS at the three etcd members, which form one cluster', () => {
    const members = ['etcd-1', 'etcd-2', 'etcd-3'];
    const expected = members.map((m) => `http://${m}:2379`);
    for (const [name, service] of strataServices()) {
      expect(env(service)['STRATA_ETCD_ENDPOINTS']?.split(',').sort(), name).toEqual(expected);
    }
    const initialCluster = members.map((m) => `${m}=http://${m}:2380`).join(',');
    for (const member of members) {
      const service = compose.services[member]!;
      expect(flag(service, 'name'), member).toBe(member);
      expect(flag(service, 'initial-cluster'), member).toBe(initialCluster);
      expect(flag(service, 'initial-advertise-peer-urls'), member).toBe(`http://${member}:2380`);
      expect(flag(service, 'advertise-client-urls'), member).toBe(`http://${member}:2379`);
      expect(flag(service, 'listen-client-urls'), member).toMatch(/:2379$/);
      expect(flag(service, 'initial-cluster-state'), member).toBe('new');
      expect(new Set(members.map((m) => flag(compose.services[m]!, 'initial-cluster-token'))).size).toBe(1);
    }
  });

  it("points STRATA_KAFKA_BROKERS of gateways and healers at Redpanda's advertised listener", () => {
    const redpanda = compose.services['redpanda']!;
    const advertised = (flag(redpanda, 'advertise-kafka-addr') ?? '').replace(/^[A-Za-z_]+:\/\//, '');
    expect(advertised).toBe('redpanda:9092');
    for (const [name, service] of [...servicesRunning('api'), ...servicesRunning('healer')]) {
      const e = env(service);
      expect(e['STRATA_KAFKA_BROKERS'], name).toBe(advertised);
      expect(e['STRATA_KAFKA_TOPIC'], name).toMatch(/^[a-zA-Z0-9._-]+$/);
      expect(Number(e['STRATA_KAFKA_PARTITIONS']), name).toBeGreaterThanOrEqual(1);
    }
  });

  it('health-checks each gateway and storage node on its own STRATA_PORT', () => {
    for (const [name, service] of [...servicesRunning('api'), ...servicesRunning('storage-node')]) {
      const test = [service.healthcheck?.test ?? []].flat().join(' ');
      const port = env(service)['STRATA_PORT'];
      expect(test.includes(`:${port}/`) || test.includes('process.env.STRATA_PORT'), `${name}: ${test}`).toBe(true);
    }
  });
});

describe('docker-compose.yaml defaults', () => {
  /** Who may set each published port's address, and so open it beyond this host. */
  const BIND_VARIABLES: Record<string, string> = { nginx: 'STRATA_BIND_ADDRESS', prometheus: 'MONITORING_BIND_ADDRESS', grafana: 'MONITORING_BIND_ADDRESS' };

  it('publishes every port on 127.0.0.1 only, unless the operator names another address', () => {
    const ports = publishedPorts(deployed);
    expect(ports.map((p) => p.service).sort()).toEqual(['grafana', 'nginx', 'prometheus']);
    for (const { service, port } of ports) expect(port.hostIp, `${service}: ${port.containerPort}`).toBe('127.0.0.1');
    for (const [service, s] of Object.entries(compose.services)) expect(s.network_mode, `${service} shares the host's network`).not.toBe('host');
    // Each address comes from one variable, with 127.0.0.1 as its default.
    for (const [service, s] of Object.entries(compose.services)) {
      for (const entry of s.ports ?? []) expect(String(entry), service).toMatch(new RegExp(`^\\$\\{${BIND_VARIABLES[service]}:-127\\.0\\.0\\.1\\}:`));
    }
  });

  it('publishes nginx, and Prometheus and Grafana, on the addresses their variables name', () => {
    const opened = composeWith<Compose>(composeText, { ...operator, STRATA_BIND_ADDRESS: '0.0.0.0', MONITORING_BIND_ADDRESS: '10.0.0.5' });
    const addresses = Object.fromEntries(publishedPorts(opened).map(({ service, port }) => [`${service}:${port.hostPort}`, port.hostIp]));
    expect(addresses).toEqual({ 'nginx:8000': '0.0.0.0', 'prometheus:9090': '10.0.0.5', 'grafana:3000': '10.0.0.5' });
  });

  it('requires an API key on every gateway, taken from the environment', () => {
    const gateways = servicesRunning('api');
    expect(gateways.length).toBeGreaterThan(0);
    for (const [name, service] of gateways) {
      // `:?`, not `?`: an empty value is refused too, since a gateway without keys is open to everyone.
      expect(env(service)['STRATA_API_KEYS'], name).toMatch(/^\$\{STRATA_API_KEYS:\?[^}]+\}$/);
      expect(env(service)['STRATA_API_KEYS_FILE'], name).toBeUndefined();
    }
    for (const [name, service] of servicesRunning('api', deployed)) {
      expect(loadConfig(env(service)).apiKeys.map((k) => k.id), name).toEqual(['admin']);
    }
  });

  it("takes Grafana's admin password from the environment, with no default", () => {
    const grafana = env(compose.services['grafana']!);
    expect(grafana['GF_SECURITY_ADMIN_PASSWORD']).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}$/);
    expect(Object.keys(grafana).filter((k) => k.startsWith('GF_SECURITY_ADMIN_PASSWORD__'))).toEqual([]);
    expect(env(deployed.services['grafana']!)['GF_SECURITY_ADMIN_PASSWORD']).toBe(operator['GRAFANA_ADMIN_PASSWORD']);
  });

  it('refuses to start without any one of its secrets, or with it empty, and names the one that is missing', () => {
    const required = [...new Set(requiredVariables(composeText))].sort();
    expect(required).toEqual(['GRAFANA_ADMIN_PASSWORD', 'STRATA_API_KEYS', 'STRATA_CLUSTER_TOKEN']);
    // The header's instructions export every one of them.
    expect(Object.keys(operator).filter((name) => required.includes(name)).sort()).toEqual(required);
    for (const name of required) {
      for (const value of [undefined, '']) {
        expect(() => composeWith(composeText, { ...operator, [name]: value }), `${name}=${String(value)}`).toThrow(ComposeInterpolationError);
        expect(() => composeWith(composeText, { ...operator, [name]: value })).toThrow(new RegExp(`required variable ${name} is missing a value: \\S`));
      }
    }
  });
});

// ---- monitoring -------------------------------------------------------------------------------------------------

describe('deploy/prometheus.yml and Grafana', () => {
  it('scrapes every Strata process of the compose file on its port', async () => {
    const prometheus = parse(await read('deploy/prometheus.yml')) as {
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    const targets = prometheus.scrape_configs
      .filter((job) => job.job_name.startsWith('strata-'))
      .flatMap((job) => job.static_configs.flatMap((c) => c.targets));
    // A healer serves /metrics on STRATA_HEALER_PORT; gateways and storage nodes on STRATA_PORT.
    const port = (name: string, s: Service): string | undefined =>
      entryPoint(s) === 'healer' ? env(s)['STRATA_HEALER_PORT'] : env(s)['STRATA_PORT'];
    const expected = strataServices().map(([name, s]) => `${name}:${port(name, s)}`);
    for (const [name, s] of strataServices()) expect(port(name, s), `${name} sets its metrics port`).toMatch(/^\d+$/);
    for (const [name, s] of servicesRunning('healer')) expect(env(s)['STRATA_HOST'], name).toBe('0.0.0.0');
    expect(targets.sort()).toEqual(expected.sort());
    expect(compose.services['prometheus']?.volumes).toContain('./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
  });

  it('provisions Grafana with the Prometheus service as its data source', async () => {
    const grafana = compose.services['grafana']!;
    const mount = (grafana.volumes ?? []).find((v) => v.endsWith(':/etc/grafana/provisioning:ro'));
    expect(mount).toBeDefined();
    const datasources = parse(await read(path.join(mount!.split(':')[0]!, 'datasources', 'prometheus.yml'))) as {
      datasources: { type: string; url: string }[];
    };
    const port = /--web\.listen-address=.*:(\d+)/.exec(commandArgs(compose.services['prometheus']!).join(' '))?.[1] ?? '9090';
    expect(datasources.datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: `http://prometheus:${port}` })]);
  });
});

describe('the Grafana dashboard', () => {
  interface Panel {
    type: string;
    title: string;
    datasource?: { uid?: string };
    targets?: { expr: string }[];
  }
  interface Dashboard {
    uid: string;
    panels: Panel[];
    templating: { list: { definition?: string }[] };
  }
  let dashboard: Dashboard;
  let provider: { providers: { options: { path: string } }[] };

  beforeAll(async () => {
    dashboard = JSON.parse(await read('deploy/grafana/dashboards/strata.json')) as Dashboard;
    provider = parse(await read('deploy/grafana/provisioning/dashboards/strata.yml')) as typeof provider;
  });

  /** Every metric name a query of the dashboard uses (Strata's and Node's process metrics). */
  function queriedMetrics(): Set<string> {
    const exprs = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      ...dashboard.templating.list.map((v) => v.definition ?? ''),
    ];
    return new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:strata|process|nodejs)_[a-zA-Z0-9_]+)/g)].map((m) => m[1]!)));
  }

  it('queries only metric names the processes export', () => {
    const exported = exportedMetricNames();
    const unknown = [...queriedMetrics()].filter((name) => !exported.has(name));
    expect(unknown, 'queried by the dashboard but exported by no Strata process').toEqual([]);
  });

  it('has a panel for every metric the issue asks for', () => {
    const queried = queriedMetrics();
    for (const name of [
      'strata_http_requests_total',
      'strata_http_request_duration_seconds_bucket',
      'strata_pure_hot_updates_total',
      'strata_updates_total',
      'strata_ec_encode_seconds_bucket',
      'strata_ec_decode_seconds_bucket',
      'strata_blobstore_fsync_batch_appends_bucket',
      'strata_blobstore_fsync_seconds_bucket',
      'strata_degraded_reads_total',
      'strata_healer_repairs_total',
      'strata_healer_repair_backlog',
      'strata_healer_objects_below_full_protection',
      'strata_healer_wal_unresolved_intents',
      'strata_manifest_cache_hits_total',
      'strata_manifest_cache_misses_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(queried.has(name), name).toBe(true);
    }
  });

  it('reads from the provisioned Prometheus data source and is loaded by the provisioned provider from the mounted folder', async () => {
    const datasources = parse(await read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string }[] };
    const uid = datasources.datasources[0]!.uid;
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) expect(panel.datasource?.uid, panel.title).toBe(uid);
    const mount = (compose.services['grafana']!.volumes ?? []).find((v) => v.startsWith('./deploy/grafana/dashboards:'));
    expect(mount?.split(':')[1]).toBe(provider.providers[0]!.options.path);
  });
});

/**
 * The names every Strata process exports, from the code itself: the instruments registered on a registry by the
 * same functions the wiring calls (their collect callbacks never run here), histograms with their series suffixes.
 */
function exportedMetricNames(): Set<string> {
  const registry = createProcessRegistry({ processMetrics: true });
  const gateway = new GatewayMetrics(registry);
  gateway.watchManifestCache({ stats: { hits: 0, misses: 0, bypasses: 0, currentRevisionCalls: 0, resets: 0 }, size: 0 });
  watchNodePool(registry, {} as NodePool);
  new GatewayHttpMetrics(registry);
  new StorageNodeMetrics(registry);
  measureErasureCode(new ReedSolomonCode(), registry);
  watchHealer(registry, {} as Healer, systemClock);
  const names = new Set<string>();
  for (const metric of registry.getMetricsAsArray()) {
    const { name, type } = metric as unknown as { name: string; type: string };
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

// ---- nginx.conf against docker-compose.yaml ----------------------------------------------------------------------

describe('nginx.conf', () => {
  it('sends requests, in Docker, to the name that exactly the compose gateways carry, on their STRATA_PORT', () => {
    const target = dockerUpstream(nginxConf);
    expect(target).toMatch(/^[a-z0-9-]+:\d+$/);
    const [host, port] = target.split(':');
    const carriers = Object.entries(deployed.services).filter(([, s]) => defaultNetworkAliases(s).includes(host!));
    expect(carriers.map(([n]) => n).sort()).toEqual(servicesRunning('api').map(([n]) => n).sort());
    for (const [name, service] of carriers) expect(env(service)['STRATA_PORT'], name).toBe(port);
  });

  it("looks the gateways' name up through Docker's DNS every few seconds, so that a recreated gateway is found", () => {
    const conf = directives(nginxConf);
    const resolver = /^\s*resolver\s+([^;]+);/m.exec(conf)?.[1]?.split(/\s+/) ?? [];
    expect(resolver[0], "Docker's embedded DNS server").toBe('127.0.0.11');
    const validS = Number(/^valid=(\d+)s$/.exec(resolver.find((p) => p.startsWith('valid=')) ?? '')?.[1]);
    expect(validS).toBeGreaterThan(0);
    expect(validS).toBeLessThanOrEqual(10);
    expect(resolver).toContain('ipv6=off');
    expect(conf).toMatch(/^\s*resolver_timeout\s+\d+s;/m);
    // nginx looks a name up per request only when proxy_pass takes it from a variable, and only when it is not an
    // upstream block's (those are resolved once, at start).
    const [host] = dockerUpstream(nginxConf).split(':');
    expect(conf).not.toMatch(new RegExp(`upstream\\s+${host}\\s*\\{`));
    // Nor does nginx need a gateway to start: the upstream block names addresses, no host names.
    for (const server of nginxUpstreams(nginxConf)) expect(server).toMatch(/^\d+\.\d+\.\d+\.\d+:\d+$/);
  });

  it('is mounted by the nginx service, which publishes its listen port', () => {
    const nginx = compose.services['nginx']!;
    expect(nginx.volumes).toContain('./nginx.conf:/etc/nginx/nginx.conf:ro');
    const listen = /^\s*listen\s+(?:[^\s;]*:)?(\d+)/m.exec(directives(nginxConf))?.[1];
    expect((nginx.ports ?? []).map((p) => String(p).split(':').at(-1))).toContain(listen);
    const dependsOn = Array.isArray(nginx.depends_on) ? nginx.depends_on : Object.keys(nginx.depends_on ?? {});
    expect(dependsOn.sort()).toEqual(servicesRunning('api').map(([n]) => n).sort());
  });

  it('passes requests without a URI, so that encoded keys reach the gateway as sent', () => {
    const passes = [...directives(nginxConf).matchAll(/proxy_pass\s+([^;]+);/g)].map((m) => m[1]!.trim());
    // One location for everything, and one for /watch without response buffering: both pass the target as sent,
    // to the gateways' name (Docker) or upstream block (a local run).
    expect(passes.length).toBeGreaterThanOrEqual(1);
    for (const pass of passes) expect(pass).toBe('http://$strata_upstream');
    expect(directives(nginxConf)).toMatch(/merge_slashes\s+off;/);
  });

  it('passes the change feed (/watch) without buffering it', () => {
    const watch = /location\s+=\s+\/watch\s*\{([^}]*)\}/.exec(directives(nginxConf))?.[1] ?? '';
    expect(watch).toMatch(/proxy_pass\s+http:\/\/\$strata_upstream;/);
    expect(watch).toMatch(/proxy_buffering\s+off;/);
  });

  it('retries on connection errors and timeouts only, never replaying non-idempotent requests', () => {
    const conf = directives(nginxConf);
    const policy = /proxy_next_upstream\s+([^;]+);/.exec(conf)?.[1]?.split(/\s+/);
    expect(policy).toEqual(['error', 'timeout']);
    expect(conf).not.toMatch(/non_idempotent/);
    // The gateways' JSON errors must pass through as they are.
    expect(conf).not.toMatch(/proxy_intercept_errors\s+on/);
  });

  it('leaves daemon, pid and user to the command line, so that the same file runs in Docker and in tests', () => {
    // scripts/infra/nginx.ts passes `-g "daemon off; pid ...;"`, which nginx refuses when the file sets them too,
    // and a `user` line would name an account that exists in one of the two places only.
    expect(directives(nginxConf)).not.toMatch(/^\s*(daemon|pid|user)\s/m);
  });

  it('accepts bodies above the gateway limit, so that the gateway answers its own 413', () => {
    const size = /client_max_body_size\s+(\d+)([km]?);/.exec(directives(nginxConf));
    expect(size).not.toBeNull();
    const bytes = Number(size![1]) * ({ '': 1, k: 1024, m: 1024 * 1024 } as Record<string, number>)[size![2]!]!;
    expect(bytes).toBeGreaterThan(LIMITS.bodyBytesMax);
  });

  it("closes idle upstream connections before the gateway's keep-alive timeout does", async () => {
    const server = await read('internal/wiring/http-server.ts');
    const gatewayMs = Number(/keepAliveTimeout:\s*([\d_]+)/.exec(server)?.[1]?.replace(/_/g, ''));
    const upstream = /upstream\s+strata_gateways\s*\{[\s\S]*?keepalive_timeout\s+(\d+)s;/.exec(directives(nginxConf));
    expect(upstream).not.toBeNull();
    expect(Number(upstream![1]) * 1000).toBeLessThan(gatewayMs);
  });

  it('answers every error nginx itself generates with a JSON body', () => {
    const conf = directives(nginxConf);
    for (const status of [400, 408, 413, 500, 502, 503, 504]) {
      const page = new RegExp(`error_page\\s+${status}\\s+(?:=\\d+\\s+)?(\\S+);`).exec(conf)?.[1];
      expect(page, `error_page ${status}`).toBeDefined();
      // The location's first `return`: its bodies are one line each, and contain braces.
      const location = new RegExp(`location\\s+=\\s+${page!.replace(/[/.]/g, '\\$&')}\\s*\\{[^']*?return\\s+(\\d+)\\s+'(.*)';`).exec(conf);
      expect(location?.[1], `the status of ${page}`).toBe(status === 494 ? '431' : String(status));
      const body = location?.[2];
      expect(body, `the body of ${page}`).toBeDefined();
      // Unescape nginx's quoting, then expect the API's error shape.
      const json = JSON.parse(body!.replace(/\\n$/, '').replace(/\\(["'\\])/g, '$1').replace(/\$strata_unavailable_hint/g, 'x')) as {
        error: { code: string; message: string };
      };
      expect(json.error.code, `code of ${page}`).toMatch(/^[A-Z_]+$/);
      expect(json.error.message.length).toBeGreaterThan(10);
    }
  });
});

// ---- nginx itself -------------------------------------------------------------------------------------------------

describe('nginx -t', () => {
  beforeAll(async () => {
    await ensureNginx();
  }, NGINX_INFRA_LIMITS.installTimeoutMs);

  it('accepts nginx.conf rendered for a local run', async () => {
    await expect(checkNginxConf({ upstreams: ['127.0.0.1:18000', '127.0.0.1:18001', '127.0.0.1:18002'] })).resolves.toMatch(/test is successful/);
  });

  it('renders nginx.conf by changing only the marked blocks', () => {
    const rendered = renderNginxConf(nginxConf, { upstreams: ['127.0.0.1:1'], port: 2, prefix: '/tmp/strata-nginx-x' });
    const outsideBlocks = (text: string): string => {
      let result = text;
      for (const block of RENDER_BLOCKS) {
        result = result.replace(new RegExp(`# strata-render:begin ${block}\\b[\\s\\S]*?# strata-render:end ${block}\\b`), `<${block}>`);
      }
      return result;
    };
    expect(outsideBlocks(rendered)).toBe(outsideBlocks(nginxConf));
    expect(nginxUpstreams(rendered)).toEqual(['127.0.0.1:1']);
    expect(rendered).toMatch(/server 127\.0\.0\.1:1 max_fails=\d+ fail_timeout=\d+s;/); // the template's parameters kept
  });

  it('sends requests, in a local run, to the upstream block the render fills with the gateways', () => {
    const rendered = directives(renderNginxConf(nginxConf, { upstreams: ['127.0.0.1:1'], port: 2, prefix: '/tmp/strata-nginx-x' }));
    const targets = [...rendered.matchAll(/^\s*set\s+\$strata_upstream\s+([^;\s]+);/gm)].map((m) => m[1]!);
    expect(targets).toEqual(['strata_gateways']);
    expect(rendered).toMatch(/upstream\s+strata_gateways\s*\{/);
  });
});
