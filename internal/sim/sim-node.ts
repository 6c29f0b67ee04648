/**
 * Simulated storage nodes: in-memory blob maps that survive a crash (what a node fsynced stays), and clients
 * whose calls take seeded virtual time and suffer seeded faults:
 * - crash and restart: every call fails NODE_UNAVAILABLE while down, and calls in flight when the node crashed
 *   fail even if the node is back by the time they would have answered;
 * - lost response: a put is applied but its caller is told NODE_UNAVAILABLE;
 * - delayed response and timeout: the node applies the call late, after its caller gave up at `timeoutMs`;
 * - bit rot in a stored blob: the node notices (its checksum), answers BLOB_CORRUPT and reports it in its
 *   inventory; a put of the same id replaces the rotten copy;
 * - bit flip in transit: a get returns bytes with one bit flipped, which only the end-to-end checksum catches;
 * - disk full: puts fail DISK_FULL.
 */
import type { BlobHeader, BlobInfo, StoreUsage } from '../blobstore/blob-store.js';
import { StrataError } from '../core/errors.js';
import { checksumOf } from '../blobio/checksum.js';
import type { CallOptions, NodeClient } from '../nodeclient/node-client.js';
import type { Prng } from './prng.js';
import type { SimScheduler } from './sim-scheduler.js';

export interface StoredBlob {
  info: BlobInfo;
  data: Buffer;
  rotten: boolean;
}

export interface NodeFaultRates {
  /** A put applied but answered with NODE_UNAVAILABLE. */
  lostResponse: number;
  /** A call that takes longer than its caller waits. */
  slow: number;
  /** A get answered with one bit flipped. */
  transitFlip: number;
}

export class SimNode {
  readonly blobs = new Map<string, StoredBlob>();
  up = true;
  diskFull = false;
  /** Bumped by each crash, so that calls begun before it fail. */
  epoch = 0;

  constructor(readonly id: string) {}

  crash(): void {
    this.up = false;
    this.epoch++;
  }

  restart(): void {
    this.up = true;
  }
}

export class SimNodeClient implements NodeClient {
  readonly nodeId: string;
  readonly address: string;

  constructor(
    private readonly node: SimNode,
    private readonly sched: SimScheduler,
    private readonly prng: Prng,
    private readonly faults: () => NodeFaultRates,
    private readonly trace: (line: string) => void,
  ) {
    this.nodeId = node.id;
    this.address = `sim://${node.id}`;
  }

