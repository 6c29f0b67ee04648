/**
 * `strata rm KEY` deletes one key; `strata rm --prefix P` deletes every key under P, after saying how many and
 * asking (or with --yes). Each delete carries its own Idempotency-Key, so the client retries it safely.
 */
import { StrataApiError, type StrataClient } from '../client/strata-client.js';
import { UsageError, idempotencyKey, printJson, type CliIo, type Command } from './commands.js';
import { formatFields } from './format.js';
import { startProgress } from './progress.js';

export const RM_LIMITS = {
  /** Deletes in flight at once: enough to hide a round trip, few enough not to crowd out other clients. */
  concurrency: 8,
  /** Keys shown in the question, so that the person answering sees what the prefix catches. */
  sampleKeys: 5,
  /** Failures listed in the report (all are counted). */
  failuresListedMax: 20,
} as const;

/** Exit code when some deletes under a prefix failed (the API's error code, as for a single command). */
const EXIT_SOME_FAILED = 1;

interface PrefixReport {
  prefix: string;
  deleted: number;
  /** Gone before this command reached them (deleted or expired by someone else). */
  already_gone: number;
  failed: number;
  failures: { key: string; code: string; message: string }[];
  duration_ms: number;
}

export const rmCommand: Command = {
  name: 'rm',
  drawsProgress: true,
  synopsis: 'rm KEY | rm --prefix P [--yes]',
  summary: 'delete a key, or every key under a prefix',
  details: [
    '  A key is replaced by a tombstone with a new version; it never comes back.',
    '  --prefix P   delete every key starting with P (P may be "" for every key). Counts them first and asks for',
    '               confirmation on a terminal; keys written under P while it runs may or may not be deleted.',
    '  --yes        do not ask (needed when stdin is not a terminal)',
    `  Exit code ${EXIT_SOME_FAILED} when some deletes failed (they are listed). With --json: the deleted version, or`,
    '  for a prefix {"prefix", "deleted", "already_gone", "failed", "failures", "duration_ms"}.',
  ].join('\n'),
  options: { prefix: { type: 'string' }, yes: { type: 'boolean', short: 'y' } },
  positionalsMin: 0,
  positionalsMax: 1,
  async run({ client, json, io, values, positionals }) {
    const prefix = values.prefix;
    if (typeof prefix !== 'string') {
      if (positionals.length === 0) throw new UsageError('missing argument: a KEY, or --prefix P');
      if (values.yes) throw new UsageError('--yes goes with --prefix');
      const result = await client.delete(positionals[0]!, { idempotencyKey: idempotencyKey() });
      if (json) printJson(io, result);
      else io.stdout(`${result.key}: deleted at version ${result.version}\n`);
      return;
    }
    if (positionals.length > 0) throw new UsageError('give a KEY or --prefix P, not both');

    const { count, sample } = await countKeys(client, io, prefix);
    const scope = prefix === '' ? 'every key in the store' : `every key under ${JSON.stringify(prefix)}`;
    if (count === 0) {
      if (json) printJson(io, emptyReport(prefix));
      else io.stdout(`no keys under ${JSON.stringify(prefix)}; nothing deleted\n`);
      return;
    }
    if (values.yes !== true) {
      if (io.confirm === undefined) throw new UsageError(`this deletes ${scope} (${count} keys); pass --yes to confirm when not on a terminal`);
      const shown = sample.map((k) => `  ${k}`).join('\n');
      const more = count > sample.length ? `\n  ... and ${count - sample.length} more` : '';
      if (!(await io.confirm(`Delete ${scope}: ${count} keys?\n${shown}${more}\nType y to delete, anything else to stop: `))) {
        io.stderr('nothing deleted\n');
        return;
      }
    }
    const report = await deletePrefix(client, io, prefix, count);
    if (json) printJson(io, report);
    else io.stdout(describeReport(report));
    return report.failed > 0 ? EXIT_SOME_FAILED : undefined;
  },
};

async function countKeys(client: StrataClient, io: CliIo, prefix: string): Promise<{ count: number; sample: string[] }> {
  const progress = startProgress(io, 'counting', null, 'keys');
  const sample: string[] = [];
  let count = 0;
  for await (const key of client.listKeys(prefix)) {
    if (sample.length < RM_LIMITS.sampleKeys) sample.push(key);
    count++;
    progress.update(count);
  }
  progress.finish();
  return { count, sample };
}

async function deletePrefix(client: StrataClient, io: CliIo, prefix: string, expected: number): Promise<PrefixReport> {
  const started = Date.now();
  const report: PrefixReport = { prefix, deleted: 0, already_gone: 0, failed: 0, failures: [], duration_ms: 0 };
  const progress = startProgress(io, 'deleting', expected);
  const inFlight = new Set<Promise<void>>();
  // A gateway that cannot be reached (or is overloaded past the client's retries) stops the run: every further
  // delete would fail the same way.
  let stop: unknown = null;
  const deleteOne = async (key: string): Promise<void> => {
    try {
      await client.delete(key, { idempotencyKey: idempotencyKey() });
      report.deleted++;
    } catch (error) {
      if (error instanceof StrataApiError && error.status === 404) report.already_gone++;
      else if (error instanceof StrataApiError && error.status !== 503) {
        report.failed++;
        if (report.failures.length < RM_LIMITS.failuresListedMax) report.failures.push({ key, code: String(error.code), message: error.message });
      } else stop ??= error;
    }
    progress.update(report.deleted + report.already_gone + report.failed, report.failed > 0 ? `${report.failed} failed` : undefined);
  };
  for await (const key of client.listKeys(prefix)) {
    if (stop !== null) break;
    const task = deleteOne(key);
    inFlight.add(task);
    void task.then(() => inFlight.delete(task));
    if (inFlight.size >= RM_LIMITS.concurrency) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  progress.finish();
  if (stop !== null) {
    io.stderr(`stopped after deleting ${report.deleted} keys under ${JSON.stringify(prefix)}; run the command again to finish\n`);
    throw stop;
  }
  report.duration_ms = Date.now() - started;
  return report;
}

function emptyReport(prefix: string): PrefixReport {
  return { prefix, deleted: 0, already_gone: 0, failed: 0, failures: [], duration_ms: 0 };
}

function describeReport(r: PrefixReport): string {
  let out = formatFields([
    ['deleted', `${r.deleted} keys under ${JSON.stringify(r.prefix)} in ${(r.duration_ms / 1000).toFixed(1)} s`],
    ['already gone', String(r.already_gone)],
    ['failed', String(r.failed)],
  ]);
  for (const f of r.failures) out += `  ${f.key}: ${f.code}: ${f.message}\n`;
  if (r.failed > r.failures.length) out += `  ... and ${r.failed - r.failures.length} more\n`;
  return out;
}
