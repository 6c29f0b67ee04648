/**
 * Hosts on a private network, made of Linux network namespaces, and a nemesis that cuts, slows and pauses them:
 * the ground the partition tests stand on.
 *
 *   const net = await startTopology({ prefix: 'spnet', subnet: 1, hosts: ['a', 'b', 'c'] });
 *   net.address('a');                           // '10.77.1.1'
 *   const child = net.spawn('a', 'etcd', [...]); // runs inside host a's namespace (`ip netns exec`)
 *   await net.isolate('a');                      // a hears nothing from b and c, and they nothing from a
 *   await net.heal();
 *   await net.teardown();                        // every namespace, link and rule of this prefix, gone
 *
 * The shape: one Linux bridge `<prefix>-br` in the root namespace, and per host a namespace `<prefix>-<host>`
 * joined to the bridge by a veth pair (`<prefix>-h<i>` on the bridge, `<prefix>-n<i>` inside, address
 * 10.77.<subnet>.<i+1>/24, loopback up). The bridge itself holds 10.77.<subnet>.254: the test process (the
 * "control node", as in Jepsen) reaches every host from the root namespace, and no fault ever cuts it off, so a
 * test can still ask an isolated member what it answers. The hosts get no default route: they reach each other and
 * the control node, nothing else.
 *
 * How faults are made, and why this way (measured on the 2-core Debian 12 VM, kernel 6.18, where this was written):
 * - Partitions are nftables rules inside each host's own namespace: a `netdev` table `<prefix>_faults` whose
 *   ingress chain on the host's link drops packets from the hosts it must not hear (a Jepsen "grudge"). Dropping on
 *   arrival, on both sides of every cut, makes packets vanish silently, as on a real cut link: a drop on the way
 *   out (an output or egress hook) is reported to the sender's own TCP stack at once, which no real partition
 *   does. The rules live and die with the namespace, so they can never touch the machine's own traffic, and the
 *   whole rule set of a host is replaced in one `nft -f` transaction. This kernel has no iptables binary and no tc
 *   `gact` action (so tc filters cannot drop), but nf_tables is built in: `nft` (Debian's nftables) is installed
 *   when missing.
 * - Packet loss is nftables too (`numgen random mod 100 < N drop`), because this kernel is built without netem
 *   (CONFIG_NET_SCH_NETEM is not set and it has no loadable modules). Each direction is dropped on arrival, for the
 *   reason above: what comes in, at the host's ingress (the same table); what goes out, at the ingress of its veth's
 *   bridge end, in a root-namespace `netdev` table `<prefix>_links` that holds only base chains bound to this
 *   topology's own bridge ports (and exists only while some host has loss).
 * - Delay uses `tc netem` where the kernel has it; here it has not, and delay() fails with a NetnsError
 *   'NETEM_UNAVAILABLE' saying so. throttle() (a `tbf` rate limit on both ends of the host's link, which this
 *   kernel has) is the slow link that can be made here.
 * - A paused process is SIGSTOP/SIGCONT, checked to be a process inside the named host's namespace.
 *
 * Every name carries the prefix, and a start first removes whatever an earlier run with the same prefix left (it
 * kills processes still inside its namespaces, which can only be that run's). Two runs at once need different
 * prefixes and different subnets (vitest runs test files in parallel).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readlink, stat } from 'node:fs/promises';
import { assert } from '../../internal/core/assert.js';
import { InfraError, ensureBinary } from './debian-package.js';
import { sleep, untilStopped } from './process-utils.js';

export const NETNS_LIMITS = {
  /** One `ip`, `tc` or `nft` command; they take milliseconds, a busy machine seconds. */
  commandTimeoutMs: 30_000,
  /** Bytes of a command's output kept for results and error messages. */
  outputBytesMax: 64 * 1024,
  /**
   * Interface names are at most 15 bytes (IFNAMSIZ 16): `<prefix>-h<index>` must fit, so the prefix has at most 6
   * characters and a topology at most 99 hosts (two digits); a /24 leaves room for far more, but this bounds it.
   */
  prefixLengthMax: 6,
  hostsMax: 99,
  /** Host names become part of namespace names and of nft set elements' comments; kept short and plain. */
  hostNameLengthMax: 20,
  /** The third octet of 10.77.<subnet>.0/24. */
  subnetMax: 253,
  /** After teardown, how long the kernel may take to free a namespace's links (its cleanup is asynchronous). */
  teardownSettleMs: 30_000,
  teardownPollIntervalMs: 50,
  /** From SIGSTOP until the kernel reports the process stopped. */
  pauseSettleMs: 10_000,
  /** Percent bounds of packet loss. */
  lossPercentMax: 100,
} as const;

