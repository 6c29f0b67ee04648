/**
 * nginx.conf as Docker runs it, in real nginx: the gateways are found by name through a DNS server, looked up again
 * every few seconds, so that a gateway container recreated on a new address is reached without a reload.
 *
 * Docker's DNS server (127.0.0.11) is replaced by a small one of the test's (./dns-responder.ts), and the gateways'
 * name by one that server answers; everything else is the repository's text, rendered by scripts/infra/nginx.ts as
 * for every other nginx test. The gateways are small HTTP servers on 127.0.0.1 and 127.0.0.2, on one port.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureNginx, freePort, NGINX_CONF_PATH, NGINX_INFRA_LIMITS, startNginx, type RunningNginx } from '../../scripts/infra/nginx.js';
import { waitUntil } from '../helpers/wait.js';
import { startDnsResponder, type DnsResponder } from './dns-responder.js';

/** The gateways' name in this test; `.test` is reserved for testing (RFC 2606). */
const GATEWAYS_NAME = 'gateways.strata.test';
/** Tries at finding one port free on both loopback addresses. */
const SHARED_PORT_ATTEMPTS_MAX = 20;

/**
 * The repository's nginx.conf with Docker's DNS server and gateway name replaced. The render keeps only the listen
 * line of the `listen` block, where the Docker line naming the gateways lives, so that line moves to just after
 * the block, where the render keeps it.
 */
function dockerTemplate(conf: string, options: { dnsPort: number; gatewayPort: number }): string {
  const resolver = /^(\s*resolver\s+)127\.0\.0\.11(\s[^;]*;)/m;
  expect(conf, "nginx.conf names Docker's DNS server in a resolver line").toMatch(resolver);
  let text = conf.replace(resolver, `$1127.0.0.1:${options.dnsPort}$2`);
  const dockerLine = /^([ \t]*)set\s+\$strata_upstream\s+[a-z0-9.-]+:\d+;[ \t]*\n/m;
  const block = /# strata-render:begin listen\b[\s\S]*?# strata-render:end listen[^\n]*\n/.exec(text);
  expect(block?.[0], 'the listen block sets $strata_upstream to host:port').toMatch(dockerLine);
  const indent = dockerLine.exec(block![0])![1]!;
  const moved = block![0].replace(dockerLine, '') + `${indent}set $strata_upstream ${GATEWAYS_NAME}:${options.gatewayPort};\n`;
  text = text.slice(0, block!.index) + moved + text.slice(block!.index + block![0].length);
  return text;
}

interface FakeGateway {
  /** Requests it answered. */
  readonly requests: number;
  close(): Promise<void>;
}

