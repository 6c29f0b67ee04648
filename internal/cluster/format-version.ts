/**
 * The cluster's data format version (docs/design/compact-formats.md, "Format versions and the cluster bump"): where
 * each process learns it, how each process says what it can read, and the operator's bump.
 *
 * - The version is `dataFormat` in the cluster identity record (internal/metadata/cluster-identity-record.ts);
 *   absent means 1. A cluster starts at 1 and is raised only by the bump, never lowered.
 * - `ClusterDataFormat` is a process's live DataFormatSource: the record read at start (a record or data format
 *   newer than this release reads refuses the start), then re-read on each change the store's watch reports (etcd)
 *   and every `pollIntervalMs` (the embedded store; on etcd, in case the watch was lost), so that gateways, the
 *   healer and the WAL write the new formats within seconds of the bump. A newer version met while running is
 *   handed to `onNewer` (the wiring stops the process): this release must not write beside a newer one's formats.
 * - `ProcessAnnouncement` registers the process in the process registry with its role and DATA_FORMAT_MAX, at start
 *   and every ttl/3 (as node heartbeats), and forgets it on a clean stop.
 * - `bumpDataFormat` is the bump: one compare-and-set of the record, allowed only when nothing the registries list
 *   could still be an older reader (see `bumpBlockers`); `formatVersionReport` is what GET /admin/format-version shows.
 */