/** The first two octets of every topology's addresses: a private range nothing else on these machines uses. */
const NETWORK_PREFIX = '10.77';
/** The control node's (the bridge's) last octet. */
const CONTROL_OCTET = 254;

export type NetnsErrorCode =
  /** Not on Linux: namespaces are a Linux feature. */
  | 'NOT_LINUX'
  /** Not root: making namespaces and links needs CAP_SYS_ADMIN and CAP_NET_ADMIN. */
  | 'NOT_ROOT'
  /** `ip`, `tc` or `nft` is missing and could not be installed. */
  | 'TOOL_MISSING'
  /** The kernel or a sandbox refused to make a namespace, bridge or veth pair. */
  | 'NAMESPACES_UNAVAILABLE'
  /** Another network on this machine already uses the subnet asked for. */
  | 'SUBNET_IN_USE'
  /** The kernel has no netem qdisc, so delay cannot be injected. */
  | 'NETEM_UNAVAILABLE'
  /** A command failed after the topology was up. */
  | 'COMMAND_FAILED'
  /** Teardown finished but something with the prefix is still there. */
  | 'TEARDOWN_INCOMPLETE';

/** An operating error of the topology: the code is stable, the message says what is missing and what to do. */
export class NetnsError extends InfraError {
  constructor(
    readonly code: NetnsErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'NetnsError';
  }
}

// ---- commands ------------------------------------------------------------------------------------------------

interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Tools {
  ip: string;
  tc: string;
  nft: string;
}

/** Runs a command to completion (never through a shell); `input` goes to its stdin. ENOENT rejects. */
function runCommand(command: string, args: readonly string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const keep = (text: string, chunk: Buffer): string => (text + chunk.toString('utf8')).slice(-NETNS_LIMITS.outputBytesMax);
    child.stdout?.on('data', (chunk: Buffer) => (stdout = keep(stdout, chunk)));
    child.stderr?.on('data', (chunk: Buffer) => (stderr = keep(stderr, chunk)));
    const timer = setTimeout(() => child.kill('SIGKILL'), NETNS_LIMITS.commandTimeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined && child.stdin !== null) {
      // A command that exits without reading its input (a bad option) closes the pipe: its exit code tells why.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    }
  });
}

function shown(command: string, args: readonly string[]): string {
  return [command, ...args].join(' ');
}

