/**
 * Waiting until the gateway sees the storage nodes the harness stopped or started, so that a measured load does
 * not include the seconds before the node pool's next probe. Behind nginx each request may reach another gateway,
 * so the state must hold on several consecutive answers.
 */
import { StrataClient } from '../../internal/client/strata-client.js';
import type { BenchTarget } from './target.js';

export const NODE_STATE_LIMITS = {
  timeoutMs: 30_000,
  pollIntervalMs: 200,
  /** Consecutive agreeing answers (3 gateways behind nginx in the cluster mode). */
  agreeingAnswers: 6,
} as const;

export async function waitForNodeStates(target: BenchTarget, expected: { down: number }): Promise<void> {
  const client = new StrataClient({ baseUrl: target.url, retries: 2 });
  const deadline = Date.now() + NODE_STATE_LIMITS.timeoutMs;
  let agreeing = 0;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const states = await client.nodeStatus();
      const down = Object.values(states).filter((s) => s !== 'healthy').length;
      last = JSON.stringify(states);
      agreeing = down === expected.down ? agreeing + 1 : 0;
      if (agreeing >= NODE_STATE_LIMITS.agreeingAnswers) return;
    } catch {
      agreeing = 0;
    }
    await new Promise((r) => setTimeout(r, NODE_STATE_LIMITS.pollIntervalMs));
  }
  throw new Error(`the gateway did not report ${expected.down} storage nodes down within ${NODE_STATE_LIMITS.timeoutMs} ms; last: ${last}`);
}
