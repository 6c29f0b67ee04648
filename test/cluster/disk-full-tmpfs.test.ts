/**
 * A full disk is an operating condition: the all-in-one on a 64 MiB tmpfs of its own is filled until writes are
 * refused with 507 DISK_FULL (nothing half written, every acknowledged write still reads back, readiness stays 200
 * with writable: false), then everything is deleted, the nodes' own idle pass (driven by advancing the injected
 * clock past the quiet time, no compaction by hand) gives the space back and writes resume without a restart;
 * finally the disk is filled to the last byte by something else and the process still starts on it and serves reads
 * and deletes.
 *
 * Needs root to mount the tmpfs; skips with the reason otherwise.
 */
import { randomBytes } from 'node:crypto';
import { rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { IDLE_COMPACT_AFTER_MS_DEFAULT } from '../../internal/blobstore/volume/reclamation.js';
import { AdvancingClock } from '../helpers/advancing-clock.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { fillFilesystem, useTmpfs } from '../helpers/tmpfs.js';

const FS_BYTES = 64 * 1024 * 1024;
/** Incompressible, above the inline threshold: six shards and three hot replicas per document. */
const DOC_BODY_BYTES = 256 * 1024;
/** More documents than 64 MiB can hold at ~1.6x their size, so the loop always reaches the refusal. */
const WRITES_MAX = 200;
const WAIT = { timeout: 90_000, interval: 200 };
/** The volume stores' quiet time before their idle pass (IDLE_COMPACT_AFTER_MS_DEFAULT), plus a margin. */
const PAST_IDLE_MS = IDLE_COMPACT_AFTER_MS_DEFAULT + 1_000;

const tmpfs = useTmpfs('strata-tmpfs-', FS_BYTES);

interface Ready {
  status: string;
  writable: boolean;
  writable_reason: string | null;
}

function doc(i: number): { battery_level: number; log: string } {
  return { battery_level: i, log: randomBytes((DOC_BODY_BYTES * 3) / 4).toString('base64') };
}

async function ready(cluster: TestCluster): Promise<{ status: number; body: Ready }> {
  const res = await cluster.fetch('/health/ready');
  return { status: res.status, body: (await res.json()) as Ready };
}

/** Writes new documents until one is refused; returns the acknowledged ones and the refusal. */
async function fillUntilRefused(cluster: TestCluster, prefix: string, acked: Map<string, unknown>): Promise<{ status: number; code: string; message: string; key: string }> {
  for (let i = 0; i < WRITES_MAX; i++) {
    const key = `${prefix}/${i}`;
    const body = doc(i);
    const res = await cluster.write(key, body);
    if (res.status === 200) {
      acked.set(key, body);
      continue;
    }
    const error = ((await res.json()) as { error: { code: string; message: string } }).error;
    return { status: res.status, ...error, key };
  }
  throw new Error(`${WRITES_MAX} writes of ${DOC_BODY_BYTES} bytes fit on a ${FS_BYTES}-byte filesystem`);
}

describe('the all-in-one on a small filesystem that fills up', () => {
  it('refuses writes with 507 DISK_FULL before the reserve, deletes, reclaims, writes again, and restarts on a full disk', async (context) => {
    const mountDir = tmpfs.dirOrSkip(context);
    const dataDir = path.join(mountDir, 'data');
    const clock = new AdvancingClock();
    let cluster = await startTestCluster({ dataDir, clock });
    const acked = new Map<string, unknown>();
    try {
      // ---- filled until refused ----
      const refusal = await fillUntilRefused(cluster, 'full', acked);
      expect(acked.size).toBeGreaterThan(10);
      expect(refusal.status).toBe(507);
      expect(refusal.code).toBe('DISK_FULL');
      expect(refusal.message).toMatch(/full/);
      expect(refusal.message).toMatch(/delet/);
      // Nothing of the refused write is visible, and the next writes are refused the same way.
      expect((await cluster.read(refusal.key)).status).toBe(404);
      for (let i = 0; i < 3; i++) {
        const res = await cluster.write(`refused/${i}`, doc(i));
        expect(res.status).toBe(507);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('DISK_FULL');
        expect((await cluster.read(`refused/${i}`)).status).toBe(404);
      }
      for (const [key, body] of acked) expect(await (await cluster.read(key)).json(), key).toEqual(body);

      // ---- ready, but not writable, and saying why ----
      const full = await ready(cluster);
      expect(full.status).toBe(200);
      expect(full.body.status).toBe('ready');
      expect(full.body.writable).toBe(false);
      expect(full.body.writable_reason).toMatch(/full/);
      const view = (await (await cluster.fetch('/cluster')).json()) as { capacity: { writable: boolean; reason: string; data_dir: { reserve_bytes: number; ballast_bytes: number } } };
      expect(view.capacity.writable).toBe(false);
      expect(view.capacity.reason).toMatch(/full/);
      expect(view.capacity.data_dir.reserve_bytes).toBeGreaterThan(0);
      const metrics = await (await cluster.fetch('/metrics')).text();
      expect(metrics).toMatch(/^strata_writable 0$/m);

      // ---- deletes always succeed on the full disk ----
      for (const key of acked.keys()) {
        const res = await cluster.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE' });
        expect(res.status, `delete ${key}: ${await res.clone().text()}`).toBe(200);
      }
      await cluster.gateway.writes.drain();
      acked.clear();

      // ---- the stores' own idle pass gives the space back once they are quiet; writes resume without a restart ----
      // Nothing is compacted by hand: the clock moves past the quiet time and the idle pass (which looks at the clock
      // at least every second) seals and compacts, taking its scratch space from the released reserve.
      clock.advance(PAST_IDLE_MS);
      await vi.waitFor(async () => {
        expect((await ready(cluster)).body.writable).toBe(true);
      }, WAIT);
      expect((await (await cluster.fetch('/metrics')).text())).toMatch(/^strata_writable 1$/m);
      const again = doc(1);
      expect((await cluster.write('again/1', again)).status).toBe(200);
      acked.set('again/1', again);

      // ---- restart on a disk that something else filled to the last byte ----
      await cluster.stop();
      const filler = path.join(mountDir, 'filler');
      expect(await fillFilesystem(filler)).toBeGreaterThan(0);
      cluster = await startTestCluster({ dataDir });
      for (const [key, body] of acked) expect(await (await cluster.read(key)).json(), key).toEqual(body);
      // Starting may itself give space back (the WAL returns the pages of settled entries): what it freed beyond the
      // reserve (which the full disk released for deletes) is filled too, so the disk is as full as before.
      const topUp = path.join(mountDir, 'filler-2');
      const { data_dir: reserve } = ((await (await cluster.fetch('/cluster')).json()) as { capacity: { data_dir: { reserve_bytes: number } } }).capacity;
      const space = await statfs(mountDir);
      await writeFile(topUp, Buffer.alloc(Math.max(0, space.bavail * space.bsize - reserve.reserve_bytes)));
      await vi.waitFor(async () => {
        expect((await ready(cluster)).body.writable).toBe(false);
      }, WAIT);
      const restarted = await ready(cluster);
      expect(restarted.status).toBe(200);
      expect((await cluster.write('after-restart/1', doc(2))).status).toBe(507);
      expect((await cluster.fetch('/delete/again%2F1', { method: 'DELETE' })).status).toBe(200);
      await rm(filler);
      await rm(topUp);
    } finally {
      await cluster.stop().catch(() => undefined);
    }
  }, 300_000);
});
