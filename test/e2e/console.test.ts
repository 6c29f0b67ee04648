/**
 * The web console in a real browser: Debian's headless `chromium` (installed with apt-get by
 * scripts/infra/chromium.ts when missing) driven by playwright-core, against an in-process cluster of six nodes
 * holding documents of every strategy. Screenshots go to test-results/console/. If Chromium cannot be installed
 * or started, the test fails and says what failed: it never skips.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_ARGS, ensureChromium } from '../../scripts/infra/chromium.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';

const SCREENSHOT_DIR = path.resolve('test-results', 'console');
/** The screenshot the README shows. */
const README_SCREENSHOT = path.resolve('docs', 'console.png');

let cluster: TestCluster;
let browser: Browser;
let page: Page;
/** Errors the page logged or threw; the console must not produce any. */
const pageErrors: string[] = [];

const KEYS = {
  replication: 'users/ada',
  ec: 'archive/report-2024',
  hybrid: 'devices/sensor-17',
} as const;

function sensorDoc(i: number) {
  return {
    device_id: `sensor-${i}`,
    battery_level: 80 + i,
    is_active: true,
    last_sync_ts: 1_700_000_000 + i,
    location: { site: 'plant-3', rack: i },
    // Incompressible, so that the cold part is erasure coded as it is (compressible text may shrink enough to be
    // kept as whole copies instead).
    sensor_raw_log: randomBytes(30_000 + i * 500).toString('base64'),
  };
}

async function write(key: string, doc: unknown, strategy: string): Promise<void> {
  const res = await cluster.write(key, doc, `&strategy=${strategy}`);
  expect(res.status, await res.clone().text()).toBe(200);
}

async function launchChromium(): Promise<Browser> {
  let executablePath: string;
  try {
    executablePath = await ensureChromium();
  } catch (error) {
    throw new Error(`the console test needs Debian's chromium and could not install it: ${(error as Error).message}`);
  }
  try {
    return await chromium.launch({ executablePath, args: [...CHROMIUM_ARGS], headless: true });
  } catch (error) {
    throw new Error(`chromium at ${executablePath} could not be started by playwright-core: ${(error as Error).message}`);
  }
}

async function screenshot(name: string): Promise<string> {
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

beforeAll(async () => {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  browser = await launchChromium();
  cluster = await startTestCluster({ env: { STRATA_NODE_PROBE_INTERVAL_MS: '200' } });
  await write(KEYS.replication, { name: 'Ada', like_count: 41, bio: 'first programmer '.repeat(50) }, 'replication');
  await write(KEYS.ec, { title: 'Annual report', body: randomBytes(60_000).toString('base64'), view_count: 9 }, 'ec');
  await write(KEYS.hybrid, sensorDoc(17), 'field_hybrid');
  for (let i = 0; i < 12; i++) await write(`devices/sensor-${String(i).padStart(2, '0')}`, sensorDoc(i), 'field_hybrid');
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') pageErrors.push(`${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => pageErrors.push(`uncaught: ${error.message}`));
}, 15 * 60_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.destroy();
});

