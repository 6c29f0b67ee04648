/**
 * Reclamation benchmark: an all-in-one (default settings) whose iot documents are rewritten for a while, then left
 * idle; reports the bytes allocated on the nodes' disks (st_blocks x 512, what `du` counts) over time against the
 * live need (needle bytes of the live blobs plus each node's index checkpoint), and when every node came within
 * 1.3x its live need + 4 MiB after the writes stopped.
 *
 *   npm run bench -- reclamation [--quick] [--out <result.json>]
 *
 * Full: 20 documents rewritten by 20 writers for 60 s, then up to 180 s idle. --quick: 20 s of writes, up to 120 s
 * idle. Both stop idling once every node is within the bound and 45 s have passed (past the idle pass).
 */
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StrataClient } from '../internal/client/strata-client.js';
import { loadConfig } from '../internal/config/config.js';
import { createLogger } from '../internal/log/logger.js';
import { documents, keyOf } from '../internal/loadgen/workloads.js';
import { startAllInOne, type AllInOne } from '../internal/wiring/all-in-one.js';
import { machineInfo } from './harness/machine.js';

const LIMITS = {
  documents: 20,
  writeMs: 60_000,
  writeMsQuick: 20_000,
  idleMsMax: 180_000,
  idleMsMaxQuick: 120_000,
  sampleEveryMs: 5_000,
  /** Seconds of idling shown at least: past the store's idle pass (idleCompactAfterMs, 30 s, plus its copies). */
  idleShownS: 45,
  boundRatio: 1.3,
  boundSlackBytes: 4 * 1024 * 1024,
} as const;

interface Sample {
  atS: number;
  phase: 'writing' | 'idle';
  allocatedBytes: number;
  liveNeedBytes: number;
  reclaimableBytes: number;
  reclaimedBytes: number;
  /** Every node within boundRatio x its live need + boundSlackBytes. */
  withinBound: boolean;
}

async function allocatedBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await allocatedBytes(full);
    else total += ((await stat(full).catch(() => null))?.blocks ?? 0) * 512;
  }
  return total;
}

async function sample(cluster: AllInOne, startMs: number, phase: Sample['phase']): Promise<Sample> {
  const s: Sample = { atS: 0, phase, allocatedBytes: 0, liveNeedBytes: 0, reclaimableBytes: 0, reclaimedBytes: 0, withinBound: true };
  for (const node of cluster.nodes) {
    const store = node.server?.store;
    if (store === undefined) continue;
    const usage = await store.usage();
    const checkpoint = (await stat(path.join(node.dataDir, 'index.ckpt')).catch(() => null))?.size ?? 0;
    const need = usage.bytesUsed + checkpoint;
    const allocated = await allocatedBytes(node.dataDir);
    s.allocatedBytes += allocated;
    s.liveNeedBytes += need;
    s.reclaimableBytes += usage.reclaimableBytes;
    s.reclaimedBytes += usage.reclaimedBytes;
    if (allocated > LIMITS.boundRatio * need + LIMITS.boundSlackBytes) s.withinBound = false;
  }
  s.atS = Math.round((performance.now() - startMs) / 100) / 10;
  return s;
}