/** Runs a command that must succeed; a failure is a NetnsError with `code` naming the command and its stderr. */
async function mustRun(code: NetnsErrorCode, command: string, args: readonly string[], input?: string): Promise<string> {
  let result: CommandResult;
  try {
    result = await runCommand(command, args, input);
  } catch (err) {
    throw new NetnsError(code, `cannot run \`${shown(command, args)}\`: ${(err as Error).message}`);
  }
  if (result.code !== 0) {
    throw new NetnsError(code, `\`${shown(command, args)}\` failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result.stdout;
}

let toolsPending: Promise<Tools> | null = null;

/**
 * Checks that this process may make namespaces and finds (installing when missing) `ip`, `tc` and `nft`. Fails
 * with a NetnsError that names what is missing and how to get it.
 */
export function ensureNetnsTools(): Promise<Tools> {
  toolsPending ??= findTools();
  toolsPending.catch(() => {
    toolsPending = null; // a later call may succeed once the operator fixed the cause
  });
  return toolsPending;
}

async function findTools(): Promise<Tools> {
  if (process.platform !== 'linux') {
    throw new NetnsError('NOT_LINUX', `network namespaces exist only on Linux; this is ${process.platform}. Run the partition tests on Linux, or set STRATA_SKIP_PARTITIONS=1 to skip them.`);
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (uid !== 0) {
    throw new NetnsError('NOT_ROOT', `making network namespaces, veth pairs and nftables rules needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); this process runs as uid ${uid}. Run as root, or set STRATA_SKIP_PARTITIONS=1 to skip the partition tests.`);
  }
  const find = async (binary: string, packages: string[], manualFix: string): Promise<string> => {
    try {
      return await ensureBinary({ binary, packages, wellKnownPaths: [`/usr/sbin/${binary}`, `/sbin/${binary}`, `/usr/bin/${binary}`], manualFix });
    } catch (err) {
      throw new NetnsError('TOOL_MISSING', (err as Error).message);
    }
  };
  const iproute = 'Install it with `apt-get install -y iproute2` (Debian/Ubuntu).';
  const ip = await find('ip', ['iproute2'], iproute);
  const tc = await find('tc', ['iproute2'], iproute);
  const nft = await find('nft', ['nftables'], 'Install it with `apt-get install -y nftables` (Debian/Ubuntu); the kernel needs nf_tables (CONFIG_NF_TABLES, CONFIG_NF_TABLES_NETDEV).');
  return { ip, tc, nft };
}

// ---- names ---------------------------------------------------------------------------------------------------

const PREFIX_PATTERN = /^[a-z][a-z0-9]*$/;
const HOST_PATTERN = /^[a-z][a-z0-9]*$/;

function assertPrefix(prefix: string): void {
  assert(PREFIX_PATTERN.test(prefix) && prefix.length <= NETNS_LIMITS.prefixLengthMax, `prefix ${JSON.stringify(prefix)}: [a-z][a-z0-9]*, at most NETNS_LIMITS.prefixLengthMax characters`);
}

/** Every name this module gives a topology, derived from the prefix: what teardown and cleanup look for. */
export function topologyNames(prefix: string) {
  assertPrefix(prefix);
  return {
    /** Namespaces, links: `<prefix>-...`. The dash keeps prefix `sp` from matching `spx-...`. */
    ownedPrefix: `${prefix}-`,
    bridge: `${prefix}-br`,
    namespace: (host: string) => `${prefix}-${host}`,
    bridgeSide: (index: number) => `${prefix}-h${index}`,
    hostSide: (index: number) => `${prefix}-n${index}`,
    /** nft names allow no dash. */
    faultsTable: `${prefix}_faults`,
    linksTable: `${prefix}_links`,
  };
}

// ---- leftovers -----------------------------------------------------------------------------------------------

export interface Leftovers {
  namespaces: string[];
  links: string[];
  /** `family name` of nft tables in the root namespace named with the prefix (the loss rules on bridge ports). */
  rootTables: string[];
  /** Processes still running inside the prefix's namespaces. */
  pids: number[];
}

/** What exists on this machine with `prefix`'s names: namespaces, links, root-namespace nft tables, processes. */
export async function listLeftovers(prefix: string): Promise<Leftovers> {
  const tools = await ensureNetnsTools();
  const names = topologyNames(prefix);
  const namespaces = (await mustRun('COMMAND_FAILED', tools.ip, ['netns', 'list']))
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.startsWith(names.ownedPrefix));
  const links = (await mustRun('COMMAND_FAILED', tools.ip, ['-o', 'link', 'show']))
    .split('\n')
    .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '')
    .filter((name) => name.startsWith(names.ownedPrefix));
  const rootTables = (await mustRun('COMMAND_FAILED', tools.nft, ['list', 'tables']))
    .split('\n')
    .map((line) => line.trim().replace(/^table\s+/, ''))
    .filter((line) => line.split(/\s+/)[1]?.startsWith(prefix + '_') ?? false);
  const pids: number[] = [];
  for (const namespace of namespaces) pids.push(...(await namespacePids(tools, namespace)));
  return { namespaces, links, rootTables, pids };
}

function isEmpty(leftovers: Leftovers): boolean {
  return leftovers.namespaces.length + leftovers.links.length + leftovers.rootTables.length + leftovers.pids.length === 0;
}

async function namespacePids(tools: Tools, namespace: string): Promise<number[]> {
  const result = await runCommand(tools.ip, ['netns', 'pids', namespace]);
  if (result.code !== 0) return []; // gone meanwhile
  return result.stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
}

/**
 * Removes everything with `prefix`'s names: kills the processes inside its namespaces (an earlier run's servers),
 * deletes its links (which takes each veth's peer along), namespaces and root-namespace nft tables, then waits
 * until the kernel has freed them. Idempotent; safe when nothing is there.
 */
export async function removeLeftovers(prefix: string): Promise<void> {
  const tools = await ensureNetnsTools();
  const found = await listLeftovers(prefix);
  for (const pid of found.pids) {
    try {
      process.kill(pid, 'SIGKILL'); // kills a paused (SIGSTOPped) process too
    } catch {
      // exited meanwhile
    }
  }
  for (const link of found.links) await runCommand(tools.ip, ['link', 'del', link]); // may be gone with its peer
  for (const namespace of found.namespaces) await runCommand(tools.ip, ['netns', 'del', namespace]);
  for (const table of found.rootTables) await runCommand(tools.nft, ['delete', 'table', ...table.split(/\s+/)]);
  // Namespaces are freed by a kernel worker after their last process is gone: wait for the links to go with them.
  const deadlineMs = Date.now() + NETNS_LIMITS.teardownSettleMs;
  let left = await listLeftovers(prefix);
  while (!isEmpty(left) && Date.now() < deadlineMs) {
    for (const link of left.links) await runCommand(tools.ip, ['link', 'del', link]);
    for (const namespace of left.namespaces) await runCommand(tools.ip, ['netns', 'del', namespace]);
    await sleep(NETNS_LIMITS.teardownPollIntervalMs);
    left = await listLeftovers(prefix);
  }
  if (!isEmpty(left)) {
    throw new NetnsError('TEARDOWN_INCOMPLETE', `after ${NETNS_LIMITS.teardownSettleMs} ms these are still there: ${JSON.stringify(left)}. Remove them by hand (ip netns del, ip link del, nft delete table).`);
  }
}

// ---- the topology --------------------------------------------------------------------------------------------

export interface TopologyOptions {
  /** Unique to the run and stable across its restarts (cleanup finds an earlier run's leftovers by it): [a-z][a-z0-9]*, at most 6 characters. */
  prefix: string;
  /** The third octet of the hosts' network 10.77.<subnet>.0/24; runs at the same time need different ones. 1..253. */
  subnet: number;
  /** Host names, [a-z][a-z0-9]*; host i gets address 10.77.<subnet>.<i+1>. */
  hosts: readonly string[];
}

export interface HostInfo {
  name: string;
  index: number;
  namespace: string;
  address: string;
  /** The host's end of its veth pair, inside its namespace. */
  link: string;
  /** The other end, on the bridge in the root namespace. */
  bridgeLink: string;
}

/** Which hosts each host must not hear from. Symmetric when made by isolate/split/bridge. */
export type Grudge = ReadonlyMap<string, ReadonlySet<string>>;

interface LinkFaults {
  lossPercent: number;
}

/**
 * Makes the hosts: removes an earlier run's leftovers with the same prefix, then the bridge, namespaces and links.
 * Fails with a NetnsError saying what is missing when namespaces cannot be made; a failure half-way removes what
 * was made.
 */
export async function startTopology(options: TopologyOptions): Promise<Topology> {
  const names = topologyNames(options.prefix);
  assert(Number.isInteger(options.subnet) && options.subnet >= 1 && options.subnet <= NETNS_LIMITS.subnetMax, 'subnet in 1..NETNS_LIMITS.subnetMax');
  assert(options.hosts.length >= 1 && options.hosts.length <= NETNS_LIMITS.hostsMax, 'hosts: 1..NETNS_LIMITS.hostsMax');
  assert(new Set(options.hosts).size === options.hosts.length, 'host names are distinct');
  for (const host of options.hosts) {
    assert(HOST_PATTERN.test(host) && host.length <= NETNS_LIMITS.hostNameLengthMax, `host name ${JSON.stringify(host)}: [a-z][a-z0-9]*, at most NETNS_LIMITS.hostNameLengthMax characters`);
  }
  const tools = await ensureNetnsTools();
  await removeLeftovers(options.prefix);
  await checkSubnetFree(tools, options.subnet, names.ownedPrefix);

  const network = `${NETWORK_PREFIX}.${options.subnet}`;
  const hosts: HostInfo[] = options.hosts.map((name, index) => ({
    name,
    index,
    namespace: names.namespace(name),
    address: `${network}.${index + 1}`,
    link: names.hostSide(index),
    bridgeLink: names.bridgeSide(index),
  }));
  const topology = new Topology(tools, options.prefix, `${network}.${CONTROL_OCTET}`, hosts);
  try {
    await build(tools, names.bridge, `${network}.${CONTROL_OCTET}/24`, hosts);
  } catch (err) {
    await removeLeftovers(options.prefix).catch(() => undefined);
    throw err;
  }
  return topology;
}

async function checkSubnetFree(tools: Tools, subnet: number, ownedPrefix: string): Promise<void> {
  const network = `${NETWORK_PREFIX}.${subnet}.`;
  const lines = (await mustRun('COMMAND_FAILED', tools.ip, ['-o', '-4', 'addr', 'show'])).split('\n');
  const clash = lines.find((line) => line.includes(` ${network}`) && !(/^\d+:\s+(\S+)/.exec(line)?.[1] ?? '').startsWith(ownedPrefix));
  if (clash !== undefined) {
    throw new NetnsError('SUBNET_IN_USE', `${network}0/24 is already used on this machine (${clash.trim()}); give this topology another subnet.`);
  }
}

async function build(tools: Tools, bridge: string, controlCidr: string, hosts: readonly HostInfo[]): Promise<void> {
  const ip = (...args: string[]): Promise<string> => mustRun('NAMESPACES_UNAVAILABLE', tools.ip, args);
  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
  } catch (err) {
    throw new NetnsError('NAMESPACES_UNAVAILABLE', `cannot make the bridge ${bridge} (needs the kernel's bridge support and CAP_NET_ADMIN): ${(err as Error).message}`);
  }
  await ip('addr', 'add', controlCidr, 'dev', bridge);
  await ip('link', 'set', bridge, 'up');
  for (const host of hosts) {
    try {
      await ip('netns', 'add', host.namespace);
    } catch (err) {
      throw new NetnsError('NAMESPACES_UNAVAILABLE', `cannot make the network namespace ${host.namespace} (needs CONFIG_NET_NS and CAP_SYS_ADMIN; a container may forbid it): ${(err as Error).message}`);
    }
    // The peer is made inside the namespace directly, so its name never exists in the root namespace.
    await ip('link', 'add', host.bridgeLink, 'type', 'veth', 'peer', 'name', host.link, 'netns', host.namespace);
    await ip('link', 'set', host.bridgeLink, 'master', bridge, 'up');
    await ip('-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', host.link);
    await ip('-n', host.namespace, 'link', 'set', host.link, 'up');
    await ip('-n', host.namespace, 'link', 'set', 'lo', 'up');
  }
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class Topology {
  private grudge: Map<string, Set<string>> = new Map();
  private readonly linkFaults = new Map<string, LinkFaults>();
  private tornDown: Promise<void> | null = null;

  /** @internal startTopology makes it. */
  constructor(
    private readonly tools: Tools,
    readonly prefix: string,
    /** The root namespace's address on the bridge: where the test process's connections come from. */
    readonly controlAddress: string,
    readonly hosts: readonly HostInfo[],
  ) {}

  host(name: string): HostInfo {
    const found = this.hosts.find((h) => h.name === name);
    assert(found !== undefined, `no host ${JSON.stringify(name)} in this topology`);
    return found;
  }

  address(name: string): string {
    return this.host(name).address;
  }

  /** Runs `command args` inside the host's namespace to completion (no shell). */
  async exec(host: string, command: string, args: readonly string[] = [], input?: string): Promise<ExecResult> {
    return runCommand(this.tools.ip, ['netns', 'exec', this.host(host).namespace, command, ...args], input);
  }

  /**
   * Starts `command args` inside the host's namespace. `ip netns exec` enters the namespace and execs the command
   * in the same process, so the child's pid is the command's own (pause() and kill signal it directly).
   */
  spawn(host: string, command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    return spawn(this.tools.ip, ['netns', 'exec', this.host(host).namespace, command, ...args], options);
  }

  // ---- partitions --------------------------------------------------------------------------------------------

  /** The grudge in force: whom each host does not hear. */
  currentGrudge(): Grudge {
    return this.grudge;
  }

  /**
   * Puts `grudge` in force, replacing the previous one: each host drops every packet from the hosts listed for it.
   * Only hosts are cut; the control node (the test process) reaches every host throughout.
   */
  async partition(grudge: Grudge): Promise<void> {
    const next = new Map<string, Set<string>>();
    for (const [host, deaf] of grudge) {
      this.host(host);
      for (const other of deaf) this.host(other);
      next.set(host, new Set(deaf));
    }
    this.grudge = next;
    for (const host of this.hosts) await this.applyRules(host);
  }

  /** Cuts `name` off from every other host, both ways. */
  isolate(name: string): Promise<void> {
    this.host(name);
    const others = this.hosts.map((h) => h.name).filter((h) => h !== name);
    return this.partition(cutBetween([name], others));
  }

  /** Splits the hosts into two sides that do not hear each other; every host must be on exactly one side. */
  split(sideA: readonly string[], sideB: readonly string[]): Promise<void> {
    assert(sideA.length + sideB.length === this.hosts.length && new Set([...sideA, ...sideB]).size === this.hosts.length, 'split: every host on exactly one side');
    return this.partition(cutBetween(sideA, sideB));
  }

  /**
   * Splits the hosts into two halves that do not hear each other, except `bridge`, which hears and is heard by
   * both (Jepsen's "bridge" partition: a majority that is not transitive).
   */
  bridge(sideA: readonly string[], bridgeHost: string, sideB: readonly string[]): Promise<void> {
    assert(!sideA.includes(bridgeHost) && !sideB.includes(bridgeHost), 'bridge: the bridge host is on neither side');
    assert(sideA.length + sideB.length + 1 === this.hosts.length && new Set([...sideA, ...sideB, bridgeHost]).size === this.hosts.length, 'bridge: every host on exactly one side or the bridge');
    return this.partition(cutBetween(sideA, sideB));
  }

  /** Lifts every partition (link faults stay: clearLinkFaults lifts those). */
  heal(): Promise<void> {
    return this.partition(new Map());
  }

  // ---- link faults -------------------------------------------------------------------------------------------

  /** Drops `percent` of the packets on the host's link, both ways, at random (0 lifts it). */
  async setLoss(name: string, percent: number): Promise<void> {
    assert(Number.isInteger(percent) && percent >= 0 && percent <= NETNS_LIMITS.lossPercentMax, 'loss: an integer percent in 0..100');
    this.linkFaults.set(name, { lossPercent: percent });
    await this.applyRules(this.host(name));
    await this.applyLinkRules();
  }

  /**
   * Delays every packet leaving the host by `delayMs` (± `jitterMs`) with `tc netem`. Fails with NETEM_UNAVAILABLE
   * on a kernel built without netem (as this project's VM is); throttle() works there.
   */
  async delay(name: string, delayMs: number, jitterMs = 0): Promise<void> {
    assert(Number.isInteger(delayMs) && delayMs > 0 && Number.isInteger(jitterMs) && jitterMs >= 0, 'delay: positive integer milliseconds');
    const host = this.host(name);
    const jitter = jitterMs > 0 ? [`${jitterMs}ms`] : [];
    const args = ['-n', host.namespace, 'qdisc', 'replace', 'dev', host.link, 'root', 'netem', 'delay', `${delayMs}ms`, ...jitter];
    const result = await runCommand(this.tools.tc, args);
    if (result.code === 0) return;
    if (/qdisc kind is unknown|Unknown qdisc/i.test(result.stderr)) {
      throw new NetnsError('NETEM_UNAVAILABLE', `this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set), so links cannot be delayed here; \`tc ${args.join(' ')}\` said: ${result.stderr.trim()}. Use throttle() for a slow link, or a kernel with netem.`);
    }
    throw new NetnsError('COMMAND_FAILED', `\`tc ${args.join(' ')}\` failed (exit ${result.code}): ${result.stderr.trim()}`);
  }

  /** Whether delay() can work on this kernel: tries netem on the host's link and takes it off again. */
  async netemAvailable(name: string): Promise<boolean> {
    try {
      await this.delay(name, 1);
    } catch (err) {
      if (err instanceof NetnsError && err.code === 'NETEM_UNAVAILABLE') return false;
      throw err;
    }
    await this.clearQdiscs(this.host(name));
    return true;
  }

  /**
   * Limits the host's link to `rateKbit` kilobits per second both ways (a `tbf` qdisc on each end of its veth
   * pair), so that its traffic queues as on a slow or congested link. Packets wait up to `queueMs` in the queue
   * before they are dropped.
   */
  async throttle(name: string, rateKbit: number, queueMs = 10_000): Promise<void> {
    assert(Number.isInteger(rateKbit) && rateKbit > 0 && Number.isInteger(queueMs) && queueMs > 0, 'throttle: positive integer rate and queue time');
    const host = this.host(name);
    // The bucket holds one full-size frame: anything smaller would stall every 1500-byte packet forever.
    const tbf = ['root', 'tbf', 'rate', `${rateKbit}kbit`, 'burst', '1600', 'latency', `${queueMs}ms`];
    await mustRun('COMMAND_FAILED', this.tools.tc, ['-n', host.namespace, 'qdisc', 'replace', 'dev', host.link, ...tbf]);
    await mustRun('COMMAND_FAILED', this.tools.tc, ['qdisc', 'replace', 'dev', host.bridgeLink, ...tbf]);
  }

  /** Lifts loss, delay and throttling on the host's link. */
  async clearLinkFaults(name: string): Promise<void> {
    const host = this.host(name);
    this.linkFaults.delete(name);
    await this.clearQdiscs(host);
    await this.applyRules(host);
    await this.applyLinkRules();
  }

  private async clearQdiscs(host: HostInfo): Promise<void> {
    // Deleting the root qdisc puts the default back; "no qdisc" (nothing to delete) is fine.
    await runCommand(this.tools.tc, ['-n', host.namespace, 'qdisc', 'del', 'dev', host.link, 'root']);
    await runCommand(this.tools.tc, ['qdisc', 'del', 'dev', host.bridgeLink, 'root']);
  }

  /** Replaces the host's whole nft rule set (partition and loss) in one transaction. */
  private async applyRules(host: HostInfo): Promise<void> {
    const deaf = [...(this.grudge.get(host.name) ?? [])].map((other) => this.address(other)).sort();
    const lossPercent = this.linkFaults.get(host.name)?.lossPercent ?? 0;
    await mustRun('COMMAND_FAILED', this.tools.ip, ['netns', 'exec', host.namespace, this.tools.nft, '-f', '-'], faultsRuleset(topologyNames(this.prefix).faultsTable, host.link, deaf, lossPercent));
  }

  /** Replaces the root namespace's loss rules on the bridge ports (packets leaving the hosts) in one transaction. */
  private async applyLinkRules(): Promise<void> {
    const lossy = this.hosts.map((h) => ({ device: h.bridgeLink, lossPercent: this.linkFaults.get(h.name)?.lossPercent ?? 0 }));
    await mustRun('COMMAND_FAILED', this.tools.nft, ['-f', '-'], linksRuleset(topologyNames(this.prefix).linksTable, lossy));
  }

  /** The nft rules in force on a host, as `nft list ruleset` prints them inside its namespace. */
  async rules(name: string): Promise<string> {
    return mustRun('COMMAND_FAILED', this.tools.ip, ['netns', 'exec', this.host(name).namespace, this.tools.nft, 'list', 'ruleset']);
  }

  // ---- processes ---------------------------------------------------------------------------------------------

  /** SIGSTOP, as a long GC pause would; resolves once the kernel reports it stopped. The pid must be on `host`. */
  async pause(host: string, pid: number): Promise<void> {
    await this.assertOnHost(host, pid);
    process.kill(pid, 'SIGSTOP');
    await untilStopped(pid, NETNS_LIMITS.pauseSettleMs);
  }

  /** SIGCONT after pause(). */
  async resume(host: string, pid: number): Promise<void> {
    await this.assertOnHost(host, pid);
    process.kill(pid, 'SIGCONT');
  }

  /** Signalling a process outside the topology would be a bug in the caller: it must never happen. */
  private async assertOnHost(host: string, pid: number): Promise<void> {
    const want = await stat(`/run/netns/${this.host(host).namespace}`);
    const link = await readlink(`/proc/${pid}/ns/net`); // e.g. 'net:[4026532290]'
    assert(link === `net:[${want.ino}]`, `process ${pid} runs on host ${host} (its network namespace is ${link}, not net:[${want.ino}])`);
  }

  /** Removes every namespace, link and rule of this prefix and kills what still runs inside. Idempotent. */
  teardown(): Promise<void> {
    this.tornDown ??= removeLeftovers(this.prefix);
    return this.tornDown;
  }
}

/** Each host in `sideA` deaf to every host in `sideB`, and the other way round. */
function cutBetween(sideA: readonly string[], sideB: readonly string[]): Map<string, Set<string>> {
  const grudge = new Map<string, Set<string>>();
  for (const a of sideA) grudge.set(a, new Set(sideB));
  for (const b of sideB) grudge.set(b, new Set(sideA));
  return grudge;
}

/**
 * One host's rules as an nft script. "add table; delete table; table {...}" replaces the table whether or not it
 * existed, in one transaction: there is never a moment with half the rules.
 */
export function faultsRuleset(table: string, device: string, deafTo: readonly string[], lossPercent: number): string {
  const lines = [`add table netdev ${table}`, `delete table netdev ${table}`, `table netdev ${table} {`];
  lines.push('  set deaf_to {', '    type ipv4_addr', ...(deafTo.length > 0 ? [`    elements = { ${deafTo.join(', ')} }`] : []), '  }');
  lines.push(
    '  chain ingress {',
    `    type filter hook ingress device "${device}" priority 0; policy accept;`,
    // Dropped on arrival, so the sender learns nothing: a cut link, not a refusal.
    '    ip saddr @deaf_to drop',
    ...lossRule(lossPercent),
    '  }',
    '}',
  );
  return `${lines.join('\n')}\n`;
}

/**
 * The root namespace's loss rules as an nft script: one ingress chain per lossy bridge port, dropping that share of
 * what the host sends. With no lossy port the table is removed (the add makes the delete safe when it is absent).
 */
export function linksRuleset(table: string, ports: ReadonlyArray<{ device: string; lossPercent: number }>): string {
  const lines = [`add table netdev ${table}`, `delete table netdev ${table}`];
  const lossy = ports.filter((p) => p.lossPercent > 0);
  if (lossy.length > 0) {
    lines.push(`table netdev ${table} {`);
    lossy.forEach((port, i) => {
      lines.push(`  chain port${i} {`, `    type filter hook ingress device "${port.device}" priority 0; policy accept;`, ...lossRule(port.lossPercent), '  }');
    });
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

function lossRule(lossPercent: number): string[] {
  // numgen's values are 0..99, so "< 100" is out of its range: total loss is a plain drop.
  if (lossPercent === 0) return [];
  return lossPercent >= 100 ? ['    drop'] : [`    numgen random mod 100 < ${lossPercent} drop`];
}
