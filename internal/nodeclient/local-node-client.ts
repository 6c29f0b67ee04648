/**
 * NodeClient that calls a BlobStore in the same process: the all-in-one mode's six nodes, where an HTTP hop per
 * blob would be pure overhead. It behaves like HttpNodeClient towards its caller (same error codes, INTERNAL
 * failures reported as NODE_UNAVAILABLE), and `setAvailable(false)` lets tests and the simulator stop a node.
 */
import type { BlobHeader, BlobInfo, BlobStore, StoreUsage } from '../blobstore/blob-store.js';
import { AssertionError, assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import type { CallOptions, NodeClient, NodeProbe } from './node-client.js';
import { hasCapacity } from '../reserve/reserved-blob-store.js';

export interface LocalNodeClientOptions {
  nodeId: string;
  store: BlobStore;
  /** Shown where a node address is expected (default `local://<nodeId>`). */
  address?: string;
  /**
   * Copy payloads on the way in and out (default true), so that neither side can change bytes the other holds.
   * FileBlobStore neither keeps the Buffers it is given nor reuses the ones it returns, so wiring that uses it
   * may turn copying off.
   */
  copyBuffers?: boolean;
  /**
   * The request id of the call in progress (internal/log/request-context.ts) and the node's logger: each call is
   * logged at debug level with the id, as the node's HTTP app logs the `X-Request-Id` of a call over HTTP.
   */
  requestId?: () => string | undefined;
  log?: Logger;
}

export class LocalNodeClient implements NodeClient {
  readonly nodeId: string;
  readonly address: string;
  private store: BlobStore;
  private readonly copyBuffers: boolean;
  private isAvailable = true;
  private closed = false;
  private readonly requestId: (() => string | undefined) | undefined;
  private readonly log: Logger | undefined;

  constructor(options: LocalNodeClientOptions) {
    assert(typeof options.nodeId === 'string' && options.nodeId.length > 0, 'nodeId is non-empty');
    this.nodeId = options.nodeId;
    this.address = options.address ?? `local://${options.nodeId}`;
    this.store = options.store;
    this.copyBuffers = options.copyBuffers ?? true;
    this.requestId = options.requestId;
    this.log = options.log;
  }

  /** While false, every call throws NODE_UNAVAILABLE and ping() answers false, as if the node were down. */
  setAvailable(available: boolean): void {
    this.isAvailable = available;
  }

  /** After the node restarts on its data directory, calls go to its new store. */
  setStore(store: BlobStore): void {
    this.store = store;
  }

  get available(): boolean {
    return this.isAvailable;
  }

  put(header: BlobHeader, data: Buffer, options?: CallOptions): Promise<BlobInfo> {
    return this.run('put', options, () => this.store.put(header, this.copyBuffers ? Buffer.from(data) : data));
  }

  get(id: string, options?: CallOptions): Promise<Buffer> {
    return this.run('get', options, async () => {
      const { data } = await this.store.get(id);
      return this.copyBuffers ? Buffer.from(data) : data;
    });
  }

  stat(id: string, options?: CallOptions): Promise<BlobInfo | null> {
    return this.run('stat', options, () => this.store.stat(id));
  }

  delete(id: string, options?: CallOptions): Promise<boolean> {
    return this.run('delete', options, () => this.store.delete(id));
  }

  list(after: string | null, limit: number, options?: CallOptions): Promise<BlobInfo[]> {
    return this.run('list', options, () => this.store.list(after, limit));
  }

  verify(id: string, options?: CallOptions): Promise<'ok' | 'corrupt' | 'missing'> {
    return this.run('verify', options, () => this.store.verify(id));
  }

  usage(options?: CallOptions): Promise<StoreUsage> {
    return this.run('usage', options, () => this.store.usage());
  }

  async ping(options?: CallOptions): Promise<boolean> {
    try {
      await this.usage(options);
      return true;
    } catch {
      return false;
    }
  }

  async probe(options?: CallOptions): Promise<NodeProbe> {
    if (!(await this.ping(options))) return { up: false, writable: false, reason: null };
    const capacity = hasCapacity(this.store) ? this.store.capacity() : { writable: true, reason: null };
    return { up: true, ...capacity };
  }

  /** Refuses further calls. The store belongs to whoever opened it and stays open. */
  async close(): Promise<void> {
    this.closed = true;
  }

  private async run<T>(op: string, options: CallOptions | undefined, body: () => Promise<T>): Promise<T> {
    if (options?.signal?.aborted === true) throw options.signal.reason;
    if (this.closed) throw this.unavailable(`${op}: client is closed`);
    if (!this.isAvailable) throw this.unavailable(`${op}: node is unavailable`);
    // Checked first so that a node at info level pays nothing per call.
    if (this.log?.isLevelEnabled('debug') === true) this.log.debug({ reqId: this.requestId?.(), node: this.nodeId, op }, 'node call (in-process)');
    try {
      return await body();
    } catch (err) {
      if (err instanceof AssertionError) throw err;
      if (err instanceof StrataError && err.code !== 'INTERNAL') throw err;
      // Over HTTP this would be the node's 500: the node failed the call, and the caller should fail over.
      throw this.unavailable(`${op} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private unavailable(what: string): StrataError {
    const message = `node ${this.nodeId} (${this.address}) ${what}`;
    return new StrataError('NODE_UNAVAILABLE', message, { nodeId: this.nodeId });
  }
}
