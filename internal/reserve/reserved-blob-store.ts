/**
 * A storage node's blob store behind its directory's reserve: a put that would take the disk into the reserve is
 * refused with DISK_FULL before a byte is written; deletes, reads and everything else pass straight through (they
 * are what frees space, and they may use the reserve). `capacity()` is the node's capacity report (GET /v1/health).
 */
import type { BlobHeader, BlobInfo, BlobStore, StoreUsage } from '../blobstore/blob-store.js';
import { StrataError } from '../core/errors.js';
import type { CapacityStatus, DiskReserve } from './disk-reserve.js';

/** A needle's header, key, id, meta and padding beyond the payload, counted when a put is admitted. */
const PUT_OVERHEAD_BYTES = 2 * 1024;

export interface CapacityReporting {
  capacity(): CapacityStatus;
}

export class ReservedBlobStore implements BlobStore, CapacityReporting {
  /**
   * `shared`: the reserve belongs to a process that admits whole writes against it already (the all-in-one's
   * gateway counts every blob of a write before the write starts), so a put only checks that the disk is not full;
   * counting its bytes again would refuse writes that fit.
   */
  constructor(
    private readonly store: BlobStore,
    private readonly reserve: DiskReserve,
    private readonly nodeId: string,
    private readonly shared = false,
  ) {}

  async put(header: BlobHeader, data: Buffer): Promise<BlobInfo> {
    const what = `${this.nodeId}: blob ${header.id}`;
    if (!this.shared) {
      await this.reserve.admit(data.length + header.meta.length + PUT_OVERHEAD_BYTES, what);
    } else {
      const status = this.reserve.status();
      if (!status.writable) throw new StrataError('DISK_FULL', `${what} refused: ${status.reason ?? 'the disk is full'}`);
    }
    return this.store.put(header, data);
  }

  get(id: string): Promise<{ info: BlobInfo; data: Buffer }> {
    return this.store.get(id);
  }

  stat(id: string): Promise<BlobInfo | null> {
    return this.store.stat(id);
  }

  delete(id: string): Promise<boolean> {
    return this.store.delete(id);
  }

  list(after: string | null, limit: number): Promise<BlobInfo[]> {
    return this.store.list(after, limit);
  }

  verify(id: string): Promise<'ok' | 'corrupt' | 'missing'> {
    return this.store.verify(id);
  }

  async usage(): Promise<StoreUsage> {
    const usage = await this.store.usage();
    // What puts may still use: the reserve is not free space for them.
    return { ...usage, bytesFree: Math.min(usage.bytesFree, this.reserve.view().writableBytes) };
  }

  capacity(): CapacityStatus {
    return this.reserve.status();
  }

  /** The reserve is the directory owner's (it may be shared by several nodes); it is closed by whoever opened it. */
  close(): Promise<void> {
    return this.store.close();
  }
}

export function hasCapacity(store: unknown): store is CapacityReporting {
  return typeof (store as Partial<CapacityReporting> | null)?.capacity === 'function';
}
