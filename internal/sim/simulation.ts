/**
 * One simulated run of Strata's write, read, delete, repair and GC protocols, from a seed.
 *
 * World: six simulated storage nodes (sim-node.ts), the real SQLite metadata store and WAL on tmpfs wrapped with
 * fault injection (sim-backends.ts), the real Reed-Solomon code, two gateways assembled from the real
 * WriteService / ReadService / DocumentOps (as buildGateway does, minus HTTP) whose WriteHooks crash, stall
 * forever or pause at afterIntent / beforeCommit, and two real Healers with different holder ids, one of which is
 * paused now and then so leadership moves. All of it runs on one virtual clock (sim-scheduler.ts).
 *
 * Workload: steps; each step may inject faults, then launches a seeded burst of 1-3 concurrent operations on a
 * small key set (writes of every strategy, hot-only rewrites, cold changes, hot and cold patches, deletes, reads)
 * and healer rounds, drives them to completion in virtual time, and moves the clock on.
 *
 * Checking is against ground truth: the metadata wrapper records every applied versioned commit, and the hooks
 * map each write id to the operation that made it. Reads must be linearizable against that history (the version
 * read is the latest committed when the read began or one committed during it; NOT_FOUND likewise) and return
 * exactly the bytes of the operation that committed that version. Acknowledged operations must have committed
 * with the version they reported; operations that failed definitely (4xx, 503 below quorum, aborted) must not
 * have committed. Half the mutations carry an Idempotency-Key (through internal/api/idempotency.ts, as the gateway
 * routes do); one that fails in any way, whose gateway stalls forever, or whose answer is lost, is retried with the
 * same key in later steps, through either gateway: the original and all its retries together must commit at most once, exactly once
 * if any of them was acknowledged, and every acknowledgement must report that commit's version. After the faults stop and the healers run to quiescence: every node blob is referenced by a
 * manifest (GC complete), every manifest is fully protected with every ref present and intact, and every key
 * reads back as its last committed state.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NodePool } from '../cluster/node-pool.js';
import { isStrataError, StrataError } from '../core/errors.js';
import { checksumOf } from '../blobio/checksum.js';
import { ReedSolomonCode } from '../ec/reed-solomon.js';
import { Healer } from '../healer/healer.js';
import { parseJson } from '../json/parse.js';
import type { JsonObject } from '../json/value.js';
import { silentLogger } from '../log/logger.js';
import type { Strategy } from '../manifest/manifest.js';
import { SqliteMetadataStore } from '../metadata/sqlite-metadata-store.js';
import { StaticHotFieldPolicy } from '../policy/hot-fields.js';
import { ReadService } from '../readservice/read-service.js';
import { SqliteWriteAheadLog } from '../wal/sqlite-wal.js';
import { DocumentOps } from '../writeservice/document-ops.js';
import { WriteService, type CommittedWrite, type IdempotentOutcome, type WriteHooks } from '../writeservice/write-service.js';
import { idempotencyLeaseMs, runIdempotent, type IdempotencyContext } from '../api/idempotency.js';
import { Prng } from './prng.js';
import { coldCodecOf, coldPlacementOf, hasColdCopies } from '../coldpart/cold-layout.js';
import { EC_TOTAL_SHARDS, HOT_REPLICAS } from '../core/limits.js';
import { SimMetadataStore, simErasureCode, simWal, type MetadataFaultRates, type WalFaultRates } from './sim-backends.js';
import { SimNode, SimNodeClient, type NodeFaultRates } from './sim-node.js';
import { SimScheduler } from './sim-scheduler.js';

export interface SimOptions {
  seed: number;
  /** Workload steps (each a burst of 1-3 operations). */
  steps?: number;
  verbose?: boolean;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  failures: string[];
  trace: string[];
  stats: Record<string, number>;
}

const NODE_IDS = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
const KEYS = ['k0', 'k1', 'k2', 'k3'];
const HOT_FIELDS = ['counter', 'status'];
const STRATEGIES: Strategy[] = ['replication', 'ec', 'field_hybrid'];
const NODE_TIMEOUT_MS = 1000;
const INTENT_TIMEOUT_MS = 5_000;
const GC_GRACE_MS = 20_000;
const TOMBSTONE_GRACE_MS = 30_000;
const LEASE_MS = 3_000;
/** Blobs on a node down longer than this are moved elsewhere by the healer. */
const NODE_DOWN_GRACE_MS = 10_000;
/** Storage nodes down at once, at most (architecture.md's fault model). */
const NODES_DOWN_MAX = 2;
/** Share of mutations that carry an Idempotency-Key, chance per step of retrying one that needs it, retries per key. */
const IDEMPOTENT_SHARE = 0.5;
const RETRY_CHANCE = 0.5;
const RETRIES_MAX = 6;
/** Chance that the answer to an acknowledged keyed mutation is lost on its way to the client, which retries. */
const ANSWER_LOST_CHANCE = 0.3;

type OpKind = 'write' | 'hot-rewrite' | 'cold-change' | 'patch-hot' | 'patch-cold' | 'delete' | 'read';
type Outcome = 'pending' | 'acked' | 'failed' | 'unknown';

