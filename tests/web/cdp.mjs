// cdp.mjs: headless Chromium (Debian's chromium) driven by the DevTools protocol directly,
// over npm ws. (puppeteer-core 23-25 lost track of the page's frame on this Chromium 156:
// "Requesting main frame too early" / "detached Frame" on the first navigation.) What the
// tests need: open a page, evaluate an expression, click at a point or on an element, take
// a screenshot, collect uncaught page errors.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

class Page {
  constructor(ws) {
    this.ws = ws;
    this.id = 0;
    this.waiting = new Map();
    this.errors = [];
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m.id && this.waiting.has(m.id)) {
        const { resolve, reject } = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (m.error) reject(new Error(`${m.error.message}`));
        else resolve(m.result);
      } else if (m.method === 'Runtime.exceptionThrown') {
        this.errors.push(m.params.exceptionDetails.exception?.description || m.params.exceptionDetails.text);
      }
    });
  }

  send(method, params = {}) {
    const id = ++this.id;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  async goto(url) {
    await this.send('Page.navigate', { url });
    for (let i = 0; i < 300; i++) {
      await sleep(100);
      const r = await this.evaluate('document.readyState').catch(() => null);
      const href = await this.evaluate('location.href').catch(() => null);
      if (r === 'complete' && href === url) return;
    }
    throw new Error(`${url} did not load in 30 s`);
  }

  /** Evaluate an expression (a string, or a function and its JSON-able argument). */
  async evaluate(expr, arg) {
    const expression = typeof expr === 'function' ? `(${expr})(${JSON.stringify(arg)})` : expr;
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
    return r.result.value;
  }

  async click(x, y) {
    for (const type of ['mouseMoved', 'mousePressed', 'mouseReleased'])
      await this.send('Input.dispatchMouseEvent', { type, x, y, button: 'left', clickCount: 1 });
  }

  async clickSelector(sel) {
    const box = await this.evaluate((s) => {
      const r = document.querySelector(s).getBoundingClientRect();
      return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
    }, sel);
    await this.click(box.x, box.y);
  }

  async screenshot(path) {
    const r = await this.send('Page.captureScreenshot', { format: 'png' });
    writeFileSync(path, Buffer.from(r.data, 'base64'));
  }
}

export async function launchChromium({ width = 1280, height = 800 } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'meridian-chromium-'));
  const proc = spawn(process.env.MERIDIAN_CHROMIUM || '/usr/bin/chromium',
    [...CHROMIUM_FLAGS, `--user-data-dir=${dataDir}`, `--window-size=${width},${height}`, '--remote-debugging-port=0', 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  let port = 0;
  for (let i = 0; i < 200 && !port; i++) {
    await sleep(100);
    try {
      port = Number(readFileSync(join(dataDir, 'DevToolsActivePort'), 'utf8').split('\n')[0]);
    } catch {
      /* not yet */
    }
  }
  if (!port) throw new Error(`chromium did not start: ${stderr.slice(-2000)}`);
  const base = `http://127.0.0.1:${port}`;
  const pages = [];
  return {
    async newPage() {
      const t = await (await fetch(`${base}/json/new?about:blank`, { method: 'PUT' })).json();
      const ws = new WebSocket(t.webSocketDebuggerUrl, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
      await new Promise((res, rej) => {
        ws.once('open', res);
        ws.once('error', rej);
      });
      const p = new Page(ws);
      await p.send('Page.enable');
      await p.send('Runtime.enable');
      await p.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
      pages.push(p);
      return p;
    },
    async close() {
      for (const p of pages) p.ws.close();
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
