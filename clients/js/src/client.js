// client.js: one connection to the gateway (/v1/driver or /v1/rider) that stays up: it
// reconnects with jittered exponential backoff, paces what it sends under the gateway's
// rate limits, turns ref -> ack / error into promises, and keeps the user's trips, which
// the gateway's snapshot replaces after every reconnection (docs/protocol.md: "also sent
// at once on (re)connection while the user has an active trip").
//
// Events: open, close {code, reason}, reconnecting {attempt, delayMs}, resync {trip},
// trip, offer, matched, no_driver, nearby, ack, error (MeridianError; unsolicited ones and
// refused upgrades), message (every server message, raw), stale (a trip message older
// than what is known, ignored).

import { Emitter } from './emitter.js';
import { MeridianError } from './errors.js';
import { Bucket, GATEWAY_LIMITS, paced } from './pacer.js';

/** @typedef {import('../types/protocol').ServerMessage} ServerMessage */
/** @typedef {import('../types/protocol').ServerTrip} ServerTrip */
/** @typedef {import('../types/protocol').ServerOffer} ServerOffer */
/** @typedef {import('../types/protocol').ServerMatched} ServerMatched */
/** @typedef {import('../types/protocol').ServerError} ServerError */
/** @typedef {import('../types/protocol').DriverMessage} DriverMessage */
/** @typedef {import('../types/protocol').RiderMessage} RiderMessage */

/**
 * @typedef {object} ConnectOptions
 * @property {string} url the gateway, e.g. ws://127.0.0.1:8080 (the endpoint path is added)
 * @property {string} token a JWT of the endpoint's role
 * @property {any} [WebSocket] a WebSocket class (default: the browser's, or npm ws in Node)
 * @property {{baseMs?: number, maxMs?: number, factor?: number}} [backoff] reconnect delays
 * @property {number} [ackTimeoutMs] how long a ref waits for its ack (15000)
 * @property {number} [resyncWindowMs] after a reconnection, how long to wait for the trip
 *   snapshot before concluding there is no active trip (1500)
 * @property {boolean} [reconnect] reconnect after a drop (true)
 * @property {() => number} [now] clock in ms (tests)
 * @property {() => number} [random] in [0, 1) (tests)
 */

const TERMINAL = new Set(['completed', 'cancelled', 'no_driver']);

/** @returns {Promise<any>} */
async function defaultWebSocket() {
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  const mod = await import('ws'); // Node: the one dependency
  return mod.default;
}

export class Connection extends Emitter {
  /** @param {'driver' | 'rider' | 'ops'} role @param {ConnectOptions} opts */
  constructor(role, opts) {
    super();
    if (!opts || typeof opts.url !== 'string' || !opts.url) throw new TypeError('connect: url is required');
    if (typeof opts.token !== 'string' || !opts.token) throw new TypeError('connect: token is required');
    this.role = role;
    this.opts = opts;
    this.now = opts.now || (() => Date.now());
    this.random = opts.random || Math.random;
    const b = opts.backoff || {};
    this.backoff = { baseMs: b.baseMs ?? 500, maxMs: b.maxMs ?? 30000, factor: b.factor ?? 2 };
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 15000;
    this.resyncWindowMs = opts.resyncWindowMs ?? 1500;
    this.reconnectEnabled = opts.reconnect ?? true;
    const base = opts.url.replace(/\/+$/, '');
    this.endpoint = /\/v1\/(driver|rider|ops)$/.test(base) ? base : `${base}/v1/${role}`;
    /** @type {Record<string, Bucket>} */
    this.buckets = {};
    const limits = /** @type {Record<string, {rate: number, burst: number}>} */ (GATEWAY_LIMITS[role]);
    for (const [cls, l] of Object.entries(limits)) {
      const p = paced(l);
      this.buckets[cls] = new Bucket(p.rate, p.burst, this.now);
    }
    /** @type {Array<{cls: string, msg: any, key?: string, resolve: (v: any) => void, reject: (e: any) => void, wantAck: boolean}>} */
    this.queue = [];
    /** @type {Map<string, {resolve: (v: any) => void, reject: (e: any) => void, timer: any, type: string}>} */
    this.pending = new Map();
    /** @type {Map<string, any>} the user's trips by id: the latest state known (server fields) */
    this.trips = new Map();
    /** @type {Map<string, ServerOffer>} offers not yet answered (driver) */
    this.offers = new Map();
    this.refSeq = 0;
    this.attempt = 0;
    this.connected = false;
    this.closedByApp = false;
    this.everOpened = false;
    /** @type {any} */
    this.ws = null;
    /** @type {any} */
    this.drainTimer = null;
    /** @type {any} */
    this.retryTimer = null;
    /** @type {any} */
    this.resyncTimer = null;
    this.resyncPending = false;
  }

