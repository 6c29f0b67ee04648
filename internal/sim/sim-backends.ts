/**
 * Fault-injecting wrappers around the real embedded backends and the real erasure code:
 * - metadata store: a commit may end in COMMIT_UNKNOWN, either applied or not (the caller cannot tell); a get,
 *   commit or abort may fail METADATA_UNAVAILABLE before anything is applied. Every applied versioned commit is
 *   recorded (the ground truth the checker compares reads against), and every commit is checked against the
 *   simulated nodes (an `ok` ref must exist; a new version must reference at least the write quorum).
 * - WAL consumer: an entry may be delivered twice, and a poll may come back short (delayed delivery).
 * - erasure code: the native thread-pool work runs for real, its results are released in a seeded order.
 * Every call bumps the scheduler's progress counter so `settle()` sees SQLite work that is still moving.
 */
import { StrataError } from '../core/errors.js';
import { EC_WRITE_QUORUM, HOT_WRITE_QUORUM } from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import type { Manifest } from '../manifest/manifest.js';
import { hasColdCopies } from '../coldpart/cold-layout.js';
import type { CommitRequest, CommitResult, MetadataStore } from '../metadata/metadata-store.js';
import type { WalConsumer, WalEntry, WriteAheadLog } from '../wal/write-ahead-log.js';
import type { Prng } from './prng.js';
import type { SimScheduler } from './sim-scheduler.js';

export interface MetadataFaultRates {
  commitUnknownApplied: number;
  commitUnknownNotApplied: number;
  unavailable: number;
}

export interface CommitRecord {
  key: string;
  writeId: string;
  version: number;
  deleted: boolean;
  /** Event sequence number just after the commit was applied. */
  seq: number;
}

/** Forwards every method, bumping the scheduler's progress counter around each call. */
function tracked<T extends object>(target: T, sched: SimScheduler): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        sched.progress++;
        const out = (value as (...a: unknown[]) => unknown).apply(obj, args);
        if (out instanceof Promise) return out.finally(() => sched.progress++);
        return out;
      };
    },
  });
}

export class SimMetadataStore {
  readonly commits: CommitRecord[] = [];
  readonly violations: string[] = [];
  readonly store: MetadataStore;

  constructor(
    real: MetadataStore,
    private readonly sched: SimScheduler,
    private readonly prng: Prng,
    private readonly faults: () => MetadataFaultRates,
    private readonly blobExists: (node: string, blob: string) => boolean,
    private readonly trace: (line: string) => void,
  ) {
    const inner = tracked(real, sched);
    const self = this;
    this.store = new Proxy(inner, {
      get(obj, prop, receiver) {
        if (prop === 'commit') return (request: CommitRequest) => self.commit(inner, request);
        if (prop === 'get' || prop === 'abort') {
          const fn = Reflect.get(obj, prop, receiver) as (...a: unknown[]) => Promise<unknown>;
          return async (...args: unknown[]) => {
            self.maybeUnavailable(String(prop));
            return fn.apply(obj, args);
          };
        }
        return Reflect.get(obj, prop, receiver);
      },
    });
  }

  private maybeUnavailable(op: string): void {
    if (this.prng.chance(this.faults().unavailable)) {
      this.trace(`fault metadata-unavailable ${op}`);
      throw new StrataError('METADATA_UNAVAILABLE', `simulated: the metadata store is unreachable (${op})`);
    }
  }

