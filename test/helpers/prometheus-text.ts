/**
 * A small parser of the Prometheus text exposition format (version 0.0.4), enough for tests to read what a
 * process's /metrics says: `# HELP` / `# TYPE` lines, and samples `name{label="value",...} number`.
 */
import { fetchOnFreshConnection } from './fresh-connection.js';
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  samples: Sample[];
  /** Metric family name -> type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;

export function parsePrometheusText(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) types.set(type[1]!, type[2]!);
      continue;
    }
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    samples.push({ name: match[1]!, labels: parseLabels(match[2] ?? ''), value: parseValue(match[3]!) });
  }
  return { samples, types };
}

/** Like Prometheus (Go's ParseFloat), NaN and Inf in any letter case: prom-client writes `Nan`. */
function parseValue(text: string): number {
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`not a sample value: ${text}`);
  return value;
}

/** `a="x",b="y \"quoted\""` -> { a: 'x', b: 'y "quoted"' }. */
function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq === -1) break;
    const name = text.slice(i, eq).trim();
    if (text[eq + 1] !== '"') throw new Error(`label ${name} has no quoted value in {${text}}`);
    let value = '';
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        j++;
        value += text[j] === 'n' ? '\n' : text[j];
      } else {
        value += text[j];
      }
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
  }
  return labels;
}

/** The sum of every sample of `name` whose labels include `labels` (0 when none matches). */
export function sumOf(scrape: Scrape, name: string, labels: Record<string, string | ((v: string) => boolean)> = {}): number {
  let total = 0;
  for (const sample of scrape.samples) {
    if (sample.name !== name) continue;
    const matches = Object.entries(labels).every(([k, want]) => {
      const have = sample.labels[k];
      return have !== undefined && (typeof want === 'function' ? want(have) : have === want);
    });
    if (matches) total += sample.value;
  }
  return total;
}

/** GET /metrics of a process (often another one: hence a connection of its own) and parse it. */
export async function scrape(url: string): Promise<Scrape> {
  const response = await fetchOnFreshConnection(url);
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}`);
  const type = response.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain')) throw new Error(`GET ${url} answered content-type ${type}`);
  return parsePrometheusText(await response.text());
}
