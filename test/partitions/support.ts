/**
 * What the partition tests (test/partitions/) share. They make network namespaces, so they need root on Linux; on
 * a machine that cannot, they fail with the NetnsError saying what is missing, unless STRATA_SKIP_PARTITIONS=1 says
 * to skip them (a silent skip would hide that the partition tests never ran).
 */
import { describe } from 'vitest';

export const SKIP_PARTITIONS_VAR = 'STRATA_SKIP_PARTITIONS';
export const PARTITIONS_SKIPPED = process.env[SKIP_PARTITIONS_VAR] === '1';

/** `describe`, or `describe.skip` with a message saying why when STRATA_SKIP_PARTITIONS=1. */
export function describePartitions(name: string, body: () => void): void {
  if (PARTITIONS_SKIPPED) {
    describe.skip(`${name} (skipped: ${SKIP_PARTITIONS_VAR}=1)`, body);
    return;
  }
  describe(name, body);
}

/**
 * Deadlines of the partition tests. Generous: this 2-core machine runs other test files beside these, and a
 * cluster's failover takes its own timeouts (an election, a broker's session) before anything can be seen.
 */
export const PARTITION_WAIT_MS = 120_000;
/** Per test and per hook: above every wait inside it. */
export const PARTITION_TEST_TIMEOUT_MS = 300_000;
