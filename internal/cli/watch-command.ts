/**
 * `strata watch [PREFIX]`: follows the change feed (GET /watch) and prints one line per committed change. The
 * client resumes a dropped connection from the last version printed, so the output has no gaps and no repeats.
 */
import { UsageError, type Command } from './commands.js';

function countOption(value: string | boolean | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--count takes a positive integer; got ${JSON.stringify(value)}`);
  return n;
}

function versionOption(value: string | boolean | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d{1,16}$/.test(value)) throw new UsageError(`--since takes a version (a decimal number a write or an earlier event gave); got ${JSON.stringify(value)}`);
  return value;
}

export const watchCommand: Command = {
  name: 'watch',
  drawsProgress: true,
  synopsis: 'watch [PREFIX] [--since V] [--count N]',
  summary: 'print changes to keys under a prefix as they are committed',
  details: [
    '  One line per change: VERSION, put or delete, KEY. Runs until interrupted (Ctrl-C) or --count changes.',
    '  --since V   start after version V (replaying what the store still keeps); default: from now',
    '  --count N   stop after N changes',
    '  A dropped connection is resumed from the last version printed. If the changes since V are no longer kept',
    '  (HISTORY_COMPACTED), list the keys again and watch from a fresh version.',
    '  With --json: one JSON object per line, {"version", "kind", "key"}, after a first {"ready": VERSION}.',
  ].join('\n'),
  options: { since: { type: 'string' }, count: { type: 'string' } },
  positionalsMin: 0,
  positionalsMax: 1,
  async run({ client, json, io, values, positionals }) {
    const limit = countOption(values.count);
    const since = versionOption(values.since);
    const prefix = positionals[0] ?? '';
    let seen = 0;
    for await (const event of client.watch(prefix, since !== undefined ? { since } : {})) {
      if (event.type === 'ready') {
        if (json) io.stdout(`${JSON.stringify({ ready: event.version })}\n`);
        else io.stderr(`watching ${prefix === '' ? 'every key' : `keys under ${JSON.stringify(prefix)}`} after version ${event.version}\n`);
        continue;
      }
      if (json) io.stdout(`${JSON.stringify({ version: event.version, kind: event.kind, key: event.key })}\n`);
      else io.stdout(`${event.version}  ${event.kind.padEnd(6)}  ${event.key}\n`);
      if (limit !== null && ++seen >= limit) return;
    }
  },
};
