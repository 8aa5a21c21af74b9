// cdp.mjs: headless Chromium (Debian's chromium package) driven by the DevTools protocol
// directly, for the browser tests and bench/ops_stream.mjs. What they need: open a page,
// evaluate an expression, click at a point or on an element, take a screenshot, collect
// the page's uncaught errors and console errors.
//
// Why this shape (each point was a hang or a failure on this machine):
//   - the binary itself (/usr/lib/chromium/chromium), not Debian's /usr/bin/chromium
//     wrapper: the wrapper sources /etc/chromium.d (extensions to load, a /dev/shm check
//     that fails on some mounts) before it execs;
//   - --remote-debugging-pipe: the protocol on file descriptors 3 and 4 (JSON messages
//     ended by a NUL byte), so there is no port to find (no DevToolsActivePort file to
//     poll, no race with another browser) and the browser's end of the pipe closes when it
//     dies: every pending call then fails at once with the browser's last stderr lines,
//     instead of waiting forever;
//   - every call has a deadline (MERIDIAN_WEB_TIMEOUT_SCALE multiplies all of them, for a
//     loaded machine), and its error names the method and what the page was doing;
//   - --headless=new; --no-sandbox (the tests run as root in CI containers, where the
//     sandbox cannot start); WebGL on SwiftShader, asked for explicitly
//     (--use-angle=swiftshader --enable-unsafe-swiftshader: Chromium no longer falls back
//     to software WebGL by itself, and MapLibre needs WebGL); a fresh --user-data-dir under
//     the temp dir, removed on close; no background networking (the machines are offline);
//   - pages are targets attached with flatten: true: one pipe, a sessionId per page.
// (puppeteer-core 23-25 lost track of the page's main frame on this Chromium 156:
// "Requesting main frame too early" / "detached Frame" on the first navigation.)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Deadlines are multiplied by MERIDIAN_WEB_TIMEOUT_SCALE (default 1). */
export const scale = (ms) => Math.round(ms * Math.max(0.1, Number(process.env.MERIDIAN_WEB_TIMEOUT_SCALE || 1)));

export const CHROMIUM_FLAGS = [
  '--headless=new', '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-extensions',
  '--disable-default-apps', '--disable-breakpad', '--no-first-run', '--no-default-browser-check',
  '--disable-features=Translate,MediaRouter,OptimizationHints', '--mute-audio', '--disable-dev-shm-usage',
  '--remote-debugging-pipe',
];

class Page {
  constructor(browser, sessionId, label) {
    this.browser = browser;
    this.sessionId = sessionId;
    this.label = label;
    this.errors = []; // uncaught exceptions and console.error lines of the page
    this.loads = 0; // Page.loadEventFired count (navigation done)
  }

  send(method, params = {}, timeoutMs = 30000) {
    return this.browser.send(method, params, this.sessionId, timeoutMs, this.label);
  }

  _event(m) {
    if (m.method === 'Runtime.exceptionThrown') {
      const d = m.params.exceptionDetails;
      this.errors.push(`uncaught: ${d.exception?.description || d.text}`);
    } else if (m.method === 'Runtime.consoleAPICalled' && m.params.type === 'error') {
      this.errors.push(`console.error: ${m.params.args.map((a) => a.value ?? a.description ?? '').join(' ')}`);
    } else if (m.method === 'Page.loadEventFired') {
      this.loads++;
    }
  }

  /** Navigate and wait for the load event (then for document.readyState complete). */
  async goto(url, timeoutMs = 60000) {
    const deadline = Date.now() + scale(timeoutMs);
    const before = this.loads;
    const r = await this.send('Page.navigate', { url }, timeoutMs);
    if (r.errorText) throw new Error(`${this.label}: cannot open ${url}: ${r.errorText}`);
    while (this.loads === before) {
      if (Date.now() > deadline) throw new Error(`${this.label}: ${url} did not finish loading in ${scale(timeoutMs)} ms`);
      await sleep(50);
    }
  }