interface Op {
  id: number;
  kind: OpKind;
  key: string;
  gateway: number;
  /** Write: the exact compact JSON text written. */
  text?: string;
  patch?: Record<string, string | number>;
  outcome: Outcome;
  error?: string;
  version?: number;
  startSeq: number;
  endSeq?: number;
  /** Read results. */
  readVersion?: number | null;
  readBody?: string;
  parked?: boolean;
  /** Idempotency-Key of a mutation; retries share it, and `first` is the original attempt. */
  token?: string;
  first?: Op;
  strategy?: Strategy;
}

interface GatewayInstance {
  index: number;
  alive: boolean;
  pool: NodePool;
  writes: WriteService;
  reads: ReadService;
  ops: DocumentOps;
}

export async function runSimulation(options: SimOptions): Promise<SimResult> {
  const sim = new Simulation(options);
  try {
    return await sim.run();
  } finally {
    await sim.close();
  }
}

class Simulation {
  private readonly prng: Prng;
  private readonly sched: SimScheduler;
  private readonly trace: string[] = [];
  private readonly failures: string[] = [];
  private readonly nodes = NODE_IDS.map((id) => new SimNode(id));
  private readonly ops: Op[] = [];
  private readonly writeIdToOp = new Map<string, Op>();
  private readonly stats: Record<string, number> = {};
  private readonly dir = mkdtempSync(path.join(existsShm() ? '/dev/shm' : tmpdir(), 'strata-sim-'));
  private readonly steps: number;
  private faultsOn = true;
  /** Per-seed intensities, so some seeds are calm and some are storms. */
  private readonly intensity: number;
  private nodeRates: NodeFaultRates;
  private metaRates: MetadataFaultRates;
  private walRates: WalFaultRates;
  private hookRates = { crash: 0, stall: 0, pause: 0 };
  private meta!: SimMetadataStore;
  private realMeta!: SqliteMetadataStore;
  private realWal!: SqliteWriteAheadLog;
  private wal!: ReturnType<typeof simWal>;
  private ec!: ReturnType<typeof simErasureCode>;
  private gateways: GatewayInstance[] = [];
  private healers: { healer: Healer; pool: NodePool; pausedUntilStep: number }[] = [];
  private nextOpId = 0;
  private savedRandom = Math.random;
  private docCounter = 0;
  /** Original attempts with an Idempotency-Key whose outcome is not known yet: retried in later steps. */
  private readonly toRetry: Op[] = [];
  /**
   * The Idempotency-Key lease: the gateway's (longer than a run, so a stalled attempt is never taken over), or a
   * short one that lets retries take over attempts that are only paused, as clock skew between gateways would;
   * the claim check in the commit must then keep the woken attempt from committing.
   */
  private readonly idempotencyLeaseMs: number;

  constructor(private readonly options: SimOptions) {
    this.prng = new Prng(options.seed);
    this.sched = new SimScheduler(new Prng(options.seed ^ 0x5eed));
    this.steps = options.steps ?? 40;
    this.intensity = this.prng.pick([0, 0.5, 1, 1, 2]);
    const k = this.intensity;
    this.nodeRates = { lostResponse: 0.03 * k, slow: 0.02 * k, transitFlip: 0.02 * k };
    this.metaRates = { commitUnknownApplied: 0.04 * k, commitUnknownNotApplied: 0.04 * k, unavailable: 0.01 * k };
    this.walRates = { duplicate: 0.1 * k, shortPoll: 0.2 * k };
    this.hookRates = { crash: 0.03 * k, stall: 0.01 * k, pause: 0.03 * k };
    this.idempotencyLeaseMs = this.prng.pick([idempotencyLeaseMs(GC_GRACE_MS), 3_000]);
  }

  private log(line: string): void {
    const entry = `[${Math.round(this.sched.nowMs() - 1_700_000_000_000)}ms] ${line}`;
    this.trace.push(entry);
    if (this.options.verbose) console.log(entry);
  }

  private count(name: string): void {
    this.stats[name] = (this.stats[name] ?? 0) + 1;
  }

  async run(): Promise<SimResult> {
    // The write path's commit-race backoff draws Math.random(); during a run it draws from the seed instead.
    const random = new Prng(this.options.seed ^ 0xbac0ff);
    Math.random = () => random.next();
    try {
      await this.open();
      this.log(`seed ${this.options.seed} intensity ${this.intensity} steps ${this.steps} idempotency lease ${this.idempotencyLeaseMs} ms`);
      for (let step = 0; step < this.steps; step++) await this.step(step);
      await this.quiesce();
      await this.checkFinal();
    } catch (error) {
      this.failures.push(`run threw: ${(error as Error).stack ?? String(error)}`);
    } finally {
      Math.random = this.savedRandom;
    }
    this.checkHistory();
    this.failures.push(...this.meta.violations);
    return { seed: this.options.seed, ok: this.failures.length === 0, failures: this.failures, trace: this.trace, stats: this.stats };
  }

