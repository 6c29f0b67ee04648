/**
 * The namespace topology and its nemesis (scripts/infra/netns.ts), against the real kernel: hosts on a private
 * bridge reach each other, a partition really cuts them (and only them), healing really restores them, a throttled
 * link is really slower, a paused process is really stopped, and teardown leaves nothing with the run's prefix.
 * Traffic is a small TCP echo (fixtures/tcp-probe.cjs) run inside the hosts' namespaces.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AssertionError } from '../../internal/core/assert.js';
import { NETNS_LIMITS, NetnsError, faultsRuleset, linksRuleset, listLeftovers, startTopology, topologyNames, type Topology } from '../../scripts/infra/netns.js';
import { waitUntil } from '../helpers/wait.js';
import { PARTITION_TEST_TIMEOUT_MS, PARTITION_WAIT_MS, describePartitions } from './support.js';

const PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tcp-probe.cjs');
const PREFIX = 'spnet';
const SUBNET = 71;
const ECHO_PORT = 7000;
/**
 * How long a probe waits in silence before it calls a host unreachable. A cut link never answers, so this only
 * decides how long a "cannot reach" takes to report; a reachable host answers an echo in milliseconds, and a
 * probe that timed out on a busy machine is retried by the waits below.
 */
const PROBE_SILENCE_MS = 3_000;

interface ProbeResult {
  ok: boolean;
  ms?: number;
  error?: string;
}

let net: Topology;
const servers: ChildProcess[] = [];

async function probe(from: string, to: string, args: string[] = ['echo']): Promise<ProbeResult> {
  const [mode, ...rest] = args;
  const result = await net.exec(from, process.execPath, [PROBE, mode ?? 'echo', net.address(to), String(ECHO_PORT), ...rest, ...(rest.length === 0 ? [String(PROBE_SILENCE_MS)] : [])]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as ProbeResult;
}

const reaches = async (from: string, to: string): Promise<boolean> => (await probe(from, to)).ok;

/** From the test process itself (the control node on the bridge). */
function controlReaches(to: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [PROBE, 'echo', net.address(to), String(ECHO_PORT), String(PROBE_SILENCE_MS)], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('close', () => resolve(out.includes('"ok":true')));
  });
}

