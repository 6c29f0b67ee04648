/**
 * Whether etcd takes changes, as this process last saw it: etcd's NOSPACE alarm (its space quota,
 * --quota-backend-bytes, exhausted). While the alarm is raised etcd refuses every put, so a gateway refuses writes
 * before their intent is logged or a blob is stored (507 DISK_FULL), and /health/ready says `writable: false` with
 * the reason. The alarm is learnt from a refused call at once, and from etcd's alarm list every
 * ETCD_SPACE_LIMITS.alarmCheckIntervalMs (another process may have met it first; an operator disarms it).
 */
import type { Logger } from '../log/logger.js';
import type { MetadataSpace } from './metadata-store.js';
import { etcdNoSpaceMessage, type EtcdRpc } from './etcd-rpc.js';

export const ETCD_SPACE_LIMITS = {
  /**
   * Between two reads of etcd's alarm list. Bounds how long writes stay refused after an operator disarms the
   * alarm, and how long readiness says `writable: true` while another process has already met the alarm.
   */
  alarmCheckIntervalMs: 2_000,
} as const;

const WRITABLE: MetadataSpace = Object.freeze({ writable: true, reason: null });

export class EtcdSpace {
  private current: MetadataSpace = WRITABLE;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly calls: EtcdRpc,
    private readonly log: Logger | undefined,
    private readonly checkIntervalMs: number = ETCD_SPACE_LIMITS.alarmCheckIntervalMs,
  ) {}

  status(): MetadataSpace {
    return this.current;
  }

  /** A call was refused because the quota is exhausted (etcd raised its alarm with that refusal). */
  noted(): void {
    this.set(false);
  }

  /** Reads the alarm list now and then every checkIntervalMs, on real time (etcd's state, not the store's clock). */
  start(): void {
    if (this.closed || this.timer !== null) return;
    const tick = (): void => {
      void this.check().finally(() => {
        if (this.closed) return;
        this.timer = setTimeout(tick, this.checkIntervalMs);
        this.timer.unref();
      });
    };
    tick();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One read of etcd's NOSPACE alarms; an unreachable etcd leaves the last answer standing. */
  async check(): Promise<void> {
    try {
      const response = await this.calls.call('alarm list', 'idempotent', this.calls.deadline(), (options) =>
        this.calls.client.maintenance.alarm({ action: 'Get', alarm: 'Nospace', memberID: 0 }, options),
      );
      if (this.closed) return;
      this.set(!response.alarms.some((a) => a.alarm === 'Nospace'));
    } catch {
      // Reads fail the same way and say so; this answer is only about space.
    }
  }

  private set(writable: boolean): void {
    if (writable === this.current.writable) return;
    if (writable) {
      this.current = WRITABLE;
      this.log?.info('etcd NOSPACE alarm disarmed; writes are taken again');
    } else {
      this.current = Object.freeze({ writable: false, reason: etcdNoSpaceMessage(this.calls.endpoints) });
      this.log?.warn(`writes refused (507 DISK_FULL): ${this.current.reason}`);
    }
  }
}
