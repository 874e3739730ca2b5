// The dashboard of `tidegate serve` in a real headless Chromium: a wrong token is
// refused, the right one signs in, denied traffic shows on the chart and in the top
// keys, "reset" admits the key again, the key lookup shows its state, and the page logs
// no errors. Needs the built binary (target/debug/tidegate, or TIDEGATE_BIN) and
// Chromium (/usr/bin/chromium, or CHROMIUM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.TIDEGATE_BIN || join(root, 'target/debug/tidegate');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = join(root, 'target/test-artifacts');
const TOKEN = 'dashboard-test-token-4f9c2a71';
const WAIT = { timeout: 15000 };

/** Starts `tidegate serve` on a free port; resolves with its base URL and process. */
async function serve(dir) {
  const config = join(dir, 'tidegate.toml');
  writeFileSync(config, [
    'listen = "127.0.0.1:0"',
    'shutdown_timeout = "20s"',
    '[admin]',
    `token = "${TOKEN}"`,
    '[policies]',
    'api = "fixed_window:3/1m"',
    'login = "token_bucket:5/1m"',
    '[tracker]',
    'spec = "simple:limit=1,defer=1m"',
    `sink = { type = "jsonl", path = "${join(dir, 'batches.jsonl')}" }`,
    '',
  ].join('\n'));
  const child = spawn(BIN, ['serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // The configuration is the file alone: none of the caller's TIDEGATE_* variables.
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TIDEGATE_'))),
      RUST_LOG: 'info',
    },
  });
  let log = '';
  const base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`tidegate serve did not start:\n${log}`)), 20000);
    const read = (chunk) => {
      log += chunk;
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => fail(new Error(`tidegate serve exited with ${code}:\n${log}`)));
  });
  return { base, child, log: () => log };
}

async function check(base, key, policy = 'api') {
  const resp = await fetch(`${base}/v1/check`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ policy, key }),
  });
  await resp.arrayBuffer();
  return resp.status;
}

test('the dashboard signs in, charts denials, lists, resets and looks up keys', { timeout: 90000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidegate-dashboard-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  const server = await serve(dir);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  try {
    // Console errors and uncaught exceptions; while the wrong token is tried, the
    // browser's own line about the 401 answer is expected (and only that one).
    let phase = 'start';
    const errors = [];
    page.on('console', (m) => {
      if (m.type() !== 'error') {
        return;
      }
      const expected401 = phase === 'wrong-token' && /status of 401/.test(m.text());
      if (!expected401) {
        errors.push(`[${phase}] console: ${m.text()}`);
      }
    });
    page.on('pageerror', (e) => errors.push(`[${phase}] pageerror: ${e.message}`));
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));

    await page.goto(`${server.base}/dashboard`);
    await page.locator('#login-form').waitFor(WAIT);

    // A wrong token: refused, with the server's 401 said plainly.
    phase = 'wrong-token';
    await page.fill('#token', 'not-the-admin-token-123');
    await page.click('#login-form button[type=submit]');
    const refused = page.locator('#login-error');
    await refused.waitFor({ state: 'visible', ...WAIT });
    assert.match(await refused.textContent(), /Refused.*401/);
    assert.equal(await page.locator('#board').isVisible(), false);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('tidegate.admin-token')), null);

    // The right token: the board goes live, the token is kept in sessionStorage only.
    phase = 'signed-in';
    await page.fill('#token', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.locator('#status[data-state=live]').waitFor(WAIT);
    await page.locator('#login-error').waitFor({ state: 'hidden', ...WAIT });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('tidegate.admin-token')), TOKEN);
    await page.locator('.policy[data-policy=api]').waitFor(WAIT);

    // Traffic: mallory gets 3 admitted then 7 denied; alice 2 admitted.
    const statuses = [];
    for (let i = 0; i < 10; i++) {
      statuses.push(await check(server.base, 'mallory'));
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429, 429, 429]);
    assert.equal(await check(server.base, 'alice'), 200);
    assert.equal(await check(server.base, 'alice'), 200);

    // The chart of `api` shows a denied rate above zero, its card the totals.
    await page.waitForFunction(() => {
      const card = document.querySelector('.policy[data-policy=api]');
      return card && Number(card.dataset.deniedMax) > 0;
    }, null, WAIT);
    const api = page.locator('.policy[data-policy=api]');
    assert.match(await api.locator('.rate.totals').textContent(), /5 allowed, 7 denied/);
    const deniedPoints = await api.locator('polyline.denied').getAttribute('points');
    const ys = deniedPoints.trim().split(' ').map((p) => Number(p.split(',')[1]));
    const zero = Number(await api.locator('line.axis').first().getAttribute('y1'));
    assert.ok(Math.min(...ys) < zero, `the denied line rises above 0 (y ${zero}): ${deniedPoints}`);

    // Key lookup: mallory is limited.
    await page.selectOption('#lookup-policy', 'api');
    await page.fill('#lookup-key', 'mallory');
    await page.click('#lookup-form button[type=submit]');
    await page.locator('#lookup-result[data-state=limited]').waitFor(WAIT);
    assert.match(await page.locator('#lookup-result').textContent(), /remaining0 of 3/);

    // Top limited keys of `api`: mallory, with its 7 denials.
    await page.selectOption('#top-policy', 'api');
    await page.selectOption('#top-by', 'denied');
    await page.click('#top-form button[type=submit]');
    const row = page.locator('#top tbody tr[data-key=mallory]');
    await row.waitFor(WAIT);
    assert.equal(await row.locator('td').nth(1).textContent(), '7');
    // A few more snapshots, so the chart of the artefact shows the spike and after.
    await page.waitForTimeout(2500);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    // Reset mallory from the list: its next request is admitted again.
    await row.locator('button.reset').click();
    await page.locator('#top-message[data-key=mallory]').waitFor(WAIT);
    assert.match(await page.locator('#top-message').textContent(), /Reset mallory/);
    assert.equal(await check(server.base, 'mallory'), 200);
    // A reset forgets the key's denials: it leaves the list of the most denied.
    await row.waitFor({ state: 'detached', ...WAIT });

    // The lookup now shows mallory admitted with 2 of 3 left.
    await page.click('#lookup-form button[type=submit]');
    await page.locator('#lookup-result[data-state=admitted]').waitFor(WAIT);
    assert.match(await page.locator('#lookup-result').textContent(), /remaining2 of 3/);

    // The token never appeared in a URL the page requested.
    assert.ok(urls.length > 0);
    for (const u of urls) {
      assert.ok(!u.includes(TOKEN), `token in a URL: ${u}`);
    }
    assert.deepEqual(errors, []);

    // With the event stream still open, the server shuts down promptly (the stream
    // ends at shutdown instead of holding it up until shutdown_timeout).
    const started = Date.now();
    const exited = new Promise((ok) => server.child.on('exit', (code, signal) => ok({ code, signal })));
    server.child.kill('SIGTERM');
    const { code } = await exited;
    assert.equal(code, 0, server.log());
    assert.ok(Date.now() - started < 10000, `shutdown took ${Date.now() - started} ms`);
  } catch (e) {
    // What the page showed when it failed, next to the passing run's screenshot.
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-failure.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
    if (server.child.exitCode === null) {
      server.child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