async function startEchoServer(host: string): Promise<void> {
  const child = net.spawn(host, process.execPath, [PROBE, 'serve', net.address(host), String(ECHO_PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(child);
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  await waitUntil(`the echo server on ${host} listens`, () => out.includes('listening'), PARTITION_WAIT_MS);
}

describePartitions('hosts in network namespaces, and the nemesis that cuts them', () => {
  beforeAll(async () => {
    net = await startTopology({ prefix: PREFIX, subnet: SUBNET, hosts: ['a', 'b', 'c'] });
    for (const host of ['a', 'b', 'c']) await startEchoServer(host);
  }, PARTITION_TEST_TIMEOUT_MS);

  afterAll(async () => {
    for (const server of servers) server.kill('SIGKILL');
    await net?.teardown();
  }, PARTITION_TEST_TIMEOUT_MS);

  it('gives each host its own address on one bridge, and hosts reach each other and are reached by the test process', async () => {
    expect(net.hosts.map((h) => [h.name, h.namespace, h.address])).toEqual([
      ['a', 'spnet-a', '10.77.71.1'],
      ['b', 'spnet-b', '10.77.71.2'],
      ['c', 'spnet-c', '10.77.71.3'],
    ]);
    await waitUntil('a reaches b, and b reaches a', async () => (await reaches('a', 'b')) && (await reaches('b', 'a')), PARTITION_WAIT_MS);
    expect(await controlReaches('a')).toBe(true);
    // Loopback is up inside each namespace.
    const local = await net.exec('a', process.execPath, ['-e', `require('node:net').connect(${ECHO_PORT + 1}, '127.0.0.1').on('error', (e) => console.log(e.code))`]);
    expect(local.stdout.trim()).toBe('ECONNREFUSED'); // refused by a live loopback, not "network unreachable"
  }, PARTITION_TEST_TIMEOUT_MS);

  it('an isolated host neither reaches nor is reached by the other hosts, the test process still reaches it, and heal restores it', async () => {
    await net.isolate('a');
    expect(await probe('a', 'b')).toMatchObject({ ok: false });
    expect(await probe('c', 'a')).toMatchObject({ ok: false });
    await waitUntil('b and c still reach each other', async () => (await reaches('b', 'c')) && (await reaches('c', 'b')), PARTITION_WAIT_MS);
    expect(await controlReaches('a')).toBe(true);

    await net.heal();
    await waitUntil('a reaches b and c reaches a again', async () => (await reaches('a', 'b')) && (await reaches('c', 'a')), PARTITION_WAIT_MS);
  }, PARTITION_TEST_TIMEOUT_MS);

  it('a bridge partition cuts the two halves apart while the bridge host hears both', async () => {
    await net.bridge(['a'], 'c', ['b']);
    expect(await probe('a', 'b')).toMatchObject({ ok: false });
    expect(await probe('b', 'a')).toMatchObject({ ok: false });
    await waitUntil('the bridge host c reaches a and b, and both reach it', async () => (await reaches('c', 'a')) && (await reaches('c', 'b')) && (await reaches('a', 'c')) && (await reaches('b', 'c')), PARTITION_WAIT_MS);

    await net.split(['a', 'c'], ['b']);
    expect(await probe('c', 'b')).toMatchObject({ ok: false });
    await waitUntil('a and c, on one side, reach each other', () => reaches('a', 'c'), PARTITION_WAIT_MS);

    await net.heal();
    await waitUntil('every host reaches every other again', async () => (await reaches('a', 'b')) && (await reaches('b', 'c')) && (await reaches('c', 'a')), PARTITION_WAIT_MS);
  }, PARTITION_TEST_TIMEOUT_MS);

  it('total packet loss on a link cuts the host off from everyone, the test process included, until it is lifted', async () => {
    await net.setLoss('b', 100);
    expect(await probe('a', 'b')).toMatchObject({ ok: false });
    expect(await probe('b', 'c')).toMatchObject({ ok: false });
    expect(await controlReaches('b')).toBe(false);
    expect((await listLeftovers(PREFIX)).rootTables).toEqual(['netdev spnet_links']); // b's outbound loss, on its bridge port
    await net.clearLinkFaults('b');
    expect((await listLeftovers(PREFIX)).rootTables).toEqual([]);
    await waitUntil('a reaches b again', () => reaches('a', 'b'), PARTITION_WAIT_MS);
  }, PARTITION_TEST_TIMEOUT_MS);

  it('a delayed link slows round trips by at least the delay where the kernel has netem, and says it cannot where it has not', async () => {
    const delayMs = 400;
    if (await net.netemAvailable('c')) {
      await net.delay('c', delayMs);
      // A lower bound only: netem holds every packet leaving c for delayMs, and a busy machine can only add to it.
      const slowed = await probe('a', 'c');
      expect(slowed.ok).toBe(true);
      expect(slowed.ms).toBeGreaterThanOrEqual(delayMs);
      await net.clearLinkFaults('c');
    } else {
      await expect(net.delay('c', delayMs)).rejects.toThrow(NetnsError);
      await expect(net.delay('c', delayMs)).rejects.toMatchObject({ code: 'NETEM_UNAVAILABLE', message: expect.stringContaining('CONFIG_NET_SCH_NETEM') });
    }
  }, PARTITION_TEST_TIMEOUT_MS);

  it('a throttled link takes at least the time its rate allows to carry a transfer', async () => {
    const rateKbit = 64;
    const bytes = 32 * 1024;
    await net.throttle('c', rateKbit);
    // The echo carries the bytes over c's link twice (there and back), each way at rateKbit: at 64 kbit/s, 32 KiB
    // takes 4 s one way. A lower bound only (half of one way, for the bucket's burst): a busy machine only adds.
    const transfer = await probe('a', 'c', ['send', String(bytes), String(PARTITION_WAIT_MS)]);
    expect(transfer.ok, transfer.error).toBe(true);
    const oneWayMs = (bytes * 8) / rateKbit;
    expect(transfer.ms).toBeGreaterThanOrEqual(oneWayMs / 2);
    await net.clearLinkFaults('c');
    await waitUntil('c answers at full speed again', () => reaches('a', 'c'), PARTITION_WAIT_MS);
  }, PARTITION_TEST_TIMEOUT_MS);

  it('pause stops a process on a host until resume, and refuses a process that is not on that host', async () => {
    const sleeper = net.spawn('b', 'sleep', ['600'], { stdio: 'ignore' });
    const pid = sleeper.pid!;
    const state = async (): Promise<string> => {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    };
    try {
      await waitUntil('the sleeper runs inside b', async () => (await state()) === 'S', PARTITION_WAIT_MS);
      await net.pause('b', pid);
      expect(await state()).toBe('T');
      await net.resume('b', pid);
      await waitUntil('the sleeper runs again', async () => (await state()) !== 'T', PARTITION_WAIT_MS);
      await expect(net.pause('a', pid)).rejects.toThrow(AssertionError);
      await expect(net.pause('a', process.pid)).rejects.toThrow(AssertionError);
    } finally {
      sleeper.kill('SIGKILL');
    }
  }, PARTITION_TEST_TIMEOUT_MS);

  it('a start removes what an earlier run with the same prefix left, and teardown leaves no namespace, link, rule or process', async () => {
    // A run that "crashed": its topology, a rule and a process inside, never torn down.
    const crashed = await startTopology({ prefix: 'spnre', subnet: 74, hosts: ['x', 'y'] });
    await crashed.isolate('x');
    const orphan = crashed.spawn('y', 'sleep', ['600'], { stdio: 'ignore' });
    const orphanExit = new Promise((resolve) => orphan.once('exit', resolve));
    const again = await startTopology({ prefix: 'spnre', subnet: 74, hosts: ['x', 'y'] });
    await orphanExit; // killed by the second start's cleanup
    expect((await again.rules('x'))).not.toContain('10.77.74.2'); // a fresh host: no rule of the old run
    await again.teardown();
    expect(await listLeftovers('spnre')).toEqual({ namespaces: [], links: [], rootTables: [], pids: [] });

    for (const server of servers) server.kill('SIGKILL');
    await net.teardown();
    expect(await listLeftovers(PREFIX)).toEqual({ namespaces: [], links: [], rootTables: [], pids: [] });
    // And as an operator would look: nothing named with either prefix.
    const [namespaces, links] = await Promise.all([run('ip', ['netns', 'list']), run('ip', ['-o', 'link', 'show'])]);
    expect(`${namespaces}\n${links}`).not.toMatch(/\bspn(et|re)-/);
  }, PARTITION_TEST_TIMEOUT_MS);
});

// Pure parts: run even when STRATA_SKIP_PARTITIONS=1.
describe('the names and rules a topology is made of', () => {
  it('fits every interface name of the longest prefix and the most hosts into the kernel limit of 15 bytes', () => {
    const names = topologyNames('a'.repeat(NETNS_LIMITS.prefixLengthMax));
    for (const name of [names.bridge, names.bridgeSide(NETNS_LIMITS.hostsMax - 1), names.hostSide(NETNS_LIMITS.hostsMax - 1)]) {
      expect(name.length).toBeLessThanOrEqual(15);
    }
    expect(() => topologyNames('a'.repeat(NETNS_LIMITS.prefixLengthMax + 1))).toThrow(AssertionError);
    expect(() => topologyNames('has-dash')).toThrow(AssertionError);
  });

  it('drops what a host must not hear, and lost packets both ways, on arrival only', () => {
    const rules = faultsRuleset('p_faults', 'p-n0', ['10.77.1.2', '10.77.1.3'], 10);
    expect(rules).toContain('elements = { 10.77.1.2, 10.77.1.3 }');
    // No egress chain: a drop on the way out is reported to the sender's TCP stack, which no real cut or loss does.
    expect(rules).not.toContain('egress');
    expect(rules).toContain('ip saddr @deaf_to drop');
    expect(rules).toContain('numgen random mod 100 < 10 drop');
    // What the host sends is lost on arrival at its bridge port, in the root namespace.
    const links = linksRuleset('p_links', [{ device: 'p-h0', lossPercent: 0 }, { device: 'p-h1', lossPercent: 10 }]);
    expect(links).toContain('hook ingress device "p-h1"');
    expect(links).not.toContain('p-h0');
    expect(links).toContain('numgen random mod 100 < 10 drop');
  });

  it('writes total loss as a plain drop (numgen values stop at 99), no loss as no rule, and no lossy port as no table', () => {
    expect(faultsRuleset('p_faults', 'p-n0', [], 100)).not.toContain('numgen');
    expect(faultsRuleset('p_faults', 'p-n0', [], 100)).toMatch(/^\s+drop$/m);
    expect(faultsRuleset('p_faults', 'p-n0', [], 0)).not.toMatch(/numgen|^\s+drop$/m);
    expect(faultsRuleset('p_faults', 'p-n0', [], 0)).not.toContain('elements'); // nft refuses an empty element list
    expect(linksRuleset('p_links', [{ device: 'p-h0', lossPercent: 0 }])).toBe('add table netdev p_links\ndelete table netdev p_links\n');
  });
});

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', () => resolve(out));
  });
}
