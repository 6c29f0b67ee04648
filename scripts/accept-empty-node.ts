/**
 * `npm run node:accept-empty -- --data-dir ./data node-3`: the operator's answer to "data/nodes/node-3 is empty but
 * node-3 held data" after replacing or wiping that node's disk in the all-in-one. With Strata stopped (it takes the
 * data directory's lock and refuses otherwise), it writes a fresh identity into the node's empty directory; the
 * next `npm start` opens it as a new empty node and the healer refills it from the other five. A directory that
 * holds data or an identity is refused and left as it is (internal/datadir/cluster-directory.ts).
 */
import { loadConfig } from '../internal/config/config.js';
import { acceptEmptyNode } from '../internal/datadir/cluster-directory.js';

function main(): Promise<void> | void {
  const args = process.argv.slice(2);
  const at = args.indexOf('--data-dir');
  const env: Record<string, string | undefined> = { ...process.env };
  if (at >= 0) {
    env['STRATA_DATA_DIR'] = args[at + 1];
    args.splice(at, 2);
  }
  const nodeId = args[0];
  if (nodeId === undefined || !/^node-\d+$/.test(nodeId)) {
    console.error('usage: npm run node:accept-empty -- [--data-dir ./data] node-N');
    process.exitCode = 2;
    return;
  }
  const { dataDir } = loadConfig(env as Record<string, string>);
  return acceptEmptyNode(dataDir, nodeId, Date.now()).then((dir) => {
    console.log(`${dir} is accepted as a new empty ${nodeId}: start Strata; the healer refills it from the other nodes`);
  });
}

Promise.resolve()
  .then(main)
  .catch((error: unknown) => {
    console.error(`node:accept-empty failed: ${(error as Error).message}`);
    process.exitCode = 1;
  });
