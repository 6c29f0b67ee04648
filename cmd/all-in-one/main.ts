// `npm start`: a gateway, six storage nodes and a healer in one process, data in ./data (STRATA_DATA_DIR).
import { runProcess } from '../../internal/cli/run-process.js';
import { startAllInOne } from '../../internal/wiring/all-in-one.js';
import { drainBudgetMs } from '../../internal/wiring/processes.js';

await runProcess('all-in-one', async (config, log) => {
  const cluster = await startAllInOne(config, { log, processMetrics: true });
  const lines = [
    `Strata all-in-one is up. Gateway: ${cluster.url}`,
    `  data directory: ${config.dataDir} (the six nodes share this disk: they survive crashes and bit rot, not its loss)`,
    ...cluster.nodes.map((n) => `  storage ${n.id}: ${n.address}`),
    `  healer: in-process; metadata and WAL: embedded SQLite`,
    `  metrics (gateway, nodes and healer): ${cluster.url}/metrics`,
    `Try: curl -X POST '${cluster.url}/write?key=hello' -H 'Content-Type: application/json' -d '{"like_count":1,"text":"hi"}'`,
    'Press Ctrl-C to stop.',
  ];
  return { describe: lines.join('\n'), stop: () => cluster.stop(drainBudgetMs(config)) };
});