const mib = (bytes: number): string => (bytes / 1024 ** 2).toFixed(1);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const outIndex = args.indexOf('--out');
  const out = outIndex >= 0 ? args[outIndex + 1] : path.join('bench-results', `reclamation-bench${quick ? '-quick' : ''}.json`);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-reclaim-bench-'));
  process.env['STRATA_DATA_DIR'] = dataDir;
  process.env['STRATA_PORT'] = '0';
  process.env['STRATA_LOG_LEVEL'] ??= 'error';
  const config = loadConfig();
  const cluster = await startAllInOne(config, { log: createLogger(config.logLevel, 'strata-reclaim-bench') });
  const client = new StrataClient({ baseUrl: cluster.url, retries: 2, timeoutMs: 60_000 });
  const factory = documents('iot');
  const keys = Array.from({ length: LIMITS.documents }, (_, i) => keyOf('reclaim', 'iot', i));
  const samples: Sample[] = [];
  let writes = 0;
  let bytesWritten = 0;
  const startMs = performance.now();
  const log = (s: Sample): void =>
    void process.stderr.write(
      `[reclaim ${s.atS.toFixed(1)} s] ${s.phase}: ${mib(s.allocatedBytes)} MiB on disk, live need ${mib(s.liveNeedBytes)} MiB, ` +
        `reclaimable ${mib(s.reclaimableBytes)} MiB, reclaimed ${mib(s.reclaimedBytes)} MiB${s.withinBound ? ' (within bound)' : ''}\n`,
    );
  try {
    const writeMs = quick ? LIMITS.writeMsQuick : LIMITS.writeMs;
    const stopWritingAt = startMs + writeMs;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await new Promise((r) => setTimeout(r, LIMITS.sampleEveryMs));
        if (!sampling) break;
        const s = await sample(cluster, startMs, 'writing');
        samples.push(s);
        log(s);
      }
    })();
    await Promise.all(
      keys.map(async (key, doc) => {
        for (let n = 0; performance.now() < stopWritingAt; n++) {
          const body = factory.render(key, n + doc * 1_000_000);
          await client.write(key, body, { strategy: 'ec' });
          writes += 1;
          bytesWritten += Buffer.byteLength(body);
        }
      }),
    );
    sampling = false;
    await sampler;
    const stoppedAtS = (performance.now() - startMs) / 1000;
    const idleMsMax = quick ? LIMITS.idleMsMaxQuick : LIMITS.idleMsMax;
    let reachedAtS: number | null = null;
    while (performance.now() - startMs < writeMs + idleMsMax) {
      await new Promise((r) => setTimeout(r, LIMITS.sampleEveryMs));
      const s = await sample(cluster, startMs, 'idle');
      samples.push(s);
      log(s);
      if (s.withinBound && reachedAtS === null) reachedAtS = s.atS;
      // Idle long enough to show the idle pass too (it starts 30 s after the last write), then stop.
      if (reachedAtS !== null && s.atS - stoppedAtS >= LIMITS.idleShownS) break;
    }
    const machine = await machineInfo();
    const result = {
      command: `npm run bench -- reclamation${quick ? ' --quick' : ''}`,
      machine,
      settings: { documents: LIMITS.documents, strategy: 'ec', writeMs, idleMsMax, defaults: 'all-in-one defaults' },
      writes,
      bytesWritten,
      stoppedWritingAtS: Math.round(stoppedAtS * 10) / 10,
      withinBoundAtS: reachedAtS,
      withinBoundAfterStopS: reachedAtS === null ? null : Math.round((reachedAtS - stoppedAtS) * 10) / 10,
      samples,
    };
    await mkdir(path.dirname(out as string), { recursive: true });
    await writeFile(out as string, JSON.stringify(result, null, 2) + '\n');
    const rows = samples.map(
      (s) => `| ${s.atS.toFixed(0)} | ${s.phase} | ${mib(s.allocatedBytes)} | ${mib(s.liveNeedBytes)} | ${(s.allocatedBytes / Math.max(1, s.liveNeedBytes)).toFixed(2)} | ${mib(s.reclaimableBytes)} | ${mib(s.reclaimedBytes)} |`,
    );
    process.stdout.write(
      `\nReclamation: ${LIMITS.documents} iot documents (ec) rewritten for ${writeMs / 1000} s (${writes} writes, ${mib(bytesWritten)} MiB), then idle; ` +
        `${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}\n\n` +
        `| t (s) | phase | on disk (MiB, du) | live need (MiB) | ratio | reclaimable (MiB) | reclaimed (MiB) |\n|---|---|---|---|---|---|---|\n${rows.join('\n')}\n\n` +
        `within 1.3x live need + 4 MiB on every node: ${reachedAtS === null ? 'not reached' : `${(reachedAtS - stoppedAtS).toFixed(1)} s after the writes stopped`}\nJSON result: ${out}\n`,
    );
  } finally {
    await cluster.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
