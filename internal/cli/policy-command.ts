/**
 * `strata policy`: the tiering policy of key prefixes (docs/tiering.md). `list` shows every prefix with a policy
 * record, `get` one prefix's hot fields and why, `set` pins fields by hand and sets the prefix's lifecycle.
 */
import type { PolicyChange, PolicyResult } from '../client/strata-client.js';
import { UsageError, fieldListOption, printJson, type Command } from './commands.js';
import { formatFields, formatTable } from './format.js';

const SUBCOMMANDS = ['list', 'get', 'set'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

/** Field scores shown by `get` (every one is in --json). */
const FIELDS_SHOWN = 15;

function idleOption(value: string | boolean | undefined): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'default') return null;
  if (typeof value !== 'string' || !/^\d+$/.test(value)) {
    throw new UsageError(`--idle-to-ec takes milliseconds (0: never) or "default"; got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function booleanOption(value: string | boolean | undefined, option: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  throw new UsageError(`--${option} takes true or false; got ${JSON.stringify(value)}`);
}

function policyChange(values: Record<string, string | boolean | undefined>): PolicyChange {
  if (values.pin !== undefined && values['no-pins']) throw new UsageError('--pin and --no-pins exclude each other');
  const pins = values['no-pins'] ? null : fieldListOption(values.pin, 'pin');
  const idle = idleOption(values['idle-to-ec']);
  const override = booleanOption(values['override-explicit'], 'override-explicit');
  const change: PolicyChange = {
    ...(pins !== undefined ? { pins } : {}),
    ...(idle !== undefined ? { idleToEcAfterMs: idle } : {}),
    ...(override !== undefined ? { overrideExplicit: override } : {}),
  };
  if (Object.keys(change).length === 0) throw new UsageError('nothing to set: give --pin, --no-pins, --idle-to-ec or --override-explicit');
  return change;
}

function describePolicy(p: PolicyResult): string {
  const lifecycle = p.lifecycle.idle_to_ec_after_ms === null || p.lifecycle.idle_to_ec_after_ms === 0
    ? 'documents stay where they are'
    : `idle documents move to ec after ${p.lifecycle.idle_to_ec_after_ms} ms${p.lifecycle.override_explicit ? ', even those whose writer named a strategy' : ''}`;
  let out = formatFields([
    ['prefix', p.prefix === '' ? '(root: keys without a separator)' : p.prefix],
    ['hot fields', p.hot_fields.length > 0 ? p.hot_fields.join(', ') : 'none'],
    ['pinned', [...p.pins.api.map((f) => `${f} (api)`), ...p.pins.config.map((f) => `${f} (config)`)].join(', ') || 'none'],
    ['defaults', p.defaults.length > 0 ? p.defaults.join(', ') : 'none'],
    ['epoch', `${p.epoch}${p.retier.complete ? '' : ` (re-tiering to it: done up to epoch ${p.retier.done_epoch})`}`],
    ['changed', p.changed_at ?? 'never'],
    ['lifecycle', lifecycle],
  ]);
  if (p.learned.length > 0) out += formatTable(['LEARNED', 'HOT', 'SINCE', 'WHY'], p.learned.map((l) => [l.field, l.hot ? 'yes' : 'no', l.since ?? '-', l.reason]));
  if (p.fields.length > 0) {
    out += formatTable(
      ['FIELD', 'HOT', 'SCORE', 'PROJECTION READS', 'CHANGES', 'VALUE BYTES'],
      p.fields.slice(0, FIELDS_SHOWN).map((f) => [f.field, f.hot ? 'yes' : 'no', f.score.toFixed(2), f.projection_reads.toFixed(1), f.changes.toFixed(1), String(f.value_bytes)]),
    );
    if (p.fields.length > FIELDS_SHOWN) out += `... and ${p.fields.length - FIELDS_SHOWN} more fields (--json shows all)\n`;
  }
  return out;
}

export const policyCommand: Command = {
  name: 'policy',
  synopsis: 'policy list | policy get PREFIX | policy set PREFIX [--pin a,b | --no-pins] [--idle-to-ec MS|default] [--override-explicit true|false]',
  summary: 'show or set the hot fields and lifecycle of a key prefix',
  details: [
    '  list                  every prefix with a policy record and its hot fields now',
    '  get PREFIX            a prefix\'s hot fields and why: pins, defaults, learned decisions, field scores, lifecycle',
    '  set PREFIX ...        change it; options left out stay as they are:',
    '    --pin a,/b/c        keep these fields hot under PREFIX (plain names or JSON Pointers)',
    '    --no-pins           clear the pins: learned and default fields apply again',
    '    --idle-to-ec MS     documents idle this long move to ec (0: never; "default": STRATA_IDLE_TO_EC_AFTER_MS)',
    '    --override-explicit true|false   also move documents whose writer named a strategy',
    '  PREFIX is the start of keys, e.g. user: or logs/; "" is the root prefix of keys without a separator.',
    '  With --json: the API body.',
  ].join('\n'),
  options: {
    pin: { type: 'string' },
    'no-pins': { type: 'boolean' },
    'idle-to-ec': { type: 'string' },
    'override-explicit': { type: 'string' },
  },
  positionalsMin: 1,
  positionalsMax: 2,
  async run({ client, json, io, values, positionals }) {
    const sub = positionals[0]! as Subcommand;
    if (!SUBCOMMANDS.includes(sub)) throw new UsageError(`unknown policy subcommand "${sub}"; known: ${SUBCOMMANDS.join(', ')}`);
    const prefix = positionals[1];
    const setting = ['pin', 'no-pins', 'idle-to-ec', 'override-explicit'].filter((o) => values[o] !== undefined);
    if (sub !== 'set' && setting.length > 0) throw new UsageError(`--${setting[0]} goes with policy set`);
    if (sub === 'list') {
      if (prefix !== undefined) throw new UsageError('policy list takes no prefix');
      const prefixes = await client.listPolicies();
      if (json) return printJson(io, { prefixes });
      if (prefixes.length === 0) return void io.stdout('no prefix has a policy record yet (one is made by the first write under it)\n');
      io.stdout(formatTable(['PREFIX', 'HOT FIELDS', 'EPOCH', 'CHANGED'], prefixes.map((p) => [p.prefix === '' ? '(root)' : p.prefix, p.hot_fields.join(', ') || '-', String(p.epoch), p.changed_at ?? '-'])));
      return;
    }
    if (prefix === undefined) throw new UsageError(`policy ${sub} needs a PREFIX`);
    const result = sub === 'get' ? await client.policy(prefix) : await client.setPolicy(prefix, policyChange(values));
    if (json) printJson(io, result);
    else io.stdout(describePolicy(result));
  },
};
