/**
 * `strata verify [PREFIX]`: walks every live key (under PREFIX), asks the nodes about each replica and shard
 * (`GET /stat/KEY?verify=true`) and, unless --no-read, reads the whole document back (the gateway checks every
 * byte against the manifest's checksums). Exit code 5 when any key is not fully protected or not readable, so a
 * cron job or a script can act on it.
 */
import { StrataApiError, type VerifiedStatResult } from '../client/strata-client.js';
import { UsageError, type Command, type CommandContext } from './commands.js';
import { startProgress } from './progress.js';
import { formatFields, formatTable } from './format.js';

export const VERIFY_LIMITS = {
  concurrencyDefault: 8,
  concurrencyMax: 64,
  /** Problems kept for the report; beyond this only the counts grow, so memory stays bounded on any store. */
  problemsListedMax: 10_000,
  /** Problems printed in the human view (all of the kept ones go to --json). */
  problemsPrintedMax: 50,
} as const;

/** Exit code of a verification that found problems (documented in `strata --help`). */
export const EXIT_VERIFY_FAILED = 5;

export interface VerifyProblem {
  key: string;
  /** `under_protected`: readable, but some copies are missing, corrupt or unreachable; `unreadable`: data at risk. */
  kind: 'under_protected' | 'unreadable';
  detail: string;
}

export interface VerifyReport {
  prefix: string;
  read: boolean;
  keys_checked: number;
  fully_protected: number;
  under_protected: number;
  unreadable: number;
  /** Keys deleted while the walk ran (listed, then gone): not problems. */
  vanished: number;
  duration_ms: number;
  problems: VerifyProblem[];
  problems_truncated: boolean;
}

function describeMissing(s: VerifiedStatResult): string {
  const bad = [
    ...s.hot.filter((r) => r.state !== 'ok').map((r) => `${r.part}@${r.node} ${r.state}`),
    ...s.cold.filter((r) => r.state !== 'ok').map((r) => `cold ${r.index}@${r.node} ${r.state}`),
  ];
  const { hot, cold } = s.protection;
  return `hot ${hot.ok}/${hot.total}, cold ${cold.ok}/${cold.total} (needs ${cold.needed}): ${bad.join(', ')}`;
}

function concurrencyOption(value: string | boolean | undefined): number {
  if (value === undefined) return VERIFY_LIMITS.concurrencyDefault;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > VERIFY_LIMITS.concurrencyMax) {
    throw new UsageError(`--concurrency must be an integer from 1 to ${VERIFY_LIMITS.concurrencyMax}; got ${JSON.stringify(value)}`);
  }
  return n;
}