  /** Open the connection; resolves on the first open (rejects if the token is refused). */
  async connect() {
    this.WS = this.opts.WebSocket || (await defaultWebSocket());
    const first = new Promise((resolve, reject) => {
      const offOpen = this.once('open', () => {
        offErr();
        resolve(this);
      });
      const offErr = this.on('error', (/** @type {MeridianError} */ e) => {
        if (e.status === 401 || e.status === 403) {
          offOpen();
          offErr();
          reject(e);
        }
      });
    });
    this._open();
    return first;
  }

  /** The trip in progress (the latest non-ended one), or null. */
  get trip() {
    let best = null;
    for (const t of this.trips.values()) if (!TERMINAL.has(t.status) && t.status !== 'offer_expired') best = t;
    return best;
  }

  /** Close for good: no reconnection; what is queued or waiting is rejected with `closed`. */
  close() {
    this.closedByApp = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.drainTimer);
    clearTimeout(this.resyncTimer);
    this._failAll('closed');
    for (const q of this.queue.splice(0)) q.reject(new MeridianError('closed'));
    if (this.ws) {
      try {
        this.ws.close(1000, 'bye');
      } catch {
        /* already closing */
      }
    }
  }

  // ---- socket ---------------------------------------------------------------------------

  _open() {
    const url = `${this.endpoint}?token=${encodeURIComponent(this.opts.token)}`;
    const ws = new this.WS(url);
    this.ws = ws;
    ws.onopen = () => {
      const again = this.everOpened;
      this.everOpened = true;
      this.connected = true;
      this.attempt = 0;
      if (again) {
        // the snapshot, if the user has an active trip, is the gateway's first message
        this.resyncPending = true;
        this.resyncTimer = setTimeout(() => this._resync(null), this.resyncWindowMs);
      }
      this.emit('open', { reconnected: again });
      this._drain();
    };
    ws.onmessage = (/** @type {{data: any}} */ ev) => this._onText(typeof ev.data === 'string' ? ev.data : String(ev.data));
    ws.onerror = () => {
      /* onclose follows; the reason is there */
    };
    // npm ws tells the HTTP status of a refused upgrade; browsers do not
    if (typeof ws.on === 'function') {
      ws.on('unexpected-response', (/** @type {any} */ _req, /** @type {any} */ res) => {
        const status = res.statusCode;
        const code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'unavailable';
        const err = new MeridianError(code, `the gateway refused the connection with HTTP ${status}`, { status });
        if (status === 401 || status === 403) this.reconnectEnabled = false; // a bad token stays bad
        this.emit('error', err);
        try {
          ws.terminate();
        } catch {
          /* gone */
        }
        if (typeof ws.onclose === 'function') ws.onclose({ code: 1006, reason: `HTTP ${status}` });
        ws.onclose = null;
      });
    }
    ws.onclose = (/** @type {{code: number, reason: string}} */ ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const was = this.connected;
      this.connected = false;
      clearTimeout(this.resyncTimer);
      this.resyncPending = false;
      this._failAll('disconnected');
      if (was) this.emit('close', { code: ev.code, reason: ev.reason });
      if (!this.closedByApp && this.reconnectEnabled) this._scheduleReconnect();
    };
  }

  _scheduleReconnect() {
    const { baseMs, maxMs, factor } = this.backoff;
    const cap = Math.min(maxMs, baseMs * factor ** this.attempt);
    const delayMs = Math.round(cap / 2 + this.random() * (cap / 2)); // jitter: [cap/2, cap)
    this.attempt++;
    this.emit('reconnecting', { attempt: this.attempt, delayMs });
    this.retryTimer = setTimeout(() => {
      if (!this.closedByApp) this._open();
    }, delayMs);
  }

  /** @param {string} code */
  _failAll(code) {
    for (const [ref, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new MeridianError(code, undefined, { ref }));
    }
    this.pending.clear();
  }

  // ---- sending ---------------------------------------------------------------------------

  /**
   * Queue a message; resolves with its answer (ack, or nearby) when wantAck, else when sent.
   * @param {string} cls pacing class @param {any} msg @param {{wantAck?: boolean, key?: string}} [o]
   */
  _send(cls, msg, o = {}) {
    if (this.closedByApp) return Promise.reject(new MeridianError('closed'));
    const wantAck = o.wantAck ?? true;
    return new Promise((resolve, reject) => {
      if (o.key) {
        const i = this.queue.findIndex((q) => q.key === o.key);
        if (i >= 0) {
          const [old] = this.queue.splice(i, 1);
          old.resolve({ superseded: true });
        }
      }
      this.queue.push({ cls, msg, key: o.key, resolve, reject, wantAck });
      this._drain();
    });
  }

  _drain() {
    clearTimeout(this.drainTimer);
    this.drainTimer = null;
    if (!this.connected || !this.ws) return;
    let wait = Infinity;
    for (let i = 0; i < this.queue.length; ) {
      const q = this.queue[i];
      const b = this.buckets[q.cls] || this.buckets.control;
      if (!b.take()) {
        wait = Math.min(wait, b.waitMs());
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      const msg = { ...q.msg };
      if (q.wantAck) {
        const ref = `${this.role[0]}${++this.refSeq}`;
        msg.ref = ref;
        const timer = setTimeout(() => {
          if (this.pending.delete(ref)) q.reject(new MeridianError('timeout', `no answer to ${msg.type} in ${this.ackTimeoutMs} ms`, { ref }));
        }, this.ackTimeoutMs);
        this.pending.set(ref, { resolve: q.resolve, reject: q.reject, timer, type: msg.type });
      }
      try {
        this.ws.send(JSON.stringify(msg));
      } catch (e) {
        if (q.wantAck) this.pending.delete(msg.ref);
        q.reject(new MeridianError('disconnected', String(e)));
        continue;
      }
      if (!q.wantAck) q.resolve({ sent: true });
    }
    if (this.queue.length && wait < Infinity) this.drainTimer = setTimeout(() => this._drain(), Math.max(1, wait));
  }

  // ---- receiving -------------------------------------------------------------------------

  /** @param {string} text */
  _onText(text) {
    /** @type {ServerMessage} */
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      this.emit('error', new MeridianError('internal', 'the gateway sent something that is not JSON'));
      return;
    }
    this.emit('message', m);
    switch (m.type) {
      case 'ack': {
        const p = this.pending.get(m.ref);
        if (p) {
          this.pending.delete(m.ref);
          clearTimeout(p.timer);
          p.resolve(m);
        }
        this.emit('ack', m);
        return;
      }
      case 'error': {
        const err = new MeridianError(m.code, m.message, { field: m.field, ref: m.ref });
        const p = m.ref !== undefined ? this.pending.get(m.ref) : undefined;
        // an ack may already have resolved the ref: dispatch refusing it later comes as an
        // error with the same ref (unknown_offer, invalid_state), reported as an event
        if (p && m.ref !== undefined) {
          this.pending.delete(m.ref);
          clearTimeout(p.timer);
          p.reject(err);
        }
        this.emit('error', err);
        return;
      }
      case 'nearby': {
        const p = m.ref !== undefined ? this.pending.get(m.ref) : undefined;
        if (p && m.ref !== undefined) {
          this.pending.delete(m.ref);
          clearTimeout(p.timer);
          p.resolve(m.drivers);
        }
        this.emit('nearby', m);
        return;
      }
      case 'trip':
        this._onTrip(m);
        return;
      case 'offer':
        this.offers.set(m.offer_id, m);
        this.emit('offer', m);
        return;
      case 'matched': {
        const t = this.trips.get(m.trip_id) || { trip_id: m.trip_id, seq: 0 };
        Object.assign(t, { status: 'matched', driver_id: m.driver_id, driver: m.driver, pickup_eta_s: m.pickup_eta_s });
        if (m.request_id) t.request_id = m.request_id;
        this.trips.set(m.trip_id, t);
        this.emit('matched', m);
        return;
      }
      case 'no_driver':
        if (m.trip_id) {
          const t = this.trips.get(m.trip_id);
          if (t) t.status = 'no_driver';
        }
        this.emit('no_driver', m);
        return;
      default:
        return;
    }
  }

  /** @param {ServerTrip} m */
  _onTrip(m) {
    if (this.resyncPending) {
      this._resync(m);
      return;
    }
    const known = this.trips.get(m.trip_id);
    if (known && known.seq >= m.seq) {
      this.emit('stale', m);
      return;
    }
    this._merge(m);
    this.emit('trip', this.trips.get(m.trip_id));
  }

  /** @param {ServerTrip} m */
  _merge(m) {
    const t = { ...(this.trips.get(m.trip_id) || {}), ...m };
    delete t.type;
    if (m.status === 'offer_expired' && m.offer_id) this.offers.delete(m.offer_id);
    if (m.offer_id && (m.status === 'matched' || TERMINAL.has(m.status))) this.offers.delete(m.offer_id);
    this.trips.set(m.trip_id, t);
  }

  /** The snapshot after a reconnection replaces what was known. @param {ServerTrip | null} m */
  _resync(m) {
    clearTimeout(this.resyncTimer);
    this.resyncPending = false;
    this.trips.clear();
    this.offers.clear();
    if (m) this._merge(m);
    const trip = m ? this.trips.get(m.trip_id) : null;
    this.emit('resync', { trip });
    if (trip) this.emit('trip', trip);
  }

  /** A ref-less unique id for requests. */
  _id(prefix) {
    return `${prefix}-${this.now().toString(36)}-${Math.floor(this.random() * 1e9).toString(36)}`;
  }
}
