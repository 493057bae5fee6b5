// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by npm playwright-core
// (both installed by `make deps`). A missing piece is an error that says what to install.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { HERE, ROOT, mkTemp } from './lib.mjs';

export const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run'];

/** Launches Chromium; resolves to a playwright Browser (close it when done). */
export async function launchChromium() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Chromium (apt-get install -y chromium, part of make deps) — the browser tests cannot run without it`);
  }
  let pw;
  try { pw = createRequire(`${ROOT}/tests/package.json`)('playwright-core'); } catch (e) {
    throw new Error(`npm playwright-core is not installed in tests/node_modules (make deps): ${e.message}`);
  }
  return pw.chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000 });
}

/** A temp web.root: a copy of web/ plus the test page browser_client.html. */
export function clientWebRoot() {
  const dir = mkTemp('rtb-browser-web-');
  for (const f of fs.readdirSync(path.join(ROOT, 'web'))) fs.copyFileSync(path.join(ROOT, 'web', f), path.join(dir, f));
  fs.copyFileSync(path.join(HERE, 'browser_client.html'), path.join(dir, 'browser_client.html'));
  return dir;
}