  private async open(): Promise<void> {
    const clock = this.sched;
    // Integrity checks inline: the scheduler must see them finish (a worker thread's answer would look like a stall).
    this.realMeta = await SqliteMetadataStore.open({ path: path.join(this.dir, 'meta.db'), clock, integrityChecks: 'inline' });
    this.realWal = await SqliteWriteAheadLog.open({ path: path.join(this.dir, 'wal.db'), clock });
    this.meta = new SimMetadataStore(
      this.realMeta,
      this.sched,
      new Prng(this.options.seed ^ 0x3e7a),
      () => (this.faultsOn ? this.metaRates : NO_META_FAULTS),
      (node, blob) => {
        const b = this.nodes.find((n) => n.id === node)?.blobs.get(blob);
        return b !== undefined;
      },
      (line) => this.log(line),
    );
    this.wal = simWal(this.realWal, this.sched, new Prng(this.options.seed ^ 0x3a1), () => (this.faultsOn ? this.walRates : NO_WAL_FAULTS));
    this.ec = simErasureCode(new ReedSolomonCode(), this.sched);
    this.gateways = [this.newGateway(0), this.newGateway(1)];
    this.healers = ['healer-a', 'healer-b'].map((holderId) => {
      const pool = this.newPool();
      const healer = new Healer({
        metadata: this.meta.store,
        wal: this.wal,
        pool,
        ec: this.ec,
        clock: this.sched,
        log: silentLogger,
        options: {
          holderId,
          intervalMs: 1000,
          auditIntervalMs: 5000,
          leaseMs: LEASE_MS,
          intentTimeoutMs: INTENT_TIMEOUT_MS,
          gcGraceMs: GC_GRACE_MS,
          tombstoneGraceMs: TOMBSTONE_GRACE_MS,
          nodeTimeoutMs: NODE_TIMEOUT_MS,
          nodeDownGraceMs: NODE_DOWN_GRACE_MS,
          rebalanceBlobsPerRoundMax: 100,
          rebalanceBytesPerRoundMax: 16 << 20,
        },
      });
      return { healer, pool, pausedUntilStep: -1 };
    });
  }

  private newPool(): NodePool {
    const prng = new Prng(this.prng.int(2 ** 31));
    const clients = this.nodes.map((node) => ({
      client: new SimNodeClient(node, this.sched, prng, () => (this.faultsOn ? this.nodeRates : NO_NODE_FAULTS), (l) => this.log(l)),
    }));
    return new NodePool(clients, { clock: this.sched, probeIntervalMs: 1000, probeTimeoutMs: NODE_TIMEOUT_MS });
  }

  private newGateway(index: number): GatewayInstance {
    const pool = this.newPool();
    let self: GatewayInstance | null = null;
    const hooks: WriteHooks = {
      afterIntent: (writeId, key) => this.hook('afterIntent', self!, writeId, key),
      beforeCommit: (writeId, key) => this.hook('beforeCommit', self!, writeId, key),
    };
    const writes = new WriteService({
      metadata: this.meta.store,
      wal: this.wal,
      pool,
      ec: this.ec,
      clock: this.sched,
      log: silentLogger,
      options: { nodeTimeoutMs: NODE_TIMEOUT_MS, commitDeadlineMs: GC_GRACE_MS },
      hooks,
    });
    // hedgeAfterMs: the hedges of blob-io.ts use real timers, so they are pushed past any run (see README).
    const reads = new ReadService({
      metadata: this.meta.store,
      pool,
      ec: this.ec,
      clock: this.sched,
      log: silentLogger,
      options: { nodeTimeoutMs: NODE_TIMEOUT_MS, hedgeAfterMs: 2_000_000_000, depthMax: 64, membersMax: 10_000 },
    });
    const policy = new StaticHotFieldPolicy(HOT_FIELDS, new Map());
    const ops = new DocumentOps(writes, reads, policy, 'field_hybrid', { bodyBytesMax: 1 << 20, depthMax: 64, membersMax: 10_000 });
    self = { index, alive: true, pool, writes, reads, ops };
    return self;
  }

  /**
   * Mutations queued per gateway instance and key, in launch order. A gateway's key lock runs them one at a time
   * in that order, so the op inside a write hook is the head of its queue.
   */
  private readonly mutationQueues = new Map<GatewayInstance, Map<string, Op[]>>();

  private queueOf(gw: GatewayInstance, key: string): Op[] {
    let byKey = this.mutationQueues.get(gw);
    if (!byKey) this.mutationQueues.set(gw, (byKey = new Map()));
    let queue = byKey.get(key);
    if (!queue) byKey.set(key, (queue = []));
    return queue;
  }

  private async hook(where: 'afterIntent' | 'beforeCommit', instance: GatewayInstance, writeId: string, key: string): Promise<void> {
    const gateway = instance.index;
    const op = this.queueOf(instance, key)[0];
    if (op) this.writeIdToOp.set(writeId, op);
    if (!this.faultsOn) return;
    const roll = this.prng.next();
    const r = this.hookRates;
    if (roll < r.crash) {
      this.count(`gateway-crash-${where}`);
      this.log(`fault gateway-${gateway} crashes at ${where} of op ${op?.id}`);
      throw new Error(`simulated gateway crash at ${where}`);
    }
    if (roll < r.crash + r.stall && op) {
      this.count(`gateway-stall-${where}`);
      this.log(`fault gateway-${gateway} stalls forever at ${where} of op ${op.id}; it is replaced`);
      op.parked = true;
      instance.alive = false;
      this.gateways[gateway] = this.newGateway(gateway);
      return new Promise<void>(() => undefined);
    }
    if (roll < r.crash + r.stall + r.pause) {
      const ms = this.prng.int(GC_GRACE_MS * 1.5);
      this.count(`gateway-pause-${where}`);
      this.log(`fault gateway-${gateway} pauses ${ms} ms at ${where} of op ${op?.id}`);
      if (op) op.parked = true;
      await this.sched.sleep(ms);
    }
  }

