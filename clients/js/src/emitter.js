// emitter.js: a small event emitter that works the same in browsers and Node (no
// dependency on node:events or EventTarget's Event objects). Listeners that throw do not
// stop the others; the error is reported on console.error.

export class Emitter {
  constructor() {
    /** @type {Map<string, Set<(arg: any) => void>>} */
    this._listeners = new Map();
  }

  /** @param {string} event @param {(arg: any) => void} fn @returns {() => void} unsubscribe */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    /** @type {Set<(arg: any) => void>} */ (this._listeners.get(event)).add(fn);
    return () => this.off(event, fn);
  }

  /** @param {string} event @param {(arg: any) => void} fn */
  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  /** @param {string} event @param {(arg: any) => void} fn */
  once(event, fn) {
    const off = this.on(event, (arg) => {
      off();
      fn(arg);
    });
    return off;
  }

  /** The next occurrence of event as a promise (rejects after timeoutMs when given).
   * @param {string} event @param {(arg: any) => boolean} [filter] @param {number} [timeoutMs] */
  next(event, filter = () => true, timeoutMs = 0) {
    return new Promise((resolve, reject) => {
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let timer;
      const off = this.on(event, (arg) => {
        if (!filter(arg)) return;
        off();
        if (timer) clearTimeout(timer);
        resolve(arg);
      });
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          off();
          reject(new Error(`no ${event} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  /** @param {string} event @param {any} [arg] */
  emit(event, arg) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(arg);
      } catch (e) {
        console.error(`meridian: a ${event} listener threw`, e);
      }
    }
  }
}
