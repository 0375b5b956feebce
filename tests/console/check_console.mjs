// Opens the web console of a running `tessera run` in a real browser (Debian's chromium driven
// by playwright-core) and reports what each page shows, for tests/e2e/console_e2e_test.py:
//
//   node check_console.mjs URL VIEW KEY_PARTS_JSON WINDOWS AT SCREENSHOT_DIR
//
// PLAYWRIGHT_PREFIX: the npm prefix holding node_modules/playwright-core. CHROMIUM: the browser
// (default /usr/bin/chromium). Prints one JSON line: the overview's metric cells with /metrics
// fetched right after, the explorer's cells and snippets, chart points, catalog cards, rejects,
// and every console error or uncaught exception of the pages.
import { createRequire } from 'node:module';
import path from 'node:path';

const [url, view, keyPartsJson, windows, at, shots] = process.argv.slice(2);
const require = createRequire(path.join(process.env.PLAYWRIGHT_PREFIX ?? process.cwd(), 'package.json'));
const { chromium } = require('playwright-core');

const result = { ok: false, errors: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => result.errors.push(`page: ${e.message}`));
  page.on('requestfailed', (r) => result.errors.push(`request failed: ${r.url()}`));
  // No request may leave the server (no CDN): record every host the page asks for.
  const hosts = new Set();
  page.on('request', (r) => hosts.add(new URL(r.url()).host));

  // Overview: tables, then charts with points (two samples make a rate).
  await page.goto(`${url}/#overview`, { waitUntil: 'load', timeout: 30_000 });
  await page.waitForSelector('#sources-table td[data-metric]', { timeout: 15_000 });
  await page.waitForFunction(() => {
    const c = document.querySelector('[data-chart="Rows/s by source"]');
    return c && Number(c.dataset.points) >= 2;
  }, null, { timeout: 20_000 });
  // The next refresh, then the cells and /metrics as close together as the page allows.
  await page.waitForTimeout(2500);
  const overview = await page.evaluate(async () => {
    const cells = [...document.querySelectorAll('td[data-metric]')].map((td) => ({
      metric: td.dataset.metric, labels: JSON.parse(td.dataset.labels),
      value: td.dataset.value === '' ? null : Number(td.dataset.value), text: td.textContent,
    }));
    const metrics = await (await fetch('/metrics')).text();
    const charts = Object.fromEntries([...document.querySelectorAll('[data-chart]')].map(
      (c) => [c.dataset.chart, Number(c.dataset.points)]));
    return { cells, metrics, charts };
  });
  result.overview = overview;
  await page.screenshot({ path: path.join(shots, 'console_overview.png'), fullPage: true });

  // Explorer: one read, then one feature over time.
  await page.goto(`${url}/#explorer`, { waitUntil: 'load' });
  await page.waitForSelector('#ex-view option', { state: 'attached' });
  await page.selectOption('#ex-view', view);
  const parts = JSON.parse(keyPartsJson);
  const inputs = page.locator('#ex-keys input');
  for (let i = 0; i < parts.length; i++) await inputs.nth(i).fill(parts[i]);
  await page.fill('#ex-windows', windows);
  await page.fill('#ex-at', at);
  await page.click('#explorer-form button');
  await page.waitForSelector('#ex-table td[data-json]', { timeout: 15_000 });
  result.explorer = await page.evaluate(() => ({
    cells: [...document.querySelectorAll('#ex-table td[data-json]')].map((td) => ({
      window: td.dataset.window, feature: td.dataset.feature, value: JSON.parse(td.dataset.json),
    })),
    curl: document.getElementById('ex-curl').textContent,
    python: document.getElementById('ex-python').textContent,
  }));
  await page.fill('#se-hours', '2');
  await page.click('#series-form button');
  await page.waitForSelector('#se-chart[data-points]', { state: 'attached', timeout: 30_000 });
  result.explorer.series_points = Number(await page.getAttribute('#se-chart', 'data-points'));
  await page.screenshot({ path: path.join(shots, 'console_explorer.png'), fullPage: true });

  await page.goto(`${url}/#catalog`, { waitUntil: 'load' });
  await page.waitForSelector('.card[data-view]', { timeout: 15_000 });
  result.catalog = await page.evaluate(() => ({
    views: [...document.querySelectorAll('.card[data-view]')].map((c) => c.dataset.view),
    sources: [...document.querySelectorAll('.card[data-source]')].map((c) => c.dataset.source),
    text: document.getElementById('catalog').textContent,
  }));
  await page.screenshot({ path: path.join(shots, 'console_catalog.png'), fullPage: true });

  await page.goto(`${url}/#rejects`, { waitUntil: 'load' });
  await page.waitForSelector('table[data-rejects] tr td', { timeout: 15_000 });
  result.rejects = await page.evaluate(() => [...document.querySelectorAll('table[data-rejects]')].map(
    (t) => ({ source: t.dataset.rejects, rows: [...t.querySelectorAll('tr')].slice(1).map((r) => r.textContent) })));
  await page.screenshot({ path: path.join(shots, 'console_rejects.png'), fullPage: true });

  result.hosts = [...hosts];
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
