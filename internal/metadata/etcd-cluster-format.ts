/**
 * The process registry on etcd (MetadataStore.registerProcess and friends; the data format bump reads it:
 * internal/cluster/format-version.ts). One key per process:
 *
 *   <prefix>process/<id>  ->  {"format":1,"role":"gateway","formatMax":2,"lastHeartbeatMs":…,"ttlMs":…}
 *
 * attached to a lease of PROCESS_REGISTRY_LIMITS.lingerTtls x ttl (whole seconds, rounded up) that each heartbeat
 * renews: the key outlives the process's liveness by 2 x ttl, so that the bump still sees a process paused past its
 * ttl (it may wake up as an old release and write), and etcd deletes it by itself after that. The count is bounded
 * by that lifetime; a listing beyond PROCESS_REGISTRY_LIMITS.processesMax is refused rather than cut.
 * `alive` compares the writer's heartbeat time with this process's clock, so it is for reports only; the bump
 * decides on presence.
 */
import type { IKeyValue } from 'etcd3';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import { KeySpace, prefixUpperBound, put, revisionOf, utf8 } from './etcd-keyspace.js';
import type { CallKind, CallOptions, Deadline } from './etcd-rpc.js';
import { PROCESS_ID_PATTERN, PROCESS_REGISTRY_LIMITS, type ProcessRegistration, type RegisteredProcess } from './metadata-store.js';
import { assertProcessRegistration, roleOf, tooManyProcesses } from './sqlite-process-registry.js';

/** The JSON record format of a process key; one with a higher number is listed with what this release reads of it. */
const ETCD_PROCESS_RECORD_FORMAT = 1;

interface ProcessRecord {
  format: number;
  role: string;
  formatMax: number;
  lastHeartbeatMs: number;
  ttlMs: number;
}

/** What the store lends this registry: its calls (deadlines, retries, error mapping) and lease renewal. */
export interface EtcdProcessRegistryParts {
  root: Buffer;
  clock: Clock;
  client(): Etcd3;
  deadline(): Deadline;
  rpc<T>(what: string, kind: CallKind, deadline: Deadline, send: (options: CallOptions) => Promise<T>): Promise<T>;
  /** Renews a lease once; its remaining TTL in seconds, 0 when it had expired. */
  keepAliveOnce(leaseId: string, deadline: Deadline, what: string): Promise<number>;
}

export class EtcdProcessRegistry {
  private readonly namespace: Buffer;
  private readonly leases = new Map<string, { leaseId: string; ttlSeconds: number }>();

  constructor(private readonly parts: EtcdProcessRegistryParts) {
    this.namespace = Buffer.concat([parts.root, utf8('process/', 'prefix')]);
  }

  async register(p: ProcessRegistration, ttlMs: number): Promise<void> {
    assertProcessRegistration(p, ttlMs);
    const key = KeySpace.under(this.namespace, p.id, 'process id');
    try {
      const leaseId = await this.lease(p.id, ttlMs);
      const record: ProcessRecord = {
        format: ETCD_PROCESS_RECORD_FORMAT,
        role: p.role,
        formatMax: p.formatMax,
        lastHeartbeatMs: this.parts.clock.nowMs(),
        ttlMs,
      };
      await this.parts.rpc('registerProcess', 'idempotent', this.parts.deadline(), (options) =>
        this.parts.client().kv.txn({ compare: [], success: [put(key, JSON.stringify(record), leaseId)], failure: [] }, options),
      );
    } catch (error) {
      // The lease may be what failed (expired between the keep-alive and the put): grant a fresh one next time.
      this.leases.delete(p.id);
      throw error;
    }
  }

  async deregister(id: string): Promise<void> {
    if (!PROCESS_ID_PATTERN.test(id)) return;
    this.leases.delete(id);
    const key = KeySpace.under(this.namespace, id, 'process id');
    // Deleting the key is enough: its lease, if this client granted it, runs out by itself.
    await this.parts.rpc('deregisterProcess', 'idempotent', this.parts.deadline(), (options) =>
      this.parts.client().kv.deleteRange({ key }, options),
    );
  }

  async list(): Promise<RegisteredProcess[]> {
    const limit = PROCESS_REGISTRY_LIMITS.processesMax + 1;
    const response = await this.parts.rpc('listProcesses', 'idempotent', this.parts.deadline(), (options) =>
      this.parts.client().kv.range({ key: this.namespace, range_end: prefixUpperBound(this.namespace), limit }, options),
    );
    if (response.kvs.length > PROCESS_REGISTRY_LIMITS.processesMax) throw tooManyProcesses(response.kvs.length);
    const nowMs = this.parts.clock.nowMs();
    return response.kvs.map((kv) => this.decode(kv, nowMs));
  }

  private decode(kv: IKeyValue, nowMs: number): RegisteredProcess {
    const id = KeySpace.nameIn(this.namespace, kv.key);
    let record: ProcessRecord;
    try {
      record = JSON.parse(kv.value.toString('utf8')) as ProcessRecord;
    } catch {
      throw new StrataError('METADATA_UNAVAILABLE', `etcd key ${kv.key.toString('utf8')} does not hold a readable process record`);
    }
    const numbers = [record.formatMax, record.lastHeartbeatMs, record.ttlMs];
    if (typeof record.format !== 'number' || typeof record.role !== 'string' || !numbers.every((n) => Number.isSafeInteger(n))) {
      throw new StrataError('METADATA_UNAVAILABLE', `etcd key ${kv.key.toString('utf8')} does not hold a readable process record`);
    }
    return {
      id,
      role: roleOf(record.role),
      formatMax: record.formatMax,
      alive: nowMs - record.lastHeartbeatMs < record.ttlMs,
      lastHeartbeatMs: record.lastHeartbeatMs,
    };
  }

  /** The lease for `id`'s key: the one granted before, kept alive once, or a fresh one. */
  private async lease(id: string, ttlMs: number): Promise<string> {
    const deadline = this.parts.deadline();
    const ttlSeconds = Math.max(1, Math.ceil((PROCESS_REGISTRY_LIMITS.lingerTtls * ttlMs) / 1000));
    const known = this.leases.get(id);
    if (known !== undefined && known.ttlSeconds === ttlSeconds) {
      if ((await this.parts.keepAliveOnce(known.leaseId, deadline, 'registerProcess')) > 0) return known.leaseId;
    }
    const grant = await this.parts.rpc('registerProcess (lease grant)', 'once', deadline, (options) =>
      this.parts.client().leaseClient.leaseGrant({ TTL: ttlSeconds }, options),
    );
    revisionOf(grant.TTL, 'TTL');
    this.leases.set(id, { leaseId: grant.ID, ttlSeconds });
    return grant.ID;
  }
}
