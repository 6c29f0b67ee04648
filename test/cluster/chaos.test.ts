/**
 * Process-level chaos on the local cluster (real etcd, Kafka, nginx; storage nodes, gateways and healers as
 * separate processes): bounded load from several clients while a seeded schedule SIGKILLs and restarts storage
 * nodes (never more than two at once, a second only when no partial write awaits repair), gateways and healers
 * (mostly the leader). Afterwards every acknowledged write reads back exactly, no acknowledged delete comes back,
 * versions increased per key in acknowledgement order, and the healer brings every object back to full protection.
 * scripts/cluster/chaos.ts has the load, the schedule and the checks.
 *
 * `npm test` runs 60 s of load and faults (STRATA_CHAOS_SECONDS to change it, STRATA_CHAOS_SEED to replay a
 * schedule); `npm run chaos -- --minutes N` runs longer. The seed and the figures are printed.
 */
import { describe, expect, it } from 'vitest';
import { CHAOS_CLUSTER_ENV, formatChaosReport, runChaos } from '../../scripts/cluster/chaos.js';
import { useLocalCluster } from './cluster-support.js';

const SECONDS = Number(process.env['STRATA_CHAOS_SECONDS'] ?? 60);
const SEED = Number(process.env['STRATA_CHAOS_SEED'] ?? Math.floor(Math.random() * 1_000_000));
const PROTECTION_TIMEOUT_MS = 120_000;

describe('chaos: SIGKILLed storage nodes, gateways and healers under load', () => {
  const cluster = useLocalCluster('chaos', { env: CHAOS_CLUSTER_ENV });

  it(
    'loses no acknowledged write or delete, and the healer restores full protection',
    async (context) => {
      const report = await runChaos({
        cluster: cluster(),
        seed: SEED,
        durationMs: SECONDS * 1000,
        protectionTimeoutMs: PROTECTION_TIMEOUT_MS,
        log: (line) => process.stdout.write(`[chaos] ${line}\n`),
      });
      const table = formatChaosReport(report);
      process.stdout.write(`chaos figures (replay with STRATA_CHAOS_SEED=${SEED}):\n${table}\n`);
      await context.annotate(table);
      expect(report.violations, `seed ${SEED}`).toEqual([]);
      // The run must really have exercised what it claims.
      expect(report.acknowledged).toBeGreaterThan(50);
      expect(report.kills['storage-node']).toBeGreaterThan(0);
      expect(report.kills.gateway + report.kills.healer + report.kills['healer-leader']).toBeGreaterThan(0);
      expect(report.protectionMs).not.toBeNull();
    },
    SECONDS * 1000 + PROTECTION_TIMEOUT_MS + 120_000,
  );
});