  private async step(step: number): Promise<void> {
    if (this.faultsOn) this.injectFaults(step);
    for (const g of this.gateways) void g.pool.probe();
    const burst = 1 + this.prng.int(3);
    const launched: Op[] = [];
    const running: Promise<unknown>[] = [];
    // Mutations on one key through one gateway are queued by its key lock; only one op per (gateway, key) per
    // burst keeps the mapping from hook to op exact.
    const used = new Set<string>();
    for (let i = 0; i < burst; i++) {
      const gateway = this.prng.int(this.gateways.length);
      const key = this.prng.pick(KEYS);
      if (used.has(`${gateway}/${key}`)) continue;
      used.add(`${gateway}/${key}`);
      const op = this.launch(gateway, key);
      launched.push(op);
    }
    const retry = this.pickRetry(used);
    if (retry) launched.push(retry);
    const healerTasks: { done: boolean }[] = [];
    for (const [i, h] of this.healers.entries()) {
      if (h.pausedUntilStep > step || !this.prng.chance(0.6)) continue;
      const task = { done: false };
      healerTasks.push(task);
      running.push(
        h.healer
          .runOnce()
          .catch((error) => this.log(`healer-${i} round failed: ${(error as Error).message}`))
          .finally(() => (task.done = true)),
      );
    }
    const finished = await this.sched.runUntil(
      () => launched.every((op) => op.outcome !== 'pending' || op.parked || !this.gateways[op.gateway]!.alive || this.deadGateway(op)) && healerTasks.every((t) => t.done),
      this.sched.nowMs() + 10 * GC_GRACE_MS,
    );
    if (!finished) this.failures.push(`step ${step}: operations stalled (no timers left or beyond the time limit)`);
    await this.sched.advanceTo(this.sched.nowMs() + this.prng.int(1500));
  }

  private readonly gatewayOfOp = new Map<Op, GatewayInstance>();

  private deadGateway(op: Op): boolean {
    return this.gatewayOfOp.get(op)?.alive === false;
  }

  private injectFaults(step: number): void {
    const k = this.intensity;
    if (k === 0) return;
    const down = this.nodes.filter((n) => !n.up);
    if (down.length > 0 && this.prng.chance(0.25)) {
      const node = this.prng.pick(down);
      node.restart();
      this.log(`fault node ${node.id} restarts`);
    } else if (down.length < NODES_DOWN_MAX && this.prng.chance(0.08 * k)) {
      const node = this.prng.pick(this.nodes.filter((n) => n.up));
      node.crash();
      this.count('node-crash');
      this.log(`fault node ${node.id} crashes`);
    }
    if (this.prng.chance(0.05 * k)) {
      const node = this.prng.pick(this.nodes);
      node.diskFull = !node.diskFull;
      this.count('disk-full-toggle');
      this.log(`fault node ${node.id} disk full = ${node.diskFull}`);
    }
    if (this.prng.chance(0.1 * k)) this.rotOneBlob();
    const healer = this.healers[this.prng.int(this.healers.length)]!;
    if (this.prng.chance(0.08 * k)) {
      healer.pausedUntilStep = step + 1 + this.prng.int(8);
      this.count('healer-pause');
      this.log(`fault healer ${this.healers.indexOf(healer)} paused until step ${healer.pausedUntilStep}`);
    }
  }

  /** Flips a bit in one stored blob, at most one rotten blob per write id (beyond that data is really lost). */
  private rotOneBlob(): void {
    const rottenWrites = new Set<string>();
    const candidates: { node: SimNode; id: string }[] = [];
    for (const node of this.nodes) for (const [id, b] of node.blobs) if (b.rotten) rottenWrites.add(b.info.writeId);
    for (const node of this.nodes) {
      for (const [id, b] of node.blobs) if (!b.rotten && !rottenWrites.has(b.info.writeId)) candidates.push({ node, id });
    }
    if (candidates.length === 0) return;
    const { node, id } = this.prng.pick(candidates);
    const blob = node.blobs.get(id)!;
    blob.rotten = true;
    blob.data = Buffer.from(blob.data);
    if (blob.data.length > 0) {
      const i = this.prng.int(blob.data.length);
      blob.data[i] = blob.data[i]! ^ (1 << this.prng.int(8));
    }
    this.count('bit-rot');
    this.log(`fault bit rot in ${id} on ${node.id}`);
  }

  private newDoc(key: string, base?: { nonce: string; big: string; tags: string[] }): string {
    const n = ++this.docCounter;
    const nonce = base?.nonce ?? `c${n}`;
    const big = base?.big ?? this.bigValue();
    const tags = base?.tags ?? [`t${n}`, `u${this.prng.int(100)}`];
    // Members in a fixed order with hot ones in the middle, so that merge(hot, cold) must restore the order.
    return `{"id":"${key}","nonce":"${nonce}","counter":${n},"tags":${JSON.stringify(tags)},"status":"s${n}","big":"${big}"}`;
  }

