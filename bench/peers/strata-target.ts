/**
 * A fresh Strata all-in-one for the peers benchmark, started as `npm run bench` starts it
 * (bench/harness/all-in-one-target.ts: the compiled all-in-one in a child process of its own, its data in a
 * temporary directory that stop() removes). Strata's own defaults apply, except for the variables passed in `env`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startAllInOneTarget } from '../harness/all-in-one-target.js';
import type { PeerTarget } from './target.js';

export async function startStrata(options: { env: Record<string, string>; log: (line: string) => void }): Promise<PeerTarget & { description: string }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-peers-strata-'));
  const target = await startAllInOneTarget({ dataDir, env: options.env, log: options.log }).catch(async (error: unknown) => {
    await rm(dataDir, { recursive: true, force: true }); // a failed start kills its child but keeps the directory
    throw error;
  });
  options.log(`Strata all-in-one ready at ${target.url}, data in ${dataDir}`);
  return {
    url: target.url,
    description: target.description,
    processes: () => target.processes(),
    stop: () => target.stop(),
  };
}
