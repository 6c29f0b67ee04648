/**
 * The test helper that parses /metrics: what it reads must be what Prometheus would, and text that is not the
 * exposition format must fail loudly instead of parsing as nothing.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, sumOf } from '../helpers/prometheus-text.js';

describe('parsePrometheusText', () => {
  it('reads what a prom-client registry writes: labels with escapes, histogram series, types', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 't_total', help: 'h', labelNames: ['route', 'odd'], registers: [registry] });
    counter.inc({ route: '/read/*', odd: 'say "hi"\\ok\nnext' }, 3);
    counter.inc({ route: '/write', odd: '' }, 2);
    const histogram = new Histogram({ name: 't_seconds', help: 'h', buckets: [0.1, 1], registers: [registry] });
    histogram.observe(0.05);
    histogram.observe(0.5);
    const scrape = parsePrometheusText(await registry.metrics());
    expect(scrape.types.get('t_total')).toBe('counter');
    expect(scrape.types.get('t_seconds')).toBe('histogram');
    expect(sumOf(scrape, 't_total', { route: '/read/*' })).toBe(3);
    expect(scrape.samples.find((s) => s.name === 't_total' && s.labels['route'] === '/read/*')?.labels['odd']).toBe('say "hi"\\ok\nnext');
    expect(sumOf(scrape, 't_total')).toBe(5);
    expect(sumOf(scrape, 't_seconds_bucket', { le: '0.1' })).toBe(1);
    expect(sumOf(scrape, 't_seconds_bucket', { le: '+Inf' })).toBe(2);
    expect(sumOf(scrape, 't_seconds_count')).toBe(2);
    expect(sumOf(scrape, 't_total', { route: (r) => r.startsWith('/w') })).toBe(2);
  });

  it('reads NaN and infinities in any letter case, as Prometheus does', () => {
    const scrape = parsePrometheusText('a Nan\nb +Inf\nc -inf\nd 1e3\n');
    expect(scrape.samples.map((s) => s.value)).toEqual([NaN, Infinity, -Infinity, 1000]);
  });

  it('refuses lines that are not samples', () => {
    expect(() => parsePrometheusText('<html>not metrics</html>')).toThrow(/not a Prometheus sample line/);
    expect(() => parsePrometheusText('metric{a="1"} twelve')).toThrow(/not a sample value/);
  });
});
