// A storage node process: stores immutable blobs durably, with checksums (STRATA_NODE_ID, STRATA_PORT).
import { runProcess } from '../../internal/cli/run-process.js';
import { runStorageNode } from '../../internal/wiring/processes.js';

await runProcess('storage-node', runStorageNode);