/** A gateway stand-in that names itself in every answer; GET /watch is a stream that sends one event and stays open. */
function fakeGateway(name: string): { server: Server; gateway: FakeGateway } {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    if (req.url === '/watch') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(`data: ${name}\n\n`);
      return; // held open until the client or close() ends it
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ gateway: name }));
  });
  return {
    server,
    gateway: {
      get requests() {
        return requests;
      },
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Gateway `a` on 127.0.0.1 and gateway `b` on 127.0.0.2, on the same free port (the name resolves to addresses only). */
async function twoGateways(): Promise<{ port: number; a: FakeGateway; b: FakeGateway }> {
  for (let attempt = 1; attempt <= SHARED_PORT_ATTEMPTS_MAX; attempt++) {
    const b = fakeGateway('b');
    const port = await listen(b.server, 0, '127.0.0.2');
    const a = fakeGateway('a');
    try {
      await listen(a.server, port, '127.0.0.1');
      return { port, a: a.gateway, b: b.gateway };
    } catch (err) {
      await b.gateway.close();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error(`no port was free on both 127.0.0.1 and 127.0.0.2 in ${SHARED_PORT_ATTEMPTS_MAX} tries`);
}

interface Setup {
  nginx: RunningNginx;
  dns: DnsResponder;
  port: number;
  a: FakeGateway;
  b: FakeGateway;
}

const cleanups: (() => Promise<void>)[] = [];

/** The DNS server (answering `addresses` for the name), both gateways, and nginx in front of them by name. */
async function setUp(addresses: readonly string[]): Promise<Setup> {
  const dns = await startDnsResponder(GATEWAYS_NAME);
  cleanups.push(() => dns.close());
  dns.answer(addresses);
  const { port, a, b } = await twoGateways();
  cleanups.push(() => a.close(), () => b.close());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-nginx-dns-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const templatePath = path.join(dir, 'nginx.conf');
  await writeFile(templatePath, dockerTemplate(await readFile(NGINX_CONF_PATH, 'utf8'), { dnsPort: dns.port, gatewayPort: port }));
  // The upstream block is not used here; a closed port makes any request that reached it fail loudly.
  const nginx = await startNginx({ upstreams: [`127.0.0.1:${await freePort()}`], templatePath });
  // First stopped: nginx's workers hold connections to the gateways.
  cleanups.unshift(() => nginx.stop());
  return { nginx, dns, port, a, b };
}

/**
 * A client on one kept-alive connection to nginx, so that every request meets the same nginx worker: each worker
 * caches DNS answers of its own, and a worker that had never asked would prove nothing about expiry.
 */
class OneConnectionClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  /** The local port of every request's connection. */
  readonly localPorts = new Set<number>();

  constructor(private readonly nginx: RunningNginx) {
    cleanups.push(async () => this.agent.destroy());
  }

  /** The gateway that answered GET /read/some-key, or the status and body of another answer. */
  whoAnswers(): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = http.get(`${this.nginx.url}/read/some-key`, { agent: this.agent }, (res) => {
        this.localPorts.add(res.socket.localPort!);
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve(res.statusCode === 200 ? (JSON.parse(body) as { gateway: string }).gateway : `status ${res.statusCode}: ${body}`);
        });
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }
}

beforeAll(async () => {
  await ensureNginx();
}, NGINX_INFRA_LIMITS.installTimeoutMs);

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe("nginx in front of gateways found by name (nginx.conf's Docker lines)", () => {
  it('reaches a gateway recreated at a new address without a reload, once the cached answer expires', async () => {
    const { nginx, dns, a } = await setUp(['127.0.0.1']);
    const client = new OneConnectionClient(nginx);
    expect(await client.whoAnswers()).toBe('a');
    const queriesBefore = dns.queries;

    // The container is recreated: the old one is gone, the new one has another address. Until the worker's
    // cached answer expires, its requests go to the old address and fail (502).
    await a.close();
    dns.answer(['127.0.0.2']);
    await waitUntil('nginx to reach the gateway at its new address', async () => (await client.whoAnswers()) === 'b');
    expect(dns.queries).toBe(queriesBefore + 1);
    expect(client.localPorts.size, 'every request went over one connection, so to one worker').toBe(1);
    const log = await readFile(nginx.errorLogPath, 'utf8');
    expect(log, 'no reload happened').not.toMatch(/signal 1 \(SIGHUP\)/);
  });

  it('starts while the name does not resolve, answers a JSON 502 meanwhile, and serves once it does', async () => {
    const { nginx, dns } = await setUp([]);
    const client = new OneConnectionClient(nginx);
    const refused = await client.whoAnswers();
    expect(refused).toMatch(/^status 502: /);
    expect((JSON.parse(refused.replace(/^status 502: /, '')) as { error: { code: string } }).error.code).toBe('GATEWAY_UNAVAILABLE');

    dns.answer(['127.0.0.1']);
    await waitUntil('nginx to reach the gateway once its name resolves', async () => (await client.whoAnswers()) === 'a');
    expect(client.localPorts.size).toBe(1);
  });

  it('passes a request to another address of the name when the first one refuses the connection', async () => {
    // Nothing listens on 127.0.0.3 at this port: a gateway whose container is gone.
    const { nginx, b } = await setUp(['127.0.0.3', '127.0.0.2']);
    const client = new OneConnectionClient(nginx);
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) answers.push(await client.whoAnswers());
    expect(answers).toEqual(Array(10).fill('b'));
    expect(b.requests).toBe(10);
  });

  it('passes the change feed (/watch) through as a stream: the first event arrives while the stream is open', async () => {
    const { nginx, port } = await setUp(['127.0.0.1']);
    const firstChunk = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${nginx.url}/watch`, { agent: false }, (res) => {
        res.once('data', (chunk: Buffer) => {
          resolve(`${res.statusCode} ${String(res.headers['content-type'])} ${chunk.toString('utf8')}`);
          req.destroy();
        });
        res.once('end', () => reject(new Error('the stream ended before its first event arrived')));
      });
      req.on('error', reject);
    });
    expect(firstChunk, `gateway on port ${port}`).toBe('200 text/event-stream data: a\n\n');
  });
});
