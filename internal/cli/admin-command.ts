/**
 * `strata admin format [--bump N]`: the cluster's data format version (GET /admin/format-version) and its explicit
 * bump (POST /admin/format-version). Needs an API key with the admin permission when the gateway has keys.
 */
import { UsageError, type Command } from './commands.js';
import { formatFields, formatTable } from './format.js';

const SUBCOMMANDS = ['format'] as const;

function bumpTarget(value: string | boolean | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--bump takes the data format to raise the cluster to, an integer >= 1; got ${JSON.stringify(value)}`);
  }
  return n;
}

export const adminCommand: Command = {
  name: 'admin',
  synopsis: 'admin format [--bump N]',
  summary: "show the cluster's data format version, or raise it",
  details: [
    '  format            the data format, the newest this gateway knows, and every process with what it reads',
    '  format --bump N   raise the cluster to data format N: refused (409 FORMAT_BUMP_BLOCKED, naming them) while a',
    '                    process that reads less is registered or lapsed less than 2 x its ttl ago; never lowered;',
    '                    idempotent. Upgrade every process first (docs/upgrading.md, "Format versions")',
    '  With --json: the API body.',
  ].join('\n'),
  options: { bump: { type: 'string' } },
  positionalsMin: 1,
  positionalsMax: 1,
  async run({ client, json, io, values, positionals }) {
    const sub = positionals[0]!;
    if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`unknown admin subcommand "${sub}"; known: ${SUBCOMMANDS.join(', ')}`);
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
