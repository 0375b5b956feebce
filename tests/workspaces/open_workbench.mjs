// Logs in to a code-server in a real browser (Debian's chromium driven by playwright-core) and
// waits for the VS Code workbench; for tests/workspaces/local_mode_test.py.
//
//   node open_workbench.mjs URL PASSWORD SCREENSHOT.png [EXPECTED_FILE_IN_EXPLORER]
//
// PLAYWRIGHT_PREFIX: the npm prefix holding node_modules/playwright-core
// (scripts/install-code-server.sh installs it beside code-server). CHROMIUM: the browser binary
// (default /usr/bin/chromium). Prints one JSON line: {"ok":true,...} or {"ok":false,"error":...}.
import { createRequire } from 'node:module';
import path from 'node:path';

const [url, password, screenshot, expectedFile] = process.argv.slice(2);
if (!url || !password || !screenshot) {
  console.error('usage: node open_workbench.mjs URL PASSWORD SCREENSHOT.png [FILE]');
  process.exit(2);
}
const prefix = process.env.PLAYWRIGHT_PREFIX;
const require = createRequire(path.join(prefix ?? process.cwd(), 'package.json'));
const { chromium } = require('playwright-core');

const result = { ok: false, steps: [] };
const step = (name) => {
  result.steps.push(name);
  console.error(`open_workbench: ${name}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  // A new context is a fresh profile: no cookie from an earlier run.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 30_000 });
  const passwordField = page.locator('input[name="password"]');
  await passwordField.waitFor({ timeout: 30_000 });
  step(`login page at ${page.url()}`);

  // A wrong password must not get in.
  await passwordField.fill(password + 'x');
  await passwordField.press('Enter');
  await page.locator('.error').waitFor({ timeout: 15_000 });
  result.wrong_password_error = (await page.locator('.error').innerText()).trim();
  step(`wrong password refused: ${result.wrong_password_error}`);

  await page.locator('input[name="password"]').fill(password);
  await page.locator('input[name="password"]').press('Enter');
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  step('workbench (.monaco-workbench) is there');
  // The workbench's frame comes first, its parts over the websocket after: wait for the status
  // bar and, when asked, for a file in the Explorer, so the screenshot shows a loaded IDE.
  await page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 30_000 });
  if (expectedFile) {
    const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: expectedFile });
    await row.first().waitFor({ timeout: 30_000 });
    step(`explorer lists ${expectedFile}`);
    result.explorer_shows_file = true;
  }
  result.title = await page.title();
  await page.screenshot({ path: screenshot });
  step(`screenshot ${screenshot}`);
  result.ok = true;
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages.length > 0) await pages[0].screenshot({ path: screenshot });
    result.screenshot_of_failure = screenshot;
  } catch {
    // No page to shoot: the error above says why.
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