describe('the web console', () => {
  it('is served at / with a Content-Security-Policy and its own assets', async () => {
    const res = await cluster.fetch('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await res.text()).toContain('/console/app.js');
    for (const asset of ['/console/app.js', '/console/style.css']) {
      const a = await cluster.fetch(asset);
      expect(a.status, asset).toBe(200);
      expect(a.headers.get('content-security-policy')).toContain("default-src 'none'");
    }
    expect((await cluster.fetch('/console/../package.json')).status).not.toBe(200);
  });

  it('shows the cluster map with six healthy nodes in their zones', async () => {
    await page.goto(cluster.url);
    await expect.poll(() => page.locator('.node-card').count(), { timeout: CONDITION_TIMEOUT_MS }).toBe(6);
    const states = await page.locator('.node-card').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-state')));
    expect(states).toEqual(Array(6).fill('healthy'));
    await expect.poll(() => page.locator('#node-count').textContent(), { timeout: CONDITION_TIMEOUT_MS }).toBe('6 nodes, 6 healthy');
  });

  it('lists keys in the object browser and pages through them', async () => {
    await page.fill('#prefix', 'devices/');
    await page.click('#browse-form button[type=submit]');
    await page.locator('#keys .key-row').first().waitFor();
    const keys = await page.locator('#keys .key-row').allTextContents();
    expect(keys).toContain(KEYS.hybrid);
    expect(keys.every((k) => k.startsWith('devices/'))).toBe(true);
    await page.fill('#prefix', '');
    await page.click('#browse-form button[type=submit]');
    await page.locator(`#keys .key-row[data-key="${KEYS.ec}"]`).waitFor();
  });

  it('opens a document and shows its hot and cold split and where each replica and shard lives', async () => {
    await page.fill('#prefix', 'devices/sensor-17');
    await page.click('#browse-form button[type=submit]');
    await page.click(`.key-row[data-key="${KEYS.hybrid}"]`);
    await page.waitForSelector('#doc-detail:not([hidden])');
    expect(await page.textContent('#doc-key')).toBe(KEYS.hybrid);
    expect(await page.textContent('#doc-strategy')).toBe('field_hybrid');
    expect(await page.textContent('#doc-hot-fields')).toContain('battery_level');
    const widths = {
      hot: (await page.locator('#split-hot').boundingBox())?.width ?? 0,
      cold: (await page.locator('#split-cold').boundingBox())?.width ?? 0,
    };
    expect(widths.hot).toBeGreaterThan(0);
    expect(widths.cold).toBeGreaterThan(widths.hot);
    expect(await page.textContent('#split-hot-label')).toMatch(/hot .* in 3 replicas/);
    const rows = await page.locator('#placement tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    );
    expect(rows.map((r) => r[0])).toEqual(['hot-0', 'hot-1', 'hot-2', 'shard-0', 'shard-1', 'shard-2', 'shard-3', 'shard-4', 'shard-5']);
    for (const row of rows) {
      expect(row[1]).toMatch(/^node-\d$/);
      expect(row[4]).toBe('ok');
    }
    // The six shards live on six different nodes.
    expect(new Set(rows.slice(3).map((r) => r[1])).size).toBe(6);
  });

  it('draws the storage-efficiency chart: bytes on disk against 3x replication', async () => {
    await expect.poll(() => page.locator('#efficiency-chart rect.bar').count(), { timeout: CONDITION_TIMEOUT_MS }).toBe(3);
    const bars = await page.locator('#efficiency-chart rect.bar').evaluateAll((rects) =>
      Object.fromEntries(rects.map((r) => [r.getAttribute('data-series'), { bytes: Number(r.getAttribute('data-bytes')), width: Number(r.getAttribute('width')) }])),
    );
    expect(bars['logical']!.bytes).toBeGreaterThan(0);
    expect(bars['replication']!.bytes).toBe(bars['logical']!.bytes * 3);
    // Hybrid and EC documents make the cluster store less than 3x replication would.
    expect(bars['stored']!.bytes).toBeGreaterThan(bars['logical']!.bytes);
    expect(bars['stored']!.width).toBeLessThan(bars['replication']!.width);
    expect(await page.textContent('#efficiency-summary')).toMatch(/less than 3x replication/);
  });

  it('shows a repair the healer made after a blob was deleted from a node', async () => {
    const stat = (await (await cluster.fetch(`/stat/${encodeURIComponent(KEYS.ec)}`)).json()) as { hot: unknown[]; cold: { node: string; blob: string }[] };
    const victim = stat.cold[2]!;
    const node = cluster.nodes.find((n) => n.id === victim.node)!;
    expect(await node.server!.store.delete(victim.blob)).toBe(true);
    const report = await cluster.healer.runOnce({ forceAudit: true });
    expect(report.repaired).toBeGreaterThanOrEqual(1);
    const row = page.locator(`.repair-row[data-key="${KEYS.ec}"]`);
    await row.first().waitFor({ timeout: CONDITION_TIMEOUT_MS });
    expect(await row.first().textContent()).toContain(`shard-2 on ${victim.node} (missing)`);
    // The document view shows the rebuilt shard in place again.
    await page.fill('#prefix', KEYS.ec);
    await page.click('#browse-form button[type=submit]');
    await page.click(`.key-row[data-key="${KEYS.ec}"]`);
    await expect.poll(() => page.textContent('#doc-key'), { timeout: CONDITION_TIMEOUT_MS }).toBe(KEYS.ec);
    const states = await page.locator('#placement tbody tr td:last-child').allTextContents();
    expect(states).toEqual(Array(stat.hot.length + stat.cold.length).fill('ok'));
    expect(await row.first().getAttribute('data-kind')).toBe('repaired');
  });

  it('shows live activity: the request rate and commits from the change feed', async () => {
    await expect.poll(() => page.textContent('#live'), { timeout: CONDITION_TIMEOUT_MS }).toBe('feed: live');
    await write('devices/live-1', sensorDoc(99), 'field_hybrid');
    await page.locator('#feed li', { hasText: 'devices/live-1' }).first().waitFor();
    await page.locator('#rate-chart polyline').waitFor();
    expect(await page.textContent('#rate-now')).toMatch(/requests\/s/);
    // The README's screenshot shows a field_hybrid document: both tiers and all nine placements.
    await page.fill('#prefix', 'devices/');
    await page.click('#browse-form button[type=submit]');
    await page.click(`.key-row[data-key="${KEYS.hybrid}"]`);
    await expect.poll(() => page.textContent('#doc-key'), { timeout: CONDITION_TIMEOUT_MS }).toBe(KEYS.hybrid);
    const file = await screenshot('console-overview');
    await mkdir(path.dirname(README_SCREENSHOT), { recursive: true });
    await copyFile(file, README_SCREENSHOT);
  });

  it('shows a failing API call in the panel and the problems list instead of failing silently', async () => {
    const errorPage = await browser.newPage();
    try {
      // A gateway answering 503 for /cluster: the console must say so where the user looks.
      await errorPage.route('**/cluster', (route) =>
        route.fulfill({ status: 503, contentType: 'application/json', headers: { 'Retry-After': '1' }, body: JSON.stringify({ error: { code: 'METADATA_UNAVAILABLE', message: 'etcd is unreachable' } }) }),
      );
      await errorPage.goto(cluster.url);
      await errorPage.waitForSelector('#cluster-panel .panel-error:not([hidden])');
      expect(await errorPage.textContent('#cluster-panel .panel-error')).toContain('METADATA_UNAVAILABLE: etcd is unreachable');
      expect(await errorPage.isVisible('#errors')).toBe(true);
      await errorPage.screenshot({ path: path.join(SCREENSHOT_DIR, 'console-error.png'), fullPage: true });
    } finally {
      await errorPage.close();
    }
  });

  it('logged no errors or warnings in the browser while in use', async () => {
    await screenshot('console-final');
    expect(pageErrors).toEqual([]);
  });
});