import { assert } from '../core/assert.js';
import type { Clock } from '../core/clock.js';
import { DATA_FORMAT_MAX, DATA_FORMAT_V1, type DataFormatSource } from '../core/data-format.js';
import { StrataError, isStrataError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { dataFormatOf, newerThanThisRelease } from '../metadata/cluster-identity-record.js';
import {
  PROCESS_REGISTRY_LIMITS,
  type ClusterIdentityRecord,
  type MetadataStore,
  type ProcessRegistration,
  type RegisteredNode,
  type RegisteredProcess,
} from '../metadata/metadata-store.js';
import { HEARTBEATS_PER_TTL } from './node-heartbeat.js';

export const FORMAT_VERSION_LIMITS = {
  /**
   * How often a cluster process re-reads the record when nothing tells it of a change: a bump reaches every writer
   * within about this long. One small read per process per interval; etcd serves it from memory.
   */
  pollIntervalMs: 2_000,
  /** The same on etcd, where a watch on the record brings the bump at once and the poll only covers a lost watch. */
  watchedPollIntervalMs: 10_000,
  /** The embedded store's interval (processes on one machine sharing a file). */
  sqlitePollIntervalMs: 5_000,
  /** Processes a 409 names in its message; the rest are counted. */
  blockersNamedMax: 20,
} as const;

/** The process id a storage node announces itself under (node ids and gateway/healer ids never collide with it). */
export function storageNodeProcessId(nodeId: string): string {
  return `storage-node:${nodeId}`;
}

type IdentityReader = Pick<MetadataStore, 'getClusterIdentity' | 'watchClusterIdentity'>;

/**
 * A repeating task on the injected clock whose stop does not wait out the current sleep: the loop races each sleep
 * with the stop, so a process shuts down at once (a real timer left behind only resolves into nothing).
 */
class Repeater {
  private stopped = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
  ) {}

  get isStopped(): boolean {
    return this.stopped;
  }

  start(): void {
    this.loop = this.run();
  }

  /** Ends the loop; resolves once a task in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const stopped = new Promise<void>((resolve) => (this.wake = resolve));
      await Promise.race([this.clock.sleep(this.intervalMs), stopped]);
      this.wake = null;
      if (this.stopped) return;
      await this.task();
    }
  }
}

/** Refuses a record this release must not run against (fail closed: nothing is repaired or deleted). */
export function refuseNewer(record: ClusterIdentityRecord | null, where: string): void {
  const newer = record === null ? null : newerThanThisRelease(record);
  if (newer !== null) throw new StrataError('FORMAT_UNSUPPORTED', `${where}: ${newer}`);
}

export interface ClusterDataFormatOptions {
  clock: Clock;
  log: Logger;
  /** Default FORMAT_VERSION_LIMITS.pollIntervalMs. */
  pollIntervalMs?: number;
  /** A newer record or data format appeared while running: the process must stop (the message says why). */
  onNewer(reason: string): void;
}

/**
 * The cluster's data format as this process last read it from the identity record. Made before the stores (the
 * etcd store and the Kafka WAL take it as their DataFormatSource, and it reads the record through the store), at
 * format 1 until `follow` has read the record.
 */
export class ClusterDataFormat implements DataFormatSource {
  private version: number = DATA_FORMAT_V1;
  private repeater: Repeater | null = null;
  private following: { store: IdentityReader; storeName: string } | null = null;
  private watch: { close(): Promise<void> } | null = null;
  /** Read failures are logged when they start and when they end, not on every poll. */
  private failing = false;

  constructor(private readonly options: ClusterDataFormatOptions) {}

  /**
   * Reads the record (none yet, before the first storage node created it: format 1) and follows it from then on.
   * Throws FORMAT_UNSUPPORTED when it is newer than this release reads: the process must not start. A store that
   * does not answer is logged and waited for, as every backend is at start: writers use format 1 meanwhile, which
   * every release reads.
   */
  async follow(store: IdentityReader, storeName: string): Promise<void> {
    assert(this.following === null, 'a data format source follows one store');
    this.following = { store, storeName };
    let record: ClusterIdentityRecord | null = null;
    try {
      record = await store.getClusterIdentity();
    } catch (error) {
      this.failing = true;
      this.options.log.warn({ err: error }, `cannot read the cluster's data format from ${storeName} yet; writers use format ${this.version} until it answers`);
    }
    refuseNewer(record, `this process cannot run against the cluster in ${storeName}`);
    if (record !== null) this.version = dataFormatOf(record);
    if (store.watchClusterIdentity !== undefined) {
      try {
        this.watch = await store.watchClusterIdentity(() => void this.refresh());
      } catch (error) {
        this.options.log.warn({ err: error }, `cannot watch the cluster identity in ${storeName}; following it by polling alone`);
      }
    }
    this.repeater = new Repeater(this.options.clock, this.options.pollIntervalMs ?? FORMAT_VERSION_LIMITS.pollIntervalMs, async () => {
      await this.refresh();
    });
    this.repeater.start();
  }

  current(): number {
    return this.version;
  }

  /** One read of the record; the version only ever rises. Exposed for tests and for a read after a write error. */
  async refresh(): Promise<number> {
    assert(this.following !== null, 'refresh() after follow()');
    const { store, storeName } = this.following;
    const { log } = this.options;
    let record: ClusterIdentityRecord | null;
    try {
      record = await store.getClusterIdentity();
      if (this.failing) log.info(`${storeName} answers again; following the cluster's data format`);
      this.failing = false;
    } catch (error) {
      if (!this.failing) log.warn({ err: error }, `cannot read the cluster's data format from ${storeName}; writers keep format ${this.version}`);
      this.failing = true;
      return this.version;
    }
    if (record === null) return this.version;
    const newer = newerThanThisRelease(record);
    if (newer !== null) {
      // Once: the process is stopping, and nothing this release writes from now on is trusted to be readable.
      if (this.repeater?.isStopped !== true) {
        void this.repeater?.stop();
        log.error(newer);
        this.options.onNewer(newer);
      }
      return this.version;
    }
    const seen = dataFormatOf(record);
    if (seen > this.version) {
      log.info({ from: this.version, to: seen }, `the cluster's data format is now ${seen}; writers use it from now on`);
      this.version = seen;
    }
    return this.version;
  }

  async stop(): Promise<void> {
    await this.repeater?.stop();
    const watch = this.watch;
    this.watch = null;
    await watch?.close();
  }
}

/**
 * The all-in-one's start: one process of one release, which writes data format `to` without a bump, so a cluster
 * identity record in its own store (there is one only when separate processes shared the data directory before) is
 * raised to it. A record newer than this release refuses the start (FORMAT_UNSUPPORTED); no record is left absent.
 */
export async function raiseOwnDataFormat(
  store: Pick<MetadataStore, 'getClusterIdentity' | 'raiseClusterDataFormat'>,
  to: number,
  storeName: string,
): Promise<void> {
  let record: ClusterIdentityRecord | null;
  try {
    record = await store.getClusterIdentity();
  } catch (error) {
    // The all-in-one does not otherwise use the record: a damaged one is reported by the store's integrity view
    // (GET /cluster) and left for the operator, never a reason to refuse to serve.
    if (isStrataError(error, 'METADATA_CORRUPT')) return;
    throw error;
  }
  refuseNewer(record, `this process cannot run against the cluster in ${storeName}`);
  if (record !== null && dataFormatOf(record) < to) await store.raiseClusterDataFormat(to);
}

export interface ProcessAnnouncementOptions {
  registry: Pick<MetadataStore, 'registerProcess' | 'deregisterProcess'>;
  process: Omit<ProcessRegistration, 'formatMax'> & { formatMax?: number };
  ttlMs: number;
  clock: Clock;
  log: Logger;
}

/** A process's entry in the process registry: registered at start, renewed every ttl/3, removed on a clean stop. */
export class ProcessAnnouncement {
  private readonly repeater: Repeater;
  private failing = false;
  private readonly registration: ProcessRegistration;
  readonly intervalMs: number;

  constructor(private readonly options: ProcessAnnouncementOptions) {
    assert(Number.isSafeInteger(options.ttlMs) && options.ttlMs >= HEARTBEATS_PER_TTL, 'ttlMs >= HEARTBEATS_PER_TTL');
    this.registration = { ...options.process, formatMax: options.process.formatMax ?? DATA_FORMAT_MAX };
    this.intervalMs = Math.floor(options.ttlMs / HEARTBEATS_PER_TTL);
    this.repeater = new Repeater(options.clock, this.intervalMs, async () => {
      await this.announceOnce();
    });
  }

  /** One registration; true when the registry took it. Never throws: an unreachable registry is logged. */
  async announceOnce(): Promise<boolean> {
    const { registry, ttlMs, log } = this.options;
    try {
      await registry.registerProcess(this.registration, ttlMs);
      if (this.failing) log.info({ process: this.registration.id }, 'process registry reachable again');
      this.failing = false;
      return true;
    } catch (error) {
      if (!this.failing) {
        log.warn(
          { err: error, process: this.registration.id },
          'cannot announce this process in the process registry; a data format bump is refused while it is unknown',
        );
      }
      this.failing = true;
      return false;
    }
  }

  /** Announces once (awaited, so that the process is known before it serves), then every ttl/3. */
  async start(): Promise<boolean> {
    const first = await this.announceOnce();
    this.repeater.start();
    return first;
  }

  /** Clean stop: no more announcements, and the entry goes now (a stopped process cannot write any format). */
  async leave(): Promise<void> {
    await this.repeater.stop();
    try {
      await this.options.registry.deregisterProcess(this.registration.id);
    } catch (error) {
      this.options.log.warn({ err: error, process: this.registration.id }, 'cannot leave the process registry; the entry lapses by itself');
    }
  }
}

/** One process that stands in the way of a bump, and why. */
export interface BumpBlocker {
  id: string;
  role: string;
  formatMax: number;
  alive: boolean;
  why: string;
}

export interface FormatRegistries {
  processes: readonly RegisteredProcess[];
  nodes: readonly RegisteredNode[];
  nowMs: number;
  /** The storage nodes' heartbeat ttl (STRATA_NODE_TTL_MS): how long a node record stays alive. */
  nodeTtlMs: number;
}

/**
 * What stands in the way of raising the data format to `to`:
 * - every process listed in the process registry that reads less than `to`, alive or lapsed within the last
 *   2 x ttl (the registry keeps entries that long: a process paused past its lease may wake up and write);
 * - every storage node of the node registry that is alive, or lapsed within the last 2 x its ttl, without an
 *   announcement that it reads `to`: a node of the previous release registers only in the node registry.
 * Gateways and healers of the previous release announce nothing: the rolling order (nodes, healers, gateways,
 * then the bump; docs/upgrading.md) is what keeps them out.
 */
export function bumpBlockers(to: number, registries: FormatRegistries): BumpBlocker[] {
  const blockers: BumpBlocker[] = [];
  const announced = new Map(registries.processes.map((p) => [p.id, p]));
  for (const p of registries.processes) {
    if (p.formatMax >= to) continue;
    blockers.push({
      id: p.id,
      role: p.role,
      formatMax: p.formatMax,
      alive: p.alive,
      why: p.alive ? `reads data formats up to ${p.formatMax}` : `reads data formats up to ${p.formatMax} and lapsed less than 2 x its ttl ago`,
    });
  }
  const lingerMs = PROCESS_REGISTRY_LIMITS.lingerTtls * registries.nodeTtlMs;
  for (const node of registries.nodes) {
    const own = announced.get(storageNodeProcessId(node.id));
    if (own !== undefined) continue; // judged above by its own announcement
    const recent = node.alive || registries.nowMs - node.lastHeartbeatMs < lingerMs;
    if (!recent) continue;
    blockers.push({
      id: node.id,
      role: 'storage-node',
      formatMax: DATA_FORMAT_V1,
      alive: node.alive,
      why: node.alive
        ? 'heartbeats without announcing what it reads (a previous release)'
        : 'lapsed less than 2 x its ttl ago without having announced what it reads (a previous release)',
    });
  }
  return blockers;
}

export interface FormatVersionView {
  dataFormat: number;
  /** The newest data format this release (the answering gateway) reads and writes. */
  formatMax: number;
  /** Whether the cluster has an identity record yet (the first storage node creates it). */
  recorded: boolean;
  processes: readonly RegisteredProcess[];
  blockers: readonly BumpBlocker[];
}

export interface FormatVersionContext {
  store: Pick<MetadataStore, 'getClusterIdentity' | 'raiseClusterDataFormat' | 'listProcesses' | 'listNodes'>;
  clock: Clock;
  nodeTtlMs: number;
  /** The answering process's own source: the version when there is no record (the all-in-one runs at its maximum). */
  source: DataFormatSource;
}

/** GET /admin/format-version: the version, every announced process, and what would block a bump to the next one. */
export async function formatVersionReport(context: FormatVersionContext): Promise<FormatVersionView> {
  const record = await context.store.getClusterIdentity();
  refuseNewer(record, 'the cluster identity');
  const dataFormat = record === null ? context.source.current() : dataFormatOf(record);
  const registries = await readRegistries(context);
  const next = Math.min(dataFormat + 1, DATA_FORMAT_MAX);
  return {
    dataFormat,
    formatMax: DATA_FORMAT_MAX,
    recorded: record !== null,
    processes: registries.processes,
    blockers: dataFormat >= DATA_FORMAT_MAX ? [] : bumpBlockers(next, registries),
  };
}

export interface BumpOutcome {
  dataFormat: number;
  /** False when the cluster was already at `to` (the bump is idempotent). */
  changed: boolean;
}

/**
 * POST /admin/format-version: raises the cluster's data format to `to` (see the header). Refuses a target this
 * release does not know (INVALID_REQUEST), below the current one (FORMAT_DOWNGRADE_REFUSED), or blocked by a
 * process (FORMAT_BUMP_BLOCKED, naming them); already at `to` is success without a change.
 */
export async function bumpDataFormat(context: FormatVersionContext, to: number): Promise<BumpOutcome> {
  if (!Number.isSafeInteger(to) || to < DATA_FORMAT_V1 || to > DATA_FORMAT_MAX) {
    throw new StrataError('INVALID_REQUEST', `"to" must be a data format this release knows, ${DATA_FORMAT_V1} to ${DATA_FORMAT_MAX}; got ${String(to)}`);
  }
  const record = await context.store.getClusterIdentity();
  refuseNewer(record, 'the cluster identity');
  const current = record === null ? context.source.current() : dataFormatOf(record);
  if (to < current) {
    throw new StrataError(
      'FORMAT_DOWNGRADE_REFUSED',
      `the cluster's data format is ${current}; it cannot go back to ${to} (data in format ${current} may already be written, and a ` +
        'previous release cannot read it). Nothing was changed',
      { dataFormat: current, to },
    );
  }
  if (to === current) return { dataFormat: current, changed: false };
  if (record === null) {
    throw new StrataError(
      'FORMAT_BUMP_BLOCKED',
      'the cluster has no identity record yet (the first storage node creates it when it starts): start the storage nodes, then bump',
      { to },
    );
  }
  // The registries are read, then the record is changed: a process of an older release that registers for the first
  // time in between (milliseconds) is not seen. Every release that registers at all reads this one's formats, so the
  // window matters only for a later bump; the rolling order (upgrade everything, then bump) is what closes it.
  const blockers = bumpBlockers(to, await readRegistries(context));
  if (blockers.length > 0) throw blocked(to, blockers);
  const stored = await context.store.raiseClusterDataFormat(to);
  return { dataFormat: dataFormatOf(stored), changed: true };
}

async function readRegistries(context: FormatVersionContext): Promise<FormatRegistries> {
  const [processes, nodes] = await Promise.all([context.store.listProcesses(), context.store.listNodes()]);
  return { processes, nodes, nowMs: context.clock.nowMs(), nodeTtlMs: context.nodeTtlMs };
}

function blocked(to: number, blockers: readonly BumpBlocker[]): StrataError {
  const named = blockers.slice(0, FORMAT_VERSION_LIMITS.blockersNamedMax).map((b) => `${b.id} (${b.role}: ${b.why})`);
  const more = blockers.length - named.length;
  return new StrataError(
    'FORMAT_BUMP_BLOCKED',
    `the cluster's data format cannot become ${to}: ${blockers.length} process${blockers.length === 1 ? '' : 'es'} might not read it: ` +
      `${named.join('; ')}${more > 0 ? `; and ${more} more` : ''}. Upgrade them (or stop them and wait until they have been gone for ` +
      '2 x their ttl), then bump again. Nothing was changed',
    { to, processes: blockers.map((b) => b.id) },
  );
}
