// A gateway process: validates, splits, encodes, places, writes, commits, reads and merges.
import { runProcess } from '../../internal/cli/run-process.js';
import { runGateway } from '../../internal/wiring/processes.js';

await runProcess('api', runGateway);