  /**
   * The common shape of a call: the node applies `body` after a seeded latency if it is up and did not crash
   * since the call began; the caller hears back at that time, or at its timeout if that comes first.
   */
  private call<T>(op: string, options: CallOptions | undefined, body: () => T, mayLoseResponse = false): Promise<T> {
    const { node, sched, prng } = this;
    const rates = this.faults();
    const timeoutMs = options?.timeoutMs ?? 5000;
    const slow = prng.chance(rates.slow);
    const latencyMs = slow ? timeoutMs + 1 + prng.int(3 * timeoutMs) : 1 + prng.int(20);
    const lose = mayLoseResponse && prng.chance(rates.lostResponse);
    const epoch = node.epoch;
    const wasUp = node.up;
    sched.progress++;
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const unavailable = (why: string): StrataError =>
        new StrataError('NODE_UNAVAILABLE', `${op} on ${node.id}: ${why}`, { nodeId: node.id });
      const answer = (fn: () => void): void => {
        if (answered) return;
        answered = true;
        sched.progress++;
        fn();
      };
      if (!wasUp) {
        sched.after(1, () => answer(() => reject(unavailable('node is down'))));
        return;
      }
      if (latencyMs > timeoutMs) sched.after(timeoutMs, () => answer(() => reject(unavailable(`timed out after ${timeoutMs} ms`))));
      sched.after(latencyMs, () => {
        if (!node.up || node.epoch !== epoch) {
          answer(() => reject(unavailable('node crashed during the call')));
          return;
        }
        if (options?.signal?.aborted) {
          answer(() => reject(options.signal!.reason));
          return;
        }
        let result: { ok: true; value: T } | { ok: false; error: unknown };
        try {
          result = { ok: true, value: body() };
        } catch (error) {
          result = { ok: false, error };
        }
        if (lose && result.ok) {
          this.trace(`fault lost-response ${op} ${node.id}`);
          answer(() => reject(unavailable('response lost')));
          return;
        }
        answer(() => (result.ok ? resolve(result.value) : reject(result.error)));
      });
    });
  }

  put(header: BlobHeader, data: Buffer, options?: CallOptions): Promise<BlobInfo> {
    const copy = Buffer.from(data);
    return this.call('put', options, () => {
      const existing = this.node.blobs.get(header.id);
      const checksum = checksumOf(copy);
      if (existing && !existing.rotten) {
        if (existing.info.checksum === checksum && existing.info.key === header.key) return { ...existing.info };
        throw new StrataError('BLOB_EXISTS', `blob ${header.id} exists with different bytes`);
      }
      if (this.node.diskFull) throw new StrataError('DISK_FULL', `no space left on ${this.node.id}`);
      const info: BlobInfo = { ...header, size: copy.length, checksum, createdAtMs: this.sched.nowMs() };
      this.node.blobs.set(header.id, { info, data: copy, rotten: false });
      return { ...info };
    }, true);
  }

  get(id: string, options?: CallOptions): Promise<Buffer> {
    const flip = this.prng.chance(this.faults().transitFlip);
    const bitIndex = this.prng.int(1 << 20);
    return this.call('get', options, () => {
      const blob = this.mustHave(id);
      if (blob.rotten) throw new StrataError('BLOB_CORRUPT', `blob ${id} on ${this.node.id} fails its checksum`);
      const out = Buffer.from(blob.data);
      if (flip && out.length > 0) {
        const bit = bitIndex % (out.length * 8);
        out[bit >> 3] = out[bit >> 3]! ^ (1 << (bit & 7));
        this.trace(`fault transit-flip ${id}@${this.node.id}`);
      }
      return out;
    });
  }

  stat(id: string, options?: CallOptions): Promise<BlobInfo | null> {
    return this.call('stat', options, () => {
      const blob = this.node.blobs.get(id);
      return blob ? infoOf(blob) : null;
    });
  }

  delete(id: string, options?: CallOptions): Promise<boolean> {
    return this.call('delete', options, () => this.node.blobs.delete(id));
  }

  list(after: string | null, limit: number, options?: CallOptions): Promise<BlobInfo[]> {
    return this.call('list', options, () =>
      [...this.node.blobs.keys()]
        .filter((id) => after === null || id > after)
        .sort()
        .slice(0, limit)
        .map((id) => infoOf(this.node.blobs.get(id)!)),
    );
  }

  verify(id: string, options?: CallOptions): Promise<'ok' | 'corrupt' | 'missing'> {
    return this.call('verify', options, () => {
      const blob = this.node.blobs.get(id);
      if (!blob) return 'missing';
      return blob.rotten ? 'corrupt' : 'ok';
    });
  }

  usage(options?: CallOptions): Promise<StoreUsage> {
    return this.call('usage', options, () => {
      let bytes = 0;
      for (const b of this.node.blobs.values()) bytes += b.data.length;
      return { blobs: this.node.blobs.size, payloadBytes: bytes, bytesUsed: bytes, bytesFree: this.node.diskFull ? 0 : 1 << 30 };
    });
  }

  async ping(options?: CallOptions): Promise<boolean> {
    try {
      return await this.call('ping', { timeoutMs: options?.timeoutMs ?? 1000 }, () => true);
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {}

  private mustHave(id: string): StoredBlob {
    const blob = this.node.blobs.get(id);
    if (!blob) throw new StrataError('BLOB_NOT_FOUND', `no blob ${id} on ${this.node.id}`);
    return blob;
  }
}

function infoOf(blob: StoredBlob): BlobInfo {
  return blob.rotten ? { ...blob.info, corrupt: true } : { ...blob.info };
}