  /**
   * The bulk of a document's cold part, in the shapes that take the different cold layouts (internal/coldpart):
   * tiny (kept with the replicas), large and compressible (compressed, then small enough to be kept with the
   * replicas), compressible text that stays large after compression (compressed shards), and noise that does not
   * compress (raw shards).
   */
  private bigValue(): string {
    switch (this.prng.int(5)) {
      case 0:
        return 'x'.repeat(2000 + this.prng.int(4000));
      case 1: {
        const words = ['alpha', 'beta', 'gamma', 'delta', 'sensor', 'reading', 'value', 'north'];
        const out: string[] = [];
        for (let i = 0, n = 2000 + this.prng.int(2000); i < n; i++) out.push(`${this.prng.pick(words)}${this.prng.int(1000)}`);
        return out.join(' ');
      }
      case 2: {
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
        let out = '';
        for (let i = 0, n = 1500 + this.prng.int(3000); i < n; i++) out += alphabet[this.prng.int(64)];
        return out;
      }
      default:
        return 'x'.repeat(this.prng.int(60));
    }
  }

  /** The last text written to `key` that might be current (for hot-only rewrites and cold changes). */
  private lastText(key: string): string | undefined {
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const op = this.ops[i]!;
      if (op.key === key && op.text && op.outcome !== 'failed') return op.text;
    }
    return undefined;
  }

  private launch(gateway: number, key: string): Op {
    const gw = this.gateways[gateway]!;
    const kind = this.prng.pick<OpKind>(['write', 'write', 'hot-rewrite', 'cold-change', 'patch-hot', 'patch-cold', 'delete', 'read', 'read', 'read']);
    const op: Op = { id: this.nextOpId++, kind, key, gateway, outcome: 'pending', startSeq: this.sched.tick() };
    this.ops.push(op);
    this.gatewayOfOp.set(op, gw);
    this.count(`op-${kind}`);
    let task: Promise<unknown>;
    if (kind === 'read') {
      task = gw.reads.read(key).then((r) => {
        op.readVersion = Number(r.manifest.version);
        op.readBody = r.body!.toString('utf8');
      });
    } else {
      if (kind === 'patch-hot' || kind === 'patch-cold') {
        op.patch = kind === 'patch-hot' ? { counter: 100_000 + op.id, status: `p${op.id}` } : { note: `n${op.id}` };
      } else if (kind !== 'delete') {
        const prev = this.lastText(key);
        const prevDoc = prev ? (JSON.parse(prev) as { nonce: string; big: string; tags: string[] }) : undefined;
        op.text = kind === 'hot-rewrite' && prevDoc
          ? this.newDoc(key, prevDoc)
          : kind === 'cold-change' && prevDoc
            ? this.newDoc(key, { ...prevDoc, nonce: `c${this.docCounter + 1}` })
            : this.newDoc(key);
        if (kind === 'write') op.strategy = this.prng.pick(STRATEGIES);
      }
      if (this.prng.chance(IDEMPOTENT_SHARE)) op.token = `tok-${op.id}`;
      task = this.mutation(gw, op);
    }
    this.track(gw, op, task);
    return op;
  }

  /** Runs mutation `op` (a first attempt or a retry) through `gw`, with its Idempotency-Key if it has one. */
  private mutation(gw: GatewayInstance, op: Op): Promise<unknown> {
    const { key, kind } = op;
    // Off its key-lock queue as soon as the write path is done with it: the next mutation of the key may start at
    // once, while this one still records its idempotency outcome, and its hooks must find itself at the head.
    const run = (idempotency: IdempotentOutcome | undefined): Promise<CommittedWrite> =>
      apply(idempotency).finally(() => this.dequeue(gw, op));
    const apply = (idempotency: IdempotentOutcome | undefined): Promise<CommittedWrite> => {
      const withKey = idempotency ? { idempotency } : {};
      if (kind === 'delete') return gw.ops.delete(key, {}, idempotency);
      if (op.patch) {
        const patch = parseJson(JSON.stringify(op.patch), { depthMax: 8, membersMax: 100, what: 'patch' });
        return gw.ops.patch({ key, kind: 'merge-patch', patch, preconditions: {}, ...withKey });
      }
      const doc = parseJson(op.text!, { depthMax: 8, membersMax: 100, what: 'doc' }) as JsonObject;
      return gw.ops.write({ key, doc, ...(op.strategy ? { strategy: op.strategy } : {}), hotFields: HOT_FIELDS, preconditions: {}, ...withKey });
    };
    const ctx: IdempotencyContext = { metadata: this.meta.store, clock: this.sched, leaseMs: this.idempotencyLeaseMs };
    const identity = { method: kind, key, body: Buffer.from(op.text ?? JSON.stringify(op.patch ?? null)), extra: op.strategy ?? '' };
    const respond = (w: CommittedWrite) => ({ status: 200, body: { version: w.manifest.version }, headers: {} });
    return runIdempotent(ctx, op.token, identity, respond, run).then((answer) => {
      op.version = Number((answer.response.body as { version: string }).version);
      if (answer.replayed) this.count('idempotent-replay');
    });
  }

  /**
   * Now and then, a retry of an earlier mutation with an Idempotency-Key whose outcome is not known (it failed, or
   * its gateway stalled forever), through either gateway, with the same key and request; null when none is due.
   */
  private pickRetry(used: Set<string>): Op | null {
    if (this.toRetry.length === 0 || !this.prng.chance(RETRY_CHANCE)) return null;
    const first = this.toRetry[this.prng.int(this.toRetry.length)]!;
    const gateway = this.prng.int(this.gateways.length);
    if (used.has(`${gateway}/${first.key}`)) return null;
    used.add(`${gateway}/${first.key}`);
    const attempts = this.ops.filter((o) => o.first === first).length;
    if (attempts >= RETRIES_MAX) {
      this.toRetry.splice(this.toRetry.indexOf(first), 1);
      return null;
    }
    const gw = this.gateways[gateway]!;
    const op: Op = {
      ...first,
      id: this.nextOpId++,
      gateway,
      first,
      outcome: 'pending',
      startSeq: this.sched.tick(),
    };
    delete op.error;
    delete op.version;
    delete op.endSeq;
    delete op.parked;
    this.ops.push(op);
    this.gatewayOfOp.set(op, gw);
    this.count('idempotent-retry');
    this.track(gw, op, this.mutation(gw, op));
    return op;
  }

  /** Queues a mutation on its gateway's key lock (so hooks find it), logs it, and records how it ends. */
  private track(gw: GatewayInstance, op: Op, task: Promise<unknown>): void {
    const { kind, key, gateway } = op;
    if (kind !== 'read') this.queueOf(gw, key).push(op);
    const dequeue = (): void => this.dequeue(gw, op);
    const retryOf = op.first ? ` (retry of op ${op.first.id})` : '';
    const token = op.token ? ` key ${op.token}` : '';
    this.log(`op ${op.id} ${kind} ${key} via gateway-${gateway}${retryOf}${token}${op.text ? ` ${op.text.slice(0, 60)}` : ''}${op.patch ? ` ${JSON.stringify(op.patch)}` : ''}`);
    // An original attempt with a key whose gateway stalls forever is retried like one that failed.
    if (op.token && !op.first) this.toRetry.push(op);
    void task.then(
      () => {
        dequeue();
        op.outcome = 'acked';
        op.endSeq = this.sched.tick();
        if (op.token && !op.first && this.prng.chance(ANSWER_LOST_CHANCE)) this.count('idempotent-answer-lost');
        else this.settled(op);
        this.log(`op ${op.id} ok${op.version !== undefined ? ` v${op.version}` : ''}${op.readVersion !== undefined ? ` read v${op.readVersion}` : ''}`);
      },
      (error: unknown) => {
        dequeue();
        op.endSeq = this.sched.tick();
        op.error = isStrataError(error) ? (error as StrataError).code : (error as Error).message;
        op.outcome = isDefiniteFailure(error) ? 'failed' : 'unknown';
        if (kind === 'read' && isStrataError(error, 'NOT_FOUND')) {
          op.readVersion = null;
          op.outcome = 'acked';
        }
        // A definite refusal (4xx) is the answer for good; anything else is retried while it has a key.
        if (isStrataError(error) && (error as StrataError).status < 500 && !isStrataError(error, 'IDEMPOTENCY_IN_PROGRESS')) this.settled(op);
        if (op.first && isStrataError(error, 'IDEMPOTENCY_IN_PROGRESS')) this.count('idempotent-retry-in-progress');
        this.log(`op ${op.id} ${op.outcome === 'acked' ? 'not found' : `fails ${op.error}`}`);
      },
    );
  }

  private dequeue(gw: GatewayInstance, op: Op): void {
    const queue = this.queueOf(gw, op.key);
    if (queue.includes(op)) queue.splice(queue.indexOf(op), 1);
  }

  /** The keyed mutation `op` belongs to has its answer: no more retries. */
  private settled(op: Op): void {
    const first = op.first ?? op;
    const at = this.toRetry.indexOf(first);
    if (at >= 0) this.toRetry.splice(at, 1);
  }

  /** Faults off, nodes back, time moved past every grace period, healers run until nothing changes. */
  private async quiesce(): Promise<void> {
    this.faultsOn = false;
    for (const node of this.nodes) {
      node.restart();
      node.diskFull = false;
    }
    this.log('faults stop; every node restarts');
    for (const h of this.healers) h.pausedUntilStep = -1;
    const pausedOps = () => this.ops.filter((op) => op.outcome === 'pending' && !this.deadGateway(op));
    const drained = await this.sched.runUntil(() => pausedOps().length === 0, this.sched.nowMs() + 10 * GC_GRACE_MS);
    this.log('quiesce: paused operations finished');
    if (!drained) this.failures.push(`operations never finished: ${pausedOps().map((o) => o.id).join(', ')}`);
    let releasesDone = false;
    void Promise.all(this.gateways.map((g) => g.writes.drain())).finally(() => (releasesDone = true));
    await this.sched.runUntil(() => releasesDone);
    this.log('quiesce: releases drained');
    for (let round = 0; round < 6; round++) {
      await this.sched.advanceTo(this.sched.nowMs() + GC_GRACE_MS + INTENT_TIMEOUT_MS + LEASE_MS);
      this.log(`quiesce: healer round ${round}`);
      for (const h of this.healers) {
        let done = false;
        void h.pool.probe().then(() => h.healer.runOnce({ forceAudit: true })).catch((e) => this.log(`healer round failed: ${(e as Error).message}`)).finally(() => (done = true));
        if (!(await this.sched.runUntil(() => done))) this.failures.push('a healer round stalled during quiescence');
      }
    }
  }

  private async checkFinal(): Promise<void> {
    const manifests = await this.realMeta.scan(null, 10_000);
    const referenced = new Set<string>();
    for (const { manifest: m } of manifests) {
      if (m.deleted) continue;
      const refs = [...m.hot, ...m.cold];
      if (m.dirty) this.failures.push(`after healing, ${m.key} v${m.version} is still dirty`);
      for (const ref of refs) {
        referenced.add(`${ref.node}/${ref.blob}`);
        const blob = this.nodes.find((n) => n.id === ref.node)!.blobs.get(ref.blob);
        if (ref.state !== 'ok') this.failures.push(`after healing, ${m.key} ${ref.part} is ${ref.state}`);
        if (!blob) this.failures.push(`${m.key} v${m.version} references ${ref.part} ${ref.blob} on ${ref.node}, which is gone`);
        else if (blob.rotten || checksumOf(blob.data) !== ref.checksum) this.failures.push(`after healing, ${m.key} ${ref.part} on ${ref.node} is corrupt`);
      }
      if (m.strategy !== 'ec' && m.hot.length !== 3 && m.hotPaths.length > 0) this.failures.push(`${m.key} has ${m.hot.length} hot replicas`);
      const coldBlobs = hasColdCopies(m) ? HOT_REPLICAS : EC_TOTAL_SHARDS;
      if (m.cold.length !== 0 && m.cold.length !== coldBlobs) this.failures.push(`${m.key} has ${m.cold.length} cold blobs, not ${coldBlobs}`);
      if (m.cold.some((r) => !r.part.startsWith(hasColdCopies(m) ? 'cold-' : 'shard-'))) this.failures.push(`${m.key} has cold parts of another layout`);
      if (m.cold_layout && m.cold.length > 0) this.count(`cold-${coldPlacementOf(m.cold_layout)}-${coldCodecOf(m.cold_layout)}`);
      if (new Set(m.cold.map((r) => r.node)).size !== m.cold.length) this.failures.push(`${m.key} has two shards on one node`);
    }
    for (const node of this.nodes) {
      for (const [id, b] of node.blobs) {
        if (!referenced.has(`${node.id}/${id}`)) this.failures.push(`garbage left after GC: ${id} (${b.info.key}) on ${node.id}`);
      }
    }
    this.stats['blobs-at-end'] = this.nodes.reduce((s, n) => s + n.blobs.size, 0);
    // Every key reads back as its last committed state, through a fresh gateway.
    const gw = this.newGateway(9);
    let probed = false;
    void gw.pool.probe().finally(() => (probed = true));
    await this.sched.runUntil(() => probed);
    for (const key of KEYS) {
      const op: Op = { id: this.nextOpId++, kind: 'read', key, gateway: 9, outcome: 'pending', startSeq: this.sched.tick() };
      this.ops.push(op);
      let done = false;
      void gw.reads
        .read(key)
        .then(
          (r) => {
            op.readVersion = Number(r.manifest.version);
            op.readBody = r.body!.toString('utf8');
            op.outcome = 'acked';
          },
          (error: unknown) => {
            if (isStrataError(error, 'NOT_FOUND')) {
              op.readVersion = null;
              op.outcome = 'acked';
            } else {
              op.outcome = 'unknown';
              this.failures.push(`final read of ${key} failed: ${(error as Error).message}`);
            }
          },
        )
        .finally(() => {
          op.endSeq = this.sched.tick();
          done = true;
        });
      await this.sched.runUntil(() => done);
      const last = this.committed(key).at(-1);
      const expected = last && !last.deleted ? last.version : null;
      if (op.outcome === 'acked' && op.readVersion !== expected) {
        this.failures.push(`final read of ${key} returned v${op.readVersion}, the last commit is v${expected}`);
      }
    }
  }

  private committed(key: string) {
    return this.meta.commits.filter((c) => c.key === key);
  }

  /**
   * A mutation with an Idempotency-Key and all its retries commit at most once; exactly once if any of them was
   * acknowledged, and then every acknowledgement reports the version of that commit.
   */
  private checkIdempotency(): void {
    for (const first of this.ops.filter((o) => o.token && !o.first)) {
      const attempts = this.ops.filter((o) => o === first || o.first === first);
      const commits = this.meta.commits.filter((c) => attempts.includes(this.writeIdToOp.get(c.writeId)!));
      const ids = attempts.map((o) => o.id).join(', ');
      if (commits.length > 1) {
        this.failures.push(`${first.token} (ops ${ids}) was applied ${commits.length} times: v${commits.map((c) => c.version).join(', v')}`);
      }
      const acked = attempts.filter((o) => o.outcome === 'acked');
      if (acked.length > 0 && commits.length !== 1) this.failures.push(`${first.token} (ops ${ids}) was acknowledged but committed ${commits.length} times`);
      for (const op of acked) {
        if (commits.length === 1 && op.version !== commits[0]!.version) {
          this.failures.push(`op ${op.id} with ${first.token} acknowledged v${op.version}, but the key's one commit is v${commits[0]!.version}`);
        }
      }
    }
  }

  /** Compares every operation with the ground-truth commit history. */
  private checkHistory(): void {
    this.checkIdempotency();
    const opOfCommit = (writeId: string) => this.writeIdToOp.get(writeId);
    for (const c of this.meta.commits) {
      const op = opOfCommit(c.writeId);
      if (!op) {
        this.failures.push(`commit v${c.version} of ${c.key} has no known operation (write ${c.writeId})`);
        continue;
      }
      if (op.outcome === 'failed') this.failures.push(`op ${op.id} (${op.kind} ${op.key}) failed with ${op.error} but committed v${c.version}`);
      if (op.outcome === 'acked' && op.version !== c.version) this.failures.push(`op ${op.id} acknowledged v${op.version} but committed v${c.version}`);
    }
    for (const op of this.ops) {
      if (op.kind === 'read' || op.outcome !== 'acked') continue;
      if (!this.meta.commits.some((c) => c.version === op.version && c.key === op.key)) {
        this.failures.push(`op ${op.id} (${op.kind} ${op.key}) acknowledged v${op.version}, which was never committed`);
      }
    }
    for (const op of this.ops) {
      if (op.kind !== 'read' || op.outcome !== 'acked' || op.endSeq === undefined) continue;
      const history = this.committed(op.key);
      const atStart = history.filter((c) => c.seq < op.startSeq).at(-1);
      const during = history.filter((c) => c.seq > op.startSeq && c.seq < op.endSeq!);
      const allowed = [atStart, ...during];
      const describe = `read op ${op.id} of ${op.key}`;
      if (op.readVersion === null) {
        if (!allowed.some((c) => c === undefined || c.deleted)) {
          this.failures.push(`${describe} answered NOT_FOUND, but the key was live (v${atStart?.version}) throughout`);
        }
        continue;
      }
      const commit = allowed.find((c) => c !== undefined && !c.deleted && c.version === op.readVersion);
      if (!commit) {
        const known = history.find((c) => c.version === op.readVersion);
        this.failures.push(
          `${describe} returned v${op.readVersion} ${known ? `(committed at seq ${known.seq})` : '(never committed)'}, ` +
            `but the read ran over seq ${op.startSeq}-${op.endSeq} when v${atStart?.version ?? 'none'} was current` +
            (known && atStart && known.version < atStart.version ? ': a stale read' : ''),
        );
        continue;
      }
      this.checkContent(op, commit.writeId);
    }
  }

  private checkContent(read: Op, writeId: string): void {
    const writer = this.writeIdToOp.get(writeId);
    const body = read.readBody!;
    const describe = `read op ${read.id} of ${read.key} v${read.readVersion}`;
    if (!writer) return;
    if (writer.text !== undefined) {
      if (body !== writer.text) this.failures.push(`${describe} returned ${body.slice(0, 200)}, but op ${writer.id} wrote ${writer.text.slice(0, 200)}`);
      return;
    }
    if (writer.patch) {
      let doc: Record<string, unknown>;
      try {
        doc = JSON.parse(body) as Record<string, unknown>;
      } catch {
        this.failures.push(`${describe} is not JSON: ${body.slice(0, 200)}`);
        return;
      }
      for (const [name, value] of Object.entries(writer.patch)) {
        if (doc[name] !== value) this.failures.push(`${describe}: ${name} is ${String(doc[name])}, op ${writer.id} patched it to ${value}`);
      }
      const nonces = this.ops.filter((o) => o.key === read.key && o.text).map((o) => (JSON.parse(o.text!) as { nonce: string }).nonce);
      if (!nonces.includes(doc.nonce as string)) this.failures.push(`${describe}: nonce ${String(doc.nonce)} was never written to ${read.key}`);
    }
  }

  async close(): Promise<void> {
    Math.random = this.savedRandom;
    await this.realMeta?.close().catch(() => undefined);
    await this.realWal?.close().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An error after which the operation certainly did not commit. */
function isDefiniteFailure(error: unknown): boolean {
  if (!isStrataError(error)) return (error as Error).message?.startsWith('simulated gateway crash') ?? false;
  const code = (error as StrataError).code;
  return code !== 'COMMIT_UNKNOWN';
}

function existsShm(): boolean {
  try {
    return process.platform === 'linux' && statSync('/dev/shm').isDirectory();
  } catch {
    return false;
  }
}

const NO_NODE_FAULTS: NodeFaultRates = { lostResponse: 0, slow: 0, transitFlip: 0 };
const NO_META_FAULTS: MetadataFaultRates = { commitUnknownApplied: 0, commitUnknownNotApplied: 0, unavailable: 0 };
const NO_WAL_FAULTS: WalFaultRates = { duplicate: 0, shortPoll: 0 };