  /** Evaluate an expression (a string, or a function and its JSON-able argument); awaits promises. */
  async evaluate(expr, arg, timeoutMs = 30000) {
    const expression = typeof expr === 'function' ? `(${expr})(${JSON.stringify(arg)})` : expr;
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, timeoutMs);
    if (r.exceptionDetails) {
      throw new Error(`${this.label}: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text} (in: ${expression.slice(0, 200)})`);
    }
    return r.result.value;
  }

  async click(x, y) {
    for (const type of ['mouseMoved', 'mousePressed', 'mouseReleased'])
      await this.send('Input.dispatchMouseEvent', { type, x, y, button: type === 'mouseMoved' ? 'none' : 'left', clickCount: 1 });
  }

  async clickSelector(sel) {
    const box = await this.evaluate((s) => {
      const e = document.querySelector(s);
      if (!e) return null;
      const r = e.getBoundingClientRect();
      return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
    }, sel);
    if (!box) throw new Error(`${this.label}: no element ${sel} to click`);
    await this.click(box.x, box.y);
  }

  /** A PNG of the page. The page is brought to the front first: a background tab draws no
   * frame, and the capture would wait for one. */
  async screenshot(path) {
    await this.send('Page.bringToFront');
    const r = await this.send('Page.captureScreenshot', { format: 'png' }, 90000);
    writeFileSync(path, Buffer.from(r.data, 'base64'));
    return path;
  }
}

export async function launchChromium({ width = 1280, height = 800 } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'meridian-chromium-'));
  const exe = process.env.MERIDIAN_CHROMIUM || '/usr/lib/chromium/chromium';
  const proc = spawn(exe, [...CHROMIUM_FLAGS, `--user-data-dir=${dataDir}`, `--window-size=${width},${height}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-20000);
  });
  const tail = () => stderr.split('\n').filter((l) => l && !/dbus|Fontconfig/.test(l)).slice(-10).join('\n');
  let dead = null; // why the browser is gone
  const waiting = new Map(); // id -> {resolve, reject, timer}
  const pages = new Map(); // sessionId -> Page
  const failAll = (why) => {
    dead = dead || why;
    for (const [, w] of waiting) {
      clearTimeout(w.timer);
      w.reject(new Error(`${w.what}: ${dead}`));
    }
    waiting.clear();
  };
  proc.on('error', (e) => failAll(`cannot start ${exe}: ${e.message} (is Debian's chromium installed? scripts/setup)`));
  proc.on('exit', (code, sig) => failAll(`chromium exited (code ${code}, signal ${sig}); its last lines:\n${tail()}`));
  const toBrowser = proc.stdio[3];
  const fromBrowser = proc.stdio[4];
  toBrowser.on('error', () => {});
  let buf = '';
  fromBrowser.on('data', (d) => {
    buf += d;
    for (let i; (i = buf.indexOf('\0')) >= 0;) {
      const m = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (m.id !== undefined) {
        const w = waiting.get(m.id);
        if (!w) continue;
        waiting.delete(m.id);
        clearTimeout(w.timer);
        if (m.error) w.reject(new Error(`${w.what}: ${m.error.message}${m.error.data ? ` (${m.error.data})` : ''}`));
        else w.resolve(m.result);
      } else if (m.sessionId && pages.has(m.sessionId)) {
        pages.get(m.sessionId)._event(m);
      }
    }
  });

  let nextId = 0;
  const browser = {
    send(method, params = {}, sessionId, timeoutMs = 30000, label = 'browser') {
      const what = `${label}: ${method}`;
      if (dead) return Promise.reject(new Error(`${what}: ${dead}`));
      const id = ++nextId;
      return new Promise((resolve, reject) => {
        const ms = scale(timeoutMs);
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`${what}: no answer in ${ms} ms (chromium pid ${proc.pid}, load ${loadavg()[0].toFixed(1)})`));
        }, ms);
        waiting.set(id, { resolve, reject, timer, what });
        toBrowser.write(`${JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params })}\0`);
      });
    },
  };
  const killNow = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  process.once('exit', killNow);

  try {
    // the first answer says the browser is up (slow to start on a loaded machine)
    await browser.send('Browser.getVersion', {}, undefined, 60000, 'chromium start');
  } catch (e) {
    killNow();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }

  return {
    pid: proc.pid,
    async newPage(label = `page ${pages.size + 1}`) {
      const { targetId } = await browser.send('Target.createTarget', { url: 'about:blank' }, undefined, 30000, label);
      const { sessionId } = await browser.send('Target.attachToTarget', { targetId, flatten: true }, undefined, 30000, label);
      const p = new Page(browser, sessionId, label);
      pages.set(sessionId, p);
      await p.send('Page.enable');
      await p.send('Runtime.enable');
      await p.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
      // a page in a background tab gets no animation frames: every page acts as focused
      await p.send('Emulation.setFocusEmulationEnabled', { enabled: true });
      return p;
    },
    async close() {
      process.removeListener('exit', killNow);
      if (!dead) await browser.send('Browser.close', {}, undefined, 10000).catch(() => {});
      const exited = proc.exitCode !== null || proc.signalCode !== null
        ? Promise.resolve()
        : new Promise((r) => proc.once('exit', r));
      const t = setTimeout(killNow, scale(10000));
      await exited;
      clearTimeout(t);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

