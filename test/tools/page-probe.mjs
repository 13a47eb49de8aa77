// Opens the cluster page in headless Chromium (Debian's, driven by playwright-core) as an
// operator would: presenting a PKCS#12 operator certificate, trusting the cluster CA through
// NODE_EXTRA_CA_CERTS (set by the caller: Playwright's TLS proxy verifies the server's
// certificate and host name with Node's CA store, read at process start, hence a process of
// its own). Prints one JSON line per event:
//   {"event":"ready", nodes, containers, transferBytes, interactiveMs, loadMs}
//   {"event":"moved", atMs}        once the container's row shows the awaited node
//   {"event":"decision", ids, rows} once the decisions table shows a decision (with "decision": true)
//   {"event":"screenshot", path}
// Usage: PROBE='{"url":...,"pfx":...,"passphrase":...,"nodes":2,"herdId":...,"node":...,"screenshot":...}' node page-probe.mjs
import { chromium } from 'playwright-core';

const p = JSON.parse(process.env.PROBE);
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ clientCertificates: [{ origin: new URL(p.url).origin, pfxPath: p.pfx, passphrase: p.passphrase }], viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const response = await page.goto(p.url, { waitUntil: 'domcontentloaded', timeout: 60_000 });
  if (response.status() !== 200) throw new Error(`the page answered ${response.status()}: ${await response.text()}`);
  await page.waitForFunction((n) => document.querySelectorAll('#nodes tr').length >= n, p.nodes, { timeout: 60_000 });
  await page.waitForLoadState('load');
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const resources = performance.getEntriesByType('resource').filter((r) => !r.name.includes('/api/events'));
    return {
      interactiveMs: nav.domInteractive,
      loadMs: nav.loadEventEnd,
      transferBytes: nav.transferSize + resources.reduce((a, r) => a + r.transferSize, 0),
      encodedBytes: nav.encodedBodySize + resources.reduce((a, r) => a + r.encodedBodySize, 0),
    };
  });
  const nodes = await page.$$eval('#nodes tr', (rows) => rows.map((r) => r.dataset.node));
  const containers = await page.$$eval('#containers tr', (rows) => rows.map((r) => ({ herdId: r.dataset.herdId, node: r.querySelector('td.node')?.textContent })));
  say({ event: 'ready', nodes, containers, ...timing });
  if (p.herdId) {
    await page.waitForFunction(([id, node]) => document.querySelector(`#containers tr[data-herd-id="${id}"] td.node`)?.textContent === node, [p.herdId, p.node], { timeout: 120_000, polling: 100 });
    say({ event: 'moved', atMs: Date.now() });
    // Let the charts redraw with the migration marked before the picture.
    await page.waitForFunction(() => document.querySelectorAll('#hostChart line').length > 0, null, { timeout: 30_000 }).catch(() => {});
  }
  if (p.decision) {
    await page.waitForSelector('#decisions tr[data-decision]', { timeout: 120_000 });
    const rows = await page.$$eval('#decisions tr[data-decision]', (trs) => trs.map((r) => ({ id: r.dataset.decision, text: r.textContent })));
    say({ event: 'decision', ids: rows.map((r) => r.id), rows });
  }
  if (p.screenshot) {
    await page.screenshot({ path: p.screenshot, fullPage: true });
    say({ event: 'screenshot', path: p.screenshot });
  }
} finally {
  await browser.close();
}
