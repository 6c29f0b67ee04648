/**
 * `strata admin`: the node registry (`nodes`, `drain`, `activate`, `remove`; docs/operations.md "Adding and
 * removing nodes") and the cluster's data format version (`format [--bump N]`). Needs an API key with the admin
 * permission when the gateway has keys.
 */
import type { RegisteredNode, StrataClient } from '../client/strata-client.js';
import { UsageError, printJson, type CliIo, type Command } from './commands.js';
import { formatFields, formatTable } from './format.js';

const SUBCOMMANDS = ['nodes', 'drain', 'activate', 'remove', 'format'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];
/** Subcommands that act on one node, named by the second argument. */
const NODE_SUBCOMMANDS: readonly Subcommand[] = ['drain', 'activate', 'remove'];

function bumpTarget(value: string | boolean | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--bump takes the data format to raise the cluster to, an integer >= 1; got ${JSON.stringify(value)}`);
  }
  return n;
}

function nodeRows(nodes: readonly RegisteredNode[]): string[][] {
  return nodes.map((n) => [n.id, n.state, n.alive ? 'yes' : 'no', n.zone ?? '-', n.last_heartbeat, n.address]);
}

async function runNodeCommand(client: StrataClient, io: CliIo, json: boolean, sub: Subcommand, id: string): Promise<void> {
  if (sub === 'remove') {
    const outcome = await client.removeNode(id);
    if (json) return printJson(io, outcome);
    return void io.stdout(`${outcome.removed}: removed from the registry; its process can be stopped\n`);
  }
  const node = sub === 'drain' ? await client.drainNode(id) : await client.activateNode(id);
  if (json) return printJson(io, { node });
  io.stdout(
    sub === 'drain'
      ? `${node.id}: draining: no new writes; the healer moves its blobs elsewhere (strata admin remove ${node.id} once it is empty)\n`
      : `${node.id}: active: back in placement for new writes\n`,
  );
}

export const adminCommand: Command = {
  name: 'admin',
  synopsis: 'admin nodes | admin drain|activate|remove NODE | admin format [--bump N]',
  summary: 'manage storage nodes and the cluster\'s data format version',
  details: [
    '  nodes             the node registry: each node\'s state (active, draining), heartbeat and address',
    '  drain NODE        take NODE out of placement for new writes; the healer moves its blobs elsewhere. Refused',
    '                    (409 TOO_FEW_ACTIVE_NODES) when fewer than six active nodes would remain. Idempotent',
    '  activate NODE     take a draining NODE back into placement',
    '  remove NODE       remove a drained NODE that no live document references any more (409 NODE_NOT_DRAINED,',
    '                    NODE_NOT_EMPTY otherwise: `strata admin nodes` and the healer say when it is empty)',
    '  format            the data format, the newest this gateway knows, and every process with what it reads',
    '  format --bump N   raise the cluster to data format N: refused (409 FORMAT_BUMP_BLOCKED, naming them) while a',
    '                    process that reads less is registered or lapsed less than 2 x its ttl ago; never lowered;',
    '                    idempotent. Upgrade every process first (docs/upgrading.md, "Format versions")',
    '  With --json: the API body.',
  ].join('\n'),
  options: { bump: { type: 'string' } },
  positionalsMin: 1,
  positionalsMax: 2,
  async run({ client, json, io, values, positionals }) {
    const sub = positionals[0]! as Subcommand;
    if (!SUBCOMMANDS.includes(sub)) throw new UsageError(`unknown admin subcommand "${sub}"; known: ${SUBCOMMANDS.join(', ')}`);
    if (sub !== 'format' && values['bump'] !== undefined) throw new UsageError('--bump goes with admin format');
    if (NODE_SUBCOMMANDS.includes(sub)) {
      const id = positionals[1];
      if (id === undefined) throw new UsageError(`admin ${sub} needs a NODE id (see strata admin nodes)`);
      return runNodeCommand(client, io, json, sub, id);
    }
    if (positionals.length > 1) throw new UsageError(`admin ${sub} takes no further argument`);
    if (sub === 'nodes') {
      const nodes = await client.listNodes();
      if (json) return printJson(io, { nodes });
      if (nodes.length === 0) return void io.stdout('no storage node is registered (nodes configured with STRATA_NODES do not register; see strata cluster)\n');
      return void io.stdout(formatTable(['NODE', 'STATE', 'ALIVE', 'ZONE', 'LAST HEARTBEAT', 'ADDRESS'], nodeRows(nodes)));
    }
    const to = bumpTarget(values['bump']);
    if (to !== null) {
      const outcome = await client.bumpFormatVersion(to);
      if (json) return void io.stdout(`${JSON.stringify(outcome, null, 2)}\n`);
      io.stdout(
        outcome.changed
          ? `the cluster's data format is now ${outcome.data_format}\n`
          : `the cluster's data format was already ${outcome.data_format}; nothing changed\n`,
      );
      return;
    }
    const view = await client.formatVersion();
    if (json) return void io.stdout(`${JSON.stringify(view, null, 2)}\n`);
    io.stdout(
      formatFields([
        ['data format', String(view.data_format)],
        ['newest known', `${view.format_max} (this gateway's release)`],
        ['bump now', view.data_format >= view.format_max ? 'nothing newer to bump to' : view.blockers.length === 0 ? 'allowed' : `blocked by ${view.blockers.length}`],
      ]) + '\n',
    );
    io.stdout(formatTable(['PROCESS', 'ROLE', 'READS UP TO', 'ALIVE', 'LAST HEARTBEAT'], view.processes.map((p) => [p.id, p.role, String(p.format_max), p.alive ? 'yes' : 'no', p.last_heartbeat])));
    if (view.blockers.length > 0) {
      io.stdout(formatTable(['BLOCKED BY', 'ROLE', 'WHY'], view.blockers.map((b) => [b.id, b.role, b.why])));
    }
  },
};
