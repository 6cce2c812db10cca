// Helpers of the browser tests: the real shardcast server (demo on: it is the data source)
// and headless Chromium driven by playwright-core.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = resolve(ROOT, process.env.SHARDCAST_BIN ?? 'target/debug/shardcast');
// Where screenshots go: a temporary folder, unless SCREENSHOT_DIR names one (the committed
// ones are made with SCREENSHOT_DIR=results/screenshots), so a test run leaves the tree clean.
export const SCREENSHOTS = process.env.SCREENSHOT_DIR
  ? resolve(ROOT, process.env.SCREENSHOT_DIR)
  : join(tmpdir(), 'shardcast-screenshots');

/**
 * Starts the server on `listen` (default a free port) with more flags `args` (e.g. `--config`);
 * resolves once it prints its address.
 */
export function startServer(listen = '127.0.0.1:0', args = []) {
  const proc = spawn(BIN, ['--listen', listen, '--shards', '2', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr.on('data', () => {}); // logs; keep the pipe drained
  return new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`server did not start: ${out}`)), 15000);
    proc.on('exit', (code) => fail(new Error(`server exited with ${code}: ${out}`)));
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/listening on (\S+)/);
      if (m) clearTimeout(timer), ok({ proc, addr: m[1], url: `http://${m[1]}` });
    });
  });
}

/** Stops the server by its PID and waits for it to exit. */
export async function stopServer({ proc }) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((ok) => proc.once('exit', ok));
  process.kill(proc.pid, 'SIGKILL');
  await exited;
}

/** Headless Chromium with a fresh profile; `close()` removes the profile. */
export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'shardcast-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens `url` in a new tab, recording console errors and uncaught exceptions in `errors`. */
export async function open(context, url) {
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => errors.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  await page.goto(url, { waitUntil: 'load' });
  return { page, errors };
}

/** Saves a screenshot as <SCREENSHOTS>/<name>.png. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