export async function runVerify(ctx: CommandContext, prefix: string, read: boolean, concurrency: number): Promise<VerifyReport> {
  const { client, io } = ctx;
  const started = Date.now();
  const report: VerifyReport = {
    prefix,
    read,
    keys_checked: 0,
    fully_protected: 0,
    under_protected: 0,
    unreadable: 0,
    vanished: 0,
    duration_ms: 0,
    problems: [],
    problems_truncated: false,
  };
  const problem = (p: VerifyProblem): void => {
    if (p.kind === 'unreadable') report.unreadable++;
    else report.under_protected++;
    if (report.problems.length < VERIFY_LIMITS.problemsListedMax) report.problems.push(p);
    else report.problems_truncated = true;
  };
  const progress = startProgress(io, 'verify', null, 'keys checked');
  const drawProgress = (): void => {
    const issues = report.under_protected + report.unreadable;
    progress.update(report.keys_checked, `${issues} with problems`);
  };

  const checkKey = async (key: string): Promise<void> => {
    try {
      const s = await client.stat(key, { verify: true });
      if (!s.protection.readable) {
        problem({ key, kind: 'unreadable', detail: describeMissing(s) });
      } else {
        if (read) await client.read(key);
        if (s.protection.full) report.fully_protected++;
        else problem({ key, kind: 'under_protected', detail: describeMissing(s) });
      }
    } catch (error) {
      if (error instanceof StrataApiError && error.status === 404) {
        report.vanished++;
        return;
      }
      if (error instanceof StrataApiError && error.status !== 503) {
        problem({ key, kind: 'unreadable', detail: `${error.code}: ${error.message}` });
      } else {
        // The gateway itself is unreachable or overloaded: that is no finding about the key, so stop and say so.
        throw error;
      }
    } finally {
      report.keys_checked++;
      drawProgress();
    }
  };

  // Keys are checked while the listing goes on, at most `concurrency` at a time. The first failure that is not a
  // finding (the gateway went away) stops the walk and is reported.
  const inFlight = new Set<Promise<void>>();
  let failure: unknown = null;
  for await (const key of client.listKeys(prefix)) {
    if (failure !== null) break;
    const task: Promise<void> = checkKey(key).catch((error: unknown) => {
      failure ??= error;
    });
    inFlight.add(task);
    void task.then(() => inFlight.delete(task));
    if (inFlight.size >= concurrency) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  progress.finish();
  if (failure !== null) throw failure;
  report.duration_ms = Date.now() - started;
  return report;
}

function describeReport(r: VerifyReport): string {
  const scope = r.prefix === '' ? 'all keys' : `keys under ${JSON.stringify(r.prefix)}`;
  let out = formatFields([
    ['checked', `${r.keys_checked} ${scope} in ${(r.duration_ms / 1000).toFixed(1)} s${r.read ? ', every document read back' : ''}`],
    ['fully protected', String(r.fully_protected)],
    ['under-protected', `${r.under_protected}${r.under_protected > 0 ? ' (readable; the healer restores the missing copies)' : ''}`],
    ['unreadable', String(r.unreadable)],
    ...(r.vanished > 0 ? ([['deleted meanwhile', String(r.vanished)]] as const) : []),
  ]);
  if (r.problems.length > 0) {
    const shown = r.problems.slice(0, VERIFY_LIMITS.problemsPrintedMax);
    out += `\n${formatTable(['KEY', 'PROBLEM', 'DETAIL'], shown.map((p) => [p.key, p.kind.replace('_', '-'), p.detail]))}`;
    const more = r.under_protected + r.unreadable - shown.length;
    if (more > 0) out += `... and ${more} more (--json lists up to ${VERIFY_LIMITS.problemsListedMax})\n`;
  }
  return out;
}

export const verifyCommand: Command = {
  name: 'verify',
  drawsProgress: true,
  synopsis: 'verify [PREFIX] [--no-read] [--concurrency N]',
  summary: 'check that every key is fully protected and reads back intact',
  details: [
    '  Asks the storage nodes about every replica and shard of every live key (under PREFIX), and reads each',
    '  document back; the gateway checks every byte against the checksums in the manifest.',
    '  --no-read         only ask the nodes (faster; does not decode erasure-coded documents)',
    `  --concurrency N   keys checked at once, 1 to ${VERIFY_LIMITS.concurrencyMax} (default ${VERIFY_LIMITS.concurrencyDefault})`,
    `  Exit code ${EXIT_VERIFY_FAILED} when any key is under-protected or unreadable. With --json: the report.`,
  ].join('\n'),
  options: { 'no-read': { type: 'boolean' }, concurrency: { type: 'string' } },
  positionalsMin: 0,
  positionalsMax: 1,
  async run(ctx) {
    const prefix = ctx.positionals[0] ?? '';
    const concurrency = concurrencyOption(ctx.values.concurrency);
    const report = await runVerify(ctx, prefix, ctx.values['no-read'] !== true, concurrency);
    if (ctx.json) ctx.io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else ctx.io.stdout(describeReport(report));
    return report.under_protected + report.unreadable > 0 ? EXIT_VERIFY_FAILED : undefined;
  },
};
