// A healer process: while it holds the leader lease it resolves intents, audits, repairs and collects garbage.
import { runProcess } from '../../internal/cli/run-process.js';
import { runHealer } from '../../internal/wiring/processes.js';

await runProcess('healer', runHealer);