  private async commit(inner: MetadataStore, request: CommitRequest): Promise<CommitResult> {
    const rates = this.faults();
    this.maybeUnavailable('commit');
    const roll = this.prng.next();
    const unknownApplied = roll < rates.commitUnknownApplied;
    const unknownNotApplied = !unknownApplied && roll < rates.commitUnknownApplied + rates.commitUnknownNotApplied;
    if (unknownNotApplied) {
      this.trace(`fault commit-unknown not-applied ${request.key}`);
      throw new StrataError('COMMIT_UNKNOWN', 'simulated: the commit timed out before it was applied');
    }
    const result = await inner.commit(request);
    // Checked once applied: a commit refused (conflict, aborted, fenced) promises nothing.
    if (result.ok) this.checkManifest(request);
    if (result.ok && request.assignVersion) {
      this.commits.push({
        key: request.key,
        writeId: request.writeId,
        version: Number(result.manifest.version),
        deleted: result.manifest.deleted,
        seq: this.sched.tick(),
      });
    }
    if (unknownApplied) {
      this.trace(`fault commit-unknown applied=${result.ok} ${request.key}`);
      throw new StrataError('COMMIT_UNKNOWN', 'simulated: the commit timed out after it was applied');
    }
    return result;
  }

  /** What a manifest about to be committed promises must already hold on the nodes. */
  private checkManifest(request: CommitRequest): void {
    const m: Manifest = request.manifest;
    for (const ref of [...m.hot, ...m.cold]) {
      if (ref.state === 'ok' && !this.blobExists(ref.node, ref.blob)) {
        this.violations.push(`commit of ${m.key} (${request.assignVersion ? 'write' : 'repair'}) references ${ref.part} ${ref.blob} on ${ref.node} as ok, but the node does not hold it`);
      }
    }
    if (request.assignVersion && !m.deleted) {
      // Quorum applies to the blobs this write created; reused shards keep the states the healer last saw.
      const created = (refs: Manifest['hot']) => refs.filter((r) => r.writeId === request.writeId);
      const hotOk = created(m.hot).filter((r) => r.state === 'ok').length;
      const coldOk = created(m.cold).filter((r) => r.state === 'ok').length;
      if (created(m.hot).length > 0 && hotOk < HOT_WRITE_QUORUM) this.violations.push(`commit of ${m.key} with ${hotOk} hot replicas ok`);
      const coldQuorum = hasColdCopies(m) ? HOT_WRITE_QUORUM : EC_WRITE_QUORUM;
      if (created(m.cold).length > 0 && coldOk < coldQuorum) this.violations.push(`commit of ${m.key} with ${coldOk} cold blobs ok`);
    }
  }
}

export interface WalFaultRates {
  duplicate: number;
  shortPoll: number;
}

export function simWal(real: WriteAheadLog, sched: SimScheduler, prng: Prng, faults: () => WalFaultRates): WriteAheadLog {
  const inner = tracked(real, sched);
  return {
    append: (record) => inner.append(record),
    close: () => inner.close(),
    async consumer(group: string): Promise<WalConsumer> {
      const consumer = tracked(await inner.consumer(group), sched);
      let held: WalEntry[] = [];
      return {
        async poll(max: number, waitMs: number): Promise<WalEntry[]> {
          const fresh = await consumer.poll(max, waitMs);
          let entries = [...held, ...fresh];
          held = [];
          const rates = faults();
          if (entries.length > 1 && prng.chance(rates.shortPoll)) {
            // Delayed delivery: the tail comes with the next poll.
            const cut = 1 + prng.int(entries.length - 1);
            held = entries.slice(cut);
            entries = entries.slice(0, cut);
          }
          const out: WalEntry[] = [];
          for (const entry of entries) {
            out.push(entry);
            if (prng.chance(rates.duplicate)) out.push(structuredClone(entry));
          }
          return out;
        },
        commit: (position) => consumer.commit(position),
        close: () => consumer.close(),
      };
    },
  };
}

export function simErasureCode(real: ErasureCode, sched: SimScheduler): ErasureCode {
  return {
    dataShards: real.dataShards,
    parityShards: real.parityShards,
    shardBytesFor: (n) => real.shardBytesFor(n),
    encode: (data) => sched.real(() => real.encode(data)),
    reconstruct: (shards, dataBytes) => sched.real(() => real.reconstruct(shards, dataBytes)),
    rebuildShards: (shards, dataBytes) => sched.real(() => real.rebuildShards(shards, dataBytes)),
  };
}
